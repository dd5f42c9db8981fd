// The one packet builder: every frame segwire originates (RSTs, B's confirmation of the ACK
// proof, UDP control datagrams, any later injected segment) is written here as Ethernet (+ VLAN
// tags) + IPv4/IPv6 + TCP/UDP on DPDK's header structs into a fresh mbuf, with checksums from the
// one checksum helper (software, or NIC offload per TxChecksum). noexcept; no allocation but the
// mbuf taken from the pool it is given.
#pragma once

#include <cstdint>
#include <span>

#include <rte_ether.h>

#include "dataplane/flow/flow_key.hpp"
#include "dataplane/packet/checksum.hpp"
#include "dataplane/packet/parse.hpp"

struct rte_mbuf;
struct rte_mempool;

namespace segwire::dp {

// Ethernet header of a built frame. VLAN tags are written outer first with their TPID (0x8100,
// 0x88a8, ...) and TCI, host order; the ethertype after them follows the IP family.
struct L2Header {
    rte_ether_addr dst{}, src{};
    uint8_t vlan_count = 0;
    struct VlanTag {
        uint16_t tpid, tci;
    } vlan[kMaxVlans]{};
};

// Where a built packet goes, from its sender's point of view.
struct Addressing {
    L2Header l2;
    uint8_t family = 4;  // 4 or 6
    IpAddr src{}, dst{};
    uint16_t sport = 0, dport = 0;  // host order
};

// Addressing from the packet `v` (in `m`) of the flow: back to its sender when `to_source`
// (MACs, addresses and ports mirrored), else on to its destination as it was addressed. Its VLAN
// tags are kept either way.
Addressing addressing_of(const rte_mbuf *m, const PacketView &v, bool to_source) noexcept;

// Addressing with no packet in hand (a policy cut): to the host on `to_side` of the flow `key`,
// as if its peer had sent it. `mac` holds each side's Ethernet address as the flow's first packet
// showed them (Flow::mac). No VLAN tag: the flow key keeps the VLAN ID but not the tag's TPID.
Addressing addressing_of(const FlowKey &key, const uint8_t (&mac)[2][6], uint8_t to_side) noexcept;

struct TcpSegment {
    uint32_t seq = 0;
    uint32_t ack = 0;  // written only with the ACK flag (0 otherwise)
    uint8_t flags = 0;
    uint16_t window = 0;
    std::span<const uint8_t> options;  // a multiple of 4, at most 40 bytes
    std::span<const uint8_t> payload;  // L4 mode's records (docs/l4-mode.md); empty otherwise
};

// A TCP segment (with `payload`, if any) (IPv4: DF, TTL 64; IPv6: hop limit 64). nullptr when the pool is
// empty or the options are not a multiple of 4 up to 40 bytes.
rte_mbuf *build_tcp(rte_mempool *pool, const Addressing &a, const TcpSegment &s,
                    const TxChecksum &tx) noexcept;

// A UDP datagram: `payload` within the UDP Length, then `surplus` (the RFC 9868 option area,
// written by the caller, e.g. crypto::wire::write_udp_surplus) up to the end of the IP datagram.
// The UDP checksum covers the UDP Length only (RFC 9868), so with a surplus it is always
// computed in software. nullptr when the pool is empty or the frame would not fit an mbuf.
rte_mbuf *build_udp(rte_mempool *pool, const Addressing &a, std::span<const uint8_t> payload,
                    std::span<const uint8_t> surplus, const TxChecksum &tx) noexcept;

// The handshake's own segments as they are called today: a segment answering (to_source) or
// continuing the packet `v` of the flow, and an RST (flags RST, or RST|ACK with_ack).
inline rte_mbuf *build_tcp_control(rte_mempool *pool, const rte_mbuf *orig, const PacketView &v,
                                   bool to_source, uint32_t seq, uint32_t ack, uint8_t flags,
                                   uint16_t window, std::span<const uint8_t> options,
                                   const TxChecksum &tx) noexcept {
    return build_tcp(pool, addressing_of(orig, v, to_source), {seq, ack, flags, window, options},
                     tx);
}
inline rte_mbuf *build_tcp_reset(rte_mempool *pool, const rte_mbuf *orig, const PacketView &v,
                                 bool to_source, uint32_t seq, uint32_t ack, bool with_ack,
                                 const TxChecksum &tx) noexcept {
    const uint8_t flags = with_ack ? kTcpRst | kTcpAck : kTcpRst;
    return build_tcp_control(pool, orig, v, to_source, seq, ack, flags, 0, {}, tx);
}

}  // namespace segwire::dp
