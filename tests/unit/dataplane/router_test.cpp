// Routed mode's worker side (dataplane/route/router.hpp) without ports: frames go into
// Router::ingress as the worker hands them over, and what egress queues is read back from the
// TxQueues. Two ports: inside 10.1.0.1/24 + fd01::1/64, outside 10.2.0.1/24 + fd02::1/64
// (MTU 1280), the FIB built here as control/routing.cpp builds it.
#include <cstring>
#include <vector>

#include <gtest/gtest.h>
#include <rte_arp.h>
#include <rte_cycles.h>
#include <rte_ether.h>
#include <rte_fib.h>
#include <rte_fib6.h>
#include <rte_ip.h>

#include "dataplane/packet/build.hpp"
#include "dataplane/route/router.hpp"
#include "tests/unit/packet/eal_env.hpp"

namespace {

using namespace segwire::dp;

const uint8_t kMacIn[6] = {0x02, 0, 0, 0, 0, 0x01}, kMacOut[6] = {0x02, 0, 0, 0, 0, 0x02};
const uint8_t kHostA[6] = {0x02, 0xaa, 0, 0, 0, 0x01}, kHostB[6] = {0x02, 0xbb, 0, 0, 0, 0x02};

IpAddr v4(uint8_t a, uint8_t b, uint8_t c, uint8_t d) {
    IpAddr x{};
    x.b[0] = a, x.b[1] = b, x.b[2] = c, x.b[3] = d;
    return x;
}
IpAddr v6(uint8_t net, uint8_t host) {
    IpAddr x{};
    x.b[0] = 0xfd, x.b[1] = net, x.b[15] = host;
    return x;
}

class RouterTest : public ::testing::Test {
  protected:
    void SetUp() override {
        static int n = 0;
        ++n;
        RoutedPort &in = ports_.port[0], &out = ports_.port[1];
        std::memcpy(in.mac, kMacIn, 6);
        std::memcpy(out.mac, kMacOut, 6);
        in.mtu = 1500;
        out.mtu = 1280;
        in.v4[in.n4++] = {v4(10, 1, 0, 1), 24};
        out.v4[out.n4++] = {v4(10, 2, 0, 1), 24};
        in.v6[in.n6++] = {v6(1, 1), 64};
        out.v6[out.n6++] = {v6(2, 1), 64};
        table_ = new RouteTable();
        rte_fib_conf c4{};
        c4.type = RTE_FIB_DIR24_8;
        c4.max_routes = 16;
        c4.dir24_8.nh_sz = RTE_FIB_DIR24_8_2B;
        c4.dir24_8.num_tbl8 = 16;
        table_->fib4 = rte_fib_create(("t4_" + std::to_string(n)).c_str(), 0, &c4);
        rte_fib6_conf c6{};
        c6.type = RTE_FIB6_TRIE;
        c6.max_routes = 16;
        c6.trie.nh_sz = RTE_FIB6_TRIE_2B;
        c6.trie.num_tbl8 = 64;
        table_->fib6 = rte_fib6_create(("t6_" + std::to_string(n)).c_str(), 0, &c6);
        ASSERT_TRUE(table_->fib4 && table_->fib6);
        for (uint8_t p = 0; p < 2; ++p) {
            table_->nh[table_->nnh++] = NextHop{p, 1, {}};
            ASSERT_EQ(rte_fib_add(table_->fib4, (10u << 24) | ((p + 1u) << 16), 24, table_->nnh),
                      0);
            table_->nh[table_->nnh++] = NextHop{p, 1, {}};
            IpAddr net = v6(static_cast<uint8_t>(p + 1), 0);
            ASSERT_EQ(rte_fib6_add(table_->fib6, net.b, 64, table_->nnh), 0);
        }
        slot_.current.store(table_);
        tx_.stats = &stats_;
        RouterSetup s;
        s.ports = &ports_;
        s.routes = &slot_;
        s.cfg.icmp_rate = 1000;
        s.cfg.icmp_burst = 100;
        s.pool = EalEnvironment::pool;
        s.worker = static_cast<uint32_t>(n);  // a fresh rte_hash name per test
        std::string err;
        router_ = std::make_unique<Router>();
        ASSERT_TRUE(router_->init(s, &tx_, rte_get_tsc_hz(), err)) << err;
    }
    void TearDown() override {
        router_.reset();
        for (uint8_t p = 0; p < 2; ++p) {
            for (uint16_t i = 0; i < tx_.n[p]; ++i) rte_pktmbuf_free(tx_.q[p][i]);
            tx_.n[p] = 0;
        }
        rte_fib_free(table_->fib4);
        rte_fib6_free(table_->fib6);
        delete table_;
    }

    // A UDP datagram from `src` to `dst` arriving addressed to the port's MAC.
    rte_mbuf *udp(uint8_t arrival, IpAddr src, IpAddr dst, uint8_t family, size_t payload = 32,
                  uint8_t ttl = 64) {
        Addressing a;
        a.family = family;
        std::memcpy(a.l2.dst.addr_bytes, ports_.port[arrival].mac, 6);
        std::memcpy(a.l2.src.addr_bytes, arrival ? kHostB : kHostA, 6);
        a.src = src, a.dst = dst, a.sport = 4000, a.dport = 5000;
        std::vector<uint8_t> body(payload, 0x5a);
        rte_mbuf *m = build_udp(EalEnvironment::pool, a, body, {}, TxChecksum{});
        uint8_t *l3 = rte_pktmbuf_mtod_offset(m, uint8_t *, RTE_ETHER_HDR_LEN);
        if (family == 4) {
            auto *ip = reinterpret_cast<rte_ipv4_hdr *>(l3);
            ip->time_to_live = ttl;
            ip->fragment_offset = rte_cpu_to_be_16(RTE_IPV4_HDR_DF_FLAG);
            ip->hdr_checksum = 0;
            ip->hdr_checksum = rte_ipv4_cksum(ip);
        } else {
            reinterpret_cast<rte_ipv6_hdr *>(l3)->hop_limits = ttl;
        }
        return m;
    }

    // Ingress as the worker calls it: parsed first. True: transit (the worker would forward it).
    bool in(rte_mbuf *m, uint8_t arrival, PacketView *out = nullptr) {
        PacketView v{};
        EXPECT_EQ(parse_packet(rte_pktmbuf_mtod(m, const uint8_t *), m->data_len, v),
                  DropReason::None);
        const bool fwd = router_->ingress(m, v, arrival, rte_rdtsc());
        if (out) *out = v;
        return fwd;
    }

    rte_mbuf *arp(uint16_t op, const uint8_t *sha, IpAddr sip, IpAddr tip, const uint8_t *dst) {
        rte_mbuf *m = rte_pktmbuf_alloc(EalEnvironment::pool);
        auto *p = reinterpret_cast<uint8_t *>(rte_pktmbuf_append(m, 60));
        std::memset(p, 0, 60);
        std::memcpy(p, dst, 6);
        std::memcpy(p + 6, sha, 6);
        p[12] = 0x08, p[13] = 0x06;
        auto *a = reinterpret_cast<rte_arp_hdr *>(p + 14);
        a->arp_hardware = rte_cpu_to_be_16(RTE_ARP_HRD_ETHER);
        a->arp_protocol = rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4);
        a->arp_hlen = 6, a->arp_plen = 4;
        a->arp_opcode = rte_cpu_to_be_16(op);
        std::memcpy(a->arp_data.arp_sha.addr_bytes, sha, 6);
        std::memcpy(&a->arp_data.arp_sip, sip.b, 4);
        std::memcpy(&a->arp_data.arp_tip, tip.b, 4);
        return m;
    }

    std::vector<rte_mbuf *> take(uint8_t port) {
        std::vector<rte_mbuf *> v(tx_.q[port], tx_.q[port] + tx_.n[port]);
        tx_.n[port] = 0;
        return v;
    }

    RoutedPorts ports_{};
    RouteSlot slot_;
    RouteTable *table_ = nullptr;
    WorkerStats stats_;
    TxQueues tx_;
    std::unique_ptr<Router> router_;
};

const rte_arp_hdr *arp_of(const rte_mbuf *m) {
    return rte_pktmbuf_mtod_offset(m, const rte_arp_hdr *, RTE_ETHER_HDR_LEN);
}

TEST_F(RouterTest, ArpRequestForOwnAddressIsAnsweredAndTeachesTheRequester) {
    EXPECT_FALSE(in(arp(RTE_ARP_OP_REQUEST, kHostA, v4(10, 1, 0, 2), v4(10, 1, 0, 1),
                        (const uint8_t *)"\xff\xff\xff\xff\xff\xff"),
                    0));
    router_->egress(rte_rdtsc());
    auto out = take(0);
    ASSERT_EQ(out.size(), 1u);
    const rte_arp_hdr *a = arp_of(out[0]);
    EXPECT_EQ(rte_be_to_cpu_16(a->arp_opcode), RTE_ARP_OP_REPLY);
    EXPECT_EQ(std::memcmp(a->arp_data.arp_sha.addr_bytes, kMacIn, 6), 0);
    EXPECT_EQ(std::memcmp(a->arp_data.arp_tha.addr_bytes, kHostA, 6), 0);
    EXPECT_EQ(std::memcmp(&a->arp_data.arp_sip, v4(10, 1, 0, 1).b, 4), 0);
    EXPECT_EQ(std::memcmp(rte_pktmbuf_mtod(out[0], uint8_t *), kHostA, 6), 0);
    rte_pktmbuf_free(out[0]);
    // A request for someone else's address is not answered.
    EXPECT_FALSE(in(arp(RTE_ARP_OP_REQUEST, kHostA, v4(10, 1, 0, 2), v4(10, 1, 0, 9),
                        (const uint8_t *)"\xff\xff\xff\xff\xff\xff"),
                    0));
    router_->egress(rte_rdtsc());
    EXPECT_EQ(tx_.n[0], 0);
    // The requester was learnt: a packet to it leaves at once, addressed to its MAC.
    rte_mbuf *m = udp(1, v4(10, 2, 0, 2), v4(10, 1, 0, 2), 4);
    ASSERT_TRUE(in(m, 1));
    tx_.push(m, 0);
    router_->egress(rte_rdtsc());
    out = take(0);
    ASSERT_EQ(out.size(), 1u);
    const uint8_t *eth = rte_pktmbuf_mtod(out[0], const uint8_t *);
    EXPECT_EQ(std::memcmp(eth, kHostA, 6), 0);
    EXPECT_EQ(std::memcmp(eth + 6, kMacIn, 6), 0);
    rte_pktmbuf_free(out[0]);
}

TEST_F(RouterTest, TransitDecrementsTtlAndKeepsTheHeaderChecksumValid) {
    rte_mbuf *m = udp(0, v4(10, 1, 0, 2), v4(10, 2, 0, 2), 4, 32, 64);
    PacketView v;
    ASSERT_TRUE(in(m, 0, &v));
    EXPECT_EQ(v.ttl, 63);
    auto *ip = rte_pktmbuf_mtod_offset(m, rte_ipv4_hdr *, RTE_ETHER_HDR_LEN);
    EXPECT_EQ(ip->time_to_live, 63);
    const uint16_t got = ip->hdr_checksum;
    ip->hdr_checksum = 0;
    EXPECT_EQ(got, rte_ipv4_cksum(ip));
    rte_pktmbuf_free(m);
    rte_mbuf *m6 = udp(0, v6(1, 2), v6(2, 2), 6, 32, 7);
    ASSERT_TRUE(in(m6, 0, &v));
    EXPECT_EQ(rte_pktmbuf_mtod_offset(m6, rte_ipv6_hdr *, RTE_ETHER_HDR_LEN)->hop_limits, 6);
    rte_pktmbuf_free(m6);
}

TEST_F(RouterTest, UnresolvedNextHopIsHeldSolicitedAndReleasedOnTheReply) {
    rte_mbuf *m = udp(0, v4(10, 1, 0, 2), v4(10, 2, 0, 2), 4);
    ASSERT_TRUE(in(m, 0));
    tx_.push(m, 1);
    router_->egress(rte_rdtsc());
    auto out = take(1);
    ASSERT_EQ(out.size(), 1u);  // the ARP request; the datagram waits
    const rte_arp_hdr *a = arp_of(out[0]);
    EXPECT_EQ(rte_be_to_cpu_16(a->arp_opcode), RTE_ARP_OP_REQUEST);
    EXPECT_EQ(std::memcmp(&a->arp_data.arp_tip, v4(10, 2, 0, 2).b, 4), 0);
    EXPECT_EQ(std::memcmp(&a->arp_data.arp_sip, v4(10, 2, 0, 1).b, 4), 0);
    EXPECT_EQ(rte_pktmbuf_mtod(out[0], const uint8_t *)[0], 0xff);
    rte_pktmbuf_free(out[0]);
    EXPECT_EQ(router_->stats().held.get(), 1u);
    EXPECT_FALSE(in(arp(RTE_ARP_OP_REPLY, kHostB, v4(10, 2, 0, 2), v4(10, 2, 0, 1), kMacOut), 1));
    router_->egress(rte_rdtsc());
    out = take(1);
    ASSERT_EQ(out.size(), 1u);
    const uint8_t *eth = rte_pktmbuf_mtod(out[0], const uint8_t *);
    EXPECT_EQ(std::memcmp(eth, kHostB, 6), 0);
    EXPECT_EQ(std::memcmp(eth + 6, kMacOut, 6), 0);
    EXPECT_EQ(eth[12], 0x08);  // the datagram, not another request
    EXPECT_EQ(eth[13], 0x00);
    rte_pktmbuf_free(out[0]);
    EXPECT_EQ(router_->stats().released.get(), 1u);
}

// The ICMP message queued back towards the sender (before egress routes it).
struct Icmp {
    uint8_t family, type, code;
    uint32_t word;  // bytes 4..7
    IpAddr src, dst;
    bool checksum_ok;
};
Icmp icmp_of(rte_mbuf *m) {
    PacketView v{};
    EXPECT_EQ(parse_packet(rte_pktmbuf_mtod(m, const uint8_t *), m->data_len, v), DropReason::None);
    const uint8_t *l4 = rte_pktmbuf_mtod(m, const uint8_t *) + v.l4_off;
    Icmp r{
        v.family,    v.icmp_type,
        v.icmp_code, uint32_t(l4[4]) << 24 | uint32_t(l4[5]) << 16 | uint32_t(l4[6]) << 8 | l4[7],
        v.src,       v.dst,
        false};
    if (v.family == 4)
        r.checksum_ok = rte_raw_cksum(l4, v.ip_end - v.l4_off) == 0xffff;
    else
        r.checksum_ok = rte_ipv6_udptcp_cksum_verify(
                            rte_pktmbuf_mtod_offset(m, const rte_ipv6_hdr *, v.l3_off), l4) == 0;
    return r;
}

TEST_F(RouterTest, IcmpErrorsForTtlNoRouteAndTooBig) {
    // TTL 1: time exceeded from the arrival port's address.
    EXPECT_FALSE(in(udp(0, v4(10, 1, 0, 2), v4(10, 2, 0, 2), 4, 32, 1), 0));
    // No route.
    EXPECT_FALSE(in(udp(0, v4(10, 1, 0, 2), v4(10, 9, 9, 9), 4), 0));
    // Over the outside port's 1280 with DF: fragmentation needed, MTU 1280.
    EXPECT_FALSE(in(udp(0, v4(10, 1, 0, 2), v4(10, 2, 0, 2), 4, 1300), 0));
    // IPv6: packet too big, hop limit exceeded.
    EXPECT_FALSE(in(udp(0, v6(1, 2), v6(2, 2), 6, 1300), 0));
    EXPECT_FALSE(in(udp(0, v6(1, 2), v6(2, 2), 6, 32, 1), 0));
    ASSERT_EQ(tx_.n[0], 5);
    const Icmp te = icmp_of(tx_.q[0][0]), nr = icmp_of(tx_.q[0][1]), fn = icmp_of(tx_.q[0][2]),
               tb = icmp_of(tx_.q[0][3]), he = icmp_of(tx_.q[0][4]);
    EXPECT_EQ(te.type, 11);
    EXPECT_TRUE(te.src == v4(10, 1, 0, 1) && te.dst == v4(10, 1, 0, 2));
    EXPECT_EQ(nr.type, 3);
    EXPECT_EQ(nr.code, 0);
    EXPECT_EQ(fn.type, 3);
    EXPECT_EQ(fn.code, 4);
    EXPECT_EQ(fn.word & 0xffff, 1280u);
    EXPECT_EQ(tb.type, 2);
    EXPECT_EQ(tb.word, 1280u);
    EXPECT_TRUE(tb.src == v6(1, 1) && tb.dst == v6(1, 2));
    EXPECT_EQ(he.type, 3);
    for (const Icmp &i : {te, nr, fn, tb, he}) EXPECT_TRUE(i.checksum_ok) << int(i.type);
    EXPECT_EQ(stats_.drops[size_t(DropReason::TtlExceeded)].get(), 2u);
    EXPECT_EQ(stats_.drops[size_t(DropReason::NoRoute)].get(), 1u);
    EXPECT_EQ(stats_.drops[size_t(DropReason::FragmentationNeeded)].get(), 2u);
    // Never an error about an error: a time-exceeded message with TTL 1 gets none.
    rte_mbuf *again = tx_.q[0][0];
    tx_.n[0] = 0;
    for (int i = 1; i < 5; ++i) rte_pktmbuf_free(tx_.q[0][i]);
    uint8_t *eth = rte_pktmbuf_mtod(again, uint8_t *);
    std::memcpy(eth, kMacOut, 6);
    auto *ip = reinterpret_cast<rte_ipv4_hdr *>(eth + RTE_ETHER_HDR_LEN);
    ip->time_to_live = 1;
    ip->hdr_checksum = 0;
    ip->hdr_checksum = rte_ipv4_cksum(ip);
    std::memcpy(&ip->src_addr, v4(10, 2, 0, 2).b, 4);
    ip->hdr_checksum = 0;
    ip->hdr_checksum = rte_ipv4_cksum(ip);
    EXPECT_FALSE(in(again, 1));
    EXPECT_EQ(tx_.n[1] + tx_.n[0], 0);
}

TEST_F(RouterTest, IcmpIsRateLimited) {
    router_.reset();
    RouterSetup s;
    s.ports = &ports_;
    s.routes = &slot_;
    s.cfg.icmp_rate = 1;
    s.cfg.icmp_burst = 2;
    s.pool = EalEnvironment::pool;
    s.worker = 1000;
    std::string err;
    router_ = std::make_unique<Router>();
    ASSERT_TRUE(router_->init(s, &tx_, rte_get_tsc_hz(), err)) << err;
    for (int i = 0; i < 5; ++i)
        EXPECT_FALSE(in(udp(0, v4(10, 1, 0, 2), v4(10, 2, 0, 2), 4, 32, 1), 0));
    EXPECT_EQ(tx_.n[0], 2);
    EXPECT_EQ(router_->stats().icmp_rate_limited.get(), 3u);
    EXPECT_EQ(stats_.drops[size_t(DropReason::TtlExceeded)].get(), 5u);
}

TEST_F(RouterTest, LocalTrafficOtherThanEchoAndForeignMacsAreDropped) {
    rte_mbuf *m = udp(0, v4(10, 1, 0, 2), v4(10, 2, 0, 1), 4);  // UDP to an own address
    EXPECT_FALSE(in(m, 0));
    EXPECT_EQ(stats_.drops[size_t(DropReason::LocalUnhandled)].get(), 1u);
    // Frames for another MAC (a promiscuous port) are not routed.
    rte_mbuf *other = udp(0, v4(10, 1, 0, 2), v4(10, 2, 0, 2), 4);
    rte_pktmbuf_mtod(other, uint8_t *)[5] ^= 0x40;
    EXPECT_FALSE(in(other, 0));
    EXPECT_EQ(stats_.drops[size_t(DropReason::NotRouted)].get(), 1u);
}

}  // namespace

int main(int argc, char **argv) {
    ::testing::InitGoogleTest(&argc, argv);
    ::testing::AddGlobalTestEnvironment(new EalEnvironment);
    return RUN_ALL_TESTS();
}
