// What the control thread publishes to workers (one immutable EnforcerState, swapped by RCU), and
// the messages workers exchange with the slow-path thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "crypto/claims.hpp"
#include "crypto/hmac.hpp"
#include "crypto/keys.hpp"
#include "crypto/verifier.hpp"
#include "dataplane/policy/snapshot.hpp"

struct rte_mbuf;

namespace segwire::dns {
class FqdnSet;
}

namespace segwire::dp {

// The Console's revocation list: SHA-256 of each revoked certificate (the claims' cert_ref),
// sorted, built once by the control thread. contains() is a binary search: no allocation, and one
// size test when the list is empty (the usual case).
struct RevokedCerts {
    std::vector<crypto::Digest> refs;  // sorted, unique

    bool contains(const uint8_t *ref) const noexcept {
        size_t lo = 0, hi = refs.size();
        while (lo < hi) {
            const size_t mid = (lo + hi) / 2;
            const int c = std::memcmp(refs[mid].data(), ref, 32);
            if (c == 0) return true;
            if (c < 0)
                lo = mid + 1;
            else
                hi = mid;
        }
        return false;
    }
};

// Everything a worker needs to enforce: the compiled policy and each local PU's signed claims
// (indexed like the snapshot's PUs; null for ignored PUs). Claims are re-signed on key rotation
// without recompiling the policy, so the snapshot is shared between successive states.
struct EnforcerState {
    std::shared_ptr<const policy::PolicySnapshot> policy;
    std::vector<std::shared_ptr<const crypto::SignedClaims>> claims;
    uint64_t version = 0;  // increases with every publication
    // Addresses learned from snooped DNS answers for hostname entries (docs/dns.md); replaced,
    // with the rest of the state copied, every time an answer teaches something new.
    std::shared_ptr<const dns::FqdnSet> fqdn;
    // The revocation list that came with the policy (null or empty: none). Peer claims signed by
    // a listed certificate are refused, cached or not, and flows they authorized are cut.
    std::shared_ptr<const RevokedCerts> revoked;

    const crypto::SignedClaims *claims_of(uint32_t pu) const noexcept {
        return pu < claims.size() ? claims[pu].get() : nullptr;
    }
    bool cert_revoked(const uint8_t *ref) const noexcept {
        return revoked && !revoked->refs.empty() && revoked->contains(ref);
    }
};

// A verified (or refused) peer claims blob, made by the slow path and owned by one worker from
// then on: by its peer cache, and by every flow whose peer it names (a flow keeps its peer's
// identity for its whole life, so a policy change can re-decide it however old it is, even after
// the claims have expired or left the cache). It goes back to the slow path to be freed when it
// is neither cached nor pinned by a flow. The worker-owned fields are only touched by that worker.
struct PeerIdentity {
    crypto::ClaimsReason status = crypto::ClaimsReason::Ok;
    crypto::VerifiedClaims claims;  // valid when status is Ok
    uint32_t blob_len = 0;
    uint8_t blob[crypto::kClaimsMaxLen];  // the exact bytes, to confirm a cache hit
    policy::PeerTags tags;                // for tags.snapshot_version()
    uint32_t expires_at = 0;              // cache lifetime (short for refusals)
    // Worker-owned:
    uint64_t cache_key = 0;      // the worker's peer-cache key for the blob
    uint32_t pins = 0;           // flows (and retag jobs in flight) that reference it
    bool cached = false;         // a peer-cache slot holds it
    bool retag_pending = false;  // a retag job for it is in flight
};

// A request to the slow path and, when it comes back, its answer. Each worker owns a fixed pool of
// jobs: it fills one, passes the pointer over its request ring, and gets the same pointer back on
// its reply ring. No allocation on the worker; a worker with no free job drops the packet.
struct SlowJob {
    enum Kind : uint8_t { kVerify, kRetag, kSessionKey, kDns };
    Kind kind = kVerify;
    uint16_t worker = 0;
    // The flow that parked on this job (-1: none), re-run when the answer comes back; its
    // creation time tells a flow apart from a later one in the same table slot.
    int32_t pos = -1;
    uint64_t flow_created = 0;
    // request
    uint64_t cache_key = 0;   // kVerify, kRetag: the worker's key for the blob
    uint32_t expires_at = 0;  // kRetag: keep the verified entry's lifetime
    // kRetag: the identity whose tags the answer replaces in place (pinned while in flight).
    PeerIdentity *target = nullptr;
    uint32_t blob_len = 0;
    uint8_t blob[crypto::kClaimsMaxLen];             // kVerify, kRetag (kRetag: already verified)
    crypto::X25519Public local_pub, peer_pub;        // kSessionKey
    crypto::Role local_role = crypto::Role::Client;  // kSessionKey
    // kDns: a DNS answer to a local PU, held (the mbuf travels with the job) until the slow path
    // has reported it and published what it teaches; then the worker sends it on.
    rte_mbuf *mbuf = nullptr;
    uint32_t dns_off = 0, dns_len = 0;  // the UDP/TCP payload within the frame
    bool dns_tcp = false;
    uint8_t family = 4;
    uint8_t client[16] = {};  // the PU's address (the answer's destination)
    uint32_t pu = 0;          // the PU's index in the snapshot of policy_version
    uint64_t policy_version = 0;
    // answer
    PeerIdentity *peer = nullptr;  // kVerify, kRetag: a new object, owned by the worker from now
    bool key_ok = false;           // kSessionKey
    crypto::HmacKey key;           // kSessionKey
};

}  // namespace segwire::dp
