// The identity stage's contract with the control thread: the shared runtime (rings, pool,
// limits, the published policy state) and the counters telemetry reads.
#pragma once

#include <cstdint>

#include "crypto/hmac.hpp"
#include "dataplane/handshake/identity.hpp"
#include "dataplane/packet/rewrite.hpp"
#include "dataplane/policy/publisher.hpp"
#include "dataplane/worker/stats.hpp"
#include "dataplane/worker/tx_queues.hpp"

struct rte_mempool;
struct rte_ring;

namespace segwire::dp {

// Shared by all workers, owned by the control thread. Without `state` the workers only forward.
struct IdentityRuntime {
    policy::RcuPublisher<EnforcerState> *state = nullptr;
    rte_mempool *pool = nullptr;     // for RSTs the worker originates
    bool reject_with_rst = true;     // else a rejected SYN is dropped silently
    uint16_t mtu[2] = {1500, 1500};  // inside, outside
    TxChecksum tx_csum[2];
    crypto::HmacBackend hmac = crypto::HmacBackend::Auto;
    uint32_t hold_per_flow = 16;
    uint32_t hold_total = 4096;
    uint32_t handshakes = 16384;  // concurrent handshakes per worker
    uint32_t peer_cache = 4096;
    uint32_t key_cache = 4096;
    uint32_t slow_jobs = 256;  // slow-path requests in flight per worker
    uint32_t decision_cache = 4096;
    // Rings per worker, created by the control thread (index = worker id).
    rte_ring *slow_req[kMaxWorkers] = {};  // worker -> slow path (SlowJob*)
    rte_ring *slow_rep[kMaxWorkers] = {};  // slow path -> worker (SlowJob*)
    rte_ring *garbage[kMaxWorkers] = {};   // worker -> slow path (PeerIdentity* to free)
    rte_ring *records[kMaxWorkers] = {};   // worker -> control (FlowRecordEvent by value)
};

// Identity counters (beyond drops by reason).
struct alignas(64) IdentityStats {
    Counter syn_signed, syn_verified, synack_signed, synack_verified, ack_proofs_added,
        ack_proofs_verified, authorized, rejected, acl_decisions, passthrough, parked, slow_jobs,
        peer_cache_hits, peer_cache_misses, key_cache_hits, key_cache_misses, hmac_batches,
        hmac_jobs, records, records_lost, flows_cut, resets_sent, exceptions;
    // The ACK proof's confirmation (docs/protocol.md §4.3), options scrubbed off packets for end
    // hosts, identity SYNs on an open connection, refused new flows whose entry was removed.
    Counter confirms_sent, confirms_received, options_scrubbed, syns_on_open_flow, flows_retired,
        identities_lost;  // a full garbage ring: a PeerIdentity leaked
    // The policy version every authorized flow of this worker has been re-decided under (not a
    // sum: telemetry reports the minimum over workers as `policy_enforced_version`).
    Counter policy_enforced;
    // UDP handshake (docs/protocol.md §9)
    Counter udp_syn_sent, udp_synack_sent, udp_ack_sent, udp_retransmits, udp_rejects_sent,
        udp_resets_sent, udp_resets_received, udp_fallbacks, udp_control_consumed,
        udp_handshakes_restarted, udp_expired;
    // DNS snooping (docs/dns.md)
    Counter dns_snooped, dns_unsnooped, fqdn_decisions;
};

}  // namespace segwire::dp
