#include "tools/console/metrics.hpp"

#include <array>
#include <set>

#include "config/metrics/exposition.hpp"
#include "tools/console/util.hpp"
#include "version.hpp"

namespace segwire::console {
namespace {

constexpr std::array<const char *, 5> kReportKinds = {
    "flowreports", "dnslookupreports", "connectionexceptionreports", "eventlogs", "apicalls"};
constexpr std::array<const char *, 4> kRealms = {"Certificate", "AWSSecurityToken",
                                                 "GCPIdentityToken", "AzureIdentityToken"};

std::vector<std::string_view> segments(std::string_view path) {
    std::vector<std::string_view> out;
    size_t pos = 0;
    while (pos < path.size()) {
        if (path[pos] == '/') {
            ++pos;
            continue;
        }
        size_t end = path.find('/', pos);
        if (end == std::string_view::npos) end = path.size();
        out.push_back(path.substr(pos, end - pos));
        pos = end;
    }
    return out;
}

}  // namespace

std::string route_template(std::string_view path) {
    static const std::set<std::string_view, std::less<>> kSingle = {
        "issue",       "namespace",        "metrics",
        "healthz",     "readyz",           "auditlogs",
        "flowreports", "dnslookupreports", "connectionexceptionreports",
        "eventlogs",   "openapi.json",     "apicalls"};
    static const std::set<std::string_view, std::less<>> kCollections = {
        "processingunits",
        "networkrulesetpolicies",
        "externalnetworks",
        "enforcerprofiles",
        "enforcerprofilemappingpolicies",
        "appcreds",
        "services",
        "httpresourcespecs"};
    static const std::set<std::string_view, std::less<>> kEnforcerSub = {
        "approval", "enforcerprofiles", "policy", "heartbeat", "servicecertificates"};
    // Query strings are not part of req.path; a trailing slash is not a route of its own.
    const auto s = segments(path);
    if (s.size() == 1 && kSingle.count(s[0])) return "/" + std::string(s[0]);
    if (kCollections.count(s.size() ? s[0] : "") && s.size() <= 2)
        return "/" + std::string(s[0]) + (s.size() == 2 ? "/:id" : "");
    if (!s.empty() && s[0] == "enforcers") {
        if (s.size() == 1) return "/enforcers";
        if (s.size() == 2) return "/enforcers/:id";
        if (s.size() == 3 && kEnforcerSub.count(s[2])) return "/enforcers/:id/" + std::string(s[2]);
    }
    return "other";
}

std::string_view method_label(std::string_view method) {
    for (std::string_view m : {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
        if (method == m) return m;
    return "other";
}

void ConsoleMetrics::request(std::string_view method, std::string_view path, int status) {
    const std::string cls =
        status >= 100 && status < 600 ? std::to_string(status / 100) + "xx" : "other";
    auto key = std::make_tuple(std::string(method_label(method)), route_template(path), cls);
    std::lock_guard lock(mu_);
    ++c_.requests[key];
}

void ConsoleMetrics::token_issued(std::string_view realm) {
    std::lock_guard lock(mu_);
    ++c_.tokens[std::string(realm)];
}

void ConsoleMetrics::reports(std::string_view kind, uint64_t stored, bool duplicate) {
    std::lock_guard lock(mu_);
    c_.reports[std::string(kind)] += stored;
    ++c_.batches[{std::string(kind), duplicate ? "duplicate" : "stored"}];
}

void ConsoleMetrics::pruned(std::string_view kind, uint64_t n) {
    std::lock_guard lock(mu_);
    c_.pruned[std::string(kind)] += n;
}

void ConsoleMetrics::prune_run() {
    std::lock_guard lock(mu_);
    ++c_.prune_runs;
}

void ConsoleMetrics::not_modified(std::string_view what) {
    std::lock_guard lock(mu_);
    ++c_.not_modified[std::string(what)];
}

void ConsoleMetrics::bundle_unchanged() {
    std::lock_guard lock(mu_);
    ++c_.bundles_unchanged;
}

ConsoleMetrics::Counts ConsoleMetrics::counts() const {
    Counts c;
    {
        std::lock_guard lock(mu_);
        c = c_;
    }
    c.long_polls_open = long_polls_.load();
    return c;
}

bool ConsoleState::ready() const {
    for (const auto &[name, problem] : checks)
        if (!problem.empty()) return false;
    return true;
}

std::string render_console_metrics(const ConsoleMetrics::Counts &c, const ConsoleState &st) {
    metrics::Exposition x;
    auto count = [](const auto &map, const auto &key) -> uint64_t {
        auto it = map.find(key);
        return it == map.end() ? 0 : it->second;
    };
    x.gauge("segwire_console_build_info",
            "The segwire-console build: version and git describe of the tree.")
        .sample(1, {{"version", kVersion}, {"build", kBuild}});
    x.gauge("segwire_console_start_time_seconds",
            "When this segwire-console process started (unix seconds).")
        .sample(static_cast<uint64_t>(st.start_unix));
    x.gauge("segwire_console_ready",
            "1 when /readyz answers 200: the database is usable and the CA is valid.")
        .sample_bool(st.ready());

    x.counter("segwire_console_http_requests_total",
              "Requests answered, by method, route (IDs replaced by :id) and status class.");
    for (const auto &[key, n] : c.requests) {
        const auto &[method, route, cls] = key;
        x.sample(n, {{"method", method}, {"route", route}, {"status_class", cls}});
    }
    x.counter("segwire_console_tokens_issued_total", "Tokens issued by POST /issue, by realm.");
    for (const char *realm : kRealms) x.sample(count(c.tokens, realm), {{"realm", realm}});
    x.counter("segwire_console_reports_ingested_total",
              "Reports stored from enforcers' batches, by kind (duplicates not counted again).");
    for (const char *kind : kReportKinds) x.sample(count(c.reports, kind), {{"kind", kind}});
    x.counter("segwire_console_report_batches_total",
              "Report batches received, by kind and result (stored, or duplicate: a retry of a "
              "stored batch).");
    for (const char *kind : kReportKinds)
        for (const char *result : {"stored", "duplicate"})
            x.sample(count(c.batches, std::make_pair(std::string(kind), std::string(result))),
                     {{"kind", kind}, {"result", result}});
    x.counter("segwire_console_reports_pruned_total",
              "Reports deleted because their timestamp is older than --retention, by kind.");
    for (const char *kind : kReportKinds) x.sample(count(c.pruned, kind), {{"kind", kind}});
    x.counter("segwire_console_retention_sweeps_total",
              "Retention sweeps completed (each deletes in bounded batches until nothing is "
              "older than --retention).")
        .sample(c.prune_runs);
    x.counter("segwire_console_not_modified_total",
              "304 Not Modified answers: \"policy\" (an enforcer's bundle ETag still current), "
              "\"certificates\" (GET /enforcers, the peer certificates unchanged).");
    for (const char *what : {"policy", "certificates"})
        x.sample(count(c.not_modified, what), {{"what", what}});
    x.counter("segwire_console_bundle_versions_unchanged_total",
              "New policy versions that left a waiting enforcer's bundle unchanged: its long-poll "
              "went on waiting (per-enforcer bundles, docs/console.md).")
        .sample(c.bundles_unchanged);
    x.counter("segwire_console_ingest_transactions_total",
              "Transactions that stored report batches (group commit: every batch that arrived "
              "while the previous one committed shares the next).")
        .sample(st.ingest_transactions);
    x.counter("segwire_console_ingest_batches_total",
              "Report batches (all kinds, API calls too) written by those transactions, "
              "duplicates included.")
        .sample(st.ingest_batches);
    x.gauge("segwire_console_report_retention_seconds",
            "How long reports are kept (--retention); 0: forever.")
        .sample(static_cast<uint64_t>(std::max<int64_t>(st.retention_seconds, 0)));
    x.gauge("segwire_console_long_polls_open",
            "Policy long-polls waiting now (each holds one server thread).")
        .sample(static_cast<uint64_t>(std::max<int64_t>(c.long_polls_open, 0)));

    x.gauge("segwire_console_enforcers_registered", "Enforcers registered.")
        .sample(st.enforcers_registered);
    x.gauge("segwire_console_enforcers_reachable",
            "Registered enforcers that sent a heartbeat within five minutes (the Console model's "
            "rule; the others are listed unreachable).")
        .sample(st.enforcers_reachable);
    x.gauge("segwire_console_revoked_certificates",
            "Certificates on the revocation list every bundle carries.")
        .sample(st.revoked_certificates);
    x.gauge("segwire_console_policy_version",
            "The policy version bundles carry (changes with every policy change).")
        .sample(st.policy_version);
    x.gauge("segwire_console_policy_objects", "Policy objects stored, by collection.");
    for (const auto &[kind, n] : st.policy_objects) x.sample(n, {{"collection", kind}});
    x.gauge("segwire_console_database_size_bytes",
            "Size of console.db (no sample when the file is gone).");
    if (st.database_bytes >= 0) x.sample(static_cast<uint64_t>(st.database_bytes));
    x.gauge("segwire_console_database_wal_size_bytes",
            "Size of console.db's write-ahead log (no sample when there is none).");
    if (st.wal_bytes >= 0) x.sample(static_cast<uint64_t>(st.wal_bytes));
    x.gauge("segwire_console_ca_expiry_timestamp_seconds",
            "When the Console CA (what enforcers trust) expires (unix seconds).")
        .sample(static_cast<uint64_t>(std::max<int64_t>(st.ca_not_after, 0)));
    return x.take();
}

std::string readiness_json(const ConsoleState &st) {
    rapidjson::StringBuffer buf;
    JsonWriter w(buf);
    w.StartObject();
    w.Key("ready");
    w.Bool(st.ready());
    w.Key("checks");
    w.StartObject();
    for (const auto &[name, problem] : st.checks)
        write_string(w, name.c_str(), problem.empty() ? "ok" : problem);
    w.EndObject();
    w.EndObject();
    return std::string(buf.GetString(), buf.GetSize());
}

}  // namespace segwire::console
