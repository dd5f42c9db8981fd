// segwirectl explain's engine (config/policy/explain.hpp) against the compiled snapshot: the same
// decision (action, observed action, reason, policy, rule) for every PU, direction, peer (each PU's
// record tags, and addresses through external networks) and port, over the example set and over
// random sets; its address classes against the snapshot's; and its warnings.
#include <gtest/gtest.h>

#include <random>

#include "config/policy/explain.hpp"
#include "config/policy/profile.hpp"
#include "control/policy/compile.hpp"
#include "dataplane/policy/snapshot.hpp"
#include "tests/unit/policy/eal_env.hpp"

namespace segwire::policy {
namespace {

namespace ex = explain;
const std::string kExamples = std::string(SEGWIRE_SOURCE_ROOT) + "/config/examples/policy";

struct Probe {
    uint8_t proto;
    uint16_t port;
};
const Probe kProbes[] = {{6, 22},   {6, 80},     {6, 443},    {6, 5432}, {6, 8080},
                         {17, 53},  {17, 123},   {17, 5000},  {1, icmp_key(8, 0)},
                         {58, icmp_key(128, 0)}, {47, 0}};

// The snapshot's rule index → (policy, rule) is not exposed; compare by policy index and the
// rule's name string, which is what flow reports carry.
void expect_same(const PolicySet &set, const PolicySnapshot &snap, const Decision &want,
                 const ex::Decision &got, ex::Direction dir, const std::string &what) {
    auto name = [&](int p, int r) -> std::string {
        if (p < 0) return "";
        const auto &np = set.network_policies[size_t(p)];
        return (dir == ex::Direction::kIncoming ? np.incoming_rules : np.outgoing_rules)[size_t(r)].name;
    };
    EXPECT_EQ(static_cast<int>(want.action), static_cast<int>(got.action)) << what;
    EXPECT_EQ(static_cast<int>(want.observed_action), static_cast<int>(got.observed_action)) << what;
    EXPECT_EQ(std::string(to_string(want.reason)), got.reason) << what;
    EXPECT_EQ(want.policy == kNone ? -1 : int(want.policy), got.policy) << what;
    EXPECT_EQ(std::string(snap.str(want.rule_name)), name(got.policy, got.rule)) << what;
    EXPECT_EQ(want.observed_policy == kNone ? -1 : int(want.observed_policy), got.observed_policy)
        << what;
    EXPECT_EQ(std::string(snap.str(want.observed_rule_name)),
              name(got.observed_policy, got.observed_rule))
        << what;
}

IpAddr to_ip(const IpPrefix &p) {
    return p.v6 ? IpAddr::from_v6(p.addr.data()) : IpAddr::from_v4(p.v4_host());
}

// Every PU × direction × (every PU's record, every address of interest) × probe.
int compare_all(const PolicySet &set, const EnforcerProfile &profile,
                const std::vector<std::string> &addresses) {
    auto snap = control::compile_snapshot(set, profile);
    int n = 0;
    for (size_t pu = 0; pu < set.processing_units.size(); ++pu) {
        const uint32_t spu = snap->find_pu_by_id(set.processing_units[pu].id);
        for (ex::Direction dir : {ex::Direction::kIncoming, ex::Direction::kOutgoing}) {
            const Direction sdir = dir == ex::Direction::kIncoming ? Direction::kIncoming
                                                                   : Direction::kOutgoing;
            for (const Probe &pr : kProbes) {
                for (size_t peer = 0; peer < set.processing_units.size(); ++peer) {
                    ex::Peer p;
                    p.by_identity = true;
                    p.pu = int(peer);
                    p.tags = effective_tags(set.processing_units[peer]);
                    const Decision want = snap->decide(spu, sdir, snap->make_peer_tags(p.tags),
                                                       pr.proto, pr.port);
                    const ex::Decision got = ex::decide(set, profile, pu, dir, p, pr.proto, pr.port);
                    expect_same(set, *snap, want, got, dir,
                                set.processing_units[pu].id + " <- " + set.processing_units[peer].id +
                                    " proto " + std::to_string(pr.proto) + "/" + std::to_string(pr.port));
                    ++n;
                }
                for (const std::string &a : addresses) {
                    std::string problem;
                    const IpPrefix addr = *ex::parse_address(a, &problem);
                    ex::Peer p;
                    p.address = addr;
                    p.networks = ex::classify(set, profile, addr).networks;
                    const Decision want = snap->decide(spu, sdir, to_ip(addr), pr.proto, pr.port);
                    const ex::Decision got = ex::decide(set, profile, pu, dir, p, pr.proto, pr.port);
                    expect_same(set, *snap, want, got, dir,
                                set.processing_units[pu].id + " <-> " + a + " proto " +
                                    std::to_string(pr.proto) + "/" + std::to_string(pr.port));
                    ++n;
                }
            }
        }
    }
    // Address classes: PU, flags and networks as the snapshot's table says.
    for (const std::string &a : addresses) {
        std::string problem;
        const IpPrefix addr = *ex::parse_address(a, &problem);
        const ex::AddressFacts f = ex::classify(set, profile, addr);
        const AddressInfo info = snap->classify(to_ip(addr));
        EXPECT_EQ(f.pu < 0 ? kNone : snap->find_pu_by_id(set.processing_units[size_t(f.pu)].id),
                  info.pu)
            << a;
        EXPECT_EQ(!f.excluded.empty(), bool(info.flags & kExcluded)) << a;
        EXPECT_EQ(!f.managed_tcp.empty(), bool(info.flags & kManagedTcp)) << a;
        EXPECT_EQ(!f.managed_udp.empty(), bool(info.flags & kManagedUdp)) << a;
        EXPECT_EQ(!f.identity_required.empty(), bool(info.flags & kIdentityRequired)) << a;
        const auto nets = snap->networks_of(info.class_id);
        EXPECT_EQ(std::vector<uint32_t>(nets.begin(), nets.end()),
                  std::vector<uint32_t>(f.networks.begin(), f.networks.end()))
            << a;
    }
    return n;
}

TEST(Explain, SameDecisionsAsTheSnapshotOnTheExampleSet) {
    const PolicySet set = load_policy_dir(kExamples);
    const EnforcerProfile &prof = *resolve_profile(set, {"role=appliance", "site=dc1"}).profile;
    const int n = compare_all(set, prof,
                              {"10.1.0.7", "10.2.0.9", "10.3.0.4", "8.8.8.8", "1.1.1.1", "192.168.1.1",
                               "10.9.9.9", "203.0.113.5", "fd00::1", "2001:db8::1"});
    EXPECT_GT(n, 500);
}

// Random sets: PUs with random tags, rulesets with random subjects/objects/ports/actions/
// observation/fallback/disabled, networks with random entries (exclusions) and servicePorts.
TEST(Explain, SameDecisionsAsTheSnapshotOnRandomSets) {
    std::mt19937 rng(20261203);
    auto pick = [&](int n) { return int(rng() % unsigned(n)); };
    const char *keys[] = {"app", "env", "tier"};
    const char *values[] = {"a", "b", "c"};
    auto tag = [&] { return std::string(keys[pick(3)]) + "=" + values[pick(3)]; };
    auto pred = [&] {
        const std::string k = keys[pick(3)], v = values[pick(3)];
        switch (pick(6)) {
            case 0: return k + "!=" + v;
            case 1: return k + "=*";
            case 2: return k + "!=*";
            case 3: return std::string("$identity=externalnetwork");
            default: return k + "=" + v;
        }
    };
    const char *ports[] = {"tcp/80", "tcp/80:90", "tcp/443", "udp/53", "udp/5000:6000", "icmp/8/0",
                           "any", "gre"};
    int total = 0;
    for (int iter = 0; iter < 60; ++iter) {
        PolicySet set;
        set.ns.default_incoming = pick(2) ? RuleAction::kAllow : RuleAction::kReject;
        set.ns.default_outgoing = pick(2) ? RuleAction::kAllow : RuleAction::kReject;
        EnforcerProfile prof;
        prof.name = "p";
        prof.target_udp_networks = {"10.0.0.0/16"};
        if (pick(3) == 0) prof.ignore_expression = {{tag()}};
        set.enforcer_profiles.push_back(prof);
        for (int i = 0; i < 5; ++i) {
            ProcessingUnit pu;
            pu.id = "pu" + std::to_string(i);
            pu.name = "n" + std::to_string(i);
            for (int t = 0; t < 1 + pick(3); ++t) pu.associated_tags.push_back(tag());
            pu.addresses = {"10.0.0." + std::to_string(i + 1)};
            set.processing_units.push_back(pu);
        }
        for (int i = 0; i < 3; ++i) {
            ExternalNetwork net;
            net.name = "net" + std::to_string(i);
            net.associated_tags = {tag()};
            net.entries = {i == 0 ? "0.0.0.0/0" : "10.0." + std::to_string(i) + ".0/24"};
            if (pick(2) && i > 0) net.entries.push_back("!10.0." + std::to_string(i) + ".128/25");
            if (pick(2)) net.service_ports = {ports[pick(5)]};
            set.external_networks.push_back(net);
        }
        for (int i = 0; i < 4; ++i) {
            NetworkRuleSetPolicy p;
            p.name = "pol" + std::to_string(i);
            p.subject = {{tag()}};
            p.fallback = pick(4) == 0;
            p.disabled = pick(6) == 0;
            for (auto *rules : {&p.incoming_rules, &p.outgoing_rules}) {
                for (int r = 0; r < pick(5); ++r) {
                    NetworkRule nr;
                    nr.name = "r" + std::to_string(i) + "-" + std::to_string(r);
                    nr.action = pick(3) == 0 ? RuleAction::kReject : RuleAction::kAllow;
                    nr.observation_enabled = pick(3) == 0;
                    nr.object = {{pred()}};
                    if (pick(2)) nr.object.push_back({pred(), pred()});
                    nr.protocol_ports = {ports[pick(8)]};
                    if (nr.protocol_ports[0] != "any" && pick(2)) {
                        const std::string extra = ports[pick(6)];
                        if (extra != "any") nr.protocol_ports.push_back(extra);
                    }
                    rules->push_back(nr);
                }
            }
            set.network_policies.push_back(p);
        }
        validate(set);
        total += compare_all(set, prof, {"10.0.0.3", "10.0.1.7", "10.0.1.200", "10.0.2.9", "8.8.8.8"});
        if (HasFailure()) {
            ADD_FAILURE() << "random set " << iter << ":\n" << serialize_policy_set(set);
            return;
        }
    }
    EXPECT_GT(total, 10000);
}

PolicySet warn_set() {
    return parse_policy_set(R"({
      "enforcerprofiles": [{"name": "p", "targetNetworks": ["10.0.0.0/16"],
                            "targetUDPNetworks": ["10.0.1.0/24"]}],
      "processingunits": [
        {"ID": "a", "name": "a", "associatedTags": ["app=a"], "addresses": ["10.0.1.1"]},
        {"ID": "b", "name": "b", "associatedTags": ["app=b"], "addresses": ["10.0.2.1"]}],
      "externalnetworks": [
        {"name": "web", "associatedTags": ["net=web"], "entries": ["0.0.0.0/0"],
         "servicePorts": ["tcp/443"]}],
      "networkrulesetpolicies": [
        {"name": "pa", "subject": [["app=a"]], "outgoingRules": [
          {"name": "ping-b", "object": [["app=b"]], "protocolPorts": ["icmp/8/0"]},
          {"name": "udp-b", "object": [["app=b"]], "protocolPorts": ["udp/9000"]},
          {"name": "web", "object": [["net=web"]], "protocolPorts": ["tcp/80", "tcp/443"]}]}]
    })");
}

TEST(Explain, WarnsAboutRulesThatCanNeverFire) {
    const PolicySet set = warn_set();
    const auto w = ex::policy_warnings(set, set.enforcer_profiles[0]);
    auto has = [&](const std::string &rule, const std::string &text) {
        for (const auto &s : w)
            if (s.find(rule) != std::string::npos && s.find(text) != std::string::npos) return true;
        return false;
    };
    EXPECT_TRUE(has("\"ping-b\"", "ICMP carries no identity"));
    EXPECT_TRUE(has("\"udp-b\"", "outside the profile's targetUDPNetworks"));
    EXPECT_TRUE(has("\"web\"", "differs from the Console"));
    EXPECT_TRUE(has("\"web\"", "tcp/80"));
    EXPECT_FALSE(has("\"web\"", "tcp/443 never"));
    // b's address is managed for TCP: no TCP warning for it.
    EXPECT_FALSE(has("\"udp-b\"", "targetNetworks,"));
}

TEST(Explain, FlowPathsThroughTwoEnforcers) {
    PolicySet set = warn_set();
    set.processing_units[0].enforcer_id = "ea";
    set.processing_units[1].enforcer_id = "eb";
    set.network_policies[0].outgoing_rules.push_back(
        NetworkRule{RuleAction::kAllow, {{"app=b"}}, {"tcp/8000"}, false, false, "to-b"});
    NetworkRuleSetPolicy pb;
    pb.name = "pb";
    pb.subject = {{"app=b"}};
    pb.incoming_rules = {NetworkRule{RuleAction::kAllow, {{"app=a"}}, {"tcp/8000"}, false, false, "from-a"}};
    set.network_policies.push_back(pb);
    validate(set);
    const ex::View v{&set, &set.enforcer_profiles[0], ""};
    auto run = [&](const std::string &src, const std::string &dst, uint8_t proto, uint16_t port) {
        std::string problem;
        ex::Flow f{*ex::parse_address(src, &problem), *ex::parse_address(dst, &problem), proto, port, ""};
        return ex::explain_flow(v, f, [&](const std::string &id) {
            return ex::View{&set, &set.enforcer_profiles[0], id};
        });
    };
    ex::Explanation x = run("10.0.1.1", "10.0.2.1", 6, 8000);
    EXPECT_EQ(x.verdict, ex::Verdict::kAccept);
    EXPECT_EQ(x.source.path, "identity");
    EXPECT_EQ(x.destination.path, "identity");
    ASSERT_TRUE(x.destination.decision);
    EXPECT_EQ(x.destination.decision->reason, "rule");
    // Port 8001: the destination refuses by its namespace default before the source decides.
    x = run("10.0.1.1", "10.0.2.1", 6, 8001);
    EXPECT_EQ(x.verdict, ex::Verdict::kReject);
    EXPECT_EQ(x.decided_by, "destination");
    EXPECT_FALSE(x.source.decision);
    // Claims bound to the wrong enforcer: refused at the destination.
    PolicySet moved = set;
    moved.processing_units[0].enforcer_id = "elsewhere";
    std::string problem;
    x = ex::explain_with(v, ex::Flow{*ex::parse_address("10.0.1.1", &problem),
                                     *ex::parse_address("10.0.2.1", &problem), 6, 8000, ""},
                         ex::View{&set, &set.enforcer_profiles[0], "ea"},
                         ex::View{&moved, &moved.enforcer_profiles[0], "eb"});
    EXPECT_EQ(x.destination.path, "refuse");
    EXPECT_EQ(x.destination.drop_reason, "claims-pu-not-hosted");
    // A PU hosted by a group (docs/scale-out.md): a member's claims (its certificate carries the
    // group) bind; an enforcer outside the group is refused as the dataplane refuses it.
    PolicySet grouped = set;
    grouped.processing_units[0].enforcer_id = "group:edge";
    const ex::Flow gf{*ex::parse_address("10.0.1.1", &problem),
                      *ex::parse_address("10.0.2.1", &problem), 6, 8000, ""};
    x = ex::explain_with(v, gf, ex::View{&set, &set.enforcer_profiles[0], "gw-1", "edge"},
                         ex::View{&grouped, &grouped.enforcer_profiles[0], "eb", ""});
    EXPECT_EQ(x.destination.path, "identity");
    x = ex::explain_with(v, gf, ex::View{&set, &set.enforcer_profiles[0], "group:edge", "edge"},
                         ex::View{&grouped, &grouped.enforcer_profiles[0], "eb", ""});
    EXPECT_EQ(x.destination.path, "identity");
    x = ex::explain_with(v, gf, ex::View{&set, &set.enforcer_profiles[0], "gw-9", ""},
                         ex::View{&grouped, &grouped.enforcer_profiles[0], "eb", ""});
    EXPECT_EQ(x.destination.path, "refuse");
    EXPECT_EQ(x.destination.drop_reason, "claims-pu-not-hosted");
    x = ex::explain_with(v, gf, ex::View{&set, &set.enforcer_profiles[0], "gw-8", "core"},
                         ex::View{&grouped, &grouped.enforcer_profiles[0], "eb", ""});
    EXPECT_EQ(x.destination.drop_reason, "claims-pu-not-hosted");
    // An address outside targetNetworks: the source decides by address, first.
    x = run("10.0.1.1", "192.0.2.1", 6, 80);
    EXPECT_EQ(x.source.path, "address");
    EXPECT_EQ(x.destination.path, "absent");
    // ICMP: by address on both sides.
    x = run("10.0.1.1", "10.0.2.1", 1, icmp_key(8, 0));
    EXPECT_EQ(x.source.path, "address");
}

}  // namespace
}  // namespace segwire::policy
