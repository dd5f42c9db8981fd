// Flow table unit tests: canonical keys built from parsed frames, the bounded rte_hash table,
// ageing by timeout class with a fake clock, and the TCP state machine. Time is whatever `now` the
// test passes: the table is initialised with tsc_hz = 1000, so one second is 1000 ticks.
#include "dataplane/flow/flow_table.hpp"

#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <iterator>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <rte_eal.h>
#include <rte_memory.h>

#include "tests/unit/dataplane/frame_builder.hpp"

namespace {

using namespace segwire::dp;
using namespace segwire::dptest;

class EalEnvironment : public ::testing::Environment {
  public:
    void SetUp() override {
        std::string prefix = "segwire-dptest-" + std::to_string(getpid());
        std::vector<std::string> args = {"flow_table_test",
                                         "--no-huge",
                                         "--no-shconf",
                                         "--no-pci",
                                         "-l",
                                         "0",
                                         "-m",
                                         "256",
                                         "--file-prefix",
                                         prefix,
                                         "--log-level=*:error"};
        std::vector<char *> argv;
        for (auto &a : args) argv.push_back(a.data());
        ASSERT_GE(rte_eal_init(static_cast<int>(argv.size()), argv.data()), 0);
    }
    void TearDown() override { rte_eal_cleanup(); }
};

constexpr uint64_t kHz = 1000;  // ticks per second
// Timeouts in seconds, per class: handshake, established, closing, udp, other.
constexpr uint32_t kTimeouts[kTimeoutClassCount] = {5, 100, 10, 30, 20, 2};
constexpr uint64_t ticks(uint8_t tclass) {
    return kTimeouts[tclass] * kHz;
}

// ---- keys -----------------------------------------------------------------------------------

PacketView parsed(const Bytes &f) {
    Parsed p = parse(f);
    EXPECT_EQ(p.r, DropReason::None);
    return p.v;
}

// Builds the key into storage pre-filled with `fill`, so uninitialised bytes would show.
FlowKey key_of(const PacketView &v, Side *side = nullptr, uint8_t fill = 0xa5) {
    FlowKey k;
    std::memset(&k, fill, sizeof k);
    Side s = make_flow_key(v, k);
    if (side) *side = s;
    return k;
}

bool same_bytes(const FlowKey &a, const FlowKey &b) {
    return std::memcmp(&a, &b, sizeof a) == 0;
}

TEST(FlowKey, Ipv4BothDirectionsAreEqual) {
    TcpSpec fwd{.sport = 40000, .dport = 443};
    TcpSpec rev{.sport = 443, .dport = 40000, .flags = kTcpSyn | kTcpAck};
    Ip4Spec there{.src = kSrc4, .dst = kDst4};
    Ip4Spec back{.src = kDst4, .dst = kSrc4};
    Side s1, s2;
    FlowKey k1 = key_of(parsed(v4_tcp(fwd, there)), &s1, 0x00);
    FlowKey k2 = key_of(parsed(v4_tcp(rev, back)), &s2, 0xff);
    EXPECT_TRUE(same_bytes(k1, k2));
    EXPECT_NE(s1, s2);
    // 192.0.2.1 < 198.51.100.7: the client is side A.
    EXPECT_EQ(s1, kSideA);
    EXPECT_EQ(k1.pa, 40000);
    EXPECT_EQ(k1.pb, 443);
    EXPECT_EQ(k1.proto, kProtoTcp);
    EXPECT_EQ(k1.family, 4);
    EXPECT_EQ(k1.vlan, 0);
    EXPECT_EQ(std::memcmp(k1.a.b, kSrc4.data(), 4), 0);
    const uint8_t zeros[12] = {};
    EXPECT_EQ(std::memcmp(k1.a.b + 4, zeros, 12), 0) << "IPv4 keys are zero past the address";
}

TEST(FlowKey, Ipv6BothDirectionsAreEqual) {
    UdpSpec fwd{.sport = 5000, .dport = 53};
    UdpSpec rev{.sport = 53, .dport = 5000};
    Ip6Spec there{.src = kSrc6, .dst = kDst6};
    Ip6Spec back{.src = kDst6, .dst = kSrc6};
    Side s1, s2;
    FlowKey k1 = key_of(parsed(v6_udp(fwd, there)), &s1, 0x00);
    FlowKey k2 = key_of(parsed(v6_udp(rev, back)), &s2, 0xff);
    EXPECT_TRUE(same_bytes(k1, k2));
    EXPECT_NE(s1, s2);
    EXPECT_EQ(k1.family, 6);
    EXPECT_EQ(k1.proto, kProtoUdp);
}

TEST(FlowKey, SameAddressDifferentPortsOrderedByPort) {
    Ip4Spec self{.src = kSrc4, .dst = kSrc4};
    Side s1, s2;
    FlowKey k1 = key_of(parsed(v4_tcp({.sport = 2000, .dport = 1000}, self)), &s1);
    FlowKey k2 = key_of(parsed(v4_tcp({.sport = 1000, .dport = 2000}, self)), &s2, 0x3c);
    EXPECT_TRUE(same_bytes(k1, k2));
    EXPECT_EQ(k1.pa, 1000);
    EXPECT_EQ(k1.pb, 2000);
    EXPECT_EQ(s1, kSideB);
    EXPECT_EQ(s2, kSideA);
    // Different ports between the same addresses are different flows.
    FlowKey k3 = key_of(parsed(v4_tcp({.sport = 1000, .dport = 2001}, self)));
    EXPECT_FALSE(same_bytes(k1, k3));
}

TEST(FlowKey, IcmpEchoBothDirectionsAreEqual) {
    Ip4Spec there{.src = kSrc4, .dst = kDst4, .proto = kProtoIcmp};
    Ip4Spec back{.src = kDst4, .dst = kSrc4, .proto = kProtoIcmp};
    FlowKey req = key_of(parsed(eth(kEthIpv4, ipv4(there, icmp(8, 0, 77, 1)))));
    FlowKey rep = key_of(parsed(eth(kEthIpv4, ipv4(back, icmp(0, 0, 77, 1)))));
    EXPECT_TRUE(same_bytes(req, rep));
    FlowKey other = key_of(parsed(eth(kEthIpv4, ipv4(there, icmp(8, 0, 78, 1)))));
    EXPECT_FALSE(same_bytes(req, other)) << "another echo identifier is another flow";
}

TEST(FlowKey, VlanAndProtocolSeparateFlows) {
    const Bytes l4 = tcp({});
    FlowKey plain = key_of(parsed(eth(kEthIpv4, ipv4({}, l4))));
    FlowKey v10 = key_of(parsed(eth(kEthIpv4, ipv4({}, l4), {{kTpid8021q, 0xe00a}})));
    FlowKey v10b = key_of(parsed(eth(kEthIpv4, ipv4({}, l4), {{kTpid8021q, 0x000a}})));
    FlowKey v11 = key_of(parsed(eth(kEthIpv4, ipv4({}, l4), {{kTpid8021q, 0x000b}})));
    EXPECT_EQ(v10.vlan, 10) << "the VLAN ID, without priority bits";
    EXPECT_TRUE(same_bytes(v10, v10b)) << "priority bits do not split a flow";
    EXPECT_FALSE(same_bytes(plain, v10));
    EXPECT_FALSE(same_bytes(v10, v11));
    // Outer tag decides in QinQ.
    FlowKey qinq =
        key_of(parsed(eth(kEthIpv4, ipv4({}, l4), {{kTpid8021ad, 0x000a}, {kTpid8021q, 0x0063}})));
    EXPECT_EQ(qinq.vlan, 10);
    // Same ports and addresses, UDP instead of TCP.
    FlowKey u = key_of(parsed(v4_udp({.sport = 40000, .dport = 443})));
    FlowKey t = key_of(parsed(v4_tcp({.sport = 40000, .dport = 443})));
    EXPECT_FALSE(same_bytes(u, t));
}

// ---- table ----------------------------------------------------------------------------------

std::string unique_name() {
    static int n = 0;
    return "dpt_flows_" + std::to_string(n++);
}

// Distinct keys: a TCP flow from 10.0.x.y:1000+i to 10.1.0.1:80.
FlowKey flow_key(uint32_t i) {
    FlowKey k{};
    k.a.b[0] = 10, k.a.b[1] = 0, k.a.b[2] = uint8_t(i >> 8), k.a.b[3] = uint8_t(i);
    k.b.b[0] = 10, k.b.b[1] = 1, k.b.b[2] = 0, k.b.b[3] = 1;
    k.pa = static_cast<uint16_t>(1000 + i);
    k.pb = 80;
    k.proto = kProtoTcp;
    k.family = 4;
    return k;
}

class FlowTableTest : public ::testing::Test {
  protected:
    void make(uint32_t capacity) {
        std::string err;
        ASSERT_TRUE(t.init(unique_name(), capacity, SOCKET_ID_ANY, kTimeouts, kHz, err)) << err;
        ASSERT_EQ(t.capacity(), capacity);
        ASSERT_EQ(t.size(), 0u);
    }
    int32_t add(uint32_t i, uint64_t now, uint8_t tclass = kUdp) {
        FlowKey k = flow_key(i);
        return t.insert(k, t.hash(k), now, tclass);
    }
    int32_t find(uint32_t i) const {
        FlowKey k = flow_key(i);
        return t.lookup(k, t.hash(k));
    }
    bool present(uint32_t i) const { return find(i) >= 0; }

    FlowTable t;
};

TEST_F(FlowTableTest, InitRejectsCapacityBelowOneBucket) {
    FlowTable small;
    std::string err;
    EXPECT_FALSE(small.init(unique_name(), 4, SOCKET_ID_ANY, kTimeouts, kHz, err));
    EXPECT_NE(err.find("rte_hash_create"), std::string::npos) << err;
}

TEST_F(FlowTableTest, InsertLookupRemove) {
    ASSERT_NO_FATAL_FAILURE(make(64));
    EXPECT_LT(find(1), 0);
    int32_t p = add(1, 500, kTcpHandshake);
    ASSERT_GE(p, 0);
    ASSERT_LT(p, 64);
    EXPECT_EQ(t.size(), 1u);
    EXPECT_EQ(find(1), p);
    EXPECT_TRUE(t.in_use(static_cast<uint32_t>(p)));
    EXPECT_TRUE(same_bytes(t.key_at(p), flow_key(1)));
    const Flow &f = t.at(p);
    EXPECT_EQ(f.created_tsc, 500u);
    EXPECT_EQ(f.last_tsc, 500u);
    EXPECT_EQ(f.tclass, kTcpHandshake);
    EXPECT_EQ(f.state, TcpState::None);
    EXPECT_EQ(f.pkts[0] + f.pkts[1], 0u);
    EXPECT_EQ(t.stats().created, 1u);
    EXPECT_LT(find(2), 0);

    t.remove(p);
    EXPECT_LT(find(1), 0);
    EXPECT_FALSE(t.in_use(static_cast<uint32_t>(p)));
    EXPECT_EQ(t.size(), 0u);
    // Re-inserting starts a fresh flow.
    t.at(p).pkts[0] = 99;
    int32_t q = add(1, 900);
    ASSERT_GE(q, 0);
    EXPECT_EQ(t.at(q).pkts[0], 0u);
    EXPECT_EQ(t.at(q).created_tsc, 900u);
    EXPECT_EQ(t.stats().created, 2u);
}

TEST_F(FlowTableTest, ReverseDirectionFindsTheSameFlow) {
    ASSERT_NO_FATAL_FAILURE(make(64));
    Bytes fwd = v4_tcp({.sport = 40000, .dport = 443}, {.src = kSrc4, .dst = kDst4});
    Bytes rev = v4_tcp({.sport = 443, .dport = 40000, .flags = kTcpSyn | kTcpAck},
                       {.src = kDst4, .dst = kSrc4});
    FlowKey k1 = key_of(parsed(fwd)), k2 = key_of(parsed(rev));
    EXPECT_EQ(t.hash(k1), t.hash(k2));
    int32_t p = t.insert(k1, t.hash(k1), 1, kTcpHandshake);
    ASSERT_GE(p, 0);
    EXPECT_EQ(t.lookup(k2, t.hash(k2)), p);
}

TEST_F(FlowTableTest, BulkLookupMixesHitsAndMisses) {
    ASSERT_NO_FATAL_FAILURE(make(64));
    int32_t p0 = add(0, 1), p2 = add(2, 1);
    ASSERT_GE(p0, 0);
    ASSERT_GE(p2, 0);
    FlowKey keys[4] = {flow_key(0), flow_key(1), flow_key(2), flow_key(3)};
    const FlowKey *ptrs[4];
    uint32_t sigs[4];
    for (int i = 0; i < 4; ++i) ptrs[i] = &keys[i], sigs[i] = t.hash(keys[i]);
    int32_t pos[4] = {7, 7, 7, 7};
    t.lookup_bulk(ptrs, sigs, 4, pos);
    EXPECT_EQ(pos[0], p0);
    EXPECT_LT(pos[1], 0);
    EXPECT_EQ(pos[2], p2);
    EXPECT_LT(pos[3], 0);
}

TEST_F(FlowTableTest, FullTableRefusesNewFlowsAndKeepsExisting) {
    constexpr uint32_t kCap = 256;
    ASSERT_NO_FATAL_FAILURE(make(kCap));
    std::set<int32_t> positions;
    for (uint32_t i = 0; i < kCap; ++i) {
        int32_t p = add(i, 1);
        ASSERT_GE(p, 0) << "flow " << i << " of " << kCap;
        ASSERT_LT(p, static_cast<int32_t>(kCap));
        positions.insert(p);
    }
    EXPECT_EQ(positions.size(), kCap) << "each flow has its own slot";
    EXPECT_EQ(t.size(), kCap);
    EXPECT_EQ(t.stats().refused, 0u);

    EXPECT_EQ(add(kCap, 2), -1);
    EXPECT_EQ(add(kCap + 1, 2), -1);
    EXPECT_EQ(t.stats().refused, 2u);
    EXPECT_EQ(t.stats().created, kCap);
    EXPECT_EQ(t.size(), kCap);
    EXPECT_LT(find(kCap), 0);
    for (uint32_t i = 0; i < kCap; ++i) EXPECT_GE(find(i), 0) << "existing flow " << i << " lost";

    // One slot freed: exactly one new flow fits again.
    t.remove(find(17));
    EXPECT_GE(add(kCap, 3), 0);
    EXPECT_EQ(add(kCap + 1, 3), -1);
    EXPECT_EQ(t.stats().refused, 3u);
}

TEST_F(FlowTableTest, ExpiresExactlyAtTheTimeoutOfEachClass) {
    ASSERT_NO_FATAL_FAILURE(make(64));
    // One flow per class, all at t=0.
    for (uint8_t c = 0; c < kTimeoutClassCount; ++c) ASSERT_GE(add(c, 0, c), 0);
    EXPECT_EQ(t.expire(ticks(kRejectedHold) - 1, 100), 0u);
    EXPECT_EQ(t.expire(ticks(kRejectedHold), 100), 1u);
    EXPECT_FALSE(present(kRejectedHold));
    EXPECT_EQ(t.expire(ticks(kTcpHandshake) - 1, 100), 0u);
    EXPECT_EQ(t.size(), 5u);
    EXPECT_EQ(t.expire(ticks(kTcpHandshake), 100), 1u);
    EXPECT_FALSE(present(kTcpHandshake));
    EXPECT_EQ(t.expire(ticks(kTcpClosing) - 1, 100), 0u);
    EXPECT_EQ(t.expire(ticks(kTcpClosing), 100), 1u);
    EXPECT_FALSE(present(kTcpClosing));
    EXPECT_EQ(t.expire(ticks(kOther), 100), 1u);
    EXPECT_FALSE(present(kOther));
    EXPECT_EQ(t.expire(ticks(kUdp) - 1, 100), 0u);
    EXPECT_TRUE(present(kUdp));
    EXPECT_EQ(t.expire(ticks(kUdp), 100), 1u);
    EXPECT_FALSE(present(kUdp));
    EXPECT_TRUE(present(kTcpEstablished));
    EXPECT_EQ(t.expire(ticks(kTcpEstablished), 100), 1u);
    EXPECT_EQ(t.size(), 0u);
    EXPECT_EQ(t.stats().expired, 6u);
}

TEST_F(FlowTableTest, RefreshedFlowIsNotExpiredAndGoesWithinTwiceTheTimeout) {
    ASSERT_NO_FATAL_FAILURE(make(64));
    const uint64_t to = ticks(kUdp);
    int32_t idle = add(1, 0);
    int32_t busy = add(2, 0);
    ASSERT_GE(idle, 0);
    ASSERT_GE(busy, 0);
    // `busy` sees a packet every second until t = 100 s; expiry runs every 100 ms.
    uint64_t idle_gone = 0, busy_gone = 0;
    for (uint64_t now = 0; now <= 300 * kHz; now += 100) {
        if (now <= 100 * kHz && now % kHz == 0 && present(2)) t.touch(find(2), now, kUdp);
        t.expire(now, 64);
        if (!idle_gone && !present(1)) idle_gone = now;
        if (!busy_gone && !present(2)) busy_gone = now;
    }
    EXPECT_EQ(idle_gone, to) << "idle flow goes at its timeout";
    const uint64_t last = 100 * kHz;
    EXPECT_GE(busy_gone, last + to) << "refreshed flow expired early";
    EXPECT_LE(busy_gone, last + 2 * to) << "refreshed flow kept past twice its timeout";
    EXPECT_EQ(t.stats().expired, 2u);
}

TEST_F(FlowTableTest, ClassChangeMovesTheFlowToTheNewTimeout) {
    ASSERT_NO_FATAL_FAILURE(make(64));
    int32_t p = add(1, 0, kTcpHandshake);
    ASSERT_GE(p, 0);
    t.touch(p, 1000, kTcpEstablished);
    EXPECT_EQ(t.at(p).tclass, kTcpEstablished);
    EXPECT_EQ(t.expire(1000 + ticks(kTcpHandshake), 100), 0u) << "expired on the old class";
    EXPECT_TRUE(present(1));
    EXPECT_EQ(t.expire(1000 + ticks(kTcpEstablished) - 1, 100), 0u);
    EXPECT_EQ(t.expire(1000 + ticks(kTcpEstablished), 100), 1u);
    EXPECT_FALSE(present(1));
    // And to a shorter one: closing after established.
    p = add(2, 0, kTcpEstablished);
    t.touch(p, 500, kTcpClosing);
    EXPECT_EQ(t.expire(500 + ticks(kTcpClosing), 100), 1u);
    EXPECT_FALSE(present(2));
}

TEST_F(FlowTableTest, ExpireRespectsBudgetOldestFirst) {
    ASSERT_NO_FATAL_FAILURE(make(64));
    for (uint32_t i = 0; i < 10; ++i) ASSERT_GE(add(i, i * 10), 0);  // flow i at t = 10*i
    const uint64_t now = ticks(kUdp) + 1000;
    EXPECT_EQ(t.expire(now, 3), 3u);
    EXPECT_EQ(t.size(), 7u);
    for (uint32_t i = 0; i < 3; ++i) EXPECT_FALSE(present(i)) << i;
    for (uint32_t i = 3; i < 10; ++i) EXPECT_TRUE(present(i)) << i;
    EXPECT_EQ(t.expire(now, 0), 0u);
    EXPECT_EQ(t.size(), 7u);
    EXPECT_EQ(t.expire(now, 1), 1u);
    EXPECT_FALSE(present(3));
    EXPECT_EQ(t.expire(now, 100), 6u);
    EXPECT_EQ(t.size(), 0u);
    EXPECT_EQ(t.stats().expired, 10u);
}

TEST_F(FlowTableTest, RemoveHookSeesEachExpiredFlowBeforeItGoes) {
    ASSERT_NO_FATAL_FAILURE(make(64));
    for (uint32_t i = 0; i < 4; ++i) ASSERT_GE(add(i, 0), 0);
    const int32_t kept = find(3);
    t.touch(kept, ticks(kUdp) - 1, kUdp);
    int32_t p0 = find(0);
    t.at(p0).pkts[1] = 42;
    struct Seen {
        FlowTable *t;
        std::vector<int32_t> pos;
        std::vector<bool> still_found;
        uint64_t pkts = 0;
    } seen{&t, {}, {}, 0};
    auto hook = [](void *ctx, int32_t pos, Flow &f) {
        auto *s = static_cast<Seen *>(ctx);
        s->pos.push_back(pos);
        const FlowKey &k = s->t->key_at(pos);
        s->still_found.push_back(s->t->lookup(k, s->t->hash(k)) == pos);
        s->pkts += f.pkts[1];
    };
    EXPECT_EQ(t.expire(ticks(kUdp), 100, hook, &seen), 3u);
    ASSERT_EQ(seen.pos.size(), 3u);
    EXPECT_EQ(seen.pos[0], p0) << "oldest first";
    for (bool found : seen.still_found) EXPECT_TRUE(found) << "hook ran after removal";
    EXPECT_EQ(seen.pkts, 42u);
    EXPECT_TRUE(present(3)) << "refreshed flow is not handed to the hook";
    EXPECT_EQ(t.at(kept).hs, kNil);
    EXPECT_EQ(t.at(kept).auth, Auth::kNew);
}

TEST_F(FlowTableTest, RemoveFromTheMiddleKeepsListsIntact) {
    ASSERT_NO_FATAL_FAILURE(make(64));
    for (uint32_t i = 0; i < 5; ++i) ASSERT_GE(add(i, i), 0);
    t.remove(find(2));  // middle
    t.remove(find(0));  // head
    t.remove(find(4));  // tail
    EXPECT_EQ(t.size(), 2u);
    EXPECT_EQ(t.expire(ticks(kUdp) + 10, 100), 2u);
    EXPECT_EQ(t.size(), 0u);
    // The lists still work for new flows.
    ASSERT_GE(add(7, 100000), 0);
    EXPECT_EQ(t.expire(100000 + ticks(kUdp), 100), 1u);
    EXPECT_EQ(t.stats().expired, 3u);
}

TEST_F(FlowTableTest, ExpiredSlotsAreReused) {
    constexpr uint32_t kCap = 16;
    ASSERT_NO_FATAL_FAILURE(make(kCap));
    for (uint32_t i = 0; i < kCap; ++i) ASSERT_GE(add(i, 0), 0);
    EXPECT_EQ(add(100, 1), -1);
    EXPECT_EQ(t.expire(ticks(kUdp), kCap), kCap);
    for (uint32_t i = 0; i < kCap; ++i) ASSERT_GE(add(100 + i, ticks(kUdp)), 0);
    EXPECT_EQ(t.size(), kCap);
}

// Random inserts, packets (with class changes), removals and expiry rounds against a plain model.
// Checks after every step: same size, refused exactly when full, a flow is never expired before
// its timeout, and none outlives twice its timeout (plus one step, the expiry granularity).
TEST_F(FlowTableTest, RandomOperationsMatchAModel) {
    constexpr uint32_t kCap = 128, kKeys = 300, kSteps = 20000, kMaxStep = 100;
    ASSERT_NO_FATAL_FAILURE(make(kCap));
    struct Entry {
        uint64_t last;
        uint8_t tclass;
    };
    std::map<uint32_t, Entry> model;
    std::mt19937 rng(20261122);
    uint64_t now = 1, refused = 0, removed_by_expiry = 0;
    for (uint32_t step = 0; step < kSteps; ++step) {
        now += rng() % kMaxStep;
        const uint32_t key = rng() % kKeys;
        const auto cls = static_cast<uint8_t>(rng() % kTimeoutClassCount);
        const uint32_t op = rng() % 10;
        auto it = model.find(key);
        int32_t pos = find(key);
        ASSERT_EQ(pos >= 0, it != model.end()) << "step " << step << " key " << key;
        if (op < 6) {  // a packet: new flow or touch
            if (pos < 0) {
                pos = add(key, now, cls);
                if (model.size() == kCap) {
                    ASSERT_EQ(pos, -1) << "step " << step;
                    ++refused;
                } else {
                    ASSERT_GE(pos, 0) << "step " << step;
                    model[key] = {now, cls};
                }
            } else {
                t.touch(pos, now, cls);
                it->second = {now, cls};
            }
        } else if (op < 7 && pos >= 0) {
            t.remove(pos);
            model.erase(it);
        }
        t.expire(now, 1000);
        for (auto m = model.begin(); m != model.end();) {
            const uint64_t to = ticks(m->second.tclass), idle = now - m->second.last;
            const bool gone = !present(m->first);
            if (gone) {
                ASSERT_GE(idle, to) << "expired early: step " << step << " key " << m->first;
                ++removed_by_expiry;
                m = model.erase(m);
            } else {
                ASSERT_LT(idle, 2 * to + kMaxStep) << "kept too long: step " << step;
                ++m;
            }
        }
        ASSERT_EQ(t.size(), model.size()) << "step " << step;
    }
    EXPECT_EQ(t.stats().refused, refused);
    EXPECT_EQ(t.stats().expired, removed_by_expiry);
    EXPECT_GT(refused, 0u) << "the run should reach the limit";
    EXPECT_GT(removed_by_expiry, 100u);
    std::printf("random run: %u steps, %lu refused, %lu expired, %u left\n", kSteps,
                static_cast<unsigned long>(refused), static_cast<unsigned long>(removed_by_expiry),
                t.size());
}

// The worker's flow stage in miniature: parse both directions of a connection, key them, find or
// create the flow, track TCP and re-class it. One flow, ESTABLISHED, packets counted per side.
TEST_F(FlowTableTest, ConnectionThroughParseKeyTrackAndTouch) {
    ASSERT_NO_FATAL_FAILURE(make(64));
    struct Pkt {
        bool from_client;
        uint8_t flags;
    };
    const Pkt conv[] = {{true, kTcpSyn},           {false, kTcpSyn | kTcpAck},
                        {true, kTcpAck},           {true, kTcpAck | kTcpPsh},
                        {false, kTcpAck},          {true, kTcpFin | kTcpAck},
                        {false, kTcpFin | kTcpAck}};
    const TcpState after[] = {TcpState::SynSent,     TcpState::SynReceived, TcpState::Established,
                              TcpState::Established, TcpState::Established, TcpState::FinWait,
                              TcpState::Closing};
    uint64_t now = 0;
    int32_t first = -1;
    for (size_t i = 0; i < std::size(conv); ++i) {
        const Pkt &p = conv[i];
        Ip6Spec ip = p.from_client ? Ip6Spec{.src = kDst6, .dst = kSrc6}
                                   : Ip6Spec{.src = kSrc6, .dst = kDst6};
        TcpSpec tc{.sport = uint16_t(p.from_client ? 51000 : 443),
                   .dport = uint16_t(p.from_client ? 443 : 51000),
                   .flags = p.flags};
        Side side;
        FlowKey k = key_of(parsed(v6_tcp(tc, ip)), &side);
        const uint32_t sig = t.hash(k);
        int32_t pos = t.lookup(k, sig);
        if (pos < 0) {
            ASSERT_EQ(i, 0u) << "a later packet did not find the flow";
            pos = t.insert(k, sig, now, timeout_class_for(kProtoTcp, TcpState::None));
            ASSERT_GE(pos, 0);
            t.at(pos).init_side = side;
            first = pos;
        }
        ASSERT_EQ(pos, first);
        Flow &f = t.at(pos);
        t.touch(pos, now, tcp_track(f, side, p.flags));
        ++f.pkts[side];
        EXPECT_EQ(f.state, after[i]) << "packet " << i;
        EXPECT_EQ(f.tclass, timeout_class_for(kProtoTcp, after[i])) << "packet " << i;
        now += 10;
    }
    EXPECT_EQ(t.size(), 1u);
    const Flow &f = t.at(first);
    // kDst6 > kSrc6 is never the lower address: the client (kDst6) is side B.
    EXPECT_EQ(f.init_side, kSideB);
    EXPECT_EQ(f.pkts[kSideB], 4u);
    EXPECT_EQ(f.pkts[kSideA], 3u);
    // Closing: gone after the closing timeout, not the established one.
    EXPECT_EQ(t.expire(now - 10 + ticks(kTcpClosing), 10), 1u);
}

// ---- TCP state machine ----------------------------------------------------------------------

constexpr uint8_t A = kSideA, B = kSideB;
constexpr uint8_t kSynAck = kTcpSyn | kTcpAck, kFinAck = kTcpFin | kTcpAck,
                  kRstAck = kTcpRst | kTcpAck;

TEST(TcpTrack, ThreeWayHandshakeThenCloseFromBothSides) {
    Flow f{};
    EXPECT_EQ(tcp_track(f, A, kTcpSyn), kTcpHandshake);
    EXPECT_EQ(f.state, TcpState::SynSent);
    EXPECT_EQ(f.init_side, A);
    EXPECT_EQ(tcp_track(f, B, kSynAck), kTcpHandshake);
    EXPECT_EQ(f.state, TcpState::SynReceived);
    EXPECT_EQ(tcp_track(f, A, kTcpAck), kTcpEstablished);
    EXPECT_EQ(f.state, TcpState::Established);
    EXPECT_EQ(tcp_track(f, B, kTcpAck | kTcpPsh), kTcpEstablished);
    EXPECT_EQ(f.state, TcpState::Established);
    EXPECT_EQ(tcp_track(f, A, kFinAck), kTcpEstablished);
    EXPECT_EQ(f.state, TcpState::FinWait);
    EXPECT_EQ(tcp_track(f, B, kTcpAck), kTcpEstablished);
    EXPECT_EQ(f.state, TcpState::FinWait);
    EXPECT_EQ(tcp_track(f, A, kFinAck), kTcpEstablished) << "a retransmitted FIN is one side";
    EXPECT_EQ(f.state, TcpState::FinWait);
    EXPECT_EQ(tcp_track(f, B, kFinAck), kTcpClosing);
    EXPECT_EQ(f.state, TcpState::Closing);
    EXPECT_EQ(tcp_track(f, A, kTcpAck), kTcpClosing);
    EXPECT_EQ(f.state, TcpState::Closing);
}

// tcp_track decides its established case inline and hands the rest to tcp_track_slow: for every
// state, side, flag byte and fin/peer history, both give the same class and leave the same flow.
TEST(TcpTrack, InlineCaseAgreesWithTheFullTrackerEverywhere) {
    const TcpState states[] = {TcpState::None,        TcpState::SynSent, TcpState::SynReceived,
                               TcpState::Established, TcpState::FinWait, TcpState::Closing,
                               TcpState::Closed};
    int inline_hits = 0;
    for (TcpState st : states)
        for (uint8_t side : {A, B})
            for (uint8_t init : {A, B})
                for (uint8_t fin = 0; fin < 4; ++fin)
                    for (unsigned fl = 0; fl < 256; ++fl) {
                        Flow f{};
                        f.state = st;
                        f.init_side = init;
                        f.fin_seen = fin;
                        f.pkts[side ^ 1] = fin & 1;
                        Flow g = f;
                        const uint8_t ca = tcp_track(f, side, static_cast<uint8_t>(fl));
                        const uint8_t cb = tcp_track_slow(g, side, static_cast<uint8_t>(fl));
                        ASSERT_EQ(ca, cb) << int(st) << " flags " << fl;
                        // What tcp_track may change.
                        ASSERT_EQ(f.state, g.state) << int(st) << " flags " << fl;
                        ASSERT_EQ(f.init_side, g.init_side) << int(st) << " flags " << fl;
                        ASSERT_EQ(f.fin_seen, g.fin_seen) << int(st) << " flags " << fl;
                        inline_hits +=
                            st == TcpState::Established && !(fl & (kTcpSyn | kTcpFin | kTcpRst));
                    }
    EXPECT_GT(inline_hits, 0);
}

TEST(TcpTrack, ResponderClosesFirst) {
    Flow f{};
    tcp_track(f, B, kTcpSyn);  // B initiates
    tcp_track(f, A, kSynAck);
    tcp_track(f, B, kTcpAck);
    ASSERT_EQ(f.state, TcpState::Established);
    tcp_track(f, A, kFinAck);
    EXPECT_EQ(f.state, TcpState::FinWait);
    tcp_track(f, B, kFinAck);
    EXPECT_EQ(f.state, TcpState::Closing);
}

TEST(TcpTrack, RstClosesFromAnyState) {
    for (int stop = 0; stop < 4; ++stop) {
        Flow f{};
        const uint8_t steps[] = {kTcpSyn, kSynAck, kTcpAck, kFinAck};
        const uint8_t sides[] = {A, B, A, B};
        for (int i = 0; i < stop; ++i) tcp_track(f, sides[i], steps[i]);
        EXPECT_EQ(tcp_track(f, B, kTcpRst), kTcpClosing) << "after " << stop << " steps";
        EXPECT_EQ(f.state, TcpState::Closed);
    }
    Flow g{};
    tcp_track(g, A, kTcpSyn);
    tcp_track(g, B, kRstAck);  // connection refused
    EXPECT_EQ(g.state, TcpState::Closed);
}

TEST(TcpTrack, NewSynAfterCloseIsPortReuse) {
    Flow f{};
    tcp_track(f, A, kTcpSyn);
    tcp_track(f, B, kSynAck);
    tcp_track(f, A, kTcpAck);
    tcp_track(f, A, kFinAck);
    tcp_track(f, B, kFinAck);
    ASSERT_EQ(f.state, TcpState::Closing);
    // The other side opens the next connection on the same 5-tuple.
    EXPECT_EQ(tcp_track(f, B, kTcpSyn), kTcpHandshake);
    EXPECT_EQ(f.state, TcpState::SynSent);
    EXPECT_EQ(f.init_side, B);
    EXPECT_EQ(f.fin_seen, 0);
    tcp_track(f, A, kSynAck);
    EXPECT_EQ(f.state, TcpState::SynReceived);
    tcp_track(f, B, kTcpAck);
    EXPECT_EQ(f.state, TcpState::Established);
    // A FIN now is one side again: the old FINs were forgotten.
    tcp_track(f, A, kFinAck);
    EXPECT_EQ(f.state, TcpState::FinWait);
    // After RST too.
    tcp_track(f, A, kTcpRst);
    ASSERT_EQ(f.state, TcpState::Closed);
    tcp_track(f, A, kTcpSyn);
    EXPECT_EQ(f.state, TcpState::SynSent);
    EXPECT_EQ(f.init_side, A);
}

TEST(TcpTrack, SynDuringALiveConnectionIsIgnored) {
    Flow f{};
    tcp_track(f, A, kTcpSyn);
    tcp_track(f, B, kSynAck);
    tcp_track(f, A, kTcpAck);
    tcp_track(f, B, kTcpSyn);
    EXPECT_EQ(f.state, TcpState::Established);
    EXPECT_EQ(f.init_side, A);
    Flow g{};
    tcp_track(g, A, kTcpSyn);
    tcp_track(g, A, kTcpSyn);  // retransmitted SYN
    EXPECT_EQ(g.state, TcpState::SynSent);
}

TEST(TcpTrack, MidStreamPickupIsEstablishedOnceBothDirectionsAreSeen) {
    Flow f{};
    f.init_side = B;  // the worker sets it from the first packet
    EXPECT_EQ(tcp_track(f, B, kTcpAck | kTcpPsh), kTcpHandshake);
    EXPECT_EQ(f.state, TcpState::None);
    f.pkts[B] = 5;  // one-way segments only: still the short timeout
    EXPECT_EQ(tcp_track(f, B, kTcpAck), kTcpHandshake);
    EXPECT_EQ(tcp_track(f, A, kTcpAck), kTcpEstablished);
    EXPECT_EQ(f.state, TcpState::Established);
    EXPECT_EQ(f.init_side, B);
    Flow g{};
    tcp_track(g, A, kFinAck);  // first packet seen is a FIN
    EXPECT_EQ(g.state, TcpState::FinWait);
}

TEST(TcpTrack, SynAckFromTheInitiatorIsIgnored) {
    Flow f{};
    tcp_track(f, A, kTcpSyn);
    EXPECT_EQ(tcp_track(f, A, kSynAck), kTcpHandshake);
    EXPECT_EQ(f.state, TcpState::SynSent);
    // Nor does the responder's bare ACK complete the handshake.
    tcp_track(f, B, kSynAck);
    ASSERT_EQ(f.state, TcpState::SynReceived);
    tcp_track(f, B, kTcpAck);
    EXPECT_EQ(f.state, TcpState::SynReceived);
    tcp_track(f, A, kTcpAck);
    EXPECT_EQ(f.state, TcpState::Established);
}

TEST(TcpTrack, TimeoutClassesAndNames) {
    EXPECT_EQ(timeout_class_for(kProtoTcp, TcpState::None), kTcpHandshake);
    EXPECT_EQ(timeout_class_for(kProtoTcp, TcpState::SynSent), kTcpHandshake);
    EXPECT_EQ(timeout_class_for(kProtoTcp, TcpState::SynReceived), kTcpHandshake);
    EXPECT_EQ(timeout_class_for(kProtoTcp, TcpState::Established), kTcpEstablished);
    EXPECT_EQ(timeout_class_for(kProtoTcp, TcpState::FinWait), kTcpEstablished);
    EXPECT_EQ(timeout_class_for(kProtoTcp, TcpState::Closing), kTcpClosing);
    EXPECT_EQ(timeout_class_for(kProtoTcp, TcpState::Closed), kTcpClosing);
    EXPECT_EQ(timeout_class_for(kProtoUdp, TcpState::None), kUdp);
    EXPECT_EQ(timeout_class_for(kProtoIcmp, TcpState::None), kOther);
    EXPECT_EQ(timeout_class_for(kProtoIcmp6, TcpState::None), kOther);
    EXPECT_EQ(timeout_class_for(47, TcpState::None), kOther);
    EXPECT_STREQ(tcp_state_name(TcpState::SynReceived), "SYN_RECEIVED");
    EXPECT_STREQ(tcp_state_name(TcpState::Closed), "CLOSED");
    EXPECT_STREQ(timeout_class_name(kUdp), "udp");
    EXPECT_STREQ(timeout_class_name(kTimeoutClassCount), "?");
}

}  // namespace

int main(int argc, char **argv) {
    ::testing::InitGoogleTest(&argc, argv);
    ::testing::AddGlobalTestEnvironment(new EalEnvironment);
    return RUN_ALL_TESTS();
}
