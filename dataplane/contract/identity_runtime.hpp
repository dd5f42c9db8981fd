// Contract: the identity stage's shared resources (IdentityRuntime).
// Written by: the control thread, once, before the workers start (control/enforcement.cpp, the
// Enforcement constructor): limits, ports' MTU and checksum offloads, and one ring of each kind
// per worker. Later publications go through `state` (the RCU slot), never through this struct.
// Read by: every worker lcore (its own rings: index = worker id) and the slow-path thread
// (control/slowpath.cpp: the other end of slow_req, slow_rep and garbage). Without `state` the
// workers only forward.
#pragma once

#include <cstdint>

#include "crypto/hmac.hpp"
#include "dataplane/contract/enforcer_state.hpp"
#include "dataplane/contract/worker_setup.hpp"
#include "dataplane/packet/rewrite.hpp"
#include "dataplane/policy/rcu.hpp"

struct rte_mempool;
struct rte_ring;

namespace segwire::dp {

// Shared by all workers, owned by the control thread.
struct IdentityRuntime {
    policy::RcuSlot<EnforcerState> *state = nullptr;
    rte_mempool *pool = nullptr;     // for RSTs the worker originates
    bool reject_with_rst = true;     // else a rejected SYN is dropped silently
    uint16_t mtu[2] = {1500, 1500};  // inside, outside
    TxChecksum tx_csum[2];
    crypto::HmacBackend hmac = crypto::HmacBackend::Auto;
    // L4 mode: the master key of the TCP Fast Open cookies this enforcer issues to peer enforcers
    // (docs/l4-mode.md), random per process. Each period of tfo_rotation_s has its own cookie key
    // derived from it (HMAC(master, "segwire-tfo" || period)); the previous period's cookies are
    // still accepted. Every worker derives the same keys: no state shared at run time.
    crypto::HmacKey tfo_key;
    uint32_t tfo_rotation_s = 300;
    bool l4_tfo = true;  // handshake.l4_tfo: ask peers for cookies and send R1 in the SYN
    uint32_t hold_per_flow = 16;
    uint32_t hold_total = 4096;
    // Budgets (docs/handshake.md "Budgets"): UDP handshake contexts (each keeps at most one
    // control datagram), and the share of each per-worker resource one source may hold.
    uint32_t kept_control = 1024;
    uint32_t per_source_percent = 25;
    uint32_t answers_per_source_s = 20000;  // handshake.answers_per_source (0: unlimited)
    uint32_t midstream_resets_s = 1000;     // handshake.midstream_resets_per_s (0: unlimited)
    uint32_t handshakes = 16384;            // concurrent handshakes per worker
    uint32_t peer_cache = 4096;
    uint32_t key_cache = 4096;
    // Seconds a derived session key stays in a worker's SessionKeyCache: key rotation + grace
    // (crypto::SignerOptions::session_key_lifetime, from handshake.key_rotation_s).
    uint32_t session_key_lifetime_s = 600;
    uint32_t slow_jobs = 256;  // slow-path requests in flight per worker
    uint32_t decision_cache = 4096;
    // DNS snooping (docs/dns.md): outstanding queries tracked per worker, and how long an answer
    // to one is awaited.
    uint32_t dns_queries = 4096;
    uint32_t dns_query_timeout_ms = 10000;
    // Flow accounting (docs/export.md): 0 = off (no per-flow slots, no counter records). Else
    // every decided flow's packets and bytes go to the control thread as counter records at its
    // end and at least every 1.5 x this while it lasts (export.active_timeout_s).
    uint32_t active_timeout_s = 0;
    // Rings per worker, created by the control thread (index = worker id).
    rte_ring *slow_req[kMaxWorkers] = {};  // worker -> slow path (SlowJob*)
    rte_ring *slow_rep[kMaxWorkers] = {};  // slow path -> worker (SlowJob*)
    rte_ring *garbage[kMaxWorkers] = {};   // worker -> slow path (PeerIdentity* to free)
    rte_ring *records[kMaxWorkers] = {};   // worker -> control (FlowRecordEvent by value)
};

}  // namespace segwire::dp
