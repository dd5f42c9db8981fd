// The hot path (classify, decide, the decision cache, RCU reads) must not allocate. A replaced
// global operator new counts allocations made by this thread while a window is open.
#include <gtest/gtest.h>

#include <cstdlib>
#include <new>

#include "config/policy/model.hpp"
#include "config/policy/profile.hpp"
#include "control/policy/compile.hpp"
#include "control/policy/publisher.hpp"
#include "dataplane/policy/decision_cache.hpp"
#include "dataplane/policy/snapshot.hpp"
#include "tests/unit/policy/eal_env.hpp"

#include "tests/unit/alloc_counter.hpp"

namespace segwire::policy {
using namespace segwire::control;  // compile_snapshot, CompileOptions, SnapshotPublisher
namespace {

const std::string kExamples = std::string(SEGWIRE_SOURCE_ROOT) + "/config/examples/policy";

// `tables`: the address tables' kind (a small policy gets RIBs by default; forced to LPMs here).
void hot_path_does_not_allocate(const std::string &tables) {
    PolicySet set = load_policy_dir(kExamples);
    const EnforcerProfile &prof = *resolve_profile(set, {"role=appliance", "site=dc1"}).profile;
    SnapshotPublisher pub(1);
    CompileOptions opts;
    if (tables == "lpm") opts.rib_max_v4 = opts.rib_max_v6 = 0;
    pub.publish(compile_snapshot(set, prof, std::move(opts)));
    ASSERT_EQ(pub.current()->stats().table_v4, tables);
    ASSERT_EQ(pub.current()->stats().table_v6, tables);
    pub.register_reader(0);
    DecisionCache cache(256);
    const PolicySnapshot *s = pub.current();
    PeerTags peer =
        s->make_peer_tags(std::vector<std::string>{"app=shop", "tier=frontend", "env=prod"});
    uint32_t backend = s->find_pu_by_id("pu-backend");
    IpAddr ext4 = IpAddr::parse("8.8.8.8"), ext6 = IpAddr::parse("2001:db8::1");
    uint32_t ips[4] = {0x0a010005u, 0x08080808u, 0x0a090001u, 0xcb007105u};
    AddressInfo out[4];

    g_allocations = 0;
    g_counting = true;
    size_t accepted = 0;
    for (int round = 0; round < 3; ++round) {  // first round misses, later rounds hit
        const PolicySnapshot *cur = pub.current();
        accepted +=
            cur->decide(backend, Direction::kIncoming, peer, 6, 8080).action == Verdict::kAccept;
        accepted += cache.decide(*cur, backend, Direction::kIncoming, peer, 6, 8080).action ==
                    Verdict::kAccept;
        cache.decide(*cur, 0, Direction::kIncoming, ext4, 6, 443);
        cache.decide(*cur, 0, Direction::kIncoming, ext6, 6, 443);
        cur->decide(0, Direction::kOutgoing, ext4, 17, 53);
        cur->classify(ext6);
        cur->classify_v4_bulk(ips, out, 4);
        pub.reader_quiescent(0);
    }
    g_counting = false;
    EXPECT_EQ(g_allocations, 0u);
    EXPECT_EQ(accepted, 6u) << "the window must have exercised real decisions";
    pub.unregister_reader(0);
}

TEST(NoAlloc, HotPathDoesNotAllocateWithRibTables) {
    hot_path_does_not_allocate("rib");
}

TEST(NoAlloc, HotPathDoesNotAllocateWithLpmTables) {
    hot_path_does_not_allocate("lpm");
}

}  // namespace
}  // namespace segwire::policy

int main(int argc, char **argv) {
    ::testing::InitGoogleTest(&argc, argv);
    ::testing::AddGlobalTestEnvironment(new segwire::test::EalEnvironment);
    return RUN_ALL_TESTS();
}
