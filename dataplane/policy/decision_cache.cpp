#include "dataplane/policy/decision_cache.hpp"

#include <bit>
#include <cstring>

namespace segwire::policy {
namespace {

enum PeerKind : uint8_t { kIdentity = 0, kAddr4 = 1, kAddr6 = 2 };

inline uint64_t mix(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return x;
}

}  // namespace

DecisionCache::DecisionCache(uint32_t entries) {
    uint32_t n = std::bit_ceil(std::max<uint32_t>(entries, 64));
    entries_.assign(n, Entry{});
    set_mask_ = n / kWays - 1;
}

void DecisionCache::clear() noexcept {
    for (Entry &e : entries_) e.version = 0;
}

template <typename Compute>
Decision DecisionCache::lookup(uint64_t version, uint64_t p0, uint64_t p1, uint32_t pu,
                               uint16_t port, uint8_t proto, uint8_t kind,
                               const Compute &compute) noexcept {
    uint64_t small = uint64_t(pu) << 32 | uint64_t(port) << 16 | uint64_t(proto) << 8 | kind;
    uint64_t h = mix(p0 ^ mix(p1 ^ mix(small)));
    Entry *set = &entries_[(h & set_mask_) * kWays];
    Entry *free_slot = nullptr;
    for (uint32_t w = 0; w < kWays; ++w) {
        Entry &e = set[w];
        if (e.version != version) {
            if (!free_slot) free_slot = &e;  // empty or from an older snapshot
            continue;
        }
        if (e.peer[0] == p0 && e.peer[1] == p1 && e.pu == pu && e.port == port &&
            e.proto == proto && e.kind == kind) {
            ++hits_;
            return e.decision;
        }
    }
    ++misses_;
    Decision d = compute();
    if (d.reason == Reason::kStalePeerTags) return d;  // the caller must rebuild the peer first
    // No LRU bookkeeping on hits: a rotating victim is as good for this access pattern and keeps
    // hits free of writes.
    Entry &e = free_slot ? *free_slot : set[victim_++ % kWays];
    e.version = version;
    e.peer[0] = p0;
    e.peer[1] = p1;
    e.pu = pu;
    e.port = port;
    e.proto = proto;
    e.kind = kind;
    e.decision = d;
    return d;
}

Decision DecisionCache::decide(const PolicySnapshot &snap, uint32_t pu, Direction dir,
                               const PeerTags &peer, uint8_t proto, uint16_t port) noexcept {
    // A fingerprint is only meaningful within the snapshot it was built for.
    if (peer.snapshot_version() != snap.version()) return snap.decide(pu, dir, peer, proto, port);
    uint8_t kind = static_cast<uint8_t>(dir) | kIdentity << 1;
    return lookup(snap.version(), peer.key()[0], peer.key()[1], pu, port, proto, kind,
                  [&] { return snap.decide(pu, dir, peer, proto, port); });
}

Decision DecisionCache::decide(const PolicySnapshot &snap, uint32_t pu, Direction dir,
                               const IpAddr &peer, uint8_t proto, uint16_t port) noexcept {
    uint64_t p0, p1;
    uint8_t kind = static_cast<uint8_t>(dir);
    if (peer.v6) {
        std::memcpy(&p0, peer.b6.data(), 8);
        std::memcpy(&p1, peer.b6.data() + 8, 8);
        kind |= kAddr6 << 1;
    } else {
        p0 = peer.v4;
        p1 = 0;
        kind |= kAddr4 << 1;
    }
    return lookup(snap.version(), p0, p1, pu, port, proto, kind,
                  [&] { return snap.decide(pu, dir, peer, proto, port); });
}

}  // namespace segwire::policy
