// L7 mode's enforcer side (docs/l7-path.md), the parts without a port: the `l7` config section
// (errors name the field), the worker's service-port lookup (EnforcerState::l7_service) and the
// Ethernet addresses learned for upstream flows (L7Neighbours), and the service CSR.
#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <cstring>
#include <string>

#include "config/appliance_config.hpp"
#include "crypto/pki.hpp"
#include "dataplane/contract/enforcer_state.hpp"
#include "dataplane/contract/worker_setup.hpp"

namespace segwire {
namespace {

constexpr const char *kBase = R"({
  "ports": {"inside": {"device": "net_af_packet0,iface=a"},
            "outside": {"device": "net_af_packet1,iface=b"}},
  "identity": {"enforcer_id": "enf-b", "key": "k.pem", "certificate": "c.pem",
               "trusted_cas": "ca.pem"})";

std::string cfg_with(const std::string &l7) {
    return std::string(kBase) + (l7.empty() ? "" : ", \"l7\": " + l7) + "}";
}

std::pair<std::string, std::string> error_of(const std::string &json) {
    try {
        config::parse_appliance_config(json);
    } catch (const config::ConfigError &e) {
        return {e.field(), e.what()};
    }
    return {"", ""};
}

TEST(L7Config, OffWhenAbsentDefaultsWhenPresent) {
    EXPECT_FALSE(config::parse_appliance_config(cfg_with("")).l7.enabled);
    const auto c = config::parse_appliance_config(cfg_with(R"({"networks": ["10.0.0.0/8"]})"));
    EXPECT_TRUE(c.l7.enabled);
    EXPECT_EQ(c.l7.exception, "tap");
    EXPECT_EQ(c.l7.iface, "sw-l7");
    EXPECT_EQ(c.l7.proxy_port, 15001);
    ASSERT_EQ(c.l7.networks.size(), 1u);
    EXPECT_EQ(c.l7.networks[0].str(), "10.0.0.0/8");
}

TEST(L7Config, RefusedNamingTheField) {
    struct Case {
        const char *l7, *field, *problem;
    } cases[] = {
        {R"({})", "l7.networks", "missing"},
        {R"({"networks": ["10.0.0.0/33"]})", "l7.networks[0]", ""},
        {R"({"networks": ["10.0.0.0/8"], "exception": "kni"})", "l7.exception", "\"tap\" or"},
        {R"({"networks": ["10.0.0.0/8"], "iface": "a-very-long-interface"})", "l7.iface", "1-15"},
        {R"({"networks": ["10.0.0.0/8"], "iface": "eth0; rm"})", "l7.iface", "interface name"},
        {R"({"networks": ["10.0.0.0/8"], "proxy_port": 0})", "l7.proxy_port", "between 1"},
        {R"({"networks": ["10.0.0.0/8"], "table": 255})", "l7.table", "between 1"},
        {R"({"networks": ["10.0.0.0/8"], "tproxy": true})", "l7.tproxy", "unknown field"},
    };
    for (const Case &k : cases) {
        const auto [field, what] = error_of(cfg_with(k.l7));
        EXPECT_EQ(field, k.field) << k.l7;
        EXPECT_NE(what.find(k.problem), std::string::npos) << k.l7 << " → " << what;
    }
}

TEST(L7State, ServicePortLookup) {
    dp::EnforcerState st;
    EXPECT_FALSE(st.l7_service(0, 8080));  // empty: nothing is L7
    st.l7_ports = {uint64_t(0) << 16 | 8080, uint64_t(2) << 16 | 443, uint64_t(2) << 16 | 8443};
    EXPECT_TRUE(st.l7_service(0, 8080));
    EXPECT_TRUE(st.l7_service(2, 443));
    EXPECT_TRUE(st.l7_service(2, 8443));
    EXPECT_FALSE(st.l7_service(0, 443));   // another PU's port
    EXPECT_FALSE(st.l7_service(1, 8080));  // another PU
    EXPECT_FALSE(st.l7_service(2, 80));
}

TEST(L7Neighbours, LearnFindRelearn) {
    auto n = std::make_unique<dp::L7Neighbours>();
    const uint8_t pu[6] = {2, 0, 0, 0, 0, 2}, cli[6] = {2, 0, 0, 0, 0, 1},
                  pu2[6] = {2, 9, 9, 9, 9, 9};
    uint8_t a[6], b[6];
    const uint32_t addr = inet_addr("10.77.0.2");
    EXPECT_FALSE(n->find(addr, a, b));
    n->learn(addr, pu, cli);
    ASSERT_TRUE(n->find(addr, a, b));
    EXPECT_EQ(std::memcmp(a, pu, 6), 0);
    EXPECT_EQ(std::memcmp(b, cli, 6), 0);
    n->learn(addr, pu2, cli);  // the PU's MAC changed: relearned in place
    ASSERT_TRUE(n->find(addr, a, b));
    EXPECT_EQ(std::memcmp(a, pu2, 6), 0);
    EXPECT_FALSE(n->find(inet_addr("10.77.0.3"), a, b));
    // Many addresses: each one learned is found (8 probes over 256 slots; the first 200
    // consecutive addresses fit).
    for (uint32_t i = 1; i <= 200; ++i) n->learn(htonl(0x0a010000 + i), pu, cli);
    int found = 0;
    for (uint32_t i = 1; i <= 200; ++i) found += n->find(htonl(0x0a010000 + i), a, b);
    EXPECT_EQ(found, 200);
}

TEST(L7ServiceCsr, CnAndSans) {
    auto key = crypto::generate_p256_key();
    ASSERT_TRUE(key);
    auto csr = crypto::create_service_csr(key->get(), "orders", {"orders.acme.test", "orders"});
    ASSERT_TRUE(csr);
    auto pem = crypto::csr_to_pem(csr->get());
    ASSERT_TRUE(pem);
    auto back = crypto::csr_from_pem(*pem);
    ASSERT_TRUE(back);
    STACK_OF(X509_EXTENSION) *exts = X509_REQ_get_extensions(back->get());
    ASSERT_NE(exts, nullptr);
    bool san = false;
    for (int i = 0; i < sk_X509_EXTENSION_num(exts); ++i)
        san |= OBJ_obj2nid(X509_EXTENSION_get_object(sk_X509_EXTENSION_value(exts, i))) ==
               NID_subject_alt_name;
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    EXPECT_TRUE(san);
    EXPECT_FALSE(crypto::create_service_csr(key->get(), "orders", {}));
}

}  // namespace
}  // namespace segwire
