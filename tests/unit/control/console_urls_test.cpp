// console.url as one URL or a list of Console replicas (docs/console.md, "Enforcer failover"): the
// config keeps both forms, its errors name the field (console.url[i] for a list entry), and
// ConsoleClient refuses what the config would.
#include <gtest/gtest.h>

#include <stdexcept>
#include <string>
#include <vector>

#include "config/appliance_config.hpp"
#include "control/console_client.hpp"

namespace segwire {
namespace {

using config::ConfigError;
using config::parse_appliance_config;

std::string cfg_with_url(const std::string &url) {
    return R"({"ports": {"inside": {"device": "net_af_packet0,iface=a"},
                         "outside": {"device": "net_af_packet1,iface=b"}},
               "identity": {"enforcer_id": "enf-a", "tags": ["site=lab"]},
               "console": {"appcred": "/x.json", "url": )" +
           url + "}}";
}

std::pair<std::string, std::string> error_of(const std::string &json) {
    try {
        parse_appliance_config(json);
    } catch (const ConfigError &e) {
        return {e.field(), e.what()};
    }
    return {"", ""};
}

TEST(ConsoleUrls, OneUrlStaysValid) {
    const auto c = parse_appliance_config(cfg_with_url(R"("https://10.0.0.11:8443")"));
    EXPECT_EQ(c.console.url, "https://10.0.0.11:8443");
    ASSERT_EQ(c.console.urls.size(), 1u);
    EXPECT_EQ(c.console.urls[0], c.console.url);
}

TEST(ConsoleUrls, AListInOrder) {
    const auto c = parse_appliance_config(
        cfg_with_url(R"(["https://10.0.0.11:8443", "https://10.0.0.12:8443/"])"));
    ASSERT_EQ(c.console.urls.size(), 2u);
    EXPECT_EQ(c.console.url, "https://10.0.0.11:8443");  // the first is `url`
    EXPECT_EQ(c.console.urls[1], "https://10.0.0.12:8443/");
    EXPECT_TRUE(c.console.enabled());
}

TEST(ConsoleUrls, RefusedNamingTheField) {
    struct Case {
        const char *url, *field, *problem;
    } cases[] = {
        {R"([])", "console.url", "an empty list"},
        {R"(["https://a:1", "http://b:2"])", "console.url[1]", "must be an https:// URL"},
        {R"(["https://a:1", 7])", "console.url[1]", "must be a string"},
        {R"("http://a:1")", "console.url", "must be an https:// URL"},
        {R"(7)", "console.url", "must be a string"},
    };
    for (const Case &k : cases) {
        const auto [field, what] = error_of(cfg_with_url(k.url));
        EXPECT_EQ(field, k.field) << k.url;
        EXPECT_NE(what.find(k.problem), std::string::npos) << k.url << " → " << what;
    }
}

TEST(ConsoleUrls, ClientRefusesClearTextEntries) {
    EXPECT_NO_THROW(
        control::ConsoleClient(std::vector<std::string>{"https://a:1/", "https://b:2"}, "", false));
    try {
        control::ConsoleClient(std::vector<std::string>{"https://a:1", "http://b:2"}, "", false);
        FAIL() << "an http:// replica was accepted";
    } catch (const std::runtime_error &e) {
        EXPECT_NE(std::string(e.what()).find("console.url[1]"), std::string::npos) << e.what();
    }
    // The current base: the first until a call finds it unreachable.
    control::ConsoleClient c(std::vector<std::string>{"https://a:1/", "https://b:2"}, "", false);
    EXPECT_EQ(c.base_url(), "https://a:1");
}

}  // namespace
}  // namespace segwire
