// The Console's /metrics (tools/console/metrics.cpp): bounded route labels whatever a client
// sends, counts per route and status class, and a well-formed exposition of counts and state.
#include <gtest/gtest.h>

#include "tests/unit/metrics/exposition_check.hpp"
#include "tools/console/metrics.hpp"
#include "version.hpp"

namespace segwire::console {
namespace {

using metrics::testing::find;
using metrics::testing::parse_exposition;
using metrics::testing::Parsed;

TEST(ConsoleRoutes, IdsBecomePlaceholders) {
    EXPECT_EQ(route_template("/issue"), "/issue");
    EXPECT_EQ(route_template("/metrics"), "/metrics");
    EXPECT_EQ(route_template("/readyz"), "/readyz");
    EXPECT_EQ(route_template("/namespace"), "/namespace");
    EXPECT_EQ(route_template("/enforcers"), "/enforcers");
    EXPECT_EQ(route_template("/enforcers/enf-a"), "/enforcers/:id");
    EXPECT_EQ(route_template("/enforcers/enf-a/policy"), "/enforcers/:id/policy");
    EXPECT_EQ(route_template("/enforcers/enf-b/heartbeat"), "/enforcers/:id/heartbeat");
    EXPECT_EQ(route_template("/enforcers/x/enforcerprofiles"), "/enforcers/:id/enforcerprofiles");
    EXPECT_EQ(route_template("/enforcers/x/approval"), "/enforcers/:id/approval");
    EXPECT_EQ(route_template("/processingunits"), "/processingunits");
    EXPECT_EQ(route_template("/processingunits/5f2e"), "/processingunits/:id");
    EXPECT_EQ(route_template("/appcreds/app-1"), "/appcreds/:id");
    EXPECT_EQ(route_template("/flowreports"), "/flowreports");
    EXPECT_EQ(route_template("/eventlogs"), "/eventlogs");
    EXPECT_EQ(route_template("/enforcers/"), "/enforcers");
}

TEST(ConsoleRoutes, AnythingElseIsOther) {
    // A client inventing paths must not invent series.
    for (const char *p :
         {"/", "", "/nope", "/enforcers/a/b/c", "/enforcers/a/secrets", "/processingunits/a/b",
          "/flowreports/1", "/metrics/x", "/%2e%2e/etc/passwd", "/issue/again"})
        EXPECT_EQ(route_template(p), "other") << p;
    EXPECT_EQ(method_label("GET"), "GET");
    EXPECT_EQ(method_label("DELETE"), "DELETE");
    EXPECT_EQ(method_label("BREW"), "other");
    EXPECT_EQ(method_label("get"), "other");
}

TEST(ConsoleMetricsCounts, RequestsByRouteAndStatusClass) {
    ConsoleMetrics m;
    m.request("GET", "/enforcers/enf-a/policy", 200);
    m.request("GET", "/enforcers/enf-b/policy", 304);
    m.request("GET", "/enforcers/enf-b/policy", 200);
    m.request("GET", "/metrics", 401);
    m.request("GET", "/metrics", 403);
    m.request("BREW", "/coffee", 404);
    m.token_issued("Certificate");
    m.reports("flowreports", 12, false);
    m.reports("flowreports", 0, true);
    ConsoleMetrics::Counts c;
    {
        auto poll = m.long_poll();
        auto poll2 = m.long_poll();
        c = m.counts();
        EXPECT_EQ(c.long_polls_open, 2);
    }
    EXPECT_EQ(m.counts().long_polls_open, 0);
    using K = std::tuple<std::string, std::string, std::string>;
    EXPECT_EQ(c.requests.at(K{"GET", "/enforcers/:id/policy", "2xx"}), 2u);
    EXPECT_EQ(c.requests.at(K{"GET", "/enforcers/:id/policy", "3xx"}), 1u);
    EXPECT_EQ(c.requests.at(K{"GET", "/metrics", "4xx"}), 2u);
    EXPECT_EQ(c.requests.at(K{"other", "other", "4xx"}), 1u);
    EXPECT_EQ(c.requests.size(), 4u);

    ConsoleState st;
    st.start_unix = 1796000000;
    st.policy_version = 7;
    st.policy_objects = {{"processingunits", 2}, {"externalnetworks", 1}};
    st.enforcers_registered = 2;
    st.enforcers_reachable = 1;
    st.database_bytes = 4096;
    st.checks = {{"database", ""}, {"ca", ""}};
    const Parsed p = parse_exposition(render_console_metrics(c, st));
    for (const auto &problem : p.problems) ADD_FAILURE() << problem;
    for (const auto &[name, type] : p.types)
        EXPECT_EQ(name.rfind("segwire_console_", 0), 0u) << name;
    auto one = [&](const std::string &name, const std::map<std::string, std::string> &l = {}) {
        auto s = find(p, name, l);
        EXPECT_EQ(s.size(), 1u) << name;
        return s.empty() ? -1.0 : s[0].value;
    };
    EXPECT_EQ(one("segwire_console_http_requests_total",
                  {{"method", "GET"}, {"route", "/metrics"}, {"status_class", "4xx"}}),
              2);
    EXPECT_EQ(one("segwire_console_tokens_issued_total", {{"realm", "Certificate"}}), 1);
    EXPECT_EQ(one("segwire_console_tokens_issued_total", {{"realm", "AWSSecurityToken"}}), 0);
    EXPECT_EQ(one("segwire_console_reports_ingested_total", {{"kind", "flowreports"}}), 12);
    EXPECT_EQ(one("segwire_console_reports_ingested_total", {{"kind", "eventlogs"}}), 0);
    EXPECT_EQ(one("segwire_console_report_batches_total",
                  {{"kind", "flowreports"}, {"result", "duplicate"}}),
              1);
    EXPECT_EQ(one("segwire_console_long_polls_open"), 2);
    EXPECT_EQ(one("segwire_console_enforcers_registered"), 2);
    EXPECT_EQ(one("segwire_console_enforcers_reachable"), 1);
    EXPECT_EQ(one("segwire_console_policy_version"), 7);
    EXPECT_EQ(one("segwire_console_policy_objects", {{"collection", "processingunits"}}), 2);
    EXPECT_EQ(one("segwire_console_database_size_bytes"), 4096);
    EXPECT_EQ(one("segwire_console_ready"), 1);
    EXPECT_EQ(one("segwire_console_build_info", {{"version", kVersion}}), 1);
    // No WAL file: the family is there, without a sample.
    EXPECT_EQ(p.types.count("segwire_console_database_wal_size_bytes"), 1u);
    EXPECT_TRUE(find(p, "segwire_console_database_wal_size_bytes").empty());
}

TEST(ConsoleReadiness, NamesWhatIsWrong) {
    ConsoleState st;
    st.checks = {{"database", ""}, {"ca", ""}};
    EXPECT_TRUE(st.ready());
    EXPECT_EQ(readiness_json(st), R"({"ready":true,"checks":{"database":"ok","ca":"ok"}})");
    st.checks[0].second = "console.db was deleted";
    EXPECT_FALSE(st.ready());
    EXPECT_EQ(readiness_json(st),
              R"({"ready":false,"checks":{"database":"console.db was deleted","ca":"ok"}})");
    const Parsed p = parse_exposition(render_console_metrics({}, st));
    EXPECT_TRUE(p.problems.empty());
    ASSERT_EQ(find(p, "segwire_console_ready").size(), 1u);
    EXPECT_EQ(find(p, "segwire_console_ready")[0].value, 0);
}

}  // namespace
}  // namespace segwire::console
