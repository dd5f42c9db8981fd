// The packet builder (dataplane/packet/build.hpp): each kind of frame segwire sends (RST,
// confirmation ACK with options, UDP control datagram with an RFC 9868 surplus), IPv4 and IPv6,
// with and without VLAN tags, parsed back with the project's parser, every field checked, and
// checksums verified with DPDK's own helpers (an independent implementation). The last test holds
// the bytes the hand-written builders it replaced produced for the same inputs.
#include "dataplane/packet/build.hpp"

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <rte_ip.h>
#include <rte_mbuf.h>
#include <rte_tcp.h>
#include <rte_udp.h>

#include "crypto/tcp_options.hpp"
#include "crypto/wire.hpp"
#include "dataplane/packet/rewrite.hpp"
#include "tests/unit/dataplane/frame_builder.hpp"
#include "tests/unit/packet/eal_env.hpp"

#include "tests/unit/alloc_counter.hpp"

namespace {

using namespace segwire;
using namespace segwire::dp;
using dptest::Bytes;
using dptest::Tag;
namespace wire = crypto::wire;

// ---- inputs: a received packet of the flow ---------------------------------------------------

const std::vector<Tag> kNoTag = {};
const std::vector<Tag> kOneTag = {{dptest::kTpid8021q, 0x0123}};
const std::vector<Tag> kQinq = {{dptest::kTpid8021ad, 0x0064}, {dptest::kTpid8021q, 0x20c8}};

// A data segment with timestamps, as A's client sends it.
Bytes tcp_frame(int family, const std::vector<Tag> &tags) {
    dptest::TcpSpec t;
    t.sport = 40000, t.dport = 443, t.seq = 0x11223344, t.ack = 0x55667788, t.flags = kTcpAck;
    t.options = {1, 1, 8, 10, 0, 0, 0, 7, 0, 0, 0, 9};
    t.payload = dptest::seq_bytes(5);
    if (family == 4) return dptest::eth(dptest::kEthIpv4, dptest::ipv4({}, dptest::tcp(t)), tags);
    return dptest::eth(dptest::kEthIpv6, dptest::ipv6({}, dptest::tcp(t)), tags);
}

Bytes udp_frame(int family, const std::vector<Tag> &tags) {
    dptest::UdpSpec u;
    u.sport = 5000, u.dport = 6000, u.payload = dptest::seq_bytes(10);
    dptest::Ip4Spec ip4;
    ip4.proto = kProtoUdp;
    dptest::Ip6Spec ip6;
    ip6.proto = kProtoUdp;
    if (family == 4) return dptest::eth(dptest::kEthIpv4, dptest::ipv4(ip4, dptest::udp(u)), tags);
    return dptest::eth(dptest::kEthIpv6, dptest::ipv6(ip6, dptest::udp(u)), tags);
}

// B's confirmation option padded with NOPs, as send_confirm writes it.
std::vector<uint8_t> confirm_options() {
    uint8_t mac[wire::kMacLen];
    for (size_t i = 0; i < sizeof mac; ++i) mac[i] = static_cast<uint8_t>(0xa0 + i);
    std::vector<uint8_t> opt(24, crypto::kTcpOptNop);
    EXPECT_EQ(wire::write_tcp_option(opt, wire::MsgType::Confirm, mac), wire::kAckOptLen);
    return opt;
}

std::vector<uint8_t> body(size_t n) {
    std::vector<uint8_t> b(n);
    for (size_t i = 0; i < n; ++i) b[i] = static_cast<uint8_t>(0x30 + i * 7);
    return b;
}

// The surplus udp_send_ctl sends: UDP Length 8, so the surplus starts at an even offset.
std::vector<uint8_t> surplus_for(const std::vector<uint8_t> &b) {
    std::vector<uint8_t> s(wire::udp_surplus_len(b.size(), false));
    EXPECT_EQ(wire::write_udp_surplus(s, false, b), s.size());
    return s;
}

constexpr uint8_t kMacs[2][6] = {{0x02, 0, 0, 0, 0, 0xaa}, {0x02, 0, 0, 0, 0, 0xbb}};
constexpr uint32_t kAckSeen[2] = {0x10000001, 0x20000002};
constexpr TxChecksum kSoftware{};
constexpr TxChecksum kOffload{true, true, true};

struct MbufFree {
    void operator()(rte_mbuf *m) const { rte_pktmbuf_free(m); }
};
using Mbuf = std::unique_ptr<rte_mbuf, MbufFree>;

// A frame in an mbuf with its parse.
struct Packet {
    Mbuf m;
    PacketView v{};
    const uint8_t *data() const { return rte_pktmbuf_mtod(m.get(), const uint8_t *); }
    template <class T>
    const T *at(uint32_t off) const {
        return reinterpret_cast<const T *>(data() + off);
    }
};

Packet receive(const Bytes &frame) {
    Packet p{Mbuf(rte_pktmbuf_alloc(EalEnvironment::pool))};
    EXPECT_NE(p.m, nullptr);
    std::memcpy(rte_pktmbuf_append(p.m.get(), static_cast<uint16_t>(frame.size())), frame.data(),
                frame.size());
    EXPECT_EQ(parse_packet(p.data(), p.m->data_len, p.v), DropReason::None);
    return p;
}

// A built frame parsed back: it must parse and end where its IP datagram ends.
Packet parse_built(rte_mbuf *m) {
    Packet p{Mbuf(m)};
    EXPECT_NE(m, nullptr);
    if (!m) return p;
    EXPECT_EQ(m->nb_segs, 1);
    EXPECT_EQ(parse_packet(p.data(), m->data_len, p.v), DropReason::None);
    EXPECT_EQ(p.v.ip_end, m->data_len);
    return p;
}

// ---- checks -----------------------------------------------------------------------------------

// DPDK's verification of the IPv4 header checksum and the L4 checksum over the whole IP payload.
bool dpdk_checksums_ok(const Packet &p) {
    if (p.v.family == 4) {
        const auto *ip = p.at<rte_ipv4_hdr>(p.v.l3_off);
        return rte_ipv4_cksum(ip) == 0 &&
               rte_ipv4_udptcp_cksum_verify(ip, p.data() + p.v.l4_off) == 0;
    }
    return rte_ipv6_udptcp_cksum_verify(p.at<rte_ipv6_hdr>(p.v.l3_off), p.data() + p.v.l4_off) == 0;
}

// The UDP checksum covers the UDP Length only (RFC 9868): DPDK verifies a copy whose IP length
// ends the datagram there.
bool udp_checksum_ok(const Packet &p) {
    std::vector<uint8_t> f(p.data(), p.data() + p.v.l4_off + p.v.udp_len);
    const uint16_t ip_payload = p.v.udp_len;
    if (p.v.family == 4) {
        auto *ip = reinterpret_cast<rte_ipv4_hdr *>(f.data() + p.v.l3_off);
        if (rte_ipv4_cksum(ip) != 0) return false;
        ip->total_length =
            rte_cpu_to_be_16(static_cast<uint16_t>(sizeof(rte_ipv4_hdr) + ip_payload));
        return rte_ipv4_udptcp_cksum_verify(ip, f.data() + p.v.l4_off) == 0;
    }
    auto *ip = reinterpret_cast<rte_ipv6_hdr *>(f.data() + p.v.l3_off);
    ip->payload_len = rte_cpu_to_be_16(ip_payload);
    return rte_ipv6_udptcp_cksum_verify(ip, f.data() + p.v.l4_off) == 0;
}

// Ethernet: the addresses expected, and exactly the received frame's VLAN tags and ethertype.
void expect_l2(const Packet &out, const Packet &in, bool mirrored) {
    const uint8_t *o = out.data(), *i = in.data();
    EXPECT_EQ(std::memcmp(o, i + (mirrored ? 6 : 0), 6), 0) << "destination MAC";
    EXPECT_EQ(std::memcmp(o + 6, i + (mirrored ? 0 : 6), 6), 0) << "source MAC";
    ASSERT_EQ(out.v.l3_off, in.v.l3_off);
    EXPECT_EQ(std::memcmp(o + 12, i + 12, in.v.l3_off - 12u), 0) << "VLAN tags and ethertype";
    EXPECT_EQ(out.v.vlan_count, in.v.vlan_count);
}

// IP header fields the builder owns; addresses and ports as expected.
void expect_l3(const Packet &p, uint8_t family, uint8_t proto, const IpAddr &src,
               const IpAddr &dst) {
    EXPECT_EQ(p.v.family, family);
    EXPECT_EQ(p.v.proto, proto);
    EXPECT_EQ(p.v.ttl, 64);
    EXPECT_FALSE(p.v.fragment);
    EXPECT_TRUE(p.v.src == src);
    EXPECT_TRUE(p.v.dst == dst);
    if (family == 4) {
        const auto *ip = p.at<rte_ipv4_hdr>(p.v.l3_off);
        EXPECT_EQ(ip->version_ihl, 0x45);
        EXPECT_EQ(ip->type_of_service, 0);
        EXPECT_EQ(ip->packet_id, 0);
        EXPECT_EQ(rte_be_to_cpu_16(ip->fragment_offset), RTE_IPV4_HDR_DF_FLAG);
        EXPECT_EQ(p.v.l4_off, p.v.l3_off + sizeof(rte_ipv4_hdr));
    } else {
        EXPECT_EQ(rte_be_to_cpu_32(p.at<rte_ipv6_hdr>(p.v.l3_off)->vtc_flow), 0x60000000u);
        EXPECT_EQ(p.v.l4_off, p.v.l3_off + sizeof(rte_ipv6_hdr));
    }
}

void expect_tcp(const Packet &p, uint16_t sport, uint16_t dport, uint32_t seq, uint32_t ack,
                uint8_t flags, uint16_t window, const std::vector<uint8_t> &options) {
    EXPECT_EQ(p.v.sport, sport);
    EXPECT_EQ(p.v.dport, dport);
    EXPECT_EQ(p.v.seq, seq);
    EXPECT_EQ(p.v.ack, ack);
    EXPECT_EQ(p.v.tcp_flags, flags);
    EXPECT_EQ(p.v.tcp_hdr_len, sizeof(rte_tcp_hdr) + options.size());
    EXPECT_EQ(p.v.payload_len, 0u);
    const auto *t = p.at<rte_tcp_hdr>(p.v.l4_off);
    EXPECT_EQ(rte_be_to_cpu_16(t->rx_win), window);
    EXPECT_EQ(t->tcp_urp, 0);
    if (!options.empty()) {
        EXPECT_EQ(std::memcmp(t + 1, options.data(), options.size()), 0);
    }
}

// ---- each kind of frame, both families, with and without VLAN tags ----------------------------

struct Variant {
    int family;
    std::vector<Tag> tags;
};
void PrintTo(const Variant &v, std::ostream *os) {
    *os << "IPv" << v.family << " with " << v.tags.size() << " VLAN tag(s)";
}

class BuildTest : public ::testing::TestWithParam<Variant> {};

TEST_P(BuildTest, ResetToTheSourceMirrorsTheFlow) {
    const Packet in = receive(tcp_frame(GetParam().family, GetParam().tags));
    const Packet r =
        parse_built(build_tcp(EalEnvironment::pool, addressing_of(in.m.get(), in.v, true),
                              {0, in.v.seq + 1, kTcpRst | kTcpAck}, kSoftware));
    ASSERT_NE(r.m, nullptr);
    expect_l2(r, in, true);
    expect_l3(r, in.v.family, kProtoTcp, in.v.dst, in.v.src);
    expect_tcp(r, in.v.dport, in.v.sport, 0, in.v.seq + 1, kTcpRst | kTcpAck, 0, {});
    EXPECT_TRUE(dpdk_checksums_ok(r));
    EXPECT_EQ(r.m->ol_flags, 0u);
}

TEST_P(BuildTest, ResetOnToTheDestinationKeepsTheFlowsDirection) {
    const Packet in = receive(tcp_frame(GetParam().family, GetParam().tags));
    const Packet r = parse_built(build_tcp_reset(EalEnvironment::pool, in.m.get(), in.v, false,
                                                 0x01020304, 0x0a0b0c0d, true, kSoftware));
    ASSERT_NE(r.m, nullptr);
    expect_l2(r, in, false);
    expect_l3(r, in.v.family, kProtoTcp, in.v.src, in.v.dst);
    expect_tcp(r, in.v.sport, in.v.dport, 0x01020304, 0x0a0b0c0d, kTcpRst | kTcpAck, 0, {});
    EXPECT_TRUE(dpdk_checksums_ok(r));
}

TEST_P(BuildTest, AckIsWrittenOnlyWithTheAckFlag) {
    const Packet in = receive(tcp_frame(GetParam().family, GetParam().tags));
    const Packet r = parse_built(
        build_tcp_reset(EalEnvironment::pool, in.m.get(), in.v, true, 77, 99, false, kSoftware));
    ASSERT_NE(r.m, nullptr);
    expect_tcp(r, in.v.dport, in.v.sport, 77, 0, kTcpRst, 0, {});
    EXPECT_TRUE(dpdk_checksums_ok(r));
}

TEST_P(BuildTest, ConfirmationAckCarriesItsOptions) {
    const Packet in = receive(tcp_frame(GetParam().family, GetParam().tags));
    const std::vector<uint8_t> opt = confirm_options();
    const Packet c =
        parse_built(build_tcp_control(EalEnvironment::pool, in.m.get(), in.v, true, in.v.ack,
                                      in.v.seq, kTcpAck, 0xffff, opt, kSoftware));
    ASSERT_NE(c.m, nullptr);
    expect_l2(c, in, true);
    expect_l3(c, in.v.family, kProtoTcp, in.v.dst, in.v.src);
    expect_tcp(c, in.v.dport, in.v.sport, in.v.ack, in.v.seq, kTcpAck, 0xffff, opt);
    wire::TcpOptionView ov;
    ASSERT_EQ(wire::find_tcp_option(tcp_options(c.m.get(), c.v), ov), wire::WireStatus::Ok);
    EXPECT_EQ(ov.type, wire::MsgType::Confirm);
    EXPECT_EQ(std::memcmp(ov.mac, opt.data() + 5, wire::kMacLen), 0);
    EXPECT_EQ(c.v.opt.exp_off, c.v.l4_off + sizeof(rte_tcp_hdr));
    EXPECT_TRUE(dpdk_checksums_ok(c));
    // The check can fail: one flipped option byte.
    rte_pktmbuf_mtod(c.m.get(), uint8_t *)[c.v.l4_off + sizeof(rte_tcp_hdr) + 7] ^= 1;
    EXPECT_FALSE(dpdk_checksums_ok(c));
}

TEST_P(BuildTest, UdpControlDatagramCarriesItsSurplus) {
    const Packet in = receive(udp_frame(GetParam().family, GetParam().tags));
    for (bool to_source : {true, false}) {
        for (size_t n : {wire::kUdpResetLen, wire::kUdpRejectLen, size_t{300}}) {
            SCOPED_TRACE(std::to_string(n) + (to_source ? " to source" : " to destination"));
            const std::vector<uint8_t> b = body(n), surplus = surplus_for(b);
            const Packet u = parse_built(build_udp(EalEnvironment::pool,
                                                   addressing_of(in.m.get(), in.v, to_source), {},
                                                   surplus, kSoftware));
            ASSERT_NE(u.m, nullptr);
            expect_l2(u, in, to_source);
            expect_l3(u, in.v.family, kProtoUdp, to_source ? in.v.dst : in.v.src,
                      to_source ? in.v.src : in.v.dst);
            EXPECT_EQ(u.v.sport, to_source ? in.v.dport : in.v.sport);
            EXPECT_EQ(u.v.dport, to_source ? in.v.sport : in.v.dport);
            EXPECT_EQ(u.v.udp_len, sizeof(rte_udp_hdr));
            EXPECT_EQ(u.v.payload_len, 0u);
            const uint32_t start = u.v.l4_off + sizeof(rte_udp_hdr);
            ASSERT_EQ(u.v.ip_end - start, surplus.size());
            EXPECT_EQ(std::memcmp(u.data() + start, surplus.data(), surplus.size()), 0);
            std::span<const uint8_t> got;
            ASSERT_EQ(
                wire::parse_udp_surplus({u.data() + start, surplus.size()}, false, false, got),
                wire::WireStatus::Ok);
            EXPECT_EQ(std::vector<uint8_t>(got.begin(), got.end()), b);
            EXPECT_TRUE(udp_checksum_ok(u));
            EXPECT_EQ(u.m->ol_flags, 0u);
        }
    }
}

TEST_P(BuildTest, UdpDatagramWithPayloadAndNoSurplus) {
    const Packet in = receive(udp_frame(GetParam().family, GetParam().tags));
    const std::vector<uint8_t> payload = body(33);
    const Packet u = parse_built(build_udp(
        EalEnvironment::pool, addressing_of(in.m.get(), in.v, false), payload, {}, kSoftware));
    ASSERT_NE(u.m, nullptr);
    EXPECT_EQ(u.v.udp_len, sizeof(rte_udp_hdr) + payload.size());
    EXPECT_EQ(u.v.payload_len, payload.size());
    EXPECT_EQ(std::memcmp(u.data() + u.v.payload_off, payload.data(), payload.size()), 0);
    EXPECT_TRUE(dpdk_checksums_ok(u));
}

// With offload the NIC fills the checksums: the flags and header lengths it needs are set and the
// L4 field holds the pseudo-header sum, as DPDK's rte_ipv4/6_phdr_cksum compute it.
TEST_P(BuildTest, OffloadLeavesThePseudoHeaderSumForTheNic) {
    const Packet in = receive(tcp_frame(GetParam().family, GetParam().tags));
    const Packet r = parse_built(
        build_tcp_reset(EalEnvironment::pool, in.m.get(), in.v, true, 1, 2, true, kOffload));
    ASSERT_NE(r.m, nullptr);
    const bool v4 = r.v.family == 4;
    EXPECT_EQ(r.m->l2_len, r.v.l3_off);
    EXPECT_EQ(r.m->l3_len, r.v.l4_off - r.v.l3_off);
    const uint64_t want = v4 ? RTE_MBUF_F_TX_IPV4 | RTE_MBUF_F_TX_IP_CKSUM | RTE_MBUF_F_TX_TCP_CKSUM
                             : RTE_MBUF_F_TX_IPV6 | RTE_MBUF_F_TX_TCP_CKSUM;
    EXPECT_EQ(r.m->ol_flags, want);
    const uint16_t phdr = v4 ? rte_ipv4_phdr_cksum(r.at<rte_ipv4_hdr>(r.v.l3_off), 0)
                             : rte_ipv6_phdr_cksum(r.at<rte_ipv6_hdr>(r.v.l3_off), 0);
    EXPECT_EQ(r.at<rte_tcp_hdr>(r.v.l4_off)->cksum, phdr);
    if (v4) {
        EXPECT_EQ(r.at<rte_ipv4_hdr>(r.v.l3_off)->hdr_checksum, 0);
    }
}

// A NIC would sum the surplus too: with one, the UDP checksum is computed in software whatever
// the port offers (the IPv4 header checksum may still be offloaded).
TEST_P(BuildTest, UdpSurplusIsNeverLeftToTheNic) {
    const Packet in = receive(udp_frame(GetParam().family, GetParam().tags));
    const Packet u =
        parse_built(build_udp(EalEnvironment::pool, addressing_of(in.m.get(), in.v, true), {},
                              surplus_for(body(wire::kUdpAckLen)), kOffload));
    ASSERT_NE(u.m, nullptr);
    EXPECT_EQ(u.m->ol_flags & RTE_MBUF_F_TX_L4_MASK, 0u);
    if (u.v.family == 4) {
        EXPECT_EQ(u.m->ol_flags, RTE_MBUF_F_TX_IPV4 | RTE_MBUF_F_TX_IP_CKSUM);
        // What the NIC would write into the header:
        auto *ip = rte_pktmbuf_mtod_offset(u.m.get(), rte_ipv4_hdr *, u.v.l3_off);
        ip->hdr_checksum = rte_ipv4_cksum(ip);
    }
    EXPECT_TRUE(udp_checksum_ok(u));

    const Packet plain = parse_built(build_udp(
        EalEnvironment::pool, addressing_of(in.m.get(), in.v, true), body(9), {}, kOffload));
    ASSERT_NE(plain.m, nullptr);
    EXPECT_EQ(plain.m->ol_flags & RTE_MBUF_F_TX_L4_MASK, RTE_MBUF_F_TX_UDP_CKSUM);
}

INSTANTIATE_TEST_SUITE_P(Frames, BuildTest,
                         ::testing::Values(Variant{4, kNoTag}, Variant{6, kNoTag},
                                           Variant{4, kOneTag}, Variant{6, kQinq}),
                         [](const auto &info) {
                             return "v" + std::to_string(info.param.family) + "_tags" +
                                    std::to_string(info.param.tags.size());
                         });

// ---- a policy cut: no packet in hand, the flow's own key and MACs -----------------------------

TEST(Build, PolicyCutResetsBothHostsFromTheFlowKey) {
    for (int family : {4, 6}) {
        SCOPED_TRACE(family);
        const Packet in = receive(tcp_frame(family, kNoTag));
        FlowKey key{};
        make_flow_key(in.v, key);
        for (uint8_t to : {kSideA, kSideB}) {
            const uint8_t from = to ^ 1;
            const Packet r = parse_built(
                build_tcp(EalEnvironment::pool, addressing_of(key, kMacs, to),
                          {kAckSeen[to], kAckSeen[from], kTcpRst | kTcpAck}, kSoftware));
            ASSERT_NE(r.m, nullptr);
            EXPECT_EQ(std::memcmp(r.data(), kMacs[to], 6), 0);
            EXPECT_EQ(std::memcmp(r.data() + 6, kMacs[from], 6), 0);
            EXPECT_EQ(r.v.vlan_count, 0);
            EXPECT_EQ(r.v.l3_off, sizeof(rte_ether_hdr));
            expect_l3(r, key.family, kProtoTcp, from == kSideA ? key.a : key.b,
                      to == kSideA ? key.a : key.b);
            expect_tcp(r, from == kSideA ? key.pa : key.pb, to == kSideA ? key.pa : key.pb,
                       kAckSeen[to], kAckSeen[from], kTcpRst | kTcpAck, 0, {});
            EXPECT_TRUE(dpdk_checksums_ok(r));
        }
    }
}

// ---- refusals, allocation ---------------------------------------------------------------------

TEST(Build, RefusesBadOptionLengthsAndAnEmptyPool) {
    const Packet in = receive(tcp_frame(4, kNoTag));
    const Addressing a = addressing_of(in.m.get(), in.v, true);
    const std::vector<uint8_t> three(3, crypto::kTcpOptNop), too_long(44, crypto::kTcpOptNop);
    EXPECT_EQ(build_tcp(EalEnvironment::pool, a, {1, 2, kTcpAck, 0, three}, kSoftware), nullptr);
    EXPECT_EQ(build_tcp(EalEnvironment::pool, a, {1, 2, kTcpAck, 0, too_long}, kSoftware), nullptr);

    rte_mempool *tiny = rte_pktmbuf_pool_create("tiny_pool", 1, 0, 0, RTE_MBUF_DEFAULT_BUF_SIZE, 0);
    ASSERT_NE(tiny, nullptr);
    Mbuf only(rte_pktmbuf_alloc(tiny));
    ASSERT_NE(only, nullptr);
    EXPECT_EQ(build_tcp(tiny, a, {1, 2, kTcpRst}, kSoftware), nullptr);
    EXPECT_EQ(build_udp(tiny, a, {}, surplus_for(body(3)), kSoftware), nullptr);
    only.reset();
    Mbuf again(build_tcp(tiny, a, {1, 2, kTcpRst}, kSoftware));
    EXPECT_NE(again, nullptr);
    again.reset();
    rte_mempool_free(tiny);
}

TEST(Build, AllocatesNothingButTheMbuf) {
    const Packet tcp_in = receive(tcp_frame(6, kQinq));
    const Packet udp_in = receive(udp_frame(4, kOneTag));
    const std::vector<uint8_t> opt = confirm_options(), surplus = surplus_for(body(200));
    FlowKey key{};
    make_flow_key(tcp_in.v, key);
    rte_mbuf *out[4];
    g_allocations = 0;
    g_counting = true;
    out[0] = build_tcp_control(EalEnvironment::pool, tcp_in.m.get(), tcp_in.v, true, 1, 2, kTcpAck,
                               0xffff, opt, kSoftware);
    out[1] = build_tcp(EalEnvironment::pool, addressing_of(key, kMacs, kSideB),
                       {1, 2, kTcpRst | kTcpAck}, kOffload);
    out[2] = build_udp(EalEnvironment::pool, addressing_of(udp_in.m.get(), udp_in.v, true), {},
                       surplus, kSoftware);
    out[3] = build_udp(EalEnvironment::pool, addressing_of(udp_in.m.get(), udp_in.v, false),
                       surplus, {}, kOffload);
    g_counting = false;
    EXPECT_EQ(g_allocations, 0u);
    for (rte_mbuf *m : out) {
        EXPECT_NE(m, nullptr);
        rte_pktmbuf_free(m);
    }
}

// ---- the same bytes as before -----------------------------------------------------------------

// Frames from the hand-written builders this one replaced (rewrite.cpp's build_tcp_control,
// Worker::udp_send_ctl, the 74-byte template of Worker::reevaluate), recorded once for the inputs
// above: bytes, ol_flags, l2_len, l3_len.
struct Golden {
    const char *name;
    uint64_t ol_flags;
    uint8_t l2_len;
    uint16_t l3_len;
    const char *hex;
};
const Golden kGolden[] = {
#include "tests/unit/packet/build_golden.inc"
};

std::string hex_of(const rte_mbuf *m) {
    static const char digits[] = "0123456789abcdef";
    std::string s;
    const uint8_t *f = rte_pktmbuf_mtod(m, const uint8_t *);
    for (uint32_t i = 0; i < m->data_len; ++i) {
        s += digits[f[i] >> 4];
        s += digits[f[i] & 15];
    }
    return s;
}

TEST(Build, SameBytesAsTheBuildersItReplaced) {
    rte_mempool *pool = EalEnvironment::pool;
    std::vector<std::pair<std::string, rte_mbuf *>> built;
    auto add = [&](const char *name, rte_mbuf *m) { built.emplace_back(name, m); };
    const std::vector<uint8_t> co = confirm_options();

    const Packet t4 = receive(tcp_frame(4, kNoTag));
    add("rst_v4_to_source",
        build_tcp_reset(pool, t4.m.get(), t4.v, true, 0, t4.v.seq + 1, true, kSoftware));
    add("rst_v4_to_dest_offload",
        build_tcp_reset(pool, t4.m.get(), t4.v, false, 0x01020304, 0x0a0b0c0d, true, kOffload));
    add("confirm_v4", build_tcp_control(pool, t4.m.get(), t4.v, true, t4.v.ack, t4.v.seq, kTcpAck,
                                        0xffff, co, kSoftware));
    add("confirm_v4_offload", build_tcp_control(pool, t4.m.get(), t4.v, true, t4.v.ack, t4.v.seq,
                                                kTcpAck, 0xffff, co, kOffload));
    const Packet t41 = receive(tcp_frame(4, kOneTag));
    add("rst_v4_vlan_to_dest",
        build_tcp_reset(pool, t41.m.get(), t41.v, false, 0x01020304, 0x0a0b0c0d, true, kSoftware));
    const Packet t6 = receive(tcp_frame(6, kQinq));
    add("rst_v6_qinq_to_source",
        build_tcp_reset(pool, t6.m.get(), t6.v, true, 7, 9, true, kSoftware));
    add("confirm_v6_qinq", build_tcp_control(pool, t6.m.get(), t6.v, true, t6.v.ack, t6.v.seq,
                                             kTcpAck, 0xffff, co, kSoftware));
    add("confirm_v6_qinq_offload", build_tcp_control(pool, t6.m.get(), t6.v, true, t6.v.ack,
                                                     t6.v.seq, kTcpAck, 0xffff, co, kOffload));
    auto udp = [&](const Packet &in, bool to_source, size_t n) {
        return build_udp(pool, addressing_of(in.m.get(), in.v, to_source), {}, surplus_for(body(n)),
                         kSoftware);
    };
    const Packet u4 = receive(udp_frame(4, kNoTag));
    add("udp_v4_to_source_reject", udp(u4, true, wire::kUdpRejectLen));
    add("udp_v4_to_dest_reset", udp(u4, false, wire::kUdpResetLen));
    add("udp_v4_to_dest_long", udp(u4, false, 300));
    const Packet u6 = receive(udp_frame(6, kOneTag));
    add("udp_v6_vlan_to_source_ack", udp(u6, true, wire::kUdpAckLen));
    add("udp_v6_vlan_to_dest_token", udp(u6, false, 200));
    auto cut = [&](const std::string &name, int family, const TxChecksum &tx) {
        FlowKey key{};
        make_flow_key(receive(tcp_frame(family, kNoTag)).v, key);
        for (uint8_t to : {kSideA, kSideB})
            built.emplace_back(name + (to == kSideA ? "_to_a" : "_to_b"),
                               build_tcp(pool, addressing_of(key, kMacs, to),
                                         {kAckSeen[to], kAckSeen[to ^ 1], kTcpRst | kTcpAck}, tx));
    };
    cut("cut_v4", 4, kSoftware);
    cut("cut_v6", 6, kSoftware);
    cut("cut_v4_offload", 4, kOffload);

    ASSERT_EQ(built.size(), std::size(kGolden));
    for (size_t i = 0; i < built.size(); ++i) {
        const Golden &g = kGolden[i];
        rte_mbuf *m = built[i].second;
        SCOPED_TRACE(g.name);
        ASSERT_EQ(built[i].first, g.name);
        ASSERT_NE(m, nullptr);
        EXPECT_EQ(hex_of(m), g.hex);
        EXPECT_EQ(m->ol_flags, g.ol_flags);
        if (g.ol_flags) {  // without offload the old builders left them unset, as does this one
            EXPECT_EQ(m->l2_len, g.l2_len);
            EXPECT_EQ(m->l3_len, g.l3_len);
        }
        rte_pktmbuf_free(m);
    }
}

}  // namespace

int main(int argc, char **argv) {
    ::testing::InitGoogleTest(&argc, argv);
    ::testing::AddGlobalTestEnvironment(new EalEnvironment);
    return RUN_ALL_TESTS();
}
