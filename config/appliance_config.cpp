#include "config/appliance_config.hpp"

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>

#include <rapidjson/document.h>
#include <rapidjson/error/en.h>

#include "config/metrics/listen_address.hpp"

namespace segwire::config {
namespace {

using rapidjson::Value;

// Walks one JSON object, remembering its path, and refuses keys nobody asked for
// (a typo like "worker" must not be silently ignored).
// "10.1.0.1/24", "fd01::1/64": an interface address and its connected prefix's length (host
// bits are the point here, unlike policy prefixes).
policy::IpPrefix parse_interface_address(const std::string &at, const std::string &text) {
    const size_t slash = text.find('/');
    if (slash == std::string::npos)
        throw ConfigError(at, "\"" + text + "\" needs a prefix length (\"10.1.0.1/24\")");
    policy::IpPrefix a;
    std::string problem;
    if (!policy::parse_prefix(text.substr(0, slash), &a, &problem)) throw ConfigError(at, problem);
    const std::string len = text.substr(slash + 1);
    if (len.empty() || len.size() > 3 || len.find_first_not_of("0123456789") != std::string::npos ||
        std::stoul(len) > a.max_len() || std::stoul(len) < 1)
        throw ConfigError(
            at, "\"" + text + "\": prefix length must be 1.." + std::to_string(a.max_len()));
    a.len = static_cast<uint8_t>(std::stoul(len));
    bool zero = true;
    for (unsigned i = 0; i < 16; ++i) zero = zero && a.addr[i] == 0;
    if (zero || (!a.v6 && (a.addr[0] == 127 || a.addr[0] >= 224)) || (a.v6 && a.addr[0] == 0xff))
        throw ConfigError(at, "\"" + text + "\" is not a unicast address");
    return a;
}

class Obj {
  public:
    Obj(const Value &v, std::string path) : v_(v), path_(std::move(path)) {
        if (!v_.IsObject())
            throw ConfigError(path_.empty() ? "(root)" : path_, "must be an object");
    }
    std::string at(const char *key) const { return path_.empty() ? key : path_ + "." + key; }
    const Value *get(const char *key) {
        seen_.insert(key);
        auto it = v_.FindMember(key);
        return it == v_.MemberEnd() ? nullptr : &it->value;
    }
    bool has(const char *key) const { return v_.HasMember(key); }

    void str(const char *key, std::string &out, bool required = false) {
        const Value *x = get(key);
        if (!x) {
            if (required) throw ConfigError(at(key), "missing");
            return;
        }
        if (!x->IsString()) throw ConfigError(at(key), "must be a string");
        out = x->GetString();
    }
    void boolean(const char *key, bool &out) {
        const Value *x = get(key);
        if (!x) return;
        if (!x->IsBool()) throw ConfigError(at(key), "must be true or false");
        out = x->GetBool();
    }
    template <typename T>
    void uint(const char *key, T &out, uint64_t lo, uint64_t hi) {
        const Value *x = get(key);
        if (!x) return;
        if (!x->IsUint64()) throw ConfigError(at(key), "must be a non-negative integer");
        uint64_t n = x->GetUint64();
        if (n < lo || n > hi)
            throw ConfigError(at(key), "must be between " + std::to_string(lo) + " and " +
                                           std::to_string(hi) + " (got " + std::to_string(n) + ")");
        out = static_cast<T>(n);
    }
    void strings(const char *key, std::vector<std::string> &out) {
        const Value *a = get(key);
        if (!a) return;
        if (!a->IsArray()) throw ConfigError(at(key), "must be an array of strings");
        for (rapidjson::SizeType i = 0; i < a->Size(); ++i) {
            if (!(*a)[i].IsString())
                throw ConfigError(at(key) + "[" + std::to_string(i) + "]", "must be a string");
            out.emplace_back((*a)[i].GetString());
        }
    }
    void finish() const {
        for (auto it = v_.MemberBegin(); it != v_.MemberEnd(); ++it) {
            std::string k = it->name.GetString();
            if (!seen_.count(k)) throw ConfigError(at(k.c_str()), "unknown field");
        }
    }

  private:
    const Value &v_;
    std::string path_;
    std::set<std::string> seen_;
};

void parse_port(Obj &parent, const char *key, PortConfig &port) {
    const Value *v = parent.get(key);
    if (!v)
        throw ConfigError(parent.at(key),
                          "missing (every appliance has an inside and an outside port)");
    Obj o(*v, parent.at(key));
    o.str("device", port.device, true);
    if (port.device.empty())
        throw ConfigError(
            o.at("device"),
            "empty (expected a vdev like \"net_af_packet0,iface=veth0\" or a PCI address)");
    if (port.device.find(' ') != std::string::npos)
        throw ConfigError(o.at("device"), "must not contain spaces");
    o.uint("rx_desc", port.rx_desc, 64, 16384);
    o.uint("tx_desc", port.tx_desc, 64, 16384);
    o.uint("mtu", port.mtu, 576, 9000);
    if (const Value *a = o.get("addresses")) {
        if (!a->IsArray())
            throw ConfigError(o.at("addresses"), "must be an array of \"ADDRESS/LENGTH\"");
        for (rapidjson::SizeType i = 0; i < a->Size(); ++i) {
            const std::string at = o.at("addresses") + "[" + std::to_string(i) + "]";
            if (!(*a)[i].IsString()) throw ConfigError(at, "must be a string");
            port.addresses.push_back(parse_interface_address(at, (*a)[i].GetString()));
        }
    }
    o.finish();
}

// "mode": "routed": every route's next hop must be reachable through a port's connected prefix.
void check_routed(ApplianceConfig &c) {
    const PortConfig *ports[2] = {&c.inside, &c.outside};
    const char *names[2] = {c.geneve ? "ports.arm" : "ports.inside", "ports.outside"};
    bool any = false;
    for (int p = 0; p < 2; ++p) {
        for (size_t i = 0; i < ports[p]->addresses.size(); ++i) {
            const policy::IpPrefix &a = ports[p]->addresses[i];
            any = true;
            if (a.v6 && ports[p]->mtu && ports[p]->mtu < 1280)
                throw ConfigError(std::string(names[p]) + ".mtu",
                                  "must be at least 1280 on a port with an IPv6 address");
            // Connected prefixes of the two ports must not overlap: a destination in both would
            // have no one port to leave by.
            for (size_t j = 0; j < ports[p ^ 1]->addresses.size(); ++j) {
                const policy::IpPrefix &b = ports[p ^ 1]->addresses[j];
                if (a.v6 != b.v6) continue;
                policy::IpPrefix na = a, nb = b;
                const uint8_t l = std::min(a.len, b.len);
                na.len = nb.len = l;
                for (unsigned bit = l; bit < 128; ++bit) {
                    na.addr[bit / 8] &= static_cast<uint8_t>(~(0x80u >> (bit % 8)));
                    nb.addr[bit / 8] &= static_cast<uint8_t>(~(0x80u >> (bit % 8)));
                }
                if (p == 1 && na.addr == nb.addr)
                    throw ConfigError(
                        std::string(names[p]) + ".addresses[" + std::to_string(i) + "]",
                        a.str() + " overlaps ports.inside's " + b.str());
            }
        }
    }
    if (!any)
        throw ConfigError(c.geneve ? "ports.arm.addresses" : "ports.inside.addresses",
                          c.geneve ? "GENEVE mode needs the arm's address"
                                   : "routed mode needs at least one address on a port");
    for (size_t r = 0; r < c.routing.routes.size(); ++r) {
        RouteConfig &rt = c.routing.routes[r];
        const std::string at = "routing.routes[" + std::to_string(r) + "]";
        int found = -1;
        for (int p = 0; p < 2 && found < 0; ++p)
            for (const policy::IpPrefix &a : ports[p]->addresses) {
                policy::IpPrefix net = a;
                if (net.v6 == rt.via.v6 && net.contains(rt.via)) {
                    found = p;
                    break;
                }
            }
        if (found < 0)
            throw ConfigError(at + ".via", rt.via.str() + " is in no port's connected prefix");
        if (rt.port >= 0 && rt.port != found)
            throw ConfigError(at + ".port", "the next hop " + rt.via.str() + " is on " +
                                                std::string(names[found]) + "'s prefix");
        rt.port = found;
    }
}

}  // namespace

bool PortConfig::is_pci() const {
    // dddd:bb:dd.f or bb:dd.f
    auto colon = device.find(':');
    return colon != std::string::npos && device.find('.') != std::string::npos &&
           device.rfind("net_", 0) != 0;
}

std::string PortConfig::name() const {
    return device.substr(0, device.find(','));
}

ApplianceConfig parse_appliance_config(const std::string &json_text) {
    rapidjson::Document doc;
    doc.Parse<rapidjson::kParseCommentsFlag | rapidjson::kParseTrailingCommasFlag>(
        json_text.c_str());
    if (doc.HasParseError()) {
        throw ConfigError("(json)", std::string("parse error at offset ") +
                                        std::to_string(doc.GetErrorOffset()) + ": " +
                                        rapidjson::GetParseError_En(doc.GetParseError()));
    }
    ApplianceConfig c;
    Obj root(doc, "");

    if (const Value *v = root.get("eal")) {
        Obj o(*v, "eal");
        o.boolean("test_mode", c.eal.test_mode);
        o.str("file_prefix", c.eal.file_prefix);
        if (c.eal.file_prefix.empty() ||
            c.eal.file_prefix.find_first_of("/ \t") != std::string::npos)
            throw ConfigError("eal.file_prefix", "must be a non-empty name without '/' or spaces");
        o.uint("memory_mb", c.eal.memory_mb, 64, 1u << 20);
        o.str("lcores", c.eal.lcores);
        if (const Value *a = o.get("extra_args")) {
            if (!a->IsArray()) throw ConfigError("eal.extra_args", "must be an array of strings");
            for (rapidjson::SizeType i = 0; i < a->Size(); ++i) {
                if (!(*a)[i].IsString())
                    throw ConfigError("eal.extra_args[" + std::to_string(i) + "]",
                                      "must be a string");
                c.eal.extra_args.emplace_back((*a)[i].GetString());
            }
        }
        o.finish();
    }

    if (const Value *v = root.get("mode")) {
        if (!v->IsString()) throw ConfigError("mode", "must be a string");
        const std::string mode = v->GetString();
        if (mode == "routed")
            c.routed = true;
        else if (mode == "geneve")
            c.routed = c.geneve = true;
        else if (mode != "bump-in-the-wire")
            throw ConfigError("mode", "unknown mode \"" + mode +
                                          "\" (\"bump-in-the-wire\", \"routed\" or \"geneve\")");
    }
    {
        const Value *v = root.get("ports");
        if (!v)
            throw ConfigError("ports", c.geneve ? "missing (needs \"arm\")"
                                                : "missing (needs \"inside\" and \"outside\")");
        Obj o(*v, "ports");
        if (c.geneve) {
            // One arm: both directions arrive on and leave by one port. The workers see it as
            // both sides; the "outside" copy carries no addresses.
            parse_port(o, "arm", c.inside);
            o.finish();
            c.outside = c.inside;
            c.outside.addresses.clear();
        } else {
            parse_port(o, "inside", c.inside);
            parse_port(o, "outside", c.outside);
            o.finish();
            if (c.inside.name() == c.outside.name())
                throw ConfigError("ports.outside.device",
                                  "names the same device as ports.inside.device");
        }
    }
    if (const Value *v = root.get("geneve")) {
        if (!c.geneve) throw ConfigError("geneve", "only with \"mode\": \"geneve\"");
        Obj o(*v, "geneve");
        GeneveConfig &g = c.geneve_cfg;
        o.uint("udp_port", g.udp_port, 1, 65535);
        if (const Value *h = o.get("health_check")) {
            Obj ho(*h, o.at("health_check"));
            ho.uint("tcp_port", g.health_port, 1, 65535);
            ho.finish();
        }
        o.uint("inner_mtu", g.inner_mtu, 576, 9000);
        auto options = [&](const char *key, std::vector<GeneveOption> &out) {
            if (!o.has(key)) return;
            std::vector<std::string> texts;
            o.strings(key, texts);
            out.clear();
            for (size_t i = 0; i < texts.size(); ++i) {
                const std::string at = o.at(key) + "[" + std::to_string(i) + "]";
                // "CLASS:TYPE", both numbers (0x... hex or decimal), as tc's geneve_opts.
                const std::string &t = texts[i];
                const size_t colon = t.find(':');
                char *end = nullptr;
                unsigned long cls = 0, type = 0;
                bool ok = colon != std::string::npos && colon > 0 && colon + 1 < t.size();
                if (ok) {
                    cls = std::strtoul(t.substr(0, colon).c_str(), &end, 0);
                    ok = *end == '\0';
                }
                if (ok) {
                    type = std::strtoul(t.substr(colon + 1).c_str(), &end, 0);
                    ok = *end == '\0';
                }
                if (!ok || cls > 0xffff || type > 0x7f)
                    throw ConfigError(at,
                                      "must be \"CLASS:TYPE\" (class 0..0xffff, type "
                                      "0..0x7f without the critical bit), e.g. \"0x0108:1\"");
                out.push_back({static_cast<uint16_t>(cls), static_cast<uint8_t>(type)});
            }
            if (out.size() > 8) throw ConfigError(o.at(key), "at most 8 options");
        };
        options("endpoint_options", g.endpoint_options);
        options("options", g.options);
        o.uint("contexts", g.contexts, 64, 1u << 22);
        o.uint("endpoints", g.endpoints, 16, 65535);
        o.uint("context_idle_s", g.context_idle_s, 1, 86400 * 7);
        o.finish();
    }
    if (const Value *v = root.get("routing")) {
        if (!c.routed) throw ConfigError("routing", "only with \"mode\": \"routed\"");
        Obj o(*v, "routing");
        auto &r = c.routing;
        if (const Value *a = o.get("routes")) {
            if (!a->IsArray()) throw ConfigError("routing.routes", "must be an array");
            for (rapidjson::SizeType i = 0; i < a->Size(); ++i) {
                const std::string at = "routing.routes[" + std::to_string(i) + "]";
                Obj ro((*a)[i], at);
                RouteConfig rt;
                std::string prefix, via, port, problem;
                ro.str("prefix", prefix, true);
                ro.str("via", via, true);
                ro.str("port", port);
                ro.finish();
                if (!policy::parse_prefix(prefix, &rt.prefix, &problem))
                    throw ConfigError(at + ".prefix", problem);
                if (!policy::parse_prefix(via, &rt.via, &problem))
                    throw ConfigError(at + ".via", problem);
                if (rt.via.len != rt.via.max_len())
                    throw ConfigError(at + ".via", "must be an address, not a prefix");
                if (rt.via.v6 != rt.prefix.v6)
                    throw ConfigError(at + ".via", "must be of the prefix's address family");
                if (port == "inside")
                    rt.port = 0;
                else if (port == "outside")
                    rt.port = 1;
                else if (!port.empty())
                    throw ConfigError(at + ".port", "must be \"inside\" or \"outside\"");
                r.routes.push_back(rt);
            }
            if (r.routes.size() > 4096) throw ConfigError("routing.routes", "at most 4096 routes");
        }
        o.uint("neighbours", r.neighbours, 16, 1u << 20);
        o.uint("reachable_s", r.reachable_s, 1, 3600);
        o.uint("stale_s", r.stale_s, 1, 86400);
        o.uint("retrans_ms", r.retrans_ms, 10, 60000);
        o.uint("probes", r.probes, 1, 100);
        o.uint("hold_per_neighbour", r.hold_per_neighbour, 0, 64);
        o.uint("icmp_rate", r.icmp_rate, 0, 1000000);
        o.uint("icmp_burst", r.icmp_burst, 1, 1000000);
        o.finish();
    }
    if (!c.routed) {
        if (!c.inside.addresses.empty())
            throw ConfigError("ports.inside.addresses", "only with \"mode\": \"routed\"");
        if (!c.outside.addresses.empty())
            throw ConfigError("ports.outside.addresses", "only with \"mode\": \"routed\"");
    } else {
        check_routed(c);
    }

    root.uint("workers", c.workers, 1, 64);
    root.uint("burst", c.burst, 1, 64);
    root.uint("mbufs", c.mbufs, 1023, 1u << 24);

    if (const Value *v = root.get("idle")) {
        Obj o(*v, "idle");
        o.boolean("backoff", c.idle.backoff);
        o.uint("spin_polls", c.idle.spin_polls, 0, 1u << 30);
        o.uint("max_sleep_us", c.idle.max_sleep_us, 1, 100000);
        o.finish();
    }

    if (const Value *v = root.get("flows")) {
        Obj o(*v, "flows");
        o.uint("max_per_worker", c.flows.max_per_worker, 64, 1u << 26);
        if (const Value *t = o.get("timeouts_s")) {
            Obj ot(*t, "flows.timeouts_s");
            auto &to = c.flows.timeouts;
            ot.uint("tcp_handshake", to.tcp_handshake_s, 1, 86400);
            ot.uint("tcp_established", to.tcp_established_s, 1, 7 * 86400);
            ot.uint("tcp_closing", to.tcp_closing_s, 1, 86400);
            ot.uint("udp", to.udp_s, 1, 86400);
            ot.uint("other", to.other_s, 1, 86400);
            ot.uint("rejected", to.rejected_s, 1, 3600);
            ot.finish();
        }
        o.finish();
    }

    if (const Value *v = root.get("log")) {
        Obj o(*v, "log");
        o.str("level", c.log.level);
        static const std::set<std::string> levels = {"trace", "debug",    "info", "warn",
                                                     "error", "critical", "off"};
        if (!levels.count(c.log.level))
            throw ConfigError("log.level", "unknown level \"" + c.log.level +
                                               "\" (trace|debug|info|warn|error|critical|off)");
        o.str("file", c.log.file);
        o.finish();
    }

    if (const Value *v = root.get("paths")) {
        Obj o(*v, "paths");
        o.str("state_dir", c.state_dir);
        if (c.state_dir.empty()) throw ConfigError("paths.state_dir", "must not be empty");
        o.finish();
    }

    if (const Value *v = root.get("identity")) {
        Obj o(*v, "identity");
        auto &id = c.identity;
        o.str("enforcer_id", id.enforcer_id, true);
        o.str("enforcer_group", id.enforcer_group);
        o.strings("tags", id.tags);
        // With a Console, the key and certificates come from enrollment (state_dir).
        const bool console = root.has("console");
        o.str("key", id.key, !console);
        o.str("certificate", id.certificate, !console);
        o.str("trusted_cas", id.trusted_cas, !console);
        o.strings("peer_certificates", id.peer_certificates);
        o.str("policy_file", id.policy_file);
        std::string fail_mode = "closed";
        o.str("fail_mode", fail_mode);
        if (fail_mode != "closed" && fail_mode != "open")
            throw ConfigError(o.at("fail_mode"),
                              "must be \"closed\" or \"open\" (got \"" + fail_mode + "\")");
        id.fail_closed = fail_mode == "closed";
        if (o.has("fail_closed_networks")) {
            std::vector<std::string> nets;
            o.strings("fail_closed_networks", nets);
            id.fail_closed_networks.clear();
            for (size_t i = 0; i < nets.size(); ++i) {
                policy::IpPrefix p;
                std::string problem;
                if (!policy::parse_prefix(nets[i], &p, &problem))
                    throw ConfigError(o.at("fail_closed_networks") + "[" + std::to_string(i) + "]",
                                      problem);
                id.fail_closed_networks.push_back(p);
            }
        }
        if (id.enforcer_id.empty()) throw ConfigError(o.at("enforcer_id"), "must not be empty");
        if (id.enforcer_id.size() > 64 ||
            id.enforcer_id.find_first_not_of(
                "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.") !=
                std::string::npos)
            throw ConfigError(o.at("enforcer_id"),
                              "1-64 of A-Z a-z 0-9 - _ . (it is the certificate CN)");
        if (!id.enforcer_group.empty() &&
            (id.enforcer_group.size() > 64 ||
             id.enforcer_group.find_first_not_of(
                 "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.") !=
                 std::string::npos))
            throw ConfigError(o.at("enforcer_group"), "1-64 of A-Z a-z 0-9 - _ .");
        for (const std::string &t : id.tags)
            if (t.find('=') == std::string::npos || t[0] == '=')
                throw ConfigError("identity.tags", "\"" + t + "\" is not key=value");
        o.finish();
    }

    if (const Value *v = root.get("handshake")) {
        Obj o(*v, "handshake");
        auto &h = c.handshake;
        std::string reject = "rst";
        o.str("reject", reject);
        if (reject != "rst" && reject != "drop")
            throw ConfigError("handshake.reject",
                              "must be \"rst\" or \"drop\" (got \"" + reject + "\")");
        h.reject_with_rst = reject == "rst";
        o.uint("hold_per_flow", h.hold_per_flow, 1, 1024);
        o.uint("hold_total", h.hold_total, 16, 1u << 22);
        o.uint("kept_control", h.kept_control, 16, 1u << 22);
        o.uint("mbuf_reserve_percent", h.mbuf_reserve_percent, 5, 90);
        o.uint("per_source_percent", h.per_source_percent, 1, 100);
        o.uint("answers_per_source", h.answers_per_source, 0, 100000000);
        o.uint("midstream_resets_per_s", h.midstream_resets_per_s, 0, 100000000);
        o.uint("max_handshakes", h.max_handshakes, 16, 1u << 24);
        o.uint("peer_cache", h.peer_cache, 16, 1u << 22);
        o.uint("key_cache", h.key_cache, 16, 1u << 22);
        o.uint("slowpath_queue", h.slowpath_queue, 4, 65536);
        o.boolean("l4_tfo", h.l4_tfo);
        o.str("hmac", h.hmac);
        if (h.hmac != "auto" && h.hmac != "ipsec-mb" && h.hmac != "ipsec-mb-multi-buffer" &&
            h.hmac != "openssl")
            throw ConfigError("handshake.hmac",
                              "must be auto, ipsec-mb, ipsec-mb-multi-buffer or openssl (got \"" +
                                  h.hmac + "\")");
        // Claims are signed for 3 x key_rotation_s, and a claims blob may live at most 24 h
        // (crypto::kMaxClaimsLifetime): above 8 h no claims could be signed at all.
        o.uint("key_rotation_s", h.key_rotation_s, 10, 28800);
        o.finish();
    }

    if (const Value *v = root.get("dns")) {
        Obj o(*v, "dns");
        auto &d = c.dns;
        o.uint("queries_per_worker", d.queries_per_worker, 64, 1u << 22);
        o.uint("query_timeout_ms", d.query_timeout_ms, 100, 60000);
        o.uint("min_ttl_s", d.min_ttl_s, 0, 86400);
        o.uint("max_ttl_s", d.max_ttl_s, 1, 86400);
        if (d.min_ttl_s > d.max_ttl_s)
            throw ConfigError(o.at("min_ttl_s"), "must not exceed dns.max_ttl_s (" +
                                                     std::to_string(d.max_ttl_s) + ")");
        o.finish();
    }

    if (const Value *v = root.get("console")) {
        Obj o(*v, "console");
        auto &cc = c.console;
        // One URL, or a list of Console replicas' URLs (failover in that order).
        if (const Value *u = o.get("url"); u && u->IsArray()) {
            o.strings("url", cc.urls);
            if (cc.urls.empty())
                throw ConfigError("console.url",
                                  "an empty list (give one https:// URL or several)");
            for (size_t i = 0; i < cc.urls.size(); ++i)
                if (cc.urls[i].rfind("https://", 0) != 0)
                    throw ConfigError("console.url[" + std::to_string(i) + "]",
                                      "must be an https:// URL (got \"" + cc.urls[i] + "\")");
            cc.url = cc.urls[0];
        } else {
            o.str("url", cc.url);
            if (!cc.url.empty()) cc.urls = {cc.url};
        }
        o.str("ca", cc.ca);
        o.str("appcred", cc.appcred);
        o.str("realm", cc.realm);
        static const std::set<std::string> realms = {"Certificate", "AWSSecurityToken",
                                                     "GCPIdentityToken", "AzureIdentityToken"};
        if (!realms.count(cc.realm))
            throw ConfigError(
                "console.realm",
                "unknown realm \"" + cc.realm +
                    "\" (Certificate|AWSSecurityToken|GCPIdentityToken|AzureIdentityToken)");
        o.str("metadata_url", cc.metadata_url);
        o.str("audience", cc.audience);
        o.str("aws_sts_url", cc.aws_sts_url);
        o.str("aws_region", cc.aws_region);
        o.str("token_validity", cc.token_validity);
        o.str("enforcer_name", cc.enforcer_name);
        o.uint("poll_wait_s", cc.poll_wait_s, 0, 60);
        o.uint("heartbeat_s", cc.heartbeat_s, 1, 3600);
        o.uint("report_interval_s", cc.report_interval_s, 0, 86400);
        o.uint("peer_refresh_s", cc.peer_refresh_s, 1, 3600);
        o.uint("spool_max_bytes", cc.spool_max_bytes, 4096, uint64_t(1) << 40);
        o.uint("max_reports_per_interval", cc.max_reports_per_interval, 16, 1000000);
        o.uint("cache_max_age_s", cc.cache_max_age_s, 1, 366 * 86400);
        o.boolean("insecure_skip_verify", cc.insecure_skip_verify);
        if (cc.realm == "Certificate" && cc.appcred.empty())
            throw ConfigError("console.appcred", "required for realm Certificate");
        if (cc.realm != "Certificate" &&
            (cc.url.empty() || cc.ca.empty() || cc.metadata_url.empty()))
            throw ConfigError(cc.url.empty()  ? "console.url"
                              : cc.ca.empty() ? "console.ca"
                                              : "console.metadata_url",
                              "required for realm " + cc.realm);
        if (cc.realm != "Certificate" && cc.audience.empty())
            throw ConfigError(
                "console.audience",
                "required for realm " + cc.realm + ": the Console's deployment-specific audience");
        if (cc.realm == "AWSSecurityToken" && cc.aws_sts_url.rfind("https://", 0) != 0)
            throw ConfigError("console.aws_sts_url",
                              "must be an https:// URL (got \"" + cc.aws_sts_url + "\")");
        if (!cc.url.empty() && cc.url.rfind("https://", 0) != 0)
            throw ConfigError("console.url", "must be an https:// URL (got \"" + cc.url + "\")");
        o.finish();
        if (!root.has("identity"))
            throw ConfigError("identity", "required with a console (enforcer_id, tags)");
    }

    if (const Value *v = root.get("metrics")) {
        Obj o(*v, "metrics");
        auto &m = c.metrics;
        o.str("listen", m.listen, true);
        metrics::ListenAddress a;
        std::string problem;
        if (!metrics::parse_listen_address(m.listen, &a, &problem))
            throw ConfigError(o.at("listen"), problem);
        m.host = a.host;
        m.port = a.port;
        o.finish();
    }

    if (const Value *v = root.get("export")) {
        Obj o(*v, "export");
        auto &x = c.flow_export;
        o.uint("active_timeout_s", x.active_timeout_s, 1, 86400);
        if (const Value *j = o.get("jsonl")) {
            Obj oj(*j, "export.jsonl");
            oj.str("path", x.jsonl.path, true);
            if (x.jsonl.path.empty() || x.jsonl.path.back() == '/')
                throw ConfigError(oj.at("path"), "must name a file");
            oj.uint("rotate_bytes", x.jsonl.rotate_bytes, 1024, uint64_t(1) << 40);
            oj.uint("keep", x.jsonl.keep, 0, 1000);
            oj.finish();
        }
        if (const Value *i = o.get("ipfix")) {
            Obj oi(*i, "export.ipfix");
            oi.str("collector", x.ipfix.collector, true);
            std::string problem;
            if (!parse_host_port(x.ipfix.collector, &x.ipfix.host, &x.ipfix.port, &problem))
                throw ConfigError(oi.at("collector"), problem);
            oi.uint("observation_domain", x.ipfix.observation_domain, 0, UINT32_MAX);
            oi.uint("template_refresh_s", x.ipfix.template_refresh_s, 1, 86400);
            oi.finish();
        }
        o.finish();
        // Flows are decided and recorded by the identity stage: without one there is nothing.
        if (!root.has("identity"))
            throw ConfigError("export",
                              "needs an identity section (only an enforcer records flows)");
    }

    if (c.geneve) {
        GeneveConfig &g = c.geneve_cfg;
        // The contexts (outer headers) of a worker are found through the fake inner Ethernet
        // addresses its flows carry: a flow's packets must stay on the worker that decapsulated
        // them (docs/geneve.md "Limits").
        if (c.workers != 1) throw ConfigError("workers", "GENEVE mode runs one worker");
        const PortConfig &arm = c.inside;
        // GWLB's overhead: outer IPv4 20 + UDP 8 + GENEVE 8 + options 32 (ANCHORS §7).
        constexpr uint32_t kGwlbOverhead = 68;
        if (g.inner_mtu && arm.mtu && g.inner_mtu + kGwlbOverhead > arm.mtu)
            throw ConfigError("geneve.inner_mtu", std::to_string(g.inner_mtu) +
                                                      " + 68 bytes of GENEVE overhead "
                                                      "exceeds ports.arm.mtu " +
                                                      std::to_string(arm.mtu));
        const auto &to = c.flows.timeouts;
        const uint32_t longest = std::max(
            {to.tcp_handshake_s, to.tcp_established_s, to.tcp_closing_s, to.udp_s, to.other_s});
        if (!g.context_idle_s)
            g.context_idle_s = longest + 60;
        else if (g.context_idle_s <= longest)
            throw ConfigError(
                "geneve.context_idle_s",
                "must exceed the longest flow timeout (" + std::to_string(longest) +
                    " s): a flow's packets the identity stage builds use its context");
        if (g.health_port == g.udp_port && g.health_port)
            throw ConfigError("geneve.health_check.tcp_port", "is geneve.udp_port");
    }
    if (const Value *v = root.get("l7")) {
        Obj o(*v, "l7");
        auto &l = c.l7;
        l.enabled = true;
        o.str("exception", l.exception);
        if (l.exception != "tap" && l.exception != "virtio_user")
            throw ConfigError(o.at("exception"),
                              "must be \"tap\" or \"virtio_user\" (got \"" + l.exception + "\")");
        o.str("iface", l.iface);
        if (l.iface.empty() || l.iface.size() > 15 ||
            l.iface.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789-_.") !=
                std::string::npos)
            throw ConfigError(o.at("iface"), "must be a kernel interface name (1-15 of a-z0-9-_.)");
        o.uint("proxy_port", l.proxy_port, 1, 65535);
        o.uint("fwmark", l.fwmark, 1, UINT32_MAX);
        o.uint("table", l.table, 1, 252);
        o.str("setup", l.setup);
        std::vector<std::string> nets;
        o.strings("networks", nets);
        if (nets.empty())
            throw ConfigError(o.at("networks"),
                              "missing: the networks of clients and PUs the proxy answers");
        for (size_t i = 0; i < nets.size(); ++i) {
            policy::IpPrefix p;
            std::string problem;
            if (!policy::parse_prefix(nets[i], &p, &problem))
                throw ConfigError(o.at("networks") + "[" + std::to_string(i) + "]", problem);
            l.networks.push_back(p);
        }
        o.finish();
        if (c.routed) throw ConfigError("l7", "bump-in-the-wire mode only (routed mode: not yet)");
        if (!root.has("identity"))
            throw ConfigError("l7",
                              "needs an identity section (flows are steered after the handshake)");
    }

    root.finish();
    return c;
}

bool parse_host_port(const std::string &text, std::string *host, uint16_t *port,
                     std::string *problem) {
    std::string h, p;
    if (!text.empty() && text[0] == '[') {
        const size_t close = text.find(']');
        if (close == std::string::npos || close + 1 >= text.size() || text[close + 1] != ':') {
            *problem = "\"" + text + "\" is not [IPv6]:PORT";
            return false;
        }
        h = text.substr(1, close - 1);
        p = text.substr(close + 2);
    } else {
        const size_t colon = text.rfind(':');
        if (colon == std::string::npos || text.find(':') != colon) {
            *problem = "\"" + text + "\" is not HOST:PORT (an IPv6 address goes in brackets)";
            return false;
        }
        h = text.substr(0, colon);
        p = text.substr(colon + 1);
    }
    if (h.empty() || h.find_first_of(" \t/") != std::string::npos) {
        *problem = "\"" + text + "\" has no usable host";
        return false;
    }
    if (p.empty() || p.size() > 5 || p.find_first_not_of("0123456789") != std::string::npos ||
        std::stoul(p) < 1 || std::stoul(p) > 65535) {
        *problem = "\"" + text + "\" needs a port in 1..65535";
        return false;
    }
    *host = h;
    *port = static_cast<uint16_t>(std::stoul(p));
    return true;
}

ApplianceConfig load_appliance_config(const std::string &path) {
    std::ifstream in(path);
    if (!in) throw ConfigError("(file)", "cannot read config file " + path);
    std::stringstream ss;
    ss << in.rdbuf();
    return parse_appliance_config(ss.str());
}

}  // namespace segwire::config
