// Where a metrics endpoint listens: metrics::parse_listen_address (the enforcer's metrics.listen
// and the Console's --metrics-listen) and the enforcer config's `metrics` section, whose errors
// name the field.
#include <gtest/gtest.h>

#include <string>

#include "config/appliance_config.hpp"
#include "config/metrics/listen_address.hpp"

namespace segwire {
namespace {

using config::ConfigError;
using config::parse_appliance_config;
using metrics::ListenAddress;
using metrics::parse_listen_address;

std::string problem_of(const std::string &text, bool allow_zero = false) {
    ListenAddress a;
    std::string problem;
    return parse_listen_address(text, &a, &problem, allow_zero) ? "" : problem;
}

TEST(ListenAddress, Ipv4AndBracketedIpv6) {
    ListenAddress a;
    std::string problem;
    ASSERT_TRUE(parse_listen_address("127.0.0.1:9470", &a, &problem));
    EXPECT_EQ(a.host, "127.0.0.1");
    EXPECT_EQ(a.port, 9470);
    ASSERT_TRUE(parse_listen_address("[::1]:9470", &a, &problem));
    EXPECT_EQ(a.host, "::1");
    ASSERT_TRUE(parse_listen_address("[fd00::5]:65535", &a, &problem));
    EXPECT_EQ(a.host, "fd00::5");
    EXPECT_EQ(a.port, 65535);
    ASSERT_TRUE(parse_listen_address("0.0.0.0:1", &a, &problem));
    EXPECT_EQ(a.port, 1);
}

TEST(ListenAddress, RefusalsSayWhatIsWrong) {
    EXPECT_NE(problem_of("").find("is not ADDRESS:PORT"), std::string::npos);
    EXPECT_NE(problem_of("127.0.0.1").find("is not ADDRESS:PORT"), std::string::npos);
    EXPECT_NE(problem_of(":9470").find("is not ADDRESS:PORT"), std::string::npos);
    EXPECT_NE(problem_of("localhost:9470").find("\"localhost\" is not an IP address"),
              std::string::npos);
    EXPECT_NE(problem_of("::1:9470").find("in brackets"), std::string::npos);
    EXPECT_NE(problem_of("[127.0.0.1]:9470").find("is not an IP address"), std::string::npos);
    EXPECT_NE(problem_of("256.0.0.1:9470").find("is not an IP address"), std::string::npos);
    EXPECT_NE(problem_of("127.0.0.1:0").find("from 1 to 65535 (got \"0\")"), std::string::npos);
    EXPECT_NE(problem_of("127.0.0.1:65536").find("(got \"65536\")"), std::string::npos);
    EXPECT_NE(problem_of("127.0.0.1:-1").find("(got \"-1\")"), std::string::npos);
    EXPECT_NE(problem_of("127.0.0.1:+80").find("(got \"+80\")"), std::string::npos);
    EXPECT_NE(problem_of("127.0.0.1:").find("(got \"\")"), std::string::npos);
    EXPECT_NE(problem_of("127.0.0.1:123456").find("(got \"123456\")"), std::string::npos);
    // Port 0 (ephemeral) only where the caller allows it (the Console prints the port it got).
    EXPECT_EQ(problem_of("127.0.0.1:0", true), "");
}

constexpr const char *kBase = R"({
  "ports": {"inside": {"device": "net_af_packet0,iface=a"},
            "outside": {"device": "net_af_packet1,iface=b"}})";

std::string cfg_with(const std::string &metrics) {
    return std::string(kBase) + (metrics.empty() ? "" : ", \"metrics\": " + metrics) + "}";
}

std::pair<std::string, std::string> error_of(const std::string &json) {
    try {
        parse_appliance_config(json);
    } catch (const ConfigError &e) {
        return {e.field(), e.what()};
    }
    return {"", ""};
}

TEST(MetricsConfig, OffWhenAbsent) {
    const auto c = parse_appliance_config(cfg_with(""));
    EXPECT_FALSE(c.metrics.enabled());
    EXPECT_EQ(c.metrics.port, 0);
}

TEST(MetricsConfig, ListenParsed) {
    auto c = parse_appliance_config(cfg_with(R"({"listen": "127.0.0.1:9470"})"));
    EXPECT_TRUE(c.metrics.enabled());
    EXPECT_EQ(c.metrics.listen, "127.0.0.1:9470");
    EXPECT_EQ(c.metrics.host, "127.0.0.1");
    EXPECT_EQ(c.metrics.port, 9470);
    c = parse_appliance_config(cfg_with(R"({"listen": "[::1]:9100"})"));
    EXPECT_EQ(c.metrics.host, "::1");
    EXPECT_EQ(c.metrics.port, 9100);
}

TEST(MetricsConfig, RefusedNamingTheField) {
    struct Case {
        const char *metrics, *field, *problem;
    } cases[] = {
        {R"({})", "metrics.listen", "missing"},
        {R"({"listen": 9470})", "metrics.listen", "must be a string"},
        {R"({"listen": "9470"})", "metrics.listen", "is not ADDRESS:PORT"},
        {R"({"listen": "localhost:9470"})", "metrics.listen", "is not an IP address"},
        {R"({"listen": "127.0.0.1:0"})", "metrics.listen", "from 1 to 65535"},
        {R"({"listen": "127.0.0.1:99999"})", "metrics.listen", "from 1 to 65535"},
        {R"({"listen": "127.0.0.1:9470", "path": "/m"})", "metrics.path", "unknown field"},
        {R"("127.0.0.1:9470")", "metrics", "must be an object"},
    };
    for (const Case &k : cases) {
        const auto [field, what] = error_of(cfg_with(k.metrics));
        EXPECT_EQ(field, k.field) << k.metrics;
        EXPECT_NE(what.find(k.problem), std::string::npos) << k.metrics << " → " << what;
    }
}

}  // namespace
}  // namespace segwire
