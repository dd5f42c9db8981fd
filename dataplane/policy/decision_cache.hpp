// Per-worker verdict cache in front of PolicySnapshot::decide().
//
// One per worker lcore (never shared: no atomics). Fixed size, allocated once at construction;
// lookups and fills do not allocate. 4-way set associative (a direct-mapped table loses ~20% of a
// working set a quarter of its size to conflicts). Entries carry the snapshot version they were
// computed for, so publishing a new snapshot invalidates the whole cache without touching it.
#pragma once

#include <cstdint>
#include <vector>

#include "dataplane/policy/snapshot.hpp"

namespace segwire::policy {

class DecisionCache {
  public:
    // `entries` is rounded up to a power of two (minimum 64).
    static constexpr uint32_t kWays = 4;
    explicit DecisionCache(uint32_t entries = 4096);

    Decision decide(const PolicySnapshot &snap, uint32_t pu, Direction dir, const PeerTags &peer,
                    uint8_t proto, uint16_t port) noexcept;
    Decision decide(const PolicySnapshot &snap, uint32_t pu, Direction dir, const IpAddr &peer,
                    uint8_t proto, uint16_t port) noexcept;

    void clear() noexcept;
    uint32_t capacity() const noexcept { return (set_mask_ + 1) * kWays; }
    uint64_t hits() const noexcept { return hits_; }
    uint64_t misses() const noexcept { return misses_; }

  private:
    struct alignas(64) Entry {
        uint64_t version;  // 0 = empty
        uint64_t peer[2];  // identity fingerprint or address
        uint32_t pu;
        uint16_t port;
        uint8_t proto;
        uint8_t kind;  // direction | peer kind << 1
        Decision decision;
    };
    static_assert(sizeof(Entry) == 64);

    template <typename Compute>
    Decision lookup(uint64_t version, uint64_t p0, uint64_t p1, uint32_t pu, uint16_t port,
                    uint8_t proto, uint8_t kind, const Compute &compute) noexcept;

    std::vector<Entry> entries_;
    uint32_t set_mask_;  // number of sets - 1
    uint32_t victim_ = 0;
    uint64_t hits_ = 0, misses_ = 0;
};

}  // namespace segwire::policy
