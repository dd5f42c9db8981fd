// The compiled snapshot: address classification, external-network ACL, decide() semantics,
// the decision cache and RCU publication.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <random>
#include <set>
#include <thread>

#include "config/policy/profile.hpp"
#include "control/policy/compile.hpp"
#include "control/policy/publisher.hpp"
#include "dataplane/policy/decision_cache.hpp"
#include "dataplane/policy/snapshot.hpp"
#include "tests/unit/policy/eal_env.hpp"
#include "tests/unit/policy/tag_matrix.hpp"

namespace segwire::policy {
using namespace segwire::control;  // compile_snapshot, CompileOptions, SnapshotPublisher
namespace {

const std::string kExamples = std::string(SEGWIRE_SOURCE_ROOT) + "/config/examples/policy";
constexpr uint8_t kTcp = 6, kUdp = 17, kIcmp = 1, kIcmp6 = 58;
constexpr Direction kIn = Direction::kIncoming, kOut = Direction::kOutgoing;

std::unique_ptr<PolicySnapshot> compile(const PolicySet &s) {
    validate(s);
    EnforcerProfile p = s.enforcer_profiles.empty() ? EnforcerProfile{} : s.enforcer_profiles[0];
    return compile_snapshot(s, p);
}

NetworkRule rule(RuleAction a, TagExpression object, std::vector<std::string> ports,
                 bool observed = false, std::string name = "") {
    NetworkRule r;
    r.action = a;
    r.object = std::move(object);
    r.protocol_ports = std::move(ports);
    r.observation_enabled = observed;
    r.name = std::move(name);
    return r;
}

constexpr RuleAction kAllow = RuleAction::kAllow, kReject = RuleAction::kReject;

// One PU "srv" (tags app=srv) at 10.0.0.1 and one policy selecting it.
PolicySet one_pu(std::vector<NetworkRule> incoming, std::vector<NetworkRule> outgoing = {}) {
    PolicySet s;
    ProcessingUnit pu;
    pu.id = "srv-id";
    pu.name = "srv";
    pu.associated_tags = {"app=srv"};
    pu.addresses = {"10.0.0.1"};
    s.processing_units.push_back(pu);
    NetworkRuleSetPolicy p;
    p.name = "pol";
    p.id = "pol-id";
    p.subject = {{"app=srv"}};
    p.incoming_rules = std::move(incoming);
    p.outgoing_rules = std::move(outgoing);
    s.network_policies.push_back(p);
    return s;
}

// ---- the example set --------------------------------------------------------------------------

class ExampleSet : public ::testing::Test {
  protected:
    void SetUp() override {
        set_ = load_policy_dir(kExamples);
        const EnforcerProfile &prof =
            *resolve_profile(set_, {"role=appliance", "site=dc1"}).profile;
        snap_ = compile_snapshot(set_, prof);
        frontend_ = snap_->find_pu_by_id("pu-frontend");
        backend_ = snap_->find_pu_by_id("pu-backend");
        db_ = snap_->find_pu_by_id("pu-db");
        ASSERT_NE(frontend_, kNone);
        ASSERT_NE(backend_, kNone);
        ASSERT_NE(db_, kNone);
    }
    Decision from_peer(uint32_t pu, Direction d, std::vector<std::string> tags, uint8_t proto,
                       uint16_t port) {
        PeerTags p = snap_->make_peer_tags(tags);
        return snap_->decide(pu, d, p, proto, port);
    }
    Decision from_addr(uint32_t pu, Direction d, const char *addr, uint8_t proto, uint16_t port) {
        return snap_->decide(pu, d, IpAddr::parse(addr), proto, port);
    }
    std::string rule_of(const Decision &d) { return std::string(snap_->str(d.rule_name)); }
    std::string policy_of(const Decision &d) { return std::string(snap_->policy_name(d.policy)); }

  public:  // the tables below point at these members
    PolicySet set_;
    std::unique_ptr<PolicySnapshot> snap_;
    uint32_t frontend_ = kNone, backend_ = kNone, db_ = kNone;
};

TEST_F(ExampleSet, ClassifiesAddresses) {
    struct Case {
        const char *addr;
        uint32_t ExampleSet::*pu;
        uint8_t flags;
    };
    const Case cases[] = {
        {"10.1.0.7", &ExampleSet::frontend_, kManagedTcp},
        {"10.2.0.255", &ExampleSet::backend_, kManagedTcp},
        {"10.3.0.10", &ExampleSet::db_, kManagedTcp | kManagedUdp},
        {"10.3.0.11", nullptr, kManagedTcp | kManagedUdp},
        {"10.9.1.1", nullptr, kManagedTcp | kExcluded},
        {"192.168.1.1", nullptr, 0},  // the profile replaced the default targetNetworks
        {"8.8.8.8", nullptr, 0},
        {"fd00:1::5", &ExampleSet::frontend_, kManagedTcp},
        {"fd00:2::5", nullptr, kManagedTcp},
        {"2001:db8::1", nullptr, 0},
    };
    for (const Case &c : cases) {
        AddressInfo info = snap_->classify(IpAddr::parse(c.addr));
        EXPECT_EQ(info.pu, c.pu ? this->*c.pu : kNone) << c.addr;
        EXPECT_EQ(info.flags, c.flags) << c.addr;
    }
}

// What binds a peer's claims to the record (docs/policy.md, "Who may speak for a PU"): the PU's
// host, its addresses (prefix edges, both families) and its tags as a peer's.
TEST_F(ExampleSet, PuRecordBindsClaims) {
    EXPECT_EQ(snap_->pu_enforcer(frontend_), "edge-1");
    EXPECT_EQ(snap_->pu_enforcer(db_), "edge-2");
    struct Case {
        uint32_t ExampleSet::*pu;
        const char *addr;
        bool covered;
    };
    const Case cases[] = {
        {&ExampleSet::frontend_, "10.1.0.0", true},
        {&ExampleSet::frontend_, "10.1.0.255", true},
        {&ExampleSet::frontend_, "10.1.1.0", false},
        {&ExampleSet::frontend_, "10.0.255.255", false},
        {&ExampleSet::frontend_, "fd00:1::1", true},
        {&ExampleSet::frontend_, "fd00:1:0:1::1", false},
        {&ExampleSet::frontend_, "10.2.0.1", false},
        {&ExampleSet::backend_, "10.2.0.1", true},
        {&ExampleSet::db_, "10.3.0.10", true},
        {&ExampleSet::db_, "10.3.0.11", false},
        {&ExampleSet::db_, "fd00:1::1", false},
    };
    for (const Case &c : cases)
        EXPECT_EQ(snap_->pu_covers(this->*c.pu, IpAddr::parse(c.addr)), c.covered) << c.addr;
    EXPECT_FALSE(snap_->pu_covers(kNone, IpAddr::parse("10.1.0.1")));
    // The record's tags, $-tags included, are what a peer proving to be the PU is decided with.
    const PeerTags &t = snap_->pu_peer_tags(frontend_);
    EXPECT_EQ(t.snapshot_version(), snap_->version());
    const PeerTags same = snap_->make_peer_tags(effective_tags(set_.processing_units[0]));
    EXPECT_EQ(t.key(), same.key());
    const std::vector<std::string> fewer = {"app=shop", "tier=frontend"};
    EXPECT_NE(t.key(), snap_->make_peer_tags(fewer).key());
}

TEST_F(ExampleSet, IdentityDecisions) {
    std::vector<std::string> fe = {"app=shop", "tier=frontend", "env=prod"};
    Decision d = from_peer(backend_, kIn, fe, kTcp, 8080);
    EXPECT_EQ(d.action, Verdict::kAccept);
    EXPECT_EQ(d.reason, Reason::kRule);
    EXPECT_EQ(policy_of(d), "backend");
    EXPECT_EQ(rule_of(d), "from-frontend");
    EXPECT_EQ(d.observed_action, Verdict::kNotApplicable);

    d = from_peer(backend_, kIn, fe, kTcp, 8081);
    EXPECT_EQ(d.action, Verdict::kReject);
    EXPECT_EQ(d.reason, Reason::kDefault);
    EXPECT_EQ(d.policy, kNone);

    // A dev peer claiming to be a frontend: the Reject of another policy wins.
    d = from_peer(backend_, kIn, {"app=shop", "tier=frontend", "env=prod", "env=dev"}, kTcp, 8080);
    EXPECT_EQ(d.action, Verdict::kReject);
    EXPECT_EQ(policy_of(d), "no-dev-into-prod");
    EXPECT_EQ(rule_of(d), "deny-dev");

    // Client side: frontend → backend outgoing.
    d = from_peer(frontend_, kOut, {"app=shop", "tier=backend"}, kTcp, 8080);
    EXPECT_EQ(d.action, Verdict::kAccept);
    EXPECT_EQ(rule_of(d), "to-backend");

    // Observed rule on db: the verdict comes from "from-backend", the report also shows audit.
    d = from_peer(db_, kIn, {"app=shop", "tier=backend", "env=prod"}, kTcp, 5432);
    EXPECT_EQ(d.action, Verdict::kAccept);
    EXPECT_EQ(rule_of(d), "from-backend");
    EXPECT_EQ(d.observed_action, Verdict::kAccept);
    EXPECT_EQ(snap_->str(d.observed_rule_name), "audit-any");
    EXPECT_EQ(snap_->policy_name(d.observed_policy), "db");

    // Observed-only match: default verdict, observed Accept.
    d = from_peer(db_, kIn, {"app=shop", "tier=frontend"}, kTcp, 5432);
    EXPECT_EQ(d.action, Verdict::kReject);
    EXPECT_EQ(d.reason, Reason::kDefault);
    EXPECT_EQ(d.observed_action, Verdict::kAccept);
}

TEST_F(ExampleSet, ExternalNetworkDecisions) {
    struct Case {
        uint32_t ExampleSet::*pu;
        Direction dir;
        const char *addr;
        uint8_t proto;
        uint16_t port;
        Verdict action;
        const char *rule;
    };
    const Case cases[] = {
        {&ExampleSet::frontend_, kIn, "8.8.8.8", kTcp, 443, Verdict::kAccept, "web-from-net"},
        {&ExampleSet::frontend_, kIn, "8.8.8.8", kTcp, 22, Verdict::kReject, ""},
        {&ExampleSet::frontend_, kIn, "10.5.0.1", kTcp, 443, Verdict::kReject, ""},  // !10/8
        {&ExampleSet::frontend_, kIn, "172.16.5.1", kTcp, 443, Verdict::kReject, ""},
        {&ExampleSet::frontend_, kIn, "2001:db8::1", kTcp, 80, Verdict::kAccept, "web-from-net"},
        {&ExampleSet::frontend_, kIn, "fd00:9::1", kTcp, 80, Verdict::kReject, ""},  // !fd00::/8
        {&ExampleSet::frontend_, kIn, "8.8.8.8", kIcmp, icmp_key(8, 0), Verdict::kAccept, "ping"},
        {&ExampleSet::frontend_, kIn, "8.8.8.8", kIcmp, icmp_key(8, 1), Verdict::kReject, ""},
        {&ExampleSet::frontend_, kIn, "2001:db8::1", kIcmp6, icmp_key(128, 0), Verdict::kAccept,
         "ping"},
        {&ExampleSet::frontend_, kIn, "8.8.8.8", kIcmp6, icmp_key(8, 0), Verdict::kReject, ""},
        // dns: servicePorts udp/53, tcp/53
        {&ExampleSet::frontend_, kOut, "192.0.2.53", kUdp, 53, Verdict::kAccept, "dns"},
        {&ExampleSet::frontend_, kOut, "2001:db8::53", kUdp, 53, Verdict::kAccept, "dns"},
        {&ExampleSet::frontend_, kOut, "192.0.2.53", kTcp, 53, Verdict::kReject, ""},
        // mirrors with an exclusion of the upper half
        {&ExampleSet::backend_, kOut, "203.0.113.5", kTcp, 443, Verdict::kAccept, "mirrors"},
        {&ExampleSet::backend_, kOut, "203.0.113.200", kTcp, 443, Verdict::kReject, ""},
        {&ExampleSet::backend_, kOut, "8.8.8.8", kTcp, 443, Verdict::kReject, ""},
    };
    for (const Case &c : cases) {
        Decision d = from_addr(this->*c.pu, c.dir, c.addr, c.proto, c.port);
        EXPECT_EQ(d.action, c.action) << c.addr << " " << int(c.proto) << "/" << c.port;
        EXPECT_EQ(rule_of(d), c.rule) << c.addr << " " << int(c.proto) << "/" << c.port;
    }
}

TEST_F(ExampleSet, HostnamesKeptForLater) {
    ASSERT_EQ(snap_->hostnames().size(), 1u);
    EXPECT_EQ(snap_->hostnames()[0].pattern, "*.debian.org");
    EXPECT_EQ(snap_->network_name(snap_->hostnames()[0].network), "mirrors");
}

TEST_F(ExampleSet, IgnoredAndUnknownPus) {
    set_.processing_units[0].associated_tags.push_back("maintenance=true");
    auto snap = compile_snapshot(set_, set_.enforcer_profiles[0]);
    uint32_t fe = snap->find_pu_by_id("pu-frontend");
    EXPECT_TRUE(snap->pu_ignored(fe));
    EXPECT_FALSE(snap->pu_ignored(snap->find_pu_by_id("pu-backend")));
    Decision d = snap->decide(fe, kIn, IpAddr::parse("8.8.8.8"), kTcp, 22);
    EXPECT_EQ(d.action, Verdict::kAccept);
    EXPECT_EQ(d.reason, Reason::kIgnoredPu);
    d = snap->decide(99, kIn, IpAddr::parse("8.8.8.8"), kTcp, 443);
    EXPECT_EQ(d.action, Verdict::kReject);
    EXPECT_EQ(d.reason, Reason::kUnknownPu);
    EXPECT_EQ(snap->find_pu_by_id("nope"), kNone);
}

TEST_F(ExampleSet, StalePeerTagsAreRefused) {
    auto other = compile_snapshot(set_, set_.enforcer_profiles[0]);
    EXPECT_NE(other->version(), snap_->version());
    PeerTags p = other->make_peer_tags(std::vector<std::string>{"tier=frontend", "env=prod"});
    Decision d = snap_->decide(backend_, kIn, p, kTcp, 8080);
    EXPECT_EQ(d.reason, Reason::kStalePeerTags);
    EXPECT_EQ(d.action, Verdict::kReject);
}

TEST_F(ExampleSet, BulkClassifyMatchesSingle) {
    std::vector<uint32_t> ips;
    std::mt19937 rng(7);
    for (int i = 0; i < 64; ++i)
        ips.push_back(i % 2 ? (0x0a000000u | (rng() & 0x03ffffffu)) : uint32_t(rng()));
    AddressInfo out[64];
    snap_->classify_v4_bulk(ips.data(), out, 64);
    for (int i = 0; i < 64; ++i) {
        AddressInfo one = snap_->classify_v4(ips[i]);
        EXPECT_EQ(out[i].class_id, one.class_id) << i;
        EXPECT_EQ(out[i].pu, one.pu) << i;
    }
}

// ---- tag operators ----------------------------------------------------------------------------

struct OperatorCase {
    TagExpression object;
    std::vector<std::string> peer;
    bool accept;
};

class OperatorTest : public ::testing::TestWithParam<OperatorCase> {};

TEST_P(OperatorTest, MatchesPeerWithoutStrings) {
    const OperatorCase &c = GetParam();
    auto snap = compile(one_pu({rule(kAllow, c.object, {"tcp/80"})}));
    PeerTags peer = snap->make_peer_tags(c.peer);
    Decision d = snap->decide(0, kIn, peer, kTcp, 80);
    EXPECT_EQ(d.action, c.accept ? Verdict::kAccept : Verdict::kReject);
    EXPECT_EQ(d.reason, c.accept ? Reason::kRule : Reason::kDefault);
}

INSTANTIATE_TEST_SUITE_P(
    Operators, OperatorTest,
    ::testing::Values(
        OperatorCase{{{"app=web"}}, {"app=web"}, true},
        OperatorCase{{{"app=web"}}, {"app=web2"}, false},
        OperatorCase{{{"app=web"}}, {"xapp=web"}, false},
        OperatorCase{{{"app!=web"}}, {"app=db"}, true},    // absent keys: TagMatrixTest below
        OperatorCase{{{"app=we*"}}, {"app=web-3"}, true},  // value never seen at compile time
        OperatorCase{{{"app=we*"}}, {"app=w"}, false},
        OperatorCase{{{"app=we*"}}, {"other=web"}, false},
        OperatorCase{{{"app!=we*"}}, {"app=db"}, true},
        OperatorCase{{{"app!=we*"}}, {"app=webby"}, false},
        OperatorCase{{{"app=*"}}, {"app=anything"}, true},
        OperatorCase{{{"app=*"}}, {"apps=x"}, false}, OperatorCase{{{"app!=*"}}, {"team=x"}, true},
        OperatorCase{{{"app!=*"}}, {"app=x"}, false},
        OperatorCase{{{"app=web", "env=prod"}}, {"app=web", "env=prod", "x=y"}, true},
        OperatorCase{{{"app=web", "env=prod"}}, {"app=web"}, false},
        OperatorCase{{{"app=web"}, {"env=prod"}}, {"env=prod"}, true},
        OperatorCase{{{"app=web", "env!=dev"}, {"admin=*"}}, {"app=web", "env=dev"}, false},
        OperatorCase{
            {{"app=web", "env!=dev"}, {"admin=*"}}, {"app=web", "env=dev", "admin=1"}, true},
        OperatorCase{{{"app=web"}}, {"garbage", "app=web"}, true}));

// The fail-closed matrix (tag_matrix.hpp) through every compiled path that evaluates an object:
// a peer with identity against an Allow rule and against a Reject rule (namespace default Allow),
// and — for rows without derived tags, which every network carries — an external network with
// those tags against an Allow rule.
class TagMatrixTest : public ::testing::TestWithParam<test::TagCase> {};

TEST_P(TagMatrixTest, CompiledSnapshot) {
    const test::TagCase &c = GetParam();
    {
        auto snap = compile(one_pu({rule(kAllow, c.expr, {"tcp/80"})}));
        Decision d = snap->decide(0, kIn, snap->make_peer_tags(c.tags), kTcp, 80);
        EXPECT_EQ(d.action, c.match ? Verdict::kAccept : Verdict::kReject) << "Allow rule";
    }
    {
        PolicySet s = one_pu({rule(kReject, c.expr, {"tcp/80"})});
        s.ns.default_incoming = kAllow;
        auto snap = compile(s);
        Decision d = snap->decide(0, kIn, snap->make_peer_tags(c.tags), kTcp, 80);
        EXPECT_EQ(d.action, c.match ? Verdict::kReject : Verdict::kAccept) << "Reject rule";
    }
    bool derived = false;
    for (const auto &clause : c.expr)
        for (const std::string &p : clause) derived = derived || p.starts_with("$");
    if (derived) return;
    PolicySet s = one_pu({rule(kAllow, c.expr, {"tcp/80"})});
    ExternalNetwork n;
    n.name = "peer-net";
    n.entries = {"203.0.113.0/24"};
    n.associated_tags = c.tags;
    s.external_networks = {n};
    auto snap = compile(s);
    Decision d = snap->decide(0, kIn, IpAddr::parse("203.0.113.7"), kTcp, 80);
    EXPECT_EQ(d.action, c.match ? Verdict::kAccept : Verdict::kReject) << "external network";
}

INSTANTIATE_TEST_SUITE_P(FailClosed, TagMatrixTest, ::testing::ValuesIn(test::tag_matrix()));

// ---- precedence and observation ---------------------------------------------------------------

struct PrecedenceCase {
    const char *name;
    std::vector<NetworkRule> rules;
    RuleAction ns_default;
    Verdict action;
    Verdict observed;
    Reason reason;
    const char *rule;
    const char *observed_rule;
};

class PrecedenceTest : public ::testing::TestWithParam<PrecedenceCase> {};

TEST_P(PrecedenceTest, TriremeOrder) {
    const PrecedenceCase &c = GetParam();
    PolicySet s = one_pu(c.rules);
    s.ns.default_incoming = c.ns_default;
    auto snap = compile(s);
    PeerTags peer = snap->make_peer_tags(std::vector<std::string>{"p=1"});
    Decision d = snap->decide(0, kIn, peer, kTcp, 80);
    EXPECT_EQ(d.action, c.action);
    EXPECT_EQ(d.observed_action, c.observed);
    EXPECT_EQ(d.reason, c.reason);
    EXPECT_EQ(snap->str(d.rule_name), c.rule);
    EXPECT_EQ(snap->str(d.observed_rule_name), c.observed_rule);
    EXPECT_EQ(d.policy == kNone, c.reason != Reason::kRule);
    EXPECT_EQ(d.observed_policy == kNone, c.observed == Verdict::kNotApplicable);
}

NetworkRule A(const char *n, bool obs = false) {
    return rule(kAllow, {{"p=1"}}, {"any"}, obs, n);
}
NetworkRule R(const char *n, bool obs = false) {
    return rule(kReject, {{"p=1"}}, {"any"}, obs, n);
}
NetworkRule Miss(RuleAction a, const char *n) {
    return rule(a, {{"p=2"}}, {"any"}, false, n);
}

INSTANTIATE_TEST_SUITE_P(Cases, PrecedenceTest,
                         ::testing::Values(PrecedenceCase{"allow",
                                                          {A("a")},
                                                          kReject,
                                                          Verdict::kAccept,
                                                          Verdict::kNotApplicable,
                                                          Reason::kRule,
                                                          "a",
                                                          ""},
                                           PrecedenceCase{"reject",
                                                          {R("r")},
                                                          kAllow,
                                                          Verdict::kReject,
                                                          Verdict::kNotApplicable,
                                                          Reason::kRule,
                                                          "r",
                                                          ""},
                                           PrecedenceCase{"reject_wins_after",
                                                          {A("a"), R("r")},
                                                          kReject,
                                                          Verdict::kReject,
                                                          Verdict::kNotApplicable,
                                                          Reason::kRule,
                                                          "r",
                                                          ""},
                                           PrecedenceCase{"reject_wins_before",
                                                          {R("r"), A("a")},
                                                          kReject,
                                                          Verdict::kReject,
                                                          Verdict::kNotApplicable,
                                                          Reason::kRule,
                                                          "r",
                                                          ""},
                                           PrecedenceCase{"first_allow_reported",
                                                          {A("a1"), A("a2")},
                                                          kReject,
                                                          Verdict::kAccept,
                                                          Verdict::kNotApplicable,
                                                          Reason::kRule,
                                                          "a1",
                                                          ""},
                                           PrecedenceCase{"observed_allow_only",
                                                          {A("oa", true)},
                                                          kReject,
                                                          Verdict::kReject,
                                                          Verdict::kAccept,
                                                          Reason::kDefault,
                                                          "",
                                                          "oa"},
                                           PrecedenceCase{"observed_reject_only",
                                                          {R("or", true)},
                                                          kAllow,
                                                          Verdict::kAccept,
                                                          Verdict::kReject,
                                                          Reason::kDefault,
                                                          "",
                                                          "or"},
                                           PrecedenceCase{"observed_reject_and_allow",
                                                          {A("a"), R("or", true)},
                                                          kReject,
                                                          Verdict::kAccept,
                                                          Verdict::kReject,
                                                          Reason::kRule,
                                                          "a",
                                                          "or"},
                                           PrecedenceCase{"observed_allow_and_reject",
                                                          {A("oa", true), R("r")},
                                                          kAllow,
                                                          Verdict::kReject,
                                                          Verdict::kNotApplicable,
                                                          Reason::kRule,
                                                          "r",
                                                          ""},
                                           PrecedenceCase{"observed_reject_and_reject",
                                                          {R("or", true), R("r")},
                                                          kAllow,
                                                          Verdict::kReject,
                                                          Verdict::kReject,
                                                          Reason::kRule,
                                                          "r",
                                                          "or"},
                                           PrecedenceCase{"observed_both",
                                                          {A("oa", true), R("or", true)},
                                                          kReject,
                                                          Verdict::kReject,
                                                          Verdict::kReject,
                                                          Reason::kDefault,
                                                          "",
                                                          "or"},
                                           PrecedenceCase{"observed_allow_and_allow",
                                                          {A("oa", true), A("a")},
                                                          kReject,
                                                          Verdict::kAccept,
                                                          Verdict::kAccept,
                                                          Reason::kRule,
                                                          "a",
                                                          "oa"},
                                           PrecedenceCase{"no_match_default_reject",
                                                          {Miss(kAllow, "m")},
                                                          kReject,
                                                          Verdict::kReject,
                                                          Verdict::kNotApplicable,
                                                          Reason::kDefault,
                                                          "",
                                                          ""},
                                           PrecedenceCase{"no_match_default_allow",
                                                          {Miss(kReject, "m")},
                                                          kAllow,
                                                          Verdict::kAccept,
                                                          Verdict::kNotApplicable,
                                                          Reason::kDefault,
                                                          "",
                                                          ""},
                                           PrecedenceCase{"no_rules",
                                                          {},
                                                          kReject,
                                                          Verdict::kReject,
                                                          Verdict::kNotApplicable,
                                                          Reason::kDefault,
                                                          "",
                                                          ""}),
                         [](const ::testing::TestParamInfo<PrecedenceCase> &i) {
                             return std::string(i.param.name);
                         });

TEST(Decide, DirectionsUseTheirOwnRulesAndDefaults) {
    PolicySet s = one_pu({A("in")}, {R("out")});
    s.ns.default_outgoing = kAllow;
    auto snap = compile(s);
    PeerTags p = snap->make_peer_tags(std::vector<std::string>{"p=1"});
    EXPECT_EQ(snap->str(snap->decide(0, kIn, p, kTcp, 1).rule_name), "in");
    EXPECT_EQ(snap->str(snap->decide(0, kOut, p, kTcp, 1).rule_name), "out");
    PeerTags q = snap->make_peer_tags(std::vector<std::string>{"p=9"});
    EXPECT_EQ(snap->decide(0, kIn, q, kTcp, 1).action, Verdict::kReject);
    EXPECT_EQ(snap->decide(0, kOut, q, kTcp, 1).action, Verdict::kAccept);
}

TEST(Decide, LogsDisabledFollowsTheDecidingRule) {
    NetworkRule r = A("quiet");
    r.logs_disabled = true;
    auto snap = compile(one_pu({r}));
    PeerTags p = snap->make_peer_tags(std::vector<std::string>{"p=1"});
    EXPECT_TRUE(snap->decide(0, kIn, p, kTcp, 1).logs_disabled);
}

TEST(Decide, DisabledPolicyIgnored) {
    PolicySet s = one_pu({A("a")});
    NetworkRuleSetPolicy deny;
    deny.name = "deny";
    deny.subject = {{"app=srv"}};
    deny.incoming_rules = {R("r")};
    deny.disabled = true;
    s.network_policies.push_back(deny);
    auto snap = compile(s);
    PeerTags p = snap->make_peer_tags(std::vector<std::string>{"p=1"});
    EXPECT_EQ(snap->decide(0, kIn, p, kTcp, 1).action, Verdict::kAccept);
    s.network_policies[1].disabled = false;
    auto snap2 = compile(s);
    PeerTags p2 = snap2->make_peer_tags(std::vector<std::string>{"p=1"});
    EXPECT_EQ(snap2->decide(0, kIn, p2, kTcp, 1).action, Verdict::kReject);
}

TEST(Decide, FallbackPolicyOnlyForDirectionsWithoutRegularRules) {
    PolicySet s = one_pu({A("in-regular")});  // regular policy has only incoming rules
    NetworkRuleSetPolicy fb;
    fb.name = "fb";
    fb.subject = {{"app=*"}};
    fb.incoming_rules = {R("in-fb")};
    fb.outgoing_rules = {A("out-fb")};
    fb.fallback = true;
    s.network_policies.push_back(fb);
    auto snap = compile(s);
    PeerTags p = snap->make_peer_tags(std::vector<std::string>{"p=1"});
    Decision in = snap->decide(0, kIn, p, kTcp, 1);
    EXPECT_EQ(in.action, Verdict::kAccept);
    EXPECT_EQ(snap->str(in.rule_name), "in-regular");
    Decision out = snap->decide(0, kOut, p, kTcp, 1);
    EXPECT_EQ(out.action, Verdict::kAccept);
    EXPECT_EQ(snap->str(out.rule_name), "out-fb");
    EXPECT_EQ(snap->policy_name(out.policy), "fb");
}

TEST(Decide, PolicySubjectSelectsPus) {
    PolicySet s = one_pu({A("a")});
    ProcessingUnit other;
    other.id = "o";
    other.associated_tags = {"app=other"};
    other.addresses = {"10.0.0.2"};
    s.processing_units.push_back(other);
    auto snap = compile(s);
    PeerTags p = snap->make_peer_tags(std::vector<std::string>{"p=1"});
    EXPECT_EQ(snap->decide(0, kIn, p, kTcp, 1).action, Verdict::kAccept);
    EXPECT_EQ(snap->decide(1, kIn, p, kTcp, 1).reason, Reason::kDefault);
    EXPECT_EQ(snap->policy_id(0), "pol-id");
    EXPECT_EQ(snap->pu_name(0), "srv");
}

struct PortCase {
    std::vector<std::string> ports;
    uint8_t proto;
    uint16_t port;
    bool accept;
};

class PortMatchTest : public ::testing::TestWithParam<PortCase> {};

TEST_P(PortMatchTest, Decides) {
    const PortCase &c = GetParam();
    auto snap = compile(one_pu({rule(kAllow, {{"p=1"}}, c.ports)}));
    PeerTags p = snap->make_peer_tags(std::vector<std::string>{"p=1"});
    EXPECT_EQ(snap->decide(0, kIn, p, c.proto, c.port).action,
              c.accept ? Verdict::kAccept : Verdict::kReject);
}

INSTANTIATE_TEST_SUITE_P(
    Ports, PortMatchTest,
    ::testing::Values(PortCase{{"any"}, 47, 0, true}, PortCase{{"any"}, kUdp, 9, true},
                      PortCase{{"tcp/80:100"}, kTcp, 80, true},
                      PortCase{{"tcp/80:100"}, kTcp, 100, true},
                      PortCase{{"tcp/80:100"}, kTcp, 101, false},
                      PortCase{{"tcp/80:100"}, kUdp, 90, false},
                      PortCase{{"udp/53"}, kUdp, 53, true}, PortCase{{"tcp"}, kTcp, 1, true},
                      PortCase{{"gre"}, 47, 0, true}, PortCase{{"gre"}, 50, 0, false},
                      PortCase{{"icmp/3/0,3:15"}, kIcmp, icmp_key(3, 4), true},
                      PortCase{{"icmp/3/0,3:15"}, kIcmp, icmp_key(3, 2), false},
                      PortCase{{"icmp/3"}, kIcmp, icmp_key(3, 200), true},
                      PortCase{{"icmp6/135/0"}, kIcmp6, icmp_key(135, 0), true},
                      PortCase{{"icmp6/135/0"}, kIcmp, icmp_key(135, 0), false}));

// ---- external networks: exclusions, overlaps, IPv6 ----------------------------------------------

ExternalNetwork net(const char *name, std::vector<std::string> entries,
                    std::vector<std::string> service_ports = {}) {
    ExternalNetwork n;
    n.name = name;
    n.entries = std::move(entries);
    n.service_ports = std::move(service_ports);
    n.associated_tags = {std::string("net=") + name, "ext=yes"};
    return n;
}

class Overlaps : public ::testing::Test {
  protected:
    void SetUp() override {
        set_ = one_pu({rule(kAllow, {{"net=a"}}, {"tcp/1"}, false, "to-a"),
                       rule(kAllow, {{"net=b"}}, {"tcp/2"}, false, "to-b"),
                       rule(kReject, {{"net=d"}}, {"tcp/1"}, false, "not-d"),
                       rule(kAllow, {{"ext=yes"}}, {"tcp/3"}, false, "any-ext"),
                       rule(kAllow, {{"net=svc"}}, {"any"}, false, "svc")});
        set_.external_networks = {
            net("a", {"10.0.0.0/8", "!10.1.0.0/16"}),
            net("b", {"10.1.0.0/16", "!10.1.2.0/24"}),
            net("c", {"0.0.0.0/0"}),
            net("d", {"10.1.2.128/25"}),
            net("e", {"2001:db8::/32", "!2001:db8:1::/48", "2001:db8:1:2::/64"}),
            net("f", {"::/0"}),
            net("svc", {"198.51.100.0/24"}, {"tcp/443", "udp/53"}),
        };
        snap_ = compile(set_);
    }
    std::set<std::string> nets(const char *addr) {
        std::set<std::string> out;
        for (uint32_t n : snap_->networks_of(snap_->classify(IpAddr::parse(addr)).class_id))
            out.insert(std::string(snap_->network_name(n)));
        return out;
    }
    PolicySet set_;
    std::unique_ptr<PolicySnapshot> snap_;
};

TEST_F(Overlaps, MembershipHonoursExclusionsAndOverlaps) {
    using S = std::set<std::string>;
    EXPECT_EQ(nets("10.2.3.4"), (S{"a", "c"}));
    EXPECT_EQ(nets("10.1.5.5"), (S{"b", "c"}));    // a's hole, b's include
    EXPECT_EQ(nets("10.1.2.5"), (S{"c"}));         // b's hole inside a's hole
    EXPECT_EQ(nets("10.1.2.200"), (S{"c", "d"}));  // d inside b's hole
    EXPECT_EQ(nets("11.0.0.1"), (S{"c"}));         // only the /0
    EXPECT_EQ(nets("0.0.0.0"), (S{"c"}));
    EXPECT_EQ(nets("255.255.255.255"), (S{"c"}));
    EXPECT_EQ(nets("2001:db8::1"), (S{"e", "f"}));
    EXPECT_EQ(nets("2001:db8:1::1"), (S{"f"}));         // excluded /48
    EXPECT_EQ(nets("2001:db8:1:2::9"), (S{"e", "f"}));  // re-included /64 inside the hole
    EXPECT_EQ(nets("fe80::1"), (S{"f"}));
    EXPECT_EQ(nets("10.0.0.1"), (S{"a", "c"})) << "a PU address is still in external networks";
    EXPECT_EQ(snap_->classify(IpAddr::parse("10.0.0.1")).pu, 0u);
}

TEST_F(Overlaps, DecisionsOverExternalNetworks) {
    struct Case {
        const char *addr;
        uint8_t proto;
        uint16_t port;
        Verdict action;
        const char *rule;
    };
    const Case cases[] = {
        {"10.2.3.4", kTcp, 1, Verdict::kAccept, "to-a"},
        {"10.1.5.5", kTcp, 1, Verdict::kReject, ""},  // not in a
        {"10.1.5.5", kTcp, 2, Verdict::kAccept, "to-b"},
        {"10.1.2.200", kTcp, 1, Verdict::kReject, "not-d"},
        {"10.1.2.5", kTcp, 3, Verdict::kAccept, "any-ext"},  // in c
        {"2001:db8:1::1", kTcp, 3, Verdict::kAccept, "any-ext"},
        {"198.51.100.7", kTcp, 443, Verdict::kAccept, "svc"},
        {"198.51.100.7", kUdp, 53, Verdict::kAccept, "svc"},
        {"198.51.100.7", kTcp, 80, Verdict::kReject, ""},  // outside servicePorts
    };
    for (const Case &c : cases) {
        for (Direction dir : {kIn, kOut}) {
            Decision d = snap_->decide(0, dir, IpAddr::parse(c.addr), c.proto, c.port);
            if (dir == kOut) {
                // Outgoing has no rules here: namespace default.
                EXPECT_EQ(d.reason, Reason::kDefault) << c.addr;
                continue;
            }
            EXPECT_EQ(d.action, c.action) << c.addr << " " << c.port;
            EXPECT_EQ(snap_->str(d.rule_name), c.rule) << c.addr << " " << c.port;
        }
    }
}

// Cross-check the LPM compilation against a brute-force walk of the raw entries.
TEST(ExternalNetworks, RandomNestedPrefixesMatchBruteForce) {
    std::mt19937 rng(12345);
    PolicySet s = one_pu({});
    std::vector<std::vector<NetworkEntry>> parsed;
    for (int n = 0; n < 40; ++n) {
        std::vector<std::string> entries;
        bool v6 = n % 4 == 3;
        int includes = 1 + int(rng() % 3);
        for (int i = 0; i < includes; ++i) {
            IpPrefix p;
            p.v6 = v6;
            p.len = uint8_t(v6 ? 16 + rng() % 40 : 4 + rng() % 20);
            for (auto &b : p.addr) b = uint8_t(rng());
            if (!v6) std::fill(p.addr.begin() + 4, p.addr.end(), 0);
            p.addr[0] = v6 ? 0x20 : 10;  // keep everything in one area so prefixes overlap
            for (unsigned bit = p.len; bit < p.max_len(); ++bit)
                p.addr[bit / 8] &= uint8_t(~(0x80u >> (bit % 8)));
            entries.push_back(p.str());
            // an exclusion inside it
            IpPrefix x = p;
            x.len = uint8_t(p.len + 1 + rng() % 8);
            for (unsigned bit = p.len; bit < x.len; ++bit)
                if (rng() & 1) x.addr[bit / 8] |= uint8_t(0x80u >> (bit % 8));
            entries.push_back("!" + x.str());
        }
        std::string name = "n" + std::to_string(n);
        s.external_networks.push_back(net(name.c_str(), entries));
        parsed.emplace_back();
        for (const auto &e : entries) {
            NetworkEntry ne;
            std::string problem;
            ASSERT_TRUE(parse_network_entry(e, &ne, &problem)) << problem;
            parsed.back().push_back(ne);
        }
    }
    auto snap = compile(s);
    int nonempty = 0;
    for (int q = 0; q < 4000; ++q) {
        IpPrefix a;
        a.v6 = q % 3 == 0;
        a.len = a.max_len();
        for (auto &b : a.addr) b = uint8_t(rng());
        if (!a.v6) std::fill(a.addr.begin() + 4, a.addr.end(), 0);
        a.addr[0] = a.v6 ? 0x20 : 10;
        std::set<uint32_t> expect;
        for (uint32_t n = 0; n < parsed.size(); ++n) {
            int best = -1;
            bool in = false;
            for (const NetworkEntry &e : parsed[n])
                if (e.prefix.contains(a) && int(e.prefix.len) > best) {
                    best = e.prefix.len;
                    in = e.kind == NetworkEntry::Kind::kInclude;
                }
            if (in) expect.insert(n);
        }
        IpAddr addr = a.v6 ? IpAddr::from_v6(a.addr.data()) : IpAddr::from_v4(a.v4_host());
        auto got_span = snap->networks_of(snap->classify(addr).class_id);
        std::set<uint32_t> got(got_span.begin(), got_span.end());
        ASSERT_EQ(got, expect) << a.str();
        nonempty += !expect.empty();
    }
    EXPECT_GT(nonempty, 400) << "the generator must produce overlapping memberships";
}

TEST(AddressClasses, DefaultAndEmptyTargetNetworks) {
    PolicySet s = one_pu({});
    EnforcerProfile prof;
    prof.name = "p";
    s.enforcer_profiles.push_back(prof);
    auto snap = compile(s);
    for (const char *a : {"10.1.1.1", "172.20.0.1", "192.168.3.3", "127.0.0.1"})
        EXPECT_EQ(snap->classify(IpAddr::parse(a)).flags, kManagedTcp) << a;
    for (const char *a : {"172.32.0.1", "8.8.8.8", "fd00::1"})
        EXPECT_EQ(snap->classify(IpAddr::parse(a)).flags, 0) << a;

    s.enforcer_profiles[0].target_networks = std::vector<std::string>{};
    s.enforcer_profiles[0].target_udp_networks = {"0.0.0.0/0", "::/0"};
    s.enforcer_profiles[0].excluded_networks = {"10.0.0.0/24"};
    auto snap2 = compile(s);
    EXPECT_EQ(snap2->classify(IpAddr::parse("10.1.1.1")).flags, kManagedUdp);
    EXPECT_EQ(snap2->classify(IpAddr::parse("fd00::1")).flags, kManagedUdp);
    EXPECT_EQ(snap2->classify(IpAddr::parse("10.0.0.9")).flags, kManagedUdp | kExcluded);
    EXPECT_EQ(snap2->classify(IpAddr::parse("10.0.0.1")).pu, 0u) << "PU lookup unaffected";
    EXPECT_FALSE(snap2->resolvers_listed());

    // trustedDNSResolvers: listed (even empty) or not; the listed prefixes carry the flag.
    s.enforcer_profiles[0].trusted_dns_resolvers = std::vector<std::string>{};
    EXPECT_TRUE(compile(s)->resolvers_listed());
    s.enforcer_profiles[0].trusted_dns_resolvers =
        std::vector<std::string>{"10.0.0.53/32", "fd00::53/128"};
    auto snap3 = compile(s);
    EXPECT_TRUE(snap3->resolvers_listed());
    EXPECT_EQ(snap3->classify(IpAddr::parse("10.0.0.53")).flags,
              kManagedUdp | kExcluded | kTrustedResolver);
    EXPECT_EQ(snap3->classify(IpAddr::parse("fd00::53")).flags, kManagedUdp | kTrustedResolver);
    EXPECT_EQ(snap3->classify(IpAddr::parse("10.0.0.54")).flags, kManagedUdp | kExcluded);
}

TEST(AddressClasses, LongestPuPrefixWins) {
    PolicySet s = one_pu({});
    s.processing_units[0].addresses = {"10.0.0.0/16", "fd00::/64"};
    ProcessingUnit inner;
    inner.id = "inner";
    inner.addresses = {"10.0.5.0/24", "fd00::10/128"};
    s.processing_units.push_back(inner);
    auto snap = compile(s);
    EXPECT_EQ(snap->find_pu(IpAddr::parse("10.0.4.1")), 0u);
    EXPECT_EQ(snap->find_pu(IpAddr::parse("10.0.5.1")), 1u);
    EXPECT_EQ(snap->find_pu(IpAddr::parse("10.1.0.1")), kNone);
    EXPECT_EQ(snap->find_pu(IpAddr::parse("fd00::11")), 0u);
    EXPECT_EQ(snap->find_pu(IpAddr::parse("fd00::10")), 1u);
}

// ---- decision cache ---------------------------------------------------------------------------

TEST(DecisionCache, AgreesWithDecideAndCountsHits) {
    PolicySet s = load_policy_dir(kExamples);
    auto snap = compile_snapshot(s, s.enforcer_profiles[0]);
    DecisionCache cache(256);
    EXPECT_EQ(cache.capacity(), 256u);
    std::vector<PeerTags> peers = {
        snap->make_peer_tags(std::vector<std::string>{"app=shop", "tier=frontend", "env=prod"}),
        snap->make_peer_tags(std::vector<std::string>{"app=shop", "tier=backend", "env=prod"}),
        snap->make_peer_tags(std::vector<std::string>{"env=dev"})};
    std::vector<IpAddr> addrs = {IpAddr::parse("8.8.8.8"), IpAddr::parse("203.0.113.5"),
                                 IpAddr::parse("2001:db8::53"), IpAddr::parse("192.0.2.53")};
    const uint16_t ports[] = {53, 443, 5432, 8080};
    for (int round = 0; round < 2; ++round) {
        for (uint32_t pu = 0; pu < snap->pu_count(); ++pu)
            for (Direction dir : {kIn, kOut})
                for (uint16_t port : ports)
                    for (uint8_t proto : {kTcp, kUdp}) {
                        for (const PeerTags &p : peers)
                            ASSERT_EQ(cache.decide(*snap, pu, dir, p, proto, port),
                                      snap->decide(pu, dir, p, proto, port));
                        for (const IpAddr &a : addrs)
                            ASSERT_EQ(cache.decide(*snap, pu, dir, a, proto, port),
                                      snap->decide(pu, dir, a, proto, port));
                    }
    }
    EXPECT_GT(cache.hits(), 0u);
    EXPECT_GT(cache.misses(), 0u);
}

TEST(DecisionCache, WarmLookupHits) {
    auto snap = compile(one_pu({A("a")}));
    DecisionCache cache;
    PeerTags p = snap->make_peer_tags(std::vector<std::string>{"p=1"});
    cache.decide(*snap, 0, kIn, p, kTcp, 80);
    EXPECT_EQ(cache.misses(), 1u);
    cache.decide(*snap, 0, kIn, p, kTcp, 80);
    EXPECT_EQ(cache.hits(), 1u);
    cache.decide(*snap, 0, kOut, p, kTcp, 80);  // direction is part of the key
    cache.decide(*snap, 0, kIn, p, kTcp, 81);   // port too
    cache.decide(*snap, 0, kIn, p, kUdp, 80);   // protocol too
    EXPECT_EQ(cache.misses(), 4u);
    cache.clear();
    cache.decide(*snap, 0, kIn, p, kTcp, 80);
    EXPECT_EQ(cache.misses(), 5u);
}

TEST(DecisionCache, NewSnapshotInvalidates) {
    auto allow = compile(one_pu({A("a")}));
    auto deny = compile(one_pu({R("r")}));
    DecisionCache cache;
    IpAddr peer = IpAddr::parse("10.0.0.9");
    PeerTags pa = allow->make_peer_tags(std::vector<std::string>{"p=1"});
    PeerTags pd = deny->make_peer_tags(std::vector<std::string>{"p=1"});
    // Same ID set in both snapshots → same fingerprint; the version must still separate them.
    EXPECT_EQ(cache.decide(*allow, 0, kIn, pa, kTcp, 80).action, Verdict::kAccept);
    EXPECT_EQ(cache.decide(*deny, 0, kIn, pd, kTcp, 80).action, Verdict::kReject);
    EXPECT_EQ(cache.decide(*allow, 0, kIn, peer, kTcp, 80).action, Verdict::kReject);
    // A stale PeerTags is never cached.
    EXPECT_EQ(cache.decide(*deny, 0, kIn, pa, kTcp, 80).reason, Reason::kStalePeerTags);
    EXPECT_EQ(cache.decide(*deny, 0, kIn, pd, kTcp, 80).action, Verdict::kReject);
}

// ---- RCU publication --------------------------------------------------------------------------

TEST(Publisher, SwapsAndReclaims) {
    SnapshotPublisher pub(2, 4);
    EXPECT_EQ(pub.current(), nullptr);
    pub.register_reader(0);
    auto first = compile(one_pu({A("a")}));
    const PolicySnapshot *p1 = first.get();
    pub.publish(std::move(first));
    EXPECT_EQ(pub.current(), p1);
    pub.publish(compile(one_pu({R("r")})));
    EXPECT_NE(pub.current(), p1);
    EXPECT_EQ(pub.pending(), 1u);
    EXPECT_EQ(pub.reclaim(), 0u) << "reader 0 has not reported quiescent yet";
    pub.reader_quiescent(0);
    EXPECT_EQ(pub.reclaim(), 1u);
    EXPECT_EQ(pub.pending(), 0u);
    pub.unregister_reader(0);
    pub.publish(nullptr);
    pub.synchronize();
    EXPECT_EQ(pub.pending(), 0u);
    EXPECT_THROW(pub.register_reader(2), PolicyError);
}

// Readers decide in a tight loop while the control thread publishes new snapshots. Each
// snapshot's rules are derived from its generation so a reader can check that what it reads is
// internally consistent (a freed or half-built snapshot would show up as a wrong answer or, under
// ASan/TSan, as a use-after-free/race).
TEST(Publisher, HammerReadsDuringSwaps) {
    constexpr unsigned kReaders = 2;
    constexpr int kGenerations = 24;
    SnapshotPublisher pub(kReaders, 2);
    auto make = [](int gen) {
        PolicySet s =
            one_pu({rule(gen % 2 ? kAllow : kReject, {{"p=1"}},
                         {"tcp/" + std::to_string(1000 + gen)}, false, "g" + std::to_string(gen))});
        s.version = std::to_string(gen);
        return compile(s);
    };
    pub.publish(make(0));
    std::atomic<bool> stop{false};
    std::atomic<uint64_t> reads{0}, errors{0};
    std::vector<std::thread> readers;
    for (unsigned id = 0; id < kReaders; ++id) {
        readers.emplace_back([&, id] {
            pub.register_reader(id);
            DecisionCache cache(64);
            IpAddr peer = IpAddr::parse("10.0.0.9");
            uint64_t last_version = 0;
            while (!stop.load(std::memory_order_relaxed)) {
                const PolicySnapshot *s = pub.current();
                int gen = std::stoi(s->bundle_version());
                uint16_t port = uint16_t(1000 + gen);
                Decision d = cache.decide(*s, 0, kIn, peer, kTcp, port);
                // the peer is in no external network: always the default
                if (d.reason != Reason::kDefault) errors.fetch_add(1);
                if (s->version() < last_version) errors.fetch_add(1);
                last_version = s->version();
                PeerTags tags = s->make_peer_tags(std::vector<std::string>{"p=1"});
                Decision r = s->decide(0, kIn, tags, kTcp, port);
                if (s->str(r.rule_name) != "g" + std::to_string(gen) ||
                    r.action != (gen % 2 ? Verdict::kAccept : Verdict::kReject))
                    errors.fetch_add(1);
                reads.fetch_add(1, std::memory_order_relaxed);
                pub.reader_quiescent(id);
            }
            pub.unregister_reader(id);
        });
    }
    // Swap only once every reader is reading (snapshots compile in microseconds now: without this
    // the swaps could all be over before a reader thread has started).
    while (reads.load() < kReaders) std::this_thread::yield();
    for (int gen = 1; gen <= kGenerations; ++gen) {
        pub.publish(make(gen));
        pub.reclaim();
        EXPECT_LE(pub.pending(), 2u);
    }
    stop = true;
    for (auto &t : readers) t.join();
    pub.synchronize();
    EXPECT_EQ(pub.pending(), 0u);
    EXPECT_EQ(errors.load(), 0u);
    EXPECT_GT(reads.load(), 0u);
}

// The identity mode of a managed TCP network (docs/l4-mode.md "Modes") is an address flag, by
// longest prefix like the others: v1 where neither list says otherwise.
TEST(Modes, L4AndAutoNetworksAreAddressFlags) {
    PolicySet s = one_pu({});
    EnforcerProfile prof;
    prof.name = "pr";
    prof.target_networks = std::vector<std::string>{"10.0.0.0/8", "fd00::/8"};
    prof.l4_target_networks = {"10.20.0.0/16", "fd00:20::/32"};
    prof.auto_target_networks = {"10.30.0.0/16"};
    s.enforcer_profiles.push_back(prof);
    auto snap = compile(s);
    const struct {
        const char *addr;
        uint8_t mode;
    } cases[] = {
        {"10.1.0.1", 0},          {"10.20.0.1", kModeL4}, {"10.20.255.255", kModeL4},
        {"10.30.7.7", kModeAuto}, {"10.31.0.0", 0},       {"fd00:20::1", kModeL4},
        {"fd00:21::1", 0},        {"192.168.0.1", 0},
    };
    for (const auto &c : cases) {
        const uint8_t f = snap->classify(IpAddr::parse(c.addr)).flags;
        EXPECT_EQ(f & (kModeL4 | kModeAuto), c.mode) << c.addr;
        EXPECT_EQ(bool(f & kManagedTcp), std::string(c.addr) != "192.168.0.1") << c.addr;
    }
}

}  // namespace
}  // namespace segwire::policy

int main(int argc, char **argv) {
    ::testing::InitGoogleTest(&argc, argv);
    ::testing::AddGlobalTestEnvironment(new segwire::test::EalEnvironment);
    return RUN_ALL_TESTS();
}
