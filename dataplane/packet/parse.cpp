#include "dataplane/packet/parse.hpp"

#include <initializer_list>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "crypto/bytes.hpp"
#include "crypto/tcp_options.hpp"

namespace segwire::dp {
namespace {

constexpr uint16_t kEthIpv4 = 0x0800;
constexpr uint16_t kEthIpv6 = 0x86dd;
constexpr uint16_t kEthArp = 0x0806;
constexpr uint16_t kEthVlan = 0x8100;
constexpr uint16_t kEthQinq = 0x88a8;
constexpr uint16_t kEthQinqOld = 0x9100;
constexpr uint32_t kMaxExtHeaders = 8;

using crypto::load_be16;
using crypto::load_be32;

// Stores an IPv4 address as the 16-byte IpAddr with one 16-byte store: the flow key is loaded
// from the view right after parsing, and a load spanning several smaller stores (the view's
// zeroing, the 4 address bytes) cannot be forwarded from the store buffer - it waits until they
// retire, which cost ~10% of the established-flow path.
inline void put_v4_addr(IpAddr &out, const uint8_t *p) {
#if defined(__SSE2__)
    uint32_t w;
    std::memcpy(&w, p, 4);
    _mm_storeu_si128(reinterpret_cast<__m128i *>(out.b), _mm_cvtsi32_si128(static_cast<int>(w)));
#else
    IpAddr a{};
    std::memcpy(a.b, p, 4);
    out = a;
#endif
}

// Reads the TCP options later stages care about from the options area [off, end) of the frame.
// Lengths that disagree with the kind's definition are refused because later stages rewrite
// options in place.
DropReason read_tcp_options(const uint8_t *d, uint32_t off, uint32_t end, TcpOptions &o) {
    const uint8_t *area = d + off;
    const auto walk =
        crypto::walk_tcp_options({area, end - off}, [&](size_t i, uint8_t kind, uint8_t len) {
            const uint8_t *p = area + i;
            switch (kind) {
                case crypto::kTcpOptMss:
                    if (len != 4) return false;
                    o.mss = load_be16(p + 2);
                    return true;
                case crypto::kTcpOptWscale:
                    if (len != 3) return false;
                    o.wscale = p[2];
                    return true;
                case crypto::kTcpOptSackOk:
                    if (len != 2) return false;
                    o.sack_ok = true;
                    return true;
                case crypto::kTcpOptSack:
                    return len >= 10 && (len - 2) % 8 == 0;
                case crypto::kTcpOptTimestamps:
                    if (len != 10) return false;
                    o.timestamps = true;
                    return true;
                case crypto::kTcpOptFastOpen:  // cookie request (2) or a cookie of 4..16 bytes
                    if (len != 2 && (len < 6 || len > 18)) return false;
                    o.tfo = true;
                    return true;
                case crypto::kTcpOptExp1:
                case crypto::kTcpOptExp2:  // RFC 6994: kind, len, ExID(16) [, data]
                    if (len < 4) return false;
                    if (kind == crypto::kTcpOptExp2 && load_be16(p + 2) == crypto::kTfoExId) {
                        o.tfo = true;  // Linux's pre-RFC Fast Open form
                    } else if (o.exp_off == 0) {
                        o.exp_off = static_cast<uint16_t>(off + i);
                        o.exp_len = len;
                    }
                    return true;
                default:
                    return true;
            }
        });
    return walk.ok ? DropReason::None : DropReason::TcpBadOption;
}

DropReason parse_l4(const uint8_t *d, PacketView &v) {
    const uint32_t l4 = v.l4_off;
    const uint32_t end = v.ip_end;
    // A first fragment's L4 header must be complete (tiny-fragment attacks hide ports otherwise).
    switch (v.proto) {
        case kProtoTcp: {
            if (l4 + 20 > end) return DropReason::TcpTruncated;
            const uint8_t *t = d + l4;
            v.sport = load_be16(t);
            v.dport = load_be16(t + 2);
            v.seq = load_be32(t + 4);
            v.ack = load_be32(t + 8);
            uint32_t hl = (t[12] >> 4) * 4u;
            if (hl < 20) return DropReason::TcpBadDataOffset;
            if (l4 + hl > end) return DropReason::TcpBadDataOffset;
            v.tcp_hdr_len = static_cast<uint16_t>(hl);
            v.tcp_flags = t[13] & 0x3f;
            const uint8_t f = v.tcp_flags;
            if ((f & kTcpSyn) && (f & (kTcpFin | kTcpRst))) return DropReason::TcpBadFlags;
            if (f == 0) return DropReason::TcpBadFlags;
            DropReason r = read_tcp_options(d, l4 + 20, l4 + hl, v.opt);
            if (r != DropReason::None) return r;
            v.payload_off = static_cast<uint16_t>(l4 + hl);
            v.payload_len = end - (l4 + hl);
            return DropReason::None;
        }
        case kProtoUdp: {
            if (l4 + 8 > end) return DropReason::UdpTruncated;
            const uint8_t *u = d + l4;
            v.sport = load_be16(u);
            v.dport = load_be16(u + 2);
            v.udp_len = load_be16(u + 4);
            if (v.udp_len < 8) return DropReason::UdpBadLength;
            // The UDP length may be shorter than the IP payload: RFC 9868 surplus area (options).
            // In a fragmented datagram only the first piece is here, so the length can't be
            // checked.
            if (!v.fragment && l4 + v.udp_len > end) return DropReason::UdpBadLength;
            v.payload_off = static_cast<uint16_t>(l4 + 8);
            uint32_t udp_end = v.fragment ? end : l4 + v.udp_len;
            v.payload_len = udp_end - (l4 + 8);
            return DropReason::None;
        }
        case kProtoIcmp:
        case kProtoIcmp6: {
            if (l4 + 4 > end) return DropReason::IcmpTruncated;
            v.icmp_type = d[l4];
            v.icmp_code = d[l4 + 1];
            bool echo = v.proto == kProtoIcmp ? (v.icmp_type == 8 || v.icmp_type == 0)
                                              : (v.icmp_type == 128 || v.icmp_type == 129);
            if (echo) {
                if (l4 + 8 > end) return DropReason::IcmpTruncated;
                v.sport = v.dport = load_be16(d + l4 + 4);
            }
            v.payload_off = static_cast<uint16_t>(l4 + 4);
            v.payload_len = end - (l4 + 4);
            return DropReason::None;
        }
        default:
            v.l4_off = 0;  // opaque upper layer (ESP, GRE, SCTP, ...): forwarded by address only
            return DropReason::None;
    }
}

DropReason parse_ipv4(const uint8_t *d, uint32_t len, PacketView &v) {
    const uint32_t l3 = v.l3_off;
    if (l3 + 20 > len) return DropReason::Ipv4Truncated;
    const uint8_t *ip = d + l3;
    if ((ip[0] >> 4) != 4) return DropReason::Ipv4BadVersion;
    uint32_t ihl = (ip[0] & 0x0f) * 4u;
    if (ihl < 20 || l3 + ihl > len) return DropReason::Ipv4BadIhl;
    uint32_t total = load_be16(ip + 2);
    if (total < ihl || l3 + total > len) return DropReason::Ipv4BadTotalLength;
    // Options: EOL ends the list, NOP is one byte, everything else is kind,len>=2,data.
    for (uint32_t o = 20; o < ihl;) {
        uint8_t kind = ip[o];
        if (kind == 0) break;
        if (kind == 1) {
            ++o;
            continue;
        }
        if (o + 2 > ihl) return DropReason::Ipv4BadOptions;
        uint8_t olen = ip[o + 1];
        if (olen < 2 || o + olen > ihl) return DropReason::Ipv4BadOptions;
        o += olen;
    }
    uint16_t frag = load_be16(ip + 6);
    uint32_t frag_off = (frag & 0x1fff) * 8u;
    bool more = frag & 0x2000;
    if (frag & 0x8000) return DropReason::Ipv4BadFragment;  // reserved bit (RFC 791)
    if (frag_off + (total - ihl) > 65535) return DropReason::Ipv4BadFragment;
    v.family = 4;
    v.l3 = L3::Ipv4;
    v.ip_end = l3 + total;
    v.ttl = ip[8];
    v.proto = ip[9];
    put_v4_addr(v.src, ip + 12);
    put_v4_addr(v.dst, ip + 16);
    v.fragment = more || frag_off != 0;
    v.first_fragment = v.fragment && frag_off == 0;
    if (frag_off != 0) return DropReason::None;  // no L4 header in later fragments
    v.l4_off = static_cast<uint16_t>(l3 + ihl);
    return parse_l4(d, v);
}

DropReason parse_ipv6(const uint8_t *d, uint32_t len, PacketView &v) {
    const uint32_t l3 = v.l3_off;
    if (l3 + 40 > len) return DropReason::Ipv6Truncated;
    const uint8_t *ip = d + l3;
    if ((ip[0] >> 4) != 6) return DropReason::Ipv6BadVersion;
    uint32_t plen = load_be16(ip + 4);
    // Jumbograms (payload length 0 + hop-by-hop option) are not supported on any port we drive.
    if (plen == 0 && ip[6] != 59) return DropReason::Ipv6BadPayloadLength;
    if (l3 + 40 + plen > len) return DropReason::Ipv6BadPayloadLength;
    v.family = 6;
    v.l3 = L3::Ipv6;
    v.ip_end = l3 + 40 + plen;
    v.ttl = ip[7];
    std::memcpy(v.src.b, ip + 8, 16);
    std::memcpy(v.dst.b, ip + 24, 16);

    uint8_t nh = ip[6];
    uint32_t off = l3 + 40;
    for (uint32_t n = 0;; ++n) {
        switch (nh) {
            case 0:      // hop-by-hop
            case 43:     // routing
            case 60:     // destination options
            case 135:    // mobility
            case 139:    // HIP
            case 140: {  // shim6
                if (n >= kMaxExtHeaders) return DropReason::Ipv6TooManyExtHeaders;
                if (nh == 0 && n != 0) return DropReason::Ipv6BadExtHeader;  // HBH must be first
                if (off + 8 > v.ip_end) return DropReason::Ipv6BadExtHeader;
                uint32_t hl = (d[off + 1] + 1u) * 8u;
                if (off + hl > v.ip_end) return DropReason::Ipv6BadExtHeader;
                nh = d[off];
                off += hl;
                continue;
            }
            case 51: {  // AH: length in 4-byte units minus 2
                if (n >= kMaxExtHeaders) return DropReason::Ipv6TooManyExtHeaders;
                if (off + 8 > v.ip_end) return DropReason::Ipv6BadExtHeader;
                uint32_t hl = (d[off + 1] + 2u) * 4u;
                if (off + hl > v.ip_end) return DropReason::Ipv6BadExtHeader;
                nh = d[off];
                off += hl;
                continue;
            }
            case 44: {  // fragment
                if (n >= kMaxExtHeaders) return DropReason::Ipv6TooManyExtHeaders;
                if (off + 8 > v.ip_end) return DropReason::Ipv6BadExtHeader;
                uint16_t fo = load_be16(d + off + 2);
                uint32_t frag_off = (fo >> 3) * 8u;
                bool more = fo & 1;
                v.fragment = true;
                v.first_fragment = frag_off == 0;
                if (!more && frag_off == 0) v.fragment = v.first_fragment = false;  // atomic
                nh = d[off];
                off += 8;
                if (frag_off != 0) {
                    v.proto = nh;
                    return DropReason::None;
                }
                continue;
            }
            default:
                break;
        }
        break;
    }
    v.proto = nh;
    if (nh == 59) return DropReason::None;  // no next header
    v.l4_off = static_cast<uint16_t>(off);
    return parse_l4(d, v);
}

}  // namespace

const char *drop_reason_name(DropReason r) {
    static const char *const names[] = {
#define X(name, text) text,
        SEGWIRE_DROP_REASONS(X)
#undef X
    };
    auto i = static_cast<size_t>(r);
    return i < kDropReasonCount ? names[i] : "unknown";
}

namespace {
// A drop reason's name with '-' as '_', made at compile time from the same table.
struct CounterName {
    char s[32]{};
    constexpr explicit CounterName(const char *t) {
        for (size_t i = 0; t[i] && i < sizeof(s) - 1; ++i) s[i] = t[i] == '-' ? '_' : t[i];
    }
};
constexpr bool names_fit() {
    for (const char *t : {
#define X(name, text) text,
             SEGWIRE_DROP_REASONS(X)
#undef X
         }) {
        size_t n = 0;
        while (t[n]) ++n;
        if (n >= sizeof(CounterName::s)) return false;
    }
    return true;
}
static_assert(names_fit(), "a drop reason name is longer than 31 characters");
constexpr CounterName kCounterNames[] = {
#define X(name, text) CounterName(text),
    SEGWIRE_DROP_REASONS(X)
#undef X
};
static_assert(sizeof(kCounterNames) / sizeof(kCounterNames[0]) == kDropReasonCount);
}  // namespace

const char *drop_reason_counter_name(DropReason r) {
    auto i = static_cast<size_t>(r);
    return i < kDropReasonCount ? kCounterNames[i].s : "unknown";
}

DropReason parse_packet(const uint8_t *d, uint32_t len, PacketView &v) {
    // The shortcut checks exactly what parse_packet_generic() checks on this path (Ethernet type,
    // version/IHL, total length, reserved and fragment bits, TCP data offset and flags, the one
    // option layout) and falls back to it for anything else, including every malformed frame.
    if (len >= 54 && d[12] == 0x08 && d[13] == 0x00 && d[14] == 0x45 && d[23] == kProtoTcp) {
        const uint8_t *ip = d + 14;
        const uint32_t total = load_be16(ip + 2);
        const uint8_t *t = ip + 20;
        const uint32_t hl = (t[12] >> 4) * 4u;
        const uint8_t flags = t[13] & 0x3f;
        // Fragment field: only DF may be set (no reserved bit, no MF, offset 0).
        const bool plain = (load_be16(ip + 6) & 0xbfff) == 0;
        const bool flags_ok = flags != 0 && !((flags & kTcpSyn) && (flags & (kTcpFin | kTcpRst)));
        // The lengths first: the option bytes are read only once they are known to be there.
        if (plain && flags_ok && (hl == 20 || hl == 32) && total >= 20 + hl && 14 + total <= len &&
            (hl == 20 || load_be32(t + 20) == 0x0101080au)) {
            v = PacketView{};
            v.frame_len = len;
            v.ethertype = 0x0800;
            v.l3_off = 14;
            v.family = 4;
            v.l3 = L3::Ipv4;
            v.ip_end = 14 + total;
            v.ttl = ip[8];
            v.proto = kProtoTcp;
            put_v4_addr(v.src, ip + 12);
            put_v4_addr(v.dst, ip + 16);
            v.l4_off = 34;
            v.sport = load_be16(t);
            v.dport = load_be16(t + 2);
            v.seq = load_be32(t + 4);
            v.ack = load_be32(t + 8);
            v.tcp_hdr_len = static_cast<uint16_t>(hl);
            v.tcp_flags = flags;
            v.opt.timestamps = hl == 32;
            v.payload_off = static_cast<uint16_t>(34 + hl);
            v.payload_len = total - 20 - hl;
            return DropReason::None;
        }
    }
    return parse_packet_generic(d, len, v);
}

DropReason parse_packet_generic(const uint8_t *d, uint32_t len, PacketView &v) {
    v = PacketView{};
    v.frame_len = len;
    if (len < 14) return DropReason::L2Truncated;
    uint32_t off = 12;
    uint16_t et = load_be16(d + off);
    while (et == kEthVlan || et == kEthQinq || et == kEthQinqOld) {
        if (v.vlan_count == kMaxVlans) return DropReason::VlanTooDeep;
        if (off + 6 > len) return DropReason::VlanTruncated;
        v.vlan_tci[v.vlan_count++] = load_be16(d + off + 2);
        off += 4;
        et = load_be16(d + off);
    }
    v.ethertype = et;
    v.l3_off = static_cast<uint16_t>(off + 2);
    switch (et) {
        case kEthIpv4:
            return parse_ipv4(d, len, v);
        case kEthIpv6:
            return parse_ipv6(d, len, v);
        case kEthArp:
            if (v.l3_off + 28u > len) return DropReason::ArpTruncated;
            v.l3 = L3::Arp;
            return DropReason::None;
        default:
            v.l3 = L3::Other;  // LLDP, STP, ...: forwarded untouched in bump-in-the-wire mode
            return DropReason::None;
    }
}

}  // namespace segwire::dp
