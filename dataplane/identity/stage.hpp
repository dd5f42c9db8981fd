// A worker's identity stage (docs/handshake.md, docs/identity-machines.md): everything between
// "this packet belongs to flow F" and the packet's fate. It owns the caches (peer identities,
// session keys, decisions, plain peers, B's confirmations), the handshake-context pool, the hold
// queue, the slow-path jobs, this burst's HMAC batch and the flow records.
//
// The decisions are the pure state machines' (tcp_machine, udp_machine, plain_machine). The stage
// is their adapter: it turns an mbuf and the flow into an Event and Facts, answers the machine's
// needs (cache look-ups, nonces, packet edits, sends) and applies the actions it returns, in
// order. It decides nothing itself. Files:
//   stage.cpp        pools, holds, caches, slow path, records, the batch, the policy sweep
//   adapter.cpp      the needs loop: events in, needs answered, actions applied
//   tcp_adapter.cpp  TCP facts and operations (option edits, RSTs, confirmations)
//   udp_adapter.cpp  UDP facts and operations (control datagrams, their timers)
//
// Runs on the worker's lcore only: no locks, no allocation after init(), no exceptions.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include <rte_mbuf.h>

#include "crypto/hmac.hpp"
#include "crypto/nonce.hpp"
#include "crypto/verifier.hpp"
#include "crypto/wire.hpp"
#include "dataplane/flow/flow_table.hpp"
#include "dataplane/flow/hold_queue.hpp"
#include "dataplane/contract/enforcer_state.hpp"
#include "dataplane/contract/flow_records.hpp"
#include "dataplane/contract/identity_runtime.hpp"
#include "dataplane/contract/slow_job.hpp"
#include "dataplane/contract/stats.hpp"
#include "dataplane/dns/query_table.hpp"
#include "dataplane/identity/machine.hpp"
#include "dataplane/identity/record_buffer.hpp"
#include "dataplane/identity/source_share.hpp"
#include "dataplane/packet/seqmap.hpp"
#include "dataplane/packet/rewrite.hpp"
#include "dataplane/policy/decision_cache.hpp"
#include "dataplane/worker/tx_queues.hpp"

namespace segwire::dp::identity {

inline constexpr uint8_t kParkedBit = 1;  // Flow::parked: waiting for the slow path
inline constexpr uint8_t kInBatchBit =
    2;                                // Flow::parked: an HMAC batch op of this burst is pending
inline constexpr uint8_t kL4Bit = 4;  // Flow::parked: an L4 flow whose records are final: its
                                      // segments are shifted (docs/l4-mode.md)

inline bool is_syn(const PacketView &v) noexcept {
    return (v.tcp_flags & (kTcpSyn | kTcpAck)) == kTcpSyn;
}
inline bool is_synack(const PacketView &v) noexcept {
    return (v.tcp_flags & (kTcpSyn | kTcpAck)) == (kTcpSyn | kTcpAck);
}

// One packet on its way through the stage.
struct Pkt {
    rte_mbuf *m;
    PacketView v;
    int32_t pos;      // its flow
    uint8_t arrival;  // port side it came in on
    uint8_t side;     // canonical side of its source
};

class Stage {
  public:
    Stage() = default;
    // Control-time, after the worker's run() has returned and the slow path has stopped: frees
    // the peer identities the stage still owns.
    ~Stage();
    Stage(const Stage &) = delete;
    Stage &operator=(const Stage &) = delete;

    // Control-time (allocates). `port_id` are the ethdev ids of the inside and outside ports.
    bool init(IdentityRuntime *idr, uint32_t worker_id, const uint16_t port_id[2], FlowTable &flows,
              TxQueues &tx, WorkerStats &stats, uint64_t tsc_hz, std::string &err);

    // Once per loop: the state to enforce, then the slow path's answers. Packets of flows whose
    // answer came back are ready in released() for the loop to run again.
    void begin_loop(uint64_t now);
    void end_loop(uint32_t worker_id);
    // True while a policy state is published: enforce (else the worker only forwards).
    bool enforcing() const noexcept { return st_ != nullptr; }
    // The state read this loop (null: none yet); valid until the loop's end.
    const EnforcerState *state() const noexcept { return st_; }
    // Held packets to run again (parsed and looked up anew, like a received burst); take_released
    // hands out at most `cap` of them.
    uint16_t take_released(rte_mbuf **out, uint16_t cap) noexcept;

    // Burst mechanics around the machines (no identity decision):
    // refuse an uncached identity SYN from outside before it gets a flow entry when the slow path
    // has no free job (a flood neither fills the table nor the pool);
    bool admit_new_flow(const rte_mbuf *m, const PacketView &v, uint8_t arrival);
    // while the slow path has no free job (`saturated`, once per burst): is this an identity SYN
    // from outside whose source is no address of a PU hosted by another enforcer? Its claims can
    // never bind (docs/policy.md "Who may speak for a PU"), so it is refused before the flow
    // lookup: a flood from unbound addresses costs a parse and one address lookup per SYN.
    bool saturated() const noexcept { return free_jobs_.empty(); }
    bool unbindable_syn(const rte_mbuf *m, const PacketView &v) const;
    // one packet of flow k.pos;
    void packet(Pkt &k);
    DropReason ingress(const Pkt &k) const;
    // GENEVE one-arm mode (docs/geneve.md): both directions arrive on one port, so the side a
    // packet comes from is its addresses': from inside when its source is a PU hosted here, or
    // (neither end hosted here) when its source is in a managed network and its destination not.
    bool source_inside(const PacketView &v) const noexcept;
    // Before a packet of a known flow touches any state (the flow table's TCP tracking included):
    // anti-spoofing - the flow's local side only ever sends from inside, its peer only from
    // outside - and RST/FIN validation - a TCP RST or FIN is acted on only if its sequence number
    // lies in the receiver's window (RFC 5961 for a middlebox: in-window or dropped and counted),
    // judged from the last ACK the receiver sent (docs/handshake.md "Anti-spoofing").
    static constexpr uint32_t kResetWindow = 1u << 20;
    static DropReason admit_known(const Flow &f, const PacketView &v, uint8_t side,
                                  uint8_t arrival) noexcept {
        if (f.auth == dp::Auth::kNew) return DropReason::None;
        if ((side == f.local_side) != (arrival == kInside)) return DropReason::SpoofedSource;
        if (v.proto == kProtoTcp && (v.tcp_flags & (kTcpRst | kTcpFin))) {
            const uint32_t expected = f.ack_seen[side ^ 1];
            // An RST at or after what the receiver expects; a FIN also before it (a segment
            // retransmitted after its ACK was lost starts below the receiver's ACK).
            const uint32_t ahead = v.seq - expected;
            const bool in_window = (v.tcp_flags & kTcpRst)
                                       ? ahead < kResetWindow
                                       : ahead < kResetWindow || -ahead <= kResetWindow;
            if (expected != 0 && !in_window) return DropReason::TcpOutOfWindow;
        }
        return DropReason::None;
    }
    // a SYN reused a finished connection's ports (tcp_track said so) before its packet;
    void ports_reused(int32_t pos);
    // a new flow from outside to remove at the end of the burst if it was refused;
    void maybe_retire(int32_t pos, uint64_t created) noexcept {
        retire_[retire_n_++] = Retire{pos, created};
    }
    // the burst is over: run the HMAC batch, the packets deferred behind it, retire flows.
    void end_burst();

    // Housekeeping: handshake timers, the policy sweep (`budget` flows), the budget gauges.
    void housekeeping(uint32_t budget);
    // The flow table removes an idle flow.
    void on_flow_removed(int32_t pos, Flow &f);
    // A policy sweep is under way: the idle loop should not sleep.
    bool sweep_pending() const noexcept { return reeval_pending_; }

    const IdentityStats &stats() const noexcept { return ids_; }
    const char *hmac_backend() const;

  private:
    struct HandshakeCtx {
        uint8_t client_nonce[16], server_nonce[16];
        uint32_t
            client_isn;  // TCP client role: the SYN's sequence number (a plain SYN-ACK must ack it)
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
        bool listed;      // the index is in timers_
        bool udp;         // charged to the kept-control-datagram budget (kept_)
        uint16_t share;   // the source bucket it is charged to (SourceShare::kContexts)
    };
    // L4 mode's part of a handshake context (docs/l4-mode.md), same index: the peer's record
    // being reassembled, this side's stream position and the bytes each side's records take.
    struct L4Ctx {
        RecordBuffer rb;          // the peer's next record, from rb.first_seq()
        uint32_t client_isn = 0;  // both ISNs, for the MAC input
        uint32_t server_isn = 0;
        uint32_t own_end = 0;      // next sequence number of this side's stream (after our records)
        uint16_t own_total = 0;    // bytes of our records in this side's stream
        uint16_t peer_total = 0;   // bytes of the peer's records taken from its stream
        uint16_t expect_len = 0;   // the length of the record expected next, when known (R3)
        bool own_started = false;  // own_end is set (our host's ISN seen)
        bool tfo_req = false;      // B: the client's SYN carried a TFO option: answer a cookie
    };
    // A handshake packet whose HMACs run in this burst's batch.
    struct Batched {
        BatchOp op;
        Pkt k;
        const PeerIdentity *peer;
        policy::Decision decision;
        crypto::wire::HandshakeMacs macs;
        crypto::l4::Macs l4macs;                // the L4 ops' (MAC input with the ISNs)
        uint8_t r2_mac[crypto::wire::kMacLen];  // kL4ClientCheckR2: the MAC R2 carried
    };
    // B's confirmation of each ACK proof it verified, kept ~3 s so that proofs A adds before the
    // confirmation reaches it are answered again (docs/protocol.md §4.4).
    struct Confirmation {
        uint8_t mac[crypto::wire::kMacLen];
        uint64_t last_tsc;
    };
    // Refused new flows, removed at the end of the burst.
    struct Retire {
        int32_t pos;
        uint64_t created;
    };
    // What the adapter knows about one event beyond the machine's facts: the packet's parsed
    // option, token or control message, and the payload of each answered need. One per stage:
    // events never nest (an event's actions start no other event).
    struct Ev {
        Pkt *k = nullptr;  // kPacket and kMacsReady
        int32_t pos = -1;
        Flow *f = nullptr;
        uint8_t proto = 0;
        uint32_t timer_hs = kNil;  // kTimer: the armed context
        // Parsed from the packet by the facts (valid when the fact says so):
        crypto::wire::TcpOptionView ov;    // TCP: segwire's option (opt is a type)
        crypto::wire::TokenView tok;       // TCP SYN / SYN-ACK token, UDP SYN / SYN-ACK token
        crypto::wire::UdpMessageView msg;  // UDP: the control message (ctl is a type)
        // The payload of each answered need:
        uint32_t classified_pu = policy::kNone;  // kClassify
        uint32_t hs_pu = policy::kNone;          // the context's local PU when the event began
        uint32_t local_pu = policy::kNone;       // kLocalPu
        const crypto::SignedClaims *claims = nullptr;  // kLocalClaims
        const PeerIdentity *looked = nullptr;          // kPeer (or the identity queued with an op)
        uint64_t peer_key = 0;                         // kPeer: the blob's cache key
        const crypto::HmacKey *hk = nullptr;           // kSessionKey
        crypto::X25519Public key_local, key_peer;      // kSessionKey: the pair looked up
        crypto::Role key_role = crypto::Role::Client;
        policy::Decision decision;     // kRules / kAcl (or the decision queued with an op)
        Confirmation *conf = nullptr;  // kConfirmation
        uint16_t l4_rec_len = 0;       // L4: the complete record the facts found (its length)

        // A new event (the parsed views are valid only where this event's facts say so).
        void begin(Pkt *pk, int32_t p, Flow *fl, uint8_t pr) noexcept {
            k = pk, pos = p, f = fl, proto = pr;
            timer_hs = kNil;
            classified_pu = hs_pu = local_pu = policy::kNone;
            claims = nullptr, looked = nullptr, hk = nullptr, conf = nullptr;
            peer_key = 0;
            l4_rec_len = 0;
            decision = policy::Decision{};
        }
    };

    // ---- the adapter (adapter.cpp, tcp_adapter.cpp, udp_adapter.cpp) ----
    struct Sink;  // the machines' Direct mode (adapter.cpp)
    void run(const Event &event, Facts &fx, Ev &e);
    // The machines' view of a flow.
    static FlowState view(const Flow &f) noexcept {
        FlowState st;
        st.auth = static_cast<Auth>(f.auth);
        st.role = static_cast<Role>(f.role);
        st.hs = f.hs != kNil;
        st.peer = f.peer != nullptr;
        st.parked = f.parked & kParkedBit;
        st.in_batch = f.parked & kInBatchBit;
        return st;
    }
    void apply(const Action &a, Ev &e);
    void answer(const Need &n, Ev &e, Answers &ans);
    static PacketFacts packet_facts(const Pkt &k, const Flow &f) noexcept;
    void parse_facts(Ev &e, Facts &fx);
    void tcp_parse(Ev &e, Facts &fx);
    void udp_parse(Ev &e, Facts &fx);
    void finish_op(Batched &op);
    void timer_event(uint32_t h);
    void reevaluate_flow(int32_t pos, Flow &f);
    void fate(const Action &a, Ev &e);
    void park_job(const Action &a, Ev &e);
    DropReason edit(Edit what, Ev &e);
    SendAnswer send_handshake(UdpMsg msg, To to, Ev &e);
    void send_udp(UdpMsg msg, To to, uint8_t flags, Ev &e);
    void cut_rsts(int32_t pos, Flow &f);
    void midstream_rsts(const Pkt &k);
    void cut_reset(int32_t pos, const Flow &f);
    dp::Counter &counter(Counter c) noexcept;

    // ---- operations (what the adapter performs for a need or an action) ----
    void forward(Pkt &k) { tx_->push(k.m, k.arrival ^ 1); }
    void drop(Pkt &k, DropReason r) {
        wstats_->drops[static_cast<size_t>(r)].add();
        tx_->cap->dropped(k.m, r);
        rte_pktmbuf_free(k.m);
    }
    policy::Decision decide_by_address(uint32_t pu, policy::Direction dir, const IpAddr &peer,
                                       uint8_t family, uint8_t proto, uint16_t port);
    // DNS snooping (stage.cpp; docs/dns.md): queries are remembered as they pass, an answer is
    // handed to the slow path only when it answers one of them.
    void dns_observe(const Pkt &k, const Flow &f);
    void note_dns_query(const Pkt &k, const Flow &f);
    bool dns_question(const Pkt &k, dns::Question &q) const;
    bool trusted_resolver(uint32_t pu, const Pkt &k);
    bool snoop_dns(Pkt &k);
    const PeerIdentity *cached_peer(std::span<const uint8_t> blob, uint64_t &key) const;
    void queue_macs(Pkt &k, BatchOp op, const PeerIdentity *peer, const policy::Decision &d,
                    const crypto::HmacKey &hk);
    void finish_batch();
    void send_reset(const Pkt &k, uint8_t to_side);
    bool park(Pkt &k, SlowJob *job);
    SlowJob *take_job();
    crypto::wire::WireStatus token_of(const Pkt &k, crypto::wire::TokenView &tok) const;
    DropReason add_identity(Pkt &k, crypto::wire::MsgType type, const uint8_t nonce[16],
                            std::span<const uint8_t> claims, const uint8_t *mac);
    bool strip_identity(Pkt &k, size_t token_len);
    bool add_ack_proof(Pkt &k, const uint8_t *mac);
    void send_confirm(const Pkt &k, const uint8_t *mac);
    std::array<uint8_t, 8> confirm_key(int32_t pos) const;
    void set_peer(Flow &f, const PeerIdentity *p);
    void unpin(PeerIdentity *p);
    void free_identity(PeerIdentity *p);
    void retag_job(SlowJob *j, PeerIdentity *target);
    void uncache(PeerIdentity *p);
    void retire_flows();
    // A flow from outside that was refused and never answered from inside, holding nothing.
    static bool refused_from_outside(const Flow &f) noexcept {
        return (f.auth == dp::Auth::kRejected || f.auth == dp::Auth::kNew) && !f.parked &&
               !f.hold.count && f.hs == kNil && f.in_port == kOutside &&
               f.pkts[f.init_side ^ 1] == 0;
    }
    // Remembers what each host has acknowledged: an RST we forge for host X must carry exactly
    // the sequence number X expects next (RFC 5961: anything else only earns a challenge ACK),
    // and that is the ACK number X itself last sent. Token bytes never enter it.
    static void track_seq(Flow &f, const Pkt &k) noexcept {
        if (k.v.proto != kProtoTcp || !(k.v.tcp_flags & kTcpAck)) return;
        uint32_t &a = f.ack_seen[k.side];
        if (a == 0 || int32_t(k.v.ack - a) > 0) a = k.v.ack;
    }
    void release_held(Flow &f, int32_t pos = -1);
    void drop_held(Flow &f, DropReason why);
    void restart_flow(Flow &f);
    void poll_slowpath();
    void reevaluate(uint32_t budget);
    void record(int32_t pos, const Flow &f, const policy::Decision &d, DropReason why,
                const PeerIdentity *peer, uint8_t claims_reason = 0);
    // ---- flow accounting (stage.cpp; docs/export.md), only with IdentityRuntime::active_timeout_s
    // Per flow position: the flow's last decision record and what its counter records counted.
    struct alignas(64) Acct {
        FlowRecordEvent rec;         // the last kFlow record of the flow (its report key)
        uint64_t gen;                // Flow::created_tsc of the flow it belongs to (0: none)
        uint64_t from_tsc;           // start of the interval the next counter record covers
        uint64_t pkts[2], bytes[2];  // counted by earlier counter records, by canonical side
        uint8_t src_side;            // canonical side of rec.src (the initiator)
        bool decided;                // rec holds a decision of the current connection
    };
    bool accounting() const noexcept { return !acct_.empty(); }
    void acct_decided(int32_t pos, const Flow &f, const FlowRecordEvent &e) noexcept;
    void acct_redecided(int32_t pos, const Flow &f, const Ev &e) noexcept;
    // The flow at `pos` goes (before its entry is removed): its last counter record.
    void acct_end(int32_t pos, const Flow &f, EndReason why) noexcept {
        if (accounting()) acct_final(pos, f, why);
    }
    void acct_final(int32_t pos, const Flow &f, EndReason why) noexcept;
    bool acct_emit(const Flow &f, Acct &a, EndReason why) noexcept;
    void acct_scan() noexcept;
    int64_t unix_ms(uint64_t tsc) const noexcept {
        return clock_ms_ + (static_cast<int64_t>(tsc - clock_tsc_) / static_cast<int64_t>(ms_tsc_));
    }
    // Removes a flow the stage gives up (refused, timed out), after its counter record.
    void remove_flow(int32_t pos, const Flow &f, EndReason why) noexcept {
        acct_end(pos, f, why);
        flows_->remove(pos);
    }
    void record_exception(int32_t pos, const Flow &f);
    IdMode id_mode(int32_t pos, const Flow &f, bool identity) const;
    void fill_endpoints(FlowRecordEvent &e, int32_t pos, const Flow &f) const;
    uint32_t alloc_hs(int32_t pos, const Flow &f, uint8_t proto);
    void free_hs(Flow &f);
    // Budgets (docs/handshake.md "Budgets"): the source a flow's pinned resources are charged to
    // (the address of the host that started it), whether a handshake context may be taken for
    // it, and held packets charged to it.
    uint16_t share_of(int32_t pos, const Flow &f) const noexcept;
    void hs_facts(const Ev &e, Facts &fx);
    DropReason hold(Flow &f, int32_t pos, rte_mbuf *m);
    rte_mbuf *unhold(Flow &f);
    void publish_gauges();
    policy::IpAddr addr_of(const IpAddr &a, uint8_t family) const;
    const IpAddr &peer_addr(int32_t pos, const Flow &f) const;
    crypto::wire::FlowBinding binding_of(const Flow &f, int32_t pos) const;
    uint8_t side_of(const rte_mbuf *m) const noexcept {
        return m->port == port_id_[kInside] ? kInside : kOutside;
    }
    // L4 mode (l4_adapter.cpp)
    void l4_facts(Ev &e, Facts &fx);
    L4Rec l4_syn_record(Ev &e);
    DropReason l4_syn_edit(Ev &e);
    DropReason l4_synack_in(Ev &e);
    DropReason l4_synack_out(Ev &e);
    using TfoKey = std::array<uint8_t, 32>;  // (client address, server address)
    static TfoKey tfo_key_of(const IpAddr &client, const IpAddr &server) noexcept {
        TfoKey k;
        std::memcpy(k.data(), client.b, 16);
        std::memcpy(k.data() + 16, server.b, 16);
        return k;
    }
    L4Rec l4_record(L4Ctx &l, Ev &e, bool confirm);
    void l4_fill(HsFill what, Ev &e);
    DropReason l4_strip_tfo(Pkt &k);
    void l4_send(uint8_t rec, Ev &e);
    void l4_resend(uint32_t hs);
    void l4_ack_peer(Ev &e);
    void l4_shift_on(Ev &e);
    // A segment of a flow whose records are final, towards its host (`in`: from the wire) or
    // towards the wire: sequence and acknowledgment numbers (and the view's copies) shifted.
    void l4_translate(Pkt &k, bool in) noexcept {
        const SeqShift &sh = shift_[static_cast<uint32_t>(k.pos)];
        uint8_t *frame = rte_pktmbuf_mtod(k.m, uint8_t *);
        const uint8_t from = k.side;
        const uint32_t dseq = in ? 0u - sh.ins[from] : sh.ins[from];
        const uint32_t dack = in ? 0u - sh.ins[from ^ 1] : sh.ins[from ^ 1];
        shift_segment(frame, k.v, dseq, dack);
        k.v.seq += dseq;
        if (k.v.tcp_flags & kTcpAck) k.v.ack += dack;
    }
    void release_l4(int32_t pos, const Flow &f, rte_mbuf *m);
    // UDP
    bool udp_control_of(const Pkt &k, crypto::wire::UdpMessageView &msg,
                        crypto::wire::WireStatus &ws) const;
    bool udp_send_ctl(Pkt &k, bool to_source, std::span<const uint8_t> body, uint32_t hs,
                      bool keep);
    void udp_resend(uint32_t hs);
    void arm_timer(uint32_t hs, int32_t pos);
    void run_timers();

    IdentityRuntime *idr_ = nullptr;
    Ev ev_;
    uint32_t id_ = 0;
    uint16_t port_id_[2] = {0, 0};
    FlowTable *flows_ = nullptr;
    TxQueues *tx_ = nullptr;
    WorkerStats *wstats_ = nullptr;
    const EnforcerState *st_ = nullptr;  // read once per loop; valid until the loop's end
    uint64_t now_tsc_ = 0;
    uint32_t now_unix_ = 0;
    uint64_t ms_tsc_ = 0;  // TSC ticks per millisecond
    IdentityStats ids_;
    HoldQueue holds_;
    std::vector<HandshakeCtx> hs_;
    std::vector<L4Ctx> l4_;        // parallel to hs_ (L4 flows only use theirs)
    std::vector<SeqShift> shift_;  // per flow position: the shift of an L4 flow (kL4Bit)
    uint32_t hs_free_ = kNil;
    std::unique_ptr<crypto::HmacBatch> hmac_;
    std::unique_ptr<crypto::NonceSource> nonces_;
    std::unique_ptr<policy::DecisionCache> decisions_;
    std::unique_ptr<crypto::FixedCache<8, PeerIdentity *>> peers_;
    std::unique_ptr<crypto::SessionKeyCache> keys_;
    // Servers whose SYN-ACK came back without identity: later SYNs to them carry none (and a TFO
    // SYN's data never reaches a host that would take the token for data).
    // Servers known to have no enforcer, by (address, protocol, port): one plain answer says
    // nothing about the host's other services.
    using PlainKey = std::array<uint8_t, 19>;
    static PlainKey plain_key(const IpAddr &a, uint8_t proto, uint16_t port) noexcept {
        PlainKey k;
        std::memcpy(k.data(), a.b, 16);
        k[16] = proto;
        k[17] = static_cast<uint8_t>(port >> 8);
        k[18] = static_cast<uint8_t>(port);
        return k;
    }
    std::unique_ptr<crypto::FixedCache<19, uint8_t>> plain_peers_;
    // Auto networks: servers (address, protocol, port) behind an enforcer whose SYN-ACK came back
    // without v1's option (stripped on the way): connections to them use L4 for kL4PeerS.
    static constexpr uint32_t kL4PeerS = 600;
    std::unique_ptr<crypto::FixedCache<19, uint8_t>> l4_peers_;
    // L4, A: the TFO cookies server enforcers issued us, by (client, server) address.
    static constexpr uint32_t kTfoCookieS = 3600;
    std::unique_ptr<crypto::FixedCache<32, crypto::l4::TfoCookie>> tfo_cookies_;
    // B: the cookie keys of this period and the previous one (derived when the period changes).
    crypto::HmacKey tfo_keys_[2];
    uint64_t tfo_period_ = UINT64_MAX;
    const crypto::HmacKey *tfo_keys() noexcept;
    std::unique_ptr<crypto::FixedCache<8, Confirmation>> confirms_;
    // Client nonces of the SYNs this worker accepted as a server, with the flow each opened
    // (its key's hash), kept for the claims' lifetime: the same nonce on another flow is a
    // replayed SYN (docs/handshake.md "Budgets").
    std::unique_ptr<crypto::FixedCache<16, uint32_t>> syn_nonces_;
    bool replayed_syn(const uint8_t *nonce, int32_t pos) noexcept;
    // Pairs of ephemeral keys (the session cache's key) whose derivation the slow path reported
    // failed, kept kKeyFailedS: their handshakes are dropped, not parked again.
    static constexpr uint32_t kKeyFailedS = 60;
    static constexpr size_t kKeyFailedEntries = 1024;
    std::unique_ptr<crypto::FixedCache<64, uint8_t>> key_failed_;
    uint32_t jhash_seed_[2] = {};
    dns::QueryTable queries_;  // the DNS queries this worker's PUs await answers to
    std::vector<SlowJob> jobs_;
    std::vector<SlowJob *> free_jobs_;
    std::vector<int32_t> parked_scratch_;  // flows whose slow-path answer came back this loop
    std::vector<rte_mbuf *> released_;     // their held packets, to run again
    size_t released_at_ = 0;
    Retire retire_[kMaxBurst];
    uint16_t retire_n_ = 0;
    Batched batch_[kMaxBurst];
    uint16_t batch_n_ = 0;
    Pkt deferred_[TxQueues::kCap];
    uint16_t deferred_n_ = 0;
    crypto::HmacJob hmac_jobs_[2 * kMaxBurst];
    std::vector<uint32_t> timers_;  // handshake contexts with a timer (UDP, TCP half-open)
    SourceShare share_;             // per-source shares of contexts, holds and jobs
    SourceRate answers_;            // per-source rate of handshakes started from outside
    SourceRate midstream_;          // the worker's mid-stream reset budget (bucket 0 only)
    uint32_t hs_used_ = 0;          // handshake contexts in use
    uint32_t kept_ = 0;             // UDP contexts (each keeps at most one control datagram)
    uint64_t reeval_version_ = 0;   // policy version the last completed sweep used
    uint64_t reeval_target_ = 0;
    uint32_t reeval_cursor_ = 0;
    bool reeval_incomplete_ = false;
    bool reeval_pending_ = false;  // a sweep is under way: the idle loop does not sleep
    // Flow accounting: a slot per flow position (empty: off), the active timeout, and the scan
    // that visits every position once per half active timeout (acct_credit_: positions due).
    std::vector<Acct> acct_;
    uint64_t acct_active_tsc_ = 0;
    double acct_per_tsc_ = 0;
    double acct_credit_ = 0;
    uint64_t acct_scan_tsc_ = 0;
    uint32_t acct_cursor_ = 0;
    // The wall clock at a TSC reading (refreshed each housekeeping round with accounting on), for
    // the records' start times in unix milliseconds.
    uint64_t clock_tsc_ = 0;
    int64_t clock_ms_ = 0;
};

}  // namespace segwire::dp::identity
