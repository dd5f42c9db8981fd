// Consistency checks on a PacketView that parse_packet() accepted, shared by the parser fuzz
// target (which traps on a violation) and the parser unit tests (which assert no violation).
// Besides comparing offsets, it reads every byte the view points at, so under AddressSanitizer an
// offset past the frame is reported even where the arithmetic below would miss it.
#pragma once

#include <cstdint>

#include "dataplane/packet/parse.hpp"

namespace segwire::dptest {

// Returns nullptr when `v` (parsed from data[0..len)) is consistent, else what is wrong.
inline const char *check_view(const uint8_t *data, uint32_t len, const dp::PacketView &v) {
    using namespace segwire::dp;
    volatile uint8_t sink = 0;
    auto touch = [&](uint32_t from, uint32_t to) {
        for (uint32_t i = from; i < to; ++i) sink = sink + data[i];
    };
    if (v.frame_len != len) return "frame_len differs from the frame";
    if (v.vlan_count > kMaxVlans) return "vlan_count above kMaxVlans";
    if (v.l3_off < 14u + 4u * v.vlan_count || v.l3_off > len) return "l3_off out of the frame";
    touch(0, v.l3_off);
    if (v.l3 == L3::Arp) {
        if (v.is_ip() || v.has_l4()) return "ARP with IP fields";
        if (v.l3_off + 28u > len) return "ARP body past the frame";
        touch(v.l3_off, v.l3_off + 28u);
        return nullptr;
    }
    if (!v.is_ip()) {
        if (v.l3 != L3::Other || v.has_l4()) return "non-IP frame with L3/L4 fields";
        return nullptr;
    }
    if (v.family == 4 ? v.l3 != L3::Ipv4 : v.family == 6 ? v.l3 != L3::Ipv6 : true)
        return "family and l3 disagree";
    const uint32_t ip_hdr = v.family == 4 ? 20 : 40;
    if (v.l3_off + ip_hdr > v.ip_end) return "ip_end inside the fixed IP header";
    if (v.ip_end > len) return "ip_end past the frame";
    touch(v.l3_off, v.ip_end);
    if (v.first_fragment && !v.fragment) return "first_fragment without fragment";
    if (!v.has_l4()) {
        if (v.payload_off != 0 || v.payload_len != 0) return "payload without an L4 header";
        return nullptr;
    }
    if (v.fragment && !v.first_fragment) return "L4 header in a non-first fragment";
    if (v.l4_off < v.l3_off + ip_hdr || v.l4_off > v.ip_end) return "l4_off outside the datagram";
    if (v.payload_off < v.l4_off || v.payload_off > v.ip_end) return "payload_off outside L4";
    if (v.payload_off + uint64_t(v.payload_len) > v.ip_end) return "payload past ip_end";
    touch(v.payload_off, v.payload_off + v.payload_len);
    switch (v.proto) {
        case kProtoTcp: {
            if (v.tcp_hdr_len < 20 || v.tcp_hdr_len > 60) return "tcp_hdr_len out of 20..60";
            if (v.payload_off != v.l4_off + v.tcp_hdr_len) return "TCP payload_off != l4+hdr";
            if (v.payload_off + v.payload_len != v.ip_end) return "TCP payload short of ip_end";
            const uint8_t f = v.tcp_flags;
            if (f == 0 || ((f & kTcpSyn) && (f & (kTcpFin | kTcpRst)))) return "bad TCP flags";
            if (v.opt.exp_off != 0) {
                if (v.opt.exp_off < v.l4_off + 20u || v.opt.exp_len < 4 ||
                    v.opt.exp_off + uint32_t(v.opt.exp_len) > v.payload_off)
                    return "experimental option outside the TCP options";
                touch(v.opt.exp_off, v.opt.exp_off + v.opt.exp_len);
                if (data[v.opt.exp_off] != 253 && data[v.opt.exp_off] != 254)
                    return "exp_off does not point at kind 253/254";
                if (data[v.opt.exp_off + 1] != v.opt.exp_len) return "exp_len != option length";
            }
            return nullptr;
        }
        case kProtoUdp:
            if (v.udp_len < 8) return "UDP length below 8";
            if (v.payload_off != v.l4_off + 8) return "UDP payload_off != l4+8";
            if (!v.fragment && v.payload_len != v.udp_len - 8u) return "UDP payload != length-8";
            if (!v.fragment && v.l4_off + uint32_t(v.udp_len) > v.ip_end)
                return "UDP length past ip_end";
            return nullptr;
        case kProtoIcmp:
        case kProtoIcmp6:
            if (v.payload_off != v.l4_off + 4) return "ICMP payload_off != l4+4";
            if (v.payload_off + v.payload_len != v.ip_end) return "ICMP payload short of ip_end";
            return nullptr;
        default:
            return "L4 header for a protocol the parser does not read";
    }
}

}  // namespace segwire::dptest
