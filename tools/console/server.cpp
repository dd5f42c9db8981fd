#include "tools/console/server.hpp"

#include <fcntl.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <optional>
#include <regex>
#include <thread>
#include <unordered_map>

#include <httplib.h>
#include <spdlog/spdlog.h>

#include "config/metrics/exposition.hpp"
#include "config/policy/error.hpp"
#include "config/policy/syntax.hpp"
#include "tools/console/apicalls.hpp"
#include "tools/console/async_server.hpp"
#include "tools/console/appcreds.hpp"
#include "tools/console/audit.hpp"
#include "tools/console/authz.hpp"
#include "tools/console/aws.hpp"
#include "tools/console/console_pki.hpp"
#include "tools/console/db.hpp"
#include "tools/console/enforcers.hpp"
#include "tools/console/ingest.hpp"
#include "tools/console/error.hpp"
#include "tools/console/jwt.hpp"
#include "tools/console/metrics.hpp"
#include "tools/console/openapi.hpp"
#include "tools/console/paging.hpp"
#include "tools/console/policy_store.hpp"
#include "tools/console/realms.hpp"
#include "tools/console/reports.hpp"
#include "tools/console/ui.hpp"
#include "tools/console/util.hpp"

namespace segwire::console {

namespace {

constexpr int64_t kMaxTokenValidity = 24 * 3600;
constexpr int64_t kMaxWait = 60;

// An ASN1_TIME as unix seconds (0 when unreadable).
int64_t asn1_unix(const ASN1_TIME *t) {
    struct tm tm {};
    return t && ASN1_TIME_to_tm(t, &tm) == 1 ? static_cast<int64_t>(timegm(&tm)) : 0;
}

void send_json(httplib::Response &res, int status, const std::string &body) {
    res.status = status;
    res.set_content(body, "application/json");
}

void send_error(httplib::Response &res, const ConsoleError &e) {
    if (e.status() == 401) res.set_header("WWW-Authenticate", "Bearer");
    send_json(res, e.status(), e.to_json());
}

std::string bearer_token(const httplib::Request &req) {
    std::string h = req.get_header_value("Authorization");
    if (h.empty())
        throw ConsoleError(401, "missing Authorization: Bearer <token> (get one from POST /issue)",
                           "Authorization");
    if (h.size() < 8 || strncasecmp(h.c_str(), "Bearer ", 7) != 0)
        throw ConsoleError(401, "Authorization header is not \"Bearer <token>\"", "Authorization");
    return h.substr(7);
}

int64_t int_param(const httplib::Request &req, const char *name, int64_t lo, int64_t hi,
                  int64_t fallback) {
    if (!req.has_param(name)) return fallback;
    std::string v = req.get_param_value(name);
    char *end = nullptr;
    long long n = std::strtoll(v.c_str(), &end, 10);
    if (v.empty() || *end || n < lo || n > hi)
        throw ConsoleError(400,
                           std::string(name) + ": \"" + v + "\" is not an integer in " +
                               std::to_string(lo) + ".." + std::to_string(hi),
                           name);
    return n;
}

// Every list refuses parameters it does not know (a misspelt filter would otherwise widen the
// answer silently) and parameters given twice.
void check_params(const httplib::Request &req, std::initializer_list<const char *> known) {
    for (auto it = req.params.begin(); it != req.params.end();) {
        const std::string &name = it->first;
        if (req.params.count(name) > 1)
            throw ConsoleError(400, name + ": given more than once", name);
        bool ok = false;
        for (const char *k : known) ok = ok || name == k;
        if (!ok) {
            std::string list;
            for (const char *k : known) list += (list.empty() ? "" : ", ") + std::string(k);
            throw ConsoleError(
                400, name + ": not a parameter of GET " + req.path + " (known: " + list + ")",
                name);
        }
        it = req.params.upper_bound(name);
    }
}

// limit, order and cursor (paging.hpp). Object lists (`whole` true) answer everything in one
// array when neither limit nor cursor is given: enforcers read every peer that way, and an
// operator's objects are few; reports and logs always page.
PageRequest page_request(const httplib::Request &req, std::string_view list, bool whole) {
    PageRequest p;
    if (req.has_param("order")) {
        const std::string v = req.get_param_value("order");
        if (v != "asc" && v != "desc")
            throw ConsoleError(400, "order: \"" + v + "\" is not one of asc|desc", "order");
        p.descending = v == "desc";
    }
    p.all = whole && !req.has_param("limit") && !req.has_param("cursor");
    p.limit = int_param(req, "limit", 1, kMaxPageLimit, kDefaultPageLimit);
    if (req.has_param("cursor"))
        p.after = decode_cursor(req.get_param_value("cursor"), list, p.descending);
    return p;
}

// since/until: RFC 3339 or unix seconds; until (exclusive) must come after since.
void time_range(const httplib::Request &req, int64_t *since, int64_t *until) {
    for (auto [name, out] : {std::pair{"since", since}, std::pair{"until", until}})
        if (req.has_param(name) && !parse_time(req.get_param_value(name), out))
            throw ConsoleError(400,
                               std::string(name) + ": \"" + req.get_param_value(name) +
                                   "\" is not RFC 3339 or unix seconds",
                               name);
    if (*since >= 0 && *until >= 0 && *until <= *since)
        throw ConsoleError(400, "until: not after since (the range is [since, until))", "until");
}

// The page as a JSON array; when rows follow, Link: <same request, cursor=…>; rel="next".
void send_page(const httplib::Request &req, httplib::Response &res, std::string_view list,
               const PageRequest &pr, const Page &page) {
    if (page.next_key) {
        std::string query;
        for (const auto &[k, v] : req.params) {
            if (k == "cursor") continue;
            query += (query.empty() ? "" : "&") + percent_encode(k) + "=" + percent_encode(v);
        }
        query += std::string(query.empty() ? "" : "&") +
                 "cursor=" + encode_cursor(list, pr.descending, *page.next_key);
        res.set_header("Link", "<" + req.path + "?" + query + ">; rel=\"next\"");
    }
    send_json(res, 200, page.json());
}

// If-None-Match: "7" (or W/"7", or a list): does it name `etag`?
bool etag_matches(const std::string &header, const std::string &etag);

// send_page with a strong ETag (hex SHA-256 of the page and its Link): a request whose
// If-None-Match names it gets 304 Not Modified and no body. True when it was a 304.
bool send_page_conditional(const httplib::Request &req, httplib::Response &res,
                           std::string_view list, const PageRequest &pr, const Page &page) {
    send_page(req, res, list, pr, page);
    const std::string etag =
        "\"" + hex(sha256(res.get_header_value("Link") + '\n' + res.body)) + "\"";
    res.set_header("ETag", etag);
    const std::string inm = req.get_header_value("If-None-Match");
    if (inm.empty() || !etag_matches(inm, etag)) return false;
    res.status = 304;
    res.body.clear();
    // cpp-httplib would still send the JSON content type: a 304 carries no body.
    res.headers.erase("Content-Type");
    return true;
}

// If-Match: "12" (or 12, W/"12"): the revision a writer read. Absent or "*": none.
std::optional<uint64_t> if_match(const httplib::Request &req) {
    if (!req.has_header("If-Match")) return std::nullopt;
    std::string v = req.get_header_value("If-Match");
    v.erase(0, v.find_first_not_of(' '));
    v.erase(v.find_last_not_of(' ') + 1);
    if (v == "*") return std::nullopt;
    if (v.rfind("W/", 0) == 0) v.erase(0, 2);
    if (v.size() >= 2 && v.front() == '"' && v.back() == '"') v = v.substr(1, v.size() - 2);
    char *end = nullptr;
    unsigned long long n = std::strtoull(v.c_str(), &end, 10);
    if (v.empty() || *end || v[0] == '-')
        throw ConsoleError(400,
                           "If-Match: \"" + req.get_header_value("If-Match") +
                               "\" is not a revision (the ETag a GET returned)",
                           "If-Match");
    return n;
}

// If-None-Match: "7" (or W/"7", or a list): does it name `etag`?
bool etag_matches(const std::string &header, const std::string &etag) {
    size_t pos = 0;
    while (pos < header.size()) {
        size_t comma = header.find(',', pos);
        std::string item = header.substr(pos, comma == std::string::npos ? comma : comma - pos);
        pos = comma == std::string::npos ? header.size() : comma + 1;
        item.erase(0, item.find_first_not_of(' '));
        if (item.rfind("W/", 0) == 0) item.erase(0, 2);
        if (item == "*" || item == etag) return true;
    }
    return false;
}

class Console {
  public:
    explicit Console(const ServerOptions &opt)
        : opt_(opt),
          db_(database_location(opt.data_dir, opt.database)),
          pki_(ConsolePki::load_or_create(opt.data_dir, opt.ca_cert, opt.ca_key)),
          signer_(make_signer(opt.data_dir)),
          store_(db_),
          enforcers_(db_, pki_, opt.cert_validity),
          gcp_("GCPIdentityToken", opt.realms.gcp.jwks, opt.realms.gcp.audience,
               opt.realms.cloud_ca),
          azure_("AzureIdentityToken", opt.realms.azure.jwks, opt.realms.azure.audience,
                 opt.realms.cloud_ca),
          start_unix_(now_unix()) {
        if (auto ca = crypto::cert_from_pem(pki_.ca_pem())) {
            ca_not_before_ = asn1_unix(X509_get0_notBefore(ca->get()));
            ca_not_after_ = asn1_unix(X509_get0_notAfter(ca->get()));
        }
        // Replicas (PostgreSQL): a policy version made through another replica wakes this one's
        // long-polls at once. (apply_revocations' 250 ms check refreshes too: the fallback while
        // the listening connection is down.)
        db_.listen(kPolicyChannel, [this](const std::string &) {
            if (store_.refresh())
                spdlog::info("policy version {} (written by another replica)",
                             store_.snapshot().version);
        });
    }
    ~Console() { db_.stop_listening(); }

    PolicyStore &store() { return store_; }
    Db &db() { return db_; }
    ConsolePki &pki() { return pki_; }

    void reload_policy() {
        if (opt_.policy_dir.empty()) return;
        size_t n = store_.load_dir(opt_.policy_dir);
        spdlog::info("policy directory {}: {} object(s) changed, version {}", opt_.policy_dir, n,
                     store_.snapshot().version);
    }

    void install(Router &svr);
    // The --metrics-listen server: /metrics, /healthz, /readyz without credentials.
    void install_metrics(httplib::Server &svr);

    // A revocation (API, or the CLI writing the database while the server runs) gets a new
    // policy version, so every enforcer's long-poll returns at once with the new list. Called
    // after an API revoke, at start and every second (the CLI's). True when a version was made.
    bool apply_revocations() {
        return store_.bump_version([&] {
            const std::string seq = db_.meta("revocation_seq", "0");
            if (seq == db_.meta("revocation_seq_applied", "0")) return false;
            db_.set_meta("revocation_seq_applied", seq);
            return true;
        });
    }

    // One retention sweep: deletes every report older than --retention, kind by kind, in batches
    // of kPruneBatch rows, each its own short transaction. Between two batches the sweep sleeps as
    // long as the last one held the database: std::mutex is not fair, and a sweep that took the
    // lock straight back starved report batches and reads for over a second (measured on a
    // million rows; docs/console.md, "Retention"). Returns the reports deleted.
    uint64_t sweep_retention(const std::atomic<bool> &stopping) {
        if (opt_.retention <= 0) return 0;
        constexpr size_t kPruneBatch = 1000;
        const int64_t cutoff = now_unix() - opt_.retention;
        uint64_t total = 0;
        for (ReportKind k : {ReportKind::kFlow, ReportKind::kDnsLookup,
                             ReportKind::kConnectionException, ReportKind::kEventLog}) {
            for (;;) {
                const auto t0 = std::chrono::steady_clock::now();
                const size_t n = prune_reports(db_, k, cutoff, kPruneBatch);
                metrics_.pruned(report_kind_name(k), n);
                total += n;
                if (n < kPruneBatch || stopping.load()) break;
                std::this_thread::sleep_for(std::max<std::chrono::steady_clock::duration>(
                    std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(1)));
            }
        }
        for (;;) {
            const auto t0 = std::chrono::steady_clock::now();
            const size_t n = prune_apicalls(db_, cutoff, kPruneBatch);
            metrics_.pruned("apicalls", n);
            total += n;
            if (n < kPruneBatch || stopping.load()) break;
            std::this_thread::sleep_for(std::max<std::chrono::steady_clock::duration>(
                std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(1)));
        }
        metrics_.prune_run();
        return total;
    }

    // POST /enforcers/{id}/servicecertificates: {"service", "csr"} → {"certificate"}. The
    // service must be TLSType "Aporeto" and select a PU this enforcer hosts; every SAN the CSR
    // asks for must be one of the service's hosts (403 naming the SAN).
    std::string service_certificate(const std::string &enforcer_id, const std::string &body) {
        rapidjson::Document doc = parse_json_object(body);
        const std::string name = get_string(doc, "service", "service", true);
        const std::string csr_pem = get_string(doc, "csr", "csr", true);
        enforcers_.require(enforcer_id);
        auto snap = store_.snapshot();
        const policy::Service *svc = nullptr;
        for (const auto &s : snap.set->services)
            if (s.name == name) svc = &s;
        if (!svc) throw ConsoleError(404, "service: \"" + name + "\" not found", "service");
        if (svc->tls_type != "Aporeto")
            throw ConsoleError(422,
                               "service: \"" + name + "\" has TLSType \"" + svc->tls_type +
                                   "\"; the Console issues certificates for \"Aporeto\" only",
                               "service");
        policy::ParsedExpression sel;
        std::string where, problem;
        policy::parse_tag_expression(svc->selector, &sel, &where, &problem);
        bool hosted = false;
        for (const auto &pu : snap.set->processing_units)
            hosted = hosted || (pu.enforcer_id == enforcer_id &&
                                policy::expression_matches(sel, policy::effective_tags(pu)));
        if (!hosted)
            throw ConsoleError(
                403, "service: \"" + name + "\" selects no PU hosted by enforcer " + enforcer_id,
                "service");
        CsrInfo csr = pki_.parse_csr(csr_pem, "csr");
        std::vector<std::string> sans = ConsolePki::csr_sans(csr);
        if (sans.empty())
            throw ConsoleError(422, "csr: requests no subjectAltName (the service's hosts)", "csr");
        for (const std::string &san : sans) {
            bool ok = false;
            for (const std::string &h : svc->hosts)
                ok = ok || strcasecmp(h.c_str(), san.c_str()) == 0;
            if (!ok)
                throw ConsoleError(403,
                                   "csr: subjectAltName \"" + san + "\" is not one of service \"" +
                                       name + "\"'s hosts",
                                   "csr");
        }
        std::string pem =
            pki_.sign_service_csr(csr, sans, std::chrono::seconds(opt_.cert_validity));
        spdlog::info("service certificate for {} ({} names) issued to enforcer {}", name,
                     sans.size(), enforcer_id);
        rapidjson::StringBuffer buf;
        JsonWriter w(buf);
        w.StartObject();
        write_string(w, "certificate", pem);
        w.EndObject();
        return std::string(buf.GetString(), buf.GetSize());
    }

  private:
    static TokenSigner make_signer(const std::string &dir) {
        std::string kid;
        auto key = load_or_create_token_key(dir, &kid);
        return TokenSigner(std::move(key), kid);
    }

    rapidjson::Document authenticate(const httplib::Request &req) {
        return signer_.verify(bearer_token(req), now_unix());
    }

    // The verified caller of a request. A token obtained with an app credential stops working
    // when the credential is revoked.
    Caller authorize(const httplib::Request &req) {
        Caller c = caller_from_claims(authenticate(req));
        if (c.realm == "Certificate") {
            auto cred = find_app_credential(db_, c.appcred_id);
            if (!cred || cred->revoked)
                throw ConsoleError(401,
                                   "app credential \"" + c.appcred_id +
                                       "\" that obtained this token " +
                                       (cred ? "was revoked at " + rfc3339(cred->revoked)
                                             : std::string("does not exist")),
                                   "Authorization");
        }
        return c;
    }

    // SHA-256 of the TLS client certificate, "" when there is none.
    static std::string tls_client_fingerprint(const httplib::Request &req) {
        if (!req.ssl) return "";
        crypto::X509Ptr cert(SSL_get1_peer_certificate(req.ssl));
        return cert ? cert_fingerprint(cert.get()) : "";
    }

    // A long-poll with nothing new is parked by the transport (async_server.hpp), holding no
    // thread: it runs the handler again once the version moves past `version` (any change, a
    // replica's NOTIFY, a revocation, a reload, shutdown), with `wait` = what is left of it, or
    // when `wait` seconds pass, with wait=0.
    [[noreturn]] void park_long_poll(uint64_t version, int64_t wait) {
        struct Open {
            explicit Open(ConsoleMetrics &m) : poll(m.long_poll()) {}
            ConsoleMetrics::LongPoll poll;  // segwire_console_long_polls_open while parked
        };
        throw ParkRequest{version, std::chrono::seconds(wait), std::make_shared<Open>(metrics_)};
    }

    void issue(const httplib::Request &req, httplib::Response &res);
    void policy_bundle(const httplib::Request &req, httplib::Response &res);
    TaggedBundle enforcer_bundle(const EnforcerRecord &r, const PolicyStore::Snapshot &snap,
                                 bool need_body);
    bool bundle_changed(const EnforcerRecord &r, const std::string &inm,
                        const PolicyStore::Snapshot &snap, TaggedBundle *out);
    // GET /enforcers for an enforcer: the peer list and its ETag (certificates_response).
    std::pair<std::string, std::string> peers_response(const PageRequest &pr);

    // What /metrics and /readyz read at each request (docs/metrics.md).
    ConsoleState state();
    std::string database_problem();
    std::string ca_problem() const;
    // The routes every listener serves the same way.
    template <class Server>
    void install_health(Server &svr);
    void send_metrics(httplib::Response &res);

    const ServerOptions &opt_;
    Db db_;
    ConsolePki pki_;
    TokenSigner signer_;
    PolicyStore store_;
    EnforcerRegistry enforcers_;
    JwksVerifier gcp_, azure_;
    ConsoleMetrics metrics_;
    IngestQueue ingest_{db_};  // report batches: one writer, one transaction per group
    int64_t start_unix_;
    int64_t ca_not_before_ = 0, ca_not_after_ = 0;
    // enforcer_bundle's ETags: enforcer ID → the version and registration it was computed for.
    struct BundleTag {
        uint64_t version = 0;
        std::string key, etag;
    };
    std::mutex bundle_mu_;
    std::unordered_map<std::string, BundleTag> bundle_etags_;
};

std::string Console::database_problem() {
    std::lock_guard lock(db_.mutex());
    // The open connection keeps working on a file that was deleted or renamed, so a query alone
    // would say "fine" while every write goes to a file the next start will not find.
    int moved = 0;
    if (!db_.postgres() &&
        sqlite3_file_control(db_.handle(), "main", SQLITE_FCNTL_HAS_MOVED, &moved) != SQLITE_OK)
        return std::string("cannot ask SQLite about console.db: ") + sqlite3_errmsg(db_.handle());
    if (moved)
        return "console.db was deleted or moved since the Console opened it (what it writes now "
               "is lost at the next start)";
    try {
        Stmt s(db_, "SELECT COUNT(*) FROM meta");
        s.step();
    } catch (const ConsoleError &e) {
        return e.what();
    }
    return "";
}

std::string Console::ca_problem() const {
    const int64_t now = now_unix();
    if (ca_not_after_ == 0) return "the Console CA certificate does not read";
    if (now < ca_not_before_)
        return "the Console CA is not valid before " + rfc3339(ca_not_before_);
    if (now > ca_not_after_) return "the Console CA expired at " + rfc3339(ca_not_after_);
    return "";
}

ConsoleState Console::state() {
    ConsoleState st;
    st.start_unix = start_unix_;
    auto snap = store_.snapshot();
    st.policy_version = snap.version;
    const policy::PolicySet &set = *snap.set;
    st.policy_objects = {{"processingunits", set.processing_units.size()},
                         {"networkrulesetpolicies", set.network_policies.size()},
                         {"externalnetworks", set.external_networks.size()},
                         {"enforcerprofiles", set.enforcer_profiles.size()},
                         {"enforcerprofilemappingpolicies", set.enforcer_profile_mappings.size()}};
    st.checks = {{"database", database_problem()}, {"ca", ca_problem()}};
    // A database that cannot answer leaves these at zero; /readyz and segwire_console_ready say
    // why.
    if (st.checks[0].second.empty()) {
        try {
            const EnforcerRegistry::Counts c = enforcers_.counts(now_unix());
            st.enforcers_registered = c.registered;
            st.enforcers_reachable = c.reachable;
            st.revoked_certificates = enforcers_.revoked_refs().size();
        } catch (const ConsoleError &e) {
            st.checks[0].second = e.what();
        }
    }
    std::error_code ec;
    const std::string path = opt_.data_dir + "/console.db";
    auto size = std::filesystem::file_size(path, ec);
    if (!ec) st.database_bytes = static_cast<int64_t>(size);
    size = std::filesystem::file_size(path + "-wal", ec);
    if (!ec) st.wal_bytes = static_cast<int64_t>(size);
    st.ca_not_after = ca_not_after_;
    st.retention_seconds = opt_.retention;
    const IngestQueue::Stats is = ingest_.stats();
    st.ingest_transactions = is.transactions;
    st.ingest_batches = is.batches;
    return st;
}

void Console::send_metrics(httplib::Response &res) {
    res.set_content(render_console_metrics(metrics_.counts(), state()), metrics::kContentType);
}

template <class Server>
void Console::install_health(Server &svr) {
    // /healthz: the process answers (no database, no lock: a liveness probe must not restart a
    // Console that is merely busy). /readyz: it can do its job.
    svr.Get("/healthz", [](const httplib::Request &, httplib::Response &res) {
        res.set_content("{\"alive\":true}", "application/json");
    });
    svr.Get("/readyz", [this](const httplib::Request &, httplib::Response &res) {
        ConsoleState st;
        st.checks = {{"database", database_problem()}, {"ca", ca_problem()}};
        res.status = st.ready() ? 200 : 503;
        res.set_content(readiness_json(st), "application/json");
    });
}

void Console::install_metrics(httplib::Server &svr) {
    install_health(svr);
    svr.Get("/metrics", [this](const httplib::Request &, httplib::Response &res) {
        try {
            send_metrics(res);
        } catch (const std::exception &e) {
            spdlog::error("metrics: {}", e.what());
            res.status = 500;
            res.set_content(std::string("metrics: ") + e.what() + "\n", "text/plain");
        }
    });
    svr.set_logger([this](const httplib::Request &req, const httplib::Response &res) {
        metrics_.request(req.method, req.path, res.status);
    });
}

// Identity claims of one realm: a subject, @auth: tags and realm-specific data.
struct Identity {
    std::string sub;
    std::vector<std::pair<std::string, std::string>> data;  // → "data" object and @auth: tags
};

std::string claim_string(const rapidjson::Value &obj, const char *path) {
    const rapidjson::Value *v = &obj;
    std::string p(path);
    size_t pos = 0;
    while (v && pos <= p.size()) {
        size_t dot = p.find('.', pos);
        std::string key = p.substr(pos, dot == std::string::npos ? dot : dot - pos);
        v = member(*v, key.c_str());
        if (dot == std::string::npos) break;
        pos = dot + 1;
    }
    if (!v) return "";
    if (v->IsString()) return v->GetString();
    if (v->IsInt64()) return std::to_string(v->GetInt64());
    return "";
}

void Console::issue(const httplib::Request &req, httplib::Response &res) {
    rapidjson::Document body = parse_json_object(req.body);
    std::string realm = get_string(body, "realm", "realm", true);
    int64_t validity = opt_.token_validity;
    std::string v = get_string(body, "validity", "validity", false);
    if (!v.empty()) {
        uint64_t secs = 0;
        std::string problem;
        if (!policy::parse_duration_seconds(v, &secs, &problem))
            throw ConsoleError(422, "validity: " + problem, "validity");
        if (secs > static_cast<uint64_t>(kMaxTokenValidity))
            throw ConsoleError(422, "validity: longer than the maximum 24h", "validity");
        validity = static_cast<int64_t>(secs);
    }
    static const rapidjson::Value kEmpty(rapidjson::kObjectType);
    const rapidjson::Value *meta = member(body, "metadata");
    if (meta && !meta->IsObject())
        throw ConsoleError(422, "metadata: must be a JSON object", "metadata");
    const rapidjson::Value &md = meta ? *meta : kEmpty;

    Identity id;
    std::string ns = store_.snapshot().set->ns.name;
    Role role = Role::kEnforcer;
    std::string enforcer_id;
    if (realm == "Certificate") {
        if (!req.ssl) throw ConsoleError(401, "realm Certificate needs TLS", "realm");
        X509 *peer = SSL_get1_peer_certificate(req.ssl);
        if (!peer)
            throw ConsoleError(401,
                               "realm Certificate needs a client certificate (an app credential) "
                               "on the TLS connection",
                               "realm");
        crypto::X509Ptr cert(peer);
        const std::string cn = crypto::cert_subject_cn(cert.get());
        // Only the app-credential CA: a datapath certificate (Console CA) is not a credential.
        std::string problem = pki_.verify_app_certificate(cert.get());
        if (!problem.empty())
            throw ConsoleError(401, "client certificate \"" + cn +
                                        "\" is not an app credential of this Console: not "
                                        "trusted by its app-credential CA (" +
                                        problem + ")");
        auto cred = find_app_credential_by_fingerprint(db_, cert_fingerprint(cert.get()));
        if (!cred)
            throw ConsoleError(
                401, "client certificate \"" + cn + "\" is not an app credential of this Console");
        if (cred->revoked)
            throw ConsoleError(401, "app credential \"" + cred->id + "\" (" + cred->name +
                                        ") was revoked at " + rfc3339(cred->revoked));
        auto r = role_from_name(cred->role);
        if (!r)
            throw ConsoleError(401, "app credential \"" + cred->id +
                                        "\" has no role (made before roles existed): create a "
                                        "new one with segwire-console appcred create --role");
        role = *r;
        enforcer_id = cred->enforcer_id;
        id.sub = cred->id;
        id.data = {{"appcredID", cred->id}, {"name", cred->name}, {"namespace", cred->ns}};
    } else if (realm == "AWSSecurityToken") {
        const AwsRealm &cfg = opt_.realms.aws;
        if (!cfg.configured)
            throw ConsoleError(401, "AWSSecurityToken is not enabled on this Console", "realm");
        AwsIdentity aws =
            aws_verify_presigned_request(cfg.endpoint, opt_.realms.cloud_ca, cfg.audience, md);
        check_aws_identity(cfg, aws.account, aws.arn);
        id.sub = aws.arn;
        id.data = {{"account", aws.account}, {"arn", aws.arn}, {"userid", aws.user_id}};
        // arn:aws:sts::<account>:assumed-role/<role>/<session>
        size_t ar = aws.arn.find(":assumed-role/");
        if (ar != std::string::npos) {
            std::string rest = aws.arn.substr(ar + 14);
            size_t slash = rest.find('/');
            id.data.emplace_back("rolename", rest.substr(0, slash));
            if (slash != std::string::npos) id.data.emplace_back("session", rest.substr(slash + 1));
        }
        enforcer_id = map_enforcer_id(realm, cfg.enforcer_id_rule, id.data);
    } else if (realm == "GCPIdentityToken" || realm == "AzureIdentityToken") {
        bool gcp = realm == "GCPIdentityToken";
        const JwtRealm &cfg = gcp ? opt_.realms.gcp : opt_.realms.azure;
        if (!cfg.configured)
            throw ConsoleError(401, realm + " is not enabled on this Console", "realm");
        std::string token = get_string(md, "token", "metadata.token", true);
        rapidjson::Document claims = (gcp ? gcp_ : azure_).verify(token, now_unix());
        id.sub = claim_string(claims, "sub");
        if (id.sub.empty())
            throw ConsoleError(401, realm + ": identity token has no sub", "metadata.token");
        auto add = [&](const char *name, const char *path) {
            std::string val = claim_string(claims, path);
            if (!val.empty()) id.data.emplace_back(name, val);
        };
        add("subject", "sub");
        add("issuer", "iss");
        if (gcp) {
            add("email", "email");
            add("projectid", "google.compute_engine.project_id");
            add("zone", "google.compute_engine.zone");
            add("instancename", "google.compute_engine.instance_name");
            add("instanceid", "google.compute_engine.instance_id");
        } else {
            add("tenantid", "tid");
            add("objectid", "oid");
            add("resourceid", "xms_mirid");
        }
        if (gcp)
            check_gcp_identity(cfg, claim_string(claims, "iss"),
                               claim_string(claims, "google.compute_engine.project_id"),
                               claim_string(claims, "email"));
        else
            check_azure_identity(cfg, claim_string(claims, "iss"), claim_string(claims, "tid"));
        enforcer_id = map_enforcer_id(realm, cfg.enforcer_id_rule, id.data);
    } else {
        throw ConsoleError(422,
                           "realm: \"" + realm +
                               "\" is not one of Certificate|AWSSecurityToken|GCPIdentityToken|"
                               "AzureIdentityToken",
                           "realm");
    }

    int64_t now = now_unix();
    rapidjson::Document claims(rapidjson::kObjectType);
    auto &a = claims.GetAllocator();
    auto str = [&](const std::string &s) { return rapidjson::Value(s.c_str(), a); };
    claims.AddMember("iss", "segwire-console", a);
    claims.AddMember("sub", str(id.sub), a);
    claims.AddMember("realm", str(realm), a);
    claims.AddMember("role", str(role_name(role)), a);
    if (role == Role::kEnforcer) claims.AddMember("enforcerID", str(enforcer_id), a);
    claims.AddMember("namespace", str(ns), a);
    claims.AddMember("iat", now, a);
    claims.AddMember("exp", now + validity, a);
    rapidjson::Value data(rapidjson::kObjectType), identity(rapidjson::kArrayType);
    std::string lower_realm = realm;
    std::transform(lower_realm.begin(), lower_realm.end(), lower_realm.begin(), ::tolower);
    identity.PushBack(str("@auth:realm=" + lower_realm), a);
    identity.PushBack(str(std::string("@auth:role=") + role_name(role)), a);
    if (role == Role::kEnforcer) identity.PushBack(str("@auth:enforcerid=" + enforcer_id), a);
    for (const auto &[k, val] : id.data) {
        data.AddMember(str(k), str(val), a);
        identity.PushBack(str("@auth:" + k + "=" + val), a);
    }
    claims.AddMember("data", data, a);
    claims.AddMember("identity", identity, a);

    rapidjson::StringBuffer buf;
    JsonWriter w(buf);
    w.StartObject();
    write_string(w, "token", signer_.sign(claims));
    w.EndObject();
    spdlog::info("issued {} token for {}, role {}{} (validity {}s)", realm, id.sub, role_name(role),
                 enforcer_id.empty() ? "" : " of enforcer " + enforcer_id, validity);
    metrics_.token_issued(realm);
    send_json(res, 200, std::string(buf.GetString(), buf.GetSize()));
}

// The per-enforcer bundle decision (docs/console.md, "Per-enforcer bundles"): enforcer r's ETag
// at `snap`, with the body when it had to be rendered to learn it (or `need_body`). The ETag is
// kept per enforcer for the version and registration it was computed for, so a long-poll woken
// by a version that does not concern it costs one render per enforcer and version at most.
TaggedBundle Console::enforcer_bundle(const EnforcerRecord &r, const PolicyStore::Snapshot &snap,
                                      bool need_body) {
    std::string key = r.name + '\n' + r.certificate;
    for (const auto &t : r.tags) key += '\n' + t;
    if (!need_body) {
        std::lock_guard lock(bundle_mu_);
        auto it = bundle_etags_.find(r.id);
        if (it != bundle_etags_.end() && it->second.version == snap.version &&
            it->second.key == key)
            return {it->second.etag, ""};
    }
    TaggedBundle b = render_enforcer_bundle(*snap.set, snap.version, r, pki_.ca_pem(),
                                            enforcers_.revoked_refs());
    std::lock_guard lock(bundle_mu_);
    bundle_etags_[r.id] = {snap.version, std::move(key), b.etag};
    return b;
}

// Does the policy at `snap` change what the enforcer holds (`inm`, its If-None-Match)? The one
// question a long-poll asks at each new version; `out` gets the ETag (and the body if rendered).
bool Console::bundle_changed(const EnforcerRecord &r, const std::string &inm,
                             const PolicyStore::Snapshot &snap, TaggedBundle *out) {
    *out = enforcer_bundle(r, snap, inm.empty());  // no If-None-Match: the body is wanted
    return inm.empty() || !etag_matches(inm, "\"" + out->etag + "\"");
}

void Console::policy_bundle(const httplib::Request &req, httplib::Response &res) {
    require_enforcer_or(authorize(req), req.matches[1], {Role::kAdmin, Role::kReader},
                        "GET /enforcers/" + req.matches[1].str() + "/policy");
    EnforcerRecord r = enforcers_.require(req.matches[1]);
    // Longer waits are clamped rather than refused: the client's own timeout is what matters.
    int64_t wait = std::min(int_param(req, "wait", 0, INT32_MAX, 0), kMaxWait);
    auto snap = store_.snapshot();
    std::string inm = req.get_header_value("If-None-Match");
    TaggedBundle b;
    bool changed = bundle_changed(r, inm, snap, &b);
    // Woken by a new version (the transport says so) that leaves this bundle as it was.
    if (!changed && req.has_header(kWokenHeader)) metrics_.bundle_unchanged();
    if (!changed && wait > 0) {
        // One line per long-poll: says who waits on what (and lets tests see the wait begin).
        spdlog::info("long-poll: enforcer {} waits up to {}s at version {}", r.id, wait,
                     snap.version);
        // Parked: no thread waits (async_server.hpp). The transport runs this handler again at
        // the next version with what is left of `wait` — a version that leaves this enforcer's
        // bundle as it was parks it again — or with wait=0 when the wait ends.
        park_long_poll(snap.version, wait);
    }
    if (!changed) {
        res.status = 304;
        res.set_header("ETag", "\"" + b.etag + "\"");
        // The version the unchanged bundle is current at (informational: the body's is older).
        res.set_header("X-Segwire-Policy-Version", std::to_string(snap.version));
        metrics_.not_modified("policy");
        return;
    }
    if (b.body.empty()) b = enforcer_bundle(r, snap, true);
    res.set_header("ETag", "\"" + b.etag + "\"");
    send_json(res, 200, b.body);
}

using Handler = std::function<void(const httplib::Request &, httplib::Response &)>;

// Every handler's exceptions become JSON errors.
Handler guarded(Handler h) {
    return [h = std::move(h)](const httplib::Request &req, httplib::Response &res) {
        try {
            h(req, res);
        } catch (const ConsoleError &e) {
            send_error(res, e);
        } catch (const policy::PolicyError &e) {
            send_error(res, ConsoleError::from_policy(e));
        } catch (const std::exception &e) {
            spdlog::error("{} {}: {}", req.method, req.path, e.what());
            send_error(res, ConsoleError(500, std::string("internal error: ") + e.what()));
        }
    };
}

void Console::install(Router &svr) {
    svr.set_pre_routing_handler([this](const httplib::Request &req, httplib::Response &res) {
        // /issue authenticates by its own means; probes, the API description and the flow map
        // page's static files (ui.hpp) carry no credential.
        if (req.path == "/issue" || req.path == "/healthz" || req.path == "/readyz" ||
            req.path == "/openapi.json" || ui_public_path(req.method, req.path))
            return Router::HandlerResponse::Unhandled;
        try {
            authenticate(req);
        } catch (const ConsoleError &e) {
            send_error(res, e);
            return Router::HandlerResponse::Handled;
        }
        return Router::HandlerResponse::Unhandled;
    });
    svr.set_error_handler([](const httplib::Request &req, httplib::Response &res) {
        if (!res.body.empty()) return;  // a handler already wrote a JSON error
        std::string msg = res.status == 404 ? "no such endpoint: " + req.method + " " + req.path
                                            : "HTTP " + std::to_string(res.status);
        res.set_content(ConsoleError(res.status, msg).to_json(), "application/json");
    });
    svr.set_logger([this](const httplib::Request &req, const httplib::Response &res) {
        spdlog::info("{} {} → {}", req.method, req.path, res.status);
        metrics_.request(req.method, req.path, res.status);
    });

    svr.Post("/issue", guarded([this](auto &req, auto &res) { issue(req, res); }));
    install_health(svr);
    // The API's description (OpenAPI 3.0) needs no credential: it says what the routes are,
    // which docs/console.md says too, and tools fetch it before they have a token.
    svr.Get("/openapi.json", [](const httplib::Request &, httplib::Response &res) {
        res.set_content(std::string(openapi_json()), "application/json");
    });
    // The flow map page and its data endpoint (docs/ui.md).
    install_ui(svr, opt_.ui_dir, db_,
               [this](const httplib::Request &req) { return authorize(req); });

    // Every route below checks role (and, for enforcer routes, whose ID) before anything else.
    auto what = [](const httplib::Request &req) { return req.method + " " + req.path; };
    auto admin = [this, what](const httplib::Request &req) {
        Caller c = authorize(req);
        require_role(c, {Role::kAdmin}, what(req));
        return c;
    };
    auto reader = [this, what](const httplib::Request &req) {
        Caller c = authorize(req);
        require_role(c, {Role::kAdmin, Role::kReader}, what(req));
        return c;
    };

    // On the API listener /metrics is a read like any other (admin or reader); the
    // --metrics-listen listener serves it without a credential (docs/metrics.md).
    svr.Get("/metrics", guarded([this, reader](auto &req, auto &res) {
                reader(req);
                send_metrics(res);
            }));

    svr.Get("/namespace", guarded([this, reader](auto &req, auto &res) {
                reader(req);
                uint64_t rev = 0;
                std::string body = store_.get_namespace(&rev);
                res.set_header("ETag", "\"" + std::to_string(rev) + "\"");
                send_json(res, 200, body);
            }));
    svr.Put("/namespace", guarded([this, admin](auto &req, auto &res) {
                Caller c = admin(req);
                send_json(res, 200, store_.put_namespace(req.body, actor_of(c), if_match(req)));
            }));

    const std::string coll =
        "/(processingunits|networkrulesetpolicies|externalnetworks|enforcerprofiles|"
        "enforcerprofilemappingpolicies|services|httpresourcespecs)";
    auto which = [](const httplib::Request &req) {
        Collection c{};
        collection_from_name(req.matches[1].str(), &c);
        return c;
    };
    svr.Get(coll, guarded([this, which, reader](auto &req, auto &res) {
                reader(req);
                check_params(req, {"limit", "cursor", "order"});
                const std::string list = req.matches[1].str();
                PageRequest pr = page_request(req, list, true);
                send_page(req, res, list, pr, store_.list(which(req), pr));
            }));
    svr.Post(coll, guarded([this, which, admin](auto &req, auto &res) {
                 Caller c = admin(req);
                 send_json(res, 201, store_.create(which(req), req.body, actor_of(c)));
             }));
    svr.Get(coll + "/([^/]+)", guarded([this, which, reader](auto &req, auto &res) {
                reader(req);
                uint64_t rev = 0;
                std::string body = store_.get(which(req), req.matches[2], &rev);
                res.set_header("ETag", "\"" + std::to_string(rev) + "\"");
                send_json(res, 200, body);
            }));
    svr.Put(coll + "/([^/]+)", guarded([this, which, admin](auto &req, auto &res) {
                Caller c = admin(req);
                send_json(res, 200,
                          store_.replace(which(req), req.matches[2], req.body, actor_of(c),
                                         if_match(req)));
            }));
    svr.Delete(coll + "/([^/]+)", guarded([this, which, admin](auto &req, auto &res) {
                   Caller c = admin(req);
                   store_.remove(which(req), req.matches[2], actor_of(c), if_match(req));
                   res.status = 204;
               }));

    // App credentials (admin). The answer to POST carries the private key, like the CLI's file.
    svr.Get("/appcreds", guarded([this, admin](auto &req, auto &res) {
                admin(req);
                check_params(req, {"limit", "cursor", "order"});
                PageRequest pr = page_request(req, "appcreds", true);
                send_page(req, res, "appcreds", pr, app_credentials_page(db_, pr));
            }));
    svr.Post("/appcreds", guarded([this, admin](auto &req, auto &res) {
                 Caller c = admin(req);
                 rapidjson::Document doc = parse_json_object(req.body);
                 std::string role_s = get_string(doc, "role", "role", true);
                 auto role = role_from_name(role_s);
                 if (!role)
                     throw ConsoleError(
                         422, "role: \"" + role_s + "\" is not one of admin|reader|enforcer",
                         "role");
                 std::string api;
                 {
                     std::lock_guard lock(db_.mutex());
                     api = db_.meta("api_url");
                 }
                 std::string cred = create_app_credential(
                     db_, pki_, get_string(doc, "name", "name", true), *role,
                     get_string(doc, "enforcerID", "enforcerID", false), api,
                     opt_.tls_ca.empty() ? pki_.ca_pem() : read_file(opt_.tls_ca), actor_of(c),
                     get_string(doc, "enforcerGroup", "enforcerGroup", false));
                 spdlog::info("app credential created by {}", c.sub);
                 send_json(res, 201, cred);
             }));
    svr.Delete("/appcreds/([^/]+)", guarded([this, admin](auto &req, auto &res) {
                   Caller c = admin(req);
                   AppCredential cred = revoke_app_credential(db_, req.matches[1], actor_of(c));
                   spdlog::info("app credential {} revoked by {}", cred.id, c.sub);
                   send_json(res, 200, app_credential_json(cred));
               }));

    svr.Post("/enforcers", guarded([this](auto &req, auto &res) {
                 Caller c = authorize(req);
                 require_role(c, {Role::kEnforcer}, "POST /enforcers (registration)");
                 auto [status, body] = enforcers_.register_enforcer(
                     req.body, c, tls_client_fingerprint(req), opt_.realms.auto_register);
                 send_json(res, status, body);
             }));
    svr.Get("/enforcers", guarded([this](auto &req, auto &res) {
                // Enforcers read their peers' certificates; only readers see records in full.
                Caller c = authorize(req);
                check_params(req, {"limit", "cursor", "order"});
                PageRequest pr = page_request(req, "enforcers", true);
                // Enforcers fetch it every peer_refresh_s with the ETag they were given: a list
                // that did not change is a 304 with no body.
                if (send_page_conditional(req, res, "enforcers", pr,
                                          enforcers_.list(c.role == Role::kEnforcer, pr)))
                    metrics_.not_modified("certificates");
            }));
    svr.Get("/enforcers/([^/]+)", guarded([this](auto &req, auto &res) {
                require_enforcer_or(authorize(req), req.matches[1], {Role::kAdmin, Role::kReader},
                                    req.method + " " + req.path);
                send_json(res, 200, enforcers_.to_json(enforcers_.require(req.matches[1])));
            }));
    svr.Delete("/enforcers/([^/]+)", guarded([this, admin](auto &req, auto &res) {
                   Caller c = admin(req);
                   size_t n = enforcers_.revoke(req.matches[1], actor_of(c));
                   apply_revocations();
                   spdlog::info(
                       "enforcer {} revoked by {}: {} certificate(s) on the revocation "
                       "list, policy version {}",
                       req.matches[1].str(), c.sub, n, store_.snapshot().version);
                   res.status = 204;
               }));
    svr.Post("/enforcers/([^/]+)/approval", guarded([this, admin](auto &req, auto &res) {
                 Caller c = admin(req);
                 enforcers_.approve(req.matches[1], actor_of(c));
                 spdlog::info("enforcer {} approved for a first registration by {}",
                              req.matches[1].str(), c.sub);
                 res.status = 204;
             }));
    svr.Get("/enforcers/([^/]+)/enforcerprofiles", guarded([this](auto &req, auto &res) {
                require_enforcer_or(authorize(req), req.matches[1], {Role::kAdmin, Role::kReader},
                                    req.method + " " + req.path);
                EnforcerRecord r = enforcers_.require(req.matches[1]);
                auto snap = store_.snapshot();
                const auto &p = resolve_enforcer_profile(*snap.set, r);
                policy::PolicySet one;
                one.enforcer_profiles = {p};
                rapidjson::Document doc;
                doc.Parse(policy::serialize_policy_set(one, false).c_str());
                send_json(res, 200, to_json(doc["enforcerprofiles"][0]));
            }));
    svr.Get("/enforcers/([^/]+)/policy",
            guarded([this](auto &req, auto &res) { policy_bundle(req, res); }));
    svr.Post("/enforcers/([^/]+)/heartbeat", guarded([this](auto &req, auto &res) {
                 require_enforcer_or(authorize(req), req.matches[1], {},
                                     req.method + " " + req.path);
                 enforcers_.heartbeat(req.matches[1], req.body);
                 res.status = 204;
             }));

    // A TLS certificate for an L7 service its PUs serve (TLSType "Aporeto", docs/l7.md).
    svr.Post("/enforcers/([^/]+)/servicecertificates", guarded([this](auto &req, auto &res) {
                 require_enforcer_or(authorize(req), req.matches[1], {},
                                     req.method + " " + req.path);
                 send_json(res, 201, service_certificate(req.matches[1], req.body));
             }));

    svr.Get("/auditlogs", guarded([this, reader](auto &req, auto &res) {
                reader(req);
                check_params(req, {"limit", "cursor", "order", "since", "until", "who", "kind",
                                   "ID", "action"});
                AuditFilter f;
                f.who = req.get_param_value("who");
                f.kind = req.get_param_value("kind");
                f.id = req.get_param_value("ID");
                f.action = req.get_param_value("action");
                f.page = page_request(req, "auditlogs", false);
                time_range(req, &f.since, &f.until);
                send_page(req, res, "auditlogs", f.page, query_audit(db_, f));
            }));

    // API call reports of the L7 proxies: the batch shape of /flowreports, their own table.
    svr.Post("/apicalls", guarded([this, what](auto &req, auto &res) {
                 Caller c = authorize(req);
                 require_role(c, {Role::kEnforcer}, what(req));
                 // Group commit: answered once the transaction holding this batch committed.
                 IngestResult r = ingest_.submit(prepare_apicalls(req.body, c.enforcer_id));
                 metrics_.reports("apicalls", r.stored, r.duplicate);
                 rapidjson::StringBuffer buf;
                 JsonWriter w(buf);
                 w.StartObject();
                 write_string(w, "batchID", r.batch_id);
                 write_string(w, "enforcerID", r.enforcer_id);
                 w.Key("stored");
                 w.Uint64(r.stored);
                 w.Key("duplicate");
                 w.Bool(r.duplicate);
                 w.EndObject();
                 send_json(res, r.duplicate ? 200 : 201,
                           std::string(buf.GetString(), buf.GetSize()));
             }));
    svr.Get("/apicalls", guarded([this, reader](auto &req, auto &res) {
                reader(req);
                check_params(req, {"limit", "cursor", "order", "since", "until", "service",
                                   "verdict", "callerPU", "enforcerID"});
                ApiCallFilter f;
                f.service = req.get_param_value("service");
                f.verdict = req.get_param_value("verdict");
                if (req.has_param("verdict") && f.verdict != "accept" && f.verdict != "reject")
                    throw ConsoleError(400,
                                       "verdict: \"" + f.verdict + "\" is not one of accept|reject",
                                       "verdict");
                f.caller_pu = req.get_param_value("callerPU");
                f.enforcer_id = req.get_param_value("enforcerID");
                f.page = page_request(req, "apicalls", false);
                time_range(req, &f.since, &f.until);
                send_page(req, res, "apicalls", f.page, query_apicalls(db_, f));
            }));

    const std::string reports =
        "/(flowreports|dnslookupreports|connectionexceptionreports|eventlogs)";
    svr.Post(reports, guarded([this, what](auto &req, auto &res) {
                 Caller c = authorize(req);
                 require_role(c, {Role::kEnforcer}, what(req));
                 ReportKind k{};
                 report_kind_from_name(req.matches[1].str(), &k);
                 // Group commit: answered once the transaction holding this batch committed.
                 IngestResult r = ingest_.submit(prepare_reports(k, req.body, c.enforcer_id));
                 metrics_.reports(report_kind_name(k), r.stored, r.duplicate);
                 rapidjson::StringBuffer buf;
                 JsonWriter w(buf);
                 w.StartObject();
                 write_string(w, "batchID", r.batch_id);
                 write_string(w, "enforcerID", r.enforcer_id);
                 w.Key("stored");
                 w.Uint64(r.stored);
                 w.Key("duplicate");
                 w.Bool(r.duplicate);
                 w.EndObject();
                 send_json(res, r.duplicate ? 200 : 201,
                           std::string(buf.GetString(), buf.GetSize()));
             }));
    svr.Get(
        reports, guarded([this, reader](auto &req, auto &res) {
            reader(req);
            ReportKind k{};
            const std::string list = req.matches[1].str();
            report_kind_from_name(list, &k);
            // action takes the values reports of the kind carry; eventlogs call it level.
            std::vector<std::string> actions;
            switch (k) {
                case ReportKind::kFlow:
                    actions = {"Accept", "Reject"};
                    break;
                case ReportKind::kDnsLookup:
                    actions = {"Accept", "Fail", "Reject", "Resolve"};
                    break;
                case ReportKind::kEventLog:
                    actions = {"Debug", "Info", "Warning", "Error", "Critical"};
                    break;
                case ReportKind::kConnectionException:
                    break;
            }
            if (k == ReportKind::kEventLog)
                check_params(req,
                             {"limit", "cursor", "order", "since", "until", "pu", "sourceID",
                              "destinationID", "enforcerID", "destinationPort", "level", "action"});
            else if (k == ReportKind::kConnectionException)
                check_params(req, {"limit", "cursor", "order", "since", "until", "pu", "sourceID",
                                   "destinationID", "enforcerID", "destinationPort"});
            else
                check_params(req, {"limit", "cursor", "order", "since", "until", "pu", "sourceID",
                                   "destinationID", "enforcerID", "destinationPort", "action"});
            ReportFilter f;
            for (const char *name : {"action", "level"}) {
                if (!req.has_param(name)) continue;
                const std::string v = req.get_param_value(name);
                bool ok = false;
                std::string list_s;
                for (const std::string &a : actions) {
                    ok = ok || v == a;
                    list_s += (list_s.empty() ? "" : "|") + a;
                }
                if (!ok)
                    throw ConsoleError(
                        400, std::string(name) + ": \"" + v + "\" is not one of " + list_s, name);
                f.action = v;
            }
            f.source_id = req.get_param_value("sourceID");
            f.destination_id = req.get_param_value("destinationID");
            f.pu = req.get_param_value("pu");
            f.enforcer_id = req.get_param_value("enforcerID");
            f.destination_port = int_param(req, "destinationPort", 0, 65535, -1);
            f.page = page_request(req, list, false);
            time_range(req, &f.since, &f.until);
            send_page(req, res, list, f.page, query_reports(db_, k, f));
        }));
}

}  // namespace

std::string database_location(const std::string &data_dir, const std::string &database) {
    return database.empty() ? data_dir + "/console.db" : database;
}

int run_server(const ServerOptions &opt) {
    // Signals go to one thread (sigwait) so that handlers can take locks and log.
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &sigs, nullptr);

    // Held (flock, released by the kernel when the process ends however it ends) for the whole
    // run: `restore` refuses a directory whose lock is taken, and so does a second `serve`.
    const std::string lock_path = opt.data_dir + "/" + kLockFile;
    const int lock_fd = ::open(lock_path.c_str(), O_RDONLY | O_CREAT | O_CLOEXEC, 0644);
    if (lock_fd < 0 || ::flock(lock_fd, LOCK_EX | LOCK_NB) != 0) {
        std::fprintf(stderr,
                     "segwire-console: %s: %s (is another segwire-console serve running on %s?)\n",
                     lock_path.c_str(), std::strerror(errno), opt.data_dir.c_str());
        return 1;
    }

    std::unique_ptr<Console> console;
    try {
        console = std::make_unique<Console>(opt);
        if (!opt.policy_dir.empty()) console->reload_policy();
        if (opt.tls_cert.empty())
            console->pki().write_server_cert(opt.data_dir, opt.listen_host, opt.tls_sans);
    } catch (const ConsoleError &e) {
        std::fprintf(stderr, "segwire-console: %s\n", e.what());
        if (!e.object().empty())
            std::fprintf(stderr, "  object: %s\n  field: %s\n  reason: %s\n", e.object().c_str(),
                         e.field().c_str(), e.reason().c_str());
        return 1;
    }

    const std::string ca_pem = console->pki().ca_pem();
    const std::string appcred_ca_pem = console->pki().appcred_ca_pem();
    // The operator's certificate (--tls-cert/--tls-key), else the one generated for this start.
    const std::string tls_cert = opt.tls_cert.empty() ? opt.data_dir + "/server.pem" : opt.tls_cert;
    const std::string tls_key = opt.tls_key.empty() ? opt.data_dir + "/server.key" : opt.tls_key;
    // Every connection on a few I/O threads, handlers on --threads workers, long-polls parked
    // (async_server.hpp; docs/console.md, "Serving").
    Router router;
    AsyncServerOptions aopt;
    aopt.workers = opt.threads;
    // Operators' changes (policy objects, the namespace, app credentials, approvals,
    // revocations: every write that is not an enforcer's own) get two threads of their own, so
    // that an admin's write answers while thousands of enforcers' reports and reads queue for
    // the workers (docs/console-serving.md).
    aopt.priority_lane = [](const httplib::Request &req) {
        static const std::regex kEnforcerWrites(
            "/issue|/enforcers(/[^/]+/(heartbeat|servicecertificates))?|"
            "/(flowreports|dnslookupreports|connectionexceptionreports|eventlogs|apicalls)");
        return req.method != "GET" && req.method != "HEAD" &&
               !std::regex_match(req.path, kEnforcerWrites);
    };
    aopt.idle_timeout = std::chrono::seconds(opt.idle_timeout);
    // Each connection is a file descriptor: the soft limit goes up to the hard one, and 256 stay
    // for the database, the data files and the metrics listener.
    aopt.max_connections = opt.max_connections;
    if (rlimit rl{}; getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        if (rl.rlim_cur < rl.rlim_max) {
            rl.rlim_cur = rl.rlim_max;
            setrlimit(RLIMIT_NOFILE, &rl);
        }
        const size_t fds = rl.rlim_cur > 512 ? static_cast<size_t>(rl.rlim_cur) - 256 : 256;
        if (aopt.max_connections == 0)
            aopt.max_connections = std::min<size_t>(10000, fds);
        else if (aopt.max_connections > fds)
            spdlog::warn("--max-connections {} is above what the file descriptor limit allows ({})",
                         aopt.max_connections, fds);
    }
    if (aopt.max_connections == 0) aopt.max_connections = 1000;
    spdlog::info("API: {} handler thread(s), at most {} connections, idle timeout {}s",
                 aopt.workers, aopt.max_connections, opt.idle_timeout);
    AsyncServer svr(
        router, aopt, [&] { return console->store().snapshot().version; },
        [&](uint64_t known) {
            return console->store().wait_for_change(known, std::chrono::seconds(1)).version;
        });
    auto setup_tls = [&](SSL_CTX &ctx) {
        auto ca = crypto::cert_from_pem(ca_pem);
        auto appcred_ca = crypto::cert_from_pem(appcred_ca_pem);
        if (!ca || !appcred_ca) return false;
        // Client certificates are requested but optional and never decide the handshake: /issue
        // (realm Certificate) verifies an app credential against the app-credential CA itself,
        // so that an untrusted certificate gets a JSON 401 naming the problem, and re-registration
        // compares a datapath certificate with the enforcer's recorded one. The client CA list
        // names both CAs so that clients offer either kind.
        SSL_CTX_set_verify(&ctx, SSL_VERIFY_PEER, [](int, X509_STORE_CTX *) { return 1; });
        SSL_CTX_set_min_proto_version(&ctx, TLS1_2_VERSION);
        // With SSL_VERIFY_PEER, OpenSSL refuses to resume a session (internal_error alert on the
        // ClientHello) unless the sessions are tied to a context: browsers resume on every
        // further connection to the page (docs/ui.md).
        static const unsigned char kSessionContext[] = "segwire-console";
        SSL_CTX_set_session_id_context(&ctx, kSessionContext, sizeof kSessionContext - 1);
        return SSL_CTX_use_certificate_chain_file(&ctx, tls_cert.c_str()) == 1 &&
               SSL_CTX_use_PrivateKey_file(&ctx, tls_key.c_str(), SSL_FILETYPE_PEM) == 1 &&
               SSL_CTX_add_client_CA(&ctx, appcred_ca->get()) == 1 &&
               SSL_CTX_add_client_CA(&ctx, ca->get()) == 1;
    };
    if (!setup_tls(*svr.ssl_ctx())) {
        std::fprintf(stderr, "segwire-console: TLS setup failed: %s\n",
                     crypto::openssl_error_string().c_str());
        return 1;
    }
    console->install(router);

    std::string bind_problem;
    int port = svr.bind(opt.listen_host, opt.listen_port, &bind_problem);
    if (port <= 0) {
        std::fprintf(stderr, "segwire-console: cannot listen on %s:%d: %s\n",
                     opt.listen_host.c_str(), opt.listen_port, bind_problem.c_str());
        return 1;
    }
    // --metrics-listen: plain HTTP, its own small pool, so that scrapes and probes never wait
    // behind long-polls for one of the API's threads.
    std::unique_ptr<httplib::Server> msvr;
    int mport = -1;
    if (opt.metrics_port >= 0) {
        msvr = std::make_unique<httplib::Server>();
        msvr->new_task_queue = [] { return new httplib::ThreadPool(4); };
        msvr->set_read_timeout(5, 0);
        msvr->set_write_timeout(5, 0);
        msvr->set_keep_alive_timeout(5);
        msvr->set_payload_max_length(4096);
        console->install_metrics(*msvr);
        if (opt.metrics_port == 0)
            mport = msvr->bind_to_any_port(opt.metrics_host);
        else if (msvr->bind_to_port(opt.metrics_host, opt.metrics_port))
            mport = opt.metrics_port;
        if (mport <= 0) {
            std::fprintf(stderr, "segwire-console: cannot listen on --metrics-listen %s:%d\n",
                         opt.metrics_host.c_str(), opt.metrics_port);
            return 1;
        }
    }
    auto bracket = [](const std::string &h) {
        return h.find(':') != std::string::npos ? "[" + h + "]" : h;
    };
    std::string host = bracket(opt.listen_host);
    std::string url = "https://" + host + ":" + std::to_string(port);
    {
        // What `appcred create` needs to issue credentials this server accepts.
        std::lock_guard lock(console->db().mutex());
        console->db().set_meta("api_url", url);
        console->db().set_meta("ca_cert", opt.ca_cert);
        console->db().set_meta("ca_key", opt.ca_key);
        console->db().set_meta("tls_ca", opt.tls_ca);
    }

    if (console->apply_revocations())
        spdlog::info("revocations made while the server was down: policy version {}",
                     console->store().snapshot().version);
    std::atomic<bool> stopping{false};
    std::thread revocations([&] {
        // `segwire-console enforcer revoke` writes the database directly: noticed within 1 s.
        while (!stopping.load()) {
            std::this_thread::sleep_for(std::chrono::milliseconds(250));
            try {
                if (console->apply_revocations())
                    spdlog::info("revocation list changed: policy version {}",
                                 console->store().snapshot().version);
            } catch (const std::exception &e) {
                spdlog::error("revocation check: {}", e.what());
            }
        }
    });
    // Retention: one sweep at start, then one every --retention-interval; waits on a condition
    // variable so that shutdown does not wait out the interval.
    std::mutex retention_mu;
    std::condition_variable retention_cv;
    std::thread retention([&] {
        std::unique_lock lock(retention_mu);
        while (!stopping.load()) {
            lock.unlock();
            try {
                const uint64_t n = console->sweep_retention(stopping);
                if (n)
                    spdlog::info("retention: {} report(s) older than {}s deleted", n,
                                 opt.retention);
            } catch (const std::exception &e) {
                spdlog::error("retention sweep: {}", e.what());
            }
            lock.lock();
            retention_cv.wait_for(lock, std::chrono::seconds(opt.retention_interval),
                                  [&] { return stopping.load(); });
        }
    });
    std::atomic<bool> api_done{false};
    std::thread signals([&] {
        for (;;) {
            int sig = 0;
            if (sigwait(&sigs, &sig) != 0) continue;
            if (sig == SIGHUP) {
                try {
                    console->reload_policy();
                } catch (const ConsoleError &e) {
                    // The last good set stays; the error names object, field and reason.
                    spdlog::error("policy reload refused, keeping version {}: {}",
                                  console->store().snapshot().version, e.what());
                }
                continue;
            }
            if (api_done.load()) return;
            spdlog::info("signal {}: shutting down", sig);
            console->store().shutdown();
            svr.stop();  // parked long-polls answer, connections drain (also before run())
            return;
        }
    });
    std::printf("listening on %s\n", url.c_str());
    std::atomic<bool> metrics_done{false};
    std::thread metrics_thread;
    if (msvr) {
        std::printf("metrics on http://%s:%d\n", bracket(opt.metrics_host).c_str(), mport);
        metrics_thread = std::thread([&] {
            msvr->listen_after_bind();
            metrics_done.store(true);
        });
    }
    std::fflush(stdout);
    svr.run();
    const bool ok = true;
    api_done.store(true);
    signals.join();
    if (msvr) {
        // stop() ends only a server already in its accept loop: repeat until it is out.
        while (!metrics_done.load()) {
            msvr->stop();
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
        metrics_thread.join();
    }
    {
        std::lock_guard lock(retention_mu);
        stopping.store(true);
    }
    retention_cv.notify_all();
    retention.join();
    revocations.join();
    ::close(lock_fd);
    return ok ? 0 : 1;
}

}  // namespace segwire::console
