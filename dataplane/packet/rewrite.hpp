// In-place packet edits for the identity handshake: TCP option and payload rewrite and MSS
// clamping. Checksums go through the one checksum helper (checksum.hpp); frames segwire sends of
// its own are built by build.hpp. All functions work on single-segment mbufs, allocate nothing
// and report why they refuse.
#pragma once

#include <cstdint>
#include <span>

#include "dataplane/packet/checksum.hpp"
#include "dataplane/packet/parse.hpp"

struct rte_mbuf;

namespace segwire::dp {

enum class RewriteStatus : uint8_t {
    Ok = 0,
    TooBig,       // the result would not fit the port's MTU
    NoRoom,       // the mbuf has no tailroom for the growth
    Unsupported,  // multi-segment mbuf, or not a TCP packet with a full header
};

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

}  // namespace segwire::dp
