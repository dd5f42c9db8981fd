// The one 5-tuple type. Canonical: side "a" is the lower (address, port), so both directions of
// a connection build the same key and find the same flow.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "dataplane/packet/parse.hpp"

namespace segwire::dp {

struct FlowKey {
    IpAddr a, b;
    uint16_t pa, pb;
    uint16_t vlan;  // outer VLAN ID (12 bits); flows on different VLANs are different flows
    uint8_t proto;
    uint8_t family;  // 4 or 6
};
static_assert(sizeof(FlowKey) == 40, "FlowKey is hashed as raw bytes: no padding allowed");

enum Side : uint8_t { kSideA = 0, kSideB = 1 };

// memcmp's order on two addresses (bytes in network order), without the library call: two
// big-endian 64-bit compares.
inline int addr_order(const IpAddr &x, const IpAddr &y) {
    uint64_t a[2], b[2];
    std::memcpy(a, x.b, 16);
    std::memcpy(b, y.b, 16);
    const uint64_t a0 = __builtin_bswap64(a[0]), b0 = __builtin_bswap64(b[0]);
    if (a0 != b0) return a0 < b0 ? -1 : 1;
    const uint64_t a1 = __builtin_bswap64(a[1]), b1 = __builtin_bswap64(b[1]);
    if (a1 != b1) return a1 < b1 ? -1 : 1;
    return 0;
}

// Fills `k` from a parsed IP packet and returns the side the packet's source is on.
inline Side make_flow_key(const PacketView &v, FlowKey &k) {
    int c = addr_order(v.src, v.dst);
    bool src_is_a = c < 0 || (c == 0 && v.sport <= v.dport);
    const uint16_t vlan = v.vlan_count ? static_cast<uint16_t>(v.vlan_tci[0] & 0x0fff) : 0;
    const uint16_t pa = src_is_a ? v.sport : v.dport, pb = src_is_a ? v.dport : v.sport;
    k.a = src_is_a ? v.src : v.dst;
    k.b = src_is_a ? v.dst : v.src;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    // The last 8 bytes (ports, VLAN, protocol, family) as one store: the hash reads them as one
    // 8-byte word right away, and a load spanning five small stores is not forwarded from the
    // store buffer (it waits for them to retire).
    static_assert(offsetof(FlowKey, pa) == 32 && offsetof(FlowKey, family) == 39);
    const uint64_t tail = uint64_t(pa) | uint64_t(pb) << 16 | uint64_t(vlan) << 32 |
                          uint64_t(v.proto) << 48 | uint64_t(v.family) << 56;
    std::memcpy(reinterpret_cast<uint8_t *>(&k) + 32, &tail, 8);
#else
    k.pa = pa, k.pb = pb, k.vlan = vlan, k.proto = v.proto, k.family = v.family;
#endif
    return src_is_a ? kSideA : kSideB;
}

}  // namespace segwire::dp
