// Internal to the identity machines: the per-step context every machine is written against, the
// two ways a step runs, and the paths the three machines share (gates, ACL decisions,
// re-evaluation, expiry).
//
// A step is plain straight-line code over (state, event, facts), written once as templates on the
// context `Ctx<Mode>`. Every branch reads a fact through Ctx, which records it in the trace when
// one is attached. `ask()` is where the step needs one more fact; the Mode decides what happens:
//  - Replay (the needs protocol; the unit tables): the step stops at an unanswered need, and the
//    adapter applies the actions emitted so far. On the next call the step replays the same path
//    (the facts it branched on are the same), and only actions after the last answered need are
//    emitted again - so each action reaches the adapter exactly once.
//  - Direct<Sink> (the worker's adapter): each action goes to the sink as it is taken and each
//    need is performed as it is reached; one step per event. With the machine code inlined into
//    the adapter every action of a path compiles to its own few instructions.
// The tests run every path both ways and require the same actions, needs and next state.
#pragma once

#include "dataplane/identity/machine.hpp"

namespace segwire::dp::identity::detail {

template <class E>
constexpr uint8_t u8(E e) noexcept {
    return static_cast<uint8_t>(e);
}

// The needs protocol: stop at an unanswered need; on a replay emit only what follows the last
// answered one.
class Replay {
  public:
    Replay(const Facts &fx, Result &r) noexcept : fx_(fx), r_(r), emit_(fx.answers.known == 0) {}
    bool ask(const Need &n) noexcept {
        const uint16_t bit = static_cast<uint16_t>(1u << static_cast<unsigned>(n.kind));
        if (fx_.answers.known & bit) {
            passed_ |= bit;
            emit_ = passed_ == fx_.answers.known;
            return true;
        }
        r_.need = n;
        return false;
    }
    void emit(const Action &x) noexcept {
        if (!emit_) return;
        if (r_.n == Result::kMaxActions) {
            r_.overflow = true;
            return;
        }
        r_.actions[r_.n++] = x;
    }

  private:
    const Facts &fx_;
    Result &r_;
    uint16_t passed_ = 0;
    bool emit_;
};

// Needs performed where they are reached: Sink::apply(const Action &) applies an action at once;
// Sink::answer(const Need &) performs a need, stores its answer in the step's Facts and marks it.
template <class Sink>
class Direct {
  public:
    explicit Direct(Sink &sink) noexcept : sink_(sink) {}
    bool ask(const Need &n) noexcept {
        sink_.answer(n);
        return true;
    }
    [[gnu::always_inline]] void emit(const Action &x) noexcept { sink_.apply(x); }

  private:
    Sink &sink_;
};

template <class Mode>
class Ctx {
  public:
    Ctx(const FlowState &state, const Event &ev, const Facts &fx, Mode &mode) noexcept
        : s(state), ev(ev), fx_(fx), m_(mode) {}

    FlowState s;  // working state: the flow as the actions so far leave it
    const Event &ev;

    // ---- facts (each read is a branch: traced) ----
    // Role, context and peer are read from the working state; once an action of this path has
    // set them the read is no branch on the input, and is not traced.
    bool role_is(Role x) noexcept { return use_state(kRoleBit, Field::kRole, u8(x), s.role == x); }
    bool has_hs() noexcept { return use_state(kHsBit, Field::kHs, 1, s.hs); }
    bool has_peer() noexcept { return use_state(kPeerBit, Field::kPeer, 1, s.peer); }
    bool parked() noexcept { return use(Field::kParked, 1, s.parked); }
    bool in_batch() noexcept { return use(Field::kInBatch, 1, s.in_batch); }

    bool outside() noexcept {
        return use(Field::kArrival, 1, fx_.pkt.arrival == Arrival::kOutside);
    }
    bool is_syn() noexcept { return kind_is(TcpKind::kSyn); }
    bool is_synack() noexcept { return kind_is(TcpKind::kSynAck); }
    bool is_rst() noexcept { return kind_is(TcpKind::kRst); }
    bool syn_flag() noexcept {  // SYN or SYN-ACK
        const TcpKind k = fx_.pkt.kind;
        return use(Field::kKind, 0xfe, k == TcpKind::kSyn || k == TcpKind::kSynAck);
    }
    bool has_exp() noexcept { return use(Field::kOpt, 0xfe, fx_.pkt.opt != TcpOpt::kNoExp); }
    // segwire's option is there (well-formed or not)
    bool opt_present() noexcept {
        const TcpOpt o = fx_.pkt.opt;
        return use(Field::kOpt, 0xfd, o != TcpOpt::kNoExp && o != TcpOpt::kNotOurs);
    }
    bool opt_is(TcpOpt x) noexcept { return use(Field::kOpt, u8(x), fx_.pkt.opt == x); }
    bool token_ok() noexcept {
        return use(Field::kToken, 0xfe, fx_.pkt.token != Token::kMalformed);
    }
    bool token_is(Token x) noexcept { return use(Field::kToken, u8(x), fx_.pkt.token == x); }
    bool is_control() noexcept { return use(Field::kCtl, 0xfe, fx_.pkt.ctl != UdpCtl::kNone); }
    bool ctl_is(UdpCtl x) noexcept { return use(Field::kCtl, u8(x), fx_.pkt.ctl == x); }
    UdpCtl ctl() noexcept {
        note(Field::kCtl, kValue, u8(fx_.pkt.ctl));
        return fx_.pkt.ctl;
    }
    bool mac_ok() noexcept { return use(Field::kMacOk, 1, fx_.pkt.mac_ok); }
    bool nonce_client() noexcept { return use(Field::kNonceClient, 1, fx_.pkt.nonce_client); }
    bool nonce_server() noexcept { return use(Field::kNonceServer, 1, fx_.pkt.nonce_server); }
    bool acks_syn() noexcept { return use(Field::kAcksSyn, 1, fx_.pkt.acks_syn); }
    bool dns_reply() noexcept { return use(Field::kDnsReply, 1, fx_.pkt.dns_reply); }
    bool udp_len8() noexcept { return use(Field::kUdpLen8, 1, fx_.pkt.udp_len8); }
    bool icmp_control() noexcept { return use(Field::kIcmpControl, 1, fx_.pkt.icmp_control); }
    bool nonce_seen() noexcept { return use(Field::kNonceSeen, 1, fx_.pkt.nonce_seen); }
    bool l4_rec_is(L4Rec x) noexcept { return use(Field::kL4Rec, u8(x), fx_.pkt.l4_rec == x); }
    L4Rec l4_rec() noexcept {
        note(Field::kL4Rec, kValue, u8(fx_.pkt.l4_rec));
        return fx_.pkt.l4_rec;
    }
    bool acks_record() noexcept { return use(Field::kAcksRecord, 1, fx_.pkt.acks_record); }
    bool seq_data() noexcept { return use(Field::kSeqData, 1, fx_.pkt.seq_data); }
    bool auto_peer() noexcept { return use(Field::kAutoPeer, 1, fx_.pkt.auto_peer); }
    bool l4_sent() noexcept { return use(Field::kL4Sent, 1, fx_.l4_sent); }
    bool l4_acked() noexcept { return use(Field::kL4Acked, 1, fx_.l4_acked); }

    bool since_send_at_least(uint32_t ms) noexcept {
        return use(Field::kSinceSendMs, u8(ms / 100), fx_.since_send_ms >= ms);
    }
    bool elapsed_at_least(uint32_t ms) noexcept {
        return use(Field::kElapsedMs, u8(ms / 100), fx_.elapsed_ms >= ms);
    }
    uint8_t tries() noexcept {
        note(Field::kTries, kValue, fx_.tries);
        return fx_.tries;
    }
    bool timer_stale() noexcept { return use(Field::kTimerStale, 1, fx_.timer_stale); }
    bool hs_pool() noexcept { return use(Field::kHsPool, 1, fx_.hs_pool); }
    bool reject_with_rst() noexcept { return use(Field::kRejectWithRst, 1, fx_.reject_with_rst); }
    bool synack_mac_ok() noexcept { return use(Field::kSynAckMacOk, 1, fx_.synack_mac_ok); }
    bool batch_accept() noexcept { return use(Field::kBatchAccept, 1, fx_.batch_accept); }
    bool decided_current() noexcept { return use(Field::kDecidedCurrent, 1, fx_.decided_current); }
    bool peer_tags_current() noexcept {
        return use(Field::kPeerTagsCurrent, 1, fx_.peer_tags_current);
    }
    bool retag_pending() noexcept { return use(Field::kRetagPending, 1, fx_.retag_pending); }
    bool acks_seen() noexcept { return use(Field::kAcksSeen, 1, fx_.acks_seen); }
    bool peer_revoked() noexcept { return use(Field::kPeerRevoked, 1, fx_.peer_revoked); }

    // ---- answers (read only after ask() returned true) ----
    const Answers &ans() const noexcept { return fx_.answers; }
    bool classify_pass() noexcept {
        return use(Field::kClassify, 1, ans().classify == ClassifyAnswer::kPass);
    }
    bool managed_tcp() noexcept { return use(Field::kManagedTcp, 1, ans().managed_tcp); }
    bool managed_udp() noexcept { return use(Field::kManagedUdp, 1, ans().managed_udp); }
    bool l4() noexcept { return use(Field::kL4, 1, ans().l4); }
    bool plain_peer() noexcept { return use(Field::kPlainPeer, 1, ans().plain_peer); }
    bool claims_present() noexcept {
        return use(Field::kClaims, 0xfe, ans().claims != ClaimsAnswer::kAbsent);
    }
    bool claims_same() noexcept {
        return use(Field::kClaims, u8(ClaimsAnswer::kSame), ans().claims == ClaimsAnswer::kSame);
    }
    bool local_pu_is(LocalPuAnswer x) noexcept {
        return use(Field::kLocalPu, u8(x), ans().local_pu == x);
    }
    PeerAnswer peer() noexcept {
        note(Field::kPeerAnswer, kValue, u8(ans().peer));
        return ans().peer;
    }
    // Values passed on into actions, not branched on.
    DropReason refusal() noexcept { return ans().refusal; }
    DropReason peer_cut() noexcept { return fx_.peer_cut; }
    DropReason acl_refusal() noexcept { return ans().acl_refusal; }
    DropReason hs_refusal() noexcept { return fx_.hs_refusal; }
    KeyAnswer key() noexcept {
        note(Field::kKey, kValue, u8(ans().key));
        return ans().key;
    }
    bool rules_accept() noexcept { return use(Field::kRulesAccept, 1, ans().rules_accept); }
    bool acl_accept() noexcept { return use(Field::kAclAccept, 1, ans().acl_accept); }
    bool nonce_ok() noexcept { return use(Field::kNonce, 1, ans().nonce); }
    bool confirmation_due() noexcept {
        return use(Field::kConfirmation, 1, ans().confirmation == ConfirmationAnswer::kDue);
    }
    bool edit_ok() noexcept { return use(Field::kEdit, 1, ans().edit == DropReason::None); }
    DropReason edit_failure() const noexcept { return ans().edit; }  // data, not a branch
    bool sent_is(SendAnswer x) noexcept { return use(Field::kSent, u8(x), ans().sent == x); }

    // ---- needs ----
    // True when answered (go on); false when the step must stop here and ask.
    bool ask(const Need &n) noexcept { return m_.ask(n); }

    // ---- actions ----
    [[gnu::always_inline]] void act(Act k, uint8_t a = 0, uint8_t b = 0, uint8_t c = 0) noexcept {
        const Action x{k, a, b, c};
        apply_state(s, x);
        switch (k) {
            case Act::kSetRole:
                set_ |= kRoleBit;
                break;
            case Act::kSetPeer:
                set_ |= kPeerBit;
                break;
            case Act::kAllocHs:
            case Act::kFreeHs:
                set_ |= kHsBit;
                break;
            case Act::kRestart:
                set_ |= kRoleBit | kPeerBit | kHsBit;
                break;
            default:
                break;
        }
        m_.emit(x);
    }
    void count(Counter c) noexcept { act(Act::kCount, u8(c)); }
    void set_auth(Auth a) noexcept { act(Act::kSetAuth, u8(a)); }
    void set_role(Role x) noexcept { act(Act::kSetRole, u8(x)); }
    void record(DropReason why, DecisionFrom d, PeerFrom p) noexcept {
        act(Act::kRecord, u8(why), u8(d), u8(p));
    }
    void forward() noexcept { act(Act::kForward, stripped_ ? 1 : 0); }
    void drop(DropReason why) noexcept { act(Act::kDrop, u8(why)); }
    void hold() noexcept { act(Act::kHold); }
    void consume() noexcept { act(Act::kConsume); }
    void park(Job j, Role role = Role::kNone) noexcept { act(Act::kPark, u8(j), u8(role)); }
    void stripped() noexcept { stripped_ = true; }

    template <class E>
    static constexpr uint8_t u8(E e) noexcept {
        return static_cast<uint8_t>(e);
    }

  private:
    static constexpr uint8_t kRoleBit = 1, kHsBit = 2, kPeerBit = 4;
    bool use_state(uint8_t bit, Field f, uint8_t test, bool v) noexcept {
        return (set_ & bit) ? v : use(f, test, v);
    }
    bool kind_is(TcpKind k) noexcept { return use(Field::kKind, u8(k), fx_.pkt.kind == k); }
    bool use(Field f, uint8_t test, bool v) noexcept {
        if (fx_.trace) note(f, test, static_cast<uint8_t>(v));
        return v;
    }
    void note(Field f, uint8_t test, uint8_t v) noexcept {
        Trace *t = fx_.trace;
        if (!t) return;
        for (uint8_t i = 0; i < t->n; ++i)  // a repeated test adds nothing to the path
            if (t->uses[i].field == f && t->uses[i].test == test) return;
        if (t->n == Trace::kCap) {
            t->overflow = true;
            return;
        }
        t->uses[t->n++] = FactUse{f, test, v};
    }

    const Facts &fx_;
    Mode &m_;
    uint8_t set_ = 0;  // state fields an action of this path has set
    bool stripped_ = false;
};

// ---- needs, spelled out ----
inline Need need(NeedKind k) noexcept {
    Need n;
    n.kind = k;
    return n;
}
inline Need need_claims(PuFrom pu) noexcept {
    Need n = need(NeedKind::kLocalClaims);
    n.pu = pu;
    return n;
}
inline Need need_rules(DirFrom dir, PuFrom pu, PortFrom port, PeerFrom peer) noexcept {
    Need n = need(NeedKind::kRules);
    n.dir = dir, n.pu = pu, n.port = port, n.peer = peer;
    return n;
}
inline Need need_acl(DirFrom dir, PuFrom pu, PortFrom port) noexcept {
    Need n = need(NeedKind::kAcl);
    n.dir = dir, n.pu = pu, n.port = port;
    return n;
}
inline Need need_key(Role role) noexcept {
    Need n = need(NeedKind::kSessionKey);
    n.role = role;
    return n;
}
// The handshake's session key: true when cached (go on). Otherwise the packet is parked for the
// slow path to derive it, or dropped when a derivation for this pair of keys failed within the
// last minute (asking again would only loop between the worker and the slow path).
template <class Ctx>
bool session_key(Ctx &c, Role role) noexcept {
    if (!c.ask(need_key(role))) return false;
    switch (c.key()) {
        case KeyAnswer::kCached:
            return true;
        case KeyAnswer::kFailed:
            c.drop(DropReason::SessionKeyFailed);
            return false;
        default:
            c.park(Job::kSessionKey, role);
            return false;
    }
}
inline Need need_nonce(NonceFor w) noexcept {
    Need n = need(NeedKind::kNonce);
    n.nonce = w;
    return n;
}
inline Need need_edit(Edit e) noexcept {
    Need n = need(NeedKind::kEdit);
    n.edit = e;
    return n;
}
inline Need need_send(UdpMsg m, To to) noexcept {
    Need n = need(NeedKind::kSend);
    n.msg = m, n.to = to;
    return n;
}

// ---- shared paths ----
enum class Proto : uint8_t { kTcp, kUdp, kOther };

// (gates: identity_step's first two tests - a parked flow holds, a flow in the batch defers.
// scrub: segwire's option, and on a SYN or SYN-ACK its token, off a TCP packet for a host; false:
// dropped. reject_tcp: RSTs as configured, flow rejected, held dropped, context freed, packet
// dropped. acl_decision: the peer's address decides. reevaluate: one authorized flow under a new
// snapshot. expire: the flow table removes the flow.)

template <class Ctx>
bool gates(Ctx &c) noexcept {
    if (c.parked()) {  // the slow path has the flow: its packets wait, in order
        c.hold();
        return true;
    }
    if (c.in_batch()) {  // an earlier packet waits for this burst's HMACs: keep the order
        c.act(Act::kDefer);
        return true;
    }
    return false;
}

template <class Ctx>
bool scrub(Ctx &c) noexcept {
    // (The worker tests the SYN flag first; tests without side effects may go in any order, and
    // testing the option type first keeps segments that cannot carry a token on one path.)
    const bool with_token = (c.opt_is(TcpOpt::kSyn) || c.opt_is(TcpOpt::kSynAck)) && c.syn_flag();
    if (with_token && !c.token_ok()) {
        c.drop(DropReason::TokenMalformed);
        return false;
    }
    if (!c.ask(need_edit(with_token ? Edit::kStripWithToken : Edit::kStrip))) return false;
    if (!c.edit_ok()) {
        c.drop(DropReason::TokenMalformed);
        return false;
    }
    c.stripped();
    c.count(Counter::options_scrubbed);
    return true;
}

template <class Ctx>
bool scrub_if_marked(Ctx &c) noexcept {
    if (!c.opt_present()) return true;
    if (c.opt_is(TcpOpt::kMalformed)) {
        c.drop(DropReason::TokenMalformed);
        return false;
    }
    return scrub(c);
}

// A refused TCP segment picked up mid-stream (no SYN seen: a connection authorized by another
// appliance of a scale-out set that failed, or by this one before a restart): both hosts are reset
// at once with the numbers each expects (RFC 5961), so the client reconnects and authorizes anew
// through a full handshake instead of retransmitting into a black hole (docs/scale-out.md).
template <class Ctx>
void reject_midstream(Ctx &c, DropReason why) noexcept {
    c.act(Act::kMidstreamRsts);
    c.set_auth(Auth::kRejected);
    c.count(Counter::rejected);
    c.act(Act::kDropHeld, Ctx::u8(DropReason::FlowRejected));
    c.act(Act::kFreeHs);
    c.drop(why);
}

template <class Ctx>
void reject_tcp(Ctx &c, bool reset_peer_side, DropReason why) noexcept {
    if (c.reject_with_rst()) {
        c.act(Act::kRst, Ctx::u8(To::kInitiator));
        if (reset_peer_side) c.act(Act::kRst, Ctx::u8(To::kResponder));
    }
    c.set_auth(Auth::kRejected);
    c.count(Counter::rejected);
    c.act(Act::kDropHeld, Ctx::u8(DropReason::FlowRejected));
    c.act(Act::kFreeHs);
    c.drop(why);
}

// verified_peer(): true with a verified identity; otherwise the packet was parked, or the claims
// were refused (recorded with their reason, flow rejected with RSTs).
template <class Ctx>
bool verified_peer(Ctx &c, bool reset_peer_side) {
    if (!c.ask(need(NeedKind::kPeer))) return false;
    switch (c.peer()) {
        case PeerAnswer::kVerified:
            return true;
        case PeerAnswer::kMiss:
            c.park(Job::kVerify);
            return false;
        case PeerAnswer::kStale:
            c.park(Job::kRetag);
            return false;
        case PeerAnswer::kRefused:
        case PeerAnswer::kRevoked:
        case PeerAnswer::kCount:
            break;
    }
    const DropReason why =
        c.peer() == PeerAnswer::kRevoked ? DropReason::CertificateRevoked : c.refusal();
    c.record(why, DecisionFrom::kEmpty, PeerFrom::kNone);
    reject_tcp(c, reset_peer_side, why);
    return false;
}

// apply_acl_verdict()
template <class Ctx>
void apply_acl_verdict(Ctx &c, Proto p, bool midstream = false) noexcept {
    c.act(Act::kSetDecidedVersion);
    c.count(Counter::acl_decisions);
    if (c.acl_accept()) {
        c.record(DropReason::None, DecisionFrom::kDecided, PeerFrom::kNone);
        c.set_auth(Auth::kAllowed);
        c.act(Act::kFreeHs);
        c.count(Counter::authorized);
        c.act(Act::kReleaseHeld);
        // A TCP segment from a peer decided by address may still carry segwire's option (a proof
        // for a flow this enforcer forgot): hosts never see it.
        if (p == Proto::kTcp && c.outside() && !scrub_if_marked(c)) return;
        c.forward();
        return;
    }
    const DropReason why = c.acl_refusal();
    c.record(why, DecisionFrom::kDecided, PeerFrom::kNone);
    if (p == Proto::kTcp) {
        // At the client side a SYN-ACK already reached us: the server must forget the connection.
        // (The worker computes this before looking at handshake.reject, and tests the role
        // first; tests without side effects may go in any order, and this order keeps paths that
        // end the same on one path.)
        if (!c.reject_with_rst()) {
            reject_tcp(c, false, why);
            return;
        }
        if (midstream) {
            reject_midstream(c, why);
            return;
        }
        reject_tcp(c, c.is_synack() && c.role_is(Role::kClient), why);
        return;
    }
    c.set_auth(Auth::kRejected);
    c.count(Counter::rejected);
    c.act(Act::kDropHeld, Ctx::u8(why));
    c.act(Act::kFreeHs);
    c.drop(why);
}

template <class Ctx>
void acl_decision(Ctx &c, PuFrom pu, DirFrom dir, PortFrom port, Proto p,
                  bool midstream = false) noexcept {
    c.act(Act::kSetPeer, Ctx::u8(PeerFrom::kNone));
    if (!c.ask(need_acl(dir, pu, port))) return;
    apply_acl_verdict(c, p, midstream);
}

template <class Ctx>
void reevaluate(Ctx &c, Proto p) noexcept {
    // The sweep's own filter: authorized flows not yet decided under this snapshot.
    if (c.s.auth != Auth::kAllowed || c.decided_current()) return;
    if (!c.ask(need(NeedKind::kLocalPu))) return;
    if (!c.local_pu_is(LocalPuAnswer::kFound)) return;  // no PU, or an ignored one
    bool accept;
    DropReason cut = DropReason::PolicyCut;
    if (c.has_peer() && c.peer_revoked()) {
        // The peer's certificate was revoked, or its PU's record no longer binds its claims:
        // cut whatever the rules say.
        cut = c.peer_cut();
        accept = false;
    } else if (c.has_peer()) {  // pinned for the flow's life, whatever its age
        if (!c.peer_tags_current()) {
            // The slow path maps the identity's tags to the new snapshot (one job per identity);
            // the sweep comes back for the flow once the answer is in.
            if (!c.retag_pending()) c.act(Act::kStartRetag);
            c.act(Act::kSweepIncomplete);
            return;
        }
        if (!c.ask(need_rules(DirFrom::kFromSides, PuFrom::kLocal, PortFrom::kResponder,
                              PeerFrom::kFlow)))
            return;
        accept = c.rules_accept();
    } else {
        if (!c.ask(need_acl(DirFrom::kFromSides, PuFrom::kLocal, PortFrom::kResponder))) return;
        accept = c.acl_accept();
    }
    c.act(Act::kSetDecidedVersion);
    if (accept) return;
    // Revoked: cut the connection both ways.
    c.set_auth(Auth::kRejected);
    c.count(Counter::flows_cut);
    c.act(Act::kDropHeld, Ctx::u8(DropReason::PolicyCut));
    c.act(Act::kFreeHs);
    if (p == Proto::kTcp && c.acks_seen()) c.act(Act::kCutRsts);
    // UDP has no RST: the peer's enforcer is told with a RESET, on which it runs a handshake
    // beside its authorization, which this side now refuses with a REJECT echoing its nonce - the
    // one message that ends an authorized UDP flow (docs/handshake.md, UDP).
    if (p == Proto::kUdp && c.has_peer()) c.act(Act::kCutReset);
    c.record(cut, cut == DropReason::PolicyCut ? DecisionFrom::kDecided : DecisionFrom::kEmpty,
             PeerFrom::kFlow);
}

template <class Ctx>
void expire(Ctx &c) noexcept {
    switch (c.s.auth) {
        case Auth::kClientSyn:
        case Auth::kServerSynAck:
        case Auth::kServerSyn:
        case Auth::kClientAck:
        case Auth::kUdpClientSyn:
        case Auth::kUdpServerSynAck:
        case Auth::kL4ClientSyn:
        case Auth::kL4ClientWait:
        case Auth::kL4ClientConfirm:
        case Auth::kL4ServerSyn:
        case Auth::kL4ServerWait:
            c.act(Act::kRecordException);
            break;
        default:
            break;
    }
    c.act(Act::kDropHeld, Ctx::u8(DropReason::HandshakeExpired));
    c.act(Act::kFreeHs);
    c.act(Act::kSetPeer, Ctx::u8(PeerFrom::kNone));
}

// A replayed step (the needs protocol) of the machine whose events `dispatch` handles.
template <class Dispatch>
Result replay_step(const FlowState &state, const Event &ev, const Facts &fx,
                   Dispatch dispatch) noexcept {
    Result r;
    Replay mode(fx, r);
    Ctx<Replay> c(state, ev, fx, mode);
    dispatch(c);
    r.next = c.s;
    return r;
}

// A direct step for the tests: the Oracle takes each action as it is taken and answers each need.
struct OracleSink {
    Oracle &o;
    Facts &fx;
    void apply(const Action &a) noexcept { o.take(&a, 1); }
    void answer(const Need &n) noexcept {
        o.answer(n);
        fx.answers.mark(n.kind);
    }
};
template <class Dispatch>
FlowState oracle_step(const FlowState &state, const Event &ev, Facts &fx, Oracle &o,
                      Dispatch dispatch) noexcept {
    OracleSink sink{o, fx};
    Direct<OracleSink> mode(sink);
    Ctx<Direct<OracleSink>> c(state, ev, fx, mode);
    dispatch(c);
    return c.s;
}

}  // namespace segwire::dp::identity::detail
