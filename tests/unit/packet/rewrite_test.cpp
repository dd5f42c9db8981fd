// Packet rewrites checked against DPDK's own checksum verification (an independent
// implementation) and against the original bytes after a round trip.
#include "dataplane/packet/rewrite.hpp"

#include <cstring>
#include <vector>

#include <gtest/gtest.h>
#include <rte_ip.h>
#include <rte_mbuf.h>

#include "tests/unit/packet/eal_env.hpp"

using namespace segwire::dp;

namespace {

// Ethernet + IPv4/IPv6 (optionally with a destination-options header) + TCP SYN with MSS,
// SACK-permitted, timestamps and window scale, like a Linux SYN.
std::vector<uint8_t> make_syn(int family, bool ext_header = false, size_t data = 0) {
    std::vector<uint8_t> f(14, 0);
    for (int i = 0; i < 6; ++i) f[i] = 0x02, f[6 + i] = 0x04;
    std::vector<uint8_t> tcp = {0x9c, 0x40, 0x00, 0x50, 0x11, 0x22, 0x33, 0x44, 0, 0, 0, 0, 0xa0,
                                0x02, 0xff, 0xff, 0, 0, 0, 0,
                                // MSS 1460, SACK-OK, TS, NOP, WS 7
                                0x02, 0x04, 0x05, 0xb4, 0x04, 0x02, 0x08, 0x0a, 0, 0, 0, 1, 0, 0, 0,
                                0, 0x01, 0x03, 0x03, 0x07};
    for (size_t i = 0; i < data; ++i) tcp.push_back(static_cast<uint8_t>(i));
    if (family == 4) {
        f[12] = 0x08, f[13] = 0x00;
        uint16_t tot = static_cast<uint16_t>(20 + tcp.size());
        std::vector<uint8_t> ip = {0x45,
                                   0,
                                   uint8_t(tot >> 8),
                                   uint8_t(tot),
                                   0,
                                   1,
                                   0x40,
                                   0,
                                   64,
                                   6,
                                   0,
                                   0,
                                   10,
                                   77,
                                   0,
                                   1,
                                   10,
                                   77,
                                   0,
                                   2};
        f.insert(f.end(), ip.begin(), ip.end());
    } else {
        f[12] = 0x86, f[13] = 0xdd;
        std::vector<uint8_t> ext;
        if (ext_header) ext = {6, 0, 1, 4, 0, 0, 0, 0};  // dest options, PadN
        uint16_t pl = static_cast<uint16_t>(ext.size() + tcp.size());
        std::vector<uint8_t> ip = {
            0x60, 0, 0, 0, uint8_t(pl >> 8), uint8_t(pl), uint8_t(ext_header ? 60 : 6), 64};
        for (int i = 0; i < 16; ++i) ip.push_back(i == 0 ? 0xfd : i == 15 ? 1 : 0);
        for (int i = 0; i < 16; ++i) ip.push_back(i == 0 ? 0xfd : i == 15 ? 2 : 0);
        f.insert(f.end(), ip.begin(), ip.end());
        f.insert(f.end(), ext.begin(), ext.end());
    }
    f.insert(f.end(), tcp.begin(), tcp.end());
    return f;
}

rte_mbuf *to_mbuf(const std::vector<uint8_t> &frame, PacketView &v) {
    rte_mbuf *m = rte_pktmbuf_alloc(EalEnvironment::pool);
    EXPECT_NE(m, nullptr);
    std::memcpy(rte_pktmbuf_append(m, static_cast<uint16_t>(frame.size())), frame.data(),
                frame.size());
    EXPECT_EQ(parse_packet(rte_pktmbuf_mtod(m, uint8_t *), m->data_len, v), DropReason::None);
    fix_checksums(m, v, {});
    return m;
}

// DPDK's verifier for the L4 checksum (IPv4, or IPv6 without extension headers).
bool dpdk_checksum_ok(rte_mbuf *m, const PacketView &v) {
    uint8_t *f = rte_pktmbuf_mtod(m, uint8_t *);
    if (v.family == 4) {
        auto *ip = reinterpret_cast<rte_ipv4_hdr *>(f + v.l3_off);
        return rte_ipv4_cksum(ip) == 0 && rte_ipv4_udptcp_cksum_verify(ip, f + v.l4_off) == 0;
    }
    return rte_ipv6_udptcp_cksum_verify(reinterpret_cast<rte_ipv6_hdr *>(f + v.l3_off),
                                        f + v.l4_off) == 0;
}

// Our own verification (works with extension headers): the full sum must be 0xffff.
bool our_checksum_ok(rte_mbuf *m, const PacketView &v) {
    uint8_t *f = rte_pktmbuf_mtod(m, uint8_t *);
    uint16_t stored;
    std::memcpy(&stored, f + v.l4_off + 16, 2);
    return l4_checksum(f, v) == stored;
}

class RewriteTest : public ::testing::TestWithParam<int> {};

TEST_P(RewriteTest, AddOptionAndTokenThenStripRestoresTheOriginal) {
    const int family = GetParam();
    auto frame = make_syn(family);
    PacketView v;
    rte_mbuf *m = to_mbuf(frame, v);
    std::vector<uint8_t> original(rte_pktmbuf_mtod(m, uint8_t *),
                                  rte_pktmbuf_mtod(m, uint8_t *) + m->data_len);
    auto o = tcp_options(m, v);
    const std::vector<uint8_t> old_opts(o.begin(), o.end());
    std::vector<uint8_t> opts = old_opts;
    const std::vector<uint8_t> marker = {0xfd, 0x05, 0x53, 0x57, 0x11, 0x01, 0x01, 0x01};
    opts.insert(opts.end(), marker.begin(), marker.end());
    std::vector<uint8_t> token(300, 0xab);

    ASSERT_EQ(rewrite_tcp(m, v, opts, 0, token, 1500, {}), RewriteStatus::Ok);
    EXPECT_EQ(v.tcp_hdr_len, 20 + opts.size());
    EXPECT_EQ(v.payload_len, token.size());
    EXPECT_NE(v.opt.exp_off, 0);
    EXPECT_EQ(v.opt.mss, 1460);
    EXPECT_TRUE(dpdk_checksum_ok(m, v));
    EXPECT_EQ(std::memcmp(rte_pktmbuf_mtod(m, uint8_t *) + v.payload_off, token.data(), 300), 0);

    ASSERT_EQ(rewrite_tcp(m, v, old_opts, static_cast<uint32_t>(token.size()), {}, 1500, {}),
              RewriteStatus::Ok);
    ASSERT_EQ(m->data_len, original.size());
    EXPECT_EQ(std::memcmp(rte_pktmbuf_mtod(m, uint8_t *), original.data(), original.size()), 0);
    rte_pktmbuf_free(m);
}

TEST_P(RewriteTest, KeepsHostPayloadBeforeTheToken) {
    auto frame = make_syn(GetParam(), false, 100);  // e.g. TFO data in a SYN
    PacketView v;
    rte_mbuf *m = to_mbuf(frame, v);
    auto o = tcp_options(m, v);
    std::vector<uint8_t> opts(o.begin(), o.end());
    std::vector<uint8_t> token(64, 0x5a);
    ASSERT_EQ(rewrite_tcp(m, v, opts, 0, token, 1500, {}), RewriteStatus::Ok);
    ASSERT_EQ(v.payload_len, 164u);
    const uint8_t *p = rte_pktmbuf_mtod(m, uint8_t *) + v.payload_off;
    for (int i = 0; i < 100; ++i) ASSERT_EQ(p[i], i);
    EXPECT_TRUE(dpdk_checksum_ok(m, v));
    ASSERT_EQ(rewrite_tcp(m, v, opts, 64, {}, 1500, {}), RewriteStatus::Ok);
    EXPECT_EQ(v.payload_len, 100u);
    EXPECT_TRUE(dpdk_checksum_ok(m, v));
    rte_pktmbuf_free(m);
}

TEST_P(RewriteTest, RefusesToExceedTheMtu) {
    auto frame = make_syn(GetParam(), false, 1000);
    PacketView v;
    rte_mbuf *m = to_mbuf(frame, v);
    std::vector<uint8_t> token(600, 1);
    auto before = m->data_len;
    EXPECT_EQ(rewrite_tcp(m, v, tcp_options(m, v), 0, token, 1500, {}), RewriteStatus::TooBig);
    EXPECT_EQ(m->data_len, before);
    rte_pktmbuf_free(m);
}

INSTANTIATE_TEST_SUITE_P(Families, RewriteTest, ::testing::Values(4, 6));

TEST(Rewrite, Ipv6ExtensionHeaderChecksumUsesTheL4Length) {
    auto frame = make_syn(6, true);
    PacketView v;
    rte_mbuf *m = to_mbuf(frame, v);
    ASSERT_EQ(v.proto, kProtoTcp);
    std::vector<uint8_t> token(40, 7);
    ASSERT_EQ(rewrite_tcp(m, v, tcp_options(m, v), 0, token, 1500, {}), RewriteStatus::Ok);
    EXPECT_TRUE(our_checksum_ok(m, v));
    // Corrupting one payload byte must be detected.
    rte_pktmbuf_mtod(m, uint8_t *)[v.payload_off] ^= 1;
    EXPECT_FALSE(our_checksum_ok(m, v));
    rte_pktmbuf_free(m);
}

TEST(Rewrite, ClampMss) {
    auto frame = make_syn(4);
    PacketView v;
    rte_mbuf *m = to_mbuf(frame, v);
    EXPECT_FALSE(clamp_mss(m, v, 1500));
    EXPECT_TRUE(clamp_mss(m, v, 1436));
    fix_checksums(m, v, {});
    PacketView v2;
    ASSERT_EQ(parse_packet(rte_pktmbuf_mtod(m, uint8_t *), m->data_len, v2), DropReason::None);
    EXPECT_EQ(v2.opt.mss, 1436);
    EXPECT_TRUE(dpdk_checksum_ok(m, v2));
    rte_pktmbuf_free(m);
}

}  // namespace

int main(int argc, char **argv) {
    ::testing::InitGoogleTest(&argc, argv);
    ::testing::AddGlobalTestEnvironment(new EalEnvironment);
    return RUN_ALL_TESTS();
}
