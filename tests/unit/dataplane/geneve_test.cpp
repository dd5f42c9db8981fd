// GENEVE one-arm mode's worker side (dataplane/route/geneve.hpp) without ports: frames go into
// Geneve::ingress as the worker hands them over and come back out of Geneve::egress and the
// Router's egress. The arm: 10.9.0.1/24 + fd09::1/64 (port 1 is the same arm, no addresses); the
// load balancer 10.9.0.2 / fd09::2.
#include <cstring>
#include <vector>

#include <gtest/gtest.h>
#include <rte_cycles.h>
#include <rte_ether.h>
#include <rte_fib.h>
#include <rte_fib6.h>
#include <rte_ip.h>

#include "dataplane/route/geneve.hpp"
#include "dataplane/route/router.hpp"
#include "tests/unit/packet/eal_env.hpp"

namespace {

using namespace segwire::dp;

const uint8_t kArmMac[6] = {0x02, 0, 0, 0, 0, 0x09}, kLbMac[6] = {0x02, 0xbb, 0, 0, 0, 0x02};
const uint8_t kArm4[4] = {10, 9, 0, 1}, kLb4[4] = {10, 9, 0, 2};
const uint8_t kArm6[16] = {0xfd, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
const uint8_t kLb6[16] = {0xfd, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2};

// GWLB's three options: endpoint ID, attachment ID, flow cookie.
std::vector<uint8_t> gwlb_options(uint8_t endpoint = 1) {
    return {0x01, 0x08, 1,    2,    endpoint, 2,    3,    4,    5,    6,    7,
            8,    0x01, 0x08, 2,    2,        0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6,
            0xa7, 0xa8, 0x01, 0x08, 3,        1,    0xc0, 0x0c, 0x1e, 0x5e};
}

uint16_t fold(uint32_t s) {
    while (s >> 16) s = (s & 0xffff) + (s >> 16);
    return static_cast<uint16_t>(s);
}

// An inner IPv4 TCP SYN 10.1.0.2:40000 -> 10.2.0.2:80 with MSS `mss`, checksums set.
std::vector<uint8_t> inner_syn(uint16_t mss) {
    std::vector<uint8_t> p(20 + 24, 0);
    p[0] = 0x45, p[3] = 44, p[6] = 0x40, p[8] = 64, p[9] = 6;
    p[12] = 10, p[13] = 1, p[15] = 2, p[16] = 10, p[17] = 2, p[19] = 2;
    auto *ip = reinterpret_cast<rte_ipv4_hdr *>(p.data());
    ip->hdr_checksum = rte_ipv4_cksum(ip);
    uint8_t *t = p.data() + 20;
    t[0] = 40000 >> 8, t[1] = 40000 & 0xff, t[3] = 80;
    t[7] = 1;  // seq
    t[12] = 6 << 4, t[13] = 0x02, t[14] = 0xff, t[15] = 0xff;
    t[20] = 2, t[21] = 4, t[22] = static_cast<uint8_t>(mss >> 8), t[23] = static_cast<uint8_t>(mss);
    const uint16_t ck = rte_ipv4_udptcp_cksum(ip, t);
    std::memcpy(t + 16, &ck, 2);
    return p;
}

class GeneveTest : public ::testing::Test {
  protected:
    void SetUp() override {
        static int n = 0;
        ++n;
        for (RoutedPort &p : ports_.port) {
            std::memcpy(p.mac, kArmMac, 6);
            p.mtu = 1500;
        }
        IpAddr a4{}, a6{};
        std::memcpy(a4.b, kArm4, 4);
        std::memcpy(a6.b, kArm6, 16);
        ports_.port[0].v4[ports_.port[0].n4++] = {a4, 24};
        ports_.port[0].v6[ports_.port[0].n6++] = {a6, 64};
        table_ = new RouteTable();
        rte_fib_conf c4{};
        c4.type = RTE_FIB_DIR24_8;
        c4.max_routes = 16;
        c4.dir24_8.nh_sz = RTE_FIB_DIR24_8_2B;
        c4.dir24_8.num_tbl8 = 16;
        table_->fib4 = rte_fib_create(("g4_" + std::to_string(n)).c_str(), 0, &c4);
        rte_fib6_conf c6{};
        c6.type = RTE_FIB6_TRIE;
        c6.max_routes = 16;
        c6.trie.nh_sz = RTE_FIB6_TRIE_2B;
        c6.trie.num_tbl8 = 64;
        table_->fib6 = rte_fib6_create(("g6_" + std::to_string(n)).c_str(), 0, &c6);
        ASSERT_TRUE(table_->fib4 && table_->fib6);
        table_->nh[table_->nnh++] = NextHop{0, 1, {}};
        ASSERT_EQ(rte_fib_add(table_->fib4, (10u << 24) | (9u << 16), 24, 1), 0);
        uint8_t net6[16] = {0xfd, 9};
        ASSERT_EQ(rte_fib6_add(table_->fib6, net6, 64, 1), 0);
        slot_.current.store(table_);
        tx_.stats = &stats_;
        RouterSetup s;
        s.ports = &ports_;
        s.routes = &slot_;
        s.pool = EalEnvironment::pool;
        s.worker = 100 + static_cast<uint32_t>(n);
        s.local_only = true;
        std::string err;
        router_ = std::make_unique<Router>();
        ASSERT_TRUE(router_->init(s, &tx_, rte_get_tsc_hz(), err)) << err;
        GeneveSetup g;
        g.cfg.contexts = 64;
        g.cfg.endpoints = 16;
        g.cfg.context_idle_s = 3700;
        g.arm_mtu = 1500;
        g.worker = 100 + static_cast<uint32_t>(n);
        geneve_ = std::make_unique<Geneve>();
        ASSERT_TRUE(geneve_->init(g, router_.get(), &tx_, rte_get_tsc_hz(), err)) << err;
    }
    void TearDown() override {
        geneve_.reset();
        router_.reset();
        for (uint8_t p = 0; p < 2; ++p) {
            for (uint16_t i = 0; i < tx_.n[p]; ++i) rte_pktmbuf_free(tx_.q[p][i]);
            tx_.n[p] = 0;
        }
        rte_fib_free(table_->fib4);
        rte_fib6_free(table_->fib6);
        delete table_;
    }

    // GENEVE from the load balancer to the arm, outer IPv4 or IPv6.
    rte_mbuf *frame(uint8_t family, const std::vector<uint8_t> &gnv_and_inner) {
        rte_mbuf *m = rte_pktmbuf_alloc(EalEnvironment::pool);
        const uint16_t l3 = family == 4 ? 20 : 40;
        const uint16_t len = static_cast<uint16_t>(14 + l3 + 8 + gnv_and_inner.size());
        auto *f = reinterpret_cast<uint8_t *>(rte_pktmbuf_append(m, std::max<uint16_t>(len, 60)));
        std::memset(f, 0, std::max<uint16_t>(len, 60));
        std::memcpy(f, kArmMac, 6);
        std::memcpy(f + 6, kLbMac, 6);
        const uint16_t udp_len = static_cast<uint16_t>(8 + gnv_and_inner.size());
        uint8_t *u = f + 14 + l3;
        if (family == 4) {
            f[12] = 0x08, f[13] = 0x00;
            auto *ip = reinterpret_cast<rte_ipv4_hdr *>(f + 14);
            ip->version_ihl = 0x45;
            ip->total_length = rte_cpu_to_be_16(static_cast<uint16_t>(20 + udp_len));
            ip->time_to_live = 64;
            ip->next_proto_id = 17;
            std::memcpy(&ip->src_addr, kLb4, 4);
            std::memcpy(&ip->dst_addr, kArm4, 4);
            ip->hdr_checksum = rte_ipv4_cksum(ip);
        } else {
            f[12] = 0x86, f[13] = 0xdd;
            auto *ip = reinterpret_cast<rte_ipv6_hdr *>(f + 14);
            ip->vtc_flow = rte_cpu_to_be_32(6u << 28 | 0x12345);
            ip->payload_len = rte_cpu_to_be_16(udp_len);
            ip->proto = 17;
            ip->hop_limits = 64;
            std::memcpy(ip->src_addr, kLb6, 16);
            std::memcpy(ip->dst_addr, kArm6, 16);
        }
        u[0] = 0xd0, u[1] = 0x01;  // source port 53249
        u[2] = 6081 >> 8, u[3] = 6081 & 0xff;
        u[4] = static_cast<uint8_t>(udp_len >> 8), u[5] = static_cast<uint8_t>(udp_len);
        std::memcpy(u + 8, gnv_and_inner.data(), gnv_and_inner.size());
        return m;
    }

    static std::vector<uint8_t> geneve(const std::vector<uint8_t> &opts,
                                       const std::vector<uint8_t> &inner, uint16_t proto = 0x0800,
                                       uint8_t flags = 0) {
        std::vector<uint8_t> g = {static_cast<uint8_t>(opts.size() / 4),
                                  flags,
                                  static_cast<uint8_t>(proto >> 8),
                                  static_cast<uint8_t>(proto),
                                  0,
                                  0,
                                  7,
                                  0};  // VNI 7
        g.insert(g.end(), opts.begin(), opts.end());
        g.insert(g.end(), inner.begin(), inner.end());
        return g;
    }

    bool in(rte_mbuf *m, PacketView &v) {
        EXPECT_EQ(parse_packet(rte_pktmbuf_mtod(m, const uint8_t *), m->data_len, v),
                  DropReason::None);
        geneve_->prefetch(&m, 1);
        return geneve_->ingress(m, v, 0, rte_rdtsc(), 0);
    }

    // Teaches the router the load balancer's MAC, so egress sends rather than holds.
    void learn_lb() {
        rte_mbuf *m = rte_pktmbuf_alloc(EalEnvironment::pool);
        auto *p = reinterpret_cast<uint8_t *>(rte_pktmbuf_append(m, 60));
        std::memset(p, 0, 60);
        std::memset(p, 0xff, 6);
        std::memcpy(p + 6, kLbMac, 6);
        p[12] = 0x08, p[13] = 0x06;
        const uint8_t arp[] = {0, 1, 8, 0, 6, 4, 0, 1};
        std::memcpy(p + 14, arp, 8);
        std::memcpy(p + 22, kLbMac, 6);
        std::memcpy(p + 28, kLb4, 4);
        std::memcpy(p + 38, kArm4, 4);
        PacketView v{};
        ASSERT_EQ(parse_packet(p, 60, v), DropReason::None);
        geneve_->prefetch(&m, 1);
        EXPECT_FALSE(geneve_->ingress(m, v, 0, rte_rdtsc(), 0));  // answered
        router_->egress(rte_rdtsc());
        for (uint8_t s = 0; s < 2; ++s) {
            for (uint16_t i = 0; i < tx_.n[s]; ++i) rte_pktmbuf_free(tx_.q[s][i]);
            tx_.n[s] = 0;
        }
    }

    // The first frame egress queued (the packet sent back); the rest (an ARP or ND probe of a
    // stale neighbour) freed.
    rte_mbuf *take() {
        rte_mbuf *m = tx_.n[0] ? tx_.q[0][0] : nullptr;
        for (uint16_t i = 1; i < tx_.n[0]; ++i) rte_pktmbuf_free(tx_.q[0][i]);
        tx_.n[0] = 0;
        return m;
    }

    uint64_t drops(DropReason r) const { return stats_.drops[static_cast<size_t>(r)].get(); }

    RoutedPorts ports_{};
    RouteSlot slot_;
    RouteTable *table_ = nullptr;
    WorkerStats stats_;
    TxQueues tx_;
    std::unique_ptr<Router> router_;
    std::unique_ptr<Geneve> geneve_;
};

TEST_F(GeneveTest, DecapsulatesClampsMssAndReturnsTheSameOptions) {
    learn_lb();
    const auto opts = gwlb_options();
    rte_mbuf *m = frame(4, geneve(opts, inner_syn(1460)));
    PacketView v{};
    ASSERT_TRUE(in(m, v));
    EXPECT_EQ(v.family, 4);
    EXPECT_EQ(v.proto, kProtoTcp);
    EXPECT_EQ(v.dport, 80);
    // The inner MTU is 1500 - 68: MSS 1460 becomes 1392, the checksum still right.
    EXPECT_EQ(v.opt.mss, 1392);
    auto *ip = rte_pktmbuf_mtod_offset(m, rte_ipv4_hdr *, 14);
    EXPECT_EQ(rte_ipv4_udptcp_cksum_verify(ip, reinterpret_cast<uint8_t *>(ip) + 20), 0);
    EXPECT_EQ(geneve_->stats().mss_clamped.get(), 1u);
    EXPECT_NE(geneve_->endpoint_of(m), 0);
    tx_.push(m, 1);  // forwarded, as the worker would
    geneve_->egress();
    router_->egress(rte_rdtsc());
    rte_mbuf *out = take();
    ASSERT_NE(out, nullptr);
    const uint8_t *f = rte_pktmbuf_mtod(out, const uint8_t *);
    EXPECT_EQ(std::memcmp(f, kLbMac, 6), 0);
    EXPECT_EQ(std::memcmp(f + 6, kArmMac, 6), 0);
    const auto *oip = reinterpret_cast<const rte_ipv4_hdr *>(f + 14);
    EXPECT_EQ(std::memcmp(&oip->src_addr, kArm4, 4), 0);
    EXPECT_EQ(std::memcmp(&oip->dst_addr, kLb4, 4), 0);
    EXPECT_EQ(fold(rte_raw_cksum(oip, 20)), 0xffff);  // header checksum valid
    const uint8_t *u = f + 34;
    EXPECT_EQ(u[0], 0xd0);  // ports as received
    EXPECT_EQ((u[2] << 8) | u[3], 6081);
    EXPECT_EQ(((u[4] << 8) | u[5]), out->data_len - 34);
    EXPECT_EQ(u[6] | u[7], 0);  // IPv4: zero UDP checksum
    EXPECT_EQ(std::memcmp(u + 16, opts.data(), opts.size()), 0);
    EXPECT_EQ(rte_be_to_cpu_16(oip->total_length), out->data_len - 14);
    rte_pktmbuf_free(out);
}

TEST_F(GeneveTest, IPv6OuterGetsAUdpChecksum) {
    // The load balancer resolved through a neighbour solicitation for the arm's address.
    std::vector<uint8_t> ns(14 + 40 + 32, 0);
    std::memcpy(ns.data(), kArmMac, 6);
    std::memcpy(ns.data() + 6, kLbMac, 6);
    ns[12] = 0x86, ns[13] = 0xdd;
    auto *ip6 = reinterpret_cast<rte_ipv6_hdr *>(ns.data() + 14);
    ip6->vtc_flow = rte_cpu_to_be_32(6u << 28);
    ip6->payload_len = rte_cpu_to_be_16(32);
    ip6->proto = 58;
    ip6->hop_limits = 255;
    std::memcpy(ip6->src_addr, kLb6, 16);
    std::memcpy(ip6->dst_addr, kArm6, 16);
    uint8_t *icmp = ns.data() + 54;
    icmp[0] = 135;
    std::memcpy(icmp + 8, kArm6, 16);
    icmp[24] = 1, icmp[25] = 1;
    std::memcpy(icmp + 26, kLbMac, 6);
    const uint16_t ck = rte_ipv6_udptcp_cksum(ip6, icmp);
    std::memcpy(icmp + 2, &ck, 2);
    rte_mbuf *nsm = rte_pktmbuf_alloc(EalEnvironment::pool);
    std::memcpy(rte_pktmbuf_append(nsm, static_cast<uint16_t>(ns.size())), ns.data(), ns.size());
    PacketView nv{};
    EXPECT_FALSE(in(nsm, nv));
    router_->egress(rte_rdtsc());
    for (uint16_t i = 0; i < tx_.n[0]; ++i) rte_pktmbuf_free(tx_.q[0][i]);
    tx_.n[0] = 0;

    const auto opts = gwlb_options();
    rte_mbuf *m = frame(6, geneve(opts, inner_syn(1000)));
    PacketView v{};
    ASSERT_TRUE(in(m, v));
    EXPECT_EQ(v.opt.mss, 1000);  // below the inner MTU: untouched
    tx_.push(m, 0);
    geneve_->egress();
    router_->egress(rte_rdtsc());
    rte_mbuf *out = take();
    ASSERT_NE(out, nullptr);
    auto *oip = rte_pktmbuf_mtod_offset(out, rte_ipv6_hdr *, 14);
    EXPECT_EQ(std::memcmp(oip->src_addr, kArm6, 16), 0);
    EXPECT_EQ(std::memcmp(oip->dst_addr, kLb6, 16), 0);
    EXPECT_EQ(rte_be_to_cpu_32(oip->vtc_flow) & 0xfffff, 0x12345u);  // the flow label kept
    const uint8_t *u = reinterpret_cast<const uint8_t *>(oip) + 40;
    EXPECT_NE(u[6] | u[7], 0);
    EXPECT_EQ(rte_ipv6_udptcp_cksum_verify(oip, u), 0);
    EXPECT_EQ(std::memcmp(u + 16, opts.data(), opts.size()), 0);
    rte_pktmbuf_free(out);
}

TEST_F(GeneveTest, MalformedIsDroppedByReason) {
    const auto inner = inner_syn(1460);
    auto critical = gwlb_options();
    critical.insert(critical.end(), {0x0f, 0xf0, 0x85, 1, 0, 0, 0, 0});  // unknown, critical
    struct Case {
        std::vector<uint8_t> body;
        DropReason reason;
    } cases[] = {
        {{0, 0, 8}, DropReason::GeneveTruncated},
        {[&] {
             auto g = geneve({}, inner);
             g[0] |= 0x40;  // version 1
             return g;
         }(),
         DropReason::GeneveBadVersion},
        {[&] {
             auto g = geneve(gwlb_options(), {});
             g[0] = 20;  // 80 bytes of options claimed
             return g;
         }(),
         DropReason::GeneveBadOptions},
        {[&] {
             auto g = geneve(gwlb_options(), inner);
             g[8 + 3] = 9;  // the first option's length runs past the option area
             return g;
         }(),
         DropReason::GeneveBadOptions},
        {geneve(critical, inner, 0x0800, 0x40), DropReason::GeneveCriticalOption},
        {geneve({}, inner, 0x0800, 0x80), DropReason::GeneveControl},
        {geneve({}, inner, 0x6558), DropReason::GeneveBadProtocol},
        {geneve({}, inner, 0x86dd), DropReason::GeneveBadProtocol},
    };
    for (const Case &c : cases) {
        const uint64_t before = drops(c.reason);
        PacketView v{};
        EXPECT_FALSE(in(frame(4, c.body), v));
        EXPECT_EQ(drops(c.reason), before + 1) << drop_reason_name(c.reason);
    }
    EXPECT_EQ(tx_.n[0] + tx_.n[1], 0);  // nothing forwarded or answered
    // An unknown option without the critical bit is carried.
    auto extra = gwlb_options();
    extra.insert(extra.end(), {0x0f, 0xf0, 0x05, 1, 0, 0, 0, 0});
    PacketView v{};
    rte_mbuf *m = frame(4, geneve(extra, inner));
    EXPECT_TRUE(in(m, v));
    rte_pktmbuf_free(m);
}

TEST_F(GeneveTest, EndpointsSeparateEqualInnerTuples) {
    PacketView v1{}, v2{}, v3{};
    rte_mbuf *a = frame(4, geneve(gwlb_options(1), inner_syn(1000)));
    rte_mbuf *b = frame(4, geneve(gwlb_options(2), inner_syn(1000)));
    auto other_cookie = gwlb_options(1);
    other_cookie.back() ^= 1;  // same endpoint, another flow cookie: another context
    rte_mbuf *c = frame(4, geneve(other_cookie, inner_syn(1000)));
    ASSERT_TRUE(in(a, v1));
    ASSERT_TRUE(in(b, v2));
    ASSERT_TRUE(in(c, v3));
    EXPECT_NE(geneve_->endpoint_of(a), geneve_->endpoint_of(b));
    EXPECT_EQ(geneve_->endpoint_of(a), geneve_->endpoint_of(c));
    EXPECT_NE(std::memcmp(rte_pktmbuf_mtod(a, uint8_t *), rte_pktmbuf_mtod(c, uint8_t *), 6), 0);
    rte_pktmbuf_free(a);
    rte_pktmbuf_free(b);
    rte_pktmbuf_free(c);
}

}  // namespace

int main(int argc, char **argv) {
    ::testing::InitGoogleTest(&argc, argv);
    ::testing::AddGlobalTestEnvironment(new EalEnvironment);
    return RUN_ALL_TESTS();
}
