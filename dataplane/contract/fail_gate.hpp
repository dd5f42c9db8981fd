// Contract: the fail gate (FailGate): what a worker does with a packet while no policy state is
// published (first boot, the Console not answering, no usable fail-static cache).
// Written by: the main lcore before the workers are launched (control/main.cpp, from
// identity.fail_mode and identity.fail_closed_networks); never changed afterwards.
// Read by: every worker lcore (WorkerSetup::fail_gate), per packet, only while no policy state is
// published; once one is, the worker never looks at it again (the identity stage decides).
// Null in WorkerSetup: fail open (today's behaviour: forward untouched).
#pragma once

#include <cstdint>
#include <cstring>
#include <vector>

#include "dataplane/packet/parse.hpp"

namespace segwire::dp {

struct FailGate {
    struct Net {
        uint8_t family;  // 4 or 6
        uint8_t len;     // prefix length
        uint8_t addr[16];
    };
    // identity.fail_closed_networks: "managed" before any profile is known.
    std::vector<Net> nets;

    // Link-scope traffic no policy ever decides and that hosts need to find each other: IPv4
    // link-local (169.254/16) either way, limited broadcast and 224.0.0.0/24 as destination;
    // IPv6 link-local (fe80::/10) either way, ff02::/16 as destination, and Neighbor Discovery
    // (ICMPv6 133-137: a Neighbor Advertisement goes to a global address). ARP is not IP and never
    // reaches the gate.
    static bool link_scope(const PacketView &v) noexcept {
        const uint8_t *s = v.src.b, *d = v.dst.b;
        if (v.family == 4)
            return (s[0] == 169 && s[1] == 254) || (d[0] == 169 && d[1] == 254) ||
                   (d[0] == 255 && d[1] == 255 && d[2] == 255 && d[3] == 255) ||
                   (d[0] == 224 && d[1] == 0 && d[2] == 0);
        return (s[0] == 0xfe && (s[1] & 0xc0) == 0x80) || (d[0] == 0xfe && (d[1] & 0xc0) == 0x80) ||
               (d[0] == 0xff && d[1] == 0x02) ||
               (v.proto == kProtoIcmp6 && v.icmp_type >= 133 && v.icmp_type <= 137);
    }

    static bool in(const Net &n, const IpAddr &a) noexcept {
        const uint8_t full = n.len / 8, rest = n.len % 8;
        if (std::memcmp(n.addr, a.b, full) != 0) return false;
        if (!rest) return true;
        const uint8_t mask = static_cast<uint8_t>(0xff << (8 - rest));
        return (n.addr[full] & mask) == (a.b[full] & mask);
    }

    // An IP packet to refuse while no policy is in force: managed and not link-scope.
    bool refuses(const PacketView &v) const noexcept {
        if (link_scope(v)) return false;
        for (const Net &n : nets)
            if (n.family == v.family && (in(n, v.src) || in(n, v.dst))) return true;
        return false;
    }
};

}  // namespace segwire::dp
