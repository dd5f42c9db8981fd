// The policy bundle: parsing, validation errors (object + field + problem), serialization,
// directory loading, profile resolution.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <unistd.h>

#include "config/policy/model.hpp"
#include "config/policy/profile.hpp"

namespace segwire::policy {
namespace {

const std::string kExamples = std::string(SEGWIRE_SOURCE_ROOT) + "/config/examples/policy";

TEST(Bundle, MinimalDefaults) {
    PolicySet s = parse_policy_set(R"({"version": "v1"})");
    EXPECT_EQ(s.version, "v1");
    EXPECT_EQ(s.ns.default_incoming, RuleAction::kReject);
    EXPECT_EQ(s.ns.default_outgoing, RuleAction::kReject);
    EXPECT_TRUE(s.network_policies.empty());
}

TEST(Bundle, ParsesAllKinds) {
    PolicySet s = parse_policy_set(R"({
      "version": "7",
      "namespace": {"name": "/a", "defaultPUIncomingTrafficAction": "Allow"},
      "enforcerprofiles": [{"name": "p", "targetUDPNetworks": ["10.0.0.0/8"],
                            "ignoreExpression": [["skip=yes"]], "flowReportInterval": "1m"}],
      "enforcerprofilemappingpolicies": [{"name": "m", "subject": [["a=b"]], "object": [["$name=p"]]}],
      "processingunits": [{"ID": "1", "name": "web", "associatedTags": ["app=web"],
                           "normalizedTags": ["$image=nginx"], "addresses": ["10.0.0.1", "fd00::1"]}],
      "networkrulesetpolicies": [{"name": "r", "subject": [["app=web"]], "description": "d",
        "namespace": "/a", "propagate": true,
        "incomingRules": [{"action": "Reject", "object": [["x=y"]], "protocolPorts": ["tcp/1"],
                           "name": "n", "logsDisabled": true, "observationEnabled": true}]}],
      "externalnetworks": [{"name": "e", "entries": ["1.0.0.0/8", "!1.1.0.0/16", "*.x.org"],
                            "servicePorts": ["tcp/443"], "associatedTags": ["k=v"]}]
    })");
    EXPECT_EQ(s.ns.default_incoming, RuleAction::kAllow);
    EXPECT_EQ(s.ns.default_outgoing, RuleAction::kReject);
    ASSERT_EQ(s.network_policies.size(), 1u);
    const NetworkRule &r = s.network_policies[0].incoming_rules[0];
    EXPECT_EQ(r.action, RuleAction::kReject);
    EXPECT_TRUE(r.logs_disabled);
    EXPECT_TRUE(r.observation_enabled);
    EXPECT_FALSE(s.enforcer_profiles[0].target_networks.has_value());
    EXPECT_EQ(s.enforcer_profiles[0].effective_target_networks(), default_target_networks());
    EXPECT_EQ(s.processing_units[0].addresses.size(), 2u);
    EXPECT_EQ(s.external_networks[0].entries.size(), 3u);
}

TEST(Bundle, SerializeRoundTrip) {
    PolicySet a = load_policy_dir(kExamples);
    std::string json = serialize_policy_set(a);
    PolicySet b = parse_policy_set(json);
    EXPECT_EQ(a, b);
    EXPECT_EQ(serialize_policy_set(b, false), serialize_policy_set(a, false));
    EXPECT_NE(json.find("\"networkrulesetpolicies\""), std::string::npos);
    EXPECT_NE(json.find("\"defaultPUIncomingTrafficAction\""), std::string::npos);
}

// trustedDNSResolvers: absent and empty differ (docs/dns.md), and both survive serialization.
TEST(Bundle, TrustedDnsResolversAbsentEmptyOrListed) {
    PolicySet a = load_policy_dir(kExamples);
    EXPECT_FALSE(a.enforcer_profiles[0].trusted_dns_resolvers.has_value());
    for (const std::vector<std::string> &list :
         {std::vector<std::string>{}, std::vector<std::string>{"10.0.0.53", "fd00::53/128"}}) {
        a.enforcer_profiles[0].trusted_dns_resolvers = list;
        PolicySet b = parse_policy_set(serialize_policy_set(a));
        ASSERT_TRUE(b.enforcer_profiles[0].trusted_dns_resolvers.has_value());
        EXPECT_EQ(*b.enforcer_profiles[0].trusted_dns_resolvers, list);
    }
}

TEST(Bundle, EffectiveTagsAddDerivedTags) {
    ProcessingUnit pu;
    pu.id = "42";
    pu.name = "web";
    pu.associated_tags = {"a=1"};
    pu.normalized_tags = {"a=1", "b=2"};
    auto t = effective_tags(pu);
    EXPECT_EQ(t, (std::vector<std::string>{"a=1", "b=2", "$identity=processingunit", "$name=web",
                                           "$id=42"}));
}

struct ErrorCase {
    const char *name;
    const char *json;
    const char *object;   // exact PolicyError::object()
    const char *field;    // exact PolicyError::field()
    const char *problem;  // substring of PolicyError::problem()
};

class ValidationErrorTest : public ::testing::TestWithParam<ErrorCase> {};

TEST_P(ValidationErrorTest, NamesObjectFieldProblem) {
    const ErrorCase &c = GetParam();
    try {
        parse_policy_set(c.json);
        FAIL() << "accepted: " << c.json;
    } catch (const PolicyError &e) {
        EXPECT_EQ(e.object(), c.object) << e.what();
        EXPECT_EQ(e.field(), c.field) << e.what();
        EXPECT_NE(e.problem().find(c.problem), std::string::npos) << e.what();
        std::string what = e.what();
        EXPECT_NE(what.find(c.object), std::string::npos);
        EXPECT_NE(what.find(c.field), std::string::npos);
    }
}

#define POL(body) \
    "{\"networkrulesetpolicies\": [{\"name\": \"p\", \"subject\": [[\"a=b\"]], " body "}]}"
#define RULE(body) \
    POL("\"incomingRules\": [{\"object\": [[\"x=y\"]], \"protocolPorts\": [\"any\"], " body "}]")
#define NET(body) "{\"externalnetworks\": [{\"name\": \"n\", " body "}]}"
#define PROF(body) "{\"enforcerprofiles\": [{\"name\": \"pr\", " body "}]}"

INSTANTIATE_TEST_SUITE_P(
    Errors, ValidationErrorTest,
    ::testing::Values(
        ErrorCase{"json", "{", "bundle", "(json)", "parse error"},
        ErrorCase{"root_unknown", R"({"networkrulesetpolicy": []})", "bundle",
                  "networkrulesetpolicy", "unknown field"},
        ErrorCase{"ns_action", R"({"namespace": {"defaultPUIncomingTrafficAction": "Deny"}})",
                  "namespace", "namespace.defaultPUIncomingTrafficAction",
                  "\"Allow\" or \"Reject\""},
        ErrorCase{"policy_no_name", R"({"networkrulesetpolicies": [{"subject": [["a=b"]]}]})",
                  "networkrulesetpolicy #0", "name", "missing"},
        ErrorCase{"policy_dup_name",
                  R"({"networkrulesetpolicies": [{"name": "p", "subject": [["a=b"]]},
                                                 {"name": "p", "subject": [["a=b"]]}]})",
                  "networkrulesetpolicy \"p\"", "name", "duplicate name"},
        ErrorCase{"policy_no_subject", R"({"networkrulesetpolicies": [{"name": "p"}]})",
                  "networkrulesetpolicy \"p\"", "subject", "missing or empty"},
        ErrorCase{"policy_subject_syntax", POL("\"disabled\": false") "x", "bundle", "(json)",
                  "parse error"},
        ErrorCase{"policy_bad_subject",
                  R"({"networkrulesetpolicies": [{"name": "p", "subject": [["a=b", "c"]]}]})",
                  "networkrulesetpolicy \"p\"", "subject[0][1]", "not an expression"},
        ErrorCase{"policy_subject_type",
                  R"({"networkrulesetpolicies": [{"name": "p", "subject": ["a=b"]}]})",
                  "networkrulesetpolicy \"p\"", "subject[0]", "AND-clause"},
        ErrorCase{"policy_unknown_field", POL("\"incomingRule\": []"), "networkrulesetpolicy \"p\"",
                  "incomingRule", "unknown field"},
        ErrorCase{"policy_bad_tag", POL("\"associatedTags\": [\"novalue\"]"),
                  "networkrulesetpolicy \"p\"", "associatedTags[0]", "not a key=value tag"},
        ErrorCase{"rule_action", RULE("\"action\": \"Deny\""), "networkrulesetpolicy \"p\"",
                  "incomingRules[0].action", "\"Allow\" or \"Reject\""},
        ErrorCase{"rule_no_object", POL("\"outgoingRules\": [{\"protocolPorts\": [\"any\"]}]"),
                  "networkrulesetpolicy \"p\"", "outgoingRules[0].object", "missing or empty"},
        ErrorCase{
            "rule_bad_object",
            POL("\"outgoingRules\": [{}, {\"object\": [[\"k!=\"]], \"protocolPorts\": [\"any\"]}]"),
            "networkrulesetpolicy \"p\"", "outgoingRules[0].object", "missing or empty"},
        ErrorCase{"rule_no_ports", POL("\"incomingRules\": [{\"object\": [[\"x=y\"]]}]"),
                  "networkrulesetpolicy \"p\"", "incomingRules[0].protocolPorts",
                  "missing or empty"},
        ErrorCase{"rule_bad_range",
                  POL("\"incomingRules\": [{\"object\": [[\"x=y\"]], \"protocolPorts\": "
                      "[\"tcp/90:80\"]}]"),
                  "networkrulesetpolicy \"p\"", "incomingRules[0].protocolPorts[0]",
                  "left < right"},
        ErrorCase{"rule_ports_on_gre",
                  POL("\"incomingRules\": [{\"object\": [[\"x=y\"]], \"protocolPorts\": "
                      "[\"udp/53\", \"gre/1\"]}]"),
                  "networkrulesetpolicy \"p\"", "incomingRules[0].protocolPorts[1]",
                  "only allowed for tcp and udp"},
        ErrorCase{"rule_any_not_alone",
                  POL("\"incomingRules\": [{\"object\": [[\"x=y\"]], \"protocolPorts\": [\"any\", "
                      "\"tcp/1\"]}]"),
                  "networkrulesetpolicy \"p\"", "incomingRules[0].protocolPorts[0]",
                  "only element"},
        ErrorCase{"rule_name_long", RULE("\"name\": \"seventeen-chars-x\""),
                  "networkrulesetpolicy \"p\"", "incomingRules[0].name", "longer than 16"},
        ErrorCase{"rule_unknown_field", RULE("\"observed\": true"), "networkrulesetpolicy \"p\"",
                  "incomingRules[0].observed", "unknown field"},
        ErrorCase{"rule_bool", RULE("\"observationEnabled\": \"yes\""),
                  "networkrulesetpolicy \"p\"", "incomingRules[0].observationEnabled",
                  "true or false"},
        ErrorCase{"net_no_entries", NET("\"entries\": []"), "externalnetwork \"n\"", "entries",
                  "missing or empty"},
        ErrorCase{"net_bad_cidr", NET("\"entries\": [\"10.0.0.0/8\", \"300.1.1.1\"]"),
                  "externalnetwork \"n\"", "entries[1]", "not an IPv4/IPv6"},
        ErrorCase{"net_host_bits", NET("\"entries\": [\"10.0.0.1/8\"]"), "externalnetwork \"n\"",
                  "entries[0]", "host bits"},
        ErrorCase{"net_exclusion_outside", NET("\"entries\": [\"10.0.0.0/8\", \"!11.0.0.0/16\"]"),
                  "externalnetwork \"n\"", "entries[1]", "not inside any included CIDR"},
        ErrorCase{"net_exclusion_alone", NET("\"entries\": [\"!10.0.0.0/16\"]"),
                  "externalnetwork \"n\"", "entries[0]", "not inside any included CIDR"},
        ErrorCase{"net_exclusion_v6_in_v4", NET("\"entries\": [\"0.0.0.0/0\", \"!fd00::/8\"]"),
                  "externalnetwork \"n\"", "entries[1]", "not inside any included CIDR"},
        ErrorCase{"net_bad_service_ports",
                  NET("\"entries\": [\"1.2.3.4\"], \"servicePorts\": [\"tcp/99999\"]"),
                  "externalnetwork \"n\"", "servicePorts[0]", "1..65535"},
        ErrorCase{"net_entries_type", NET("\"entries\": \"1.2.3.4\""), "externalnetwork \"n\"",
                  "entries", "array of strings"},
        ErrorCase{"net_dup", R"({"externalnetworks": [{"name": "n", "entries": ["1.0.0.0/8"]},
                                                      {"name": "n", "entries": ["2.0.0.0/8"]}]})",
                  "externalnetwork \"n\"", "name", "duplicate"},
        ErrorCase{"pu_no_id", R"({"processingunits": [{"name": "web"}]})", "processingunit \"web\"",
                  "ID", "missing"},
        ErrorCase{"pu_dup_id", R"({"processingunits": [{"ID": "1"}, {"ID": "1"}]})",
                  "processingunit ID \"1\"", "ID", "duplicate ID"},
        ErrorCase{"pu_bad_address",
                  R"({"processingunits": [{"ID": "1", "addresses": ["10.0.0.0/33"]}]})",
                  "processingunit ID \"1\"", "addresses[0]", "prefix length"},
        ErrorCase{"pu_shared_address",
                  R"({"processingunits": [{"ID": "1", "name": "a", "addresses": ["10.0.0.0/24"]},
                                          {"ID": "2", "name": "b", "addresses": ["10.0.0.0/24"]}]})",
                  "processingunit \"b\"", "addresses[0]",
                  "already covered by processingunit \"a\""},
        ErrorCase{"pu_bad_tag", R"({"processingunits": [{"ID": "1", "normalizedTags": ["=x"]}]})",
                  "processingunit ID \"1\"", "normalizedTags[0]", "empty key"},
        ErrorCase{"profile_target", PROF("\"targetNetworks\": [\"10.0.0.0/8\", \"x\"]"),
                  "enforcerprofile \"pr\"", "targetNetworks[1]", "not an IPv4/IPv6"},
        ErrorCase{"profile_udp", PROF("\"targetUDPNetworks\": [\"10.0.0.1/8\"]"),
                  "enforcerprofile \"pr\"", "targetUDPNetworks[0]", "host bits"},
        ErrorCase{"profile_required_outside",
                  PROF("\"targetNetworks\": [\"10.0.0.0/8\"], "
                       "\"identityRequiredNetworks\": [\"10.1.0.0/16\", \"192.168.0.0/24\"]"),
                  "enforcerprofile \"pr\"", "identityRequiredNetworks[1]",
                  "not inside targetNetworks or targetUDPNetworks"},
        ErrorCase{"profile_l4_outside",
                  PROF("\"targetNetworks\": [\"10.0.0.0/8\"], "
                       "\"l4TargetNetworks\": [\"10.1.0.0/16\", \"172.16.0.0/12\"]"),
                  "enforcerprofile \"pr\"", "l4TargetNetworks[1]", "not inside targetNetworks"},
        ErrorCase{"profile_auto_bad", PROF("\"autoTargetNetworks\": [\"10.0.0.1/8\"]"),
                  "enforcerprofile \"pr\"", "autoTargetNetworks[0]", "host bits"},
        ErrorCase{"profile_modes_overlap",
                  PROF("\"targetNetworks\": [\"10.0.0.0/8\"], "
                       "\"l4TargetNetworks\": [\"10.1.0.0/16\"], "
                       "\"autoTargetNetworks\": [\"10.2.0.0/16\", \"10.1.2.0/24\"]"),
                  "enforcerprofile \"pr\"", "autoTargetNetworks[1]", "overlaps l4TargetNetworks"},
        ErrorCase{"pu_enforcer_id", R"({"processingunits": [{"ID": "1", "enforcerID": "a b"}]})",
                  "processingunit ID \"1\"", "enforcerID", "printable ASCII"},
        ErrorCase{"pu_enforcer_group",
                  R"({"processingunits": [{"ID": "1", "enforcerID": "group:"}]})",
                  "processingunit ID \"1\"", "enforcerID", "group:NAME"},
        ErrorCase{"pu_enforcer_group_chars",
                  R"({"processingunits": [{"ID": "1", "enforcerID": "group:a/b"}]})",
                  "processingunit ID \"1\"", "enforcerID", "group:NAME"},
        ErrorCase{"profile_excluded", PROF("\"excludedNetworks\": [\"!10.0.0.0/8\"]"),
                  "enforcerprofile \"pr\"", "excludedNetworks[0]", "not an IPv4/IPv6"},
        ErrorCase{"profile_resolvers", PROF("\"trustedDNSResolvers\": [\"10.0.0.53\", \"dns\"]"),
                  "enforcerprofile \"pr\"", "trustedDNSResolvers[1]", "not an IPv4/IPv6"},
        ErrorCase{"profile_ignore", PROF("\"ignoreExpression\": [[\"a\"]]"),
                  "enforcerprofile \"pr\"", "ignoreExpression[0][0]", "not an expression"},
        ErrorCase{"profile_interval", PROF("\"flowReportInterval\": \"soon\""),
                  "enforcerprofile \"pr\"", "flowReportInterval", "not a duration"},
        ErrorCase{"profile_ca", PROF("\"trustedCAs\": [\"hello\"]"), "enforcerprofile \"pr\"",
                  "trustedCAs[0]", "not a PEM certificate"},
        ErrorCase{"profile_tcp_key", PROF("\"targetTCPNetworks\": []"), "enforcerprofile \"pr\"",
                  "targetTCPNetworks", "unknown field"},
        ErrorCase{"mapping_no_object",
                  R"({"enforcerprofilemappingpolicies": [{"name": "m", "subject": [["a=b"]]}]})",
                  "enforcerprofilemappingpolicy \"m\"", "object", "missing or empty"},
        ErrorCase{
            "mapping_bad_subject",
            R"({"enforcerprofilemappingpolicies": [{"name": "m", "subject": [[]], "object": [["a=b"]]}]})",
            "enforcerprofilemappingpolicy \"m\"", "subject[0]", "empty clause"}),
    [](const ::testing::TestParamInfo<ErrorCase> &i) { return std::string(i.param.name); });

class TempDir {
  public:
    TempDir() {
        path_ = std::filesystem::temp_directory_path() /
                ("segwire-policy-test-" + std::to_string(getpid()) + "-" + std::to_string(n_++));
        std::filesystem::create_directories(path_);
    }
    ~TempDir() { std::filesystem::remove_all(path_); }
    void write(const std::string &name, const std::string &text) {
        std::ofstream(path_ / name) << text;
    }
    std::string path() const { return path_.string(); }

  private:
    static inline int n_ = 0;
    std::filesystem::path path_;
};

TEST(Directory, LoadsExamples) {
    PolicySet s = load_policy_dir(kExamples);
    EXPECT_EQ(s.version, "example-1");
    EXPECT_EQ(s.ns.name, "/acme/shop");
    EXPECT_EQ(s.enforcer_profiles.size(), 1u);
    EXPECT_EQ(s.enforcer_profile_mappings.size(), 1u);
    EXPECT_EQ(s.processing_units.size(), 3u);
    EXPECT_EQ(s.network_policies.size(), 4u);
    EXPECT_EQ(s.external_networks.size(), 3u);
}

TEST(Directory, MergesFilesAndIgnoresOtherExtensions) {
    TempDir d;
    d.write("a.json", R"({"externalnetworks": [{"name": "x", "entries": ["1.0.0.0/8"]}]})");
    d.write("b.json", R"({"externalnetworks": [{"name": "y", "entries": ["2.0.0.0/8"]}],
                          "namespace": {"name": "/n"}})");
    d.write("notes.txt", "not json");
    PolicySet s = load_policy_dir(d.path());
    ASSERT_EQ(s.external_networks.size(), 2u);
    EXPECT_EQ(s.external_networks[0].name, "x");
    EXPECT_EQ(s.ns.name, "/n");
}

TEST(Directory, ErrorsNameTheFile) {
    TempDir d;
    d.write("a.json", R"({"externalnetworks": [{"name": "x", "entries": ["1.0.0.0/8"]}]})");
    d.write("b.json", R"({"externalnetworks": [{"name": "y", "entries": ["!2.0.0.0/8"]}]})");
    try {
        load_policy_dir(d.path());
        FAIL() << "accepted";
    } catch (const PolicyError &e) {
        EXPECT_NE(e.source().find("b.json"), std::string::npos) << e.what();
        EXPECT_EQ(e.object(), "externalnetwork \"y\"");
        EXPECT_EQ(e.field(), "entries[0]");
    }
}

TEST(Directory, SyntaxErrorNamesTheFile) {
    TempDir d;
    d.write("ok.json", "{}");
    d.write("broken.json", "{\"processingunits\": [");
    try {
        load_policy_dir(d.path());
        FAIL() << "accepted";
    } catch (const PolicyError &e) {
        EXPECT_NE(std::string(e.what()).find("broken.json"), std::string::npos) << e.what();
    }
}

TEST(Directory, NamespaceTwiceIsAnError) {
    TempDir d;
    d.write("a.json", R"({"namespace": {"name": "/a"}})");
    d.write("b.json", R"({"namespace": {"name": "/b"}})");
    try {
        load_policy_dir(d.path());
        FAIL() << "accepted";
    } catch (const PolicyError &e) {
        EXPECT_EQ(e.field(), "namespace");
        EXPECT_NE(e.problem().find("a.json"), std::string::npos) << e.what();
    }
}

TEST(Directory, MissingDirectory) {
    EXPECT_THROW(load_policy_dir("/nonexistent/segwire"), PolicyError);
}

// ---- profile resolution ----

PolicySet profiles_set(const char *mappings) {
    return parse_policy_set(std::string(R"({"enforcerprofiles": [
        {"name": "gw", "associatedTags": ["kind=gw"]},
        {"name": "lab", "associatedTags": ["kind=lab"]},
        {"name": "safe", "associatedTags": ["kind=safe"]}],
      "enforcerprofilemappingpolicies": )") +
                            mappings + "}");
}

TEST(Profile, ExactlyOneMatch) {
    PolicySet s = profiles_set(R"([
        {"name": "m-gw", "subject": [["role=gw"]], "object": [["kind=gw"]]},
        {"name": "m-lab", "subject": [["site=lab"]], "object": [["kind=lab"]]}])");
    ProfileResolution r = resolve_profile(s, {"role=gw", "site=dc1"});
    ASSERT_NE(r.profile, nullptr);
    EXPECT_EQ(r.profile->name, "gw");
    EXPECT_EQ(r.via, std::vector<std::string>{"m-gw"});
    EXPECT_FALSE(r.fallback);
}

TEST(Profile, TwoMappingsSameProfileIsOne) {
    PolicySet s = profiles_set(R"([
        {"name": "m1", "subject": [["role=gw"]], "object": [["kind=gw"]]},
        {"name": "m2", "subject": [["site=dc1"]], "object": [["$name=gw"]]}])");
    ProfileResolution r = resolve_profile(s, {"role=gw", "site=dc1"});
    EXPECT_EQ(r.profile->name, "gw");
    EXPECT_EQ(r.via, (std::vector<std::string>{"m1", "m2"}));
}

TEST(Profile, ZeroMatchesNamesTheEnforcer) {
    PolicySet s =
        profiles_set(R"([{"name": "m", "subject": [["role=gw"]], "object": [["kind=gw"]]}])");
    try {
        resolve_profile(s, {"role=db"});
        FAIL() << "resolved";
    } catch (const PolicyError &e) {
        EXPECT_EQ(e.object(), "enforcer [role=db]");
        EXPECT_EQ(e.field(), "enforcerprofilemappingpolicies");
        EXPECT_NE(e.problem().find("no enforcerprofile matches"), std::string::npos) << e.what();
    }
}

TEST(Profile, TwoMatchesNameTheCandidates) {
    PolicySet s = profiles_set(R"([
        {"name": "m-gw", "subject": [["role=gw"]], "object": [["kind=gw"]]},
        {"name": "m-lab", "subject": [["site=lab"]], "object": [["kind=lab"]]}])");
    try {
        resolve_profile(s, {"role=gw", "site=lab"});
        FAIL() << "resolved";
    } catch (const PolicyError &e) {
        std::string p = e.problem();
        EXPECT_NE(p.find("2 enforcerprofiles match"), std::string::npos) << p;
        EXPECT_NE(p.find("\"gw\" (via \"m-gw\")"), std::string::npos) << p;
        EXPECT_NE(p.find("\"lab\" (via \"m-lab\")"), std::string::npos) << p;
    }
}

TEST(Profile, FallbackOnlyWhenNothingElseMatches) {
    PolicySet s = profiles_set(R"([
        {"name": "m-gw", "subject": [["role=gw"]], "object": [["kind=gw"]]},
        {"name": "m-safe", "subject": [["$identity=enforcer"]], "object": [["kind=safe"]], "fallback": true}])");
    EXPECT_EQ(resolve_profile(s, {"$identity=enforcer", "role=gw"}).profile->name, "gw");
    ProfileResolution r = resolve_profile(s, {"$identity=enforcer", "role=db"});
    EXPECT_EQ(r.profile->name, "safe");
    EXPECT_TRUE(r.fallback);
}

TEST(Profile, TwoFallbacksAreAnError) {
    PolicySet s = profiles_set(R"([
        {"name": "f1", "subject": [["a=1"]], "object": [["kind=safe"]], "fallback": true},
        {"name": "f2", "subject": [["a=1"]], "object": [["kind=lab"]], "fallback": true}])");
    try {
        resolve_profile(s, {"a=1"});
        FAIL() << "resolved";
    } catch (const PolicyError &e) {
        EXPECT_NE(e.problem().find("through fallback mappings"), std::string::npos) << e.what();
    }
}

TEST(Profile, DisabledMappingIgnored) {
    PolicySet s = profiles_set(R"([
        {"name": "m1", "subject": [["a=1"]], "object": [["kind=gw"]]},
        {"name": "m2", "subject": [["a=1"]], "object": [["kind=lab"]], "disabled": true}])");
    EXPECT_EQ(resolve_profile(s, {"a=1"}).profile->name, "gw");
}

TEST(Profile, ExamplesResolve) {
    PolicySet s = load_policy_dir(kExamples);
    EXPECT_EQ(resolve_profile(s, {"role=appliance", "site=dc1"}).profile->name, "shop-appliance");
    EXPECT_THROW(resolve_profile(s, {"role=appliance", "site=dc2"}), PolicyError);
}

}  // namespace
}  // namespace segwire::policy
