// The control thread's side of enforcement: the enforcer's keys and trust, the policy it enforces
// (compiled and published to workers with the local PUs' signed claims), the slow-path thread,
// and the flow records workers send back (names resolved, aggregated into flow reports).
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "config/appliance_config.hpp"
#include "config/policy/model.hpp"
#include "control/dns/fqdn.hpp"
#include "control/flowexport/exporter.hpp"
#include "control/l7.hpp"
#include "control/policy/publisher.hpp"
#include "control/reports.hpp"
#include "control/slowpath.hpp"
#include "crypto/keys.hpp"
#include "crypto/pki.hpp"
#include "crypto/verifier.hpp"
#include "dataplane/contract/enforcer_state.hpp"
#include "dataplane/contract/flow_records.hpp"
#include "dataplane/contract/identity_runtime.hpp"
#include "dataplane/contract/slow_job.hpp"
#include "dataplane/policy/budget.hpp"

namespace segwire::control {

// DNS snooping and FQDN learning, for telemetry.
struct DnsStats {
    uint64_t answers = 0, unparsed = 0, publications = 0;
    uint64_t refused_rcode = 0, refused_truncated = 0;  // parsed, reported, taught nothing
    size_t records = 0, addresses = 0;
    dns::FqdnCounters learner;
};

// What became of the policies the enforcer was given: the one in force and the last refusal
// (telemetry /segwire/control, Console heartbeats). A refused policy never replaces the one in
// force (fail-static); it is logged at error level and counted here.
struct PolicyStatus {
    std::string enforced_version;  // bundle version in force, "" before the first
    uint64_t applied = 0, refused = 0;
    bool last_refused = false;         // the most recent attempt was refused
    uint64_t warnings = 0;             // the policy in force: compiler warnings (logged)
    std::string last_refused_version;  // the refused bundle's version, "(unknown)" if unreadable
    std::string last_error;            // why, in full
    std::string last_error_cause;      // "invalid-policy" | "out-of-memory" | "snapshot-bound"
    int64_t last_refused_at = 0;       // unix seconds, 0 = never
    // Compiled snapshots alive now, the bound, and the most ever alive at once.
    uint32_t snapshots_alive = 0, snapshots_max = 0, snapshots_high_water = 0;
    // The address tables of the snapshot in force: DPDK bytes, kinds, shared with the previous one.
    uint64_t table_bytes = 0;
    std::string table_v4, table_v6;
    bool table_shared = false;
    // The Console's revocation list in force: the bundle that brought it, the snapshot version it
    // was published with (every flow it revokes is cut once the workers have re-decided under
    // it: policy_enforced_version >= revocation_snapshot), and how many certificates it lists.
    std::string revocation_version;
    uint64_t revocation_snapshot = 0;
    uint64_t revoked_certificates = 0;
};

// The datapath certificate claims are signed under, and a renewed one waiting to take over.
struct CertStatus {
    std::string ref;          // hex SHA-256 of the certificate in use (the claims' cert_ref)
    int64_t not_after = 0;    // its expiry (unix seconds)
    int64_t switched_at = 0;  // when claims last moved to a renewed certificate, 0 = never
    uint64_t switches = 0;    // how many times
    int64_t next_use_at = 0;  // a renewed certificate takes over then, 0 = none waiting
    int64_t next_not_after = 0;
};

class Enforcement {
  public:
    // Compiled snapshots alive at once: the one in force and the one being compiled. A reload that
    // finds the budget full (older snapshots still in their RCU grace period, or held for naming
    // flow records) drops the naming cache and waits up to kSnapshotWait for the workers to pass a
    // quiescent state; if the budget is still full it is refused (cause "snapshot-bound").
    static constexpr uint32_t kMaxAliveSnapshots = 2;
    static constexpr std::chrono::milliseconds kSnapshotWait{5000};

    // Loads keys, certificates and trust (throws std::runtime_error naming the config field).
    Enforcement(const config::ApplianceConfig &cfg, uint32_t workers, rte_mempool *pool,
                const uint16_t mtu[2], const dp::TxChecksum tx_csum[2]);
    ~Enforcement();

    dp::IdentityRuntime &runtime() { return rt_; }
    const std::string &enforcer_id() const { return cfg_.identity.enforcer_id; }

    // Resolves the profile, compiles, signs the PUs' claims and publishes. Throws PolicyError
    // (naming the problem: e.g. the candidate profiles; SnapshotResourceError for DPDK memory or
    // the snapshot bound) and leaves the current policy in place.
    void apply(const policy::PolicySet &set);
    // The same for identity.policy_file. A refusal is logged, counted in policy_status() and
    // rethrown.
    void apply_file(const std::string &path);
    // A bundle from the Console (its profile already resolved there). Returns its version.
    // Throws (naming the problem) and keeps the policy in force when the bundle is refused; the
    // refusal is logged and counted in policy_status() first.
    std::string apply_bundle(const std::string &json_text);
    PolicyStatus policy_status() const;
    // Adds a peer enforcer's certificate (verified against the trust bundle). True when the
    // certificate is (now) trusted.
    bool add_peer_certificate(const std::string &pem);
    // Any thread (the Console sync thread): a renewed datapath certificate for this enforcer's
    // key. It is verified and known locally at once; claims are signed under it from `use_at` on
    // (the control tick switches), so that peers fetch it from the Console while claims under the
    // current one are still good. Throws std::runtime_error naming the problem.
    void renewed_certificate(const std::string &pem, int64_t use_at);
    CertStatus cert_status() const;
    bool has_policy() const { return policy_ != nullptr; }
    // The profile's flowReportInterval (seconds), 30 s before any policy.
    uint64_t report_interval_s() const { return policy_ ? policy_->flow_report_interval_s() : 30; }
    uint64_t policy_version() const;
    std::string bundle_version() const;

    void start();
    void stop();
    // Periodic work on the control thread: key rotation, reclaiming old states, draining records.
    void tick();

    // Aggregated reports since the last take (the export path and telemetry read them).
    std::vector<FlowReport> take_flow_reports();
    std::vector<ExceptionReport> take_exception_reports();
    std::vector<DnsReport> take_dns_reports();
    DnsStats dns_stats() const;
    // Reports aggregated since start (for telemetry / segwirectl; bounded in keys).
    std::vector<FlowReport> total_flow_reports() const;
    // The report collections' sizes, bounds and overflow counts (telemetry, heartbeats).
    ReportCounts report_counts() const { return reports_.counts(); }
    const SlowPath &slowpath() const { return *slow_; }
    // The flow exporter's counters (any thread); none when no export is configured.
    std::optional<flowexport::ExportCounts> export_counts() const;
    // Flow accounting's active timeout handed to the workers (0: off; docs/export.md).
    uint32_t active_timeout_s() const { return rt_.active_timeout_s; }

    // L7 mode (docs/l7-path.md): the exception path told about policies and decided flows. Set
    // once before the first policy; lives longer than the Enforcement's use of it.
    void set_l7(L7Path *l7) { l7_ = l7; }

  private:
    void apply_set(const policy::PolicySet &set);
    std::string apply_bundle_text(const std::string &json_text);
    void refused(const std::string &version, const std::exception &e);
    void make_room();
    void publish_state();
    void publish_locked(std::shared_ptr<const dns::FqdnSet> fqdn);
    void on_dns_answer(const dns::DnsResponse &r, const dp::SlowJob &j, bool teach);
    // `revoked`: the bundle's revocation list (null: keep the one in force).
    void install(const policy::PolicySet &set, const policy::EnforcerProfile &profile,
                 const std::vector<crypto::Digest> *revoked = nullptr);
    void set_revoked_locked(const std::vector<crypto::Digest> &refs,
                            const std::string &bundle_version);
    void drain_records();
    void add_record(const dp::FlowRecordEvent &e);
    const policy::PolicySnapshot *snapshot_for(uint64_t version) const;

    config::ApplianceConfig cfg_;
    uint32_t workers_;
    crypto::PKeyPtr key_;
    crypto::X509Ptr cert_;       // state_mu_ (the control tick replaces it at a renewal)
    crypto::X509Ptr next_cert_;  // state_mu_: a renewed certificate waiting for its use_at
    CertStatus cert_st_;         // state_mu_
    std::unique_ptr<crypto::PeerCertStore> certs_;
    std::unique_ptr<crypto::IdentitySigner> signer_;
    RcuPublisher<dp::EnforcerState> publisher_;
    dp::IdentityRuntime rt_;
    std::unique_ptr<SlowPath> slow_;

    policy::PolicySet set_;
    policy::SnapshotBudget budget_{kMaxAliveSnapshots};
    std::shared_ptr<const policy::PolicySnapshot> policy_;
    // The snapshot in force and the one before (for naming flow records made just before a
    // swap); dropped by make_room() when a new compile needs the budget.
    std::deque<std::shared_ptr<const policy::PolicySnapshot>> recent_;
    mutable std::mutex status_mu_;  // telemetry and Console threads read the status
    PolicyStatus status_;
    crypto::X25519Public published_pub_{};
    // The enforcer group of the certificate in use ("" none): PUs hosted by "group:<it>" are
    // signed here too (docs/scale-out.md). state_mu_.
    std::string enforcer_group_;
    uint32_t hosted_pus_ = UINT32_MAX;  // PUs this enforcer signs claims for (logged on change)
    uint64_t state_version_ = 0;

    ReportBook reports_;
    // JSON lines and IPFIX export of flow counter records (null: not configured). Control thread
    // (add_record, tick); its counters are read by telemetry and metrics.
    std::unique_ptr<flowexport::FlowExporter> export_;

    // The published state's parts, so that a DNS answer can republish it with a new FQDN set
    // without re-signing claims. state_mu_ also guards policy_ for the slow-path thread.
    mutable std::mutex state_mu_;
    std::vector<std::shared_ptr<const crypto::SignedClaims>> claims_;
    std::vector<uint8_t> hosting_;  // EnforcerState::hosting of the policy in force
    L7Path *l7_ = nullptr;
    std::vector<uint64_t> l7_ports_;  // EnforcerState::l7_ports of the policy in force
    std::shared_ptr<const dns::FqdnSet> fqdn_;
    std::shared_ptr<const dp::RevokedCerts> revoked_;
    dns::FqdnLearner learner_;
    bool fqdn_dirty_ = false;  // refreshed expiries not yet published
    uint32_t fqdn_next_expire_ = 0;
    uint64_t fqdn_publications_ = 0;
};

}  // namespace segwire::control
