// Keeps an enforcer in sync with its Console: authentication (app credential mTLS or a cloud
// identity token, renewed at half its validity), enrollment (key + CSR -> datapath certificate),
// profile resolution, the policy bundle by long-poll (cached on disk: fail-static), peer enforcer
// certificates, heartbeats, and report upload through an on-disk spool.
//
// It runs on its own thread because a long-poll blocks for tens of seconds; it never touches the
// Enforcement directly: bundles go to the control loop through take_bundle(), reports come from it
// through submit_reports().
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "config/appliance_config.hpp"
#include "control/console_client.hpp"
#include "control/enforcement.hpp"
#include "control/state_seal.hpp"

namespace segwire::control {

struct SyncStatus {
    bool connected = false;
    std::string last_error;
    std::string bundle_version;  // the version in force
    uint64_t bundles_applied = 0, bundles_rejected = 0;
    uint64_t tokens_issued = 0;
    int64_t token_expires_at = 0;
    uint64_t batches_sent = 0, reports_sent = 0, reports_dropped = 0;
    uint64_t spool_batches = 0, spool_bytes = 0;
    uint64_t heartbeats = 0, peer_certificates = 0;
    // Datapath certificate renewal: when the current one expires, when it was last renewed, when
    // the next renewal (or retry) is due, and how renewals went.
    int64_t cert_not_after = 0, cert_renewed_at = 0, cert_next_renewal_at = 0;
    uint64_t cert_renewals = 0, cert_renewal_failures = 0;
    std::string cert_renewal_error;  // the last failure, "" after a success
    // The fail-static cache (state_dir/bundle.json): "none" (no file at start), "refused" (with
    // the reason: a SealError name), "valid" (accepted at start), "in-force" (the bundle in force
    // is cached); when the Console last vouched for it.
    std::string cache_state = "none", cache_refused;
    int64_t cache_saved_at = 0;
};

// What enroll() achieved.
enum class Enrollment : uint8_t {
    kEnrolled,     // the Console answered: key, certificate and CA are fresh in state_dir
    kCached,       // the Console did not answer; the enrollment of an earlier run is used
    kUnreachable,  // never enrolled and the Console is out of reach: ask again later
};

class ConsoleSync {
  public:
    ConsoleSync(const config::ApplianceConfig &cfg);
    ~ConsoleSync();

    // Start-up, before the dataplane enforces anything. Authenticates and enrolls, or falls back to
    // the enrollment cached in state_dir when the Console does not answer. Fills the identity
    // paths (key, certificate, CA) in `id`. kUnreachable: never enrolled and no Console to be
    // reached (the daemon runs under the fail mode and calls again). Throws std::runtime_error
    // naming the problem when the Console answers but enrollment fails without an earlier one
    // (TLS verification, a refusal), or when the Console says the profile is ambiguous or
    // missing (with the candidates).
    Enrollment enroll(config::IdentityConfig &id);
    // The bundle cached by an earlier run (fail-static restart), if its seal verifies under this
    // enforcer's key and the Console vouched for it within console.cache_max_age_s; otherwise
    // nullopt, and an error-level log line names the reason (status().cache_refused).
    std::optional<std::string> cached_bundle();
    // The cached bundle was applied at start: it is the version in force (the file is left as it
    // is, with the time the Console last vouched for it).
    void cached_bundle_applied(const std::string &text, const std::string &version);
    // Peer enforcer certificates learned from the Console by an earlier run (fail-static too:
    // without them a restarted enforcer could not verify any peer's claims).
    std::vector<std::string> cached_peer_certificates() const;

    void start(Enforcement &e);
    void stop();

    // Control loop side.
    std::optional<std::string> take_bundle();  // a new bundle to apply
    void bundle_applied(const std::string &text, const std::string &version);
    // After Enforcement refused a bundle (and logged why): counts it and sends the Console an
    // event log (eventlogs, spooled like reports); heartbeats carry the last refusal.
    void bundle_rejected(const PolicyStatus &status);
    // api_calls: L7 mode's API reports (docs/l7-path.md), validated JSON objects, sent to the
    // Console's apicalls collection in batches like the others.
    // L7 mode: the services whose TLS certificate the Console issues (name -> hosts), written to
    // `dir`/<name>.crt|.key. Replaces the previous list.
    void set_service_certificates(const std::string &dir,
                                  std::map<std::string, std::vector<std::string>> wanted);
    void submit_reports(std::vector<FlowReport> flows, std::vector<ExceptionReport> exceptions,
                        std::vector<DnsReport> dns = {}, std::vector<std::string> api_calls = {});
    SyncStatus status() const;
    uint32_t report_interval_s(uint64_t profile_default_s) const;

  private:
    void loop();
    bool authenticate();
    bool ensure_token();
    void poll_policy();
    void refresh_peers();
    // POST /enforcers with a CSR for the same key: the Console's re-registration, which needs
    // proof of the current key. Due at 2/3 of the certificate's life; failures retry with
    // back-off (1 s … 60 s, jitter) while the certificate lasts.
    void renew_certificate();
    // The certificate in `pem`, received at `received` (unix seconds): schedules its renewal.
    void schedule_renewal(const std::string &pem, int64_t received);
    std::string registration_body(std::string *error);
    void heartbeat();
    void service_certificates(int64_t now);
    // The key sealing state_dir's cache files, derived from the enforcer's key (state_seal.hpp).
    void load_state_key(const std::string &key_path);
    StateKey state_key() const;                                   // a copy (the caller wipes it)
    void write_cache(const std::string &text, int64_t saved_at);  // with cache_mu_ held
    void refresh_cache();
    void flush_spool();
    void spool(const std::string &kind, const std::string &body, size_t reports);
    void load_spool();
    std::string fetch_cloud_token(std::string &metadata_json);
    HttpResponse call(const std::string &method, const std::string &path,
                      const std::string &body = "", long timeout_s = 10,
                      std::vector<std::string> headers = {});
    void set_error(const std::string &e);

    config::ApplianceConfig cfg_;
    std::string state_dir_, enforcer_id_;
    std::unique_ptr<ConsoleClient> client_;
    std::string appcred_cert_, appcred_key_;
    Enforcement *enf_ = nullptr;

    mutable std::mutex mu_;
    std::condition_variable cv_;
    SyncStatus st_;
    std::string token_;
    int64_t token_renew_at_ = 0;
    std::string etag_;                    // ETag of the bundle we have (applied or rejected)
    std::optional<std::string> pending_;  // bundle waiting for the control loop
    // The ETags of pending_, of the bundle the control loop took last, and of the bundle in
    // force: a 304 confirms the cache only when it names the bundle in force (the Console's ETag
    // is a digest of this enforcer's bundle, docs/console.md "Per-enforcer bundles").
    std::string pending_etag_, taken_etag_, cache_etag_;
    std::string peers_etag_;  // GET /enforcers' ETag, sent back as If-None-Match
    struct Batch {
        std::string kind, path;  // kind: flowreports | connectionexceptionreports
        size_t bytes = 0, reports = 0;
    };
    std::deque<Batch> spool_;
    std::string peers_cached_;  // what peers.json holds
    bool unreachable_ = false;  // the last POST /issue reached nothing
    StateKey state_key_{};      // seals bundle.json and peers.json
    // The bundle in force as cached, its version, when the Console last vouched for it (the
    // file's savedAt) and last confirmed it (a 304 to the long-poll for that version).
    std::string cache_text_, cache_version_;
    int64_t cache_saved_at_ = 0, confirmed_at_ = 0;
    // Held (before mu_) while bundle.json is written: the control loop (a new bundle) and the
    // sync thread (a confirmation) never write it at once, nor an older text after a newer one.
    std::mutex cache_mu_;
    uint64_t batch_seq_ = 0;
    int64_t next_send_ = 0;
    uint32_t backoff_s_ = 0;
    int64_t renew_at_ = 0;  // 0 = no certificate to renew (not enrolled)
    // L7 services with TLSType "Aporeto" hosted here (mu_): their certificate files in tls_dir_,
    // each requested when missing and renewed at 2/3 of its life (docs/l7-path.md).
    std::string tls_dir_;
    std::map<std::string, std::vector<std::string>> tls_wanted_;  // service -> hosts
    struct TlsState {
        std::vector<std::string> hosts;
        int64_t due = 0;
        uint32_t backoff_s = 0;
    };
    std::map<std::string, TlsState> tls_;
    uint32_t renew_backoff_s_ = 0;
    std::vector<std::string> tags_;  // associatedTags sent with every registration
    std::atomic<bool> stop_{false};
    std::thread thread_, poll_thread_;
};

}  // namespace segwire::control
