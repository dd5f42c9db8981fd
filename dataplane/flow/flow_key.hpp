// The one 5-tuple type. Canonical: side "a" is the lower (address, port), so both directions of
// a connection build the same key and find the same flow.
#pragma once

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
    if (src_is_a) {
        k.a = v.src, k.b = v.dst, k.pa = v.sport, k.pb = v.dport;
    } else {
        k.a = v.dst, k.b = v.src, k.pa = v.dport, k.pb = v.sport;
    }
    k.vlan = v.vlan_count ? static_cast<uint16_t>(v.vlan_tci[0] & 0x0fff) : 0;
    k.proto = v.proto;
    k.family = v.family;
    return src_is_a ? kSideA : kSideB;
}

}  // namespace segwire::dp
