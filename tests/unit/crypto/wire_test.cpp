#include <gtest/gtest.h>

#include <random>

#include "crypto/wire.hpp"
#include "tests/unit/crypto/test_util.hpp"

namespace segwire::crypto::wire {
namespace {

using test::hex;
using test::unhex;

// Options of a Linux SYN: MSS 1460, SACK_PERM, TS, NOP, WS 7 (20 bytes).
const char *kLinuxSyn = "020405b4 0402080a 11223344 00000000 01030307";
// Linux SYN with a TFO cookie (8 bytes) as sent with MSG_FASTOPEN: 32 bytes incl. padding.
const char *kLinuxTfoSyn = "020405b4 0402080a 11223344 00000000 01030307 220a0102030405060708 0101";
// Linux pure ACK: NOP NOP TS (12 bytes).
const char *kLinuxAck = "0101080a 11223344 55667788";

std::array<uint8_t, kMacLen> mac16(uint8_t seed) {
    std::array<uint8_t, kMacLen> m;
    for (size_t i = 0; i < m.size(); ++i) m[i] = static_cast<uint8_t>(seed + i);
    return m;
}

TEST(TcpOption, MarkerAndAckBytesExact) {
    uint8_t buf[32];
    ASSERT_EQ(write_tcp_option(buf, MsgType::Syn), kMarkerOptLen);
    EXPECT_EQ(hex(std::span(buf, 5)), "fd05535711");
    ASSERT_EQ(write_tcp_option(buf, MsgType::SynAck), kMarkerOptLen);
    EXPECT_EQ(hex(std::span(buf, 5)), "fd05535712");
    auto m = mac16(0xa0);
    ASSERT_EQ(write_tcp_option(buf, MsgType::Ack, m.data()), kAckOptLen);
    EXPECT_EQ(hex(std::span(buf, 21)), "fd15535713a0a1a2a3a4a5a6a7a8a9aaabacadaeaf");
    EXPECT_EQ(write_tcp_option(std::span(buf, 4), MsgType::Syn), 0u);
    EXPECT_EQ(write_tcp_option(buf, MsgType::Ack, nullptr), 0u);
    EXPECT_EQ(write_tcp_option(buf, MsgType::Reject), 0u);
}

TEST(TcpOption, FindsOursAmongLinuxOptionsAndSkipsTfoAndOtherExperiments) {
    auto opts = unhex(kLinuxTfoSyn);
    TcpOptionView v;
    EXPECT_EQ(find_tcp_option(opts, v), WireStatus::NotPresent);
    // A TFO-experimental option (254/F989) and another RFC 6994 ExID are not ours.
    auto other = unhex("fe06f989aabb fd04abcd 01");
    EXPECT_EQ(find_tcp_option(other, v), WireStatus::NotPresent);

    uint8_t out[kTcpOptionSpace];
    uint8_t marker[kMarkerOptLen];
    write_tcp_option(marker, MsgType::Syn);
    auto e = add_tcp_option(unhex(kLinuxSyn), marker, out, false);
    ASSERT_EQ(e.status, WireStatus::Ok);
    EXPECT_EQ(e.length, 28);
    EXPECT_FALSE(e.compacted);
    EXPECT_EQ(hex(std::span(out, e.length)),
              "020405b40402080a112233440000000001030307fd05535711010101");
    ASSERT_EQ(find_tcp_option(std::span(out, e.length), v), WireStatus::Ok);
    EXPECT_EQ(v.type, MsgType::Syn);
    EXPECT_EQ(v.version, 1);
    EXPECT_EQ(v.offset, 20u);
    EXPECT_EQ(v.length, 5u);

    uint8_t back[kTcpOptionSpace];
    auto s = strip_tcp_option(std::span(out, e.length), back);
    ASSERT_EQ(s.status, WireStatus::Ok);
    EXPECT_EQ(hex(std::span(back, s.length)), hex(unhex(kLinuxSyn)));
}

TEST(TcpOption, AddToSegmentWithoutOptions) {
    uint8_t marker[kMarkerOptLen], out[kTcpOptionSpace];
    write_tcp_option(marker, MsgType::SynAck);
    auto e = add_tcp_option({}, marker, out, false);
    ASSERT_EQ(e.status, WireStatus::Ok);
    EXPECT_EQ(hex(std::span(out, e.length)), "fd05535712010101");
    // Options followed by EOL padding: ours goes before the EOL, the padding is dropped.
    e = add_tcp_option(unhex("020405b4 00000000"), marker, out, false);
    ASSERT_EQ(e.status, WireStatus::Ok);
    EXPECT_EQ(hex(std::span(out, e.length)), "020405b4fd05535712010101");
}

TEST(TcpOption, AckProofFitsBesideTimestamps) {
    auto m = mac16(1);
    uint8_t opt[kAckOptLen];
    write_tcp_option(opt, MsgType::Ack, m.data());
    uint8_t out[kTcpOptionSpace];
    auto e = add_tcp_option(unhex(kLinuxAck), opt, out, false);
    ASSERT_EQ(e.status, WireStatus::Ok);
    EXPECT_EQ(e.length, 36);
    TcpOptionView v;
    ASSERT_EQ(find_tcp_option(std::span(out, e.length), v), WireStatus::Ok);
    EXPECT_EQ(v.type, MsgType::Ack);
    ASSERT_NE(v.mac, nullptr);
    EXPECT_TRUE(tag_equal(v.mac, m.data(), kMacLen));
}

TEST(TcpOption, ShortSpaceCompactsThenDropsTfoThenRefuses) {
    uint8_t marker[kMarkerOptLen];
    write_tcp_option(marker, MsgType::Syn);
    uint8_t out[kTcpOptionSpace];
    // 32 bytes + 5 fits in 40 as is (37 -> padded 40).
    auto e = add_tcp_option(unhex(kLinuxTfoSyn), marker, out, false);
    ASSERT_EQ(e.status, WireStatus::Ok);
    EXPECT_EQ(e.length, 40);
    // MPTCP-sized ACK: TS (12) + a 20-byte option leaves no room for the 21-byte proof.
    auto m = mac16(0);
    uint8_t ack[kAckOptLen];
    write_tcp_option(ack, MsgType::Ack, m.data());
    auto mptcp_ack = unhex("0101080a1122334455667788 1e14 0081 0102030405060708 0102030405060708");
    e = add_tcp_option(mptcp_ack, ack, out, true);
    EXPECT_EQ(e.status, WireStatus::NoSpace);
    // SYN with a maximal TFO cookie (16 bytes): 20 + 18 = 38, +2 NOPs; marker needs compaction
    // and then removal of the cookie.
    auto tfo16 = unhex(
        "020405b4 0402080a 11223344 00000000 01030307 2212 00112233445566778899aabbccddeeff 0101");
    e = add_tcp_option(tfo16, marker, out, false);
    EXPECT_EQ(e.status, WireStatus::NoSpace);
    e = add_tcp_option(tfo16, marker, out, true);
    ASSERT_EQ(e.status, WireStatus::Ok);
    EXPECT_TRUE(e.compacted);
    EXPECT_TRUE(e.dropped_tfo);
    EXPECT_EQ(hex(std::span(out, e.length)), "020405b40402080a1122334400000000030307fd05535711");
    // Compaction alone (removing NOPs) when it suffices keeps TFO.
    auto tight =
        unhex("01010101 020405b4 0402080a 11223344 00000000 01030307 220a0102030405060708 0101");
    e = add_tcp_option(tight, marker, out, true);
    ASSERT_EQ(e.status, WireStatus::Ok);
    EXPECT_TRUE(e.compacted);
    EXPECT_FALSE(e.dropped_tfo);
    TcpOptionView v;
    EXPECT_EQ(find_tcp_option(std::span(out, e.length), v), WireStatus::Ok);
    // Adding to a packet that already carries our option is refused.
    e = add_tcp_option(std::span(out, e.length), marker, out, true);
    EXPECT_EQ(e.status, WireStatus::Duplicate);
}

// L4 mode's TFO handling (docs/l4-mode.md): find a cookie or a request in either form, strip
// every TFO option while keeping the others in place, write ours.
// Stripping trims the padding that came with the removed option, never the last kept option's
// own bytes of 0x01 (the fuzzer found it: a timestamp echo of 0x01010101 lost its tail and the
// options became malformed).
TEST(TcpOption, StripKeepsTheLastOptionsBytesThatLookLikeNops) {
    // NOP NOP TS(TSval 0x11223344, TSecr 0x01010101), ours (SYN marker), 3 NOPs: 20 bytes.
    const auto opts = unhex(
        "0101080a1122334401010101"
        "fd05535711"
        "010101");
    uint8_t out[kTcpOptionSpace];
    OptionEdit e = strip_tcp_option(opts, out);
    ASSERT_EQ(e.status, WireStatus::Ok);
    EXPECT_EQ(hex(std::span(out, e.length)), "0101080a1122334401010101");
    // The same for TFO, and for an area whose last option ends off a 4-byte boundary.
    const auto tfo = unhex(
        "220a0102030405060708"
        "0a0601010101"
        "0101");
    e = strip_tfo_option(tfo, out);
    ASSERT_EQ(e.status, WireStatus::Ok);
    EXPECT_EQ(hex(std::span(out, e.length)), "0a06010101010101");
}

TEST(TfoOption, FindStripAndWrite) {
    // MSS, SACK-permitted, timestamps, NOP, window scale, TFO cookie (8 bytes) + 2 NOP.
    const auto syn = unhex(kLinuxTfoSyn);
    TfoOptionView t;
    ASSERT_EQ(find_tfo_option(syn, t), WireStatus::Ok);
    EXPECT_EQ(t.offset, 20u);
    EXPECT_EQ(t.length, 10u);
    EXPECT_EQ(hex(t.cookie), "0102030405060708");
    EXPECT_FALSE(t.experimental);
    uint8_t out[kTcpOptionSpace];
    OptionEdit e = strip_tfo_option(syn, out);
    ASSERT_EQ(e.status, WireStatus::Ok);
    EXPECT_TRUE(e.dropped_tfo);
    EXPECT_EQ(hex(std::span(out, e.length)), hex(unhex(kLinuxSyn)));
    EXPECT_EQ(find_tfo_option(std::span(out, e.length), t), WireStatus::NotPresent);
    // A cookie request, and Linux's experimental form with a 4-byte cookie.
    // (The view points into the options: they must outlive it.)
    const auto request = unhex("01012202"), experimental = unhex("fe08f989aabbccdd");
    ASSERT_EQ(find_tfo_option(request, t), WireStatus::Ok);
    EXPECT_TRUE(t.cookie.empty());
    ASSERT_EQ(find_tfo_option(experimental, t), WireStatus::Ok);
    EXPECT_TRUE(t.experimental);
    EXPECT_EQ(hex(t.cookie), "aabbccdd");
    e = strip_tfo_option(unhex("fe08f989aabbccdd020405b4"), out);
    EXPECT_EQ(hex(std::span(out, e.length)), "020405b4");
    // Cookies of 1..3 or 17+ bytes are not RFC 7413 cookies.
    EXPECT_EQ(find_tfo_option(unhex("2205010203"), t), WireStatus::BadLength);
    EXPECT_EQ(find_tfo_option(unhex("2204"), t), WireStatus::BadOption);  // runs past the area
    EXPECT_EQ(strip_tfo_option(unhex("020405b4"), out).status, WireStatus::NotPresent);
    // Ours: a cookie, a request; the writer refuses what the reader would.
    uint8_t opt[18];
    const auto cookie = unhex("0102030405060708");
    EXPECT_EQ(write_tfo_option(opt, cookie), 10u);
    EXPECT_EQ(hex(std::span(opt, 10)), "220a0102030405060708");
    EXPECT_EQ(write_tfo_option(opt, {}), 2u);
    EXPECT_EQ(hex(std::span(opt, 2)), "2202");
    EXPECT_EQ(write_tfo_option(opt, std::span(cookie.data(), 3)), 0u);
    EXPECT_EQ(write_tfo_option(std::span(opt, 9), cookie), 0u);
}

TEST(TcpOption, MalformedOptionListsAreRejected) {
    TcpOptionView v;
    EXPECT_EQ(find_tcp_option(unhex("02"), v), WireStatus::BadOption);        // no length byte
    EXPECT_EQ(find_tcp_option(unhex("0201"), v), WireStatus::BadOption);      // len < 2
    EXPECT_EQ(find_tcp_option(unhex("020805b4"), v), WireStatus::BadOption);  // len past end
    EXPECT_EQ(find_tcp_option(unhex("fd0553"), v), WireStatus::BadOption);
    EXPECT_EQ(find_tcp_option(unhex("fd045357"), v), WireStatus::BadLength);      // ours, too short
    EXPECT_EQ(find_tcp_option(unhex("fd06535711aa"), v), WireStatus::BadLength);  // marker len 6
    EXPECT_EQ(find_tcp_option(unhex("fd05535713"), v), WireStatus::BadLength);    // ACK w/o MAC
    EXPECT_EQ(find_tcp_option(unhex("fd05535721"), v), WireStatus::BadVersion);
    EXPECT_EQ(find_tcp_option(unhex("fd05535714"), v), WireStatus::BadType);
    EXPECT_EQ(find_tcp_option(unhex("fd05535710"), v), WireStatus::BadType);
    EXPECT_EQ(find_tcp_option(unhex("fd05535711fd05535711"), v), WireStatus::Duplicate);
    // EOL ends the list: a marker after EOL is padding, not an option (Trireme treated EOL as NOP).
    EXPECT_EQ(find_tcp_option(unhex("00fd05535711"), v), WireStatus::NotPresent);
    EXPECT_EQ(find_tcp_option({}, v), WireStatus::NotPresent);
    uint8_t out[kTcpOptionSpace];
    EXPECT_EQ(strip_tcp_option(unhex("020805b4"), out).status, WireStatus::BadOption);
    EXPECT_EQ(strip_tcp_option(unhex(kLinuxAck), out).status, WireStatus::NotPresent);
}

TEST(TcpOption, RandomBytesNeverCrashOrOverrun) {
    std::mt19937 rng(1);
    uint8_t out[kTcpOptionSpace], marker[kMarkerOptLen];
    write_tcp_option(marker, MsgType::Syn);
    for (int i = 0; i < 20000; ++i) {
        std::vector<uint8_t> o(rng() % 41);
        for (auto &b : o) b = static_cast<uint8_t>(rng() % 4 == 0 ? 253 : rng());
        TcpOptionView v;
        WireStatus s = find_tcp_option(o, v);
        if (s == WireStatus::Ok) {
            ASSERT_LE(v.offset + v.length, o.size());
        }
        auto e = add_tcp_option(o, marker, out, true);
        if (e.status == WireStatus::Ok) {
            ASSERT_LE(e.length, 40);
            ASSERT_EQ(e.length % 4, 0);
            ASSERT_EQ(find_tcp_option(std::span(out, e.length), v), WireStatus::Ok);
        }
        auto st = strip_tcp_option(o, out);
        if (st.status == WireStatus::Ok) {
            ASSERT_LE(st.length, 40);
        }
    }
}

// --- tokens -------------------------------------------------------------------------------------

std::vector<uint8_t> fake_claims(size_t n) {
    std::vector<uint8_t> c(n);
    for (size_t i = 0; i < n; ++i) c[i] = static_cast<uint8_t>(i * 13);
    return c;
}

std::array<uint8_t, 16> nonce(uint8_t seed) {
    std::array<uint8_t, 16> n;
    for (size_t i = 0; i < 16; ++i) n[i] = static_cast<uint8_t>(seed + i);
    return n;
}

TEST(Token, SynRoundTripAfterHostData) {
    auto claims = fake_claims(250);
    auto nc = nonce(0);
    std::vector<uint8_t> payload = {'G', 'E', 'T', ' ', '/'};  // TFO data from the host
    const size_t data = payload.size();
    payload.resize(data + token_len(MsgType::Syn, claims.size()));
    ASSERT_EQ(write_token(std::span(payload).subspan(data), MsgType::Syn, nc, claims), 272u);
    TokenView t;
    ASSERT_EQ(parse_token(payload, t), WireStatus::Ok);
    EXPECT_EQ(t.type, MsgType::Syn);
    EXPECT_EQ(t.data_len, data);
    EXPECT_EQ(t.token_len, 272u);
    EXPECT_EQ(std::memcmp(t.nonce, nc.data(), 16), 0);
    EXPECT_TRUE(std::equal(t.claims.begin(), t.claims.end(), claims.begin(), claims.end()));
    EXPECT_EQ(t.mac, nullptr);
}

TEST(Token, SynAckMacSlotPointsIntoPacket) {
    auto claims = fake_claims(100);
    std::vector<uint8_t> p(token_len(MsgType::SynAck, claims.size()));
    uint8_t *slot = nullptr;
    ASSERT_EQ(write_token(p, MsgType::SynAck, nonce(9), claims, &slot), p.size());
    ASSERT_NE(slot, nullptr);
    EXPECT_EQ(slot, p.data() + 20 + 100);
    std::memset(slot, 0x5a, kMacLen);
    TokenView t;
    ASSERT_EQ(parse_token(p, t), WireStatus::Ok);
    EXPECT_EQ(t.mac, slot);
    EXPECT_EQ(t.data_len, 0u);
}

TEST(Token, EveryMalformedTokenIsRejected) {
    auto claims = fake_claims(40);
    std::vector<uint8_t> good(token_len(MsgType::Syn, claims.size()));
    write_token(good, MsgType::Syn, nonce(1), claims);
    auto mutate = [&](auto f) {
        auto b = good;
        f(b);
        TokenView t;
        return parse_token(b, t);
    };
    TokenView t;
    EXPECT_EQ(parse_token({}, t), WireStatus::NotPresent);
    EXPECT_EQ(parse_token(std::span(good).first(21), t), WireStatus::NotPresent);
    EXPECT_EQ(mutate([](auto &b) { store_be16(&b[b.size() - 2], 0xffff); }), WireStatus::Truncated);
    EXPECT_EQ(mutate([](auto &b) { store_be16(&b[b.size() - 2], 10); }), WireStatus::BadLength);
    EXPECT_EQ(mutate([](auto &b) {
                  b.insert(b.begin(), 0);
                  const size_t n = b.size();  // claims length past the buffer
                  b[n - 2] = 2000 >> 8;
                  b[n - 1] = 2000 & 0xff;
              }),
              WireStatus::Truncated);
    EXPECT_EQ(mutate([](auto &b) { b[0] = 2; }), WireStatus::BadVersion);
    EXPECT_EQ(mutate([](auto &b) { b[1] = 3; }), WireStatus::BadType);
    EXPECT_EQ(mutate([](auto &b) { b[1] = 0; }), WireStatus::BadType);
    EXPECT_EQ(mutate([](auto &b) { store_be16(&b[18], 0); }), WireStatus::BadClaimsLength);
    EXPECT_EQ(mutate([](auto &b) { store_be16(&b[18], 513); }), WireStatus::BadClaimsLength);
    EXPECT_EQ(mutate([](auto &b) { store_be16(&b[18], 41); }), WireStatus::BadLength);
    // A SYN token relabelled as SYN-ACK no longer adds up (no room for the MAC).
    EXPECT_EQ(mutate([](auto &b) { b[1] = 2; }), WireStatus::BadLength);
    // Writers refuse what readers refuse.
    std::vector<uint8_t> big(600);
    EXPECT_EQ(write_token(big, MsgType::Syn, nonce(0), fake_claims(513)), 0u);
    EXPECT_EQ(write_token(big, MsgType::Syn, nonce(0), {}), 0u);
    EXPECT_EQ(write_token(big, MsgType::Ack, nonce(0), claims), 0u);
    EXPECT_EQ(write_token(std::span(big).first(50), MsgType::Syn, nonce(0), claims), 0u);
}

// --- MACs ---------------------------------------------------------------------------------------

struct MacFixture : ::testing::Test {
    const uint8_t c4[4] = {10, 0, 0, 1}, s4[4] = {10, 0, 1, 2};
    FlowBinding flow = FlowBinding::ipv4(6, c4, 40000, s4, 443);
    std::array<uint8_t, 16> nc = nonce(0x00), ns = nonce(0x10);
    Digest hc = sha256(unhex("01")), hs = sha256(unhex("02"));
    const HmacKey key{unhex("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f")};
    HmacBatch batch;

    std::pair<std::array<uint8_t, 16>, std::array<uint8_t, 16>> macs(const FlowBinding &f,
                                                                     const HandshakeInputs &in) {
        HandshakeMacs m;
        HmacJob jobs[2];
        m.prepare(key, f, in, jobs);
        EXPECT_TRUE(batch.compute(jobs));
        std::array<uint8_t, 16> ack;
        std::copy_n(m.ack_mac(), 16, ack.begin());
        return {m.synack_mac, ack};
    }
    HandshakeInputs inputs() { return {nc, ns, &hc, &hs}; }
};

TEST_F(MacFixture, MacInputLayout) {
    std::array<uint8_t, kMacInputLen> in;
    build_mac_input(MacDirection::ServerToClient, flow, inputs(), in);
    EXPECT_EQ(hex(std::span(in).first(48)),
              "7365677769726531"
              "01"
              "01"
              "06"
              "04"
              "00000000000000000000ffff0a000001"
              "00000000000000000000ffff0a000102"
              "9c40"
              "01bb");
    EXPECT_EQ(hex(std::span(in).subspan(48, 32)), hex(nc) + hex(ns));
    EXPECT_EQ(hex(std::span(in).subspan(80, 32)), hex(hc));
    EXPECT_EQ(hex(std::span(in).subspan(112, 32)), hex(hs));
    auto ref =
        hmac_sha256(unhex("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"), in);
    auto [sa, ak] = macs(flow, inputs());
    EXPECT_EQ(hex(sa), hex(std::span(ref).first(16)));
    EXPECT_NE(sa, ak) << "direction separates the two proofs";
}

TEST_F(MacFixture, ChangingAnyCoveredFieldChangesBothMacs) {
    auto base = macs(flow, inputs());
    auto expect_differs = [&](const char *what, const FlowBinding &f, const HandshakeInputs &in) {
        auto m = macs(f, in);
        EXPECT_NE(hex(m.first), hex(base.first)) << what;
        EXPECT_NE(hex(m.second), hex(base.second)) << what;
        EXPECT_FALSE(tag_equal(m.first.data(), base.first.data(), kMacLen)) << what;
    };
    for (size_t i = 0; i < 16; ++i) {
        auto n2 = nc;
        n2[i] ^= 1;
        expect_differs("client nonce", flow, {n2, ns, &hc, &hs});
        auto n3 = ns;
        n3[i] ^= 1;
        expect_differs("server nonce", flow, {nc, n3, &hc, &hs});
    }
    Digest h2 = hc;
    h2[5] ^= 1;
    expect_differs("client claims", flow, {nc, ns, &h2, &hs});
    expect_differs("server claims", flow, {nc, ns, &hc, &h2});
    expect_differs("claims swapped", flow, {nc, ns, &hs, &hc});
    expect_differs("nonces swapped", flow, {ns, nc, &hc, &hs});
    FlowBinding f = flow;
    f.client_addr[15] ^= 1;
    expect_differs("client address", f, inputs());
    f = flow;
    f.server_addr[15] ^= 1;
    expect_differs("server address", f, inputs());
    f = flow;
    f.client_port ^= 1;
    expect_differs("client port", f, inputs());
    f = flow;
    f.server_port ^= 1;
    expect_differs("server port", f, inputs());
    f = flow;
    f.protocol = 17;
    expect_differs("protocol", f, inputs());
    f = flow;
    std::swap(f.client_addr, f.server_addr);
    std::swap(f.client_port, f.server_port);
    expect_differs("reversed tuple", f, inputs());
    const uint8_t c6[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 1};
    const uint8_t s6[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 1, 2};
    expect_differs("family", FlowBinding::ipv6(6, c6, 40000, s6, 443), inputs());
    // Direction: the SYN-ACK proof is not a valid ACK proof (reflection).
    EXPECT_NE(hex(base.first), hex(base.second));
}

// --- UDP ----------------------------------------------------------------------------------------

TEST(Udp, SurplusRoundTripWithOcsBothAlignments) {
    for (bool odd : {false, true}) {
        auto m = mac16(3);
        uint8_t body[kUdpAckLen];
        ASSERT_EQ(write_udp_ack(body, m.data()), kUdpAckLen);
        std::vector<uint8_t> s(udp_surplus_len(kUdpAckLen, odd));
        ASSERT_EQ(write_udp_surplus(s, odd, body), s.size());
        EXPECT_EQ(s.size(), (odd ? 1u : 0u) + 2 + 4 + 18);
        std::span<const uint8_t> got;
        ASSERT_EQ(parse_udp_surplus(s, odd, false, got), WireStatus::Ok);
        UdpMessageView v;
        ASSERT_EQ(parse_udp_message(got, v), WireStatus::Ok);
        EXPECT_EQ(v.type, MsgType::Ack);
        EXPECT_TRUE(tag_equal(v.mac, m.data(), kMacLen));
        // Any flipped bit after the OCS fails the checksum.
        for (size_t i = (odd ? 1 : 0); i < s.size(); ++i) {
            auto c = s;
            c[i] ^= 0x10;
            EXPECT_EQ(parse_udp_surplus(c, odd, false, got), WireStatus::BadChecksum) << i;
        }
    }
}

TEST(Udp, OcsKnownAnswer) {
    // Surplus: OCS + NOP NOP EOL 00 (6 bytes, even start). sum = 6 + 0x0101 + 0x0000 = 0x0107.
    auto s = unhex("0000 0101 0000");
    EXPECT_EQ(udp_ocs(s, false), 0xfef8);
    store_be16(s.data(), 0xfef8);
    std::span<const uint8_t> body;
    EXPECT_EQ(parse_udp_surplus(s, false, false, body), WireStatus::NotPresent);
    // A zero OCS is legal only with a zero UDP checksum.
    store_be16(s.data(), 0);
    EXPECT_EQ(parse_udp_surplus(s, false, false, body), WireStatus::BadChecksum);
    EXPECT_EQ(parse_udp_surplus(s, false, true, body), WireStatus::NotPresent);
}

TEST(Udp, LongTokensUseExtendedLength) {
    auto claims = fake_claims(300);
    std::vector<uint8_t> body(token_len(MsgType::Syn, claims.size()));
    ASSERT_EQ(write_token(body, MsgType::Syn, nonce(4), claims), body.size());
    std::vector<uint8_t> s(udp_surplus_len(body.size(), false));
    ASSERT_EQ(write_udp_surplus(s, false, body), s.size());
    EXPECT_EQ(s[2], kUdpOptExp);
    EXPECT_EQ(s[3], 255);
    EXPECT_EQ(load_be16(&s[4]), 6 + body.size());
    EXPECT_EQ(load_be16(&s[6]), kExId);
    std::span<const uint8_t> got;
    ASSERT_EQ(parse_udp_surplus(s, false, false, got), WireStatus::Ok);
    UdpMessageView v;
    ASSERT_EQ(parse_udp_message(got, v), WireStatus::Ok);
    EXPECT_EQ(v.type, MsgType::Syn);
    EXPECT_EQ(v.token.claims.size(), 300u);
}

std::vector<uint8_t> surplus_with(std::string_view options_hex) {
    auto s = unhex(std::string("0000") + std::string(options_hex));
    store_be16(s.data(), udp_ocs(s, false));
    return s;
}

TEST(Udp, OptionListRules) {
    std::span<const uint8_t> got;
    // Unknown safe option (kind 8 TIME) is skipped; ours found after it.
    auto a = surplus_with("080a0102030405060708 7f0753570105 07");
    EXPECT_EQ(parse_udp_surplus(a, false, false, got), WireStatus::Ok);
    EXPECT_EQ(hex(got), "010507");
    // Unknown unsafe option (>= 192) means drop the datagram.
    EXPECT_EQ(parse_udp_surplus(surplus_with("c0020000"), false, false, got),
              WireStatus::UnsafeOption);
    EXPECT_EQ(parse_udp_surplus(surplus_with("fe0653570000"), false, false, got),
              WireStatus::UnsafeOption);
    // Another EXP experiment is not ours.
    EXPECT_EQ(parse_udp_surplus(surplus_with("7f06abcd0000"), false, false, got),
              WireStatus::NotPresent);
    EXPECT_EQ(parse_udp_surplus(surplus_with("7f0753570103 07 7f0753570103 07"), false, false, got),
              WireStatus::Duplicate);
    EXPECT_EQ(parse_udp_surplus(surplus_with("7f"), false, false, got), WireStatus::BadOption);
    EXPECT_EQ(parse_udp_surplus(surplus_with("7f01"), false, false, got), WireStatus::BadOption);
    EXPECT_EQ(parse_udp_surplus(surplus_with("7f10535701"), false, false, got),
              WireStatus::BadOption);
    EXPECT_EQ(parse_udp_surplus(surplus_with("7fff00"), false, false, got), WireStatus::BadOption);
    EXPECT_EQ(parse_udp_surplus(surplus_with("7fff0002"), false, false, got),
              WireStatus::BadOption);
    // Options after EOL are ignored.
    EXPECT_EQ(parse_udp_surplus(surplus_with("00 7f0753570103 07"), false, false, got),
              WireStatus::NotPresent);
    EXPECT_EQ(parse_udp_surplus({}, false, false, got), WireStatus::NotPresent);
}

TEST(Udp, ControlMessagesRoundTripAndRejectMalformed) {
    uint8_t b[64];
    auto n = nonce(7);
    ASSERT_EQ(write_udp_reject(b, 3, n), kUdpRejectLen);
    UdpMessageView v;
    ASSERT_EQ(parse_udp_message(std::span(b, kUdpRejectLen), v), WireStatus::Ok);
    EXPECT_EQ(v.type, MsgType::Reject);
    EXPECT_EQ(v.reason, 3);
    EXPECT_EQ(std::memcmp(v.echoed_nonce, n.data(), 16), 0);
    ASSERT_EQ(write_udp_reset(b, 1), kUdpResetLen);
    ASSERT_EQ(parse_udp_message(std::span(b, kUdpResetLen), v), WireStatus::Ok);
    EXPECT_EQ(v.type, MsgType::Reset);
    EXPECT_EQ(parse_udp_message(std::span(b, kUdpResetLen + 1), v), WireStatus::BadLength);
    EXPECT_EQ(parse_udp_message(std::span(b, 1), v), WireStatus::Truncated);
    b[0] = 9;
    EXPECT_EQ(parse_udp_message(std::span(b, kUdpResetLen), v), WireStatus::BadVersion);
    b[0] = 1;
    b[1] = 9;
    EXPECT_EQ(parse_udp_message(std::span(b, kUdpResetLen), v), WireStatus::BadType);
    b[1] = 3;
    EXPECT_EQ(parse_udp_message(std::span(b, 10), v), WireStatus::BadLength);
    b[1] = 4;
    EXPECT_EQ(parse_udp_message(std::span(b, 10), v), WireStatus::BadLength);
    // A UDP SYN body must be exactly one token.
    auto claims = fake_claims(30);
    std::vector<uint8_t> body(1 + token_len(MsgType::Syn, 30));
    write_token(std::span(body).subspan(1), MsgType::Syn, n, claims);
    body[0] = 1;
    EXPECT_NE(parse_udp_message(body, v), WireStatus::Ok);
    EXPECT_EQ(parse_udp_message(std::span(body).subspan(1), v), WireStatus::Ok);
    for (int s = 0; s <= static_cast<int>(WireStatus::BadClaimsLength); ++s)
        EXPECT_STRNE(to_string(static_cast<WireStatus>(s)), "?");
}

}  // namespace
}  // namespace segwire::crypto::wire
