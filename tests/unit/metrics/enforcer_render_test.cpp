// The enforcer's exposition (control/metrics.cpp) from real workers (EAL without hugepages, never
// launched): every family well-formed, each counter read into the sample its labels name, and the
// fail-mode state set. The identity and Console families need an enrolled enforcer: the
// integration test (tests/integration/test_metrics.py) scrapes those from real enforcers.
#include <gtest/gtest.h>

#include <set>

#include "control/app.hpp"
#include "control/metrics.hpp"
#include "tests/unit/metrics/exposition_check.hpp"
#include "tests/unit/packet/eal_env.hpp"
#include "version.hpp"

namespace segwire::control {
namespace {

using metrics::testing::find;
using metrics::testing::parse_exposition;
using metrics::testing::Parsed;

// A worker's counters as the worker would write them (the test stands in for the worker lcore).
dp::WorkerStats &writable(const dp::WorkerStats &s) {
    return const_cast<dp::WorkerStats &>(s);
}

class EnforcerRender : public ::testing::Test {
  protected:
    void SetUp() override {
        app_.pool = EalEnvironment::pool;
        app_.ports[0].name = "net_af_packet_in";
        app_.ports[0].driver = "net_af_packet";
        app_.ports[0].mtu = 1500;
        app_.ports[1].name = "net_af_packet_out";
        app_.ports[1].driver = "net_af_packet";
        app_.ports[1].mtu = 9000;
        app_.start_unix = 1796000000;
        for (uint32_t w = 0; w < 2; ++w) {
            dp::WorkerSetup s;
            s.id = w;
            s.nworkers = 2;
            s.flow_capacity = 1024;
            for (auto &t : s.timeouts_s) t = 30;
            s.pool = app_.pool;
            app_.workers.add(s);
        }
    }
    void TearDown() override { app_.workers.clear(); }

    Parsed render() {
        Parsed p = parse_exposition(render_metrics(app_));
        for (const auto &problem : p.problems) ADD_FAILURE() << problem;
        return p;
    }
    static double value(const Parsed &p, const std::string &name,
                        const std::map<std::string, std::string> &labels = {}) {
        auto s = find(p, name, labels);
        EXPECT_EQ(s.size(), 1u) << name;
        return s.empty() ? -1 : s[0].value;
    }

    App app_;
};

TEST_F(EnforcerRender, WellFormedAndPrefixed) {
    const Parsed p = render();
    for (const auto &[name, type] : p.types) EXPECT_EQ(name.rfind("segwire_", 0), 0u) << name;
    EXPECT_EQ(value(p, "segwire_workers"), 2);
    EXPECT_EQ(value(p, "segwire_start_time_seconds"), 1796000000);
    const auto build = find(p, "segwire_build_info");
    ASSERT_EQ(build.size(), 1u);
    EXPECT_EQ(build[0].labels.at("version"), kVersion);
    EXPECT_EQ(build[0].labels.at("build"), kBuild);
    EXPECT_EQ(build[0].value, 1);
    EXPECT_EQ(value(p, "segwire_enforcer_info", {{"mode", "forwarding"}}), 1);
    EXPECT_EQ(value(p, "segwire_port_mtu_bytes", {{"port", "outside"}}), 9000);
    EXPECT_EQ(value(p, "segwire_port_info", {{"port", "inside"}, {"device", "net_af_packet_in"}}),
              1);
    EXPECT_EQ(value(p, "segwire_flow_table_capacity", {{"worker", "1"}}), 1024);
    EXPECT_EQ(value(p, "segwire_mbuf_pool_size"), 1023);
    // Forwarding only: no identity, fail-mode or Console families.
    EXPECT_EQ(p.types.count("segwire_identity_syn_signed_total"), 0u);
    EXPECT_EQ(p.types.count("segwire_fail_state"), 0u);
    EXPECT_EQ(p.types.count("segwire_sync_connected"), 0u);
}

TEST_F(EnforcerRender, EachCounterLandsInItsOwnSample) {
    dp::WorkerStats &w1 = writable(app_.workers.stats(1));
    w1.rx_pkts[dp::kOutside].add(7);
    w1.rx_bytes[dp::kOutside].add(700);
    w1.tx_pkts[dp::kInside].add(6);
    w1.tx_bytes[dp::kInside].add(600);
    w1.drops[static_cast<size_t>(dp::DropReason::PolicyReject)].add(3);
    w1.steered_in.add(2);
    w1.flows_active.set(5);
    w1.flows_created.add(9);
    writable(app_.workers.stats(0)).rx_pkts[dp::kInside].add(11);
    const Parsed p = render();
    using L = std::map<std::string, std::string>;
    EXPECT_EQ(
        value(p, "segwire_port_received_packets_total", L{{"worker", "1"}, {"port", "outside"}}),
        7);
    EXPECT_EQ(
        value(p, "segwire_port_received_packets_total", L{{"worker", "1"}, {"port", "inside"}}), 0);
    EXPECT_EQ(
        value(p, "segwire_port_received_packets_total", L{{"worker", "0"}, {"port", "inside"}}),
        11);
    EXPECT_EQ(
        value(p, "segwire_port_received_bytes_total", L{{"worker", "1"}, {"port", "outside"}}),
        700);
    EXPECT_EQ(
        value(p, "segwire_port_transmitted_packets_total", L{{"worker", "1"}, {"port", "inside"}}),
        6);
    EXPECT_EQ(
        value(p, "segwire_port_transmitted_bytes_total", L{{"worker", "1"}, {"port", "inside"}}),
        600);
    EXPECT_EQ(
        value(p, "segwire_port_transmitted_bytes_total", L{{"worker", "1"}, {"port", "outside"}}),
        0);
    EXPECT_EQ(
        value(p, "segwire_dropped_packets_total", L{{"worker", "1"}, {"reason", "policy-reject"}}),
        3);
    EXPECT_EQ(
        value(p, "segwire_dropped_packets_total", L{{"worker", "0"}, {"reason", "policy-reject"}}),
        0);
    EXPECT_EQ(value(p, "segwire_steered_packets_total", L{{"worker", "1"}, {"direction", "in"}}),
              2);
    EXPECT_EQ(value(p, "segwire_steered_packets_total", L{{"worker", "1"}, {"direction", "out"}}),
              0);
    EXPECT_EQ(value(p, "segwire_flows_active", L{{"worker", "1"}}), 5);
    EXPECT_EQ(value(p, "segwire_flows_created_total", L{{"worker", "1"}}), 9);
}

TEST_F(EnforcerRender, EveryDropReasonForEveryWorkerFromTheStart) {
    const Parsed p = render();
    std::set<std::string> reasons;
    for (const auto &s : find(p, "segwire_dropped_packets_total", {{"worker", "0"}})) {
        EXPECT_EQ(s.value, 0);
        reasons.insert(s.labels.at("reason"));
    }
    EXPECT_EQ(reasons.size(), dp::kDropReasonCount - 1);  // all but "none"
    EXPECT_EQ(reasons.count("none"), 0u);
    EXPECT_EQ(reasons.count("flow-table-full"), 1u);
    EXPECT_EQ(reasons.count("certificate-revoked"), 1u);
    EXPECT_EQ(find(p, "segwire_dropped_packets_total").size(), 2 * (dp::kDropReasonCount - 1));
}

TEST_F(EnforcerRender, FailModeStateBeforeEnrollment) {
    app_.cfg.identity.enforcer_id = "enf-a";  // an identity, not enrolled yet
    Parsed p = render();
    EXPECT_EQ(value(p, "segwire_fail_mode_closed"), 1);
    EXPECT_EQ(value(p, "segwire_fail_state", {{"state", "refusing"}}), 1);
    EXPECT_EQ(value(p, "segwire_fail_state", {{"state", "enforcing"}}), 0);
    EXPECT_EQ(value(p, "segwire_fail_state", {{"state", "forwarding"}}), 0);
    EXPECT_EQ(value(p, "segwire_enrolled"), 0);
    EXPECT_EQ(value(p, "segwire_enforcer_info", {{"enforcer_id", "enf-a"}}), 1);
    app_.cfg.identity.fail_closed = false;
    p = render();
    EXPECT_EQ(value(p, "segwire_fail_mode_closed"), 0);
    EXPECT_EQ(value(p, "segwire_fail_state", {{"state", "forwarding"}}), 1);
    EXPECT_EQ(value(p, "segwire_fail_state", {{"state", "refusing"}}), 0);
}

}  // namespace
}  // namespace segwire::control

int main(int argc, char **argv) {
    ::testing::InitGoogleTest(&argc, argv);
    ::testing::AddGlobalTestEnvironment(new EalEnvironment);
    return RUN_ALL_TESTS();
}
