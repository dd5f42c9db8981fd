// Test-only frame writers: Ethernet (with 802.1Q/802.1ad tags), IPv4, IPv6 (with extension
// headers), TCP, UDP, ICMP/ICMPv6 and ARP. Each layer computes its own length fields from what it
// wraps unless the spec overrides them, so a test changes exactly the one field it is about.
// Checksums are left zero: the parser does not verify them.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "dataplane/packet/parse.hpp"

namespace segwire::dptest {

using Bytes = std::vector<uint8_t>;

inline void put16(Bytes &b, size_t off, uint16_t v) {
    b[off] = static_cast<uint8_t>(v >> 8);
    b[off + 1] = static_cast<uint8_t>(v);
}
inline void put32(Bytes &b, size_t off, uint32_t v) {
    put16(b, off, static_cast<uint16_t>(v >> 16));
    put16(b, off + 2, static_cast<uint16_t>(v));
}
inline void append(Bytes &b, const Bytes &tail) {
    b.insert(b.end(), tail.begin(), tail.end());
}
inline Bytes cut(Bytes b, size_t n) {
    b.resize(n);
    return b;
}
inline Bytes with_byte(Bytes b, size_t off, uint8_t v) {
    b[off] = v;
    return b;
}
inline Bytes seq_bytes(size_t n, uint8_t start = 0) {
    Bytes b(n);
    for (size_t i = 0; i < n; ++i) b[i] = static_cast<uint8_t>(start + i);
    return b;
}

// ---- L4 -------------------------------------------------------------------------------------

struct TcpSpec {
    uint16_t sport = 40000, dport = 443;
    uint32_t seq = 0x11223344, ack = 0;
    uint8_t flags = dp::kTcpSyn;
    Bytes options;  // padded with EOL (0) to a multiple of 4
    Bytes payload;
    int doff = -1;  // data offset in 32-bit words; -1 = from the options
};

inline Bytes tcp(const TcpSpec &s) {
    Bytes opt = s.options;
    while (opt.size() % 4) opt.push_back(0);
    Bytes b(20, 0);
    put16(b, 0, s.sport);
    put16(b, 2, s.dport);
    put32(b, 4, s.seq);
    put32(b, 8, s.ack);
    const int doff = s.doff >= 0 ? s.doff : static_cast<int>((20 + opt.size()) / 4);
    b[12] = static_cast<uint8_t>(doff << 4);
    b[13] = s.flags;
    put16(b, 14, 64240);  // window
    append(b, opt);
    append(b, s.payload);
    return b;
}

struct UdpSpec {
    uint16_t sport = 5353, dport = 53;
    Bytes payload;
    Bytes surplus;  // bytes after the UDP length, inside the IP payload (RFC 9868 option area)
    int len = -1;   // the UDP length field; -1 = 8 + payload
};

inline Bytes udp(const UdpSpec &s) {
    Bytes b(8, 0);
    put16(b, 0, s.sport);
    put16(b, 2, s.dport);
    put16(b, 4, static_cast<uint16_t>(s.len >= 0 ? s.len : static_cast<int>(8 + s.payload.size())));
    append(b, s.payload);
    append(b, s.surplus);
    return b;
}

// ICMP and ICMPv6 share the layout: type, code, checksum, then id/sequence for echo.
inline Bytes icmp(uint8_t type, uint8_t code, uint16_t id = 0, uint16_t seqno = 0,
                  const Bytes &payload = {}) {
    Bytes b(8, 0);
    b[0] = type;
    b[1] = code;
    put16(b, 4, id);
    put16(b, 6, seqno);
    append(b, payload);
    return b;
}

// ---- L3 -------------------------------------------------------------------------------------

using V4 = std::array<uint8_t, 4>;
using V6 = std::array<uint8_t, 16>;

inline constexpr V4 kSrc4 = {192, 0, 2, 1};
inline constexpr V4 kDst4 = {198, 51, 100, 7};
inline constexpr V6 kSrc6 = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01};
inline constexpr V6 kDst6 = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x0a, 0x02};

struct Ip4Spec {
    V4 src = kSrc4, dst = kDst4;
    uint8_t proto = dp::kProtoTcp;
    uint8_t ttl = 64;
    uint8_t version = 4;
    Bytes options;      // padded with EOL to a multiple of 4
    uint16_t frag = 0;  // flags (reserved, DF, MF) + offset in 8-byte units
    int ihl = -1;       // in 32-bit words; -1 = from the options
    int total = -1;     // total length; -1 = header + payload
};

inline constexpr uint16_t kDf = 0x4000, kMf = 0x2000, kReservedFrag = 0x8000;

inline Bytes ipv4(const Ip4Spec &s, const Bytes &payload) {
    Bytes opt = s.options;
    while (opt.size() % 4) opt.push_back(0);
    Bytes b(20, 0);
    const int ihl = s.ihl >= 0 ? s.ihl : static_cast<int>((20 + opt.size()) / 4);
    b[0] = static_cast<uint8_t>(s.version << 4 | (ihl & 0x0f));
    const int total = s.total >= 0 ? s.total : static_cast<int>(20 + opt.size() + payload.size());
    put16(b, 2, static_cast<uint16_t>(total));
    put16(b, 4, 0x1234);  // id
    put16(b, 6, s.frag);
    b[8] = s.ttl;
    b[9] = s.proto;
    for (int i = 0; i < 4; ++i) b[12 + i] = s.src[i], b[16 + i] = s.dst[i];
    append(b, opt);
    append(b, payload);
    return b;
}

inline constexpr uint8_t kHbh = 0, kRouting = 43, kFragHdr = 44, kAh = 51, kNoNext = 59,
                         kDestOpts = 60, kEsp = 50;

// One IPv6 extension header: `len` bytes in total (a multiple of 8, or of 4 for AH). The builder
// fills the next-header and length bytes; `frag` is the fragment header's offset/M field.
struct Ext {
    uint8_t type;
    size_t len = 8;
    uint16_t frag = 0;
};

struct Ip6Spec {
    V6 src = kSrc6, dst = kDst6;
    uint8_t proto = dp::kProtoTcp;  // upper layer after the extension headers
    uint8_t hlim = 64;
    uint8_t version = 6;
    std::vector<Ext> ext;
    int plen = -1;  // payload length; -1 = extension headers + payload
};

inline Bytes ipv6(const Ip6Spec &s, const Bytes &payload) {
    Bytes b(40, 0);
    b[0] = static_cast<uint8_t>(s.version << 4);
    b[6] = s.ext.empty() ? s.proto : s.ext[0].type;
    b[7] = s.hlim;
    for (int i = 0; i < 16; ++i) b[8 + i] = s.src[i], b[24 + i] = s.dst[i];
    for (size_t i = 0; i < s.ext.size(); ++i) {
        const Ext &e = s.ext[i];
        Bytes h(e.len, 0);
        h[0] = i + 1 < s.ext.size() ? s.ext[i + 1].type : s.proto;
        if (e.type == kAh)
            h[1] = static_cast<uint8_t>(e.len / 4 - 2);
        else if (e.type == kFragHdr)
            put16(h, 2, e.frag);
        else
            h[1] = static_cast<uint8_t>(e.len / 8 - 1);
        if (e.type != kAh && e.type != kFragHdr && e.len >= 4) h[2] = 1, h[3] = 0;  // PadN
        append(b, h);
    }
    append(b, payload);
    const int plen = s.plen >= 0 ? s.plen : static_cast<int>(b.size() - 40);
    put16(b, 4, static_cast<uint16_t>(plen));
    return b;
}

inline Bytes arp_body() {
    Bytes b(28, 0);
    put16(b, 0, 1);       // Ethernet
    put16(b, 2, 0x0800);  // IPv4
    b[4] = 6, b[5] = 4;
    put16(b, 6, 1);  // request
    for (int i = 0; i < 6; ++i) b[8 + i] = static_cast<uint8_t>(0x02 + i);
    for (int i = 0; i < 4; ++i) b[14 + i] = kSrc4[i], b[24 + i] = kDst4[i];
    return b;
}

// ---- L2 -------------------------------------------------------------------------------------

inline constexpr uint16_t kEthIpv4 = 0x0800, kEthIpv6 = 0x86dd, kEthArp = 0x0806,
                          kTpid8021q = 0x8100, kTpid8021ad = 0x88a8, kTpidOld = 0x9100;

struct Tag {
    uint16_t tpid;
    uint16_t tci;
};

// Ethernet header, the tags in order (outer first), the ethertype, the payload, then zero
// padding up to `pad_to` bytes (60 = minimum frame without FCS).
inline Bytes eth(uint16_t ethertype, const Bytes &payload, const std::vector<Tag> &tags = {},
                 size_t pad_to = 0) {
    Bytes b(12, 0);
    for (int i = 0; i < 6; ++i) b[i] = 0x02, b[6 + i] = 0x04;
    b[5] = 0x01, b[11] = 0x02;
    for (const Tag &t : tags) {
        b.resize(b.size() + 4);
        put16(b, b.size() - 4, t.tpid);
        put16(b, b.size() - 2, t.tci);
    }
    b.resize(b.size() + 2);
    put16(b, b.size() - 2, ethertype);
    append(b, payload);
    if (b.size() < pad_to) b.resize(pad_to, 0);
    return b;
}

// ---- common frames ---------------------------------------------------------------------------

inline Bytes v4_tcp(const TcpSpec &t = {}, Ip4Spec ip = {}) {
    ip.proto = dp::kProtoTcp;
    return eth(kEthIpv4, ipv4(ip, tcp(t)));
}
inline Bytes v6_tcp(const TcpSpec &t = {}, Ip6Spec ip = {}) {
    ip.proto = dp::kProtoTcp;
    return eth(kEthIpv6, ipv6(ip, tcp(t)));
}
inline Bytes v4_udp(const UdpSpec &u = {}, Ip4Spec ip = {}) {
    ip.proto = dp::kProtoUdp;
    return eth(kEthIpv4, ipv4(ip, udp(u)));
}
inline Bytes v6_udp(const UdpSpec &u = {}, Ip6Spec ip = {}) {
    ip.proto = dp::kProtoUdp;
    return eth(kEthIpv6, ipv6(ip, udp(u)));
}
// The options of a Linux SYN: MSS 1460, SACK-permitted, timestamps, NOP, window scale 7.
inline Bytes linux_syn_options() {
    return {2, 4, 0x05, 0xb4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7};
}

// ---- parsing --------------------------------------------------------------------------------

struct Parsed {
    dp::DropReason r;
    dp::PacketView v;
};

// Parses a copy in a heap buffer of exactly the frame's size, so AddressSanitizer reports any
// read past the end.
inline Parsed parse(const Bytes &f) {
    auto buf = std::make_unique<uint8_t[]>(f.size());
    std::copy(f.begin(), f.end(), buf.get());
    Parsed p{};
    p.r = dp::parse_packet(buf.get(), static_cast<uint32_t>(f.size()), p.v);
    return p;
}

}  // namespace segwire::dptest
