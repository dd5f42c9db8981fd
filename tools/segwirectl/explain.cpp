// segwirectl explain: offline, from a policy bundle (a file, a directory, or each enforcer's bundle
// fetched from the Console with a reader token), what each enforcer on a flow's path decides and
// why (docs/explain.md). The engine is config/policy/explain.hpp.
#include "tools/segwirectl/commands.hpp"

#include <curl/curl.h>
#include <getopt.h>
#include <sys/stat.h>

#include <cstdio>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>

#include <rapidjson/document.h>
#include <rapidjson/prettywriter.h>
#include <rapidjson/stringbuffer.h>

#include "config/policy/explain.hpp"
#include "config/policy/model.hpp"

namespace segwire::ctl {

namespace {

namespace ex = policy::explain;
using policy::PolicySet;

const char *kUsage =
    "usage: segwirectl [--json] explain (--policy FILE|DIR | --console URL --token TOKEN|@FILE\n"
    "                  [--cacert FILE]) [--profile NAME | --src-profile NAME --dst-profile NAME]\n"
    "                  SOURCE DESTINATION PROTOCOL[/PORT]\n"
    "  SOURCE, DESTINATION: an IP address, or a processing unit's ID or name (its first address)\n"
    "  PROTOCOL[/PORT]: tcp/443, udp/53, icmp/8/0, icmp6/128/0, gre, 47\n"
    "  --policy: a bundle (JSON file) or a directory of *.json files; both enforcers use it, each\n"
    "            with its profile (the only one, or --profile / --src-profile / --dst-profile)\n"
    "  --console: each enforcer's own bundle, as the Console serves it (GET\n"
    "             /enforcers/ID/policy); TOKEN from segwire-console issue with a reader credential\n";

std::string read_file(const std::string &path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw std::runtime_error("cannot read " + path);
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

// A Console bundle is the policy set plus three keys the model does not have.
PolicySet parse_bundle(const std::string &text, const std::string &what) {
    rapidjson::Document d;
    d.Parse(text.c_str());
    if (d.HasParseError() || !d.IsObject()) throw std::runtime_error(what + ": not a JSON object");
    for (const char *k : {"enforcerID", "trustedCAs", "revokedCertificates"}) d.RemoveMember(k);
    rapidjson::StringBuffer sb;
    rapidjson::Writer<rapidjson::StringBuffer> w(sb);
    d.Accept(w);
    try {
        return policy::parse_policy_set(sb.GetString());
    } catch (const policy::PolicyError &e) {
        throw std::runtime_error(what + ": " + e.what());
    }
}

size_t on_data(char *p, size_t size, size_t n, void *ud) {
    static_cast<std::string *>(ud)->append(p, size * n);
    return size * n;
}

class Console {
  public:
    Console(std::string url, std::string token, std::string cacert)
        : url_(std::move(url)), token_(std::move(token)), cacert_(std::move(cacert)) {
        while (!url_.empty() && url_.back() == '/') url_.pop_back();
    }

    std::string get(const std::string &path) {
        std::unique_ptr<CURL, void (*)(CURL *)> c(curl_easy_init(), curl_easy_cleanup);
        if (!c) throw std::runtime_error("curl_easy_init failed");
        std::string body;
        const std::string url = url_ + path, auth = "Authorization: Bearer " + token_;
        curl_slist *h = curl_slist_append(nullptr, auth.c_str());
        curl_easy_setopt(c.get(), CURLOPT_URL, url.c_str());
        curl_easy_setopt(c.get(), CURLOPT_HTTPHEADER, h);
        curl_easy_setopt(c.get(), CURLOPT_WRITEFUNCTION, on_data);
        curl_easy_setopt(c.get(), CURLOPT_WRITEDATA, &body);
        curl_easy_setopt(c.get(), CURLOPT_TIMEOUT, 30L);
        if (!cacert_.empty()) curl_easy_setopt(c.get(), CURLOPT_CAINFO, cacert_.c_str());
        const CURLcode rc = curl_easy_perform(c.get());
        curl_slist_free_all(h);
        if (rc != CURLE_OK)
            throw std::runtime_error("GET " + url + ": " + curl_easy_strerror(rc));
        long status = 0;
        curl_easy_getinfo(c.get(), CURLINFO_RESPONSE_CODE, &status);
        if (status != 200)
            throw std::runtime_error("GET " + url + ": HTTP " + std::to_string(status) + ": " +
                                     body.substr(0, 300));
        return body;
    }

  private:
    std::string url_, token_, cacert_;
};

// Each enforcer's view: its bundle and its (resolved, or named) profile.
struct Views {
    std::map<std::string, std::unique_ptr<PolicySet>> sets;  // by enforcer ID ("" = the file)
    std::map<std::string, const policy::EnforcerProfile *> profiles;
};

const policy::EnforcerProfile *profile_named(const PolicySet &set, const std::string &name,
                                             const char *option) {
    if (name.empty()) {
        if (set.enforcer_profiles.size() == 1) return &set.enforcer_profiles[0];
        throw std::runtime_error(
            "the policy has " + std::to_string(set.enforcer_profiles.size()) +
            " enforcerprofiles: name the one in force with " + option +
            " (or use --console, where each enforcer's bundle carries its resolved profile)");
    }
    for (const auto &p : set.enforcer_profiles)
        if (p.name == name) return &p;
    throw std::runtime_error(std::string(option) + ": no enforcerprofile named \"" + name + "\"");
}

// An address, or a PU by ID or name (its first address).
policy::IpPrefix endpoint(const PolicySet &set, const std::string &text, const char *which) {
    std::string problem;
    if (auto a = ex::parse_address(text, &problem)) return *a;
    for (const auto &pu : set.processing_units) {
        if (pu.id != text && pu.name != text) continue;
        if (pu.addresses.empty())
            throw std::runtime_error(std::string(which) + ": processing unit " + text +
                                     " has no addresses");
        policy::IpPrefix p;
        if (!policy::parse_prefix(pu.addresses[0], &p, &problem))
            throw std::runtime_error(std::string(which) + ": " + problem);
        // A prefix stands for its first host address (10.1.0.0/24 -> 10.1.0.1).
        if (p.len < p.max_len())
            for (int i = p.v6 ? 15 : 3; i >= 0 && ++p.addr[size_t(i)] == 0; --i) {
            }
        p.len = p.max_len();
        return p;
    }
    throw std::runtime_error(std::string(which) + ": \"" + text +
                             "\" is neither an IP address nor a processing unit's ID or name");
}

ex::Flow parse_flow_proto(const std::string &text, ex::Flow f) {
    const auto slash = text.find('/');
    const std::string proto = text.substr(0, slash);
    if (!policy::parse_protocol(proto, &f.proto))
        throw std::runtime_error("PROTOCOL: unknown protocol \"" + proto + "\"");
    f.proto_name = proto;
    const std::string rest = slash == std::string::npos ? "" : text.substr(slash + 1);
    auto num = [&](const std::string &s, unsigned long max, const char *what) {
        char *end = nullptr;
        const unsigned long v = std::strtoul(s.c_str(), &end, 10);
        if (s.empty() || *end || v > max)
            throw std::runtime_error(std::string("PROTOCOL: ") + what + " \"" + s +
                                     "\" is not a number up to " + std::to_string(max));
        return v;
    };
    if (f.proto == policy::kProtoTcp || f.proto == policy::kProtoUdp) {
        if (rest.empty()) throw std::runtime_error("PROTOCOL: " + proto + " needs a port: " + proto + "/PORT");
        f.port = static_cast<uint16_t>(num(rest, 65535, "port"));
    } else if (f.proto == policy::kProtoIcmp || f.proto == policy::kProtoIcmp6) {
        const auto s2 = rest.find('/');
        const uint8_t type = rest.empty() ? (f.proto == policy::kProtoIcmp ? 8 : 128)
                                          : static_cast<uint8_t>(num(rest.substr(0, s2), 255, "type"));
        const uint8_t code =
            s2 == std::string::npos ? 0 : static_cast<uint8_t>(num(rest.substr(s2 + 1), 255, "code"));
        f.port = policy::icmp_key(type, code);
    } else if (!rest.empty()) {
        throw std::runtime_error("PROTOCOL: " + proto + " has no ports");
    }
    return f;
}

std::string verdict_word(ex::Verdict v) { return ex::to_string(v); }

std::string rule_name(const PolicySet &set, int policy, int rule, ex::Direction dir) {
    if (policy < 0) return "";
    const auto &p = set.network_policies[size_t(policy)];
    const auto &rules = dir == ex::Direction::kIncoming ? p.incoming_rules : p.outgoing_rules;
    return rules[size_t(rule)].name;
}
std::string policy_id(const PolicySet &set, int policy) {
    if (policy < 0) return "";
    const auto &p = set.network_policies[size_t(policy)];
    return p.id.empty() ? p.name : p.id;
}

using Writer = rapidjson::PrettyWriter<rapidjson::StringBuffer>;

void kv(Writer &w, const char *k, const std::string &v) {
    w.Key(k);
    w.String(v.c_str());
}

void side_json(Writer &w, const ex::Side &s, const PolicySet *set) {
    w.StartObject();
    kv(w, "role", s.role);
    kv(w, "enforcer", s.enforcer_id);
    kv(w, "profile", s.profile);
    kv(w, "bundleVersion", s.bundle_version);
    kv(w, "path", s.path);
    kv(w, "why", s.why);
    if (!s.mode.empty()) kv(w, "mode", s.mode);
    if (set && s.local_pu >= 0) kv(w, "localPU", set->processing_units[size_t(s.local_pu)].id);
    if (set && s.path != "absent") {
        w.Key("profileSettings");
        w.StartObject();
        const ex::AddressFacts &l = s.local_facts, &p = s.peer_facts;
        kv(w, "localExcluded", l.excluded);
        kv(w, "peerExcluded", p.excluded);
        kv(w, "peerManagedTCP", p.managed_tcp);
        kv(w, "peerManagedUDP", p.managed_udp);
        kv(w, "peerIdentityRequired", p.identity_required);
        kv(w, "peerL4", p.l4);
        kv(w, "peerAuto", p.automode);
        w.Key("peerNetworks");
        w.StartArray();
        for (size_t n : p.networks) w.String(set->external_networks[n].name.c_str());
        w.EndArray();
        w.EndObject();
    }
    kv(w, "dropReason", s.drop_reason);
    if (s.decision && set) {
        const ex::Decision &d = *s.decision;
        kv(w, "direction", s.direction == ex::Direction::kIncoming ? "incoming" : "outgoing");
        kv(w, "action", verdict_word(d.action));
        kv(w, "observedAction", verdict_word(d.observed_action));
        kv(w, "reason", d.reason);
        kv(w, "policyID", policy_id(*set, d.policy));
        kv(w, "ruleName", rule_name(*set, d.policy, d.rule, s.direction));
        kv(w, "observedPolicyID", policy_id(*set, d.observed_policy));
        kv(w, "observedRuleName", rule_name(*set, d.observed_policy, d.observed_rule, s.direction));
        w.Key("rules");
        w.StartArray();
        for (const ex::RuleTrace &t : d.rules) {
            const auto &np = set->network_policies[t.policy];
            const auto &r = (s.direction == ex::Direction::kIncoming ? np.incoming_rules
                                                                     : np.outgoing_rules)[t.rule];
            w.StartObject();
            kv(w, "policy", np.name);
            kv(w, "rule", r.name);
            kv(w, "index", std::to_string(t.rule));
            kv(w, "action", r.action == policy::RuleAction::kAllow ? "Allow" : "Reject");
            w.Key("observation");
            w.Bool(r.observation_enabled);
            w.Key("fallback");
            w.Bool(t.fallback);
            w.Key("matched");
            w.Bool(t.ports_match && t.object_match);
            kv(w, "whyNot", t.why_not);
            w.Key("viaNetworks");
            w.StartArray();
            for (const auto &n : t.via_networks) w.String(n.c_str());
            w.EndArray();
            w.EndObject();
        }
        w.EndArray();
        w.Key("nearMisses");
        w.StartArray();
        for (const ex::NearMiss &m : d.near_misses) {
            w.StartObject();
            kv(w, "rule", ex::rule_label(*set, m.policy, m.rule, s.direction));
            kv(w, "whyNot", m.why_not);
            w.EndObject();
        }
        w.EndArray();
    }
    w.EndObject();
}

void side_text(const ex::Side &s, const PolicySet *set) {
    std::printf("%s side: ", s.role.c_str());
    if (s.path == "absent") {
        std::printf("no enforcer (%s)\n", s.why.c_str());
        return;
    }
    std::printf("enforcer %s, profile \"%s\", policy %s\n", s.enforcer_id.c_str(),
                s.profile.c_str(), s.bundle_version.c_str());
    if (set && s.local_pu >= 0)
        std::printf("  local PU:  %s (\"%s\")\n", set->processing_units[size_t(s.local_pu)].id.c_str(),
                    set->processing_units[size_t(s.local_pu)].name.c_str());
    if (set) {
        const ex::AddressFacts &p = s.peer_facts;
        std::printf("  profile:   peer managed tcp %s, udp %s; identity required %s; l4 %s; auto "
                    "%s; excluded %s\n",
                    p.managed_tcp.empty() ? "no" : p.managed_tcp.c_str(),
                    p.managed_udp.empty() ? "no" : p.managed_udp.c_str(),
                    p.identity_required.empty() ? "no" : p.identity_required.c_str(),
                    p.l4.empty() ? "no" : p.l4.c_str(), p.automode.empty() ? "no" : p.automode.c_str(),
                    !s.local_facts.excluded.empty() ? s.local_facts.excluded.c_str()
                    : !p.excluded.empty()           ? p.excluded.c_str()
                                                    : "no");
    }
    std::printf("  path:      %s%s%s: %s\n", s.path.c_str(), s.mode.empty() ? "" : " ",
                s.mode.c_str(), s.why.c_str());
    if (!s.decision || !set) {
        if (!s.drop_reason.empty()) std::printf("  verdict:   Reject (%s)\n", s.drop_reason.c_str());
        return;
    }
    const ex::Decision &d = *s.decision;
    const char *dir = s.direction == ex::Direction::kIncoming ? "incoming" : "outgoing";
    if (d.reason == "rule")
        std::printf("  verdict:   %s by %s rule \"%s\" of policy %s\n", verdict_word(d.action).c_str(),
                    dir, rule_name(*set, d.policy, d.rule, s.direction).c_str(),
                    policy_id(*set, d.policy).c_str());
    else if (d.reason == "default")
        std::printf("  verdict:   %s: no %s rule matched, the namespace default\n",
                    verdict_word(d.action).c_str(), dir);
    else
        std::printf("  verdict:   %s (%s)\n", verdict_word(d.action).c_str(), d.reason.c_str());
    if (d.observed_action != ex::Verdict::kNotApplicable)
        std::printf("  observed:  %s by rule \"%s\" of policy %s (reported, not enforced)\n",
                    verdict_word(d.observed_action).c_str(),
                    rule_name(*set, d.observed_policy, d.observed_rule, s.direction).c_str(),
                    policy_id(*set, d.observed_policy).c_str());
    for (const ex::RuleTrace &t : d.rules) {
        const auto &np = set->network_policies[t.policy];
        const auto &r = (s.direction == ex::Direction::kIncoming ? np.incoming_rules
                                                                 : np.outgoing_rules)[t.rule];
        const bool m = t.ports_match && t.object_match;
        std::printf("    %s %-16s %-6s%s%s in %s%s%s\n", m ? "match" : "  -  ", r.name.c_str(),
                    r.action == policy::RuleAction::kAllow ? "Allow" : "Reject",
                    r.observation_enabled ? " (observed)" : "", t.fallback ? " (fallback)" : "",
                    np.name.c_str(), m ? "" : ": ", m ? "" : t.why_not.c_str());
    }
    for (const ex::NearMiss &nm : d.near_misses)
        std::printf("    not applied: %s: %s\n", ex::rule_label(*set, nm.policy, nm.rule, s.direction).c_str(),
                    nm.why_not.c_str());
}

}  // namespace

int explain_main(int argc, char **argv, bool json) {
    std::string policy_path, console_url, token, cacert, profile, src_profile, dst_profile;
    static option opts[] = {{"policy", required_argument, nullptr, 'P'},
                            {"console", required_argument, nullptr, 'C'},
                            {"token", required_argument, nullptr, 'T'},
                            {"cacert", required_argument, nullptr, 'A'},
                            {"profile", required_argument, nullptr, 'r'},
                            {"src-profile", required_argument, nullptr, 'S'},
                            {"dst-profile", required_argument, nullptr, 'D'},
                            {"help", no_argument, nullptr, 'h'},
                            {nullptr, 0, nullptr, 0}};
    optind = 1;
    int o;
    while ((o = getopt_long(argc, argv, "h", opts, nullptr)) != -1) {
        switch (o) {
            case 'P': policy_path = optarg; break;
            case 'C': console_url = optarg; break;
            case 'T': token = optarg; break;
            case 'A': cacert = optarg; break;
            case 'r': profile = optarg; break;
            case 'S': src_profile = optarg; break;
            case 'D': dst_profile = optarg; break;
            case 'h': std::fputs(kUsage, stdout); return 0;
            default: std::fputs(kUsage, stderr); return 2;
        }
    }
    if (argc - optind != 3 || policy_path.empty() == console_url.empty()) {
        std::fputs(kUsage, stderr);
        return 2;
    }
    if (!token.empty() && token[0] == '@') {
        token = read_file(token.substr(1));
        while (!token.empty() && (token.back() == '\n' || token.back() == '\r')) token.pop_back();
    }

    Views views;
    std::unique_ptr<Console> console;
    std::string any_id;  // the view used to find who hosts each address
    std::map<std::string, std::string> group_member;  // enforcer group -> a registered member
    if (!policy_path.empty()) {
        struct stat st{};
        if (stat(policy_path.c_str(), &st) != 0) throw std::runtime_error("--policy: cannot read " + policy_path);
        auto set = std::make_unique<PolicySet>(
            S_ISDIR(st.st_mode) ? policy::load_policy_dir(policy_path)
                                : parse_bundle(read_file(policy_path), policy_path));
        views.sets[""] = std::move(set);
    } else {
        if (token.empty()) throw std::runtime_error("--console needs --token (a reader's token)");
        console = std::make_unique<Console>(console_url, token, cacert);
        rapidjson::Document list;
        const std::string body = console->get("/enforcers");
        list.Parse(body.c_str());
        if (list.HasParseError() || !list.IsArray() || list.Empty())
            throw std::runtime_error("the Console lists no enforcers (GET /enforcers)");
        for (const auto &e : list.GetArray())
            if (e.IsObject() && e.HasMember("ID") && e["ID"].IsString()) {
                if (any_id.empty()) any_id = e["ID"].GetString();
                if (e.HasMember("enforcerGroup") && e["enforcerGroup"].IsString())
                    group_member.emplace(e["enforcerGroup"].GetString(), e["ID"].GetString());
            }
    }
    // Console: each enforcer's own bundle, fetched once (its resolved profile is its only one).
    std::function<ex::View(const std::string &)> view_of;
    view_of = [&](const std::string &enforcer) -> ex::View {
        // A PU hosted by a group: any member's bundle, speaking as the group (its members are
        // interchangeable; docs/scale-out.md).
        if (enforcer.rfind("group:", 0) == 0) {
            auto m = group_member.find(enforcer.substr(6));
            if (m == group_member.end()) return ex::View{};  // no member registered: absent
            ex::View v = view_of(m->second);
            v.enforcer_id = enforcer;
            v.enforcer_group = m->first;
            return v;
        }
        auto it = views.sets.find(enforcer);
        if (it == views.sets.end()) {
            std::unique_ptr<PolicySet> set;
            try {
                set = std::make_unique<PolicySet>(
                    parse_bundle(console->get("/enforcers/" + enforcer + "/policy"),
                                 "enforcer " + enforcer + "'s bundle"));
            } catch (const std::exception &e) {
                if (std::string(e.what()).find("HTTP 404") == std::string::npos) throw;
                return ex::View{};  // not registered: its side is explained as absent
            }
            if (set->enforcer_profiles.size() != 1)
                throw std::runtime_error("enforcer " + enforcer +
                                         "'s bundle does not carry exactly one profile");
            it = views.sets.emplace(enforcer, std::move(set)).first;
        }
        return ex::View{it->second.get(), &it->second->enforcer_profiles.at(0), enforcer, ""};
    };

    ex::View any;
    if (console) {
        any = view_of(any_id);
        if (!any.set) throw std::runtime_error("enforcer " + any_id + "'s bundle is not available");
    } else {
        const PolicySet &set = *views.sets[""];
        if (set.enforcer_profiles.empty())
            throw std::runtime_error("--policy: the policy has no enforcerprofiles");
        // Who hosts an address does not depend on the profile.
        any = ex::View{&set, &set.enforcer_profiles[0], ""};
    }

    ex::Flow flow;
    flow.src = endpoint(*any.set, argv[optind], "SOURCE");
    flow.dst = endpoint(*any.set, argv[optind + 1], "DESTINATION");
    if (flow.src.v6 != flow.dst.v6)
        throw std::runtime_error("SOURCE and DESTINATION are of different address families");
    flow = parse_flow_proto(argv[optind + 2], flow);

    ex::Explanation x;
    if (console) {
        x = ex::explain_flow(any, flow, view_of);
    } else {
        // One file for both enforcers: each side's enforcer is the PU's enforcerID, its profile
        // the one named for its side.
        const PolicySet &set = *any.set;
        auto side_view = [&](const policy::IpPrefix &a, const std::string &name, const char *opt) {
            const ex::AddressFacts f = ex::classify(set, *any.profile, a);
            if (f.pu < 0 || set.processing_units[size_t(f.pu)].enforcer_id.empty()) return ex::View{};
            return ex::View{&set, profile_named(set, name.empty() ? profile : name, opt),
                            set.processing_units[size_t(f.pu)].enforcer_id};
        };
        x = ex::explain_with(any, flow, side_view(flow.src, src_profile, "--src-profile"),
                             side_view(flow.dst, dst_profile, "--dst-profile"));
    }

    auto set_of = [&](const std::string &enforcer) -> const PolicySet * {
        if (enforcer.empty()) return nullptr;
        if (!console) return views.sets[""].get();
        auto it = views.sets.find(enforcer);
        if (it == views.sets.end() && enforcer.rfind("group:", 0) == 0) {
            // A group's side was explained with a member's bundle (view_of).
            auto m = group_member.find(enforcer.substr(6));
            if (m != group_member.end()) it = views.sets.find(m->second);
        }
        return it == views.sets.end() ? nullptr : it->second.get();
    };
    const std::string src_text = flow.src.str(), dst_text = flow.dst.str();
    std::string what = src_text.substr(0, src_text.find('/')) + " -> " +
                       dst_text.substr(0, dst_text.find('/')) + " " + argv[optind + 2];
    if (json) {
        rapidjson::StringBuffer sb;
        Writer w(sb);
        w.StartObject();
        kv(w, "flow", what);
        kv(w, "verdict", verdict_word(x.verdict));
        kv(w, "decidedBy", x.decided_by);
        w.Key("source");
        side_json(w, x.source, set_of(x.source.enforcer_id));
        w.Key("destination");
        side_json(w, x.destination, set_of(x.destination.enforcer_id));
        w.Key("warnings");
        w.StartArray();
        for (const auto &s : x.warnings) w.String(s.c_str());
        w.EndArray();
        w.EndObject();
        std::printf("%s\n", sb.GetString());
        return 0;
    }
    std::printf("%s: %s%s%s\n", what.c_str(), verdict_word(x.verdict).c_str(),
                x.decided_by.empty() ? " (no enforcer decides it)" : ", decided by: ",
                x.decided_by.c_str());
    side_text(x.source, set_of(x.source.enforcer_id));
    side_text(x.destination, set_of(x.destination.enforcer_id));
    for (const auto &s : x.warnings) std::printf("warning: %s\n", s.c_str());
    return 0;
}

}  // namespace segwire::ctl
