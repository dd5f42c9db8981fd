// The HTTPS API of segwire-console (docs/console.md is the reference).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "tools/console/realms.hpp"

namespace segwire::console {

struct ServerOptions {
    std::string data_dir;
    // --database: a PostgreSQL connection URI (postgresql://…); "" = SQLite in DATA/console.db.
    // Replicas share one PostgreSQL and the key files of one data directory (docs/console.md).
    std::string database;
    std::string policy_dir;  // "" = no directory seed
    std::string listen_host = "127.0.0.1";
    int listen_port = 8443;  // 0 = an ephemeral port
    // --metrics-listen: a plain-HTTP listener for /metrics, /healthz and /readyz without
    // credentials (docs/metrics.md). metrics_port -1 = off, 0 = an ephemeral port.
    std::string metrics_host;
    int metrics_port = -1;
    std::string ca_cert, ca_key;
    // TLS: an operator's certificate chain and key, and the CA that clients (app credentials)
    // trust for it; or, without them, extra subjectAltNames for the generated certificate.
    std::string tls_cert, tls_key, tls_ca;
    std::vector<std::string> tls_sans;
    int64_t token_validity = 3600;      // seconds, when POST /issue gives none
    int64_t cert_validity = 24 * 3600;  // datapath certificates (--cert-validity, >= 60 s)
    // Cloud login realms (off unless configured) and whether their identities may register an
    // ID for the first time without an admin's approval.
    Realms realms;
    // Reports (all four kinds) whose timestamp is older than this are deleted by a background
    // sweep every retention_interval seconds, in bounded batches. 0 = kept forever.
    int64_t retention = 7 * 24 * 3600;
    int64_t retention_interval = 60;
    // --threads: the handler worker threads (database work). Connections run on a few I/O
    // threads (one per CPU) and a waiting long-poll holds no thread: it is parked
    // (async_server.hpp; docs/console.md, "Serving").
    int threads = 8;
    // --max-connections: open API connections; beyond, new ones are closed at once (logged).
    // 0 = from RLIMIT_NOFILE (raised to its hard limit at start), at most 10000.
    size_t max_connections = 0;
    // --idle-timeout: a kept-alive connection without a request is closed after this (seconds).
    int64_t idle_timeout = 60;
    // The flow map page's files (--ui-dir; default: default_ui_dir() in ui.hpp). "" = no page.
    std::string ui_dir;
};

// The data directory's lock file: `serve` holds an exclusive flock on it while it runs, so that
// `restore` (and a second `serve`) can tell a live Console from a stopped one.
constexpr const char *kLockFile = "console.lock";

// Runs until SIGTERM/SIGINT; SIGHUP reloads --policy. Prints "listening on https://HOST:PORT" on
// stdout once the socket is bound, and then, with --metrics-listen, "metrics on http://HOST:PORT".
// Returns the process exit code.
int run_server(const ServerOptions &opt);

// The database a command opens: --database, else DATA/console.db.
std::string database_location(const std::string &data_dir, const std::string &database);

}  // namespace segwire::console
