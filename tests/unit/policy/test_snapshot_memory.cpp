// Snapshot memory: address tables sized from the policy (RIB up to kRibMaxPrefixesV4/V6 prefixes,
// LPM above), tables shared across rule-only updates, the SnapshotBudget bound and its wait for
// RCU reclamation, and what a compile that runs out of DPDK memory leaves behind.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <random>
#include <set>
#include <thread>

#include <rte_malloc.h>

#include "control/policy/compile.hpp"
#include "control/policy/publisher.hpp"
#include "dataplane/policy/budget.hpp"
#include "dataplane/policy/snapshot.hpp"

namespace segwire::policy {
using namespace segwire::control;  // compile_snapshot, CompileOptions, SnapshotPublisher
namespace {

constexpr size_t kMiB = size_t(1) << 20;

// DPDK heap bytes in use (all sockets): what the snapshots' tables cost.
size_t heap_in_use() {
    size_t total = 0;
    for (unsigned i = 0; i < rte_socket_count(); ++i) {
        rte_malloc_socket_stats s{};
        if (rte_malloc_get_socket_stats(rte_socket_id_by_idx(i), &s) == 0)
            total += s.heap_allocsz_bytes;
    }
    return total;
}

// The integration bed's lab policy: two PUs with v4 and v6 addresses, one external network, one
// rule each way; `extra_v4` / `extra_v6` more prefixes in a second network.
PolicySet lab(const std::string &version, bool allow = true, int extra_v4 = 0, int extra_v6 = 0) {
    PolicySet s;
    s.version = version;
    EnforcerProfile prof;
    prof.name = "lab";
    prof.target_networks = std::vector<std::string>{"10.77.0.0/24", "fd77::/64"};
    s.enforcer_profiles.push_back(prof);
    ProcessingUnit c, v;
    c.id = "pu-client";
    c.associated_tags = {"app=client"};
    c.addresses = {"10.77.0.1/32", "10.88.0.1/32", "fd77::1/128"};
    v.id = "pu-server";
    v.associated_tags = {"app=server"};
    v.addresses = {"10.77.0.2/32", "fd77::2/128"};
    s.processing_units = {c, v};
    ExternalNetwork ext;
    ext.name = "ext";
    ext.associated_tags = {"net=ext"};
    ext.entries = {"10.77.0.3/32", "fd77::3/128"};
    s.external_networks.push_back(ext);
    if (extra_v4 || extra_v6) {
        ExternalNetwork big;
        big.name = "big";
        big.associated_tags = {"net=big"};
        for (int i = 0; i < extra_v4; ++i)
            big.entries.push_back("11." + std::to_string(i >> 8 & 255) + "." +
                                  std::to_string(i & 255) + ".0/24");
        for (int i = 0; i < extra_v6; ++i) {
            char buf[48];
            std::snprintf(buf, sizeof buf, "2001:db8:%x::/48", i);
            big.entries.push_back(buf);
        }
        s.external_networks.push_back(big);
    }
    NetworkRuleSetPolicy p;
    p.name = "server-in";
    p.subject = {{"app=server"}};
    NetworkRule r;
    r.name = "from-client";
    r.action = allow ? RuleAction::kAllow : RuleAction::kReject;
    r.object = {{"app=client"}};
    r.protocol_ports = {"tcp/7000"};
    p.incoming_rules = {r};
    s.network_policies.push_back(p);
    validate(s);
    return s;
}

std::unique_ptr<PolicySnapshot> compile(const PolicySet &s, CompileOptions o = {}) {
    return compile_snapshot(s, s.enforcer_profiles[0], std::move(o));
}

// ---- sizing -----------------------------------------------------------------------------------

// The defect: a 2-PU, 1-rule policy took ~134 MB (two fixed 64 MiB tbl24s). Measured from the
// DPDK heap, so it holds whatever structure the snapshot uses.
TEST(SnapshotMemory, SmallPolicyTakesKilobytes) {
    const size_t before = heap_in_use();
    auto snap = compile(lab("v1"));
    const size_t used = heap_in_use() - before;
    EXPECT_LT(used, 256 * 1024) << used << " bytes of DPDK memory for a 2-PU policy";
    EXPECT_EQ(snap->find_pu(IpAddr::parse("10.77.0.2")), 1u);
    EXPECT_EQ(snap->find_pu(IpAddr::parse("fd77::1")), 0u);
}

// Many small snapshots alive at once fit in the test EAL's 1024 MB (at 134 MB each, 7 did).
TEST(SnapshotMemory, FiftySmallSnapshotsAliveAtOnce) {
    const size_t before = heap_in_use();
    std::vector<std::unique_ptr<PolicySnapshot>> alive;
    for (int i = 0; i < 50; ++i) alive.push_back(compile(lab("v" + std::to_string(i), i % 2)));
    EXPECT_LT(heap_in_use() - before, 16 * kMiB);
    for (int i = 0; i < 50; ++i) {
        PeerTags peer = alive[i]->make_peer_tags(std::vector<std::string>{"app=client"});
        EXPECT_EQ(alive[i]->decide(1, Direction::kIncoming, peer, 6, 7000).action,
                  i % 2 ? Verdict::kAccept : Verdict::kReject);
    }
}

TEST(AddressTables, KindFollowsThePrefixCountPerFamily) {
    // The lab policy has 5 v4 and 4 v6 prefixes of its own (PU addresses, ext, targetNetworks).
    const int own_v4 = 5, own_v6 = 4;
    auto at_limit =
        compile(lab("a", true, int(kRibMaxPrefixesV4) - own_v4, int(kRibMaxPrefixesV6) - own_v6));
    auto st = at_limit->stats();
    EXPECT_EQ(st.prefixes_v4, kRibMaxPrefixesV4);
    EXPECT_EQ(st.prefixes_v6, kRibMaxPrefixesV6);
    EXPECT_STREQ(st.table_v4, "rib");
    EXPECT_STREQ(st.table_v6, "rib");
    EXPECT_LT(st.table_bytes, 2 * kMiB);

    auto over_v4 = compile(lab("b", true, int(kRibMaxPrefixesV4) - own_v4 + 1, 0));
    st = over_v4->stats();
    EXPECT_STREQ(st.table_v4, "lpm");
    EXPECT_STREQ(st.table_v6, "rib") << "the families are sized independently";
    EXPECT_GE(st.table_bytes, 64 * kMiB) << "rte_lpm's tbl24 is 2^24 entries whatever the rules";
    EXPECT_LT(st.table_bytes, 80 * kMiB);

    auto over_v6 = compile(lab("c", true, 0, int(kRibMaxPrefixesV6) - own_v6 + 1));
    st = over_v6->stats();
    EXPECT_STREQ(st.table_v4, "rib");
    EXPECT_STREQ(st.table_v6, "lpm");
    EXPECT_GE(st.table_bytes, 64 * kMiB);

    PolicySet none = lab("d");
    none.processing_units.clear();
    none.external_networks.clear();
    none.enforcer_profiles[0].target_networks = std::vector<std::string>{};
    st = compile(none)->stats();
    EXPECT_STREQ(st.table_v4, "none");
    EXPECT_STREQ(st.table_v6, "none");
    EXPECT_EQ(st.table_bytes, 0u);
}

// Random nested prefixes of every length (host routes, > /24 for rte_lpm's tbl8 groups, v6 > /64)
// in several networks with exclusions: the RIB and the LPM tables must classify every address the
// same way, singly and in bursts.
TEST(AddressTables, RibAndLpmClassifyAlike) {
    std::mt19937 rng(2024);
    PolicySet s = lab("x");
    auto random_prefix = [&](bool v6, int min_len, int max_len) {
        IpPrefix p;
        p.v6 = v6;
        p.len = uint8_t(min_len + int(rng() % uint32_t(max_len - min_len + 1)));
        for (auto &b : p.addr) b = uint8_t(rng());
        if (!v6) std::fill(p.addr.begin() + 4, p.addr.end(), 0);
        p.addr[0] = v6 ? 0x20 : 10;  // one area, so prefixes nest and overlap
        if (rng() % 2) p.addr[1] = 0x01;
        for (unsigned bit = p.len; bit < p.max_len(); ++bit)
            p.addr[bit / 8] &= uint8_t(~(0x80u >> (bit % 8)));
        return p;
    };
    std::set<std::string> used;
    for (int n = 0; n < 30; ++n) {
        ExternalNetwork net;
        net.name = "n" + std::to_string(n);
        net.associated_tags = {"net=n" + std::to_string(n)};
        for (int i = 0; i < 12; ++i) {
            const bool v6 = i % 3 == 2;
            IpPrefix p = random_prefix(v6, 8, v6 ? 128 : 32);
            if (!used.insert(p.str()).second) continue;
            net.entries.push_back(p.str());
            if (p.len + 4 <= p.max_len() && rng() % 2) {
                IpPrefix x = p;
                x.len = uint8_t(p.len + 1 + rng() % 3);
                for (unsigned bit = p.len; bit < x.len; ++bit)
                    if (rng() & 1) x.addr[bit / 8] |= uint8_t(0x80u >> (bit % 8));
                if (used.insert(x.str()).second) net.entries.push_back("!" + x.str());
            }
        }
        if (!net.entries.empty()) s.external_networks.push_back(net);
    }
    validate(s);
    CompileOptions as_rib, as_lpm;
    as_rib.rib_max_v4 = as_rib.rib_max_v6 = UINT32_MAX;
    as_lpm.rib_max_v4 = as_lpm.rib_max_v6 = 0;
    auto rib = compile(s, std::move(as_rib));
    auto lpm = compile(s, std::move(as_lpm));
    ASSERT_STREQ(rib->stats().table_v4, "rib");
    ASSERT_STREQ(rib->stats().table_v6, "rib");
    ASSERT_STREQ(lpm->stats().table_v4, "lpm");
    ASSERT_STREQ(lpm->stats().table_v6, "lpm");
    ASSERT_GT(rib->stats().prefixes_v4, 150u);
    ASSERT_GT(rib->stats().prefixes_v6, 60u);

    int in_some_network = 0;
    uint32_t burst[64];
    for (int q = 0; q < 20000; ++q) {
        IpPrefix a = random_prefix(q % 3 == 0, 0, 0);
        for (auto &b : a.addr) b = uint8_t(rng());
        if (!a.v6) std::fill(a.addr.begin() + 4, a.addr.end(), 0);
        a.addr[0] = a.v6 ? 0x20 : 10;
        if (q % 5 == 0) a.addr[0] = uint8_t(rng());  // and some outside the area
        const IpAddr addr = a.v6 ? IpAddr::from_v6(a.addr.data()) : IpAddr::from_v4(a.v4_host());
        const AddressInfo r = rib->classify(addr), l = lpm->classify(addr);
        ASSERT_EQ(r.class_id, l.class_id) << a.str();
        ASSERT_EQ(r.pu, l.pu) << a.str();
        ASSERT_EQ(r.flags, l.flags) << a.str();
        in_some_network += !rib->networks_of(r.class_id).empty();
        if (!a.v6) burst[q % 64] = a.v4_host();
        if (q % 64 == 63) {
            AddressInfo rb[64], lb[64];
            rib->classify_v4_bulk(burst, rb, 64);
            lpm->classify_v4_bulk(burst, lb, 64);
            for (int i = 0; i < 64; ++i) {
                ASSERT_EQ(rb[i].class_id, lb[i].class_id);
                ASSERT_EQ(rb[i].class_id, rib->classify_v4(burst[i]).class_id);
            }
        }
    }
    EXPECT_GT(in_some_network, 2000) << "the generator must produce matches";
}

// ---- sharing ----------------------------------------------------------------------------------

TEST(AddressTables, RuleOnlyUpdateSharesTheTables) {
    for (int extra : {0, int(kRibMaxPrefixesV4)}) {  // RIB and LPM tables alike
        SCOPED_TRACE(extra);
        auto first = compile(lab("v1", true, extra, 0));
        EXPECT_FALSE(first->stats().table_shared);
        const size_t before = heap_in_use();
        CompileOptions o;
        o.previous = first.get();
        auto second = compile(lab("v2", false, extra, 0), std::move(o));  // only the rule differs
        EXPECT_LT(heap_in_use() - before, 64 * 1024) << "no second set of tables";
        auto st = second->stats();
        EXPECT_TRUE(st.table_shared);
        EXPECT_EQ(st.table_bytes, first->stats().table_bytes);
        const IpAddr srv = IpAddr::parse("10.77.0.2"), cli6 = IpAddr::parse("fd77::1");
        first.reset();  // the tables outlive the snapshot that built them
        EXPECT_EQ(second->find_pu(srv), 1u);
        EXPECT_EQ(second->find_pu(cli6), 0u);
        PeerTags peer = second->make_peer_tags(std::vector<std::string>{"app=client"});
        EXPECT_EQ(second->decide(1, Direction::kIncoming, peer, 6, 7000).action, Verdict::kReject);

        // A prefix change builds new tables.
        CompileOptions o3;
        o3.previous = second.get();
        PolicySet moved = lab("v3", true, extra, 0);
        moved.processing_units[1].addresses = {"10.77.0.9/32", "fd77::2/128"};
        auto third = compile(moved, std::move(o3));
        EXPECT_FALSE(third->stats().table_shared);
        EXPECT_EQ(third->find_pu(IpAddr::parse("10.77.0.9")), 1u);
        EXPECT_EQ(third->find_pu(srv), kNone);
        EXPECT_EQ(second->find_pu(srv), 1u) << "the old snapshot keeps its own tables";
    }
}

// ---- the bound --------------------------------------------------------------------------------

TEST(SnapshotBudget, BoundsHowManySnapshotsAreAlive) {
    SnapshotBudget budget(2);
    EXPECT_THROW(SnapshotBudget(0), PolicyError);
    auto with_ticket = [&](const std::string &v) -> std::unique_ptr<PolicySnapshot> {
        auto t = budget.try_acquire();
        if (!t) return nullptr;
        CompileOptions o;
        o.ticket = std::move(*t);
        return compile(lab(v), std::move(o));
    };
    auto a = with_ticket("a");
    auto b = with_ticket("b");
    ASSERT_TRUE(a && b);
    EXPECT_EQ(budget.alive(), 2u);
    EXPECT_EQ(with_ticket("c"), nullptr) << "a third snapshot exceeds the bound";
    a.reset();
    EXPECT_EQ(budget.alive(), 1u);
    auto c = with_ticket("c");
    ASSERT_TRUE(c);
    EXPECT_EQ(budget.high_water(), 2u);

    // A compile that throws gives its ticket back.
    c.reset();
    auto t = budget.try_acquire();
    ASSERT_TRUE(t);
    PolicySet bad = lab("bad");
    bad.network_policies[0].incoming_rules[0].protocol_ports = {"tcp/99999"};
    CompileOptions o;
    o.ticket = std::move(*t);
    EXPECT_THROW(compile(bad, std::move(o)), PolicyError);
    EXPECT_EQ(budget.alive(), 1u);
}

// The enforcer's reload path: the budget is full because the replaced snapshot is still in its RCU
// grace period; acquire() reclaims and waits until the reader passes a quiescent state, or gives
// up after its timeout.
TEST(SnapshotBudget, AcquireWaitsForRcuReclamationOrGivesUp) {
    SnapshotBudget budget(2);
    SnapshotPublisher pub(1, 4);
    pub.register_reader(0);
    auto publish = [&](const std::string &v) {
        auto t = budget.try_acquire();
        ASSERT_TRUE(t);
        CompileOptions o;
        o.ticket = std::move(*t);
        pub.publish(compile(lab(v), std::move(o)));
    };
    publish("v1");
    pub.reader_quiescent(0);
    publish("v2");  // v1 retired; reader 0 has not passed a quiescent state since
    EXPECT_EQ(budget.alive(), 2u);
    int rounds = 0;
    auto none = budget.acquire(std::chrono::milliseconds(50), [&] {
        ++rounds;
        pub.reclaim();
    });
    EXPECT_FALSE(none) << "the reader still may hold v1";
    EXPECT_GT(rounds, 1);
    EXPECT_EQ(pub.pending(), 1u);

    std::thread reader([&] {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        pub.reader_quiescent(0);
    });
    auto t = budget.acquire(std::chrono::seconds(30), [&] { pub.reclaim(); });
    reader.join();
    ASSERT_TRUE(t) << "v1 is reclaimed once the reader is quiescent";
    EXPECT_EQ(pub.pending(), 0u);
    EXPECT_EQ(budget.alive(), 2u);  // v2 and the new ticket
    pub.unregister_reader(0);
    pub.publish(nullptr);
    pub.synchronize();
}

// ---- running out of DPDK memory ---------------------------------------------------------------

// With less DPDK memory free than an LPM needs, the compile fails with a resource error (not a
// policy error), and whatever it had built is freed again.
TEST(SnapshotMemory, OutOfDpdkMemoryIsAResourceErrorAndLeaksNothing) {
    std::vector<void *> ballast;
    auto largest_free = [] {
        size_t m = 0;
        for (unsigned i = 0; i < rte_socket_count(); ++i) {
            rte_malloc_socket_stats s{};
            if (rte_malloc_get_socket_stats(rte_socket_id_by_idx(i), &s) == 0)
                m = std::max(m, s.greatest_free_size);
        }
        return m;
    };
    // Leave roughly 40 MiB free: a small policy fits, an LPM's 64 MiB tbl24 does not.
    while (largest_free() > 48 * kMiB) {
        void *p = rte_malloc("ballast", largest_free() - 40 * kMiB, 0);
        if (!p) break;
        ballast.push_back(p);
    }
    ASSERT_LE(largest_free(), 48 * kMiB);
    auto small = compile(lab("small"));
    EXPECT_STREQ(small->stats().table_v4, "rib");
    const size_t before = heap_in_use();
    try {
        compile(lab("big", true, 0, 2000));  // v6 above the RIB limit: an LPM6
        ADD_FAILURE() << "the compile should have run out of memory";
    } catch (const SnapshotResourceError &e) {
        EXPECT_EQ(e.resource(), SnapshotResourceError::Resource::kMemory);
        EXPECT_NE(std::string(e.what()).find("Cannot allocate memory"), std::string::npos)
            << e.what();
        EXPECT_NE(std::string(e.what()).find("(lpm6)"), std::string::npos) << e.what();
    }
    EXPECT_EQ(heap_in_use(), before) << "the failed compile freed what it had built";
    for (void *p : ballast) rte_free(p);
}

}  // namespace
}  // namespace segwire::policy
