#include "dataplane/packet/checksum.hpp"

#include <cstddef>
#include <cstring>

#include <rte_byteorder.h>
#include <rte_ip.h>
#include <rte_mbuf.h>
#include <rte_tcp.h>
#include <rte_udp.h>

namespace segwire::dp {
namespace {

inline uint16_t fold(uint32_t s) noexcept {
    s = (s & 0xffff) + (s >> 16);
    s = (s & 0xffff) + (s >> 16);
    return static_cast<uint16_t>(s);
}

// Pseudo-header sum (not complemented, in rte_raw_cksum's byte order) for an L4 checksum over
// c.l4_len bytes. DPDK's rte_ipv4_phdr_cksum / rte_ipv6_phdr_cksum take the L4 length from the
// IP header, which is wrong after IPv6 extension headers and for a UDP datagram with an RFC 9868
// surplus, so the sum is made here from the header's own address fields and an explicit length.
uint16_t pseudo_sum(const uint8_t *ip, const ChecksumLayout &c) noexcept {
    // The addresses stand next to each other in both headers (8 bytes, IPv6: 32). Protocol and
    // length are big-endian 16-bit words of the pseudo-header in both families (the IPv6 length's
    // upper half is zero: no jumbograms), so they are added the same way.
    const uint32_t addrs = c.family == 4
                               ? rte_raw_cksum(ip + offsetof(rte_ipv4_hdr, src_addr), 2 * 4)
                               : rte_raw_cksum(ip + offsetof(rte_ipv6_hdr, src_addr), 2 * 16);
    return fold(addrs + rte_cpu_to_be_16(c.proto) +
                rte_cpu_to_be_16(static_cast<uint16_t>(c.l4_len)));
}

inline uint32_t checksum_field(uint8_t proto) noexcept {
    return proto == kProtoTcp ? offsetof(rte_tcp_hdr, cksum) : offsetof(rte_udp_hdr, dgram_cksum);
}

// The complemented L4 checksum, with the checksum field counted as zero (its current value is
// subtracted back out of the sum, so the caller need not clear it first).
uint16_t l4_sum(const uint8_t *f, const ChecksumLayout &c) noexcept {
    const uint8_t *l4 = f + c.l4_off;
    uint16_t current;
    std::memcpy(&current, l4 + checksum_field(c.proto), 2);
    const uint32_t s =
        pseudo_sum(f + c.l3_off, c) + rte_raw_cksum(l4, c.l4_len) + static_cast<uint16_t>(~current);
    const uint16_t sum = static_cast<uint16_t>(~fold(s));
    return c.proto == kProtoUdp && sum == 0 ? 0xffff : sum;  // UDP: 0 means "no checksum"
}

}  // namespace

ChecksumLayout checksum_layout(const PacketView &v) noexcept {
    ChecksumLayout c;
    c.family = v.family;
    c.proto = v.proto;
    c.l3_off = v.l3_off;
    c.l4_off = v.l4_off;
    c.ip_end = v.ip_end;
    c.l4_len = v.proto == kProtoUdp && !v.fragment ? v.udp_len : v.ip_end - v.l4_off;
    return c;
}

uint16_t l4_checksum(const uint8_t *frame, const PacketView &v) noexcept {
    return l4_sum(frame, checksum_layout(v));
}

void set_checksums(rte_mbuf *m, const ChecksumLayout &c, const TxChecksum &tx) noexcept {
    uint8_t *f = rte_pktmbuf_mtod(m, uint8_t *);
    const bool tcp = c.proto == kProtoTcp;
    const bool has_l4 = c.l4_off != 0 && (tcp || c.proto == kProtoUdp);
    const bool offload_ip = c.family == 4 && tx.ipv4_offload;
    const bool offload_l4 =
        has_l4 && (tcp ? tx.tcp_offload : tx.udp_offload) && c.l4_off + c.l4_len == c.ip_end;
    if (offload_ip || offload_l4) {
        // What the NIC needs to find the headers (rte_mbuf's tx offload contract).
        m->l2_len = c.l3_off;
        m->l3_len = (c.l4_off ? c.l4_off : c.ip_end) - c.l3_off;
        m->ol_flags |= c.family == 4 ? RTE_MBUF_F_TX_IPV4 : RTE_MBUF_F_TX_IPV6;
    }
    if (c.family == 4) {
        auto *ip = reinterpret_cast<rte_ipv4_hdr *>(f + c.l3_off);
        ip->hdr_checksum = 0;
        if (offload_ip)
            m->ol_flags |= RTE_MBUF_F_TX_IP_CKSUM;
        else
            ip->hdr_checksum = rte_ipv4_cksum(ip);
    }
    if (!has_l4) return;
    uint16_t value;
    if (offload_l4) {
        // The NIC adds the payload's sum to the pseudo-header sum left in the field.
        m->ol_flags |= tcp ? RTE_MBUF_F_TX_TCP_CKSUM : RTE_MBUF_F_TX_UDP_CKSUM;
        value = pseudo_sum(f + c.l3_off, c);
    } else {
        value = l4_sum(f, c);
    }
    std::memcpy(f + c.l4_off + checksum_field(c.proto), &value, 2);
}

}  // namespace segwire::dp
