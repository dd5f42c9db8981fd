// The enforcer's /metrics (docs/metrics.md has every family, its type and labels). Served by a
// plain-HTTP cpp-httplib server on a DPDK control thread; each scrape reads the same counters the
// /segwire/... telemetry commands read, so the packet path pays nothing for it: the workers'
// counters are relaxed atomics they write anyway, and no worker is ever asked for anything.
#include "control/metrics.hpp"

#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>

#include <httplib.h>
#include <rte_lcore.h>
#include <rte_mempool.h>
#include <spdlog/spdlog.h>

#include "config/metrics/exposition.hpp"
#include "control/app.hpp"
#include "version.hpp"

namespace segwire::control {
namespace {

using metrics::Exposition;
constexpr const char *kPortName[2] = {"inside", "outside"};

// One row per dp::IdentityStats counter: summed over the workers (as /segwire/identity does;
// worker balance shows in the per-worker packet and flow families). The DNS answers refused by
// a worker are one labelled family below, not rows here.
struct IdentityRow {
    dp::Counter dp::IdentityStats::*member;
    const char *name;
    bool gauge;
    const char *help;
};
using S = dp::IdentityStats;
constexpr IdentityRow kIdentityRows[] = {
    {&S::syn_signed, "segwire_identity_syn_signed_total", false,
     "Identity SYNs signed for a local PU's new connection (side A)."},
    {&S::syn_verified, "segwire_identity_syn_verified_total", false,
     "Identity SYNs whose token verified (side B)."},
    {&S::synack_signed, "segwire_identity_synack_signed_total", false,
     "Identity SYN-ACKs signed (side B)."},
    {&S::synack_verified, "segwire_identity_synack_verified_total", false,
     "Identity SYN-ACKs whose token verified (side A)."},
    {&S::ack_proofs_added, "segwire_identity_ack_proofs_added_total", false,
     "ACK proofs added to a connection's first ACK (side A)."},
    {&S::ack_proofs_verified, "segwire_identity_ack_proofs_verified_total", false,
     "ACK proofs verified (side B)."},
    {&S::confirms_sent, "segwire_identity_confirms_sent_total", false,
     "Confirmations of an ACK proof sent (side B)."},
    {&S::confirms_received, "segwire_identity_confirms_received_total", false,
     "Confirmations of an ACK proof received (side A)."},
    {&S::confirms_missed, "segwire_identity_confirms_missed_total", false,
     "Confirmations never received (side A): handshake context freed, ACK proof no longer added."},
    {&S::authorized, "segwire_identity_flows_authorized_total", false,
     "Flows allowed by policy: an identity handshake completed, or an ACL decision allowed it."},
    {&S::rejected, "segwire_identity_flows_rejected_total", false,
     "Flows refused by policy or by a failed handshake."},
    {&S::acl_decisions, "segwire_identity_acl_decisions_total", false,
     "Flows decided by address (rules over external networks) instead of identity."},
    {&S::passthrough, "segwire_identity_passthrough_flows_total", false,
     "Flows left untouched: excluded networks, addresses no PU covers, ignored PUs."},
    {&S::parked, "segwire_identity_parked_total", false,
     "Times a flow waited for the slow path (new peer claims, a session key, re-tagging)."},
    {&S::slow_jobs, "segwire_slowpath_jobs_total", false,
     "Jobs the workers sent to the slow path."},
    {&S::slow_jobs_in_flight, "segwire_slowpath_jobs_in_flight", true,
     "Slow-path jobs sent and not answered yet."},
    {&S::peer_cache_hits, "segwire_identity_peer_cache_hits_total", false,
     "Peer claims found in a worker's verified-claims cache."},
    {&S::peer_cache_misses, "segwire_identity_peer_cache_misses_total", false,
     "Peer claims not in a worker's cache (verified on the slow path)."},
    {&S::key_cache_hits, "segwire_identity_key_cache_hits_total", false,
     "Session keys found in a worker's cache."},
    {&S::key_cache_misses, "segwire_identity_key_cache_misses_total", false,
     "Session keys not in a worker's cache (derived on the slow path)."},
    {&S::key_failures_cached, "segwire_identity_key_failures_cached_total", false,
     "Session keys asked for a key pair whose derivation had failed (answered from the cache)."},
    {&S::hmac_batches, "segwire_identity_hmac_batches_total", false,
     "Batches of handshake HMACs computed."},
    {&S::hmac_jobs, "segwire_identity_hmac_jobs_total", false, "Handshake HMACs computed."},
    {&S::records, "segwire_identity_flow_records_total", false,
     "Flow records handed to the control thread (the source of flow reports)."},
    {&S::records_lost, "segwire_identity_flow_records_lost_total", false,
     "Flow records lost to a full record ring."},
    {&S::exceptions, "segwire_identity_connection_exceptions_total", false,
     "Connection-exception records made."},
    {&S::counter_records, "segwire_identity_accounting_records_total", false,
     "Flow accounting (counter) records made: a flow's packets and bytes at its end or active "
     "timeout."},
    {&S::flows_cut, "segwire_identity_flows_cut_total", false,
     "Authorized flows cut by a policy update or a certificate revocation."},
    {&S::resets_sent, "segwire_identity_resets_sent_total", false,
     "TCP RSTs sent to refuse or cut a connection."},
    {&S::midstream_resets, "segwire_identity_midstream_resets_total", false,
     "Refused TCP segments picked up mid-stream answered with RSTs to both hosts (a failover in a "
     "scale-out set)."},
    {&S::midstream_resets_suppressed, "segwire_identity_midstream_resets_suppressed_total", false,
     "Refused mid-stream TCP segments dropped without RSTs: over "
     "handshake.midstream_resets_per_s."},
    {&S::options_scrubbed, "segwire_identity_options_scrubbed_total", false,
     "Packets whose segwire TCP option was removed before they reached a host."},
    {&S::syns_on_open_flow, "segwire_identity_syns_on_open_flow_total", false,
     "Identity SYNs on a connection that is already open."},
    {&S::flows_retired, "segwire_identity_flows_retired_total", false,
     "Flow entries of refused SYNs from outside removed at the end of their burst."},
    {&S::identities_lost, "segwire_identity_peer_identities_lost_total", false,
     "Peer identities leaked because the garbage ring was full."},
    {&S::claims_address_mismatch, "segwire_identity_claims_address_mismatch_total", false,
     "Claims sent from outside their PU's addresses."},
    {&S::half_open_expired, "segwire_identity_half_open_expired_total", false,
     "Half-open handshakes given up at their deadline."},
    {&S::l4_started, "segwire_identity_l4_started_total", false,
     "L4 mode exchanges started (either role)."},
    {&S::l4_plain_clients, "segwire_identity_l4_plain_clients_total", false,
     "Clients in an L4 network that sent no record (decided by address)."},
    {&S::l4_records_sent, "segwire_identity_l4_records_sent_total", false,
     "L4 identity records sent (R1, R2, R3)."},
    {&S::l4_retransmits, "segwire_identity_l4_retransmits_total", false,
     "L4 identity records sent again (not acknowledged in time)."},
    {&S::auto_fallbacks, "segwire_identity_auto_fallbacks_total", false,
     "Auto networks: peers whose v1 option was stripped on the way (L4 used next)."},
    {&S::handshakes_active, "segwire_identity_handshakes_active", true,
     "Handshake contexts in use."},
    {&S::held_packets, "segwire_identity_held_packets", true,
     "Packets held while their flow's handshake completes."},
    {&S::kept_control, "segwire_identity_kept_control_datagrams", true,
     "UDP handshake control datagrams kept for retransmission."},
    {&S::udp_syn_sent, "segwire_identity_udp_syn_sent_total", false, "UDP identity SYNs sent."},
    {&S::udp_synack_sent, "segwire_identity_udp_synack_sent_total", false,
     "UDP identity SYN-ACKs sent."},
    {&S::udp_ack_sent, "segwire_identity_udp_ack_sent_total", false, "UDP identity ACKs sent."},
    {&S::udp_retransmits, "segwire_identity_udp_retransmits_total", false,
     "UDP handshake messages sent again."},
    {&S::udp_rejects_sent, "segwire_identity_udp_rejects_sent_total", false, "UDP REJECTs sent."},
    {&S::udp_resets_sent, "segwire_identity_udp_resets_sent_total", false, "UDP RESETs sent."},
    {&S::udp_resets_received, "segwire_identity_udp_resets_received_total", false,
     "UDP RESETs received."},
    {&S::udp_fallbacks, "segwire_identity_udp_fallbacks_total", false,
     "UDP flows decided without a peer enforcer."},
    {&S::udp_control_consumed, "segwire_identity_udp_control_consumed_total", false,
     "UDP handshake control datagrams consumed (never delivered to a host)."},
    {&S::udp_handshakes_restarted, "segwire_identity_udp_handshakes_restarted_total", false,
     "UDP handshakes started again."},
    {&S::udp_expired, "segwire_identity_udp_expired_total", false,
     "UDP handshakes given up at their deadline."},
    {&S::dns_queries, "segwire_dns_queries_tracked_total", false,
     "DNS queries tracked (a new flow, ID and type)."},
    {&S::dns_queries_repeated, "segwire_dns_queries_repeated_total", false,
     "Tracked DNS queries sent again (their deadline started over)."},
    {&S::dns_queries_untrusted, "segwire_dns_queries_untrusted_total", false,
     "DNS queries to a resolver the profile does not trust (not tracked)."},
    {&S::dns_queries_dropped, "segwire_dns_queries_dropped_total", false,
     "DNS queries not tracked because the worker's table was full."},
    {&S::dns_queries_unreadable, "segwire_dns_queries_unreadable_total", false,
     "Packets from a PU to port 53 that are not a readable query."},
    {&S::dns_queries_expired, "segwire_dns_queries_expired_total", false,
     "Tracked DNS queries forgotten unanswered."},
    {&S::dns_queries_pending, "segwire_dns_queries_pending", true,
     "Tracked DNS queries awaiting their answer."},
    {&S::dns_snooped, "segwire_dns_answers_snooped_total", false,
     "Matched DNS answers handed to the slow path."},
    {&S::dns_unsnooped, "segwire_dns_answers_unsnooped_total", false,
     "Matched DNS answers forwarded without snooping (no free slow-path job)."},
    {&S::fqdn_decisions, "segwire_fqdn_decisions_total", false,
     "ACL decisions that used networks learned from DNS answers."},
};

uint64_t identity_sum(const App &app, dp::Counter dp::IdentityStats::*m) {
    uint64_t total = 0;
    for (uint32_t w = 0; w < app.workers.size(); ++w)
        total += (app.workers.identity_stats(w).*m).get();
    return total;
}

void render_build(Exposition &x, const App &app) {
    x.gauge("segwire_build_info", "The segwire build: version and git describe of the tree.")
        .sample(1, {{"version", kVersion}, {"build", kBuild}});
    x.gauge("segwire_start_time_seconds", "When this segwire process started (unix seconds).")
        .sample(static_cast<uint64_t>(app.start_unix));
    const bool identity = app.cfg.identity.enabled();
    const char *mode = app.sync ? "console" : identity ? "policy-file" : "forwarding";
    x.gauge("segwire_enforcer_info",
            "This enforcer: its ID, where its policy comes from, the HMAC back-end.")
        .sample(1, {{"enforcer_id", app.cfg.identity.enforcer_id},
                    {"mode", mode},
                    {"hmac_backend", app.workers.hmac_backend()}});
}

void render_ports(Exposition &x, const App &app) {
    x.gauge("segwire_port_info", "The inside and outside ports: DPDK device, driver, steering.");
    for (int i = 0; i < 2; ++i) {
        const PortInfo &p = app.ports[i];
        x.sample(1, {{"port", kPortName[i]},
                     {"device", p.name},
                     {"driver", p.driver},
                     {"steering", p.symmetric_rss ? "symmetric-rss" : "software"}});
    }
    x.gauge("segwire_port_mtu_bytes", "The port's MTU.");
    for (int i = 0; i < 2; ++i) x.sample(app.ports[i].mtu, {{"port", kPortName[i]}});
}

// Per worker: what shows whether the load is balanced (packets, bytes, drops, flows, mbufs).
// Totals are sum without (worker) in PromQL; docs/metrics.md says why there is no total series.
void render_workers(Exposition &x, const App &app) {
    const uint32_t n = app.workers.size();
    std::vector<std::string> ids(n);
    for (uint32_t w = 0; w < n; ++w) ids[w] = std::to_string(w);
    x.gauge("segwire_workers", "Worker lcores forwarding packets.").sample(n);

    struct PortRow {
        dp::Counter (dp::WorkerStats::*member)[2];
        const char *name, *help;
    };
    static constexpr PortRow kPortRows[] = {
        {&dp::WorkerStats::rx_pkts, "segwire_port_received_packets_total",
         "Packets received on the port, by the worker that polled them."},
        {&dp::WorkerStats::rx_bytes, "segwire_port_received_bytes_total",
         "Bytes of the frames received on the port."},
        {&dp::WorkerStats::tx_pkts, "segwire_port_transmitted_packets_total",
         "Packets sent out of the port."},
        {&dp::WorkerStats::tx_bytes, "segwire_port_transmitted_bytes_total",
         "Bytes of the frames sent out of the port."},
    };
    for (const PortRow &r : kPortRows) {
        x.counter(r.name, r.help);
        for (uint32_t w = 0; w < n; ++w)
            for (int p = 0; p < 2; ++p)
                x.sample((app.workers.stats(w).*r.member)[p].get(),
                         {{"worker", ids[w]}, {"port", kPortName[p]}});
    }
    // Every reason, zeros included: a rate over a series that appears only with the first drop
    // misses that drop.
    x.counter(
        "segwire_dropped_packets_total",
        "Packets dropped, by reason (the dropReason names of flow reports, protocol.md §12).");
    for (uint32_t w = 0; w < n; ++w)
        for (size_t r = 1; r < dp::kDropReasonCount; ++r)
            x.sample(app.workers.stats(w).drops[r].get(),
                     {{"worker", ids[w]},
                      {"reason", dp::drop_reason_name(static_cast<dp::DropReason>(r))}});
    x.counter("segwire_steered_packets_total",
              "Packets handed to the worker that owns their flow (out) or received from another "
              "worker (in).");
    for (uint32_t w = 0; w < n; ++w) {
        x.sample(app.workers.stats(w).steered_out.get(),
                 {{"worker", ids[w]}, {"direction", "out"}});
        x.sample(app.workers.stats(w).steered_in.get(), {{"worker", ids[w]}, {"direction", "in"}});
    }

    struct WorkerRow {
        dp::Counter dp::WorkerStats::*member;
        const char *name;
        bool gauge;
        const char *help;
    };
    using W = dp::WorkerStats;
    static constexpr WorkerRow kWorkerRows[] = {
        {&W::non_ip, "segwire_non_ip_packets_total", false, "Frames that carry no IP packet."},
        {&W::fragments, "segwire_fragment_packets_total", false,
         "Non-first IP fragments (no ports: forwarded by address)."},
        {&W::flows_active, "segwire_flows_active", true, "Entries in the worker's flow table."},
        {&W::flows_created, "segwire_flows_created_total", false, "Flow entries created."},
        {&W::flows_expired, "segwire_flows_expired_total", false,
         "Flow entries removed at their timeout."},
        {&W::flows_refused, "segwire_flows_refused_total", false,
         "New flows refused because the flow table was full."},
        {&W::idle_sleeps, "segwire_worker_idle_sleeps_total", false,
         "Times the worker slept after empty polls (idle back-off)."},
    };
    for (const WorkerRow &r : kWorkerRows) {
        if (r.gauge)
            x.gauge(r.name, r.help);
        else
            x.counter(r.name, r.help);
        for (uint32_t w = 0; w < n; ++w)
            x.sample((app.workers.stats(w).*r.member).get(), {{"worker", ids[w]}});
    }
    x.gauge("segwire_flow_table_capacity", "Flow entries the worker's table holds at most.");
    for (uint32_t w = 0; w < n; ++w) x.sample(app.workers.flow_capacity(w), {{"worker", ids[w]}});

    if (!app.pool) return;
    x.gauge("segwire_mbuf_pool_size", "Packet buffers (mbufs) in the pool.").sample(app.pool->size);
    x.gauge("segwire_mbuf_pool_available", "Packet buffers free in the pool now.")
        .sample(rte_mempool_avail_count(app.pool));
    x.gauge("segwire_mbuf_pool_available_min",
            "The fewest free packet buffers the worker saw at a housekeeping round.");
    for (uint32_t w = 0; w < n; ++w)
        x.sample(app.workers.stats(w).mbuf_free_min.get(), {{"worker", ids[w]}});
    x.counter("segwire_mbuf_pool_empty_total",
              "Housekeeping rounds of the worker that found no free packet buffer.");
    for (uint32_t w = 0; w < n; ++w)
        x.sample(app.workers.stats(w).mbuf_pool_empty.get(), {{"worker", ids[w]}});
}

void render_identity(Exposition &x, const App &app, const Enforcement &e) {
    for (const IdentityRow &r : kIdentityRows) {
        if (r.gauge)
            x.gauge(r.name, r.help);
        else
            x.counter(r.name, r.help);
        x.sample(identity_sum(app, r.member));
    }
    const SlowPath &sp = e.slowpath();
    x.counter("segwire_slowpath_claims_verified_total", "Peer claims the slow path verified.")
        .sample(sp.verified());
    x.counter("segwire_slowpath_claims_refused_total",
              "Peer claims the slow path refused (signature, certificate, expiry, revocation).")
        .sample(sp.refused());
    x.counter("segwire_slowpath_claims_unbound_total",
              "Verified claims refused by the Console's record (PU unknown or hosted elsewhere).")
        .sample(sp.claims_unbound());
    x.counter("segwire_slowpath_claims_tags_differ_total",
              "Bound claims whose tags differ from the Console's record (the record's are used).")
        .sample(sp.claims_tags_differ());
    x.counter("segwire_slowpath_session_keys_total", "Session keys the slow path derived.")
        .sample(sp.keys());
    x.counter("segwire_slowpath_session_key_failures_total", "Session-key derivations that failed.")
        .sample(sp.key_failures());
    x.counter("segwire_slowpath_session_key_failures_cached_total",
              "Session-key jobs answered from the cache of failed derivations.")
        .sample(sp.key_failures_cached());
    x.counter("segwire_slowpath_session_key_failures_evicted_total",
              "Cached failed derivations pushed out by newer ones.")
        .sample(sp.key_failures_evicted());

    const DnsStats ds = e.dns_stats();
    x.counter("segwire_dns_answers_parsed_total", "Snooped DNS answers the slow path parsed.")
        .sample(ds.answers);
    x.counter("segwire_dns_answers_unparsed_total",
              "Snooped DNS answers the slow path could not parse.")
        .sample(ds.unparsed);
    // Answers that teach nothing, whoever refused them: a worker (no matching query, late, ...)
    // or the slow path (an RCODE other than NOERROR, TC set).
    x.counter("segwire_dns_answers_refused_total", "DNS answers that taught nothing, by reason.");
    const std::pair<const char *, uint64_t> refused[] = {
        {"no_query", identity_sum(app, &S::dns_refused_no_query)},
        {"question", identity_sum(app, &S::dns_refused_question)},
        {"late", identity_sum(app, &S::dns_refused_late)},
        {"tcp_sequence", identity_sum(app, &S::dns_refused_tcp_sequence)},
        {"inside", identity_sum(app, &S::dns_refused_inside)},
        {"malformed", identity_sum(app, &S::dns_refused_malformed)},
        {"rcode", ds.refused_rcode},
        {"truncated", ds.refused_truncated},
    };
    for (const auto &[reason, v] : refused) x.sample(v, {{"reason", reason}});
    x.counter("segwire_fqdn_publications_total", "Sets of learned FQDN addresses published.")
        .sample(ds.publications);
    x.gauge("segwire_fqdn_records", "Records the FQDN learner holds.").sample(ds.records);
    x.gauge("segwire_fqdn_addresses", "(address, PU) pairs in the published learned set.")
        .sample(ds.addresses);
    x.counter("segwire_fqdn_ttl_clamped_total",
              "Learned addresses whose TTL was raised to dns.min_ttl_s or lowered to "
              "dns.max_ttl_s.")
        .sample(ds.learner.ttl_clamped);
}

void render_policy(Exposition &x, const App &app, const Enforcement &e) {
    const uint64_t version = e.policy_version();
    x.gauge("segwire_policy_version",
            "Version of the compiled policy snapshot in force (grows with every update this run; "
            "0 = none).")
        .sample(version);
    // The minimum over workers: every authorized flow has been re-decided under this snapshot.
    uint64_t enforced = UINT64_MAX;
    for (uint32_t w = 0; w < app.workers.size(); ++w)
        enforced = std::min(enforced, app.workers.identity_stats(w).policy_enforced.get());
    if (app.workers.empty()) enforced = 0;
    x.gauge("segwire_policy_enforced_version",
            "The snapshot version every worker has re-decided its authorized flows under.")
        .sample(enforced);
    const PolicyStatus ps = e.policy_status();
    x.gauge("segwire_policy_bundle_info", "The policy bundle in force (its version string).")
        .sample(1, {{"version", ps.enforced_version.substr(0, 120)}});
    x.counter("segwire_policy_updates_total", "Policies applied and refused, since start.")
        .sample(ps.applied, {{"result", "applied"}})
        .sample(ps.refused, {{"result", "refused"}});
    x.gauge("segwire_policy_last_update_refused",
            "1 when the most recent policy was refused (the one before stays in force).")
        .sample_bool(ps.last_refused);
    x.gauge("segwire_policy_last_refused_timestamp_seconds",
            "When a policy was last refused (unix seconds, 0 = never).")
        .sample(static_cast<uint64_t>(std::max<int64_t>(ps.last_refused_at, 0)));
    x.gauge("segwire_policy_warnings", "Compiler warnings of the policy in force.")
        .sample(ps.warnings);
    x.gauge("segwire_policy_snapshots_alive", "Compiled policy snapshots alive now.")
        .sample(ps.snapshots_alive);
    x.gauge("segwire_policy_snapshots_max", "Compiled policy snapshots allowed alive at once.")
        .sample(ps.snapshots_max);
    x.gauge("segwire_policy_snapshot_table_bytes",
            "DPDK memory of the address tables of the snapshot in force.")
        .sample(ps.table_bytes);
    x.gauge("segwire_revoked_certificates",
            "Certificates on the Console's revocation list in force.")
        .sample(ps.revoked_certificates);
    x.gauge("segwire_revocation_enforced",
            "1 once every worker has re-decided its flows under the revocation list in force.")
        .sample_bool(!app.workers.empty() && enforced >= ps.revocation_snapshot);
    const CertStatus cs = e.cert_status();
    x.gauge("segwire_certificate_expiry_timestamp_seconds",
            "When the datapath certificate claims are signed under expires (unix seconds).")
        .sample(static_cast<uint64_t>(std::max<int64_t>(cs.not_after, 0)));
    x.counter("segwire_certificate_switches_total",
              "Times claims moved to a renewed datapath certificate.")
        .sample(cs.switches);
    const ReportCounts rc = e.report_counts();
    const std::pair<const char *, ReportCount> kinds[] = {
        {"flow", rc.flows}, {"dns", rc.dns}, {"exception", rc.exceptions}};
    x.gauge("segwire_reports_pending", "Distinct reports collected this interval, by kind.");
    for (const auto &[k, c] : kinds) x.sample(c.size, {{"kind", k}});
    x.gauge("segwire_reports_pending_max", "Distinct reports an interval may collect, by kind.");
    for (const auto &[k, c] : kinds) x.sample(c.max, {{"kind", k}});
    x.counter("segwire_reports_overflow_total",
              "Records not reported because their collection was full, by kind (flowlog: the "
              "since-start flow log of segwirectl).");
    for (const auto &[k, c] : kinds) x.sample(c.overflow, {{"kind", k}});
    x.sample(rc.flowlog.overflow, {{"kind", "flowlog"}});
}

// The fail mode and where the workers are in it (docs/control.md "Fail mode").
void render_fail_mode(Exposition &x, const App &app, const Enforcement *e) {
    const bool closed = app.cfg.identity.fail_closed;
    const char *state = e && e->policy_version() ? "enforcing" : closed ? "refusing" : "forwarding";
    x.gauge("segwire_fail_mode_closed",
            "1 when identity.fail_mode is closed (managed traffic refused until a policy is in "
            "force), 0 when open.")
        .sample_bool(closed);
    x.gauge("segwire_fail_state",
            "What the workers do now: enforcing a policy, refusing (closed, no policy yet) or "
            "forwarding (open, no policy yet); 1 for the current state.");
    for (const char *s : {"enforcing", "refusing", "forwarding"})
        x.sample_bool(std::strcmp(s, state) == 0, {{"state", s}});
    x.gauge("segwire_enrolled",
            "1 once the enforcer has its identity (0 while a first boot waits "
            "for the Console).")
        .sample_bool(e != nullptr);
}

void render_sync(Exposition &x, const ConsoleSync &sync) {
    const SyncStatus s = sync.status();
    x.gauge("segwire_sync_connected", "1 while the Console answers.").sample_bool(s.connected);
    x.counter("segwire_sync_bundles_total", "Policy bundles from the Console, by outcome.")
        .sample(s.bundles_applied, {{"result", "applied"}})
        .sample(s.bundles_rejected, {{"result", "rejected"}});
    x.counter("segwire_sync_tokens_issued_total", "Console tokens obtained (logins and renewals).")
        .sample(s.tokens_issued);
    x.gauge("segwire_sync_token_expiry_timestamp_seconds",
            "When the current Console token expires (unix seconds).")
        .sample(static_cast<uint64_t>(std::max<int64_t>(s.token_expires_at, 0)));
    x.counter("segwire_sync_heartbeats_total", "Heartbeats the Console accepted.")
        .sample(s.heartbeats);
    x.gauge("segwire_sync_peer_certificates", "Peer enforcer certificates known.")
        .sample(s.peer_certificates);
    x.counter("segwire_sync_report_batches_sent_total", "Report batches the Console stored.")
        .sample(s.batches_sent);
    x.counter("segwire_sync_reports_sent_total", "Reports the Console stored.")
        .sample(s.reports_sent);
    x.counter("segwire_sync_reports_dropped_total",
              "Reports dropped: the spool was full (console.spool_max_bytes) or unwritable, or "
              "the Console refused their batch.")
        .sample(s.reports_dropped);
    x.gauge("segwire_sync_spool_batches", "Report batches waiting in the spool.")
        .sample(s.spool_batches);
    x.gauge("segwire_sync_spool_bytes", "Bytes of the report batches waiting in the spool.")
        .sample(s.spool_bytes);
    x.counter("segwire_sync_certificate_renewals_total",
              "Datapath certificate renewals, by outcome.")
        .sample(s.cert_renewals, {{"result", "success"}})
        .sample(s.cert_renewal_failures, {{"result", "failure"}});
    x.gauge("segwire_sync_certificate_next_renewal_timestamp_seconds",
            "When the next certificate renewal (or retry) is due (unix seconds).")
        .sample(static_cast<uint64_t>(std::max<int64_t>(s.cert_next_renewal_at, 0)));
    x.gauge("segwire_sync_cache_state",
            "The fail-static cache: none, refused, valid (accepted at start) or in-force; 1 for "
            "the current state.");
    for (const char *st : {"none", "refused", "valid", "in-force"})
        x.sample_bool(s.cache_state == st, {{"state", st}});
    x.gauge("segwire_sync_cache_saved_timestamp_seconds",
            "When the Console last vouched for the cached bundle (unix seconds, 0 = never).")
        .sample(static_cast<uint64_t>(std::max<int64_t>(s.cache_saved_at, 0)));
}

// Flow accounting and export (docs/export.md): zeros when no exporter is configured.
void render_export(Exposition &x, const Enforcement &e) {
    const flowexport::ExportCounts c =
        e.export_counts() ? *e.export_counts() : flowexport::ExportCounts{};
    x.gauge("segwire_flow_accounting_active_timeout_seconds",
            "Active timeout of flow counter records (0: flow accounting off).")
        .sample(e.active_timeout_s());
    x.counter("segwire_export_records_total", "Flow counter records handed to the exporters.")
        .sample(c.records);
    x.counter("segwire_export_jsonl_lines_total",
              "JSON lines written to the export file, and lost (the file could not be written).")
        .sample(c.jsonl_lines, {{"result", "written"}})
        .sample(c.jsonl_lines_lost, {{"result", "lost"}});
    x.counter("segwire_export_jsonl_bytes_total", "Bytes written to the JSON lines export file.")
        .sample(c.jsonl_bytes);
    x.counter("segwire_export_jsonl_rotations_total", "JSON lines export files rotated.")
        .sample(c.jsonl_rotations);
    x.counter("segwire_export_ipfix_messages_total",
              "IPFIX messages sent to the collector, and lost (the socket did not take them).")
        .sample(c.ipfix_messages, {{"result", "sent"}})
        .sample(c.ipfix_messages_lost, {{"result", "lost"}});
    x.counter("segwire_export_ipfix_records_total",
              "IPFIX data records in messages sent, and in messages lost.")
        .sample(c.ipfix_records, {{"result", "sent"}})
        .sample(c.ipfix_records_lost, {{"result", "lost"}});
    x.counter("segwire_export_ipfix_templates_total", "IPFIX messages that carried the templates.")
        .sample(c.ipfix_templates);
    x.counter("segwire_export_ipfix_refused_total",
              "ICMP refusals from the collector's host (earlier datagrams found no listener).")
        .sample(c.ipfix_refused);
}

// Routed and GENEVE modes (docs/routed.md, docs/geneve.md): the /segwire/routing and
// /segwire/geneve counters, one family each, per worker (neighbour news and held packets show
// which worker resolves), and the route table in force. Their drops are reasons of
// segwire_dropped_packets_total like every other drop.
void render_routing(Exposition &x, const App &app) {
    const uint32_t n = app.workers.size();
    std::vector<std::string> ids(n);
    for (uint32_t w = 0; w < n; ++w) ids[w] = std::to_string(w);
#define X(name, help)                                                       \
    x.counter("segwire_routing_" #name "_total", "Routed mode: " help "."); \
    for (uint32_t w = 0; w < n; ++w)                                        \
        x.sample(app.workers.routing_stats(w).name.get(), {{"worker", ids[w]}});
    SEGWIRE_ROUTING_COUNTERS(X)
#undef X
    x.gauge("segwire_routing_neighbours", "Routed mode: entries in the worker's neighbour table.");
    for (uint32_t w = 0; w < n; ++w)
        x.sample(app.workers.routing_stats(w).neighbours.get(), {{"worker", ids[w]}});
    const Routing::Summary t = app.routing->summary();
    x.gauge("segwire_routing_routes", "Routed mode: routes in the table in force, by family.")
        .sample(t.routes4, {{"family", "ipv4"}})
        .sample(t.routes6, {{"family", "ipv6"}});
    x.gauge("segwire_routing_static_routes", "Routed mode: static routes configured.")
        .sample(t.statics);
    x.gauge("segwire_routing_table_generation",
            "Routed mode: the route table in force (it grows at each reload).")
        .sample(t.generation);
    if (!app.cfg.geneve) return;
#define X(name, help)                                                      \
    x.counter("segwire_geneve_" #name "_total", "GENEVE mode: " help "."); \
    for (uint32_t w = 0; w < n; ++w)                                       \
        x.sample(app.workers.geneve_stats(w).name.get(), {{"worker", ids[w]}});
    SEGWIRE_GENEVE_COUNTERS(X)
#undef X
    x.gauge("segwire_geneve_contexts", "GENEVE mode: outer headers kept for re-encapsulation.");
    for (uint32_t w = 0; w < n; ++w)
        x.sample(app.workers.geneve_stats(w).contexts.get(), {{"worker", ids[w]}});
    x.gauge("segwire_geneve_endpoints", "GENEVE mode: endpoint identities known.");
    for (uint32_t w = 0; w < n; ++w)
        x.sample(app.workers.geneve_stats(w).endpoints.get(), {{"worker", ids[w]}});
}
}  // namespace

std::string render_metrics(const App &app) {
    Exposition x;
    render_build(x, app);
    render_ports(x, app);
    render_workers(x, app);
    if (app.routing) render_routing(x, app);
    const Enforcement *e = app.enforcement_live.load(std::memory_order_acquire);
    if (app.cfg.identity.enabled()) render_fail_mode(x, app, e);
    if (e) {
        render_policy(x, app, *e);
        render_identity(x, app, *e);
        render_export(x, *e);
    }
    if (app.sync) render_sync(x, *app.sync);
    return x.take();
}

struct MetricsServer::Impl {
    httplib::Server svr;
    pthread_t thread{};
    std::atomic<bool> finished{false};  // listen_after_bind returned
};

namespace {

void *serve(void *arg) {
    auto *impl = static_cast<MetricsServer::Impl *>(arg);
    impl->svr.listen_after_bind();
    impl->finished.store(true);
    return nullptr;
}

}  // namespace

MetricsServer::MetricsServer(const App &app) : impl_(std::make_unique<Impl>()) {
    const config::MetricsConfig &mc = app.cfg.metrics;
    httplib::Server &svr = impl_->svr;
    // A scrape is one short GET: two threads let a second scraper (an HA Prometheus pair) in
    // while one connection idles in keep-alive; short timeouts bound what a slow client pins.
    svr.new_task_queue = [] { return new httplib::ThreadPool(2); };
    svr.set_read_timeout(5, 0);
    svr.set_write_timeout(5, 0);
    svr.set_keep_alive_timeout(5);
    svr.set_payload_max_length(4096);
    svr.Get("/metrics", [&app](const httplib::Request &, httplib::Response &res) {
        try {
            res.set_content(render_metrics(app), metrics::kContentType);
        } catch (const std::exception &ex) {
            spdlog::error("metrics: {}", ex.what());
            res.status = 500;
            res.set_content(std::string("metrics: ") + ex.what() + "\n", "text/plain");
        }
    });
    errno = 0;
    if (!svr.bind_to_port(mc.host, mc.port))
        throw std::runtime_error("metrics.listen " + mc.listen + ": cannot listen (" +
                                 (errno ? std::strerror(errno) : "bind failed") + ")");
    // A DPDK control thread: pinned to the CPUs no lcore uses (or the main lcore's), never to a
    // worker's; the request threads it starts inherit that.
    if (rte_ctrl_thread_create(&impl_->thread, "sw-metrics", nullptr, serve, impl_.get()) != 0)
        throw std::runtime_error("metrics.listen " + mc.listen +
                                 ": cannot start the metrics thread");
    spdlog::info("metrics at http://{}/metrics", mc.listen);
}

MetricsServer::~MetricsServer() {
    // stop() ends only a server that is already in its accept loop: repeat it until the thread
    // is out, so that a stop right after the start cannot leave the thread running.
    while (!impl_->finished.load()) {
        impl_->svr.stop();
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    pthread_join(impl_->thread, nullptr);
}

}  // namespace segwire::control
