// Test kit for the identity machines (dataplane/identity): a model adapter that runs one event to
// completion (answering every need from the row's facts), a one-line text form for facts and for
// outcomes, and a path explorer that finds every branch path of a machine.
//
// A row of a table is four strings:
//   {"ClientSyn", "pkt", "arrival=out kind=synack opt=noexp acl=1",
//    "Allowed: TrackSeq RememberPlainPeer(source) FreeHs SetPeer(none)
//    ?acl(out,handshake,responder) ..."}
// state (the Auth), event ("pkt", "macs:client", "macs:server", "timer", "reeval", "expire",
// "reused"), the facts the path reads (every other fact keeps its default, below), and the
// expected outcome: the state after the event, then every action and every need (written ?need(..))
// in the order the machine produced them.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstdio>
#include <cstring>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "dataplane/identity/machine.hpp"
#include "dataplane/identity/plain_machine.hpp"
#include "dataplane/identity/tcp_machine.hpp"
#include "dataplane/identity/udp_machine.hpp"

namespace segwire::dp::identity::test {

using StepFn = Result (*)(const FlowState &, const Event &, const Facts &) noexcept;

// Everything a step can read: the flow state and the facts.
struct Assign {
    FlowState st;
    Facts fx;
};

// ---------------------------------------------------------------------------------------------
// fields: names, value names, domains

struct FieldInfo {
    std::vector<std::string> names;  // value names, index = domain position
    std::vector<uint32_t> values;    // the raw value of each domain position
};

inline const FieldInfo &field_info(Field f) {
    static const std::map<Field, FieldInfo> m = [] {
        std::map<Field, FieldInfo> x;
        const FieldInfo b{{"0", "1"}, {0, 1}};
        for (Field f : {Field::kHs,
                        Field::kPeer,
                        Field::kParked,
                        Field::kInBatch,
                        Field::kMacOk,
                        Field::kNonceClient,
                        Field::kNonceServer,
                        Field::kAcksSyn,
                        Field::kDnsReply,
                        Field::kUdpLen8,
                        Field::kIcmpControl,
                        Field::kNonceSeen,
                        Field::kAcksRecord,
                        Field::kSeqData,
                        Field::kAutoPeer,
                        Field::kL4Sent,
                        Field::kL4Acked,
                        Field::kL4,
                        Field::kTimerStale,
                        Field::kHsPool,
                        Field::kRejectWithRst,
                        Field::kSynAckMacOk,
                        Field::kBatchAccept,
                        Field::kDecidedCurrent,
                        Field::kPeerTagsCurrent,
                        Field::kRetagPending,
                        Field::kAcksSeen,
                        Field::kPeerRevoked,
                        Field::kManagedTcp,
                        Field::kManagedUdp,
                        Field::kPlainPeer,
                        Field::kRulesAccept,
                        Field::kAclAccept,
                        Field::kNonce})
            x[f] = b;
        x[Field::kRole] = {{"none", "client", "server"}, {0, 1, 2}};
        x[Field::kArrival] = {{"in", "out"}, {0, 1}};
        x[Field::kKind] = {{"syn", "synack", "rst", "other"}, {0, 1, 2, 3}};
        x[Field::kOpt] = {{"noexp", "notours", "malformed", "syn", "synack", "ack", "confirm"},
                          {0, 1, 2, 3, 4, 5, 6}};
        x[Field::kToken] = {{"malformed", "syn", "synack"}, {0, 1, 2}};
        x[Field::kCtl] = {{"none", "malformed", "syn", "synack", "ack", "reject", "reset"},
                          {0, 1, 2, 3, 4, 5, 6}};
        x[Field::kSinceSendMs] = {
            {"0", "199", "200", "399", "400", "499", "500", "799", "800", "999", "1000", "1599",
             "1600", "3199", "3200"},
            {0, 199, 200, 399, 400, 499, 500, 799, 800, 999, 1000, 1599, 1600, 3199, 3200}};
        x[Field::kL4Rec] = {
            {"none", "partial", "r1", "r2", "r3", "old", "beyond", "notrecord", "bad"},
            {0, 1, 2, 3, 4, 5, 6, 7, 8}};
        x[Field::kElapsedMs] = {
            {"0", "199", "200", "399", "400", "799", "800", "1399", "1400", "2999", "3000", "4999",
             "5000", "19999", "20000"},
            {0, 199, 200, 399, 400, 799, 800, 1399, 1400, 2999, 3000, 4999, 5000, 19999, 20000}};
        x[Field::kTries] = {{"0", "1", "2", "3"}, {0, 1, 2, 3}};
        x[Field::kClassify] = {{"pass", "ours"}, {0, 1}};
        x[Field::kClaims] = {{"absent", "present", "same"}, {0, 1, 2}};
        x[Field::kLocalPu] = {{"none", "ignored", "found"}, {0, 1, 2}};
        x[Field::kPeerAnswer] = {{"verified", "refused", "miss", "stale", "revoked"},
                                 {0, 1, 2, 3, 4}};
        x[Field::kConfirmation] = {{"none", "recent", "due"}, {0, 1, 2}};
        x[Field::kEdit] = {
            {"ok", "option-space", "mtu-exceeded", "token-malformed"},
            {uint32_t(DropReason::None), uint32_t(DropReason::OptionSpace),
             uint32_t(DropReason::MtuExceeded), uint32_t(DropReason::TokenMalformed)}};
        x[Field::kSent] = {{"sent", "notoken", "nombuf"}, {0, 1, 2}};
        x[Field::kKey] = {{"missing", "cached", "failed"}, {0, 1, 2}};
        return x;
    }();
    return m.at(f);
}

inline uint32_t get(const Assign &a, Field f) {
    const Facts &x = a.fx;
    const Answers &n = x.answers;
    switch (f) {
        case Field::kRole:
            return uint32_t(a.st.role);
        case Field::kHs:
            return a.st.hs;
        case Field::kPeer:
            return a.st.peer;
        case Field::kParked:
            return a.st.parked;
        case Field::kInBatch:
            return a.st.in_batch;
        case Field::kArrival:
            return uint32_t(x.pkt.arrival);
        case Field::kKind:
            return uint32_t(x.pkt.kind);
        case Field::kOpt:
            return uint32_t(x.pkt.opt);
        case Field::kToken:
            return uint32_t(x.pkt.token);
        case Field::kCtl:
            return uint32_t(x.pkt.ctl);
        case Field::kMacOk:
            return x.pkt.mac_ok;
        case Field::kNonceClient:
            return x.pkt.nonce_client;
        case Field::kNonceServer:
            return x.pkt.nonce_server;
        case Field::kAcksSyn:
            return x.pkt.acks_syn;
        case Field::kDnsReply:
            return x.pkt.dns_reply;
        case Field::kUdpLen8:
            return x.pkt.udp_len8;
        case Field::kIcmpControl:
            return x.pkt.icmp_control;
        case Field::kNonceSeen:
            return x.pkt.nonce_seen;
        case Field::kL4Rec:
            return uint32_t(x.pkt.l4_rec);
        case Field::kAcksRecord:
            return x.pkt.acks_record;
        case Field::kSeqData:
            return x.pkt.seq_data;
        case Field::kAutoPeer:
            return x.pkt.auto_peer;
        case Field::kL4Sent:
            return x.l4_sent;
        case Field::kL4Acked:
            return x.l4_acked;
        case Field::kL4:
            return n.l4;
        case Field::kSinceSendMs:
            return x.since_send_ms;
        case Field::kElapsedMs:
            return x.elapsed_ms;
        case Field::kTries:
            return x.tries;
        case Field::kTimerStale:
            return x.timer_stale;
        case Field::kHsPool:
            return x.hs_pool;
        case Field::kRejectWithRst:
            return x.reject_with_rst;
        case Field::kSynAckMacOk:
            return x.synack_mac_ok;
        case Field::kBatchAccept:
            return x.batch_accept;
        case Field::kDecidedCurrent:
            return x.decided_current;
        case Field::kPeerTagsCurrent:
            return x.peer_tags_current;
        case Field::kRetagPending:
            return x.retag_pending;
        case Field::kAcksSeen:
            return x.acks_seen;
        case Field::kPeerRevoked:
            return x.peer_revoked;
        case Field::kClassify:
            return uint32_t(n.classify);
        case Field::kManagedTcp:
            return n.managed_tcp;
        case Field::kManagedUdp:
            return n.managed_udp;
        case Field::kPlainPeer:
            return n.plain_peer;
        case Field::kClaims:
            return uint32_t(n.claims);
        case Field::kLocalPu:
            return uint32_t(n.local_pu);
        case Field::kPeerAnswer:
            return uint32_t(n.peer);
        case Field::kKey:
            return uint32_t(n.key);
        case Field::kRulesAccept:
            return n.rules_accept;
        case Field::kAclAccept:
            return n.acl_accept;
        case Field::kNonce:
            return n.nonce;
        case Field::kConfirmation:
            return uint32_t(n.confirmation);
        case Field::kEdit:
            return uint32_t(n.edit);
        case Field::kSent:
            return uint32_t(n.sent);
        case Field::kCount:
            break;
    }
    return 0;
}

inline void set(Assign &a, Field f, uint32_t v) {
    Facts &x = a.fx;
    Answers &n = x.answers;
    switch (f) {
        case Field::kRole:
            a.st.role = Role(v);
            return;
        case Field::kHs:
            a.st.hs = v;
            return;
        case Field::kPeer:
            a.st.peer = v;
            return;
        case Field::kParked:
            a.st.parked = v;
            return;
        case Field::kInBatch:
            a.st.in_batch = v;
            return;
        case Field::kArrival:
            x.pkt.arrival = Arrival(v);
            return;
        case Field::kKind:
            x.pkt.kind = TcpKind(v);
            return;
        case Field::kOpt:
            x.pkt.opt = TcpOpt(v);
            return;
        case Field::kToken:
            x.pkt.token = Token(v);
            return;
        case Field::kCtl:
            x.pkt.ctl = UdpCtl(v);
            return;
        case Field::kMacOk:
            x.pkt.mac_ok = v;
            return;
        case Field::kNonceClient:
            x.pkt.nonce_client = v;
            return;
        case Field::kNonceServer:
            x.pkt.nonce_server = v;
            return;
        case Field::kAcksSyn:
            x.pkt.acks_syn = v;
            return;
        case Field::kDnsReply:
            x.pkt.dns_reply = v;
            return;
        case Field::kUdpLen8:
            x.pkt.udp_len8 = v;
            return;
        case Field::kIcmpControl:
            x.pkt.icmp_control = v;
            return;
        case Field::kNonceSeen:
            x.pkt.nonce_seen = v;
            return;
        case Field::kL4Rec:
            x.pkt.l4_rec = L4Rec(v);
            return;
        case Field::kAcksRecord:
            x.pkt.acks_record = v;
            return;
        case Field::kSeqData:
            x.pkt.seq_data = v;
            return;
        case Field::kAutoPeer:
            x.pkt.auto_peer = v;
            return;
        case Field::kL4Sent:
            x.l4_sent = v;
            return;
        case Field::kL4Acked:
            x.l4_acked = v;
            return;
        case Field::kL4:
            n.l4 = v;
            return;
        case Field::kSinceSendMs:
            x.since_send_ms = v;
            return;
        case Field::kElapsedMs:
            x.elapsed_ms = v;
            return;
        case Field::kTries:
            x.tries = uint8_t(v);
            return;
        case Field::kTimerStale:
            x.timer_stale = v;
            return;
        case Field::kHsPool:
            x.hs_pool = v;
            return;
        case Field::kRejectWithRst:
            x.reject_with_rst = v;
            return;
        case Field::kSynAckMacOk:
            x.synack_mac_ok = v;
            return;
        case Field::kBatchAccept:
            x.batch_accept = v;
            return;
        case Field::kDecidedCurrent:
            x.decided_current = v;
            return;
        case Field::kPeerTagsCurrent:
            x.peer_tags_current = v;
            return;
        case Field::kRetagPending:
            x.retag_pending = v;
            return;
        case Field::kAcksSeen:
            x.acks_seen = v;
            return;
        case Field::kPeerRevoked:
            x.peer_revoked = v;
            return;
        case Field::kClassify:
            n.classify = ClassifyAnswer(v);
            return;
        case Field::kManagedTcp:
            n.managed_tcp = v;
            return;
        case Field::kManagedUdp:
            n.managed_udp = v;
            return;
        case Field::kPlainPeer:
            n.plain_peer = v;
            return;
        case Field::kClaims:
            n.claims = ClaimsAnswer(v);
            return;
        case Field::kLocalPu:
            n.local_pu = LocalPuAnswer(v);
            return;
        case Field::kPeerAnswer:
            n.peer = PeerAnswer(v);
            return;
        case Field::kKey:
            n.key = KeyAnswer(v);
            return;
        case Field::kRulesAccept:
            n.rules_accept = v;
            return;
        case Field::kAclAccept:
            n.acl_accept = v;
            return;
        case Field::kNonce:
            n.nonce = v;
            return;
        case Field::kConfirmation:
            n.confirmation = ConfirmationAnswer(v);
            return;
        case Field::kEdit:
            n.edit = DropReason(v);
            return;
        case Field::kSent:
            n.sent = SendAnswer(v);
            return;
        case Field::kCount:
            return;
    }
}

inline std::string value_name(const Assign &a, Field f) {
    const FieldInfo &fi = field_info(f);
    const uint32_t v = get(a, f);
    for (size_t i = 0; i < fi.values.size(); ++i)
        if (fi.values[i] == v) return fi.names[i];
    return std::to_string(v);
}

// The defaults every row starts from (a row names only the facts its path reads).
inline Assign defaults(Auth auth) {
    Assign a;
    a.st.auth = auth;
    a.fx.hs_pool = true;
    a.fx.reject_with_rst = true;
    a.fx.answers = Answers{};
    return a;
}

inline bool parse_auth(const std::string &s, Auth &out) {
    for (uint8_t i = 0; i < uint8_t(Auth::kCount); ++i)
        if (s == name(Auth(i))) {
            out = Auth(i);
            return true;
        }
    return false;
}

inline bool parse_event(const std::string &s, Event &ev) {
    for (uint8_t i = 0; i < uint8_t(BatchOp::kCount); ++i)
        if (s == std::string("macs:") + name(BatchOp(i))) {
            ev = {EventKind::kMacsReady, BatchOp(i)};
            return true;
        }
    for (uint8_t i = 0; i < uint8_t(EventKind::kCount); ++i)
        if (s == name(EventKind(i)) && EventKind(i) != EventKind::kMacsReady) {
            ev = {EventKind(i), BatchOp::kClientCheckSynAck};
            return true;
        }
    return false;
}

inline std::string event_name(const Event &ev) {
    if (ev.kind == EventKind::kMacsReady) return std::string("macs:") + name(ev.op);
    return name(ev.kind);
}

// "key=value key=value": false (and `err`) on an unknown key or value.
inline bool parse_facts(const std::string &text, Assign &a, std::string &err) {
    std::istringstream in(text);
    std::string tok;
    while (in >> tok) {
        const size_t eq = tok.find('=');
        if (eq == std::string::npos) {
            err = "no '=' in " + tok;
            return false;
        }
        const std::string k = tok.substr(0, eq), v = tok.substr(eq + 1);
        bool found = false;
        for (uint8_t i = 0; i < uint8_t(Field::kCount) && !found; ++i) {
            if (k != name(Field(i))) continue;
            const FieldInfo &fi = field_info(Field(i));
            for (size_t j = 0; j < fi.names.size(); ++j)
                if (fi.names[j] == v) {
                    set(a, Field(i), fi.values[j]);
                    found = true;
                }
            if (!found) {
                err = "bad value " + tok;
                return false;
            }
        }
        if (!found) {
            err = "unknown fact " + tok;
            return false;
        }
    }
    return true;
}

// ---------------------------------------------------------------------------------------------
// rendering actions and needs

inline const char *reason_name(uint8_t r) {
    return drop_reason_name(DropReason(r));
}

inline std::string render(const Action &x) {
    static const char *pu[] = {"classified", "handshake", "local"};
    static const char *peer[] = {"none", "looked", "flow"};
    static const char *to[] = {"source", "destination", "initiator", "responder"};
    static const char *job[] = {"verify", "retag", "key"};
    static const char *fill[] = {"client-claims", "server-syn", "server-claims", "synack-in",
                                 "l4-isn",        "l4-r1-in",   "l4-r2-in"};
    static const char *dec[] = {"empty", "decided"};
    static const char *msg[] = {"syn", "synack", "ack", "reject", "reset"};
    std::string s = name(x.kind);
    auto arg = [&](const std::string &v) { s += "(" + v + ")"; };
    switch (x.kind) {
        case Act::kForward:
            if (x.a) arg("stripped");
            break;
        case Act::kDrop:
        case Act::kDropHeld:
        case Act::kCountDrop:
            arg(reason_name(x.a));
            break;
        case Act::kPark:
            arg(std::string(job[x.a]) + (x.a == uint8_t(Job::kSessionKey)
                                             ? std::string(":") + name(Role(x.b))
                                             : std::string()));
            break;
        case Act::kQueueMacs:
            arg(std::string(name(BatchOp(x.a))) + "," + peer[x.b] + "," + dec[x.c]);
            break;
        case Act::kSetRole:
            arg(name(Role(x.a)));
            break;
        case Act::kSetAuth:
            arg(name(Auth(x.a)));
            break;
        case Act::kSetInitiator:
            arg(to[x.a]);
            break;
        case Act::kSetPeer:
            arg(peer[x.a]);
            break;
        case Act::kAllocHs:
            arg(pu[x.a]);
            break;
        case Act::kFillHs:
            arg(fill[x.a]);
            break;
        case Act::kRecord:
            arg(std::string(reason_name(x.a)) + "," + dec[x.b] + "," + peer[x.c]);
            break;
        case Act::kRst:
            arg(to[x.a]);
            break;
        case Act::kSendConfirm:
            arg(x.a ? "kept" : "handshake");
            break;
        case Act::kRememberPlainPeer:
            arg(x.a ? "flow-peer" : "source");
            break;
        case Act::kCount:
            arg(name(Counter(x.a)));
            break;
        case Act::kL4Send:
            arg(std::string("R") + std::to_string(x.a));
            break;
        case Act::kSendUdp: {
            std::string v = std::string(msg[x.a]) + "," + to[x.b];
            if (x.c & kKeep) v += ",keep";
            if (x.c & kEchoServerNonce) v += ",echo-server-nonce";
            if (x.c & kReasonClaims) v += ",claims";
            arg(v);
            break;
        }
        default:
            break;
    }
    return s;
}

inline std::string render(const Need &n) {
    static const char *pu[] = {"classified", "handshake", "local"};
    static const char *dir[] = {"out", "in", "sides"};
    static const char *port[] = {"sport", "dport", "responder", "policy-port"};
    static const char *peer[] = {"none", "looked", "flow"};
    static const char *edit[] = {"strip",        "strip+token",  "add-syn",     "add-synack",
                                 "add-proof",    "strip-tfo",    "strip-token", "l4-syn",
                                 "l4-synack-in", "l4-synack-out"};
    static const char *msg[] = {"syn", "synack", "ack", "reject", "reset"};
    static const char *to[] = {"source", "destination", "initiator", "responder"};
    std::string s = std::string("?") + name(n.kind);
    switch (n.kind) {
        case NeedKind::kLocalClaims:
            s += std::string("(") + pu[uint8_t(n.pu)] + ")";
            break;
        case NeedKind::kRules:
            s += std::string("(") + dir[uint8_t(n.dir)] + "," + pu[uint8_t(n.pu)] + "," +
                 port[uint8_t(n.port)] + "," + peer[uint8_t(n.peer)] + ")";
            break;
        case NeedKind::kAcl:
            s += std::string("(") + dir[uint8_t(n.dir)] + "," + pu[uint8_t(n.pu)] + "," +
                 port[uint8_t(n.port)] + ")";
            break;
        case NeedKind::kSessionKey:
            s += std::string("(") + name(n.role) + ")";
            break;
        case NeedKind::kNonce:
            s += n.nonce == NonceFor::kClient ? "(client)" : "(server)";
            break;
        case NeedKind::kEdit:
            s += std::string("(") + edit[uint8_t(n.edit)] + ")";
            break;
        case NeedKind::kSend:
            s += std::string("(") + msg[uint8_t(n.msg)] + "," + to[uint8_t(n.to)] + ")";
            break;
        default:
            break;
    }
    return s;
}

// ---------------------------------------------------------------------------------------------
// running one event to completion, as an adapter would

struct Outcome {
    FlowState next;
    std::string text;  // "Next: item item ..." (items: actions and ?needs, in order)
    std::string key;   // the path: state, event and every branch taken
    std::vector<Action> actions;
    std::vector<Need> needs;
    Trace trace;          // the branches of the path (the last, complete step)
    size_t max_step = 0;  // the most actions one step returned
    std::string error;    // a broken protocol rule (empty when none)
};

inline std::string path_key(Auth auth, const Event &ev, const Trace &t) {
    std::string k = std::string(name(auth)) + "|" + event_name(ev) + "|";
    for (uint8_t i = 0; i < t.n; ++i) {
        const FactUse &u = t.uses[i];
        k += std::string(name(u.field)) + "/" + std::to_string(u.test) + "=" +
             std::to_string(u.value) + " ";
    }
    return k;
}

using DirectFn = FlowState (*)(const FlowState &, const Event &, Facts &, Oracle &) noexcept;
inline DirectFn direct_for(StepFn step) {
    if (step == tcp::step) return tcp::step_direct;
    if (step == udp::step) return udp::step_direct;
    return plain::step_direct;
}

inline Outcome run(StepFn step, const Assign &in, const Event &ev) {
    Outcome o;
    Facts fx = in.fx;
    fx.answers.known = 0;
    Trace trace;
    FlowState model = in.st;
    std::string items;
    for (int steps = 0;; ++steps) {
        if (steps > 16) {
            o.error = "more than 16 steps";
            break;
        }
        trace = Trace{};
        fx.trace = &trace;
        const Result r = step(in.st, ev, fx);
        if (r.overflow) o.error = "action list overflow";
        o.max_step = std::max<size_t>(o.max_step, r.n);
        if (trace.overflow) o.error = "trace overflow";
        for (uint8_t i = 0; i < r.n; ++i) {
            o.actions.push_back(r.actions[i]);
            apply_state(model, r.actions[i]);
            items += " " + render(r.actions[i]);
        }
        if (r.need.kind == NeedKind::kNone) {
            o.next = r.next;
            if (std::memcmp(&model, &r.next, sizeof model) != 0)
                o.error = "Result::next differs from the actions applied";
            break;
        }
        if (fx.answers.has(r.need.kind)) {
            o.error = std::string("need asked twice: ") + name(r.need.kind);
            break;
        }
        o.needs.push_back(r.need);
        items += " " + render(r.need);
        fx.answers.mark(r.need.kind);
    }
    // The adapter's way (each need performed where it is reached, each action applied as taken)
    // must walk the same path: the same actions and needs in the same order, the same next state.
    if (o.error.empty()) {
        struct Recorder final : Oracle {
            Facts *fx;
            std::vector<Action> actions;
            std::vector<Need> needs;
            void take(const Action *a, uint8_t n) noexcept override {
                actions.insert(actions.end(), a, a + n);
            }
            void answer(const Need &need) noexcept override {
                needs.push_back(need);  // the value is the assignment's (already in the Facts)
            }
        } rec;
        Facts ofx = in.fx;
        ofx.answers.known = 0;
        rec.fx = &ofx;
        const FlowState next = direct_for(step)(in.st, ev, ofx, rec);
        bool same = rec.actions.size() == o.actions.size() && rec.needs.size() == o.needs.size() &&
                    std::memcmp(&next, &o.next, sizeof next) == 0;
        for (size_t i = 0; same && i < rec.actions.size(); ++i)
            same = render(rec.actions[i]) == render(o.actions[i]);
        for (size_t i = 0; same && i < rec.needs.size(); ++i)
            same = render(rec.needs[i]) == render(o.needs[i]);
        if (!same) o.error = "the adapter's way walks another path";
    }
    // Exactly one fate for the events that carry a packet, none for the others.
    int fates = 0;
    for (const Action &x : o.actions) fates += is_fate(x.kind);
    const bool packet = ev.kind == EventKind::kPacket || ev.kind == EventKind::kMacsReady;
    if (o.error.empty() && fates != (packet ? 1 : 0)) o.error = "fates: " + std::to_string(fates);
    o.text = std::string(name(o.next.auth)) + ":" + items;
    o.trace = trace;
    o.key = path_key(in.st.auth, ev, trace);
    return o;
}

// ---------------------------------------------------------------------------------------------
// tables

struct Row {
    const char *state;
    const char *event;
    const char *facts;
    const char *expect;
};

// A pair the flow tables never produce (a state of another protocol, a batch op in a state that
// cannot have queued it): the explorer skips it and no row is required.
struct Impossible {
    Auth auth;
    std::string event;  // as in rows; "*" for every event
    const char *why;
};

// `list`, and the pair (state, event) for every state of `states` and event of `events`.
inline std::vector<Impossible> with_pairs(std::vector<Impossible> list,
                                          const std::vector<Auth> &states,
                                          const std::vector<std::string> &events, const char *why) {
    for (Auth a : states)
        for (const std::string &e : events) list.push_back({a, e, why});
    return list;
}

struct Path {
    Assign assign;
    Event ev;
    Outcome out;
};

// The most readable assignment for a path: each fact it reads set back to its default (else to the
// first value of its domain) whenever the path stays the same.
inline Assign canonical(StepFn step, const Assign &found, const Event &ev, const std::string &key) {
    Assign a = found;
    const Assign d = defaults(found.st.auth);
    const Trace t = run(step, a, ev).trace;
    for (uint8_t i = 0; i < t.n; ++i) {
        const Field f = t.uses[i].field;
        std::vector<uint32_t> order{get(d, f)};
        for (uint32_t v : field_info(f).values) order.push_back(v);
        if (f == Field::kSinceSendMs || f == Field::kElapsedMs) {
            // A time is shown next to the threshold it was compared with (199 or 200 against
            // 200 ms), so that a changed threshold or comparison changes the row's path.
            const int64_t th = int64_t(t.uses[i].test) * 100;
            order = field_info(f).values;
            std::stable_sort(order.begin(), order.end(), [th](uint32_t x, uint32_t y) {
                return std::llabs(int64_t(x) - th) < std::llabs(int64_t(y) - th);
            });
        }
        for (uint32_t v : order) {
            if (v == get(a, f)) break;  // the current value is the most readable that works
            Assign b = a;
            set(b, f, v);
            if (run(step, b, ev).key == key) {
                a = b;
                break;
            }
        }
    }
    return a;
}

// Every branch path of `step` from (auth, ev), found by flipping each branch's fact through its
// whole domain, path after path, until no new path appears.
inline void explore(StepFn step, Auth auth, const Event &ev, std::map<std::string, Path> &paths) {
    std::vector<Assign> todo{defaults(auth)};
    while (!todo.empty()) {
        Assign a = todo.back();
        todo.pop_back();
        Outcome o = run(step, a, ev);
        if (paths.count(o.key)) continue;
        const Trace t = o.trace;
        const Assign c = canonical(step, a, ev, o.key);
        paths[o.key] = Path{c, ev, run(step, c, ev)};
        for (uint8_t i = 0; i < t.n; ++i) {
            const Field f = t.uses[i].field;
            for (uint32_t v : field_info(f).values) {
                if (v == get(a, f)) continue;
                Assign b = a;
                set(b, f, v);
                todo.push_back(b);
            }
        }
    }
}

// The facts a path reads, in row form (each field once, in the order first read).
inline std::string facts_text(const Assign &a, const Trace &t) {
    std::string s;
    std::set<Field> done;
    for (uint8_t i = 0; i < t.n; ++i) {
        const Field f = t.uses[i].field;
        if (!done.insert(f).second) continue;
        if (!s.empty()) s += " ";
        s += std::string(name(f)) + "=" + value_name(a, f);
    }
    return s;
}

inline std::vector<Event> all_events() {
    std::vector<Event> v;
    for (uint8_t i = 0; i < uint8_t(EventKind::kCount); ++i) {
        if (EventKind(i) == EventKind::kMacsReady) {
            for (uint8_t op = 0; op < uint8_t(BatchOp::kCount); ++op)
                v.push_back({EventKind::kMacsReady, BatchOp(op)});
        } else {
            v.push_back({EventKind(i), BatchOp::kClientCheckSynAck});
        }
    }
    return v;
}

inline bool impossible(const std::vector<Impossible> &list, Auth auth, const Event &ev) {
    for (const Impossible &i : list)
        if (i.auth == auth && (i.event == "*" || i.event == event_name(ev))) return true;
    return false;
}

// ---------------------------------------------------------------------------------------------
// the two checks every machine's table gets

// Each row: the machine, run as an adapter would run it, produces exactly the expected outcome,
// and no two rows take the same path. Returns row path -> row index.
inline std::map<std::string, size_t> check_rows(StepFn step, const std::vector<Row> &rows,
                                                const std::vector<Impossible> &cannot) {
    std::map<std::string, size_t> keys;
    for (size_t i = 0; i < rows.size(); ++i) {
        const Row &row = rows[i];
        SCOPED_TRACE(::testing::Message() << "row " << i << ": " << row.state << " " << row.event
                                          << " [" << row.facts << "]");
        Auth auth;
        Event ev;
        Assign a;
        std::string err;
        const bool parsed = parse_auth(row.state, auth) && parse_event(row.event, ev) &&
                            ((a = defaults(auth)), parse_facts(row.facts, a, err));
        EXPECT_TRUE(parsed) << err;
        if (!parsed) continue;
        EXPECT_FALSE(impossible(cannot, auth, ev)) << "a row for a pair listed as cannot-happen";
        const Outcome o = run(step, a, ev);
        EXPECT_EQ(o.error, "");
        EXPECT_EQ(o.text, row.expect);
        auto [it, fresh] = keys.emplace(o.key, i);
        EXPECT_TRUE(fresh) << "same path as row " << it->second;
    }
    return keys;
}

// Every (state, event) pair not in the cannot-happen list, and every branch path from it, has its
// row. A changed or added transition is a path without a row (or a row whose outcome changed).
// Set SEGWIRE_IDENTITY_DUMP=1 to print every path as a row, in table order.
struct Census {
    size_t pairs = 0, paths = 0;
    size_t max_step = 0;   // the most actions one step returned, over every path
    size_t max_needs = 0;  // the most needs one event asked
};
inline Census check_paths(StepFn step, const std::vector<Auth> &states,
                          const std::map<std::string, size_t> &row_keys,
                          const std::vector<Impossible> &cannot) {
    Census c;
    const bool dump = std::getenv("SEGWIRE_IDENTITY_DUMP") != nullptr;
    for (Auth auth : states) {
        for (const Event &ev : all_events()) {
            if (impossible(cannot, auth, ev)) continue;
            ++c.pairs;
            std::map<std::string, Path> paths;
            explore(step, auth, ev, paths);
            std::vector<std::pair<std::string, std::string>> lines;
            for (const auto &[key, p] : paths) {
                ++c.paths;
                c.max_step = std::max(c.max_step, p.out.max_step);
                c.max_needs = std::max(c.max_needs, p.out.needs.size());
                EXPECT_EQ(p.out.error, "") << key;
                const std::string line =
                    std::string("    {\"") + name(auth) + "\", \"" + event_name(ev) + "\", \"" +
                    facts_text(p.assign, p.out.trace) + "\",\n     \"" + p.out.text + "\"},";
                if (dump) lines.emplace_back(facts_text(p.assign, p.out.trace), line);
                if (!dump) {
                    EXPECT_TRUE(row_keys.count(key)) << "a path without a row:\n" << line;
                }
            }
            std::sort(lines.begin(), lines.end());
            for (auto &l : lines) std::printf("%s\n", l.second.c_str());
        }
    }
    return c;
}

// Every state of the flow (the machine's cannot-happen list says which pairs it never sees).
inline std::vector<Auth> all_states() {
    std::vector<Auth> v;
    for (uint8_t i = 0; i < uint8_t(Auth::kCount); ++i) v.push_back(Auth(i));
    return v;
}

// EveryPathHasARow: every path the explorer finds has a row, and the census is printed.
inline void check_every_path(const char *machine, StepFn step, const std::vector<Row> &rows,
                             const std::vector<Impossible> &cannot) {
    const auto keys = check_rows(step, rows, cannot);
    const Census c = check_paths(step, all_states(), keys, cannot);
    std::printf(
        "%s machine: %zu state/event pairs, %zu transitions (paths), %zu rows; "
        "at most %zu actions in one step, %zu needs in one event\n",
        machine, c.pairs, c.paths, rows.size(), c.max_step, c.max_needs);
    EXPECT_LE(c.max_step, Result::kMaxActions);
    EXPECT_EQ(c.paths, rows.size());
}

}  // namespace segwire::dp::identity::test
