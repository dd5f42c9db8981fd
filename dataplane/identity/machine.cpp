// The paths the identity machines share, transcribed from dataplane/handshake/tcp_identity.cpp
// (function names in the comments are the worker's), and the vocabulary's names.
#include "dataplane/identity/machine.hpp"

#include "dataplane/identity/detail.hpp"

namespace segwire::dp::identity {

const char *name(Auth a) noexcept {
    switch (a) {
        case Auth::kNew:
            return "New";
        case Auth::kPass:
            return "Pass";
        case Auth::kAllowed:
            return "Allowed";
        case Auth::kRejected:
            return "Rejected";
        case Auth::kClientSyn:
            return "ClientSyn";
        case Auth::kClientAck:
            return "ClientAck";
        case Auth::kServerSyn:
            return "ServerSyn";
        case Auth::kServerSynAck:
            return "ServerSynAck";
        case Auth::kUdpClientSyn:
            return "UdpClientSyn";
        case Auth::kUdpServerSynAck:
            return "UdpServerSynAck";
        case Auth::kUdpResetSent:
            return "UdpResetSent";
        case Auth::kCount:
            break;
    }
    return "?";
}

const char *name(Role r) noexcept {
    switch (r) {
        case Role::kNone:
            return "none";
        case Role::kClient:
            return "client";
        case Role::kServer:
            return "server";
        case Role::kCount:
            break;
    }
    return "?";
}

const char *name(EventKind e) noexcept {
    switch (e) {
        case EventKind::kPacket:
            return "pkt";
        case EventKind::kMacsReady:
            return "macs";
        case EventKind::kTimer:
            return "timer";
        case EventKind::kReevaluate:
            return "reeval";
        case EventKind::kExpire:
            return "expire";
        case EventKind::kPortsReused:
            return "reused";
        case EventKind::kCount:
            break;
    }
    return "?";
}

const char *name(BatchOp o) noexcept {
    switch (o) {
        case BatchOp::kClientCheckSynAck:
            return "client";
        case BatchOp::kServerSignSynAck:
            return "server";
        case BatchOp::kCount:
            break;
    }
    return "?";
}

const char *name(Act a) noexcept {
    switch (a) {
#define X(n, text)  \
    case Act::k##n: \
        return #n;
        SEGWIRE_IDENTITY_ACTIONS(X)
#undef X
        case Act::kEnd:
            break;
    }
    return "?";
}

const char *name(Counter c) noexcept {
    switch (c) {
#define X(n)         \
    case Counter::n: \
        return #n;
        SEGWIRE_IDENTITY_COUNTERS(X)
#undef X
        case Counter::kCount:
            break;
    }
    return "?";
}

const char *name(NeedKind k) noexcept {
    switch (k) {
        case NeedKind::kNone:
            return "none";
        case NeedKind::kClassify:
            return "classify";
        case NeedKind::kPlainPeer:
            return "plain_peer";
        case NeedKind::kLocalClaims:
            return "claims";
        case NeedKind::kLocalPu:
            return "local_pu";
        case NeedKind::kPeer:
            return "peer";
        case NeedKind::kSessionKey:
            return "key";
        case NeedKind::kRules:
            return "rules";
        case NeedKind::kAcl:
            return "acl";
        case NeedKind::kNonce:
            return "nonce";
        case NeedKind::kConfirmation:
            return "confirmation";
        case NeedKind::kEdit:
            return "edit";
        case NeedKind::kSend:
            return "send";
        case NeedKind::kCount:
            break;
    }
    return "?";
}

const char *name(Field f) noexcept {
    switch (f) {
        case Field::kRole:
            return "role";
        case Field::kHs:
            return "hs";
        case Field::kPeer:
            return "peer";
        case Field::kParked:
            return "parked";
        case Field::kInBatch:
            return "in_batch";
        case Field::kArrival:
            return "arrival";
        case Field::kKind:
            return "kind";
        case Field::kOpt:
            return "opt";
        case Field::kToken:
            return "token";
        case Field::kCtl:
            return "ctl";
        case Field::kMacOk:
            return "mac_ok";
        case Field::kNonceClient:
            return "nonce_client";
        case Field::kNonceServer:
            return "nonce_server";
        case Field::kDnsReply:
            return "dns_reply";
        case Field::kUdpLen8:
            return "udp_len8";
        case Field::kIcmpControl:
            return "icmp_control";
        case Field::kSinceSendMs:
            return "since_send_ms";
        case Field::kElapsedMs:
            return "elapsed_ms";
        case Field::kTries:
            return "tries";
        case Field::kTimerStale:
            return "timer_stale";
        case Field::kHsPool:
            return "hs_pool";
        case Field::kRejectWithRst:
            return "reject_with_rst";
        case Field::kSynAckMacOk:
            return "synack_mac_ok";
        case Field::kBatchAccept:
            return "batch_accept";
        case Field::kDecidedCurrent:
            return "decided_current";
        case Field::kPeerTagsCurrent:
            return "peer_tags_current";
        case Field::kRetagPending:
            return "retag_pending";
        case Field::kAcksSeen:
            return "acks_seen";
        case Field::kPeerRevoked:
            return "peer_revoked";
        case Field::kClassify:
            return "classify";
        case Field::kManagedTcp:
            return "managed_tcp";
        case Field::kManagedUdp:
            return "managed_udp";
        case Field::kPlainPeer:
            return "plain_peer";
        case Field::kClaims:
            return "claims";
        case Field::kLocalPu:
            return "local_pu";
        case Field::kPeerAnswer:
            return "peer_answer";
        case Field::kKey:
            return "key";
        case Field::kRulesAccept:
            return "rules";
        case Field::kAclAccept:
            return "acl";
        case Field::kNonce:
            return "nonce";
        case Field::kConfirmation:
            return "confirmation";
        case Field::kEdit:
            return "edit";
        case Field::kSent:
            return "sent";
        case Field::kCount:
            break;
    }
    return "?";
}

namespace detail {

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

bool scrub_if_marked(Ctx &c) noexcept {
    if (!c.opt_present()) return true;
    if (c.opt_is(TcpOpt::kMalformed)) {
        c.drop(DropReason::TokenMalformed);
        return false;
    }
    return scrub(c);
}

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

// apply_acl_verdict()
static void apply_acl_verdict(Ctx &c, Proto p) noexcept {
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
    c.record(DropReason::PolicyReject, DecisionFrom::kDecided, PeerFrom::kNone);
    if (p == Proto::kTcp) {
        // At the client side a SYN-ACK already reached us: the server must forget the connection.
        // (The worker computes this before looking at handshake.reject, and tests the role
        // first; tests without side effects may go in any order, and this order keeps paths that
        // end the same on one path.)
        if (!c.reject_with_rst()) {
            reject_tcp(c, false, DropReason::PolicyReject);
            return;
        }
        reject_tcp(c, c.is_synack() && c.role_is(Role::kClient), DropReason::PolicyReject);
        return;
    }
    c.set_auth(Auth::kRejected);
    c.count(Counter::rejected);
    c.act(Act::kDropHeld, Ctx::u8(DropReason::PolicyReject));
    c.act(Act::kFreeHs);
    c.drop(DropReason::PolicyReject);
}

void acl_decision(Ctx &c, PuFrom pu, DirFrom dir, PortFrom port, Proto p) noexcept {
    c.act(Act::kSetPeer, Ctx::u8(PeerFrom::kNone));
    if (!c.ask(need_acl(dir, pu, port))) return;
    apply_acl_verdict(c, p);
}

void reevaluate(Ctx &c, Proto p) noexcept {
    // The sweep's own filter: authorized flows not yet decided under this snapshot.
    if (c.s.auth != Auth::kAllowed || c.decided_current()) return;
    if (!c.ask(need(NeedKind::kLocalPu))) return;
    if (!c.local_pu_is(LocalPuAnswer::kFound)) return;  // no PU, or an ignored one
    bool accept;
    DropReason cut = DropReason::PolicyCut;
    if (c.has_peer() && c.peer_revoked()) {
        // The peer's certificate was revoked: cut whatever the rules say.
        cut = DropReason::CertificateRevoked;
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
    c.record(cut, cut == DropReason::PolicyCut ? DecisionFrom::kDecided : DecisionFrom::kEmpty,
             PeerFrom::kFlow);
}

void expire(Ctx &c) noexcept {
    switch (c.s.auth) {
        case Auth::kClientSyn:
        case Auth::kServerSynAck:
        case Auth::kServerSyn:
        case Auth::kClientAck:
        case Auth::kUdpClientSyn:
        case Auth::kUdpServerSynAck:
            c.act(Act::kRecordException);
            break;
        default:
            break;
    }
    c.act(Act::kDropHeld, Ctx::u8(DropReason::HandshakeExpired));
    c.act(Act::kFreeHs);
    c.act(Act::kSetPeer, Ctx::u8(PeerFrom::kNone));
}

}  // namespace detail
}  // namespace segwire::dp::identity
