// Sequence-space translation for L4 mode (docs/l4-mode.md, "Sequence translation"): the two
// enforcers insert their identity records at the start of each direction's byte stream, so on
// the wire every sequence number of a side's stream is its host's number plus the bytes inserted
// into that stream, and every acknowledgment (and SACK edge) the other host sends is shifted the
// same way. The shift is constant per direction once the records are sent (they precede all host
// data), so translating a segment is three additions and an incremental checksum update.
//
// Header-only, no DPDK: a parsed frame in, edited in place. noexcept, no allocation (per packet).
#pragma once

#include <cstdint>
#include <cstring>

#include "crypto/tcp_options.hpp"
#include "dataplane/packet/parse.hpp"

namespace segwire::dp {

// Bytes inserted into each side's stream (indexed by the flow's canonical side, 0 or 1): the
// records that side's enforcer sent for its host (ins of the local side) and those the peer's
// enforcer sent (ins of the peer side).
struct SeqShift {
    uint32_t ins[2] = {0, 0};
};

namespace seqmap_detail {

inline uint32_t load32(const uint8_t *p) noexcept {
    return uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | p[3];
}
inline void store32(uint8_t *p, uint32_t v) noexcept {
    p[0] = uint8_t(v >> 24), p[1] = uint8_t(v >> 16), p[2] = uint8_t(v >> 8), p[3] = uint8_t(v);
}

// RFC 1624 eqn. 3, HC' = ~(~HC + ~m + m'), for a 32-bit field (two 16-bit words) that went from
// `from` to `to`. `sum` accumulates ~m + m' in one's complement; fold() applies it once.
inline void account(uint32_t &sum, uint32_t from, uint32_t to) noexcept {
    sum += (~from >> 16 & 0xffff) + (~from & 0xffff) + (to >> 16) + (to & 0xffff);
}
inline void apply(uint8_t *csum, uint32_t sum) noexcept {
    uint32_t hc = uint32_t(~(uint32_t(csum[0]) << 8 | csum[1]) & 0xffff) + sum;
    while (hc >> 16) hc = (hc & 0xffff) + (hc >> 16);
    const uint16_t out = static_cast<uint16_t>(~hc & 0xffff);
    csum[0] = uint8_t(out >> 8), csum[1] = uint8_t(out);
}

}  // namespace seqmap_detail

// Adds `dseq` to the segment's sequence number and `dack` to its acknowledgment number (when
// the ACK flag is set) and to both edges of every SACK block, modulo 2^32, and updates the TCP
// checksum incrementally. `frame` holds the packet `v` describes (a TCP segment with its full
// header: the parser guarantees the options area lies inside the frame). A zero shift leaves the
// segment as it is.
inline void shift_segment(uint8_t *frame, const PacketView &v, uint32_t dseq,
                          uint32_t dack) noexcept {
    using namespace seqmap_detail;
    uint8_t *th = frame + v.l4_off;
    uint32_t sum = 0;
    if (dseq) {
        const uint32_t seq = load32(th + 4);
        store32(th + 4, seq + dseq);
        account(sum, seq, seq + dseq);
    }
    if (dack && (v.tcp_flags & kTcpAck)) {
        const uint32_t ack = load32(th + 8);
        store32(th + 8, ack + dack);
        account(sum, ack, ack + dack);
        if (v.tcp_hdr_len > 20) {
            uint8_t *opts = th + 20;
            crypto::walk_tcp_options(std::span<const uint8_t>(opts, v.tcp_hdr_len - 20u),
                                     [&](size_t off, uint8_t kind, uint8_t len) {
                                         if (kind != crypto::kTcpOptSack) return true;
                                         // 2 + 8n bytes: n blocks of (left edge, right edge); a
                                         // length that is not whole blocks leaves the trailing
                                         // bytes alone.
                                         for (size_t e = off + 2; e + 4 <= off + len; e += 4) {
                                             const uint32_t edge = load32(opts + e);
                                             store32(opts + e, edge + dack);
                                             account(sum, edge, edge + dack);
                                         }
                                         return true;
                                     });
        }
    }
    if (sum) apply(th + 16, sum);
}

// Host X's segment leaving X's enforcer for the wire (`from` is X's canonical side).
inline void shift_out(uint8_t *frame, const PacketView &v, const SeqShift &s,
                      uint8_t from) noexcept {
    shift_segment(frame, v, s.ins[from], s.ins[from ^ 1]);
}

// A segment from the wire, sent by host X (side `from`), before it reaches the other host.
inline void shift_in(uint8_t *frame, const PacketView &v, const SeqShift &s,
                     uint8_t from) noexcept {
    shift_segment(frame, v, 0u - s.ins[from], 0u - s.ins[from ^ 1]);
}

}  // namespace segwire::dp
