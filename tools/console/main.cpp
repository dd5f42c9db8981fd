// segwire-console: the reference Microsegmentation Console (docs/console.md).
//
//   segwire-console serve --data DIR [--database URI] [--policy DIR] [--listen 127.0.0.1:8443] ...
//   segwire-console appcred create --data DIR --name N --role ROLE [--enforcer-id ID
//                                  [--enforcer-group G]] --out FILE
//   segwire-console appcred list|revoke ...
//   segwire-console enforcer approve --data DIR --id ID
//   segwire-console audit --data DIR [--since TIME] ...
//   segwire-console flows --data DIR [--since TIME]
// (every command: [--database postgresql://…], the PostgreSQL store instead of DIR/console.db)
//   segwire-console apicalls --data DIR [--since TIME] [--service S] [--verdict V]
#include <sys/stat.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include "config/metrics/listen_address.hpp"
#include "config/policy/syntax.hpp"
#include "tools/console/apicalls.hpp"
#include "tools/console/appcreds.hpp"
#include "tools/console/audit.hpp"
#include "tools/console/backup.hpp"
#include "tools/console/console_pki.hpp"
#include "tools/console/db.hpp"
#include "tools/console/enforcers.hpp"
#include "tools/console/error.hpp"
#include "tools/console/realms.hpp"
#include "tools/console/reports.hpp"
#include "tools/console/server.hpp"
#include "tools/console/ui.hpp"
#include "tools/console/util.hpp"
#include "version.hpp"

using namespace segwire::console;

namespace {

constexpr const char *kUsage = R"(usage:
  segwire-console --version
  segwire-console serve --data DIR [--database postgresql://…] [--policy DIR] [--listen HOST:PORT] [--metrics-listen ADDR:PORT]
                        [--ca-cert FILE --ca-key FILE] [--token-validity DURATION]
                        [--cert-validity DURATION]
                        [--aws-accounts IDS --aws-audience AUD --aws-enforcer-id RULE
                         [--aws-roles ARN-PATTERNS] [--aws-endpoint URL] [--aws-region R]]
                        [--gcp-jwks FILE|URL --gcp-audience AUD --gcp-enforcer-id RULE
                         (--gcp-projects IDS | --gcp-service-accounts EMAILS) [--gcp-issuer ISS]]
                        [--azure-jwks FILE|URL --azure-audience AUD --azure-tenants IDS
                         --azure-enforcer-id RULE [--azure-issuer ISS]]
                        [--cloud-ca FILE] [--cloud-auto-register]
                        [--tls-cert CHAIN --tls-key KEY --tls-ca CA | --tls-san NAMES]
                        [--retention DURATION|0] [--retention-interval DURATION]
                        [--ui-dir DIR] [--threads N] [--max-connections N] [--idle-timeout DURATION]
  segwire-console appcred create --data DIR [--database URI] --name NAME --role admin|reader|enforcer
                                 [--enforcer-id ID [--enforcer-group G]] --out FILE [--api URL]
  segwire-console appcred list --data DIR [--database URI]
  segwire-console appcred revoke --data DIR [--database URI] --id ID
  segwire-console enforcer approve --data DIR [--database URI] --id ID
  segwire-console enforcer revoke --data DIR [--database URI] --id ID
  segwire-console audit --data DIR [--database URI] [--since RFC3339|UNIX] [--who W] [--kind K] [--id ID]
  segwire-console flows --data DIR [--database URI] [--since RFC3339|UNIX]
  segwire-console apicalls --data DIR [--database URI] [--since RFC3339|UNIX] [--service NAME]
                           [--verdict accept|reject] [--caller PU-ID]
  segwire-console backup --data DIR [--database URI] --out FILE (--passphrase-file FILE | --without-keys)
  segwire-console restore --data DIR [--database URI] --from FILE [--passphrase-file FILE] [--force]
)";

// Who the command-line tools act as in the audit trail: the local operator.
Actor cli_actor() {
    const char *user = std::getenv("SUDO_USER");
    if (!user || !*user) user = std::getenv("USER");
    return Actor::cli(user && *user ? user : "unknown");
}

// --key value pairs; every option takes a value except the `flags` (stored as "1").
bool parse_options(int argc, char **argv, int first, const std::vector<std::string> &known,
                   std::map<std::string, std::string> *out,
                   const std::vector<std::string> &flags = {}) {
    for (int i = first; i < argc; ++i) {
        std::string k = argv[i];
        if (std::find(flags.begin(), flags.end(), k) != flags.end()) {
            (*out)[k] = "1";
            continue;
        }
        if (std::find(known.begin(), known.end(), k) == known.end()) {
            std::fprintf(stderr, "segwire-console: unknown option %s\n%s", k.c_str(), kUsage);
            return false;
        }
        if (i + 1 >= argc) {
            std::fprintf(stderr, "segwire-console: %s needs a value\n", k.c_str());
            return false;
        }
        (*out)[k] = argv[++i];
        if (k == "--database" && !Db::is_postgres_uri((*out)[k])) {
            std::fprintf(stderr,
                         "segwire-console: --database: \"%s\" is not a PostgreSQL URI "
                         "(postgresql://USER@HOST[:PORT]/DB); without --database the Console "
                         "keeps SQLite in DATA/console.db\n",
                         (*out)[k].c_str());
            return false;
        }
    }
    return true;
}

bool need(const std::map<std::string, std::string> &o, const char *key) {
    if (o.count(key)) return true;
    std::fprintf(stderr, "segwire-console: %s is required\n%s", key, kUsage);
    return false;
}

std::string opt_or(const std::map<std::string, std::string> &o, const char *key,
                   const std::string &fallback) {
    auto it = o.find(key);
    return it == o.end() ? fallback : it->second;
}

bool ensure_dir(const std::string &dir) {
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec || !std::filesystem::is_directory(dir)) {
        std::fprintf(stderr, "segwire-console: cannot create data directory %s\n", dir.c_str());
        return false;
    }
    ::chmod(dir.c_str(), 0700);  // holds the CA key
    return true;
}

// --database (a PostgreSQL URI, checked by parse_options), else DATA/console.db.
std::string db_location(const std::map<std::string, std::string> &o) {
    return database_location(o.at("--data"), opt_or(o, "--database", ""));
}

int cmd_serve(int argc, char **argv) {
    std::map<std::string, std::string> o;
    if (!parse_options(argc, argv, 2,
                       {"--data",
                        "--database",
                        "--policy",
                        "--listen",
                        "--metrics-listen",
                        "--ca-cert",
                        "--ca-key",
                        "--token-validity",
                        "--cert-validity",
                        "--aws-accounts",
                        "--aws-roles",
                        "--aws-audience",
                        "--aws-endpoint",
                        "--aws-region",
                        "--aws-enforcer-id",
                        "--gcp-jwks",
                        "--gcp-issuer",
                        "--gcp-audience",
                        "--gcp-projects",
                        "--gcp-service-accounts",
                        "--gcp-enforcer-id",
                        "--azure-jwks",
                        "--azure-issuer",
                        "--azure-audience",
                        "--azure-tenants",
                        "--azure-enforcer-id",
                        "--cloud-ca",
                        "--tls-cert",
                        "--tls-key",
                        "--tls-ca",
                        "--tls-san",
                        "--retention",
                        "--retention-interval",
                        "--threads",
                        "--max-connections",
                        "--idle-timeout",
                        "--ui-dir"},
                       &o, {"--cloud-auto-register"}) ||
        !need(o, "--data") || !ensure_dir(o["--data"]))
        return 2;
    ServerOptions s;
    s.data_dir = o["--data"];
    s.database = opt_or(o, "--database", "");
    s.policy_dir = opt_or(o, "--policy", "");
    std::string listen = opt_or(o, "--listen", "127.0.0.1:8443");
    size_t colon = listen.rfind(':');
    char *end = nullptr;
    long port = colon == std::string::npos ? -1 : std::strtol(listen.c_str() + colon + 1, &end, 10);
    if (colon == std::string::npos || colon == 0 || *end || port < 0 || port > 65535) {
        std::fprintf(stderr, "segwire-console: --listen: \"%s\" is not HOST:PORT\n",
                     listen.c_str());
        return 2;
    }
    s.listen_host = listen.substr(0, colon);
    if (s.listen_host.size() > 2 && s.listen_host.front() == '[')
        s.listen_host = s.listen_host.substr(1, s.listen_host.size() - 2);
    s.listen_port = static_cast<int>(port);
    if (o.count("--metrics-listen")) {
        segwire::metrics::ListenAddress m;
        std::string problem;
        if (!segwire::metrics::parse_listen_address(o["--metrics-listen"], &m, &problem, true)) {
            std::fprintf(stderr, "segwire-console: --metrics-listen: %s\n", problem.c_str());
            return 2;
        }
        s.metrics_host = m.host;
        s.metrics_port = m.port;
    }
    // Absolute, because `appcred create` reads them back from the database later.
    s.ca_cert = o.count("--ca-cert") ? std::filesystem::absolute(o["--ca-cert"]).string() : "";
    s.ca_key = o.count("--ca-key") ? std::filesystem::absolute(o["--ca-key"]).string() : "";
    if (o.count("--token-validity")) {
        uint64_t secs = 0;
        std::string problem;
        if (!segwire::policy::parse_duration_seconds(o["--token-validity"], &secs, &problem)) {
            std::fprintf(stderr, "segwire-console: --token-validity: %s\n", problem.c_str());
            return 2;
        }
        s.token_validity = static_cast<int64_t>(secs);
    }
    if (o.count("--retention")) {
        // "0" keeps reports forever; otherwise days ("7d") or a duration like the other
        // options ("36h").
        const std::string &v = o["--retention"];
        uint64_t secs = 0;
        std::string problem;
        const bool days = v.size() > 1 && v.back() == 'd' &&
                          v.find_first_not_of("0123456789") == v.size() - 1 && v.size() < 8;
        if (days)
            secs = std::stoull(v.substr(0, v.size() - 1)) * 24 * 3600;
        else if (v != "0" && !segwire::policy::parse_duration_seconds(v, &secs, &problem)) {
            std::fprintf(stderr, "segwire-console: --retention: %s\n", problem.c_str());
            return 2;
        }
        s.retention = static_cast<int64_t>(secs);
    }
    if (o.count("--threads")) {
        char *end = nullptr;
        const std::string &v = o["--threads"];
        const long n = std::strtol(v.c_str(), &end, 10);
        if (v.empty() || *end || n < 1 || n > 1024) {
            std::fprintf(stderr, "segwire-console: --threads: \"%s\" is not a number in 1..1024\n",
                         v.c_str());
            return 2;
        }
        s.threads = static_cast<int>(n);
    }
    if (o.count("--max-connections")) {
        char *end = nullptr;
        const std::string &v = o["--max-connections"];
        const long n = std::strtol(v.c_str(), &end, 10);
        if (v.empty() || *end || n < 1 || n > 1000000) {
            std::fprintf(stderr,
                         "segwire-console: --max-connections: \"%s\" is not a number in "
                         "1..1000000\n",
                         v.c_str());
            return 2;
        }
        s.max_connections = static_cast<size_t>(n);
    }
    if (o.count("--idle-timeout")) {
        uint64_t secs = 0;
        std::string problem;
        if (!segwire::policy::parse_duration_seconds(o["--idle-timeout"], &secs, &problem) ||
            secs < 1 || secs > 3600) {
            std::fprintf(stderr, "segwire-console: --idle-timeout: %s\n",
                         problem.empty() ? "between 1s and 1h" : problem.c_str());
            return 2;
        }
        s.idle_timeout = static_cast<int64_t>(secs);
    }
    if (o.count("--retention-interval")) {
        uint64_t secs = 0;
        std::string problem;
        if (!segwire::policy::parse_duration_seconds(o["--retention-interval"], &secs, &problem) ||
            secs < 1 || secs > 24 * 3600) {
            std::fprintf(stderr, "segwire-console: --retention-interval: %s\n",
                         problem.empty() ? "between 1s and 24h" : problem.c_str());
            return 2;
        }
        s.retention_interval = static_cast<int64_t>(secs);
    }
    if (o.count("--cert-validity")) {
        uint64_t secs = 0;
        std::string problem;
        if (!segwire::policy::parse_duration_seconds(o["--cert-validity"], &secs, &problem) ||
            secs < 60 || secs > 365ull * 24 * 3600) {
            std::fprintf(stderr, "segwire-console: --cert-validity: %s\n",
                         problem.empty() ? "between 1m and 8760h" : problem.c_str());
            return 2;
        }
        s.cert_validity = static_cast<int64_t>(secs);
    }
    auto abs = [&](const char *flag) {
        return o.count(flag) ? std::filesystem::absolute(o[flag]).string() : std::string();
    };
    s.tls_cert = abs("--tls-cert");
    s.tls_key = abs("--tls-key");
    s.tls_ca = abs("--tls-ca");
    s.tls_sans = split_list(opt_or(o, "--tls-san", ""));
    if (s.tls_cert.empty() != s.tls_key.empty() || s.tls_cert.empty() != s.tls_ca.empty()) {
        std::fprintf(stderr,
                     "segwire-console: --tls-cert, --tls-key and --tls-ca go together (the "
                     "operator's chain, its key, and the CA clients trust for it)\n");
        return 2;
    }
    if (!s.tls_cert.empty() && !s.tls_sans.empty()) {
        std::fprintf(stderr,
                     "segwire-console: --tls-san: names the generated certificate; an operator "
                     "certificate (--tls-cert) carries its own\n");
        return 2;
    }
    for (const auto &san : s.tls_sans)
        if (std::string p = check_san(san); !p.empty()) {
            std::fprintf(stderr, "segwire-console: --tls-san: %s\n", p.c_str());
            return 2;
        }
    if (!s.tls_cert.empty()) {
        if (std::string p = check_tls_files(s.tls_cert, s.tls_key); !p.empty()) {
            std::fprintf(stderr, "segwire-console: %s\n", p.c_str());
            return 1;
        }
        if (!std::filesystem::exists(s.tls_ca)) {
            std::fprintf(stderr, "segwire-console: --tls-ca: cannot read %s\n", s.tls_ca.c_str());
            return 1;
        }
    }
    // A realm is configured as soon as one of its flags is given; check_realms() then insists on
    // the rest, so that no realm is ever half open.
    auto flag_set = [&](const char *prefix) {
        for (const auto &[k, v] : o)
            if (k.rfind(prefix, 0) == 0) return true;
        return false;
    };
    Realms &r = s.realms;
    r.aws.configured = flag_set("--aws-");
    r.aws.accounts = split_list(opt_or(o, "--aws-accounts", ""));
    r.aws.role_patterns = split_list(opt_or(o, "--aws-roles", ""));
    r.aws.audience = opt_or(o, "--aws-audience", "");
    r.aws.endpoint = opt_or(o, "--aws-endpoint", r.aws.endpoint);
    r.aws.region = opt_or(o, "--aws-region", r.aws.region);
    r.aws.enforcer_id_rule = opt_or(o, "--aws-enforcer-id", "");
    for (auto [name, realm] : {std::pair{"gcp", &r.gcp}, std::pair{"azure", &r.azure}}) {
        const std::string f = std::string("--") + name + "-";
        realm->configured = flag_set(f.c_str());
        realm->jwks = opt_or(o, (f + "jwks").c_str(), "");
        realm->issuer = opt_or(o, (f + "issuer").c_str(), "");
        realm->audience = opt_or(o, (f + "audience").c_str(), "");
        realm->enforcer_id_rule = opt_or(o, (f + "enforcer-id").c_str(), "");
    }
    r.gcp.projects = split_list(opt_or(o, "--gcp-projects", ""));
    r.gcp.service_accounts = split_list(opt_or(o, "--gcp-service-accounts", ""));
    r.azure.tenants = split_list(opt_or(o, "--azure-tenants", ""));
    r.cloud_ca = o.count("--cloud-ca") ? std::filesystem::absolute(o["--cloud-ca"]).string() : "";
    r.auto_register = o.count("--cloud-auto-register") > 0;
    if (std::string problem = check_realms(r); !problem.empty()) {
        std::fprintf(stderr, "segwire-console: %s\n", problem.c_str());
        return 2;
    }
    // The flow map page (docs/ui.md): --ui-dir, else next to the executable or installed.
    if (o.count("--ui-dir")) {
        s.ui_dir = std::filesystem::absolute(o["--ui-dir"]).string();
        if (!std::filesystem::is_regular_file(s.ui_dir + "/index.html")) {
            std::fprintf(stderr, "segwire-console: --ui-dir: no index.html in %s\n",
                         s.ui_dir.c_str());
            return 2;
        }
    } else {
        s.ui_dir = default_ui_dir();
    }
    return run_server(s);
}

int cmd_appcred(int argc, char **argv) {
    std::string sub = argc >= 3 ? argv[2] : "";
    std::map<std::string, std::string> o;
    if (sub == "list") {
        if (!parse_options(argc, argv, 3, {"--data", "--database"}, &o) || !need(o, "--data"))
            return 2;
        Db db(db_location(o));
        std::printf("%-20s %-16s %-8s %-16s %-12s %-20s %s\n", "ID", "NAME", "ROLE", "ENFORCER",
                    "GROUP", "CREATED", "REVOKED");
        for (const auto &c : list_app_credentials(db))
            std::printf("%-20s %-16s %-8s %-16s %-12s %-20s %s\n", c.id.c_str(), c.name.c_str(),
                        c.role.empty() ? "-" : c.role.c_str(),
                        c.enforcer_id.empty() ? "-" : c.enforcer_id.c_str(),
                        c.enforcer_group.empty() ? "-" : c.enforcer_group.c_str(),
                        rfc3339(c.created).c_str(), c.revoked ? rfc3339(c.revoked).c_str() : "-");
        return 0;
    }
    if (sub == "revoke") {
        if (!parse_options(argc, argv, 3, {"--data", "--database", "--id"}, &o) ||
            !need(o, "--data") || !need(o, "--id"))
            return 2;
        Db db(db_location(o));
        AppCredential c = revoke_app_credential(db, o["--id"], cli_actor());
        std::fprintf(stderr, "app credential %s (%s) revoked at %s\n", c.id.c_str(), c.name.c_str(),
                     rfc3339(c.revoked).c_str());
        return 0;
    }
    if (sub != "create") {
        std::fprintf(stderr, "%s", kUsage);
        return 2;
    }
    if (!parse_options(argc, argv, 3,
                       {"--data", "--database", "--name", "--out", "--api", "--ca-cert", "--ca-key",
                        "--role", "--enforcer-id", "--enforcer-group"},
                       &o) ||
        !need(o, "--data") || !need(o, "--name") || !need(o, "--out") || !need(o, "--role") ||
        !ensure_dir(o["--data"]))
        return 2;
    auto role = role_from_name(o["--role"]);
    if (!role) {
        std::fprintf(stderr, "segwire-console: --role: \"%s\" is not admin, reader or enforcer\n",
                     o["--role"].c_str());
        return 2;
    }
    if (*role == Role::kEnforcer && !o.count("--enforcer-id")) {
        std::fprintf(stderr,
                     "segwire-console: --enforcer-id: an enforcer credential is bound to one "
                     "enforcer ID\n");
        return 2;
    }
    Db db(db_location(o));
    // Defaults: where the server last listened, and the CA it was given (if any).
    std::string api = opt_or(o, "--api", ""), ca_cert = opt_or(o, "--ca-cert", ""),
                ca_key = opt_or(o, "--ca-key", "");
    {
        std::lock_guard lock(db.mutex());
        if (api.empty()) api = db.meta("api_url", "https://127.0.0.1:8443");
        if (ca_cert.empty() && ca_key.empty()) {
            ca_cert = db.meta("ca_cert");
            ca_key = db.meta("ca_key");
        }
    }
    ConsolePki pki = ConsolePki::load_or_create(o["--data"], ca_cert, ca_key);
    // What clients trust for the Console's TLS: the operator's CA (serve --tls-ca), else the
    // Console CA.
    std::string tls_ca;
    {
        std::lock_guard lock(db.mutex());
        tls_ca = db.meta("tls_ca");
    }
    std::string cred =
        create_app_credential(db, pki, o["--name"], *role, opt_or(o, "--enforcer-id", ""), api,
                              tls_ca.empty() ? pki.ca_pem() : read_file(tls_ca), cli_actor(),
                              opt_or(o, "--enforcer-group", ""));
    write_file(o["--out"], cred + "\n", 0600);
    std::string bound;
    if (o.count("--enforcer-id")) bound = " for enforcer " + o["--enforcer-id"];
    if (o.count("--enforcer-group")) bound += " in enforcer group " + o["--enforcer-group"];
    std::fprintf(stderr, "wrote %s app credential \"%s\"%s to %s\n", role_name(*role),
                 o["--name"].c_str(), bound.c_str(), o["--out"].c_str());
    return 0;
}

int cmd_enforcer(int argc, char **argv) {
    std::map<std::string, std::string> o;
    const bool revoke = argc >= 3 && std::strcmp(argv[2], "revoke") == 0;
    if (argc < 3 || (!revoke && std::strcmp(argv[2], "approve") != 0)) {
        std::fprintf(stderr, "%s", kUsage);
        return 2;
    }
    if (!parse_options(argc, argv, 3, {"--data", "--database", "--id"}, &o) || !need(o, "--data") ||
        !need(o, "--id"))
        return 2;
    Db db(db_location(o));
    ConsolePki pki = ConsolePki::load_or_create(o["--data"], db.meta("ca_cert"), db.meta("ca_key"));
    if (revoke) {
        // A running server notices within a second and serves a new policy version.
        size_t n = EnforcerRegistry(db, pki).revoke(o["--id"], cli_actor());
        std::fprintf(stderr,
                     "enforcer %s revoked: %zu certificate(s) on the revocation list; registering "
                     "it again needs `segwire-console enforcer approve`\n",
                     o["--id"].c_str(), n);
        return 0;
    }
    EnforcerRegistry(db, pki).approve(o["--id"], cli_actor());
    std::fprintf(stderr, "enforcer %s approved for one first registration\n", o["--id"].c_str());
    return 0;
}

int cmd_audit(int argc, char **argv) {
    std::map<std::string, std::string> o;
    if (!parse_options(argc, argv, 2,
                       {"--data", "--database", "--since", "--who", "--kind", "--id"}, &o) ||
        !need(o, "--data"))
        return 2;
    std::string path = db_location(o);
    if (!Db::is_postgres_uri(path) && !std::filesystem::exists(path)) {
        std::fprintf(stderr, "segwire-console: no database at %s\n", path.c_str());
        return 1;
    }
    AuditFilter f;
    if (o.count("--since") && !parse_time(o["--since"], &f.since)) {
        std::fprintf(stderr, "segwire-console: --since: not RFC 3339 or unix seconds\n");
        return 2;
    }
    f.who = opt_or(o, "--who", "");
    f.kind = opt_or(o, "--kind", "");
    f.id = opt_or(o, "--id", "");
    f.page.limit = 1000000;  // the whole log: a local read, no page bound
    Db db(path);
    std::fputs(format_audit(db, f).c_str(), stdout);
    return 0;
}

int cmd_flows(int argc, char **argv) {
    std::map<std::string, std::string> o;
    if (!parse_options(argc, argv, 2, {"--data", "--database", "--since"}, &o) ||
        !need(o, "--data"))
        return 2;
    std::string path = db_location(o);
    if (!Db::is_postgres_uri(path) && !std::filesystem::exists(path)) {
        std::fprintf(stderr, "segwire-console: no database at %s\n", path.c_str());
        return 1;
    }
    int64_t since = -1;
    if (o.count("--since") && !parse_time(o["--since"], &since)) {
        std::fprintf(stderr, "segwire-console: --since: not RFC 3339 or unix seconds\n");
        return 2;
    }
    Db db(path);
    std::fputs(format_flow_table(aggregate_flows(db, since)).c_str(), stdout);
    return 0;
}

int cmd_apicalls(int argc, char **argv) {
    std::map<std::string, std::string> o;
    if (!parse_options(argc, argv, 2,
                       {"--data", "--database", "--since", "--service", "--verdict", "--caller"},
                       &o) ||
        !need(o, "--data"))
        return 2;
    std::string path = db_location(o);
    if (!Db::is_postgres_uri(path) && !std::filesystem::exists(path)) {
        std::fprintf(stderr, "segwire-console: no database at %s\n", path.c_str());
        return 1;
    }
    ApiCallFilter f;
    if (o.count("--since") && !parse_time(o["--since"], &f.since)) {
        std::fprintf(stderr, "segwire-console: --since: not RFC 3339 or unix seconds\n");
        return 2;
    }
    f.service = opt_or(o, "--service", "");
    f.verdict = opt_or(o, "--verdict", "");
    if (!f.verdict.empty() && f.verdict != "accept" && f.verdict != "reject") {
        std::fprintf(stderr, "segwire-console: --verdict: accept or reject\n");
        return 2;
    }
    f.caller_pu = opt_or(o, "--caller", "");
    Db db(path);
    std::fputs(format_apicalls(db, f).c_str(), stdout);
    return 0;
}

int cmd_backup(int argc, char **argv) {
    std::map<std::string, std::string> o;
    if (!parse_options(argc, argv, 2, {"--data", "--database", "--out", "--passphrase-file"}, &o,
                       {"--without-keys"}) ||
        !need(o, "--data") || !need(o, "--out"))
        return 2;
    BackupOptions b;
    b.data_dir = o["--data"];
    b.out = o["--out"];
    b.database = opt_or(o, "--database", "");
    b.without_keys = o.count("--without-keys") > 0;
    if (o.count("--passphrase-file")) b.passphrase = read_passphrase_file(o["--passphrase-file"]);
    std::printf("%s\n", backup_console(b).c_str());
    return 0;
}

int cmd_restore(int argc, char **argv) {
    std::map<std::string, std::string> o;
    if (!parse_options(argc, argv, 2, {"--data", "--database", "--from", "--passphrase-file"}, &o,
                       {"--force"}) ||
        !need(o, "--data") || !need(o, "--from"))
        return 2;
    RestoreOptions r;
    r.data_dir = o["--data"];
    r.from = o["--from"];
    r.database = opt_or(o, "--database", "");
    r.force = o.count("--force") > 0;
    if (o.count("--passphrase-file")) r.passphrase = read_passphrase_file(o["--passphrase-file"]);
    std::printf("%s\n", restore_console(r).c_str());
    return 0;
}

}  // namespace

int main(int argc, char **argv) {
    // Logs go to stderr; stdout carries only the "listening on" line and command output.
    spdlog::set_default_logger(spdlog::stderr_logger_mt("console"));
    spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
    if (argc < 2) {
        std::fprintf(stderr, "%s", kUsage);
        return 2;
    }
    std::string cmd = argv[1];
    try {
        if (cmd == "serve") return cmd_serve(argc, argv);
        if (cmd == "appcred") return cmd_appcred(argc, argv);
        if (cmd == "enforcer") return cmd_enforcer(argc, argv);
        if (cmd == "audit") return cmd_audit(argc, argv);
        if (cmd == "flows") return cmd_flows(argc, argv);
        if (cmd == "apicalls") return cmd_apicalls(argc, argv);
        if (cmd == "backup") return cmd_backup(argc, argv);
        if (cmd == "restore") return cmd_restore(argc, argv);
        if (cmd == "--help" || cmd == "-h" || cmd == "help") {
            std::fputs(kUsage, stdout);
            return 0;
        }
        if (cmd == "--version") {
            std::printf("segwire-console %s\n", segwire::version_line());
            return 0;
        }
    } catch (const ConsoleError &e) {
        std::fprintf(stderr, "segwire-console: %s\n", e.what());
        return 1;
    } catch (const ConstraintViolation &) {
        // A unique key already taken (e.g. a database whose sequences were set back by hand):
        // said, not an abort.
        std::fprintf(stderr,
                     "segwire-console: the database refused a row whose key is already taken "
                     "(a unique constraint); nothing was changed\n");
        return 1;
    } catch (const std::exception &e) {
        std::fprintf(stderr, "segwire-console: %s\n", e.what());
        return 1;
    }
    std::fprintf(stderr, "segwire-console: unknown command %s\n%s", cmd.c_str(), kUsage);
    return 2;
}
