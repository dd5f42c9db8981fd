// In-place packet edits for the identity handshake: TCP option and payload rewrite, MSS clamping,
// RST construction, and the one checksum helper every edit goes through.
// All functions work on single-segment mbufs and report why they refuse; none allocate except
// build_tcp_reset, which takes an mbuf from the pool it is given.
#pragma once

#include <cstdint>
#include <span>

#include "dataplane/packet/parse.hpp"

struct rte_mbuf;
struct rte_mempool;

namespace segwire::dp {

enum class RewriteStatus : uint8_t {
    Ok = 0,
    TooBig,       // the result would not fit the port's MTU
    NoRoom,       // the mbuf has no tailroom for the growth
    Unsupported,  // multi-segment mbuf, or not a TCP packet with a full header
};

// How checksums are produced on a port: in software, or by the NIC from a pseudo-header sum.
struct TxChecksum {
    bool ipv4_offload = false;
    bool tcp_offload = false;
    bool udp_offload = false;
};

// Recomputes the IPv4 header checksum and the TCP/UDP checksum (IPv6 with extension headers
// included: the pseudo-header uses the real L4 length, not the IPv6 payload length).
void fix_checksums(rte_mbuf *m, const PacketView &v, const TxChecksum &tx);
uint16_t l4_checksum(const uint8_t *frame, const PacketView &v);

// Rebuilds a TCP segment in place: the options area becomes `options` (a multiple of 4, at most
// 40 bytes), `trim_tail` bytes are cut from the end of the payload and `append` is added after
// what remains. IP length, data offset and checksums are fixed; `v` is re-parsed. Ethernet
// padding after the IP datagram is dropped. `max_ip_len` is the port MTU.
RewriteStatus rewrite_tcp(rte_mbuf *m, PacketView &v, std::span<const uint8_t> options,
                          uint32_t trim_tail, std::span<const uint8_t> append, uint32_t max_ip_len,
                          const TxChecksum &tx);

// Lowers the MSS option to `mss` if it is larger (used to leave room for the ACK proof option
// on data segments). Returns true when it changed the packet (checksums then need fixing).
bool clamp_mss(rte_mbuf *m, const PacketView &v, uint16_t mss);

// Options area of a parsed TCP packet.
std::span<const uint8_t> tcp_options(const rte_mbuf *m, const PacketView &v);

// Builds an RST for the connection `v` belongs to, addressed to the packet's SOURCE (to_source)
// or its destination, with the given sequence/ack numbers (flags: RST, or RST|ACK when ack is
// meaningful). L2 addresses are mirrored accordingly; VLAN tags are kept. Returns nullptr when
// the pool is empty.
// A TCP segment without payload for the connection `v` belongs to, addressed like an RST above,
// with the given flags, window and options (a multiple of 4, at most 40 bytes): segwire's own
// control segments (RSTs, the ACK proof's confirmation). Returns nullptr when the pool is empty.
rte_mbuf *build_tcp_control(rte_mempool *pool, const rte_mbuf *orig, const PacketView &v,
                            bool to_source, uint32_t seq, uint32_t ack, uint8_t flags,
                            uint16_t window, std::span<const uint8_t> options,
                            const TxChecksum &tx);
rte_mbuf *build_tcp_reset(rte_mempool *pool, const rte_mbuf *orig, const PacketView &v,
                          bool to_source, uint32_t seq, uint32_t ack, bool with_ack,
                          const TxChecksum &tx);

}  // namespace segwire::dp
