// The one checksum helper: every in-place edit (rewrite.cpp) and every frame segwire builds
// (build.cpp) gets its IPv4 header checksum and TCP/UDP checksum here, in software or by the NIC.
#pragma once

#include <cstdint>

#include "dataplane/packet/parse.hpp"

struct rte_mbuf;

namespace segwire::dp {

// How checksums are produced on a port: in software, or by the NIC from a pseudo-header sum.
struct TxChecksum {
    bool ipv4_offload = false;
    bool tcp_offload = false;
    bool udp_offload = false;
};

// Where a frame's checksummed headers are.
struct ChecksumLayout {
    uint8_t family = 4;  // 4 or 6
    uint8_t proto = 0;   // kProtoTcp or kProtoUdp get an L4 checksum; IPv4 always a header one
    uint16_t l3_off = 0;
    uint16_t l4_off = 0;  // 0: no L4 header
    uint32_t l4_len = 0;  // bytes the L4 checksum covers (UDP: the UDP Length, RFC 9868)
    uint32_t ip_end = 0;  // end of the IP datagram
};

// The layout of a parsed packet. The L4 length is the UDP Length for UDP (an RFC 9868 surplus
// after it is not covered) and runs to the end of the datagram for TCP, IPv6 extension headers
// excluded.
ChecksumLayout checksum_layout(const PacketView &v) noexcept;

// Sets the IPv4 header checksum and the TCP/UDP checksum. With offload the NIC fills them
// (ol_flags, l2_len, l3_len and the pseudo-header sum in the L4 field); the L4 checksum is
// offloaded only when it covers the whole IP payload (a NIC would sum a UDP surplus too).
void set_checksums(rte_mbuf *m, const ChecksumLayout &c, const TxChecksum &tx) noexcept;
inline void fix_checksums(rte_mbuf *m, const PacketView &v, const TxChecksum &tx) noexcept {
    set_checksums(m, checksum_layout(v), tx);
}

// The L4 checksum the packet `v` describes should carry (the checksum field counted as zero).
uint16_t l4_checksum(const uint8_t *frame, const PacketView &v) noexcept;

}  // namespace segwire::dp
