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
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "config/appliance_config.hpp"
#include "control/console_client.hpp"
#include "control/enforcement.hpp"

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
};

class ConsoleSync {
  public:
    ConsoleSync(const config::ApplianceConfig &cfg);
    ~ConsoleSync();

    // Start-up, before the dataplane enforces anything. Authenticates and enrolls, or falls back to
    // the enrollment cached in state_dir when the Console does not answer. Fills the identity
    // paths (key, certificate, CA) in `id`. Throws std::runtime_error naming the problem when
    // neither works, or when the Console says the profile is ambiguous or missing (with the
    // candidates).
    void enroll(config::IdentityConfig &id);
    // The bundle cached by an earlier run (fail-static restart), if any.
    std::optional<std::string> cached_bundle() const;
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
    void submit_reports(std::vector<FlowReport> flows, std::vector<ExceptionReport> exceptions,
                        std::vector<DnsReport> dns = {});
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
    std::string etag_;                    // version we have (applied or rejected)
    std::optional<std::string> pending_;  // bundle waiting for the control loop
    struct Batch {
        std::string kind, path;  // kind: flowreports | connectionexceptionreports
        size_t bytes = 0, reports = 0;
    };
    std::deque<Batch> spool_;
    std::string peers_cached_;  // what peers.json holds
    uint64_t batch_seq_ = 0;
    int64_t next_send_ = 0;
    uint32_t backoff_s_ = 0;
    int64_t renew_at_ = 0;  // 0 = no certificate to renew (not enrolled)
    uint32_t renew_backoff_s_ = 0;
    std::vector<std::string> tags_;  // associatedTags sent with every registration
    std::atomic<bool> stop_{false};
    std::thread thread_, poll_thread_;
};

}  // namespace segwire::control
