// The TCP machine, transcribed from dataplane/handshake/tcp_identity.cpp: each function below
// carries the name of the Worker member it replaces, and takes the same branches in the same
// order. Where the worker edits the packet, looks something up or draws a nonce in the middle of
// a decision, the machine asks (Ctx::ask) and goes on with the answer.
// Templates on the step context (detail.hpp): instantiated for the needs protocol in
// tcp_machine.cpp and for the worker's adapter in dataplane/identity/adapter.cpp.
#pragma once

#include "dataplane/identity/detail.hpp"
#include "dataplane/identity/tcp_l4_impl.hpp"

namespace segwire::dp::identity::tcp::impl {

using detail::need;
using detail::Proto;

constexpr uint8_t u8v(auto e) {
    return detail::u8(e);
}

// A handshake not authorized this long after it began is given up (timer(); docs/handshake.md
// "Budgets"): well above any round trip, below the clients' third SYN (Linux: 1 s, 3 s, 7 s).
constexpr uint32_t kHalfOpenMs = 5000;

// A (client side) waits this long after its SYN for B's confirmation before it returns the
// handshake context and stops adding the ACK proof (timer(); docs/handshake.md). B has authorized
// or given up by kHalfOpenMs after its own SYN, and keeps a confirmation 3 s past authorization:
// from ~9 s on no proof can earn one. The rest is margin for a slow path and a busy machine.
constexpr uint32_t kConfirmWaitMs = 20000;

template <class Ctx>
void acl(Ctx &c, PuFrom pu, DirFrom dir) {
    detail::acl_decision(c, pu, dir, PortFrom::kResponder, Proto::kTcp);
}

using detail::scrub;
using detail::scrub_if_marked;

// Strip option and token from a retransmitted SYN or SYN-ACK and forward it.
template <class Ctx>
void strip_and_forward(Ctx &c) {
    if (!c.ask(detail::need_edit(Edit::kStripWithToken))) return;
    if (!c.edit_ok()) {
        c.drop(DropReason::TokenMalformed);
        return;
    }
    c.stripped();
    c.forward();
}

using detail::verified_peer;

// start_client(): the client role's first SYN gets the PU's claims and a fresh nonce.
template <class Ctx>
void start_client(Ctx &c) {
    if (!c.ask(need(NeedKind::kPlainPeer))) return;
    if (c.plain_peer()) {  // a server known to have no enforcer
        acl(c, PuFrom::kClassified, DirFrom::kOutgoing);
        return;
    }
    if (!c.ask(detail::need_claims(PuFrom::kClassified))) return;
    if (!c.claims_present()) {  // no claims for this PU yet: decide without identity
        acl(c, PuFrom::kClassified, DirFrom::kOutgoing);
        return;
    }
    if (!c.hs_pool()) {
        c.drop(c.hs_refusal());
        return;
    }
    c.act(Act::kAllocHs, u8v(PuFrom::kClassified));
    c.act(Act::kArmTimer);  // the half-open deadline
    c.act(Act::kFillHs, u8v(HsFill::kClientClaims));
    if (!c.ask(detail::need_nonce(NonceFor::kClient))) return;
    if (!c.nonce_ok()) {
        c.act(Act::kFreeHs);
        c.drop(DropReason::SlowpathBusy);
        return;
    }
    if (!c.ask(detail::need_edit(Edit::kAddSynIdentity))) return;
    if (!c.edit_ok()) {
        // No room for identity (option space or MTU): the peer decides us by address instead.
        // Counted under the reason although the SYN goes on (docs/protocol.md §4.5).
        c.act(Act::kCountDrop, u8v(c.edit_failure()));
        c.act(Act::kFreeHs);
        acl(c, PuFrom::kClassified, DirFrom::kOutgoing);
        return;
    }
    c.set_auth(Auth::kClientSyn);
    c.count(Counter::syn_signed);
    c.forward();
}

// client_check_synack(): a SYN-ACK whose claims are verified goes into the HMAC batch (MAC_sa is
// checked there); the outgoing rules are decided now, on the server's port.
template <class Ctx>
void client_check_synack(Ctx &c) {
    if (!detail::session_key(c, Role::kClient)) return;
    c.act(Act::kSetPeer, u8v(PeerFrom::kLooked));
    c.act(Act::kFillHs, u8v(HsFill::kSynAckIn));
    if (!c.ask(detail::need_rules(DirFrom::kOutgoing, PuFrom::kHandshake, PortFrom::kSrcPort,
                                  PeerFrom::kLooked)))
        return;
    c.act(Act::kQueueMacs, u8v(BatchOp::kClientCheckSynAck), u8v(PeerFrom::kLooked),
          u8v(DecisionFrom::kDecided));
}

// client_syn_state()
template <class Ctx>
void client_syn(Ctx &c) {
    if (!c.outside()) {
        if (c.is_syn()) {  // retransmission: the same nonce, the current claims
            if (!c.ask(detail::need_claims(PuFrom::kHandshake))) return;
            if (!c.claims_present()) {
                c.drop(DropReason::NoSessionKey);
                return;
            }
            if (!c.ask(detail::need_edit(Edit::kAddSynIdentity))) return;
            if (!c.edit_ok()) {
                c.drop(c.edit_failure());
                return;
            }
            c.act(Act::kFillHs, u8v(HsFill::kClientClaims));
            c.forward();
            return;
        }
        if (c.is_rst()) {
            c.act(Act::kRestart);
            c.forward();
            return;
        }
        c.hold();
        return;
    }
    if (c.is_rst()) {  // the server refused (or a peer enforcer rejected us)
        c.act(Act::kRestart);
        if (scrub_if_marked(c)) c.forward();
        return;
    }
    if (!c.is_synack()) {
        c.drop(DropReason::FlowRejected);
        return;
    }
    if (!c.opt_present()) {
        // The server has no enforcer - if this SYN-ACK really answers our SYN: a blind forgery
        // (its ACK number does not acknowledge the SYN) must neither decide the connection nor
        // teach that the server has no enforcer.
        if (!c.acks_syn()) {
            c.drop(DropReason::TcpOutOfWindow);
            return;
        }
        // Decide with the ACL for its address, and remember it (address, protocol, port) - or,
        // in an auto network, when the snapshot says an enforcer hosts that address: v1's option
        // was stripped on the way, and the next connection to it uses L4 (docs/l4-mode.md).
        if (c.auto_peer()) {
            c.act(Act::kRememberL4Peer);
            c.count(Counter::auto_fallbacks);
        } else {
            c.act(Act::kRememberPlainPeer, 0);
        }
        c.act(Act::kFreeHs);
        acl(c, PuFrom::kHandshake, DirFrom::kOutgoing);
        return;
    }
    if (!c.opt_is(TcpOpt::kSynAck) || !c.token_is(Token::kSynAck)) {
        c.drop(DropReason::TokenMalformed);
        return;
    }
    if (!verified_peer(c, true)) return;
    client_check_synack(c);
}

// client_ack_state()
template <class Ctx>
void client_ack(Ctx &c) {
    if (!c.outside()) {
        // Until the server side confirms it verified the proof, every client packet carries it.
        if (!c.is_rst()) {
            if (!c.ask(detail::need_edit(Edit::kAddAckProof))) return;
            if (c.edit_ok()) c.count(Counter::ack_proofs_added);
        }
        c.forward();
        return;
    }
    if (c.is_rst()) {  // the server, or B refusing us, ended the connection
        c.act(Act::kRestart);
        if (scrub_if_marked(c)) c.forward();
        return;
    }
    if (c.is_synack()) {  // retransmitted SYN-ACK: our client lost the first one
        if (c.token_ok() && c.nonce_server())
            strip_and_forward(c);
        else
            c.drop(DropReason::TokenMalformed);
        return;
    }
    if (c.has_exp()) {
        if (c.opt_is(TcpOpt::kConfirm)) {
            if (!c.mac_ok()) {
                c.drop(DropReason::MacMismatch);
                return;
            }
            // B holds our proof: the flow is authorized. The confirmation was B's own segment.
            c.count(Counter::confirms_received);
            c.count(Counter::authorized);
            c.set_auth(Auth::kAllowed);
            c.act(Act::kFreeHs);
            c.consume();
            return;
        }
        if (c.opt_present()) {
            if (c.opt_is(TcpOpt::kMalformed)) {
                c.drop(DropReason::TokenMalformed);
                return;
            }
            if (!scrub(c)) return;
        }
    }
    // A server segment is no evidence that B has our proof (TCP Fast Open).
    c.forward();
}

// allowed_tcp_from_outside(): an authorized flow, a packet from outside with an RFC 6994 option
// or a SYN flag.
template <class Ctx>
void allowed_from_outside(Ctx &c) {
    if (c.is_syn()) c.count(Counter::syns_on_open_flow);  // answered by the host's challenge ACK
    if (!c.opt_present()) {
        c.forward();
        return;
    }
    if (c.opt_is(TcpOpt::kMalformed)) {
        c.drop(DropReason::TokenMalformed);
        return;
    }
    if (c.opt_is(TcpOpt::kConfirm) && c.role_is(Role::kClient)) {
        c.consume();  // a repeated confirmation: B's own segment, nothing for the host
        return;
    }
    if (c.opt_is(TcpOpt::kAck) && c.role_is(Role::kServer)) {
        // A has not seen our confirmation yet: repeat it (at most once per millisecond).
        if (!c.ask(need(NeedKind::kConfirmation))) return;
        if (c.confirmation_due()) {
            c.act(Act::kSendConfirm, 1);
            c.act(Act::kTouchConfirmation);
        }
    }
    if (!scrub(c)) return;
    c.forward();
}

// accept_server_syn()
template <class Ctx>
void accept_server_syn(Ctx &c) {
    c.act(Act::kSetDecidedVersion);
    if (!c.rules_accept()) {
        c.record(DropReason::PolicyReject, DecisionFrom::kDecided, PeerFrom::kLooked);
        detail::reject_tcp(c, false, DropReason::PolicyReject);
        return;
    }
    // start_server_hs(): any earlier context is replaced (so the pool has at least ours back).
    const bool had_hs = c.has_hs();
    c.act(Act::kFreeHs);
    if (!had_hs && !c.hs_pool()) {
        c.drop(c.hs_refusal());
        return;
    }
    c.act(Act::kAllocHs, u8v(PuFrom::kClassified));
    c.act(Act::kArmTimer);  // the half-open deadline
    c.act(Act::kFillHs, u8v(HsFill::kServerSyn));
    if (!c.ask(detail::need_edit(Edit::kStripWithToken))) return;
    if (!c.edit_ok()) {
        c.act(Act::kFreeHs);
        c.drop(DropReason::TokenMalformed);
        return;
    }
    c.stripped();
    c.record(DropReason::None, DecisionFrom::kDecided, PeerFrom::kLooked);
    c.set_auth(Auth::kServerSyn);
    c.forward();
}

// server_syn_state(): reached from classify() (auth new, a SYN from outside) and in ServerSyn.
template <class Ctx>
void server_syn(Ctx &c) {
    if (c.outside()) {
        if (!c.is_syn()) {
            c.hold();
            return;
        }
        if (!c.opt_present()) {
            if (c.s.auth == Auth::kServerSyn) {  // a plain SYN on a flow that had identity: replay
                c.drop(DropReason::TokenMalformed);
                return;
            }
            if (c.managed_tcp() && c.l4()) {  // a client in an L4 network: R1 follows
                l4::start_server(c);
                return;
            }
            if (c.token_is(Token::kSyn)) {
                // A v1 SYN whose option a middlebox stripped: the address decides, and the token
                // (still at the payload's tail) must not reach the host.
                if (!c.ask(detail::need_edit(Edit::kStripToken))) return;
                if (!c.edit_ok()) {
                    c.drop(DropReason::TokenMalformed);
                    return;
                }
                c.count(Counter::options_scrubbed);
            }
            acl(c, PuFrom::kClassified, DirFrom::kIncoming);
            return;
        }
        if (!c.opt_is(TcpOpt::kSyn) || !c.token_is(Token::kSyn)) {
            c.drop(DropReason::TokenMalformed);
            return;
        }
        if (c.s.auth == Auth::kServerSyn) {
            // Retransmitted SYN: forward it again, stripped, only if it is the same handshake.
            if (c.nonce_client())
                strip_and_forward(c);
            else
                c.drop(DropReason::TokenMalformed);
            return;
        }
        // A nonce that opened another flow: a replayed SYN (docs/handshake.md "Budgets").
        if (c.nonce_seen()) {
            c.drop(DropReason::SynReplayed);
            return;
        }
        if (!verified_peer(c, false)) return;
        c.act(Act::kSetPeer, u8v(PeerFrom::kLooked));
        c.count(Counter::syn_verified);
        if (!c.ask(detail::need_rules(DirFrom::kIncoming, PuFrom::kClassified, PortFrom::kDstPort,
                                      PeerFrom::kLooked)))
            return;
        accept_server_syn(c);
        return;
    }
    // From inside: the server's SYN-ACK gets our PU's identity and the MAC over both sides.
    if (c.is_rst()) {
        c.act(Act::kRestart);
        c.forward();
        return;
    }
    if (!c.is_synack()) {
        c.forward();
        return;
    }
    if (!c.ask(detail::need_claims(PuFrom::kHandshake))) return;
    if (!c.claims_present() || !c.has_peer()) {
        c.drop(DropReason::NoSessionKey);
        return;
    }
    c.act(Act::kFillHs, u8v(HsFill::kServerClaims));
    if (!detail::session_key(c, Role::kServer)) return;
    if (!c.ask(detail::need_nonce(NonceFor::kServer))) return;
    if (!c.nonce_ok()) {
        c.drop(DropReason::SlowpathBusy);
        return;
    }
    c.act(Act::kQueueMacs, u8v(BatchOp::kServerSignSynAck), u8v(PeerFrom::kFlow),
          u8v(DecisionFrom::kEmpty));
}

// server_synack_state()
template <class Ctx>
void server_synack(Ctx &c) {
    if (!c.outside()) {
        if (c.is_synack()) {  // retransmitted SYN-ACK: the same nonce and MAC as the first
            if (!c.ask(detail::need_claims(PuFrom::kHandshake))) return;
            if (!c.claims_same()) {  // our claims changed: the client restarts
                c.drop(DropReason::NoSessionKey);
                return;
            }
            if (!c.ask(detail::need_edit(Edit::kAddSynAckIdentity))) return;
            if (!c.edit_ok()) {
                c.drop(c.edit_failure());
                return;
            }
            c.forward();
            return;
        }
        c.forward();
        return;
    }
    if (c.is_syn()) {  // the client did not get our SYN-ACK: let the server answer again
        if (c.token_ok() && c.nonce_client())
            strip_and_forward(c);
        else
            c.drop(DropReason::TokenMalformed);
        return;
    }
    if (!c.opt_present()) {
        // Data that overtook the proof, or a client side without our proof yet: hold it.
        if (c.is_rst()) {
            c.act(Act::kRestart);
            c.forward();
            return;
        }
        c.hold();
        return;
    }
    if (!c.opt_is(TcpOpt::kAck) || !c.mac_ok()) {
        c.record(DropReason::MacMismatch, DecisionFrom::kEmpty, PeerFrom::kFlow);
        c.drop(DropReason::MacMismatch);
        return;
    }
    if (!c.ask(detail::need_edit(Edit::kStrip))) return;
    if (!c.edit_ok()) {
        c.drop(DropReason::TokenMalformed);
        return;
    }
    c.stripped();
    c.act(Act::kSendConfirm, 0);  // only once authorized: A stops proving when it gets this
    c.act(Act::kStoreConfirmation);
    c.count(Counter::ack_proofs_verified);
    c.count(Counter::authorized);
    c.set_auth(Auth::kAllowed);
    c.act(Act::kFreeHs);
    c.forward();
    c.act(Act::kReleaseHeld);
}

// classify(), TCP part
template <class Ctx>
void classify(Ctx &c) {
    if (!c.ask(need(NeedKind::kClassify))) return;
    c.act(Act::kSetLocalSide);
    if (c.classify_pass()) {
        // Not ours: excluded networks, addresses no PU covers, ignored PUs. Untouched.
        c.set_auth(Auth::kPass);
        c.count(Counter::passthrough);
        c.forward();
        return;
    }
    const bool from_inside = !c.outside();
    const DirFrom dir = from_inside ? DirFrom::kOutgoing : DirFrom::kIncoming;
    if (!c.is_syn()) {
        // TCP picked up mid-stream (e.g. after a restart, a failover in a scale-out set, or an
        // RST inside the handshake): the peer's address decides. A SYN-ACK answers a SYN its
        // receiver sent: that side is the initiator, and the rules of that direction judge it.
        if (c.is_synack()) {
            c.act(Act::kSetInitiator, u8v(To::kDestination));
            acl(c, PuFrom::kClassified, from_inside ? DirFrom::kIncoming : DirFrom::kOutgoing);
            return;
        }
        // An RST is never answered with RSTs (RFC 793): decided as before.
        if (c.is_rst()) {
            acl(c, PuFrom::kClassified, dir);
            return;
        }
        // Data or an ACK of a connection this appliance never saw open (another appliance of a
        // scale-out set authorized it and failed, or this one restarted): an external network
        // that allows the sender still lets it through; a refusal resets both hosts at once so
        // the client reconnects and authorizes afresh (docs/scale-out.md "Mid-stream").
        detail::acl_decision(c, PuFrom::kClassified, dir, PortFrom::kResponder, Proto::kTcp,
                             /*midstream=*/true);
        return;
    }
    if (from_inside) {
        c.set_role(Role::kClient);
        if (!c.managed_tcp()) {
            acl(c, PuFrom::kClassified, dir);
            return;
        }
        if (c.l4()) {
            l4::start_client(c);
            return;
        }
        start_client(c);
        return;
    }
    c.set_role(Role::kServer);
    server_syn(c);
}

// identity_step(), TCP part
template <class Ctx>
void packet(Ctx &c) {
    if (detail::gates(c)) return;
    c.act(Act::kTrackSeq);
    switch (c.s.auth) {
        case Auth::kPass:
            c.forward();
            return;
        case Auth::kAllowed: {
            // Past the handshake segwire's option may still arrive from outside (a proof A added
            // before it had our confirmation, a replayed SYN): it never reaches the host.
            const bool out = c.outside();
            if (out && (c.has_exp() || c.syn_flag())) {
                allowed_from_outside(c);
                return;
            }
            // Answers to a query the PU sent (the flow is the PU's own): never unsolicited ones.
            if (out && c.dns_reply()) {
                c.act(Act::kSnoopDns);
                return;
            }
            c.forward();
            return;
        }
        case Auth::kRejected:
            c.drop(DropReason::FlowRejected);
            return;
        case Auth::kNew:
            classify(c);
            return;
        case Auth::kClientSyn:
            client_syn(c);
            return;
        case Auth::kClientAck:
            client_ack(c);
            return;
        case Auth::kServerSyn:
            server_syn(c);
            return;
        case Auth::kServerSynAck:
            server_synack(c);
            return;
        case Auth::kL4ClientSyn:
            l4::client_syn(c);
            return;
        case Auth::kL4ClientWait:
            l4::client_wait(c);
            return;
        case Auth::kL4ClientConfirm:
            l4::client_confirm(c);
            return;
        case Auth::kL4ServerSyn:
            l4::server_syn(c);
            return;
        case Auth::kL4ServerWait:
            l4::server_wait(c);
            return;
        case Auth::kUdpClientSyn:
        case Auth::kUdpServerSynAck:
        case Auth::kUdpResetSent:
        case Auth::kCount:
            break;
    }
    c.drop(DropReason::FlowRejected);  // cannot happen: a UDP state on a TCP flow
}

// finish_op(), TCP part: the batch's MACs are in the handshake context.
template <class Ctx>
void macs_ready(Ctx &c) {
    if (c.ev.op == BatchOp::kL4ClientCheckR2 || c.ev.op == BatchOp::kL4ServerSignR2) {
        l4::macs_ready(c);
        return;
    }
    if (c.ev.op == BatchOp::kServerSignSynAck) {
        if (!c.ask(detail::need_claims(PuFrom::kHandshake))) return;
        if (!c.claims_present()) {
            c.drop(DropReason::NoSessionKey);
            return;
        }
        if (!c.ask(detail::need_edit(Edit::kAddSynAckIdentity))) return;
        if (!c.edit_ok()) {
            c.drop(c.edit_failure());
            return;
        }
        c.count(Counter::synack_signed);
        c.set_auth(Auth::kServerSynAck);
        c.forward();
        return;
    }
    // Client side: the SYN-ACK's MAC proves the server side holds the session key and saw our
    // nonce; only then do the outgoing rules decide.
    if (!c.synack_mac_ok()) {
        c.record(DropReason::MacMismatch, DecisionFrom::kEmpty, PeerFrom::kLooked);
        detail::reject_tcp(c, true, DropReason::MacMismatch);
        return;
    }
    c.count(Counter::synack_verified);
    c.act(Act::kSetDecidedVersion);
    if (!c.batch_accept()) {
        c.record(DropReason::PolicyReject, DecisionFrom::kDecided, PeerFrom::kLooked);
        detail::reject_tcp(c, true, DropReason::PolicyReject);
        return;
    }
    if (!c.ask(detail::need_edit(Edit::kStripWithToken))) return;
    if (!c.edit_ok()) {
        c.drop(DropReason::TokenMalformed);
        return;
    }
    c.stripped();
    c.act(Act::kClampMss);  // room for the proof option on full-sized client segments
    c.record(DropReason::None, DecisionFrom::kDecided, PeerFrom::kLooked);
    c.set_auth(Auth::kClientAck);
    c.forward();
}

// The half-open deadline (docs/handshake.md "Budgets"): a handshake that has not reached
// authorization kHalfOpenMs after its context was taken is given up, and the flow with it: its
// held packets, its context and its entry return at once (a replayed SYN token and a blind ACK
// cannot pin them for the flow table's timeouts). A later SYN starts over. A client whose
// SYN-ACK was verified (kClientAck) is authorized on its side and keeps its context for the
// proofs until B confirms, or until kConfirmWaitMs: a lost confirmation and a quiet client must
// not pin a context for the flow's life (at 16 384 contexts a worker's pool would fill).
template <class Ctx>
void timer(Ctx &c) {
    if (c.timer_stale()) {
        c.act(Act::kDisarm);
        return;
    }
    switch (c.s.auth) {
        case Auth::kClientSyn:
        case Auth::kServerSyn:
        case Auth::kServerSynAck:
            if (c.elapsed_at_least(kHalfOpenMs)) {
                c.count(Counter::half_open_expired);
                detail::expire(c);
                c.act(Act::kRemoveFlow);
            }
            return;
        case Auth::kClientAck:
            if (c.parked() || c.in_batch()) return;  // the slow path or a batch has it
            if (c.elapsed_at_least(kConfirmWaitMs)) {
                // B can no longer confirm: stop adding the proof (B authorized the flow and
                // forwards the client's segments without it, or gave the flow up).
                c.count(Counter::confirms_missed);
                c.set_auth(Auth::kAllowed);
                c.act(Act::kFreeHs);
            }
            return;
        case Auth::kL4ClientSyn:
        case Auth::kL4ClientWait:
        case Auth::kL4ClientConfirm:
        case Auth::kL4ServerSyn:
        case Auth::kL4ServerWait:
            l4::timer(c);
            return;
        default:
            c.act(Act::kDisarm);
            return;
    }
}

// One event of the machine.
template <class Ctx>
void dispatch(Ctx &c) noexcept {
    switch (c.ev.kind) {
        case EventKind::kPacket:
            packet(c);
            return;
        case EventKind::kMacsReady:
            macs_ready(c);
            return;
        case EventKind::kReevaluate:
            detail::reevaluate(c, Proto::kTcp);
            return;
        case EventKind::kExpire:
            detail::expire(c);
            return;
        case EventKind::kPortsReused:
            // A SYN reusing a finished connection's ports is a new connection: authorize it anew
            // (a replayed SYN must never inherit the old flow's verdict).
            c.act(Act::kRestart);
            return;
        case EventKind::kTimer:
            timer(c);
            return;
        case EventKind::kCount:
            return;
    }
}

}  // namespace segwire::dp::identity::tcp::impl
