// Contract: worker counters (WorkerStats, IdentityStats).
// Written by: one worker lcore each (its own instance only), on the packet path.
// Read by: DPDK's telemetry thread (control/telemetry.cpp: /segwire/stats, /workers, /identity)
// and the main lcore at shutdown, through dp::WorkerSet.
// An increment is a relaxed load + store (a plain add, no locked read-modify-write on the packet
// path) and the reader still never sees a torn value.
#pragma once

#include <atomic>
#include <cstdint>

#include "dataplane/packet/parse.hpp"

namespace segwire::dp {

class Counter {
  public:
    void add(uint64_t n = 1) {
        v_.store(v_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
    }
    void set(uint64_t n) { v_.store(n, std::memory_order_relaxed); }
    uint64_t get() const { return v_.load(std::memory_order_relaxed); }

  private:
    std::atomic<uint64_t> v_{0};
};

enum PortSide : uint8_t { kInside = 0, kOutside = 1 };

struct alignas(64) WorkerStats {
    Counter rx_pkts[2], rx_bytes[2];  // by arrival port (inside, outside)
    Counter tx_pkts[2], tx_bytes[2];  // by departure port
    Counter drops[kDropReasonCount];
    Counter steered_out, steered_in;  // handed to / received from another worker
    Counter non_ip, fragments;
    Counter flows_active, flows_created, flows_expired, flows_refused;
    Counter polls, idle_sleeps;
    // The fewest free mbufs in the pool this worker saw (sampled at each housekeeping round; the
    // budgets keep it above zero: docs/handshake.md "Budgets"), and the rounds that saw none.
    Counter mbuf_free_min, mbuf_pool_empty;
    // L7 mode (docs/l7-path.md): packets sent into / received from the exception interface,
    // packets of the proxy's upstream connections relayed to a PU, frames from the exception
    // interface refused (non-IP, or an upstream to a PU whose Ethernet address is not known).
    Counter l7_to_exception, l7_from_exception, l7_upstream, l7_refused;
};

// Identity counters (beyond drops by reason).
struct alignas(64) IdentityStats {
    Counter syn_signed, syn_verified, synack_signed, synack_verified, ack_proofs_added,
        ack_proofs_verified, authorized, rejected, acl_decisions, passthrough, parked, slow_jobs,
        peer_cache_hits, peer_cache_misses, key_cache_hits, key_cache_misses,
        key_failures_cached,  // a session key asked for a pair whose derivation failed
        hmac_batches, hmac_jobs, records, records_lost, flows_cut, resets_sent, exceptions;
    // Flow accounting (docs/export.md): counter records made (kFlowCounters; records_lost counts
    // those a full ring lost too).
    Counter counter_records;
    // The ACK proof's confirmation (docs/protocol.md §4.3), options scrubbed off packets for end
    // hosts, identity SYNs on an open connection, refused new flows whose entry was removed.
    Counter confirms_sent, confirms_received, confirms_missed, options_scrubbed, syns_on_open_flow,
        flows_retired,
        identities_lost,          // a full garbage ring: a PeerIdentity leaked
        claims_address_mismatch;  // claims sent from outside their PU's addresses
    // The policy version every authorized flow of this worker has been re-decided under (not a
    // sum: telemetry reports the minimum over workers as `policy_enforced_version`).
    Counter policy_enforced;
    // UDP handshake (docs/protocol.md §9)
    Counter udp_syn_sent, udp_synack_sent, udp_ack_sent, udp_retransmits, udp_rejects_sent,
        udp_resets_sent, udp_resets_received, udp_fallbacks, udp_control_consumed,
        udp_handshakes_restarted, udp_expired;
    // Budgets (docs/handshake.md "Budgets"): half-open handshakes given up at their deadline, and
    // gauges of what is pinned now (handshake contexts, held packets, UDP contexts keeping a
    // control datagram, slow-path jobs in flight).
    Counter half_open_expired;
    // Mid-stream refusals answered with RSTs to both hosts (docs/scale-out.md "Mid-stream"), and
    // those over handshake.midstream_resets_per_s that got none.
    Counter midstream_resets, midstream_resets_suppressed;
    // L4 mode (docs/l4-mode.md): exchanges started (either role), clients in L4 networks that
    // sent no R1 (decided by address), records sent and retransmitted.
    Counter l4_started, l4_plain_clients, l4_records_sent, l4_retransmits,
        auto_fallbacks;  // auto networks: a peer enforcer whose v1 option was stripped on the way
    Counter handshakes_active, held_packets, kept_control, slow_jobs_in_flight;
    // DNS snooping (docs/dns.md, "Counters"): queries tracked and not; answers handed to the slow
    // path and not; answers that teach nothing, by reason. dns_queries_pending is a gauge.
    Counter dns_snooped, dns_unsnooped, fqdn_decisions;
    Counter dns_queries, dns_queries_repeated, dns_queries_untrusted, dns_queries_dropped,
        dns_queries_unreadable, dns_queries_expired, dns_queries_pending;
    Counter dns_refused_no_query, dns_refused_question, dns_refused_late, dns_refused_tcp_sequence,
        dns_refused_inside, dns_refused_malformed;
};

}  // namespace segwire::dp
