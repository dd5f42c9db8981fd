#include "dataplane/packet/build.hpp"

#include <cstring>

#include <rte_byteorder.h>
#include <rte_ether.h>
#include <rte_ip.h>
#include <rte_mbuf.h>
#include <rte_tcp.h>
#include <rte_udp.h>

namespace segwire::dp {
namespace {

constexpr uint8_t kTtl = 64;                 // IPv4 TTL and IPv6 hop limit of our own frames
constexpr uint32_t kIpv6VtcFlow = 6u << 28;  // version 6, traffic class 0, flow label 0
constexpr uint32_t kMaxTcpOptions = 40;

// A fresh frame of `len` bytes with Ethernet, VLAN tags and the IP header written for an L4
// part of `l4_len` bytes; header bytes up to the end of the L4 header (`l4_hdr_len`) are zeroed.
// Fills the checksum layout's offsets.
rte_mbuf *start_frame(rte_mempool *pool, const Addressing &a, uint8_t proto, uint32_t l4_len,
                      uint32_t l4_hdr_len, ChecksumLayout &c) noexcept {
    const L2Header &l2 = a.l2;
    const bool v4 = a.family == 4;
    const uint32_t l3_off = sizeof(rte_ether_hdr) + l2.vlan_count * sizeof(rte_vlan_hdr);
    const uint32_t ip_len = v4 ? sizeof(rte_ipv4_hdr) : sizeof(rte_ipv6_hdr);
    const uint32_t len = l3_off + ip_len + l4_len;
    if (l2.vlan_count > kMaxVlans || len > UINT16_MAX) return nullptr;
    rte_mbuf *m = rte_pktmbuf_alloc(pool);
    if (!m) return nullptr;
    auto *f = reinterpret_cast<uint8_t *>(rte_pktmbuf_append(m, static_cast<uint16_t>(len)));
    if (!f) {
        rte_pktmbuf_free(m);
        return nullptr;
    }
    std::memset(f, 0, l3_off + ip_len + l4_hdr_len);

    auto *eth = reinterpret_cast<rte_ether_hdr *>(f);
    eth->dst_addr = l2.dst;
    eth->src_addr = l2.src;
    // Each type field names what follows it: the next tag's TPID, after the last tag the IP type.
    const uint16_t ip_type = v4 ? RTE_ETHER_TYPE_IPV4 : RTE_ETHER_TYPE_IPV6;
    eth->ether_type = rte_cpu_to_be_16(l2.vlan_count ? l2.vlan[0].tpid : ip_type);
    auto *tags = reinterpret_cast<rte_vlan_hdr *>(eth + 1);
    for (uint8_t i = 0; i < l2.vlan_count; ++i) {
        tags[i].vlan_tci = rte_cpu_to_be_16(l2.vlan[i].tci);
        tags[i].eth_proto = rte_cpu_to_be_16(i + 1 < l2.vlan_count ? l2.vlan[i + 1].tpid : ip_type);
    }

    if (v4) {
        auto *ip = reinterpret_cast<rte_ipv4_hdr *>(f + l3_off);
        ip->version_ihl = RTE_IPV4_VHL_DEF;
        ip->total_length = rte_cpu_to_be_16(static_cast<uint16_t>(ip_len + l4_len));
        ip->fragment_offset = rte_cpu_to_be_16(RTE_IPV4_HDR_DF_FLAG);
        ip->time_to_live = kTtl;
        ip->next_proto_id = proto;
        std::memcpy(&ip->src_addr, a.src.b, sizeof ip->src_addr);
        std::memcpy(&ip->dst_addr, a.dst.b, sizeof ip->dst_addr);
    } else {
        auto *ip = reinterpret_cast<rte_ipv6_hdr *>(f + l3_off);
        ip->vtc_flow = rte_cpu_to_be_32(kIpv6VtcFlow);
        ip->payload_len = rte_cpu_to_be_16(static_cast<uint16_t>(l4_len));
        ip->proto = proto;
        ip->hop_limits = kTtl;
        std::memcpy(ip->src_addr, a.src.b, sizeof ip->src_addr);
        std::memcpy(ip->dst_addr, a.dst.b, sizeof ip->dst_addr);
    }
    c.family = a.family;
    c.proto = proto;
    c.l3_off = static_cast<uint16_t>(l3_off);
    c.l4_off = static_cast<uint16_t>(l3_off + ip_len);
    c.ip_end = len;
    return m;
}

}  // namespace

Addressing addressing_of(const rte_mbuf *m, const PacketView &v, bool to_source) noexcept {
    Addressing a;
    const auto *eth = rte_pktmbuf_mtod(m, const rte_ether_hdr *);
    a.l2.dst = to_source ? eth->src_addr : eth->dst_addr;
    a.l2.src = to_source ? eth->dst_addr : eth->src_addr;
    // A tag's TPID is the type field in front of it: the Ethernet header's, then the tag before.
    const auto *tags = reinterpret_cast<const rte_vlan_hdr *>(eth + 1);
    a.l2.vlan_count = v.vlan_count;
    for (uint8_t i = 0; i < v.vlan_count; ++i) {
        a.l2.vlan[i].tpid = rte_be_to_cpu_16(i == 0 ? eth->ether_type : tags[i - 1].eth_proto);
        a.l2.vlan[i].tci = v.vlan_tci[i];
    }
    a.family = v.family;
    a.src = to_source ? v.dst : v.src;
    a.dst = to_source ? v.src : v.dst;
    a.sport = to_source ? v.dport : v.sport;
    a.dport = to_source ? v.sport : v.dport;
    return a;
}

Addressing addressing_of(const FlowKey &key, const uint8_t (&mac)[2][6], uint8_t to_side) noexcept {
    const uint8_t from_side = to_side ^ 1;
    Addressing a;
    std::memcpy(a.l2.dst.addr_bytes, mac[to_side], RTE_ETHER_ADDR_LEN);
    std::memcpy(a.l2.src.addr_bytes, mac[from_side], RTE_ETHER_ADDR_LEN);
    a.family = key.family;
    a.src = from_side == kSideA ? key.a : key.b;
    a.dst = to_side == kSideA ? key.a : key.b;
    a.sport = from_side == kSideA ? key.pa : key.pb;
    a.dport = to_side == kSideA ? key.pa : key.pb;
    return a;
}

rte_mbuf *build_tcp(rte_mempool *pool, const Addressing &a, const TcpSegment &s,
                    const TxChecksum &tx) noexcept {
    if (s.options.size() % 4 || s.options.size() > kMaxTcpOptions) return nullptr;
    const uint32_t tcp_len = sizeof(rte_tcp_hdr) + static_cast<uint32_t>(s.options.size());
    const uint32_t seg_len = tcp_len + static_cast<uint32_t>(s.payload.size());
    ChecksumLayout c;
    rte_mbuf *m = start_frame(pool, a, kProtoTcp, seg_len, sizeof(rte_tcp_hdr), c);
    if (!m) return nullptr;
    auto *t = rte_pktmbuf_mtod_offset(m, rte_tcp_hdr *, c.l4_off);
    t->src_port = rte_cpu_to_be_16(a.sport);
    t->dst_port = rte_cpu_to_be_16(a.dport);
    t->sent_seq = rte_cpu_to_be_32(s.seq);
    t->recv_ack = rte_cpu_to_be_32(s.flags & kTcpAck ? s.ack : 0);
    t->data_off = static_cast<uint8_t>(tcp_len / 4 << 4);  // header length in 32-bit words
    t->tcp_flags = s.flags;
    t->rx_win = rte_cpu_to_be_16(s.window);
    if (!s.options.empty()) std::memcpy(t + 1, s.options.data(), s.options.size());
    if (!s.payload.empty())
        std::memcpy(reinterpret_cast<uint8_t *>(t) + tcp_len, s.payload.data(), s.payload.size());
    c.l4_len = seg_len;
    set_checksums(m, c, tx);
    return m;
}

rte_mbuf *build_udp(rte_mempool *pool, const Addressing &a, std::span<const uint8_t> payload,
                    std::span<const uint8_t> surplus, const TxChecksum &tx) noexcept {
    const uint32_t udp_len = sizeof(rte_udp_hdr) + static_cast<uint32_t>(payload.size());
    if (udp_len > UINT16_MAX) return nullptr;
    ChecksumLayout c;
    rte_mbuf *m = start_frame(pool, a, kProtoUdp, udp_len + static_cast<uint32_t>(surplus.size()),
                              sizeof(rte_udp_hdr), c);
    if (!m) return nullptr;
    auto *u = rte_pktmbuf_mtod_offset(m, rte_udp_hdr *, c.l4_off);
    u->src_port = rte_cpu_to_be_16(a.sport);
    u->dst_port = rte_cpu_to_be_16(a.dport);
    u->dgram_len = rte_cpu_to_be_16(static_cast<uint16_t>(udp_len));
    auto *body = reinterpret_cast<uint8_t *>(u + 1);
    if (!payload.empty()) std::memcpy(body, payload.data(), payload.size());
    if (!surplus.empty()) std::memcpy(body + payload.size(), surplus.data(), surplus.size());
    c.l4_len = udp_len;  // the surplus is outside the UDP checksum (RFC 9868)
    set_checksums(m, c, tx);
    return m;
}

}  // namespace segwire::dp
