#include "control/slowpath.hpp"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <ctime>
#include <new>
#include <string>
#include <vector>

#include <rte_mbuf.h>
#include <rte_ring.h>
#include <spdlog/spdlog.h>

namespace segwire::control {
namespace {
constexpr uint32_t kRefusalCacheS = 10;  // a refused blob is answered from cache this long

std::vector<std::string> blob_tags(const crypto::VerifiedClaims &c) {
    std::vector<std::string> tags;
    for (size_t i = 0; i < c.tag_count(); ++i) tags.emplace_back(c.tag(i));
    return tags;
}
}  // namespace

SlowPath::SlowPath(const crypto::IdentitySigner &signer, const crypto::PeerCertStore &certs,
                   dp::IdentityRuntime &rt, uint32_t workers)
    : signer_(signer),
      certs_(certs),
      rt_(rt),
      workers_(workers),
      dns_(std::make_unique<dns::DnsResponse>()) {}

SlowPath::~SlowPath() {
    stop();
}

void SlowPath::set_policy(std::shared_ptr<const policy::PolicySnapshot> p) {
    std::lock_guard<std::mutex> lock(mu_);
    policy_ = std::move(p);
}

void SlowPath::start() {
    thread_ = std::thread([this] { loop(); });
}

void SlowPath::stop() {
    stop_.store(true);
    if (thread_.joinable()) thread_.join();
    // Whatever workers handed back for freeing.
    for (uint32_t w = 0; w < workers_; ++w) {
        void *p;
        while (rt_.garbage[w] && rte_ring_sc_dequeue(rt_.garbage[w], &p) == 0)
            delete static_cast<dp::PeerIdentity *>(p);
    }
}

void SlowPath::handle(dp::SlowJob &j, uint32_t now) {
    std::shared_ptr<const policy::PolicySnapshot> pol;
    {
        std::lock_guard<std::mutex> lock(mu_);
        pol = policy_;
    }
    switch (j.kind) {
        case dp::SlowJob::kVerify:
        case dp::SlowJob::kRetag: {
            auto p = std::make_unique<dp::PeerIdentity>();
            std::span<const uint8_t> blob(j.blob, j.blob_len);
            p->blob_len = j.blob_len;
            std::memcpy(p->blob, j.blob, j.blob_len);
            if (j.kind == dp::SlowJob::kVerify) {
                std::string detail;
                crypto::ClaimsVerifier verifier(certs_);
                p->status = verifier.verify(blob, now, p->claims, &detail);
                if (p->status == crypto::ClaimsReason::Ok) {
                    p->expires_at = p->claims.expires_at();
                    verified_.fetch_add(1);
                } else {
                    p->expires_at = now + kRefusalCacheS;
                    refused_.fetch_add(1);
                    spdlog::debug("claims refused: {} ({})", crypto::to_string(p->status), detail);
                }
            } else {
                // Already verified by this worker: only the tags need the new snapshot's IDs.
                crypto::ClaimsView v;
                if (crypto::decode_claims(blob, v) != crypto::ClaimsReason::Ok) {
                    j.peer = nullptr;
                    return;
                }
                p->claims.assign(v, crypto::sha256(blob), j.expires_at);
                p->expires_at = j.expires_at;
            }
            if (p->status == crypto::ClaimsReason::Ok) bind(*p, pol.get(), now);
            j.peer = p.release();
            return;
        }
        case dp::SlowJob::kDns: {
            // The answer's bytes are read in place: the mbuf belongs to this job until it is
            // handed back. Nothing here changes the packet.
            std::span<const uint8_t> msg(rte_pktmbuf_mtod(j.mbuf, const uint8_t *) + j.dns_off,
                                         j.dns_len);
            dns::DnsStatus st = dns::DnsStatus::Ok;
            if (j.dns_tcp) {
                st = dns::dns_from_tcp_payload(msg, msg);
                if (st == dns::DnsStatus::TrailingData) st = dns::DnsStatus::Ok;
            }
            if (st == dns::DnsStatus::Ok) st = dns::parse_dns_response(msg, *dns_);
            if (st != dns::DnsStatus::Ok) {
                dns_unparsed_.fetch_add(1);
                spdlog::debug("DNS answer not parsed: {}", dns::to_string(st));
                return;
            }
            dns_answers_.fetch_add(1);
            // A failed or truncated answer is reported, but its records teach nothing: a forger
            // must not get addresses in by flagging its answer NXDOMAIN, and a truncated answer
            // is incomplete by definition (the client asks again over TCP).
            bool teach = true;
            if (dns_->rcode != dns::kRcodeNoError) {
                dns_refused_rcode_.fetch_add(1);
                teach = false;
            } else if (dns_->tc) {
                dns_refused_truncated_.fetch_add(1);
                teach = false;
            }
            if (dns_sink_) dns_sink_(*dns_, j, teach);
            return;
        }
        case dp::SlowJob::kSessionKey:
            session_key(j, now);
            return;
    }
}

// Claims whose signature verified speak for a PU only as the Console's record allows (docs/
// policy.md "Who may speak for a PU"): the PU exists in this snapshot and names the signing
// enforcer as its host (or names a group, "group:NAME", that the signer's verified certificate
// carries: docs/scale-out.md); its tags are the record's, whatever the blob says. A refusal here is
// cached like any other, and re-checked under the next snapshot (the worker re-tags it).
void SlowPath::bind(dp::PeerIdentity &p, const policy::PolicySnapshot *pol, uint32_t now) {
    const uint32_t pu = pol ? pol->find_pu_by_id(p.claims.pu_id()) : policy::kNone;
    crypto::ClaimsReason why = crypto::ClaimsReason::Ok;
    if (pu == policy::kNone)
        why = crypto::ClaimsReason::UnknownPu;
    else if (!crypto::hosts_pu(pol->pu_enforcer(pu), p.claims.enforcer_id(),
                               p.claims.enforcer_group()))
        why = crypto::ClaimsReason::NotHosted;
    if (why != crypto::ClaimsReason::Ok) {
        p.status = why;
        p.expires_at = std::min(p.expires_at, now + kRefusalCacheS);
        p.tags = pol ? pol->make_peer_tags({}) : policy::PeerTags{};
        unbound_.fetch_add(1);
        spdlog::debug("claims refused: {} (PU '{}', signed by '{}')", crypto::to_string(why),
                      p.claims.pu_id(), p.claims.enforcer_id());
        return;
    }
    p.pu = pu;
    p.tags = pol->pu_peer_tags(pu);
    // The blob's own tags are not used; count when they differ from the record (a retag the
    // peer has not signed yet, or a peer that says more than the Console does).
    const policy::PeerTags blob = pol->make_peer_tags(blob_tags(p.claims));
    if (blob.key() != p.tags.key()) tags_differ_.fetch_add(1);
}

void SlowPath::session_key(dp::SlowJob &j, uint32_t now) {
    KeyFailureCache::Key fk;
    std::memcpy(fk.data(), j.peer_pub.data(), 32);
    std::memcpy(fk.data() + 32, j.local_pub.data(), 32);
    fk[64] = static_cast<uint8_t>(j.local_role);
    if (key_failed_.find(fk, now)) {
        j.key_ok = false;
        key_failures_cached_.fetch_add(1);
        return;
    }
    auto k = signer_.session_key(j.local_pub, j.peer_pub, j.local_role);
    j.key_ok = k.ok();
    if (k.ok()) {
        j.key.set(*k);  // in place (crypto/hmac.hpp: no over-aligned temporary)
        crypto::secure_wipe(k->data(), k->size());  // the raw key, now expanded
        keys_.fetch_add(1);
        return;
    }
    spdlog::debug("session key: {}", k.error().what());
    key_failures_.fetch_add(1);
    key_failed_.insert(fk, now + kKeyFailureTtlS, now);
    key_failures_evicted_.store(key_failed_.stats().evictions);
}

void SlowPath::answer(dp::SlowJob &j) {
    answer(j, static_cast<uint32_t>(std::time(nullptr)));
}

void SlowPath::answer(dp::SlowJob &j, uint32_t now) {
    handle(j, now);
}

unsigned SlowPath::poll_once() {
    void *items[32];
    unsigned done = 0;
    const uint32_t now = static_cast<uint32_t>(std::time(nullptr));
    for (uint32_t w = 0; w < workers_; ++w) {
        if (!rt_.slow_req[w]) continue;
        unsigned n = rte_ring_sc_dequeue_burst(rt_.slow_req[w], items, 32, nullptr);
        for (unsigned i = 0; i < n; ++i) handle(*static_cast<dp::SlowJob *>(items[i]), now);
        // The reply ring is as large as the worker's job pool: it cannot be full.
        if (n) rte_ring_sp_enqueue_bulk(rt_.slow_rep[w], items, n, nullptr);
        unsigned g =
            rt_.garbage[w] ? rte_ring_sc_dequeue_burst(rt_.garbage[w], items, 32, nullptr) : 0;
        for (unsigned i = 0; i < g; ++i) delete static_cast<dp::PeerIdentity *>(items[i]);
        done += n + g;
    }
    return done;
}

void SlowPath::loop() {
    while (!stop_.load()) {
        if (!poll_once()) std::this_thread::sleep_for(std::chrono::microseconds(100));
    }
}

}  // namespace segwire::control
