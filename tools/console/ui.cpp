#include "tools/console/ui.hpp"

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <set>
#include <vector>

#include <httplib.h>
#include <spdlog/spdlog.h>

#include "config/policy/error.hpp"
#include "tools/console/async_server.hpp"
#include "tools/console/db.hpp"
#include "tools/console/error.hpp"
#include "tools/console/util.hpp"

#ifndef SEGWIRE_UI_INSTALL_DIR
#define SEGWIRE_UI_INSTALL_DIR ""
#endif

namespace segwire::console {
namespace {

// Bounds of one answer: a window of a scan or a flood has many distinct peers and ports; the
// page is for looking at, so it gets the busiest edges and says it was cut.
constexpr size_t kMaxAddressesPerNode = 32;
constexpr size_t kMaxLookupsPerPu = 200;
constexpr size_t kMaxIpsPerLookup = 16;
constexpr int64_t kDefaultWindow = 3600;

bool ends_with(std::string_view s, std::string_view suffix) {
    return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

std::string service_name(int64_t proto, int64_t port) {
    std::string p = proto == 6    ? "tcp"
                    : proto == 17 ? "udp"
                    : proto == 1  ? "icmp"
                    : proto == 58 ? "icmp6"
                    : proto < 0   ? ""
                                  : std::to_string(proto);
    if (port < 0) return p.empty() ? "any" : p;
    return (p.empty() ? "" : p + "/") + std::to_string(port);
}

// What the Console knows about the objects a report may name.
struct Known {
    struct Object {
        std::string id, name;
        std::vector<std::string> tags;
    };
    std::map<std::string, Object> pus, networks;         // by ID
    std::map<std::string, std::string> network_by_name;  // name → ID
    std::map<std::string, std::string> policy_names;     // ID → name

    explicit Known(Db &db) {
        Stmt s(db,
               "SELECT kind, id, coalesce(json_extract(json, '$.name'), ''), "
               "coalesce(json_extract(json, '$.associatedTags'), '[]') FROM objects WHERE kind IN "
               "('processingunits', 'externalnetworks', 'networkrulesetpolicies')");
        while (s.step()) {
            const std::string kind = s.text(0), id = s.text(1), name = s.text(2);
            if (kind == "networkrulesetpolicies") {
                if (!name.empty()) policy_names[id] = name;
                continue;
            }
            Object o{id, name, {}};
            rapidjson::Document tags;
            tags.Parse(s.text(3).c_str());
            if (tags.IsArray())
                for (const auto &t : tags.GetArray())
                    if (t.IsString()) o.tags.emplace_back(t.GetString(), t.GetStringLength());
            if (kind == "processingunits") {
                pus[id] = std::move(o);
            } else {
                if (!name.empty()) network_by_name[name] = id;
                networks[id] = std::move(o);
            }
        }
    }

    // The external network a report names: enforcers send its name (control/enforcement.cpp),
    // other senders may send its ID.
    const Object *network(const std::string &id_or_name) const {
        if (auto it = networks.find(id_or_name); it != networks.end()) return &it->second;
        if (auto it = network_by_name.find(id_or_name); it != network_by_name.end())
            return &networks.at(it->second);
        return nullptr;
    }

    std::string policy(const std::string &id) const {
        auto it = policy_names.find(id);
        return it == policy_names.end() ? id : it->second;
    }
};

struct Node {
    std::string key, kind, id, name;
    std::vector<std::string> tags;
    bool known = false;
    std::set<std::string> addresses;  // external peers without a known network
};

struct Edge {
    std::string source, target;
    int64_t protocol = -1, port = -1;
    int64_t accepted = 0, rejected = 0, observed = 0, observed_rejected = 0;
    int64_t packets = 0, bytes = 0;
    int64_t first = INT64_MAX, last = 0;
    std::set<std::string> policies, rules, observed_policies, reasons, enforcers;
    int64_t total() const { return accepted + rejected; }
    // The colour class: a reject anywhere on the edge shows, then an observation-mode match.
    const char *cls() const {
        return rejected > 0 ? "rejected" : observed > 0 ? "observed" : "accepted";
    }
};

class Graph {
  public:
    explicit Graph(const Known &k) : known_(k) {}

    // The node of one end of a flow report (creating it): PUs by ID, external networks by name
    // or ID, a peer without either as its FQDN or in the one "unknown network" node.
    std::string endpoint(const std::string &type, const std::string &id, const std::string &ip,
                         const std::string &fqdn) {
        if (!id.empty() && id != "unknown") {
            const Known::Object *net = known_.network(id);
            bool is_pu =
                type == "ProcessingUnit" || (type.empty() && (known_.pus.count(id) || !net));
            if (is_pu) return pu(id);
            Node &n = node("ext:" + (net ? net->id : id), "external");
            if (n.name.empty()) {
                n.id = net ? net->id : id;
                n.name = net && !net->name.empty() ? net->name : id;
                if (net) n.tags = net->tags;
                n.known = net != nullptr;
            }
            return n.key;
        }
        if (!fqdn.empty()) {
            Node &n = node("fqdn:" + fqdn, "external");
            n.name = fqdn;
            return n.key;
        }
        if (type == "ProcessingUnit") {
            // A local PU the enforcer could not name (its policy was replaced meanwhile).
            Node &n = node("pu-ip:" + ip, "pu");
            n.name = ip.empty() ? "unknown PU" : ip;
            return n.key;
        }
        Node &n = node("ext:unknown", "external");
        n.name = "unknown network";
        if (!ip.empty() && n.addresses.size() < kMaxAddressesPerNode) n.addresses.insert(ip);
        return n.key;
    }

    std::string pu(const std::string &id) {
        Node &n = node("pu:" + id, "pu");
        if (n.name.empty()) {
            n.id = id;
            auto it = known_.pus.find(id);
            n.known = it != known_.pus.end();
            n.name = n.known && !it->second.name.empty() ? it->second.name : id;
            if (n.known) n.tags = it->second.tags;
        }
        return n.key;
    }

    Node &node(const std::string &key, const char *kind) {
        auto [it, fresh] = nodes_.try_emplace(key);
        if (fresh) {
            it->second.key = key;
            it->second.kind = kind;
        }
        return it->second;
    }

    std::map<std::string, Node> &nodes() { return nodes_; }

  private:
    const Known &known_;
    std::map<std::string, Node> nodes_;
};

void write_set(JsonWriter &w, const char *key, const std::set<std::string> &values) {
    w.Key(key);
    w.StartArray();
    for (const auto &v : values)
        if (!v.empty()) w.String(v.c_str(), static_cast<rapidjson::SizeType>(v.size()));
    w.EndArray();
}

void write_int(JsonWriter &w, const char *key, int64_t v) {
    w.Key(key);
    w.Int64(v);
}

struct Lookup {
    std::string name, action, reason;
    int64_t count = 0, last = 0;
    std::set<std::string> ips;
};

// since/until: RFC 3339 or unix seconds; a 400 naming the parameter otherwise.
int64_t time_param(const httplib::Request &req, const char *name, int64_t fallback) {
    if (!req.has_param(name)) return fallback;
    const std::string v = req.get_param_value(name);
    int64_t t = 0;
    if (!parse_time(v, &t))
        throw ConsoleError(400,
                           std::string(name) + ": \"" + v +
                               "\" is not a time (RFC 3339, e.g. 2026-12-03T08:00:00Z, or unix "
                               "seconds)",
                           name);
    return t;
}

void send_error(httplib::Response &res, const ConsoleError &e) {
    if (e.status() == 401) res.set_header("WWW-Authenticate", "Bearer");
    res.status = e.status();
    res.set_content(e.to_json(), "application/json");
}

}  // namespace

bool ui_public_path(std::string_view method, std::string_view path) {
    if (method != "GET" && method != "HEAD") return false;
    if (path == "/ui" || path == "/ui/") return true;
    if (path.substr(0, 4) != "/ui/") return false;
    for (std::string_view ext : {".html", ".js", ".css", ".png", ".svg", ".ico"})
        if (ends_with(path, ext)) return true;
    return false;
}

std::string default_ui_dir() {
    std::vector<std::filesystem::path> candidates;
    std::error_code ec;
    const auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
    if (!ec) {
        candidates.push_back(exe.parent_path() / "ui");
        candidates.push_back(exe.parent_path().parent_path() / "share" / "segwire" / "ui");
    }
    if (*SEGWIRE_UI_INSTALL_DIR) candidates.emplace_back(SEGWIRE_UI_INSTALL_DIR);
    for (const auto &c : candidates)
        if (std::filesystem::is_regular_file(c / "index.html", ec)) return c.string();
    return "";
}

std::string flowmap_json(Db &db, int64_t since, int64_t until, size_t max_edges) {
    std::lock_guard lock(db.mutex());
    Known known(db);
    Graph g(known);
    std::map<std::tuple<std::string, std::string, int64_t, int64_t>, Edge> edges;
    int64_t flows = 0;
    {
        // Grouped in SQLite: one row per distinct report content, whatever the window's size.
        // Addresses are kept only for ends without an ID (an unknown external peer).
        Stmt s(db, R"sql(
            SELECT coalesce(json_extract(json, '$.sourceType'), ''),
                   coalesce(json_extract(json, '$.sourceID'), '') AS sid,
                   CASE WHEN coalesce(json_extract(json, '$.sourceID'), '') IN ('', 'unknown')
                        THEN coalesce(json_extract(json, '$.sourceIP'), '') ELSE '' END,
                   coalesce(json_extract(json, '$.destinationType'), ''),
                   coalesce(json_extract(json, '$.destinationID'), ''),
                   CASE WHEN coalesce(json_extract(json, '$.destinationID'), '') IN ('', 'unknown')
                        THEN coalesce(json_extract(json, '$.destinationIP'), '') ELSE '' END,
                   coalesce(json_extract(json, '$.destinationFQDN'), ''),
                   CAST(coalesce(json_extract(json, '$.protocol'), '-1') AS INTEGER),
                   CAST(coalesce(json_extract(json, '$.destinationPort'), '-1') AS INTEGER),
                   coalesce(json_extract(json, '$.action'), ''),
                   coalesce(json_extract(json, '$.observedAction'), ''),
                   coalesce(json_extract(json, '$.policyID'), ''),
                   coalesce(json_extract(json, '$.observedPolicyID'), ''),
                   coalesce(json_extract(json, '$.ruleName'), ''),
                   coalesce(json_extract(json, '$.dropReason'), ''),
                   enforcer_id,
                   sum(CAST(coalesce(json_extract(json, '$.value'), '1') AS INTEGER)), sum(packets), sum(bytes),
                   min(ts), max(ts)
            FROM reports WHERE kind = 'flowreports' AND ts >= ? AND ts < ?
            GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16)sql");
        s.bind(1, since).bind(2, until);
        while (s.step()) {
            const std::string src = g.endpoint(s.text(0), s.text(1), s.text(2), "");
            const std::string dst = g.endpoint(s.text(3), s.text(4), s.text(5), s.text(6));
            const int64_t proto = s.i64(7), port = s.i64(8), n = s.i64(16);
            Edge &e = edges[{src, dst, proto, port}];
            e.source = src;
            e.target = dst;
            e.protocol = proto;
            e.port = port;
            const std::string action = s.text(9), observed = s.text(10);
            (action == "Reject" ? e.rejected : e.accepted) += n;
            if (observed == "Accept" || observed == "Reject") {
                e.observed += n;
                if (observed == "Reject") e.observed_rejected += n;
                if (!s.text(12).empty()) e.observed_policies.insert(known.policy(s.text(12)));
            }
            if (!s.text(11).empty()) e.policies.insert(known.policy(s.text(11)));
            e.rules.insert(s.text(13));
            e.reasons.insert(s.text(14));
            e.enforcers.insert(s.text(15));
            e.packets += s.i64(17);
            e.bytes += s.i64(18);
            e.first = std::min(e.first, s.i64(19));
            e.last = std::max(e.last, s.i64(20));
            flows += n;
        }
    }

    // DNS lookups per PU, and the addresses each name resolved to.
    std::map<std::string, std::map<std::pair<std::string, std::string>, Lookup>> dns;
    int64_t lookups = 0;
    {
        Stmt s(db, R"sql(
            SELECT coalesce(source_id, ''), coalesce(json_extract(json, '$.resolvedName'), ''),
                   coalesce(action, ''), coalesce(json_extract(json, '$.reason'), ''),
                   sum(CAST(coalesce(json_extract(json, '$.value'), '1') AS INTEGER)), max(ts)
            FROM reports WHERE kind = 'dnslookupreports' AND ts >= ? AND ts < ?
            GROUP BY 1, 2, 3, 4 ORDER BY 5 DESC)sql");
        s.bind(1, since).bind(2, until);
        while (s.step()) {
            auto &per_pu = dns[s.text(0)];
            Lookup &l = per_pu[{s.text(1), s.text(2)}];
            l.name = s.text(1);
            l.action = s.text(2);
            if (l.reason.empty()) l.reason = s.text(3);
            l.count += s.i64(4);
            l.last = std::max(l.last, s.i64(5));
            lookups += s.i64(4);
        }
        Stmt ips(db, R"sql(
            SELECT DISTINCT coalesce(r.source_id, ''),
                   coalesce(json_extract(r.json, '$.resolvedName'), ''), coalesce(r.action, ''),
                   j.value
            FROM reports r, json_each(r.json, '$.resolvedIPs') j
            WHERE r.kind = 'dnslookupreports' AND r.ts >= ? AND r.ts < ?)sql");
        ips.bind(1, since).bind(2, until);
        while (ips.step()) {
            auto pit = dns.find(ips.text(0));
            if (pit == dns.end()) continue;
            auto lit = pit->second.find({ips.text(1), ips.text(2)});
            if (lit != pit->second.end() && lit->second.ips.size() < kMaxIpsPerLookup)
                lit->second.ips.insert(ips.text(3));
        }
    }

    // The busiest edges when there are too many; the nodes they (and DNS) need.
    std::vector<const Edge *> kept;
    for (const auto &[k, e] : edges) kept.push_back(&e);
    std::stable_sort(kept.begin(), kept.end(),
                     [](const Edge *a, const Edge *b) { return a->total() > b->total(); });
    const bool truncated = kept.size() > max_edges;
    if (truncated) kept.resize(max_edges);
    std::set<std::string> used;
    for (const Edge *e : kept) used.insert({e->source, e->target});
    std::vector<std::string> dns_nodes;
    for (const auto &[pu_id, l] : dns) {
        dns_nodes.push_back(pu_id.empty() ? g.endpoint("ProcessingUnit", "", "", "") : g.pu(pu_id));
        used.insert(dns_nodes.back());
    }

    rapidjson::StringBuffer buf;
    JsonWriter w(buf);
    w.StartObject();
    write_string(w, "since", rfc3339(since));
    write_string(w, "until", rfc3339(until));
    write_int(w, "flows", flows);
    write_int(w, "dnsLookups", lookups);
    w.Key("truncated");
    w.Bool(truncated);
    w.Key("nodes");
    w.StartArray();
    for (const auto &[key, n] : g.nodes()) {
        if (!used.count(key)) continue;
        w.StartObject();
        write_string(w, "id", n.key);
        write_string(w, "kind", n.kind);
        write_string(w, "ID", n.id);
        write_string(w, "name", n.name);
        w.Key("known");
        w.Bool(n.known);
        write_strings(w, "tags", n.tags);
        if (!n.addresses.empty()) write_set(w, "addresses", n.addresses);
        w.EndObject();
    }
    w.EndArray();
    w.Key("edges");
    w.StartArray();
    size_t i = 0;
    for (const Edge *e : kept) {
        w.StartObject();
        write_string(w, "id", "e" + std::to_string(i++));
        write_string(w, "source", e->source);
        write_string(w, "target", e->target);
        write_int(w, "protocol", e->protocol);
        write_int(w, "port", e->port);
        write_string(w, "service", service_name(e->protocol, e->port));
        write_string(w, "class", e->cls());
        write_int(w, "accepted", e->accepted);
        write_int(w, "rejected", e->rejected);
        write_int(w, "observed", e->observed);
        write_int(w, "observedRejected", e->observed_rejected);
        write_int(w, "packets", e->packets);
        write_int(w, "bytes", e->bytes);
        write_set(w, "policies", e->policies);
        write_set(w, "rules", e->rules);
        write_set(w, "observedPolicies", e->observed_policies);
        write_set(w, "reasons", e->reasons);
        write_set(w, "enforcers", e->enforcers);
        write_string(w, "first", rfc3339(e->first));
        write_string(w, "last", rfc3339(e->last));
        w.EndObject();
    }
    w.EndArray();
    w.Key("dns");
    w.StartArray();
    size_t d = 0;
    for (const auto &[pu_id, per_pu] : dns) {
        const Node &n = g.nodes().at(dns_nodes[d++]);
        std::vector<const Lookup *> ls;
        for (const auto &[k, l] : per_pu) ls.push_back(&l);
        std::stable_sort(ls.begin(), ls.end(),
                         [](const Lookup *a, const Lookup *b) { return a->count > b->count; });
        if (ls.size() > kMaxLookupsPerPu) ls.resize(kMaxLookupsPerPu);
        w.StartObject();
        write_string(w, "node", n.key);
        write_string(w, "ID", pu_id);
        write_string(w, "name", n.name);
        w.Key("lookups");
        w.StartArray();
        for (const Lookup *l : ls) {
            w.StartObject();
            write_string(w, "name", l->name);
            write_string(w, "action", l->action);
            if (!l->reason.empty()) write_string(w, "reason", l->reason);
            write_int(w, "count", l->count);
            write_set(w, "resolvedIPs", l->ips);
            write_string(w, "last", rfc3339(l->last));
            w.EndObject();
        }
        w.EndArray();
        w.EndObject();
    }
    w.EndArray();
    w.EndObject();
    return std::string(buf.GetString(), buf.GetSize());
}

void install_ui(Router &svr, const std::string &ui_dir, Db &db,
                std::function<Caller(const httplib::Request &)> authorize) {
    // The page's files hold no data: served without a credential (the browser has none yet).
    // A strict CSP: the page runs only its own scripts, and talks only to this Console.
    if (ui_dir.empty() || !std::filesystem::is_directory(ui_dir)) {
        spdlog::warn("flow map page: no UI directory ({}): /ui answers 404; give --ui-dir",
                     ui_dir.empty() ? "none found" : ui_dir);
    } else if (svr.set_mount_point(
                   "/ui/", ui_dir,
                   {{"Content-Security-Policy",
                     "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
                     "frame-ancestors 'none'"},
                    {"X-Content-Type-Options", "nosniff"},
                    {"Cache-Control", "no-cache"}})) {
        spdlog::info("flow map page: /ui/ serves {}", ui_dir);
    }
    svr.Get("/ui",
            [](const httplib::Request &, httplib::Response &res) { res.set_redirect("/ui/"); });
    svr.Get("/ui/flowmap", [&db, authorize](const httplib::Request &req, httplib::Response &res) {
        try {
            Caller c = authorize(req);
            require_role(c, {Role::kAdmin, Role::kReader}, "GET /ui/flowmap");
            const int64_t now = now_unix();
            const int64_t until = time_param(req, "until", now + 1);
            const int64_t since = time_param(req, "since", until - kDefaultWindow);
            if (since >= until)
                throw ConsoleError(
                    400,
                    "since: " + rfc3339(since) + " is not before until (" + rfc3339(until) + ")",
                    "since");
            res.status = 200;
            res.set_header("Cache-Control", "no-store");
            res.set_content(flowmap_json(db, since, until), "application/json");
        } catch (const ConsoleError &e) {
            send_error(res, e);
        } catch (const std::exception &e) {
            spdlog::error("GET /ui/flowmap: {}", e.what());
            send_error(res, ConsoleError(500, std::string("internal error: ") + e.what()));
        }
    });
}

}  // namespace segwire::console
