// Offline policy explanation (`segwirectl explain`, docs/explain.md): what each enforcer on a
// flow's path decides for it, and why, from the policy model alone (no DPDK, no running enforcer).
//
// The decision semantics are the snapshot's (dataplane/policy/snapshot.cpp, evaluate) and the
// path is the identity machines' (dataplane/identity/{tcp,udp,plain}_impl.hpp, classify): which
// enforcer passes the flow untouched, which decides by identity and which by address. The engine
// test (tests/unit/policy/test_explain.cpp) holds the rule evaluation to the compiled snapshot's
// over a matrix of PUs, networks and ports, and tests/integration/test_explain.py holds the whole
// explanation to two real enforcers' flow reports.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "config/policy/model.hpp"

namespace segwire::policy::explain {

// A full-length address (/32 or /128) as an IpPrefix.
std::optional<IpPrefix> parse_address(const std::string &text, std::string *problem);

// What one enforcer's policy says about one address (the compiled snapshot's address class).
struct AddressFacts {
    int pu = -1;  // index into set.processing_units of the longest PU prefix covering it
    std::string pu_prefix;
    std::string excluded, managed_tcp, managed_udp, identity_required, l4, automode;  // the prefix
                                                                                    // that set it
    std::vector<size_t> networks;  // external networks containing it (index), `!` exclusions out
};
AddressFacts classify(const PolicySet &set, const EnforcerProfile &profile, const IpPrefix &addr);

// How the peer is known to the deciding side.
struct Peer {
    bool by_identity = false;       // a verified PU: its record's tags
    int pu = -1;                    // the peer PU (by identity) in this side's set
    std::vector<std::string> tags;  // by identity
    IpPrefix address;               // by address: networks containing it
    std::vector<size_t> networks;
};

// One rule as evaluated, with why it did not match.
struct RuleTrace {
    size_t policy = 0;  // index into set.network_policies
    size_t rule = 0;    // index into its incoming/outgoing rules
    bool fallback = false;
    bool ports_match = false;
    bool object_match = false;
    std::string why_not;  // empty when it matched
    std::vector<std::string> via_networks;  // by address: the networks through which it matched
};

// A ruleset that does not select the local PU but has a rule that would have matched.
struct NearMiss {
    size_t policy = 0;
    size_t rule = 0;
    std::string why_not;  // the subject predicate the local PU fails, or "disabled", ...
};

enum class Verdict : uint8_t { kAccept, kReject, kNotApplicable };
const char *to_string(Verdict v);

struct Decision {
    Verdict action = Verdict::kReject;
    Verdict observed_action = Verdict::kNotApplicable;
    std::string reason;  // "rule", "default", "ignored-pu"
    int policy = -1, rule = -1, observed_policy = -1, observed_rule = -1;
    std::vector<RuleTrace> rules;  // every rule of the PU's list for the direction, in order
    std::vector<NearMiss> near_misses;
};

enum class Direction : uint8_t { kIncoming = 0, kOutgoing = 1 };

// The snapshot's decide(): rules of the rulesets selecting `pu` (fallback ones when no regular
// one has rules for the direction), first of each class, observe-reject → reject → observe-accept
// → accept → namespace default. `port` is the destination port or icmp_key(type, code).
Decision decide(const PolicySet &set, const EnforcerProfile &profile, size_t pu, Direction dir,
                const Peer &peer, uint8_t proto, uint16_t port);

// One enforcer's part in a flow.
struct Side {
    std::string role;         // "source" | "destination"
    std::string enforcer_id;  // the enforcer hosting the PU (its enforcerID), or empty
    std::string profile;      // its enforcerprofile's name
    std::string bundle_version;
    int local_pu = -1;
    // What it does: "pass" (not its flow: excluded, no PU, ignored), "identity" (decides on the
    // peer's verified identity), "address" (the ACL over external networks), "refuse" (refused
    // before any rule: identity-required, claims not bound), "absent" (no enforcer there).
    std::string path;
    std::string why;            // a sentence: why this path
    std::string mode;           // identity exchange: "v1", "l4", "l4-auto", "udp" (identity path)
    std::string drop_reason;    // set when refused before or by the rules (policy-reject, ...)
    Direction direction = Direction::kOutgoing;
    std::optional<Decision> decision;
    AddressFacts local_facts, peer_facts;  // as this side's profile classifies both ends
};

struct Flow {
    IpPrefix src, dst;
    uint8_t proto = 6;
    uint16_t port = 0;  // destination port, or icmp_key
    std::string proto_name;
};

// The inputs of one side: its enforcer's view (the bundle it enforces, with its resolved profile).
struct View {
    const PolicySet *set = nullptr;
    const EnforcerProfile *profile = nullptr;
    // The PU's enforcerID: one enforcer, or "group:NAME" (any member of the group speaks).
    std::string enforcer_id;
    // The group the signer's certificate carries ("" none): with enforcer_id naming one member,
    // its claims bind a PU hosted by "group:<it>" as the dataplane binds them (docs/scale-out.md).
    std::string enforcer_group;
};

struct Explanation {
    Flow flow;
    Side source, destination;
    Verdict verdict = Verdict::kReject;  // the connection as the two ends see it
    std::string decided_by;              // "source" | "destination" | "" (nobody: passed)
    std::vector<std::string> warnings;   // about the rules involved and the whole policy
};

// `view_of(enforcer_id)`: that enforcer's view, or a View with set == nullptr when unknown (the
// side is then explained as absent). `any` is the view used to find who hosts each address.
template <class F>
Explanation explain_flow(const View &any, const Flow &flow, F &&view_of);

// The non-template core (explain_flow forwards to it).
Explanation explain_with(const View &any, const Flow &flow, const View &src_view,
                         const View &dst_view);

template <class F>
Explanation explain_flow(const View &any, const Flow &flow, F &&view_of) {
    std::string src_enf, dst_enf;
    for (const IpPrefix *a : {&flow.src, &flow.dst}) {
        const AddressFacts f = classify(*any.set, *any.profile, *a);
        std::string &e = a == &flow.src ? src_enf : dst_enf;
        if (f.pu >= 0) e = any.set->processing_units[size_t(f.pu)].enforcer_id;
    }
    return explain_with(any, flow, src_enf.empty() ? View{} : view_of(src_enf),
                        dst_enf.empty() ? View{} : view_of(dst_enf));
}

// Policy-wide warnings: rules that can never fire as written (ICMP ports towards PU-only
// objects, UDP/TCP rules between PUs outside the managed networks), departures from the Console
// (an external network's servicePorts narrowing a rule's ports), and external networks over
// managed ones (also the compiler's warning).
std::vector<std::string> policy_warnings(const PolicySet &set, const EnforcerProfile &profile);

// External-network entries overlapping the profile's managed networks (not covered by
// identityRequiredNetworks): the compiler logs these too (control/policy/compile.cpp).
std::vector<std::string> overlap_warnings(const PolicySet &set, const EnforcerProfile &profile);

// Human-readable labels.
std::string rule_label(const PolicySet &set, size_t policy, size_t rule, Direction dir);

}  // namespace segwire::policy::explain
