// The slow path: one thread (not a worker lcore) that does what may take ~100 µs — verifying a new
// claims blob (ECDSA), deriving a session key (X25519 + HKDF), re-tagging a peer for a new policy
// snapshot — so that workers never wait. Workers send SlowJob pointers over their request ring and
// get the same pointers back on their reply ring; both rings are bounded by the worker's job pool.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>

#include "crypto/cache.hpp"
#include "crypto/keys.hpp"
#include "crypto/verifier.hpp"
#include "control/dns/dns_message.hpp"
#include "dataplane/contract/identity_runtime.hpp"
#include "dataplane/contract/slow_job.hpp"
#include "dataplane/policy/snapshot.hpp"

namespace segwire::control {

class SlowPath {
  public:
    // A session-key derivation that failed (the peer's key is one X25519 refuses, e.g. a
    // low-order point, or the local key was rotated out) is remembered for kKeyFailureTtlS: the
    // same (peer key, local key, role) is answered key_ok=false from this cache without running
    // X25519 again. At most kKeyFailureEntries pairs (4-way sets, the entry expiring first is
    // evicted). docs/handshake.md, "Batched crypto and the slow path".
    static constexpr uint32_t kKeyFailureTtlS = 60;
    static constexpr size_t kKeyFailureEntries = 1024;

    SlowPath(const crypto::IdentitySigner &signer, const crypto::PeerCertStore &certs,
             dp::IdentityRuntime &rt, uint32_t workers);
    ~SlowPath();

    // The snapshot new PeerTags are built against (the control thread sets it on every publish).
    void set_policy(std::shared_ptr<const policy::PolicySnapshot> p);
    // Called on the slow-path thread for every parsed DNS answer (the worker matched it to a
    // query its PU sent), before the worker may send the answer on (so what it publishes is in
    // force when the client sees the answer). `teach` is false for an answer that may be reported
    // but must teach nothing: an RCODE other than NOERROR, or TC set (docs/dns.md).
    using DnsSink = std::function<void(const dns::DnsResponse &, const dp::SlowJob &, bool teach)>;
    void set_dns_sink(DnsSink sink) { dns_sink_ = std::move(sink); }
    void start();
    void stop();

    // One round of what the thread does (answer every worker's requests, free its garbage), on the
    // caller's thread: segwire-bench runs the slow path synchronously this way and counts its
    // cycles. Returns how many requests and garbage items it handled.
    unsigned poll_once();
    // Answers one request as the thread would (the caller passes it back to the worker); `now`
    // (unix seconds) is the clock the caches and claims expiry use, std::time by default.
    void answer(dp::SlowJob &j);
    void answer(dp::SlowJob &j, uint32_t now);

    uint64_t verified() const { return verified_.load(); }
    uint64_t refused() const { return refused_.load(); }
    uint64_t keys() const { return keys_.load(); }
    // Session-key derivations run that failed; jobs answered from the failure cache instead; live
    // failure entries pushed out by newer ones while the cache was full.
    uint64_t key_failures() const { return key_failures_.load(); }
    uint64_t key_failures_cached() const { return key_failures_cached_.load(); }
    uint64_t key_failures_evicted() const { return key_failures_evicted_.load(); }
    // Verified claims refused by the binding to the Console's record (PU unknown, or hosted by
    // another enforcer); bound claims whose blob tags differ from the record's (ignored).
    uint64_t claims_unbound() const { return unbound_.load(); }
    uint64_t claims_tags_differ() const { return tags_differ_.load(); }
    uint64_t dns_answers() const { return dns_answers_.load(); }
    uint64_t dns_unparsed() const { return dns_unparsed_.load(); }
    // Parsed answers that teach nothing: RCODE not NOERROR (NXDOMAIN, SERVFAIL, ...); TC set.
    uint64_t dns_refused_rcode() const { return dns_refused_rcode_.load(); }
    uint64_t dns_refused_truncated() const { return dns_refused_truncated_.load(); }

  private:
    void loop();
    void handle(dp::SlowJob &j, uint32_t now);
    void session_key(dp::SlowJob &j, uint32_t now);
    void bind(dp::PeerIdentity &p, const policy::PolicySnapshot *pol, uint32_t now);

    const crypto::IdentitySigner &signer_;
    const crypto::PeerCertStore &certs_;
    dp::IdentityRuntime &rt_;
    uint32_t workers_;
    std::mutex mu_;
    std::shared_ptr<const policy::PolicySnapshot> policy_;
    std::atomic<bool> stop_{false};
    std::thread thread_;
    std::atomic<uint64_t> verified_{0}, refused_{0}, keys_{0};
    std::atomic<uint64_t> unbound_{0}, tags_differ_{0};
    std::atomic<uint64_t> key_failures_{0}, key_failures_cached_{0}, key_failures_evicted_{0};
    // Keyed by peer key, local key, role (the peer's key first: the set index is taken from the
    // first bytes, and the local key is the same for every peer in a rotation period). Only
    // handle() touches it: the slow-path thread, or poll_once()/answer()'s caller without one.
    struct KeyFailure {};
    using KeyFailureCache = crypto::FixedCache<65, KeyFailure, 4>;
    KeyFailureCache key_failed_{kKeyFailureEntries};
    std::atomic<uint64_t> dns_answers_{0}, dns_unparsed_{0}, dns_refused_rcode_{0},
        dns_refused_truncated_{0};
    DnsSink dns_sink_;
    std::unique_ptr<dns::DnsResponse> dns_;  // ~7 KiB, reused
};

}  // namespace segwire::control
