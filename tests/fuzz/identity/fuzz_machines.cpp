// libFuzzer target for the identity machines (dataplane/identity): a random sequence of events on
// one flow - packets from either side with random options, tokens, control messages and MACs,
// slow-path answers, HMAC batches, timers, clock steps, policy sweeps, port reuse, expiry - run
// through a model adapter that answers every need from the input and applies every action the
// way the worker does (hold queue, parking, deferral, timer). Invariants; a violation traps:
//
//  1. Nothing is released before authorization: ReleaseHeld only on an authorized flow; a data
//     packet from the peer reaches the local host only on an authorized flow (Allowed, Pass, or
//     ClientAck: A's rules accepted a SYN-ACK whose MAC it verified); the local PU's datagrams
//     leave a UDP flow only when it is authorized.
//  2. Every packet gets exactly one fate, and every held packet gets exactly one at last (the
//     flow's expiry at the end of the input drops what is still held).
//  3. A flow reaches Allowed only with a verified peer and a MAC verified in that event, or an
//     ACL decision that accepted, or (client side) from ClientAck - its SYN-ACK's MAC verified -
//     when A stops waiting for B's confirmation.
//  4. Nothing forwarded to a host carries segwire's option or token - except where the current
//     code lets it through (kLeaks below, listed in docs/identity-machines.md): those are counted,
//     not trapped, and any other leak traps.
//  5. The needs protocol holds: one fate per packet event, none for the others, at most 16 steps,
//     no need asked twice, no action-list overflow, Result::next = the actions applied.
//  6. A TCP server is remembered as having no enforcer only from a SYN-ACK that acknowledges the
//     SYN (PacketFacts::acks_syn): a blind forgery must not teach it.
//  7. A flow is removed (RemoveFlow) only by a TCP flow's half-open deadline, a timer event in
//     ClientSyn, ServerSyn or ServerSynAck: never an authorized flow. Its held packets get their
//     fate first (invariant 2); the model then forgets the flow.
//  8. No peer identity is pinned from a replayed SYN (a TCP SYN token or UDP SYN datagram from
//     outside whose client nonce opened another flow, PacketFacts::nonce_seen; the model sets the
//     fact only where the adapter can).
//
// Input: byte 0 picks the machine (TCP, UDP, plain), byte 1 is the configuration (bit 0: reject
// by drop, bit 1: no free handshake context, bit 2: for want of the source's share), byte 2 the
// length N of the operation stream; the next N bytes are operations (an opcode byte and its
// operands), everything after them is the answer stream: each need, each slow-path hand-off and
// each HMAC batch takes the next answer byte, and 0 (also when the stream is used up) is always the
// successful answer. So a seed is a list of operations plus the answers that deviate, in the order
// the needs come (tests/fuzz/identity/gen_corpus.py).
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "dataplane/identity/machine.hpp"
#include "dataplane/identity/plain_machine.hpp"
#include "dataplane/identity/tcp_machine.hpp"
#include "dataplane/identity/udp_machine.hpp"

using namespace segwire::dp;
using namespace segwire::dp::identity;

namespace {

[[noreturn]] void fail(const char *what) {
    std::fprintf(stderr, "identity machine invariant violated: %s\n", what);
    __builtin_trap();
}
#define CHECK(cond, what)        \
    do {                         \
        if (!(cond)) fail(what); \
    } while (0)

struct Input {
    const uint8_t *p;
    size_t n;
    bool more() const { return n > 0; }
    // 0 when the input is used up.
    uint8_t byte() {
        if (!n) return 0;
        --n;
        return *p++;
    }
};

using StepFn = Result (*)(const FlowState &, const Event &, const Facts &) noexcept;

enum class Proto : uint8_t { kTcp, kUdp, kPlain };

// The documented ways segwire's option still reaches a host (invariant 4's exceptions).
enum Leak : uint8_t {
    kLeakPass,           // a flow that is not ours: untouched by design
    kLeakRst,            // an RST from outside in ClientSyn / ClientAck is forwarded unchecked
    kLeakAclDecision,    // the packet that gets a new flow decided by the ACL is not scrubbed
    kLeakServerSynHeld,  // held while in ServerSyn (not checked), released at authorization
    kLeakCount
};
uint64_t g_leaks[kLeakCount];
// SEGWIRE_FUZZ_TRACE=1 (replay): one line per event, to check what a seed walks through.
const bool g_trace = std::getenv("SEGWIRE_FUZZ_TRACE") != nullptr;

struct Packet {
    PacketFacts pf;
    bool done = false;  // has its fate
    Auth held_in = Auth::kNew;
};

constexpr int kMaxPackets = 256;
constexpr int kHoldPerFlow = 16;

struct Model {
    Proto proto;
    StepFn step;
    FlowState st;
    bool reject_with_rst = true;
    bool hs_pool = true;
    DropReason hs_refusal = DropReason::SlowpathBusy;
    bool removed = false;  // the last event removed the flow (RemoveFlow)
    Packet pkts[kMaxPackets];
    int npkts = 0;
    int hold[kHoldPerFlow];
    int nhold = 0;
    int deferred[kMaxPackets];
    int ndeferred = 0;
    int batch_pkt = -1;  // the packet a QueueMacs fate took
    BatchOp batch_op = BatchOp::kClientCheckSynAck;
    bool armed = false;
    uint8_t tries = 0;
    uint32_t now_ms = 0, armed_ms = 0, sent_ms = 0;
    Input ops, ans;
};

bool is_data(const Model &m, const PacketFacts &pf) {
    if (m.proto == Proto::kTcp) return pf.kind == TcpKind::kOther;
    if (m.proto == Proto::kUdp) return pf.ctl == UdpCtl::kNone;
    return true;
}

bool carries_option(const Model &m, const PacketFacts &pf) {
    return m.proto == Proto::kTcp && pf.opt != TcpOpt::kNoExp && pf.opt != TcpOpt::kNotOurs;
}

void finish(Model &m, int id) {
    CHECK(!m.pkts[id].done, "a packet got two fates");
    m.pkts[id].done = true;
}

// A packet (by id) leaves toward the other port. `auth`: the flow's state at that moment.
void forwarded(Model &m, int id, Auth auth, bool stripped, Auth before, bool acl_decided,
               bool released) {
    const Packet &p = m.pkts[id];
    const bool from_outside = p.pf.arrival == Arrival::kOutside;
    if (is_data(m, p.pf)) {
        if (from_outside) {
            const bool authorized = auth == Auth::kAllowed || auth == Auth::kPass ||
                                    (m.proto == Proto::kTcp && auth == Auth::kClientAck);
            CHECK(authorized, "peer data released to the host before authorization");
        } else if (m.proto == Proto::kUdp) {
            CHECK(auth == Auth::kAllowed || auth == Auth::kPass,
                  "the PU's datagram released before authorization");
        } else if (m.proto == Proto::kTcp) {
            CHECK(auth != Auth::kClientSyn && auth != Auth::kNew && auth != Auth::kRejected,
                  "the PU's segment released before the SYN-ACK was verified");
        }
    }
    if (from_outside && carries_option(m, p.pf) && !stripped) {
        if (released && p.held_in == Auth::kServerSyn)
            ++g_leaks[kLeakServerSynHeld];
        else if (!released && auth == Auth::kPass)
            ++g_leaks[kLeakPass];
        else if (!released && p.pf.kind == TcpKind::kRst &&
                 (before == Auth::kClientSyn || before == Auth::kClientAck))
            ++g_leaks[kLeakRst];
        else if (!released && before == Auth::kNew && acl_decided)
            ++g_leaks[kLeakAclDecision];
        else
            fail("segwire's option forwarded to a host");
    }
    finish(m, id);
}

void hold_packet(Model &m, int id) {
    if (m.nhold == kHoldPerFlow) {  // hold-full: dropped
        finish(m, id);
        return;
    }
    m.pkts[id].held_in = m.st.auth;
    m.hold[m.nhold++] = id;
}

void drop_held(Model &m) {
    for (int i = 0; i < m.nhold; ++i) finish(m, m.hold[i]);
    m.nhold = 0;
}

// The answer to a need: the next answer byte, 0 (and a used-up stream) meaning success.
void answer(Model &m, const Need &n, Facts &fx) {
    Answers &a = fx.answers;
    const uint8_t b = m.ans.byte();
    static constexpr ClaimsAnswer kClaims[3] = {ClaimsAnswer::kSame, ClaimsAnswer::kPresent,
                                                ClaimsAnswer::kAbsent};
    static constexpr LocalPuAnswer kPu[3] = {LocalPuAnswer::kFound, LocalPuAnswer::kNone,
                                             LocalPuAnswer::kIgnored};
    static constexpr PeerAnswer kPeer[5] = {PeerAnswer::kVerified, PeerAnswer::kMiss,
                                            PeerAnswer::kStale, PeerAnswer::kRefused,
                                            PeerAnswer::kRevoked};
    static constexpr ConfirmationAnswer kConf[3] = {
        ConfirmationAnswer::kDue, ConfirmationAnswer::kRecent, ConfirmationAnswer::kNone};
    static constexpr DropReason kEdit[4] = {DropReason::None, DropReason::OptionSpace,
                                            DropReason::MtuExceeded, DropReason::TokenMalformed};
    switch (n.kind) {
        case NeedKind::kClassify:
            a.classify = (b & 1) ? ClassifyAnswer::kPass : ClassifyAnswer::kOurs;
            a.managed_tcp = !(b & 2);
            a.managed_udp = !(b & 4);
            break;
        case NeedKind::kPlainPeer:
            a.plain_peer = b & 1;
            break;
        case NeedKind::kLocalClaims:
            a.claims = kClaims[b % 3];
            break;
        case NeedKind::kLocalPu:
            a.local_pu = kPu[b % 3];
            break;
        case NeedKind::kPeer:
            a.peer = kPeer[b % 5];
            break;
        case NeedKind::kSessionKey:
            a.key = KeyAnswer(b % 3);
            break;
        case NeedKind::kRules:
            a.rules_accept = !(b & 1);
            break;
        case NeedKind::kAcl:
            a.acl_accept = !(b & 1);
            break;
        case NeedKind::kNonce:
            a.nonce = !(b & 1);
            break;
        case NeedKind::kConfirmation:
            a.confirmation = kConf[b % 3];
            break;
        case NeedKind::kEdit:
            a.edit = kEdit[b % 4];
            break;
        case NeedKind::kSend:
            a.sent = SendAnswer(b % 3);
            if (a.sent == SendAnswer::kSent) m.sent_ms = m.now_ms;  // kept: its send time
            break;
        case NeedKind::kNone:
        case NeedKind::kCount:
            break;
    }
    a.mark(n.kind);
}

void run_packet(Model &m, int id);

// One event to completion, as the adapter runs it; `pkt` is the packet of a packet or batch event.
void run_event(Model &m, const Event &ev, Facts fx, int pkt) {
    const FlowState start = m.st;
    FlowState model = start;
    fx.answers = Answers{};
    fx.answers.known = 0;
    int fates = 0;
    for (int steps = 0;; ++steps) {
        CHECK(steps <= 16, "more than 16 steps");
        const Result r = m.step(start, ev, fx);
        CHECK(!r.overflow, "action list overflow");
        for (uint8_t i = 0; i < r.n; ++i) {
            const Action &a = r.actions[i];
            const Auth before_action = model.auth;
            apply_state(model, a);
            m.st.auth = model.auth, m.st.role = model.role, m.st.hs = model.hs;
            m.st.peer = model.peer;
            switch (a.kind) {
                case Act::kSetAuth:
                    if (Auth(a.a) == Auth::kAllowed) {
                        const bool acl = fx.answers.has(NeedKind::kAcl) && fx.answers.acl_accept;
                        const bool mac =
                            model.peer && ((ev.kind == EventKind::kMacsReady && fx.synack_mac_ok) ||
                                           (ev.kind == EventKind::kPacket && fx.pkt.mac_ok));
                        // A client that verified the SYN-ACK (ClientAck) and stops waiting for
                        // B's confirmation at its timer (tcp_impl.hpp kConfirmWaitMs).
                        const bool gave_up = model.peer && before_action == Auth::kClientAck &&
                                             ev.kind == EventKind::kTimer;
                        CHECK(acl || mac || gave_up,
                              "Allowed without a verified peer or an ACL accept");
                    }
                    break;
                case Act::kFreeHs:
                    m.armed = false;  // free_hs disarms
                    break;
                case Act::kAllocHs:
                    m.armed = false, m.tries = 0;
                    break;
                case Act::kArmTimer:
                    m.armed = true, m.tries = 0, m.armed_ms = m.now_ms;
                    break;
                case Act::kDisarm:
                    m.armed = false;
                    break;
                case Act::kIncTries:
                    ++m.tries;
                    break;
                case Act::kResend:
                    m.sent_ms = m.now_ms;
                    break;
                case Act::kSendUdp:
                    if (a.c & kKeep) m.sent_ms = m.now_ms;
                    break;
                case Act::kReleaseHeld: {
                    CHECK(model.auth == Auth::kAllowed,
                          "held packets released before authorization");
                    const int n = m.nhold;
                    m.nhold = 0;
                    for (int k = 0; k < n; ++k)
                        forwarded(m, m.hold[k], model.auth, false, before_action, false, true);
                    break;
                }
                case Act::kDropHeld:
                    drop_held(m);
                    break;
                case Act::kRestart:
                    drop_held(m);
                    m.armed = false;  // restart_flow frees the context
                    break;
                // fates
                case Act::kForward:
                    ++fates;
                    forwarded(m, pkt, model.auth, a.a != 0, start.auth,
                              fx.answers.has(NeedKind::kAcl), false);
                    break;
                case Act::kDrop:
                case Act::kConsume:
                case Act::kSnoopDns:
                    ++fates;
                    finish(m, pkt);
                    break;
                case Act::kHold:
                    ++fates;
                    hold_packet(m, pkt);
                    break;
                case Act::kPark: {
                    ++fates;
                    // The slow path's resources: no job or a full ring drops the packet.
                    if (m.ans.byte() % 4 == 3) {
                        finish(m, pkt);
                        break;
                    }
                    if (m.nhold == kHoldPerFlow) {
                        finish(m, pkt);
                        break;
                    }
                    hold_packet(m, pkt);
                    m.st.parked = true;
                    break;
                }
                case Act::kDefer:
                    ++fates;
                    CHECK(m.st.in_batch, "deferred without a batch");
                    m.deferred[m.ndeferred++] = pkt;
                    break;
                case Act::kSetPeer:
                    CHECK(!(PeerFrom(a.a) == PeerFrom::kLooked && ev.kind == EventKind::kPacket &&
                            fx.pkt.nonce_seen),
                          "a peer pinned from a replayed SYN");
                    break;
                case Act::kRemoveFlow:
                    CHECK(m.proto == Proto::kTcp && ev.kind == EventKind::kTimer &&
                              (start.auth == Auth::kClientSyn || start.auth == Auth::kServerSyn ||
                               start.auth == Auth::kServerSynAck),
                          "a flow removed other than by its half-open deadline");
                    m.removed = true;
                    break;
                case Act::kRememberPlainPeer:
                    if (m.proto == Proto::kTcp)
                        CHECK(ev.kind == EventKind::kPacket && fx.pkt.kind == TcpKind::kSynAck &&
                                  fx.pkt.acks_syn,
                              "a plain server remembered from a SYN-ACK that does not ack the SYN");
                    break;
                case Act::kQueueMacs:
                    ++fates;
                    CHECK(m.batch_pkt < 0, "two batch ops for one flow");
                    m.batch_pkt = pkt;
                    m.batch_op = BatchOp(a.a);
                    m.st.in_batch = true;
                    break;
                default:
                    break;
            }
        }
        if (r.need.kind == NeedKind::kNone) {
            CHECK(std::memcmp(&r.next, &model, sizeof model) == 0, "Result::next differs");
            break;
        }
        CHECK(!fx.answers.has(r.need.kind), "a need asked twice");
        answer(m, r.need, fx);
    }
    const bool packet_event = ev.kind == EventKind::kPacket || ev.kind == EventKind::kMacsReady;
    CHECK(fates == (packet_event ? 1 : 0), "not exactly one fate");
    if (g_trace)
        std::fprintf(stderr, "  %-6s %-15s -> %-15s held %d%s%s\n", name(ev.kind), name(start.auth),
                     name(m.st.auth), m.nhold, m.st.parked ? " parked" : "",
                     m.st.in_batch ? " in-batch" : "");
}

Facts packet_facts(const Model &m, const PacketFacts &pf) {
    Facts fx;
    fx.pkt = pf;
    if (!m.st.hs) {  // the adapter compares with the context; without one nothing matches
        fx.pkt.mac_ok = fx.pkt.nonce_client = fx.pkt.nonce_server = false;
    }
    fx.since_send_ms = m.now_ms - m.sent_ms;
    fx.reject_with_rst = m.reject_with_rst;
    fx.hs_pool = m.hs_pool;
    fx.hs_refusal = m.hs_refusal;
    return fx;
}

void run_packet(Model &m, int id) {
    Facts fx = packet_facts(m, m.pkts[id].pf);
    run_event(m, Event{EventKind::kPacket, BatchOp::kClientCheckSynAck}, fx, id);
}

// finish_batch(): the op's packet, then the packets that waited behind it, in order.
void finish_batch(Model &m) {
    if (m.batch_pkt < 0) return;
    const int id = m.batch_pkt;
    m.batch_pkt = -1;
    m.st.in_batch = false;
    Facts fx = packet_facts(m, m.pkts[id].pf);
    const uint8_t b = m.ans.byte();
    fx.synack_mac_ok = !(b & 1);
    fx.batch_accept = !(b & 2);
    run_event(m, Event{EventKind::kMacsReady, m.batch_op}, fx, id);
    const int n = m.ndeferred;
    int later[kMaxPackets];
    std::memcpy(later, m.deferred, sizeof(int) * n);
    m.ndeferred = 0;
    for (int i = 0; i < n; ++i) run_packet(m, later[i]);
    finish_batch(m);  // a deferred packet may have queued the next op
}

// poll_slowpath(): the answer is in; the held packets run again, in order.
void slow_answer(Model &m) {
    if (!m.st.parked) return;
    m.st.parked = false;
    int again[kHoldPerFlow];
    const int n = m.nhold;
    std::memcpy(again, m.hold, sizeof(int) * n);
    m.nhold = 0;
    for (int i = 0; i < n; ++i) run_packet(m, again[i]);
    finish_batch(m);
}

int new_packet(Model &m) {
    if (m.npkts == kMaxPackets) return -1;
    const uint8_t b1 = m.ops.byte(), b2 = m.ops.byte(), b3 = m.ops.byte();
    PacketFacts pf;
    pf.arrival = Arrival(b1 & 1);
    pf.kind = TcpKind((b1 >> 1) & 3);
    pf.opt = TcpOpt(((b1 >> 3) & 7) % uint8_t(TcpOpt::kCount));
    pf.token = Token((b2 & 3) % 3);
    pf.ctl = UdpCtl(((b2 >> 2) & 7) % uint8_t(UdpCtl::kCount));
    pf.mac_ok = b2 & 0x20, pf.nonce_client = b2 & 0x40, pf.nonce_server = b2 & 0x80;
    pf.dns_reply = b3 & 1;
    pf.udp_len8 = pf.ctl != UdpCtl::kNone || (b3 & 2);
    pf.icmp_control = b3 & 4;
    pf.acks_syn = b3 & 8;
    pf.nonce_seen = b3 & 16;  // set below only where the adapter can set it
    if (m.proto != Proto::kTcp)
        pf.kind = TcpKind::kOther, pf.opt = TcpOpt::kNoExp, pf.acks_syn = false;
    if (m.proto != Proto::kUdp) pf.ctl = UdpCtl::kNone, pf.udp_len8 = false;
    // The adapter looks a nonce up only in a SYN token from outside (tcp_parse, udp_parse).
    const bool syn_token =
        m.proto == Proto::kTcp ? pf.token == Token::kSyn : pf.ctl == UdpCtl::kSyn;
    if (!syn_token || pf.arrival != Arrival::kOutside) pf.nonce_seen = false;
    const int id = m.npkts++;
    m.pkts[id] = Packet{};
    m.pkts[id].pf = pf;
    return id;
}

void expire(Model &m) {
    finish_batch(m);
    Facts fx;
    run_event(m, Event{EventKind::kExpire, BatchOp::kClientCheckSynAck}, fx, -1);
    // The flow is gone: the next packet makes a new one.
    m.st = FlowState{};
    m.armed = false;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static Model m;  // large: not on the stack
    m = Model{};
    Input in{data, size};
    const uint8_t which = in.byte() % 3;
    m.proto = Proto(which);
    m.step = which == 0 ? tcp::step : which == 1 ? udp::step : plain::step;
    const uint8_t cfg = in.byte();
    const size_t nops = std::min<size_t>(in.byte(), in.n);
    m.ops = Input{in.p, nops};
    m.ans = Input{in.p + nops, in.n - nops};
    m.reject_with_rst = !(cfg & 1);
    m.hs_pool = !(cfg & 2);
    m.hs_refusal = (cfg & 4) ? DropReason::SourceShare : DropReason::SlowpathBusy;

    while (m.ops.more()) {
        const uint8_t op = m.ops.byte();
        // Nothing else runs between a burst's packets and its HMAC batch.
        if (m.batch_pkt >= 0 && (op & 7) != 0) finish_batch(m);
        switch (op & 7) {
            case 0: {
                const int id = new_packet(m);
                if (id >= 0) run_packet(m, id);
                break;
            }
            case 1:
                m.now_ms += uint32_t(m.ops.byte()) * 10u;
                break;
            case 2:  // housekeeping reaches the armed context (UDP waits, TCP half-open deadline)
                if (m.proto != Proto::kPlain && (m.armed || (op & 8))) {
                    Facts fx;
                    fx.elapsed_ms = m.now_ms - m.armed_ms;
                    fx.tries = m.tries;
                    fx.timer_stale = !m.armed;
                    run_event(m, Event{EventKind::kTimer, BatchOp::kClientCheckSynAck}, fx, -1);
                    if (m.removed) {  // the flow is gone: the next packet makes a new one
                        m.st = FlowState{};
                        m.armed = false;
                        m.removed = false;
                    }
                }
                break;
            case 3: {
                Facts fx;
                const uint8_t b = m.ops.byte();
                fx.decided_current = b & 1, fx.peer_tags_current = !(b & 2);
                fx.retag_pending = b & 4, fx.acks_seen = b & 8;
                fx.peer_revoked = b & 16;
                run_event(m, Event{EventKind::kReevaluate, BatchOp::kClientCheckSynAck}, fx, -1);
                break;
            }
            case 4:
                slow_answer(m);
                break;
            case 5:
                finish_batch(m);
                break;
            case 6:
                if (m.proto == Proto::kTcp) {
                    Facts fx;
                    run_event(m, Event{EventKind::kPortsReused, BatchOp::kClientCheckSynAck}, fx,
                              -1);
                }
                break;
            case 7:
                expire(m);
                break;
        }
    }
    expire(m);
    for (int i = 0; i < m.npkts; ++i) CHECK(m.pkts[i].done, "a held packet never got a fate");
    return 0;
}
