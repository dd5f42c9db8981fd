// The mbuf budget (control/mbuf_budget.cpp, docs/handshake.md "Budgets"): what handshakes may pin
// fits beside the forwarding reserve, and a configuration that does not is refused naming the
// field.
#include <gtest/gtest.h>

#include "control/mbuf_budget.hpp"

using segwire::config::ApplianceConfig;
using segwire::config::ConfigError;
using segwire::control::plan_mbufs;

namespace {

ApplianceConfig identity_cfg(uint32_t mbufs, uint32_t workers) {
    ApplianceConfig c;
    c.mbufs = mbufs;
    c.workers = workers;
    c.identity.enforcer_id = "enf-a";
    return c;
}

std::string field_of(const ApplianceConfig &c, uint32_t rings) {
    try {
        plan_mbufs(c, rings);
    } catch (const ConfigError &e) {
        return e.field();
    }
    return "";
}

}  // namespace

TEST(MbufBudget, DerivedBoundsLeaveTheReserveToForwarding) {
    for (uint32_t workers : {1u, 2u, 4u})
        for (uint32_t rings : {0u, 1024u}) {
            const ApplianceConfig c = identity_cfg(32767, workers);
            const auto p = plan_mbufs(c, rings * workers);
            const uint64_t pinned =
                uint64_t(workers) * (p.hold_total + p.kept_control + p.slow_jobs);
            EXPECT_GE(p.reserve, c.mbufs / 4);
            EXPECT_LE(pinned + p.rings + p.steering + p.caches + p.reserve, c.mbufs)
                << workers << " workers, " << rings << " ring mbufs";
            EXPECT_GE(p.hold_total, 64u);
            EXPECT_GT(p.kept_control, 0u);
        }
}

TEST(MbufBudget, OldDefaultsNoLongerFit) {
    // 8 192 held packets per worker against a 16 383-mbuf pool with 2 workers: refused.
    ApplianceConfig c = identity_cfg(16383, 2);
    c.handshake.hold_total = 8192;
    EXPECT_EQ(field_of(c, 0), "handshake.hold_total");
    c.handshake.hold_total = 0;
    c.handshake.kept_control = 16384;
    EXPECT_EQ(field_of(c, 0), "handshake.kept_control");
}

TEST(MbufBudget, TooSmallAPoolIsRefused) {
    EXPECT_EQ(field_of(identity_cfg(2047, 2), 4096), "mbufs");
    ApplianceConfig c = identity_cfg(8191, 1);
    c.handshake.slowpath_queue = 65536;
    EXPECT_EQ(field_of(c, 0), "handshake.slowpath_queue");
}

TEST(MbufBudget, ForwardingOnlyPinsNothing) {
    ApplianceConfig c;
    c.mbufs = 8191;
    const auto p = plan_mbufs(c, 0);
    EXPECT_EQ(p.hold_total, 0u);
    EXPECT_EQ(p.kept_control, 0u);
}

TEST(MbufBudget, TheErrorNamesTheNumbers) {
    ApplianceConfig c = identity_cfg(8191, 2);
    c.handshake.hold_total = 8192;
    try {
        plan_mbufs(c, 0);
        FAIL() << "accepted";
    } catch (const ConfigError &e) {
        const std::string w = e.what();
        EXPECT_NE(w.find("8192 held"), std::string::npos) << w;
        EXPECT_NE(w.find("mbuf_reserve_percent 25"), std::string::npos) << w;
        EXPECT_NE(w.find("raise mbufs"), std::string::npos) << w;
    }
}
