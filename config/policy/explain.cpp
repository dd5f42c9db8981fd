// segwirectl explain's engine: config/policy/explain.hpp. Mirrors the compiled snapshot's address
// classes and decide(), and the identity machines' classify(); see docs/explain.md.
#include "config/policy/explain.hpp"

#include <algorithm>
#include <set>

namespace segwire::policy::explain {

namespace {

const char *rules_field(Direction d) {
    return d == Direction::kIncoming ? "incomingRules" : "outgoingRules";
}

const std::vector<NetworkRule> &rules_of(const NetworkRuleSetPolicy &p, Direction d) {
    return d == Direction::kIncoming ? p.incoming_rules : p.outgoing_rules;
}

ParsedExpression parsed(const TagExpression &e) {
    ParsedExpression out;
    std::string where, problem;
    parse_tag_expression(e, &out, &where, &problem);  // validated sets parse
    return out;
}

std::vector<PortRange> ranges_of(const std::vector<std::string> &ports) {
    std::vector<PortRange> out;
    size_t bad;
    std::string problem;
    parse_protocol_ports(ports, &out, &bad, &problem);
    return out;
}

std::string join(const std::vector<std::string> &v, const char *sep = ", ") {
    std::string s;
    for (const auto &x : v) s += (s.empty() ? "" : sep) + x;
    return s;
}

std::string proto_port(uint8_t proto, uint16_t port) {
    switch (proto) {
        case kProtoTcp:
            return "tcp/" + std::to_string(port);
        case kProtoUdp:
            return "udp/" + std::to_string(port);
        case kProtoIcmp:
        case kProtoIcmp6:
            return std::string(proto == kProtoIcmp ? "icmp/" : "icmp6/") +
                   std::to_string(port >> 8) + "/" + std::to_string(port & 0xff);
        default:
            return "proto " + std::to_string(proto);
    }
}

std::string pred_text(const TagPredicate &p) {
    switch (p.op) {
        case TagOp::kEqual:
            return p.key + "=" + p.value;
        case TagOp::kNotEqual:
            return p.key + "!=" + p.value;
        case TagOp::kPrefix:
            return p.key + "=" + p.value + "*";
        case TagOp::kNotPrefix:
            return p.key + "!=" + p.value + "*";
        case TagOp::kExists:
            return p.key + "=*";
        case TagOp::kAbsent:
            return p.key + "!=*";
    }
    return "?";
}

// Why `p` fails on `tags`: the predicate and what the tags say of its key.
std::string pred_failure(const TagPredicate &p, const std::vector<std::string> &tags) {
    std::vector<std::string> same_key;
    for (const std::string &t : tags)
        if (t.size() > p.key.size() && t.compare(0, p.key.size(), p.key) == 0 &&
            t[p.key.size()] == '=')
            same_key.push_back(t);
    std::string have = same_key.empty() ? "no " + p.key + " tag" : "has " + join(same_key);
    if ((p.op == TagOp::kNotEqual || p.op == TagOp::kNotPrefix) && same_key.empty())
        have += " (a negation needs the key: absence is no evidence)";
    return "needs " + pred_text(p) + ", " + have;
}

// The first failing predicate of each clause.
std::string expr_failure(const ParsedExpression &e, const std::vector<std::string> &tags) {
    std::vector<std::string> parts;
    for (size_t c = 0; c < e.size(); ++c) {
        for (const TagPredicate &p : e[c]) {
            if (predicate_matches(p, tags)) continue;
            parts.push_back((e.size() > 1 ? "clause " + std::to_string(c + 1) + " " : "") +
                            pred_failure(p, tags));
            break;
        }
    }
    return join(parts, "; ");
}

// An address without its /32 or /128.
std::string host(const IpPrefix &a) {
    std::string s = a.str();
    return a.len == a.max_len() ? s.substr(0, s.find('/')) : s;
}

bool ranges_admit(const std::vector<PortRange> &r, uint8_t proto, uint16_t port) {
    return port_ranges_match(r, proto, port);
}

std::string ports_text(const std::vector<std::string> &ports) { return "[" + join(ports) + "]"; }

bool contains(const std::string &text, const IpPrefix &addr) {
    IpPrefix p;
    std::string problem;
    return parse_prefix(text, &p, &problem) && p.contains(addr);
}

std::string first_containing(const std::vector<std::string> &list, const IpPrefix &addr) {
    for (const std::string &s : list)
        if (contains(s, addr)) return s;
    return "";
}

int find_pu(const PolicySet &set, const std::string &id) {
    for (size_t i = 0; i < set.processing_units.size(); ++i)
        if (set.processing_units[i].id == id) return int(i);
    return -1;
}

std::string pu_label(const PolicySet &set, int pu) {
    if (pu < 0) return "(none)";
    const ProcessingUnit &p = set.processing_units[size_t(pu)];
    return "\"" + p.name + "\" (" + p.id + ")";
}

}  // namespace

const char *to_string(Verdict v) {
    switch (v) {
        case Verdict::kAccept:
            return "Accept";
        case Verdict::kReject:
            return "Reject";
        case Verdict::kNotApplicable:
            break;
    }
    return "NotApplicable";
}

std::optional<IpPrefix> parse_address(const std::string &text, std::string *problem) {
    IpPrefix p;
    if (!parse_prefix(text, &p, problem)) return std::nullopt;
    if (p.len != p.max_len()) {
        *problem = "an address, not a prefix, is needed: " + text;
        return std::nullopt;
    }
    return p;
}

AddressFacts classify(const PolicySet &set, const EnforcerProfile &profile, const IpPrefix &addr) {
    AddressFacts f;
    int best = -1;
    for (size_t i = 0; i < set.processing_units.size(); ++i) {
        for (const std::string &a : set.processing_units[i].addresses) {
            IpPrefix p;
            std::string problem;
            if (!parse_prefix(a, &p, &problem) || !p.contains(addr) || int(p.len) <= best) continue;
            best = p.len;
            f.pu = int(i);
            f.pu_prefix = a;
        }
    }
    f.excluded = first_containing(profile.excluded_networks, addr);
    f.managed_tcp = first_containing(profile.effective_target_networks(), addr);
    f.managed_udp = first_containing(profile.target_udp_networks, addr);
    f.identity_required = first_containing(profile.identity_required_networks, addr);
    f.l4 = first_containing(profile.l4_target_networks, addr);
    f.automode = first_containing(profile.auto_target_networks, addr);
    // Per network, its deepest entry containing the address decides; at equal depth an exclusion
    // wins (the compiler sorts includes before excludes of the same prefix).
    for (size_t n = 0; n < set.external_networks.size(); ++n) {
        int depth = -1;
        bool in = false;
        for (const std::string &text : set.external_networks[n].entries) {
            NetworkEntry e;
            std::string problem;
            if (!parse_network_entry(text, &e, &problem) ||
                e.kind == NetworkEntry::Kind::kHostname || !e.prefix.contains(addr))
                continue;
            const bool include = e.kind == NetworkEntry::Kind::kInclude;
            if (int(e.prefix.len) > depth) {
                depth = e.prefix.len;
                in = include;
            } else if (int(e.prefix.len) == depth && !include) {
                in = false;
            }
        }
        if (in) f.networks.push_back(n);
    }
    return f;
}

std::string rule_label(const PolicySet &set, size_t policy, size_t rule, Direction dir) {
    const NetworkRuleSetPolicy &p = set.network_policies[policy];
    const NetworkRule &r = rules_of(p, dir)[rule];
    return "networkrulesetpolicy \"" + p.name + "\" " + rules_field(dir) + "[" +
           std::to_string(rule) + "]" + (r.name.empty() ? "" : " \"" + r.name + "\"");
}

Decision decide(const PolicySet &set, const EnforcerProfile &profile, size_t pu, Direction dir,
                const Peer &peer, uint8_t proto, uint16_t port) {
    Decision d;
    const ProcessingUnit &local = set.processing_units.at(pu);
    const std::vector<std::string> local_tags = effective_tags(local);
    if (!profile.ignore_expression.empty() &&
        expression_matches(parsed(profile.ignore_expression), local_tags)) {
        d.action = Verdict::kAccept;
        d.reason = "ignored-pu";
        return d;
    }
    // The rulesets selecting the PU; fallback ones only when no regular one has rules for the
    // direction (compile_pus).
    std::vector<size_t> selected[2];
    for (size_t p = 0; p < set.network_policies.size(); ++p) {
        const NetworkRuleSetPolicy &np = set.network_policies[p];
        if (!np.disabled && expression_matches(parsed(np.subject), local_tags))
            selected[np.fallback ? 1 : 0].push_back(p);
    }
    struct Item {
        size_t policy, rule;
        bool fallback;
    };
    std::vector<Item> items;
    for (int fb = 0; fb < 2 && items.empty(); ++fb)
        for (size_t p : selected[fb])
            for (size_t r = 0; r < rules_of(set.network_policies[p], dir).size(); ++r)
                items.push_back({p, r, fb == 1});

    // Object match for the peer: its tags, or an external network containing its address whose
    // servicePorts admit the port.
    auto object_match = [&](const NetworkRule &r, RuleTrace &t) {
        const ParsedExpression obj = parsed(r.object);
        if (peer.by_identity) {
            if (expression_matches(obj, peer.tags)) return true;
            t.why_not = "object: the peer " + pu_label(set, peer.pu) + " " +
                        expr_failure(obj, peer.tags);
            return false;
        }
        if (peer.networks.empty()) {
            t.why_not = "object: no external network contains " + host(peer.address) +
                        " (a peer without identity is named only through external networks)";
            return false;
        }
        std::vector<std::string> why;
        for (size_t n : peer.networks) {
            const ExternalNetwork &net = set.external_networks[n];
            const std::vector<std::string> tags = effective_tags(net);
            if (!expression_matches(obj, tags)) {
                why.push_back("network \"" + net.name + "\" " + expr_failure(obj, tags));
                continue;
            }
            if (!net.service_ports.empty() &&
                !ranges_admit(ranges_of(net.service_ports), proto, port)) {
                why.push_back("network \"" + net.name + "\" is selected but its servicePorts " +
                              ports_text(net.service_ports) + " do not admit " +
                              proto_port(proto, port));
                continue;
            }
            t.via_networks.push_back(net.name);
        }
        if (!t.via_networks.empty()) return true;
        t.why_not = "object: " + join(why, "; ");
        return false;
    };

    const RuleTrace *reject = nullptr, *accept = nullptr, *obs_reject = nullptr,
                    *obs_accept = nullptr;
    d.rules.reserve(items.size());
    for (const Item &it : items) {
        const NetworkRule &r = rules_of(set.network_policies[it.policy], dir)[it.rule];
        RuleTrace t;
        t.policy = it.policy;
        t.rule = it.rule;
        t.fallback = it.fallback;
        t.ports_match = ranges_admit(ranges_of(r.protocol_ports), proto, port);
        if (!t.ports_match)
            t.why_not = "protocolPorts " + ports_text(r.protocol_ports) + " do not admit " +
                        proto_port(proto, port);
        else
            t.object_match = object_match(r, t);
        d.rules.push_back(std::move(t));
    }
    for (size_t i = 0; i < d.rules.size(); ++i) {
        const RuleTrace &t = d.rules[i];
        if (!t.ports_match || !t.object_match) continue;
        const NetworkRule &r = rules_of(set.network_policies[t.policy], dir)[t.rule];
        const RuleTrace *&slot = r.observation_enabled
                                     ? (r.action == RuleAction::kReject ? obs_reject : obs_accept)
                                     : (r.action == RuleAction::kReject ? reject : accept);
        if (!slot) slot = &t;
    }
    if (obs_reject) {
        d.observed_action = Verdict::kReject;
        d.observed_policy = int(obs_reject->policy);
        d.observed_rule = int(obs_reject->rule);
    }
    const RuleTrace *decisive = nullptr;
    if (reject) {
        decisive = reject;
        d.action = Verdict::kReject;
    } else {
        if (!obs_reject && obs_accept) {
            d.observed_action = Verdict::kAccept;
            d.observed_policy = int(obs_accept->policy);
            d.observed_rule = int(obs_accept->rule);
        }
        if (accept) {
            decisive = accept;
            d.action = Verdict::kAccept;
        }
    }
    if (decisive) {
        d.reason = "rule";
        d.policy = int(decisive->policy);
        d.rule = int(decisive->rule);
    } else {
        d.reason = "default";
        const RuleAction def =
            dir == Direction::kIncoming ? set.ns.default_incoming : set.ns.default_outgoing;
        d.action = def == RuleAction::kAllow ? Verdict::kAccept : Verdict::kReject;
    }

    // The nearest others: rules whose ports and object match but whose ruleset does not apply to
    // this PU (its subject, disabled, or a fallback ruleset left out).
    for (size_t p = 0; p < set.network_policies.size() && d.near_misses.size() < 8; ++p) {
        const NetworkRuleSetPolicy &np = set.network_policies[p];
        const bool in_list = std::any_of(items.begin(), items.end(),
                                         [&](const Item &it) { return it.policy == p; });
        if (in_list) continue;
        for (size_t r = 0; r < rules_of(np, dir).size(); ++r) {
            const NetworkRule &rule = rules_of(np, dir)[r];
            RuleTrace t;
            if (!ranges_admit(ranges_of(rule.protocol_ports), proto, port) ||
                !object_match(rule, t))
                continue;
            NearMiss m{p, r, ""};
            const ParsedExpression subj = parsed(np.subject);
            if (np.disabled)
                m.why_not = "the ruleset is disabled";
            else if (!expression_matches(subj, local_tags))
                m.why_not = "subject: the local PU " + pu_label(set, int(pu)) + " " +
                            expr_failure(subj, local_tags);
            else
                m.why_not = "a fallback ruleset: regular rulesets selecting the PU have " +
                            std::string(rules_field(dir));
            d.near_misses.push_back(std::move(m));
        }
    }
    return d;
}

std::vector<std::string> overlap_warnings(const PolicySet &set, const EnforcerProfile &profile) {
    std::vector<std::string> out;
    auto prefixes = [](const std::vector<std::string> &list) {
        std::vector<IpPrefix> v;
        for (const std::string &s : list) {
            IpPrefix p;
            std::string problem;
            if (parse_prefix(s, &p, &problem)) v.push_back(p);
        }
        return v;
    };
    std::vector<std::pair<IpPrefix, const char *>> managed;
    for (const IpPrefix &p : prefixes(profile.effective_target_networks()))
        managed.emplace_back(p, "tcp");
    for (const IpPrefix &p : prefixes(profile.target_udp_networks)) managed.emplace_back(p, "udp");
    const std::vector<IpPrefix> required = prefixes(profile.identity_required_networks);
    const auto &nets = set.external_networks;
    for (size_t i = 0; i < nets.size(); ++i) {
        for (const std::string &text : nets[i].entries) {
            NetworkEntry e;
            std::string problem;
            if (!parse_network_entry(text, &e, &problem) || e.kind != NetworkEntry::Kind::kInclude)
                continue;
            for (const auto &[m, proto] : managed) {
                if (!m.contains(e.prefix) && !e.prefix.contains(m)) continue;
                const IpPrefix &inner = m.contains(e.prefix) ? e.prefix : m;
                bool covered = false;
                for (const IpPrefix &r : required) covered = covered || r.contains(inner);
                if (covered) continue;
                out.push_back(object_label("externalnetwork", nets[i].name, nets[i].id, i) +
                              " entry " + e.prefix.str() + " overlaps the managed " + proto +
                              " network " + m.str() + ": peers in " + inner.str() +
                              " without identity are decided by this network's rules; list " +
                              inner.str() + " in identityRequiredNetworks to refuse them");
            }
        }
    }
    return out;
}

std::vector<std::string> policy_warnings(const PolicySet &set, const EnforcerProfile &profile) {
    std::vector<std::string> out;
    std::vector<std::vector<std::string>> net_tags, pu_tags;
    for (const ExternalNetwork &n : set.external_networks) net_tags.push_back(effective_tags(n));
    for (const ProcessingUnit &p : set.processing_units) pu_tags.push_back(effective_tags(p));
    // Whether every address of a PU lies in one of `managed` (a PU without addresses: unknown).
    auto outside = [&](size_t pu, const std::vector<std::string> &managed) {
        const ProcessingUnit &p = set.processing_units[pu];
        if (p.addresses.empty()) return false;
        for (const std::string &a : p.addresses) {
            IpPrefix pa;
            std::string problem;
            if (!parse_prefix(a, &pa, &problem)) continue;
            for (const std::string &m : managed) {
                IpPrefix pm;
                if (parse_prefix(m, &pm, &problem) && pm.contains(pa)) return false;
            }
        }
        return true;
    };
    for (size_t pi = 0; pi < set.network_policies.size(); ++pi) {
        const NetworkRuleSetPolicy &np = set.network_policies[pi];
        if (np.disabled) continue;
        const ParsedExpression subj = parsed(np.subject);
        for (Direction dir : {Direction::kIncoming, Direction::kOutgoing}) {
            const auto &rules = rules_of(np, dir);
            for (size_t ri = 0; ri < rules.size(); ++ri) {
                const NetworkRule &r = rules[ri];
                const std::string label = rule_label(set, pi, ri, dir);
                const ParsedExpression obj = parsed(r.object);
                const std::vector<PortRange> ranges = ranges_of(r.protocol_ports);
                std::vector<size_t> nets, obj_pus, subj_pus;
                for (size_t n = 0; n < net_tags.size(); ++n)
                    if (expression_matches(obj, net_tags[n])) nets.push_back(n);
                for (size_t p = 0; p < pu_tags.size(); ++p) {
                    if (expression_matches(obj, pu_tags[p])) obj_pus.push_back(p);
                    if (expression_matches(subj, pu_tags[p])) subj_pus.push_back(p);
                }
                bool icmp = false, udp = false, tcp = false;
                for (const PortRange &pr : ranges) {
                    icmp = icmp || pr.proto == kProtoIcmp || pr.proto == kProtoIcmp6;
                    udp = udp || pr.proto == kProtoUdp;
                    tcp = tcp || pr.proto == kProtoTcp;
                }
                if (icmp && nets.empty() && !obj_pus.empty())
                    out.push_back(label +
                                  ": its ICMP ports can never match: the object selects only "
                                  "processing units and ICMP carries no identity (it is decided "
                                  "by address, through external networks)");
                // The server's address must be managed by the client's enforcer for the
                // handshake to run (here: this profile); otherwise the flow is decided by address
                // and a PU-only object never matches it.
                struct Managed {
                    bool on;
                    const std::vector<std::string> *list;
                    const char *name, *field;
                };
                const Managed kinds[] = {
                    {udp, &profile.target_udp_networks, "UDP", "targetUDPNetworks"},
                    {tcp, &profile.effective_target_networks(), "TCP", "targetNetworks"}};
                for (const auto &[on, managed, name, field] : kinds) {
                    if (!on || !nets.empty()) continue;
                    const std::vector<size_t> &servers =
                        dir == Direction::kOutgoing ? obj_pus : subj_pus;
                    std::vector<std::string> names;
                    for (size_t p : servers)
                        if (outside(p, *managed)) names.push_back(set.processing_units[p].name);
                    if (!names.empty())
                        out.push_back(label + ": its " + name + " ports never match towards " +
                                      join(names) + ": outside the profile's " + field +
                                      ", so no identity handshake runs and the flow is decided by "
                                      "address");
                }
                // servicePorts narrow what a rule admits from a network (the Console's model
                // treats them as the network's services; segwire requires both).
                for (size_t n : nets) {
                    const ExternalNetwork &net = set.external_networks[n];
                    if (net.service_ports.empty()) continue;
                    const std::vector<PortRange> svc = ranges_of(net.service_ports);
                    std::vector<std::string> beyond;
                    for (size_t k = 0; k < ranges.size(); ++k) {
                        const PortRange &pr = ranges[k];
                        bool covered = false;
                        for (const PortRange &s : svc)
                            covered = covered || ((s.proto == pr.proto || s.proto == kAnyProtocol) &&
                                                  s.lo <= pr.lo && s.hi >= pr.hi);
                        if (!covered) beyond.push_back(pr.proto == kAnyProtocol
                                                           ? std::string("any")
                                                           : proto_port(uint8_t(pr.proto), pr.lo) +
                                                                 (pr.hi != pr.lo ? ":" + std::to_string(pr.hi) : ""));
                    }
                    if (!beyond.empty())
                        out.push_back(label + ": differs from the Console: external network \"" +
                                      net.name + "\" has servicePorts " +
                                      ports_text(net.service_ports) +
                                      ", and segwire matches it only on those, so this rule's " +
                                      join(beyond) + " never match through it");
                }
            }
        }
    }
    for (std::string &w : overlap_warnings(set, profile)) out.push_back(std::move(w));
    return out;
}

namespace {

// The source's or destination's enforcer: does it pass the flow untouched?
bool passes(const View &v, Side &s, const IpPrefix &local_addr, const IpPrefix &peer_addr) {
    s.local_facts = classify(*v.set, *v.profile, local_addr);
    s.peer_facts = classify(*v.set, *v.profile, peer_addr);
    s.local_pu = s.local_facts.pu;
    if (!s.local_facts.excluded.empty() || !s.peer_facts.excluded.empty()) {
        s.path = "pass";
        s.why = "excludedNetworks " +
                (s.local_facts.excluded.empty() ? s.peer_facts.excluded : s.local_facts.excluded) +
                ": the flow is not touched";
        return true;
    }
    if (s.local_pu < 0) {
        s.path = "pass";
        s.why = "no processing unit covers " + host(local_addr) + ": the flow is not touched";
        return true;
    }
    const ProcessingUnit &pu = v.set->processing_units[size_t(s.local_pu)];
    if (!v.profile->ignore_expression.empty() &&
        expression_matches(parsed(v.profile->ignore_expression), effective_tags(pu))) {
        s.path = "pass";
        s.why = "the processing unit matches the profile's ignoreExpression";
        return true;
    }
    return false;
}

// A peer known by its claims, as this side's set binds them: the PU exists, is hosted by the
// enforcer that signed, and covers the address (docs/policy.md "Who may speak for a PU").
bool bind_peer(const View &v, const std::string &pu_id, const std::string &signer,
               const std::string &signer_group, const IpPrefix &addr, Peer &peer,
               std::string &refusal) {
    const int pu = find_pu(*v.set, pu_id);
    if (pu < 0) {
        refusal = "claims-unknown-pu";
        return false;
    }
    const ProcessingUnit &p = v.set->processing_units[size_t(pu)];
    // As SlowPath::bind (crypto::hosts_pu): the signer itself, or the group its certificate
    // carries. A View for a "group:NAME" PU signs as the group (any member).
    const bool hosted = p.enforcer_id == signer ||
                        (!signer_group.empty() && p.enforcer_id == "group:" + signer_group);
    if (!hosted) {
        refusal = "claims-pu-not-hosted";
        return false;
    }
    bool covers = false;
    for (const std::string &a : p.addresses) covers = covers || contains(a, addr);
    if (!covers) {
        refusal = "claims-address-mismatch";
        return false;
    }
    peer.by_identity = true;
    peer.pu = pu;
    peer.tags = effective_tags(p);
    return true;
}

// A side decided on the peer's claims: bound in this side's policy, then its rules; or refused.
// `peer_pu`: the peer's PU in its own enforcer's set; `what`: "source" or "destination".
void decide_on_claims(const View &v, Side &side, const View &peer_view, int peer_pu,
                      const IpPrefix &peer_addr, const Flow &flow, Direction dir,
                      const std::string &what, const std::string &prefix) {
    Peer peer;
    std::string refusal;
    const ProcessingUnit &ppu = peer_view.set->processing_units[size_t(peer_pu)];
    if (!bind_peer(v, ppu.id, peer_view.enforcer_id, peer_view.enforcer_group, peer_addr, peer,
                   refusal)) {
        side.path = "refuse";
        side.drop_reason = refusal;
        side.why = "the " + what + "'s claims for PU " + ppu.id + " signed by " +
                   peer_view.enforcer_id + " do not bind in this enforcer's policy (" + refusal +
                   ")";
        return;
    }
    side.path = "identity";
    side.why = prefix + "the " + what + " proves PU " + pu_label(*v.set, peer.pu) + " hosted by " +
               peer_view.enforcer_id + ": decided on that record's tags";
    side.decision =
        decide(*v.set, *v.profile, size_t(side.local_pu), dir, peer, flow.proto, flow.port);
    if (side.decision->action == Verdict::kReject) side.drop_reason = "policy-reject";
}

Peer by_address(const IpPrefix &addr, const AddressFacts &facts) {
    Peer p;
    p.address = addr;
    p.networks = facts.networks;
    return p;
}

// The ACL (decide by address), or identity-required's refusal when the peer's network requires
// identity for this protocol.
void acl(const View &v, Side &s, const IpPrefix &peer_addr, const Flow &flow, Direction dir,
         const std::string &why) {
    s.direction = dir;
    const bool managed = flow.proto == kProtoTcp   ? !s.peer_facts.managed_tcp.empty()
                         : flow.proto == kProtoUdp ? !s.peer_facts.managed_udp.empty()
                                                   : false;
    if (managed && !s.peer_facts.identity_required.empty()) {
        s.path = "refuse";
        s.drop_reason = "identity-required";
        s.why = why + "; " + host(peer_addr) + " lies in identityRequiredNetworks " +
                s.peer_facts.identity_required + ", so its address decides nothing";
        return;
    }
    s.path = "address";
    s.why = why;
    s.decision = decide(*v.set, *v.profile, size_t(s.local_pu), dir,
                        by_address(peer_addr, s.peer_facts), flow.proto, flow.port);
    if (s.decision->action == Verdict::kReject) s.drop_reason = "policy-reject";
}

bool icmp_error(const Flow &f) {
    const uint8_t type = uint8_t(f.port >> 8);
    if (f.proto == kProtoIcmp) return type == 3 || type == 11 || type == 12;
    if (f.proto == kProtoIcmp6) return type <= 4 || (type >= 133 && type <= 137);
    return false;
}

}  // namespace

Explanation explain_with(const View &any, const Flow &flow, const View &src_view,
                         const View &dst_view) {
    Explanation x;
    x.flow = flow;
    Side &s = x.source, &d = x.destination;
    s.role = "source";
    d.role = "destination";
    s.direction = Direction::kOutgoing;
    d.direction = Direction::kIncoming;
    s.enforcer_id = src_view.enforcer_id;
    d.enforcer_id = dst_view.enforcer_id;
    for (auto [side, view] : {std::pair{&s, &src_view}, std::pair{&d, &dst_view}}) {
        if (!view->set) {
            side->path = "absent";
            side->why = side->enforcer_id.empty()
                            ? "no processing unit with an enforcerID covers the " + side->role +
                                  ": no enforcer is on its side"
                            : "enforcer " + side->enforcer_id + "'s policy is not known";
            continue;
        }
        side->profile = view->profile->name;
        side->bundle_version = view->set->version;
    }
    const bool tcp = flow.proto == kProtoTcp, udp = flow.proto == kProtoUdp;
    const bool s_on = src_view.set && !passes(src_view, s, flow.src, flow.dst);
    const bool d_on = dst_view.set && !passes(dst_view, d, flow.dst, flow.src);

    // Source side, first packet: identity offered (managed destination) or the ACL now.
    bool offered = false;
    bool source_first = false;  // the source decided before the destination saw the flow
    if (s_on) {
        if (!tcp && !udp) {
            if (icmp_error(flow)) {
                s.path = "pass";
                s.why = "ICMP errors and neighbour discovery pass (they serve connections "
                        "already decided)";
            } else {
                acl(src_view, s, flow.dst, flow, Direction::kOutgoing,
                    "no handshake can carry identity for this protocol: the destination's "
                    "address decides");
                source_first = true;
            }
        } else {
            const std::string &managed = tcp ? s.peer_facts.managed_tcp : s.peer_facts.managed_udp;
            if (managed.empty()) {
                acl(src_view, s, flow.dst, flow, Direction::kOutgoing,
                    host(flow.dst) + " is outside the profile's " +
                        (tcp ? "targetNetworks" : "targetUDPNetworks") +
                        ": no identity handshake, the destination's address decides");
                source_first = true;
            } else {
                offered = true;
                s.path = "identity";
                s.mode = udp ? "udp" : !s.peer_facts.l4.empty() ? "l4" : "v1";
                s.why = host(flow.dst) + " is in the profile's " +
                        (tcp ? "targetNetworks " : "targetUDPNetworks ") + managed +
                        ": the source's claims go with the first " + (tcp ? "SYN" : "datagram") +
                        (s.mode == "l4" ? " (L4 mode: in records after the handshake, l4TargetNetworks " +
                                              s.peer_facts.l4 + ")"
                                        : "") +
                        (!s.peer_facts.automode.empty()
                             ? " (autoTargetNetworks " + s.peer_facts.automode +
                                   ": L4 instead if the path strips v1's option)"
                             : "");
            }
        }
    }
    if (s_on && source_first && s.decision && s.decision->action == Verdict::kReject) {
        // Refused at the source: the destination never sees it.
        if (d_on) {
            d.path = "unreached";
            d.why = "the source's enforcer refused the flow first";
        }
    } else if (s_on && s.path == "refuse" && source_first) {
        if (d_on) {
            d.path = "unreached";
            d.why = "the source's enforcer refused the flow first";
        }
    } else if (d_on) {
        // Destination side: claims from the source's enforcer, or a plain packet.
        const bool l4_expected =
            tcp && !d.peer_facts.managed_tcp.empty() &&
            (!d.peer_facts.l4.empty() || !d.peer_facts.automode.empty());
        const bool l4_sent = offered && s.mode == "l4";
        if (!tcp && !udp) {
            if (icmp_error(flow)) {
                d.path = "pass";
                d.why = "ICMP errors and neighbour discovery pass";
            } else {
                acl(dst_view, d, flow.src, flow, Direction::kIncoming,
                    "no handshake can carry identity for this protocol: the source's address "
                    "decides");
            }
        } else if (offered && (!tcp || !l4_sent || l4_expected)) {
            d.direction = Direction::kIncoming;
            d.mode = s.mode;
            decide_on_claims(dst_view, d, src_view, s.local_pu, flow.src, flow,
                             Direction::kIncoming, "source", "");
        } else {
            std::string why = "a plain " + std::string(tcp ? "SYN" : "datagram") +
                              " (the source sends no identity): the source's address decides";
            if (offered && l4_sent && !l4_expected)
                why = "the source's enforcer uses L4 mode towards this destination, but this "
                      "profile does not expect L4 from " + host(flow.src) +
                      ": its plain SYN is decided by address";
            if (tcp && l4_expected && !offered)
                why += " (an L4 network: a client without records is decided by address)";
            if (udp && !d.peer_facts.managed_udp.empty())
                why = host(flow.src) + " is in targetUDPNetworks " + d.peer_facts.managed_udp +
                      ": a datagram without handshake gets a RESET and is held; with no "
                      "handshake after the hold the source's address decides";
            acl(dst_view, d, flow.src, flow, Direction::kIncoming, why);
        }
    }

    // Source side, answer: the destination's claims (the SYN-ACK), or a plain answer → the ACL.
    if (s_on && offered) {
        const bool refused_at_d = d_on && (d.path == "refuse" || (d.decision && d.decision->action ==
                                                                                  Verdict::kReject));
        if (refused_at_d) {
            s.why += "; the destination's enforcer refused before answering";
        } else if (d_on && d.path == "identity") {
            decide_on_claims(src_view, s, dst_view, d.local_pu, flow.dst, flow,
                             Direction::kOutgoing, "destination", s.why + "; ");
        } else {
            acl(src_view, s, flow.dst, flow, Direction::kOutgoing,
                "the destination answers without identity (" +
                    (d_on ? d.path == "pass" ? "its enforcer passes the flow" : "its enforcer decided by address"
                          : d.why) +
                    "): the destination's address decides");
            if (!s.peer_facts.automode.empty() && tcp)
                s.why += " (autoTargetNetworks: the next connection to this server uses L4 "
                         "only if another enforcer is known to host it)";
        }
    }

    // The connection: the first refusal in time order (the source first when it decided by
    // address at the first packet, else the destination, then the source on the answer).
    auto refused = [](const Side &x) {
        return x.path == "refuse" || (x.decision && x.decision->action == Verdict::kReject);
    };
    const Side *order[2] = {source_first ? &s : &d, source_first ? &d : &s};
    x.verdict = Verdict::kAccept;
    for (const Side *side : order) {
        if (refused(*side)) {
            x.verdict = Verdict::kReject;
            x.decided_by = side->role;
            break;
        }
    }
    if (x.verdict == Verdict::kAccept)
        for (const Side *side : order)
            if (side->decision)
                x.decided_by += (x.decided_by.empty() ? "" : ",") + side->role;

    // Warnings: the policy-wide ones of each side's view, the overlaps, each once.
    std::set<std::string> seen;
    for (const View *v : {&src_view, &dst_view, &any}) {
        if (!v->set) continue;
        for (std::string &w : policy_warnings(*v->set, *v->profile))
            if (seen.insert(w).second) x.warnings.push_back(std::move(w));
    }
    return x;
}

}  // namespace segwire::policy::explain
