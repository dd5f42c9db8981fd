// The prefix → address-class tables of a compiled snapshot (one per address family), sized from
// the policy. Internal to the policy engine (snapshot.cpp, compile.cpp): it includes DPDK headers
// so that the lookups inline into PolicySnapshot::classify_*.
//
// Up to `rib_max_v4` / `rib_max_v6` prefixes of a family go into a DPDK RIB (rte_rib / rte_rib6: a
// path-compressed binary trie, memory proportional to the prefixes, a lookup walks at most one node
// per prefix on the path); more go into an LPM (rte_lpm DIR-24-8 / rte_lpm6: a fixed 2^24-entry
// tbl24 of 64 MiB whatever the prefix count, a lookup is one or two table reads). Either way the
// table is read-only once built: lookups allocate nothing, take no lock and may run on any lcore.
//
// A table is immutable and reference-counted: a snapshot whose prefix → class map equals the
// previous snapshot's (a rule-only policy update) shares the previous table instead of building a
// second one (see docs/policy.md, "Memory sizing").
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <rte_lpm.h>
#include <rte_lpm6.h>
#include <rte_rib.h>
#include <rte_rib6.h>

#include "config/policy/syntax.hpp"

namespace segwire::policy {

class AddressTable {
  public:
    using Entries = std::vector<std::pair<IpPrefix, uint32_t>>;  // prefix → class ID, no /0

    enum class Kind : uint8_t { kNone, kRib, kLpm };

    // Builds the tables for `v4` and `v6` (control thread; needs the EAL). `tag` makes the DPDK
    // object names unique (the snapshot version). Throws SnapshotResourceError when DPDK memory
    // runs out, PolicyError otherwise.
    static std::shared_ptr<const AddressTable> build(Entries v4, Entries v6, uint32_t rib_max_v4,
                                                     uint32_t rib_max_v6, const std::string &tag);
    ~AddressTable();
    AddressTable(const AddressTable &) = delete;
    AddressTable &operator=(const AddressTable &) = delete;

    // True when a table built from these arguments would be identical to this one.
    bool same(const Entries &v4, const Entries &v6, uint32_t rib_max_v4,
              uint32_t rib_max_v6) const {
        return kind_for(v4.size(), rib_max_v4) == kind_v4() &&
               kind_for(v6.size(), rib_max_v6) == kind_v6() && v4_ == v4 && v6_ == v6;
    }
    static Kind kind_for(size_t prefixes, uint32_t rib_max) {
        return prefixes == 0 ? Kind::kNone : prefixes <= rib_max ? Kind::kRib : Kind::kLpm;
    }

    // ---- hot path: false when no prefix covers the address ----
    bool lookup_v4(uint32_t host_order, uint32_t *cls) const noexcept {
        if (lpm4_) return rte_lpm_lookup(lpm4_, host_order, cls) == 0;
        if (rib4_) return rib_nh(rte_rib_lookup(rib4_, host_order), cls);
        return false;
    }
    bool lookup_v6(const uint8_t addr[16], uint32_t *cls) const noexcept {
        if (lpm6_) return rte_lpm6_lookup(lpm6_, addr, cls) == 0;
        if (rib6_) return rib6_nh(rte_rib6_lookup(rib6_, addr), cls);
        return false;
    }
    // n ≤ 64; a miss yields `miss`.
    void lookup_v4_bulk(const uint32_t *host_order, uint32_t *cls, unsigned n,
                        uint32_t miss) const noexcept;

    Kind kind_v4() const noexcept { return lpm4_ ? Kind::kLpm : rib4_ ? Kind::kRib : Kind::kNone; }
    Kind kind_v6() const noexcept { return lpm6_ ? Kind::kLpm : rib6_ ? Kind::kRib : Kind::kNone; }
    uint32_t prefixes_v4() const noexcept { return static_cast<uint32_t>(v4_.size()); }
    uint32_t prefixes_v6() const noexcept { return static_cast<uint32_t>(v6_.size()); }
    // DPDK heap bytes the tables took when they were built (measured: heap statistics before and
    // after, so allocations by other threads at the same moment would show up here too).
    size_t dpdk_bytes() const noexcept { return dpdk_bytes_; }

  private:
    AddressTable() = default;
    static bool rib_nh(const rte_rib_node *n, uint32_t *cls) noexcept {
        uint64_t nh;
        if (n == nullptr || rte_rib_get_nh(n, &nh) != 0) return false;
        *cls = static_cast<uint32_t>(nh);
        return true;
    }
    static bool rib6_nh(const rte_rib6_node *n, uint32_t *cls) noexcept {
        uint64_t nh;
        if (n == nullptr || rte_rib6_get_nh(n, &nh) != 0) return false;
        *cls = static_cast<uint32_t>(nh);
        return true;
    }
    void build_v4(uint32_t rib_max, const std::string &tag);
    void build_v6(uint32_t rib_max, const std::string &tag);

    rte_lpm *lpm4_ = nullptr;
    rte_rib *rib4_ = nullptr;
    rte_lpm6 *lpm6_ = nullptr;
    rte_rib6 *rib6_ = nullptr;
    Entries v4_, v6_;  // what the tables hold (control side: sharing)
    size_t dpdk_bytes_ = 0;
};

const char *to_string(AddressTable::Kind k);

// DPDK heap bytes in use, summed over sockets (rte_malloc_get_socket_stats).
size_t dpdk_heap_bytes_in_use();

}  // namespace segwire::policy
