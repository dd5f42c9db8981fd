// A worker lcore: run to completion, one burst at a time.
//   rx burst (both ports, queue = worker id) -> parse -> steer to the flow's owner worker
//   -> bulk flow lookup -> per-flow state -> forward to the other port -> tx burst
// Both directions of a flow are handled by its owner (symmetric hash of the canonical key), so
// flow tables are per worker and never shared. Housekeeping (ageing, dumps) runs every
// kHousekeepingPolls loops, not per packet.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "config/appliance_config.hpp"
#include "crypto/hmac.hpp"
#include "crypto/nonce.hpp"
#include "crypto/verifier.hpp"
#include "crypto/wire.hpp"
#include "dataplane/flow/flow_table.hpp"
#include "dataplane/flow/hold_queue.hpp"
#include "dataplane/handshake/identity.hpp"
#include "dataplane/handshake/records.hpp"
#include "dataplane/packet/rewrite.hpp"
#include "dataplane/policy/decision_cache.hpp"
#include "dataplane/policy/publisher.hpp"
#include "dataplane/worker/stats.hpp"

struct rte_mbuf;
struct rte_mempool;
struct rte_ring;

namespace segwire::dp {

inline constexpr uint32_t kMaxWorkers = 64;
inline constexpr uint32_t kMaxBurst = 64;

// One row of a flow listing (telemetry / segwirectl flows).
struct FlowRecord {
    FlowKey key;
    TcpState state;
    Auth auth;
    uint8_t tclass;
    uint8_t init_side;
    uint16_t worker;
    uint64_t pkts[2];
    uint64_t bytes[2];
    uint32_t age_s;
    uint32_t idle_s;
};

// The control thread asks a worker for a copy of its flows; the worker answers between bursts.
// No lock: `requested` and `completed` are sequence numbers, the buffer belongs to the worker
// while requested != completed.
struct FlowDump {
    std::atomic<uint64_t> requested{0};
    std::atomic<uint64_t> completed{0};
    FlowRecord *rows = nullptr;
    uint32_t capacity = 0;
    uint32_t count = 0;
};

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

struct WorkerSetup {
    uint32_t id = 0;
    uint32_t nworkers = 1;
    uint16_t port_id[2] = {0, 0};   // ethdev ids of inside, outside
    bool software_steering = true;  // false when both ports hash symmetrically in hardware
    uint32_t burst = 32;
    config::IdleConfig idle;
    uint32_t flow_capacity = 65536;
    uint32_t timeouts_s[kTimeoutClassCount] = {};
    int socket = 0;
    IdentityRuntime *identity = nullptr;  // null: forwarding only (the foundation's mode)
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

class Worker {
  public:
    Worker() = default;
    Worker(const Worker &) = delete;
    Worker &operator=(const Worker &) = delete;
    // Control-time, after run() has returned and the slow path has stopped: frees the peer
    // identities the worker still owns.
    ~Worker();

    // Control-time (allocates).
    bool init(const WorkerSetup &s, std::string &err);
    // steer_rings[src] is the ring worker `src` enqueues into for this worker.
    void set_steer_ring(uint32_t from, rte_ring *r) { inbound_[from] = r; }
    void set_peer_ring(uint32_t to, rte_ring *r) { outbound_[to] = r; }

    // Lcore entry: loops until stop is set.
    int run(const std::atomic<bool> &stop);

    // Entry points also used by the benchmark and tests without ports: process mbufs that
    // arrived on `side` and collect what must leave on each port in tx_[].
    void handle_burst(rte_mbuf **pkts, uint16_t n, uint64_t now, bool fresh = true);
    // One loop's worth of identity work outside packet handling (the benchmark drives it too).
    void begin_loop(uint64_t now);
    void end_loop();
    uint16_t take_tx(uint8_t side, rte_mbuf **out);

    const WorkerStats &stats() const { return stats_; }
    const IdentityStats &identity_stats() const { return ids_; }
    const char *hmac_backend() const;
    WorkerStats &stats() { return stats_; }
    const FlowTable &flows() const { return flows_; }
    FlowDump &dump() { return dump_; }
    uint32_t id() const { return s_.id; }

  private:
    // One packet on its way through the identity stage (docs/handshake.md).
    struct Pkt {
        rte_mbuf *m;
        PacketView v;
        int32_t pos;
        uint8_t arrival;  // port side it came in on
        uint8_t side;     // canonical side of its source
    };
    struct HandshakeCtx {
        uint8_t client_nonce[16], server_nonce[16];
        crypto::Digest client_hash, server_hash;
        uint8_t synack_mac[crypto::wire::kMacLen], ack_mac[crypto::wire::kMacLen],
            confirm_mac[crypto::wire::kMacLen];
        crypto::X25519Public local_pub;
        uint32_t local_pu;
        uint32_t next_free;
        // UDP only: the last control datagram sent (copied for each retransmission) and timers.
        rte_mbuf *ctl;
        uint64_t started_tsc, last_send_tsc;
        int32_t pos;      // the flow, for the timer scan
        uint8_t ctl_out;  // port side the control datagram leaves on
        uint8_t tries;    // retransmissions so far
        bool armed;       // the timer scan acts on this handshake
        bool listed;      // the index is in udp_timers_
    };
    // A handshake packet whose HMACs run in this burst's batch.
    struct BatchOp {
        enum Op : uint8_t {
            kClientCheckSynAck,
            kServerSignSynAck,
            kUdpClientCheckSynAck,
            kUdpServerSignSynAck
        } op;
        Pkt k;
        const PeerIdentity *peer;
        policy::Decision decision;
        crypto::wire::HandshakeMacs macs;
    };

    void forward(Pkt &k);
    void drop(Pkt &k, DropReason r);
    void identity_step(Pkt &k);
    void classify(Pkt &k);
    void client_syn_state(Pkt &k);
    void client_ack_state(Pkt &k);
    void server_syn_state(Pkt &k);
    void server_synack_state(Pkt &k);
    void start_client(Pkt &k, uint32_t pu);
    void accept_server_syn(Pkt &k, const PeerIdentity &peer, const crypto::wire::TokenView &tok,
                           const policy::Decision &d, uint32_t pu);
    void queue_macs(Pkt &k, BatchOp::Op op, const PeerIdentity *peer, const policy::Decision &d,
                    const crypto::HmacKey &hk);
    void client_check_synack(Pkt &k, BatchOp::Op op, const PeerIdentity *peer,
                             const uint8_t server_nonce[16]);
    void finish_batch();
    void finish_op(BatchOp &op);
    void decide_without_identity(Pkt &k, uint32_t pu, policy::Direction dir);
    policy::Decision decide_by_address(uint32_t pu, policy::Direction dir, const IpAddr &peer,
                                       uint8_t family, uint8_t proto, uint16_t port);
    bool snoop_dns(Pkt &k);
    bool admit_new_flow(const rte_mbuf *m, const PacketView &v, uint8_t arrival);
    const PeerIdentity *cached_peer(std::span<const uint8_t> blob, uint64_t &key) const;
    void apply_acl_verdict(Pkt &k, const policy::Decision &d, policy::Direction dir);
    void reject_tcp(Pkt &k, bool reset_peer_side, DropReason why = DropReason::PolicyReject);
    void send_reset(const Pkt &k, uint8_t to_side);
    bool park(Pkt &k, SlowJob *job);
    SlowJob *take_job();
    const PeerIdentity *lookup_peer(Pkt &k, std::span<const uint8_t> blob, uint64_t &key);
    HandshakeCtx *start_server_hs(Pkt &k, const crypto::wire::TokenView &tok,
                                  const PeerIdentity &peer, uint32_t pu);
    const PeerIdentity *verified_peer(Pkt &k, const crypto::wire::TokenView &tok, uint64_t &key,
                                      bool reset_peer_side);
    crypto::wire::WireStatus token_of(const Pkt &k, crypto::wire::TokenView &tok) const;
    const crypto::HmacKey *session_key(Pkt &k, const crypto::X25519Public &local_pub,
                                       const crypto::X25519Public &peer_pub, crypto::Role role);
    DropReason add_identity(Pkt &k, crypto::wire::MsgType type, const uint8_t nonce[16],
                            std::span<const uint8_t> claims, const uint8_t *mac);
    bool strip_identity(Pkt &k, size_t token_len);
    bool add_ack_proof(Pkt &k, const uint8_t *mac);
    bool scrub_identity(Pkt &k, const crypto::wire::TcpOptionView &ov);
    bool scrub_if_marked(Pkt &k);
    void send_confirm(const Pkt &k, const uint8_t *mac);
    std::array<uint8_t, 8> confirm_key(int32_t pos) const;
    void allowed_tcp_from_outside(Pkt &k);
    void set_peer(Flow &f, const PeerIdentity *p);
    void unpin(PeerIdentity *p);
    void free_identity(PeerIdentity *p);
    void retag_job(SlowJob *j, PeerIdentity *target);
    void uncache(PeerIdentity *p);
    void retire_flows();
    void track_seq(Flow &f, const Pkt &k);
    void release_held(Flow &f);
    void restart_flow(Flow &f);
    void poll_slowpath();
    void on_flow_removed(int32_t pos, Flow &f);
    void reevaluate(uint32_t budget);
    void record(const Pkt &k, const Flow &f, const policy::Decision &d, DropReason why,
                const PeerIdentity *peer, uint8_t claims_reason = 0);
    void record_exception(int32_t pos, const Flow &f);
    void fill_endpoints(FlowRecordEvent &e, int32_t pos, const Flow &f) const;
    uint32_t alloc_hs();
    void free_hs(Flow &f);
    policy::IpAddr addr_of(const IpAddr &a, uint8_t family) const;
    crypto::wire::FlowBinding binding_of(const Flow &f, int32_t pos) const;

    // UDP identity handshake (udp_identity.cpp)
    bool udp_control_of(const Pkt &k, crypto::wire::UdpMessageView &msg,
                        crypto::wire::WireStatus &ws) const;
    void udp_classify(Pkt &k, uint32_t pu, uint8_t peer_flags, policy::Direction dir);
    void udp_start_client(Pkt &k, uint32_t pu, bool to_source);
    void udp_server_syn(Pkt &k, const crypto::wire::UdpMessageView &msg, uint32_t pu);
    void udp_client_syn_state(Pkt &k);
    void udp_server_synack_state(Pkt &k);
    void udp_reset_sent_state(Pkt &k);
    void udp_allowed_control(Pkt &k);
    void udp_finish_op(BatchOp &op);
    void udp_send_reset(Pkt &k, uint32_t pu);
    void udp_reject(Pkt &k, const uint8_t nonce[16], bool to_source);
    void udp_restart(Pkt &k);
    void udp_refused(Pkt &k);
    bool udp_send_ctl(Pkt &k, bool to_source, std::span<const uint8_t> body, uint32_t hs,
                      bool keep);
    void udp_resend(uint32_t hs);
    void udp_arm(uint32_t hs, int32_t pos);
    void udp_timers();
    void udp_timeout(uint32_t hs);
    void udp_fallback(int32_t pos, Flow &f);
    void drop_held(Flow &f, DropReason why);

    void process_owned(rte_mbuf **pkts, uint16_t n, uint64_t now);
    void enqueue_tx(rte_mbuf *m, uint8_t out_side);
    void flush_tx();
    void flush_steer();
    void housekeeping(uint64_t now);
    void answer_dump(uint64_t now);
    uint8_t side_of(const rte_mbuf *m) const;

    WorkerSetup s_;
    FlowTable flows_;
    WorkerStats stats_;
    FlowDump dump_;
    uint64_t tsc_hz_ = 0;
    rte_ring *inbound_[kMaxWorkers] = {};
    rte_ring *outbound_[kMaxWorkers] = {};

    // Per-loop staging; sized for the largest burst from two ports plus steered packets.
    static constexpr uint32_t kStage = 4 * kMaxBurst;
    rte_mbuf *tx_[2][kStage];
    uint16_t tx_n_[2] = {0, 0};
    rte_mbuf *steer_[kMaxWorkers][kMaxBurst];
    uint16_t steer_n_[kMaxWorkers] = {};

    // Identity stage (only with s_.identity).
    IdentityRuntime *idr_ = nullptr;
    const EnforcerState *st_ = nullptr;  // read once per loop; valid until reader_quiescent
    uint64_t now_tsc_ = 0;
    uint32_t now_unix_ = 0;
    IdentityStats ids_;
    HoldQueue holds_;
    std::vector<HandshakeCtx> hs_;
    uint32_t hs_free_ = kNil;
    std::unique_ptr<crypto::HmacBatch> hmac_;
    std::unique_ptr<crypto::NonceSource> nonces_;
    std::unique_ptr<policy::DecisionCache> decisions_;
    std::unique_ptr<crypto::FixedCache<8, PeerIdentity *>> peers_;
    std::unique_ptr<crypto::SessionKeyCache> keys_;
    // Servers whose SYN-ACK came back without identity: later SYNs to them carry none (and a TFO
    // SYN's data never reaches a host that would take the token for data).
    std::unique_ptr<crypto::FixedCache<16, uint8_t>> plain_peers_;
    // Server role: B's confirmation of each ACK proof it verified, kept ~3 s so that proofs A adds
    // before the confirmation reaches it are answered again (docs/protocol.md §4.4). A small
    // bounded cache, not the handshake context: that returns to its pool at authorization.
    struct Confirmation {
        uint8_t mac[crypto::wire::kMacLen];
        uint64_t last_tsc;
    };
    std::unique_ptr<crypto::FixedCache<8, Confirmation>> confirms_;
    uint32_t jhash_seed_[2] = {};
    std::vector<SlowJob> jobs_;
    std::vector<SlowJob *> free_jobs_;
    std::vector<int32_t> parked_scratch_;  // flows whose slow-path answer came back this loop
    // New flows refused at their first packet: removed at the end of the burst (docs/handshake.md
    // "Refused flows hold no entry"), so a flood of refused SYNs cannot fill the table.
    struct Retire {
        int32_t pos;
        uint64_t created;
    };
    Retire retire_[kMaxBurst];
    uint16_t retire_n_ = 0;
    BatchOp batch_[kMaxBurst];
    uint16_t batch_n_ = 0;
    Pkt deferred_[kStage];
    uint16_t deferred_n_ = 0;
    crypto::HmacJob hmac_jobs_[2 * kMaxBurst];
    std::vector<uint32_t> udp_timers_;  // handshake contexts with a UDP timer (see udp_timers())
    uint64_t ms_tsc_ = 0;               // TSC ticks per millisecond
    uint64_t reeval_version_ = 0;       // policy version the last completed sweep used
    uint64_t reeval_target_ = 0;
    uint32_t reeval_cursor_ = 0;
    bool reeval_incomplete_ = false;
    bool reeval_pending_ = false;  // a sweep is under way: the idle loop does not sleep
};

}  // namespace segwire::dp
