// Contract: the messages workers exchange with the slow-path thread (SlowJob, PeerIdentity).
// Written by: a worker lcore fills a SlowJob from its own pool and passes the pointer over its
// request ring IdentityRuntime::slow_req[id]; the slow-path thread (control/slowpath.cpp) answers
// in place and passes the same pointer back over slow_rep[id]. Whoever holds the pointer owns the
// job; nothing is shared at the same time.
// PeerIdentity: made by the slow-path thread, owned by the receiving worker from then on, and
// handed back over garbage[id] to be freed on the slow-path thread.
#pragma once

#include <cstdint>

#include "crypto/claims.hpp"
#include "crypto/hmac.hpp"
#include "crypto/keys.hpp"
#include "crypto/verifier.hpp"
#include "dataplane/policy/snapshot.hpp"

struct rte_mbuf;

namespace segwire::dp {

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
    // The claimed PU in that same snapshot (status Ok): the packet's peer address must lie in
    // its addresses. Tags come from its record, not from the blob (docs/policy.md).
    uint32_t pu = UINT32_MAX;
    uint32_t expires_at = 0;  // cache lifetime (short for refusals)
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
    // The source bucket the job is charged to (identity::SourceShare; 0xffff: none).
    uint16_t share = 0xffff;
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
