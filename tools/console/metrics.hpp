// The Console's /metrics (docs/metrics.md): what the server counts while it runs (requests by
// route and status class, tokens, report batches, long-polls open) and the state it reads at each
// scrape (enforcers, policy, database, readiness). Counters only grow with the process; the state
// is read fresh, so nothing here is persisted.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

namespace segwire::console {

// The route a request path belongs to, with IDs replaced ("/enforcers/:id/policy"); "other" for
// paths no route serves. Keeps the route label bounded whatever clients send.
std::string route_template(std::string_view path);
// "GET", "POST", ... for the methods the API knows, "other" for the rest.
std::string_view method_label(std::string_view method);

class ConsoleMetrics {
  public:
    // Any server thread (the httplib logger calls it once per answered request).
    void request(std::string_view method, std::string_view path, int status);
    void token_issued(std::string_view realm);
    // A report batch: `kind` is the route's ("flowreports", …), `stored` reports written.
    void reports(std::string_view kind, uint64_t stored, bool duplicate);
    // Reports deleted by the retention sweep (server.cpp), by kind.
    void pruned(std::string_view kind, uint64_t n);
    void prune_run();
    // A 304 Not Modified: `what` is "policy" (a bundle's If-None-Match still satisfied) or
    // "certificates" (GET /enforcers, the peer certificates, unchanged).
    void not_modified(std::string_view what);
    // A new policy version that left a waiting enforcer's bundle as it was (its long-poll went on
    // waiting instead of being answered with the same bundle).
    void bundle_unchanged();

    // Holds one long-poll open for its lifetime (segwire_console_long_polls_open).
    class LongPoll {
      public:
        explicit LongPoll(std::atomic<int64_t> &open) : open_(open) { open_.fetch_add(1); }
        ~LongPoll() { open_.fetch_sub(1); }
        LongPoll(const LongPoll &) = delete;
        LongPoll &operator=(const LongPoll &) = delete;

      private:
        std::atomic<int64_t> &open_;
    };
    [[nodiscard]] LongPoll long_poll() { return LongPoll(long_polls_); }

    struct Counts {
        // (method, route, status class) → requests
        std::map<std::tuple<std::string, std::string, std::string>, uint64_t> requests;
        std::map<std::string, uint64_t> tokens;                           // realm → tokens issued
        std::map<std::string, uint64_t> reports;                          // kind → reports stored
        std::map<std::pair<std::string, std::string>, uint64_t> batches;  // (kind, result)
        std::map<std::string, uint64_t> pruned;                           // kind → reports pruned
        uint64_t prune_runs = 0;                                          // sweeps completed
        std::map<std::string, uint64_t> not_modified;                     // what → 304s
        uint64_t bundles_unchanged = 0;  // versions that did not change a waiting bundle
        int64_t long_polls_open = 0;
    };
    Counts counts() const;

  private:
    mutable std::mutex mu_;
    Counts c_;
    std::atomic<int64_t> long_polls_{0};
};

// What a scrape reads from the Console itself.
struct ConsoleState {
    int64_t start_unix = 0;
    uint64_t policy_version = 0;
    std::vector<std::pair<std::string, uint64_t>> policy_objects;  // collection → objects
    uint64_t enforcers_registered = 0, enforcers_reachable = 0;
    uint64_t revoked_certificates = 0;
    int64_t database_bytes = -1, wal_bytes = -1;  // -1: the file is not there
    int64_t ca_not_after = 0;                     // the Console CA's expiry (unix seconds)
    int64_t retention_seconds = 0;                // --retention; 0: reports are kept forever
    uint64_t ingest_transactions = 0, ingest_batches = 0;  // IngestQueue's group commits
    // /readyz's checks: name → "" when fine, else what is wrong.
    std::vector<std::pair<std::string, std::string>> checks;
    bool ready() const;
};

std::string render_console_metrics(const ConsoleMetrics::Counts &counts, const ConsoleState &state);
// /readyz's body: {"ready": bool, "checks": {"database": "ok" | problem, …}}.
std::string readiness_json(const ConsoleState &state);

}  // namespace segwire::console
