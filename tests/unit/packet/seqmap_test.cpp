// L4 mode's sequence translation (dataplane/packet/seqmap.hpp, docs/l4-mode.md): a segment
// shifted out at one enforcer and back in at the other is the host's original segment again;
// the checksum stays valid at every step (checked against a full recomputation); SACK edges
// follow the acknowledgment; wrap-around modulo 2^32; ACK-less segments keep their ack field.
#include <cstring>
#include <random>

#include <gtest/gtest.h>

#include "dataplane/packet/checksum.hpp"
#include "dataplane/packet/seqmap.hpp"
#include "tests/unit/dataplane/frame_builder.hpp"

namespace {

using namespace segwire;
using namespace segwire::dptest;

struct Seg {
    Bytes frame;
    dp::PacketView v{};
};

uint32_t get32(const Bytes &b, size_t off) {
    return uint32_t(b[off]) << 24 | uint32_t(b[off + 1]) << 16 | uint32_t(b[off + 2]) << 8 |
           b[off + 3];
}

// A segment with a correct TCP checksum, parsed.
Seg make(bool v6, const TcpSpec &t) {
    Seg s;
    s.frame = v6 ? v6_tcp(t) : v4_tcp(t);
    EXPECT_EQ(dp::parse_packet(s.frame.data(), uint32_t(s.frame.size()), s.v),
              dp::DropReason::None);
    const uint16_t c = dp::l4_checksum(s.frame.data(), s.v);  // in memory (network) order
    std::memcpy(s.frame.data() + s.v.l4_off + 16, &c, 2);
    return s;
}

bool checksum_ok(const Seg &s) {
    uint16_t field;
    std::memcpy(&field, s.frame.data() + s.v.l4_off + 16, 2);
    return dp::l4_checksum(s.frame.data(), s.v) == field;
}

// SACK option with n blocks (NOP NOP kind 5 len 2+8n), after timestamps.
Bytes sack_options(const std::vector<std::pair<uint32_t, uint32_t>> &blocks) {
    Bytes o = {1, 1, 8, 10, 0, 0, 0, 7, 0, 0, 0, 9, 1, 1, 5, uint8_t(2 + 8 * blocks.size())};
    for (auto [l, r] : blocks) {
        o.resize(o.size() + 8);
        put32(o, o.size() - 8, l);
        put32(o, o.size() - 4, r);
    }
    return o;
}

TEST(SeqMap, OutAtOneEnforcerAndInAtTheOtherGivesTheHostsSegmentBack) {
    for (bool v6 : {false, true}) {
        SCOPED_TRACE(v6 ? "IPv6" : "IPv4");
        const Seg orig = make(v6, {.seq = 1000,
                                   .ack = 5000,
                                   .flags = dp::kTcpAck | dp::kTcpPsh,
                                   .options = sack_options({{6000, 7000}, {8000, 9000}}),
                                   .payload = seq_bytes(100)});
        ASSERT_TRUE(checksum_ok(orig));
        dp::SeqShift s;
        s.ins[0] = 231;  // side 0 (the client): R1 + R3
        s.ins[1] = 412;  // side 1 (the server): R2
        Seg wire = orig;
        dp::shift_out(wire.frame.data(), wire.v, s, 0);
        EXPECT_TRUE(checksum_ok(wire));
        const size_t th = wire.v.l4_off;
        EXPECT_EQ(get32(wire.frame, th + 4), 1000u + 231);
        EXPECT_EQ(get32(wire.frame, th + 8), 5000u + 412);
        const size_t sack = th + 20 + 16;
        EXPECT_EQ(get32(wire.frame, sack), 6000u + 412);
        EXPECT_EQ(get32(wire.frame, sack + 4), 7000u + 412);
        EXPECT_EQ(get32(wire.frame, sack + 8), 8000u + 412);
        EXPECT_EQ(get32(wire.frame, sack + 12), 9000u + 412);
        // The timestamps and the payload are untouched.
        EXPECT_EQ(get32(wire.frame, th + 20 + 4), 7u);
        EXPECT_TRUE(std::equal(orig.frame.begin() + orig.v.payload_off, orig.frame.end(),
                               wire.frame.begin() + wire.v.payload_off));
        Seg host = wire;
        dp::shift_in(host.frame.data(), host.v, s, 0);
        EXPECT_EQ(host.frame, orig.frame);
    }
}

TEST(SeqMap, WrapsAroundModulo2To32) {
    const Seg orig = make(false, {.seq = 0xffffff00u, .ack = 0xfffffff0u, .flags = dp::kTcpAck});
    dp::SeqShift s;
    s.ins[0] = 0x200, s.ins[1] = 0x20;
    Seg wire = orig;
    dp::shift_out(wire.frame.data(), wire.v, s, 0);
    EXPECT_EQ(get32(wire.frame, wire.v.l4_off + 4), 0x100u);
    EXPECT_EQ(get32(wire.frame, wire.v.l4_off + 8), 0x10u);
    EXPECT_TRUE(checksum_ok(wire));
    dp::shift_in(wire.frame.data(), wire.v, s, 0);
    EXPECT_EQ(wire.frame, orig.frame);
}

TEST(SeqMap, TheOtherDirectionSwapsTheShifts) {
    // A segment from the server (side 1): its seq moves by the server side's insertions, its ack
    // by the client side's.
    const Seg orig = make(false, {.seq = 70, .ack = 30, .flags = dp::kTcpAck});
    dp::SeqShift s;
    s.ins[0] = 3, s.ins[1] = 5;
    Seg wire = orig;
    dp::shift_out(wire.frame.data(), wire.v, s, 1);
    EXPECT_EQ(get32(wire.frame, wire.v.l4_off + 4), 75u);
    EXPECT_EQ(get32(wire.frame, wire.v.l4_off + 8), 33u);
    EXPECT_TRUE(checksum_ok(wire));
}

TEST(SeqMap, ASegmentWithoutAckKeepsItsAckField) {
    // A SYN: ack is not meaningful and must not be touched (nor its SACK-permitted option).
    const Seg orig =
        make(false, {.seq = 9, .ack = 0, .flags = dp::kTcpSyn, .options = linux_syn_options()});
    dp::SeqShift s;
    s.ins[0] = 40, s.ins[1] = 50;
    Seg wire = orig;
    dp::shift_out(wire.frame.data(), wire.v, s, 0);
    EXPECT_EQ(get32(wire.frame, wire.v.l4_off + 4), 49u);
    EXPECT_EQ(get32(wire.frame, wire.v.l4_off + 8), 0u);
    EXPECT_TRUE(checksum_ok(wire));
}

TEST(SeqMap, ZeroShiftChangesNothing) {
    const Seg orig =
        make(true, {.seq = 1, .ack = 2, .flags = dp::kTcpAck, .options = sack_options({{3, 4}})});
    Seg wire = orig;
    dp::shift_out(wire.frame.data(), wire.v, dp::SeqShift{}, 0);
    EXPECT_EQ(wire.frame, orig.frame);
}

TEST(SeqMap, RandomSegmentsKeepAValidChecksumAndRoundTrip) {
    std::mt19937 rng(20261202);
    for (int i = 0; i < 2000; ++i) {
        std::vector<std::pair<uint32_t, uint32_t>> blocks;
        for (unsigned b = rng() % 4; b; --b) blocks.push_back({rng(), rng()});
        const bool v6 = rng() & 1;
        TcpSpec t{.seq = uint32_t(rng()),
                  .ack = uint32_t(rng()),
                  .flags = uint8_t(dp::kTcpAck | (rng() & dp::kTcpPsh)),
                  .options = blocks.empty() ? Bytes{} : sack_options(blocks),
                  .payload = seq_bytes(rng() % 200, uint8_t(rng()))};
        const Seg orig = make(v6, t);
        dp::SeqShift s;
        s.ins[0] = rng(), s.ins[1] = rng();
        const uint8_t from = rng() & 1;
        Seg wire = orig;
        dp::shift_out(wire.frame.data(), wire.v, s, from);
        ASSERT_TRUE(checksum_ok(wire)) << "segment " << i;
        dp::shift_in(wire.frame.data(), wire.v, s, from);
        ASSERT_EQ(wire.frame, orig.frame) << "segment " << i;
    }
}

}  // namespace
