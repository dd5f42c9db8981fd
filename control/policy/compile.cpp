// PolicySet + resolved profile → PolicySnapshot (control/policy/compile.hpp). Control thread only:
// allocates and throws.
//
// The address side folds every prefix the enforcer cares about (PU addresses, external-network
// includes and `!` exclusions, targetNetworks, targetUDPNetworks, excludedNetworks,
// trustedDNSResolvers) into one table per address family (a RIB or an LPM, sized from the policy:
// dataplane/policy/address_table.hpp).
// Each prefix gets an "address class" = everything true of the addresses whose longest matching
// prefix it is (covering PU, flags, set of external networks containing it), so a worker learns
// all of it from a single lookup. See docs/policy.md.
#include <algorithm>
#include <atomic>
#include <cstring>
#include <map>
#include <set>
#include <tuple>

#include "config/policy/explain.hpp"
#include "control/policy/compile.hpp"
#include "dataplane/policy/address_table.hpp"
#include "dataplane/policy/snapshot.hpp"

namespace segwire::control {
// The compiler fills the policy engine's own types (segwire::policy) from its model (same
// namespace): named without a prefix here.
using namespace policy;

namespace {

std::atomic<uint64_t> g_next_version{1};

constexpr uint32_t kLpm4MaxNextHop = (1u << 24) - 1;
constexpr uint32_t kLpm6MaxNextHop = (1u << 21) - 1;

[[noreturn]] void fail(const std::string &field, const std::string &problem) {
    throw PolicyError("snapshot", field, problem);
}

ParsedExpression parse_expr(const TagExpression &e, const std::string &label, const char *field) {
    ParsedExpression out;
    std::string where, problem;
    if (!parse_tag_expression(e, &out, &where, &problem))
        throw PolicyError(label, field + where, problem);
    return out;
}

std::vector<IpPrefix> parse_prefixes(const std::vector<std::string> &list, const std::string &label,
                                     const char *field) {
    std::vector<IpPrefix> out(list.size());
    std::string problem;
    for (size_t i = 0; i < list.size(); ++i)
        if (!parse_prefix(list[i], &out[i], &problem))
            throw PolicyError(label, std::string(field) + "[" + std::to_string(i) + "]", problem);
    return out;
}

// What one prefix says about the addresses under it.
struct Contribution {
    enum class Kind : uint8_t { kPu, kFlag, kNetInclude, kNetExclude };
    IpPrefix prefix;
    Kind kind;
    uint32_t value;  // PU index, AddressFlag bit, or network index
};

struct AddrState {
    uint32_t pu = kNone;
    uint8_t flags = 0;
    std::vector<std::pair<uint32_t, bool>> nets;  // network → included here (deepest own entry)

    void set_net(uint32_t n, bool in) {
        auto it = std::lower_bound(nets.begin(), nets.end(), std::make_pair(n, false),
                                   [](const auto &a, const auto &b) { return a.first < b.first; });
        if (it != nets.end() && it->first == n)
            it->second = in;
        else
            nets.insert(it, {n, in});
    }
};

using ClassKey = std::tuple<uint32_t, uint8_t, std::vector<uint32_t>>;

}  // namespace

class SnapshotCompiler {
  public:
    SnapshotCompiler(const PolicySet &set, const EnforcerProfile &profile, CompileOptions &opts)
        : set_(set), profile_(profile), opts_(opts), s_(new PolicySnapshot()) {}

    std::unique_ptr<PolicySnapshot> run() {
        s_->ticket_ = std::move(opts_.ticket);
        s_->version_ = g_next_version.fetch_add(1);
        s_->bundle_version_ = set_.version;
        s_->profile_ = profile_;
        s_->drop_unmanaged_inside_ = profile_.unmanaged_inside_sources == "drop";
        std::string problem;
        if (!parse_duration_seconds(profile_.flow_report_interval, &s_->flow_report_interval_s_,
                                    &problem))
            throw PolicyError(object_label("enforcerprofile", profile_.name, profile_.id, 0),
                              "flowReportInterval", problem);
        s_->default_action_[0] =
            set_.ns.default_incoming == RuleAction::kAllow ? Verdict::kAccept : Verdict::kReject;
        s_->default_action_[1] =
            set_.ns.default_outgoing == RuleAction::kAllow ? Verdict::kAccept : Verdict::kReject;
        intern("");  // index 0 = the empty name
        compile_networks();
        warn_overlaps();
        compile_policies();
        compile_pus();
        compile_addresses();
        return std::move(s_);
    }

  private:
    uint32_t intern(const std::string &s) {
        auto [it, fresh] = string_ids_.emplace(s, static_cast<uint32_t>(s_->strings_.size()));
        if (fresh) s_->strings_.push_back(s);
        return it->second;
    }

    uint32_t tag_id(std::unordered_map<std::string, uint32_t> &m, const std::string &k) {
        auto [it, fresh] = m.emplace(k, s_->next_tag_id_);
        if (fresh) ++s_->next_tag_id_;
        return it->second;
    }

    uint32_t prefix_id(const std::string &key, const std::string &prefix) {
        auto &v = s_->prefix_ids_[key];
        for (const auto &[p, id] : v)
            if (p == prefix) return id;
        v.emplace_back(prefix, s_->next_tag_id_);
        return s_->next_tag_id_++;
    }

    // Every predicate becomes (ID, negate): "the peer has this ID" or "has it not". A negated
    // value (k!=v, k!=v*) also needs the key: absence is no evidence (docs/policy.md §1, "Tag
    // predicates"), so it is two predicates, "has k" and "has not k=v".
    PolicySnapshot::Range compile_expr(const ParsedExpression &e) {
        PolicySnapshot::Range er{static_cast<uint32_t>(s_->preds_.size()), 0};
        for (const auto &clause : e) {
            for (size_t i = 0; i < clause.size(); ++i) {
                const TagPredicate &p = clause[i];
                const bool last = i + 1 == clause.size();
                auto push = [&](uint32_t id, bool negate, bool clause_end) {
                    s_->preds_.push_back(PolicySnapshot::Pred{id, negate, clause_end});
                };
                switch (p.op) {
                    case TagOp::kEqual:
                        push(tag_id(s_->tag_ids_, p.key + "=" + p.value), false, last);
                        break;
                    case TagOp::kNotEqual:
                        push(tag_id(s_->key_ids_, p.key), false, false);
                        push(tag_id(s_->tag_ids_, p.key + "=" + p.value), true, last);
                        break;
                    case TagOp::kPrefix:
                        push(prefix_id(p.key, p.value), false, last);
                        break;
                    case TagOp::kNotPrefix:
                        push(tag_id(s_->key_ids_, p.key), false, false);
                        push(prefix_id(p.key, p.value), true, last);
                        break;
                    case TagOp::kExists:
                    case TagOp::kAbsent:
                        push(tag_id(s_->key_ids_, p.key), p.op == TagOp::kAbsent, last);
                        break;
                }
            }
        }
        er.cnt = static_cast<uint32_t>(s_->preds_.size()) - er.off;
        return er;
    }

    // A "peer" view of an object's own tags, evaluated with the same code as real peers. Built
    // after all expressions are compiled so every ID exists.
    PeerTags tags_of(const std::vector<std::string> &tags) const {
        return s_->make_peer_tags(tags);
    }

    uint32_t add_ports(const std::vector<PortRange> &ranges) {
        uint32_t off = static_cast<uint32_t>(s_->ports_.size());
        s_->ports_.insert(s_->ports_.end(), ranges.begin(), ranges.end());
        return off;
    }

    void compile_networks() {
        const auto &nets = set_.external_networks;
        for (size_t i = 0; i < nets.size(); ++i) {
            const ExternalNetwork &n = nets[i];
            std::string label = object_label("externalnetwork", n.name, n.id, i);
            PolicySnapshot::Network cn{};
            cn.name = intern(n.name);
            std::vector<PortRange> ranges;
            size_t bad;
            std::string problem;
            if (!parse_protocol_ports(n.service_ports, &ranges, &bad, &problem))
                throw PolicyError(label, "servicePorts[" + std::to_string(bad) + "]", problem);
            cn.service_ports = {add_ports(ranges), static_cast<uint32_t>(ranges.size())};
            s_->networks_.push_back(cn);
            for (size_t j = 0; j < n.entries.size(); ++j) {
                NetworkEntry e;
                if (!parse_network_entry(n.entries[j], &e, &problem))
                    throw PolicyError(label, "entries[" + std::to_string(j) + "]", problem);
                if (e.kind == NetworkEntry::Kind::kHostname)
                    s_->hostnames_.push_back({static_cast<uint32_t>(i), e.hostname});
                else
                    contributions_.push_back({e.prefix,
                                              e.kind == NetworkEntry::Kind::kInclude
                                                  ? Contribution::Kind::kNetInclude
                                                  : Contribution::Kind::kNetExclude,
                                              static_cast<uint32_t>(i)});
            }
        }
    }

    // An external network that overlaps a managed network lets a peer there without identity be
    // decided by that network's rules (the ACL fallback). Legal, and sometimes meant, so it is a
    // warning; identityRequiredNetworks is how to refuse them (docs/policy.md "Identity
    // required"). segwirectl explain prints the same warnings.
    void warn_overlaps() {
        for (std::string &w : explain::overlap_warnings(set_, profile_))
            s_->warnings_.push_back(std::move(w));
    }

    void compile_policies() {
        const auto &pols = set_.network_policies;
        for (size_t i = 0; i < pols.size(); ++i) {
            const NetworkRuleSetPolicy &p = pols[i];
            std::string label = object_label("networkrulesetpolicy", p.name, p.id, i);
            s_->policies_.push_back({intern(p.name), intern(p.id)});
            subjects_.push_back(compile_expr(parse_expr(p.subject, label, "subject")));
            for (int dir = 0; dir < 2; ++dir) {
                const auto &rules = dir == 0 ? p.incoming_rules : p.outgoing_rules;
                const char *field = dir == 0 ? "incomingRules" : "outgoingRules";
                policy_rules_[dir].emplace_back();
                for (size_t j = 0; j < rules.size(); ++j) {
                    const NetworkRule &r = rules[j];
                    std::string f = std::string(field) + "[" + std::to_string(j) + "]";
                    PolicySnapshot::Rule cr{};
                    cr.reject = r.action == RuleAction::kReject;
                    cr.observed = r.observation_enabled;
                    cr.logs_disabled = r.logs_disabled;
                    cr.policy = static_cast<uint32_t>(i);
                    cr.name = intern(r.name);
                    cr.preds = compile_expr(parse_expr(r.object, label, (f + ".object").c_str()));
                    std::vector<PortRange> ranges;
                    size_t bad;
                    std::string problem;
                    if (!parse_protocol_ports(r.protocol_ports, &ranges, &bad, &problem))
                        throw PolicyError(label, f + ".protocolPorts[" + std::to_string(bad) + "]",
                                          problem);
                    if (ranges.size() <= PolicySnapshot::kInlinePorts) {
                        cr.inline_ports = static_cast<uint8_t>(ranges.size());
                        std::copy(ranges.begin(), ranges.end(), cr.ports);
                    } else {
                        cr.ports_range = {add_ports(ranges), static_cast<uint32_t>(ranges.size())};
                    }
                    policy_rules_[dir].back().push_back(static_cast<uint32_t>(s_->rules_.size()));
                    s_->rules_.push_back(cr);
                }
            }
        }
        if (!profile_.ignore_expression.empty())
            ignore_expr_ = compile_expr(
                parse_expr(profile_.ignore_expression, "enforcerprofile", "ignoreExpression"));
        // Which external networks each rule's object selects. Index the networks by tag ID so a
        // clause only visits networks carrying its first positive predicate.
        std::vector<PeerTags> net_tags;
        std::unordered_map<uint32_t, std::vector<uint32_t>> postings;
        for (size_t n = 0; n < set_.external_networks.size(); ++n) {
            net_tags.push_back(tags_of(effective_tags(set_.external_networks[n])));
            for (uint32_t id : net_tags.back().ids()) postings[id].push_back(uint32_t(n));
        }
        std::vector<uint32_t> matched;
        for (PolicySnapshot::Rule &r : s_->rules_) {
            matched.clear();
            for (uint32_t c = r.preds.off, end = r.preds.off + r.preds.cnt; c < end;) {
                uint32_t c_end = c;  // one past this clause
                while (!s_->preds_[c_end].clause_end) ++c_end;
                ++c_end;
                const PolicySnapshot::Pred *anchor = nullptr;
                for (uint32_t p = c; p < c_end && !anchor; ++p)
                    if (!s_->preds_[p].negate) anchor = &s_->preds_[p];
                auto check = [&](uint32_t n) {
                    bool all = true;
                    for (uint32_t p = c; p < c_end && all; ++p)
                        all = net_tags[n].has(s_->preds_[p].id) != s_->preds_[p].negate;
                    if (all) matched.push_back(n);
                };
                if (anchor) {
                    auto it = postings.find(anchor->id);
                    if (it != postings.end())
                        for (uint32_t n : it->second) check(n);
                } else {
                    for (uint32_t n = 0; n < net_tags.size(); ++n) check(n);
                }
                c = c_end;
            }
            std::sort(matched.begin(), matched.end());
            matched.erase(std::unique(matched.begin(), matched.end()), matched.end());
            r.nets = {static_cast<uint32_t>(s_->rule_nets_.size()),
                      static_cast<uint32_t>(matched.size())};
            s_->rule_nets_.insert(s_->rule_nets_.end(), matched.begin(), matched.end());
        }
    }

    uint32_t rule_list(const std::vector<uint32_t> &items) {
        auto [it, fresh] = list_ids_.emplace(items, static_cast<uint32_t>(s_->rule_lists_.size()));
        if (fresh) {
            s_->rule_lists_.push_back({static_cast<uint32_t>(s_->list_rules_.size()),
                                       static_cast<uint32_t>(items.size())});
            for (uint32_t r : items) s_->list_rules_.push_back(s_->rules_[r]);
        }
        return it->second;
    }

    void compile_pus() {
        const auto &pols = set_.network_policies;
        for (size_t i = 0; i < set_.processing_units.size(); ++i) {
            const ProcessingUnit &pu = set_.processing_units[i];
            PeerTags tags = tags_of(effective_tags(pu));
            PolicySnapshot::Pu cp{};
            cp.id = intern(pu.id);
            cp.name = intern(pu.name);
            cp.enforcer = intern(pu.enforcer_id);
            cp.ignored = ignore_expr_.cnt != 0 && s_->expr_matches(ignore_expr_, tags);
            std::vector<size_t> selected[2];  // [fallback?]
            for (size_t p = 0; p < pols.size(); ++p)
                if (!pols[p].disabled && s_->expr_matches(subjects_[p], tags))
                    selected[pols[p].fallback ? 1 : 0].push_back(p);
            for (int dir = 0; dir < 2; ++dir) {
                // Fallback rulesets apply to a direction only when no regular ruleset selecting
                // this PU has rules for it.
                std::vector<uint32_t> items;
                for (int fb = 0; fb < 2 && items.empty(); ++fb)
                    for (size_t p : selected[fb])
                        for (uint32_t r : policy_rules_[dir][p]) items.push_back(r);
                cp.rules[dir] = rule_list(items);
            }
            std::vector<IpPrefix> addrs = parse_prefixes(
                pu.addresses, object_label("processingunit", pu.name, pu.id, i), "addresses");
            cp.addrs = {static_cast<uint32_t>(s_->pu_prefixes_.size()),
                        static_cast<uint32_t>(addrs.size())};
            for (const IpPrefix &a : addrs) {
                contributions_.push_back({a, Contribution::Kind::kPu, static_cast<uint32_t>(i)});
                s_->pu_prefixes_.push_back({a.v6, a.len, a.v6 ? 0 : a.v4_host(), a.addr});
            }
            s_->pu_by_id_.emplace(pu.id, static_cast<uint32_t>(s_->pus_.size()));
            s_->pus_.push_back(cp);
            s_->pu_tags_.push_back(std::move(tags));
        }
    }

    uint32_t class_of(const AddrState &st) {
        std::vector<uint32_t> in;
        for (const auto &[n, included] : st.nets)
            if (included) in.push_back(n);
        ClassKey key{st.pu, st.flags, in};
        auto [it, fresh] = class_ids_.emplace(key, static_cast<uint32_t>(s_->classes_.size()));
        if (fresh) {
            s_->classes_.push_back({st.pu,
                                    st.flags,
                                    {static_cast<uint32_t>(s_->class_nets_.size()),
                                     static_cast<uint32_t>(in.size())}});
            s_->class_nets_.insert(s_->class_nets_.end(), in.begin(), in.end());
        }
        return it->second;
    }

    void compile_addresses() {
        std::string plabel = object_label("enforcerprofile", profile_.name, profile_.id, 0);
        auto add_flag = [&](const std::vector<std::string> &list, const char *field, uint8_t bit) {
            for (const IpPrefix &p : parse_prefixes(list, plabel, field))
                contributions_.push_back({p, Contribution::Kind::kFlag, bit});
        };
        add_flag(profile_.effective_target_networks(), "targetNetworks", kManagedTcp);
        add_flag(profile_.target_udp_networks, "targetUDPNetworks", kManagedUdp);
        add_flag(profile_.identity_required_networks, "identityRequiredNetworks",
                 kIdentityRequired);
        add_flag(profile_.excluded_networks, "excludedNetworks", kExcluded);
        add_flag(profile_.l4_target_networks, "l4TargetNetworks", kModeL4);
        add_flag(profile_.auto_target_networks, "autoTargetNetworks", kModeAuto);
        if (profile_.trusted_dns_resolvers) {
            s_->resolvers_listed_ = true;
            add_flag(*profile_.trusted_dns_resolvers, "trustedDNSResolvers", kTrustedResolver);
        }

        class_of(AddrState{});  // class 0: nothing known about the address
        // Ancestors sort before descendants: by family, address, then length.
        std::sort(contributions_.begin(), contributions_.end(),
                  [](const Contribution &a, const Contribution &b) {
                      return std::tie(a.prefix.v6, a.prefix.addr, a.prefix.len, a.kind) <
                             std::tie(b.prefix.v6, b.prefix.addr, b.prefix.len, b.kind);
                  });
        std::vector<std::pair<IpPrefix, uint32_t>> v4, v6;  // prefix → class
        struct Frame {
            IpPrefix prefix;
            AddrState state;
        };
        std::vector<Frame> stack;
        for (size_t i = 0; i < contributions_.size();) {
            const IpPrefix cur = contributions_[i].prefix;
            while (!stack.empty() && !stack.back().prefix.contains(cur)) stack.pop_back();
            AddrState st = stack.empty() ? AddrState{} : stack.back().state;
            // All contributions of this exact prefix; includes sort before excludes, so an
            // exclusion of the same prefix wins.
            for (; i < contributions_.size() && contributions_[i].prefix == cur; ++i) {
                const Contribution &c = contributions_[i];
                switch (c.kind) {
                    case Contribution::Kind::kPu:
                        st.pu = c.value;
                        break;
                    case Contribution::Kind::kFlag:
                        st.flags |= uint8_t(c.value);
                        break;
                    case Contribution::Kind::kNetInclude:
                        st.set_net(c.value, true);
                        break;
                    case Contribution::Kind::kNetExclude:
                        st.set_net(c.value, false);
                        break;
                }
            }
            uint32_t cls = class_of(st);
            if (cur.len == 0)
                (cur.v6 ? s_->default_class_v6_ : s_->default_class_v4_) = cls;
            else
                (cur.v6 ? v6 : v4).emplace_back(cur, cls);
            stack.push_back({cur, std::move(st)});
        }
        uint32_t max_hop = std::min(kLpm4MaxNextHop, kLpm6MaxNextHop);
        if (s_->classes_.size() > max_hop)
            fail("(addresses)", std::to_string(s_->classes_.size()) +
                                    " distinct address classes exceed the LPM next-hop limit " +
                                    std::to_string(max_hop));
        if (v4.empty() && v6.empty()) return;
        // A rule-only update leaves every prefix in the same class: share the tables in force.
        const PolicySnapshot *prev = opts_.previous;
        if (prev && prev->addr_ && prev->addr_->same(v4, v6, opts_.rib_max_v4, opts_.rib_max_v6)) {
            s_->addr_ = prev->addr_;
            s_->addr_shared_ = true;
            return;
        }
        s_->addr_ = AddressTable::build(std::move(v4), std::move(v6), opts_.rib_max_v4,
                                        opts_.rib_max_v6, std::to_string(s_->version_));
    }

    const PolicySet &set_;
    const EnforcerProfile &profile_;
    CompileOptions &opts_;
    std::unique_ptr<PolicySnapshot> s_;
    std::unordered_map<std::string, uint32_t> string_ids_;
    std::vector<PolicySnapshot::Range> subjects_;         // expression per policy
    std::vector<std::vector<uint32_t>> policy_rules_[2];  // [dir][policy] → rules
    PolicySnapshot::Range ignore_expr_{};                 // cnt 0 = nothing is ignored
    std::vector<Contribution> contributions_;
    std::map<std::vector<uint32_t>, uint32_t> list_ids_;
    std::map<ClassKey, uint32_t> class_ids_;
};

std::unique_ptr<PolicySnapshot> compile_snapshot(const PolicySet &set,
                                                 const EnforcerProfile &profile,
                                                 CompileOptions options) {
    return SnapshotCompiler(set, profile, options).run();
}

}  // namespace segwire::control
