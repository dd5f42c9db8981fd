// The UDP machine, transcribed from dataplane/handshake/udp_identity.cpp (and the UDP cases of
// identity_step / classify in tcp_identity.cpp): each function below carries the name of the
// Worker member it replaces and takes the same branches in the same order.
// Templates on the step context (detail.hpp): instantiated for the needs protocol in
// udp_machine.cpp and for the worker's adapter in dataplane/identity/adapter.cpp.
#pragma once

#include "dataplane/identity/detail.hpp"

namespace segwire::dp::identity::udp::impl {

using detail::need;
using detail::Proto;

constexpr uint8_t u8v(auto e) {
    return detail::u8(e);
}

// Client: retransmit the SYN 200, 400 and 800 ms after the first one; no SYN-ACK 1.4 s after it
// means the peer has no enforcer and the ACL decides.
constexpr uint32_t kSynScheduleMs[4] = {200, 400, 800, 1400};
constexpr uint32_t kServerWaitMs = 1400;       // server: give up on the ACK
constexpr uint32_t kSynAckResendMs = 200;      // server: at most one SYN-ACK re-send per 200 ms
constexpr uint32_t kResetEveryMs = 1000;       // one RESET per flow per second
constexpr uint32_t kResetHoldMs = 1400;        // a datagram answered with RESET waits this long
constexpr uint32_t kAckKeepMs = 3000;          // an authorized client keeps its ACK this long
constexpr uint32_t kRehandshakeEveryMs = 500;  // RESET on an authorized flow: one SYN per 500 ms

template <class Ctx>
void acl(Ctx &c, PuFrom pu, DirFrom dir) {
    detail::acl_decision(c, pu, dir, PortFrom::kResponder, Proto::kUdp);
}

// udp_refused(): held data dropped, context freed, the control datagram in hand consumed.
template <class Ctx>
void refused(Ctx &c) {
    c.set_auth(Auth::kRejected);
    c.count(Counter::rejected);
    c.act(Act::kDropHeld, u8v(DropReason::FlowRejected));
    c.act(Act::kFreeHs);
    c.count(Counter::udp_control_consumed);
    c.consume();
}

// udp_reject(): REJECT echoing the nonce of the message refused (reason "policy" when the flow
// has a peer identity, "claims" otherwise), then refused().
template <class Ctx>
void reject(Ctx &c, uint8_t echo) {
    const uint8_t reason = c.has_peer() ? 0 : kReasonClaims;
    c.act(Act::kSendUdp, u8v(UdpMsg::kReject), u8v(To::kSource), echo | reason);
    refused(c);
}

// verified_peer(), UDP. A refusal is answered with a REJECT echoing the token's nonce only when
// the flow holds no state (a SYN that starts it): make-before-break (docs/handshake.md, UDP) - a
// refused SYN on a flow that is authorized or mid-handshake, and a refused SYN-ACK, are dropped
// and reported but change nothing, so a forged one cannot end what the real peers set up.
template <class Ctx>
bool verified_peer(Ctx &c) {
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
    // A revoked certificate's claims verified: a real (revoked) peer, refused wherever it speaks.
    if (c.peer() != PeerAnswer::kRevoked && (c.s.auth != Auth::kNew || !c.ctl_is(UdpCtl::kSyn))) {
        c.drop(why);
        return false;
    }
    c.act(Act::kSetPeer, u8v(PeerFrom::kNone));
    reject(c, 0);
    return false;
}

// A context for a new handshake, replacing the flow's own (start_server_hs, udp_start_client:
// free_hs then alloc_hs, so the pool has at least the flow's own context back).
template <class Ctx>
bool replace_hs(Ctx &c, PuFrom pu) {
    const bool had_hs = c.has_hs();
    c.act(Act::kFreeHs);
    if (!had_hs && !c.hs_pool()) {
        c.drop(c.hs_refusal());
        return false;
    }
    c.act(Act::kAllocHs, u8v(pu));
    return true;
}

// udp_start_client(): the first datagram (held) triggers a SYN with the PU's claims and a fresh
// nonce. `to_source`: restarting on the peer's RESET, which is then consumed instead of held.
template <class Ctx>
void start_client(Ctx &c, PuFrom pu, bool to_source) {
    if (!c.ask(detail::need_claims(pu))) return;
    if (!to_source) {
        // A peer known to have no enforcer, or no claims to send: the ACL decides now.
        if (!c.claims_present()) {
            acl(c, pu, DirFrom::kOutgoing);
            return;
        }
        if (!c.ask(need(NeedKind::kPlainPeer))) return;
        if (c.plain_peer()) {
            acl(c, pu, DirFrom::kOutgoing);
            return;
        }
    }
    if (!c.claims_present()) {
        c.drop(DropReason::UdpControl);
        return;
    }
    if (!replace_hs(c, pu)) return;  // a RESET-pending context becomes this handshake's
    c.set_role(Role::kClient);
    c.act(Act::kSetInitiator, u8v(to_source ? To::kDestination : To::kSource));
    c.act(Act::kFillHs, u8v(HsFill::kClientClaims));
    if (!c.ask(detail::need_nonce(NonceFor::kClient))) return;
    bool sent = false;
    if (c.nonce_ok()) {
        if (!c.ask(detail::need_send(UdpMsg::kSyn, to_source ? To::kSource : To::kDestination)))
            return;
        sent = c.sent_is(SendAnswer::kSent);
    }
    if (!sent) {
        c.act(Act::kFreeHs);
        c.drop(DropReason::SlowpathBusy);
        return;
    }
    // An authorized flow stays authorized while the new handshake runs (make-before-break: a
    // forged RESET costs one handshake, never the flow); its datagrams keep flowing.
    if (c.s.auth != Auth::kAllowed) c.set_auth(Auth::kUdpClientSyn);
    c.count(Counter::udp_syn_sent);
    c.act(Act::kArmTimer);
    if (to_source) {
        c.count(Counter::udp_control_consumed);
        c.consume();
        return;
    }
    c.hold();
}

// udp_server_syn(): verify the claims, apply the incoming rules, and have the SYN-ACK's MAC
// computed in this burst's HMAC batch.
template <class Ctx>
void server_syn(Ctx &c, PuFrom pu) {
    // A nonce that opened another flow: a replayed SYN (docs/handshake.md "Budgets").
    if (c.nonce_seen()) {
        c.drop(DropReason::SynReplayed);
        return;
    }
    if (!verified_peer(c)) return;  // parked for the slow path, dropped, or refused
    c.set_role(Role::kServer);
    c.act(Act::kSetInitiator, u8v(To::kSource));
    c.act(Act::kSetPeer, u8v(PeerFrom::kLooked));
    c.act(Act::kSetDecidedVersion);
    c.count(Counter::syn_verified);
    if (!c.ask(detail::need_rules(DirFrom::kIncoming, pu, PortFrom::kDstPort, PeerFrom::kLooked)))
        return;
    if (!c.rules_accept()) {
        c.record(DropReason::PolicyReject, DecisionFrom::kDecided, PeerFrom::kLooked);
        reject(c, 0);
        return;
    }
    if (!c.ask(detail::need_claims(pu))) return;
    if (!c.claims_present()) {
        c.drop(DropReason::NoSessionKey);
        return;
    }
    if (!detail::session_key(c, Role::kServer)) return;
    // A pending RESET or an older handshake is replaced (held data stays held).
    if (!replace_hs(c, pu)) return;
    c.act(Act::kFillHs, u8v(HsFill::kServerSyn));
    c.act(Act::kFillHs, u8v(HsFill::kServerClaims));
    if (!c.ask(detail::need_nonce(NonceFor::kServer))) return;
    if (!c.nonce_ok()) {
        c.act(Act::kFreeHs);
        c.drop(DropReason::SlowpathBusy);
        return;
    }
    c.act(Act::kQueueMacs, u8v(BatchOp::kServerSignSynAck), u8v(PeerFrom::kLooked),
          u8v(DecisionFrom::kDecided));
}

// udp_send_reset(): a datagram from a managed peer for a flow without state: RESET and hold it.
template <class Ctx>
void send_reset(Ctx &c, PuFrom pu) {
    if (!replace_hs(c, pu))
        return;  // a context left by a handshake that could not send its SYN-ACK
    c.act(Act::kSendUdp, u8v(UdpMsg::kReset), u8v(To::kSource), kKeep);
    c.set_auth(Auth::kUdpResetSent);
    c.act(Act::kArmTimer);
    c.hold();
}

// udp_classify()
template <class Ctx>
void classify(Ctx &c) {
    if (!c.ask(need(NeedKind::kClassify))) return;
    c.act(Act::kSetLocalSide);
    if (c.classify_pass()) {
        c.set_auth(Auth::kPass);
        c.count(Counter::passthrough);
        c.forward();
        return;
    }
    c.act(Act::kSetInitiator, u8v(To::kSource));  // whoever speaks first initiates
    const bool out = c.outside();
    if (out && c.is_control()) {
        if (c.ctl_is(UdpCtl::kMalformed)) {
            c.drop(DropReason::TokenMalformed);
            return;
        }
        if (c.ctl_is(UdpCtl::kSyn)) {
            server_syn(c, PuFrom::kClassified);
            return;
        }
        // SYN-ACK, ACK, REJECT or RESET for a flow we hold no state for (idled out, restarted).
        if (c.ctl_is(UdpCtl::kReset)) c.count(Counter::udp_resets_received);
        c.drop(DropReason::UdpControl);
        return;
    }
    if (!out) {
        c.set_role(Role::kClient);
        if (c.managed_udp()) {
            start_client(c, PuFrom::kClassified, false);
            return;
        }
        acl(c, PuFrom::kClassified, DirFrom::kOutgoing);
        return;
    }
    c.set_role(Role::kServer);
    if (c.managed_udp()) {
        // A managed peer's datagram without a handshake: its enforcer thinks the flow is
        // authorized and we forgot it (or the peer has no enforcer): RESET, and hold it a while.
        send_reset(c, PuFrom::kClassified);
        return;
    }
    acl(c, PuFrom::kClassified, DirFrom::kIncoming);
}

// client_check_synack(), UDP op
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

// udp_client_syn_state()
template <class Ctx>
void client_syn(Ctx &c) {
    if (!c.outside() || !c.is_control()) {
        // The PU's datagrams (and anything the server sends early) wait for the verdict.
        c.hold();
        return;
    }
    if (c.ctl_is(UdpCtl::kMalformed)) {
        c.drop(DropReason::TokenMalformed);
        return;
    }
    if (c.ctl_is(UdpCtl::kReject)) {
        if (!c.nonce_client()) {
            c.drop(DropReason::UdpControl);  // not about our SYN: forged or stale
            return;
        }
        refused(c);  // B refused us
        return;
    }
    if (!c.ctl_is(UdpCtl::kSynAck)) {
        c.drop(DropReason::UdpControl);
        return;
    }
    if (!verified_peer(c)) return;
    client_check_synack(c);
}

// udp_server_synack_state()
template <class Ctx>
void server_synack(Ctx &c) {
    if (!c.outside()) {
        c.hold();
        return;
    }
    if (!c.is_control()) {
        // The client's data is already coming: our SYN-ACK or its ACK was lost. Hold the data
        // and re-send the SYN-ACK (at most every 200 ms); the client answers with the same ACK.
        c.hold();
        if (c.since_send_at_least(kSynAckResendMs)) c.act(Act::kResend);
        return;
    }
    if (c.ctl_is(UdpCtl::kMalformed)) {
        c.drop(DropReason::TokenMalformed);
        return;
    }
    switch (c.ctl()) {
        case UdpCtl::kSyn:
            if (c.nonce_client()) {
                c.act(Act::kResend);  // a duplicate SYN gets the same SYN-ACK
                c.count(Counter::udp_control_consumed);
                c.consume();
                return;
            }
            server_syn(c, PuFrom::kHandshake);  // a new nonce replaces the handshake
            return;
        case UdpCtl::kAck:
            if (!c.mac_ok()) {
                c.record(DropReason::MacMismatch, DecisionFrom::kEmpty, PeerFrom::kNone);
                c.drop(DropReason::MacMismatch);
                return;
            }
            c.count(Counter::ack_proofs_verified);
            c.count(Counter::authorized);
            c.set_auth(Auth::kAllowed);
            c.act(Act::kFreeHs);
            c.count(Counter::udp_control_consumed);
            c.consume();
            c.act(Act::kReleaseHeld);
            return;
        case UdpCtl::kReject:
            if (!c.nonce_server()) break;
            refused(c);  // the client side's outgoing rules refused us
            return;
        default:
            break;
    }
    c.drop(DropReason::UdpControl);
}

// udp_reset_sent_state()
template <class Ctx>
void reset_sent(Ctx &c) {
    if (!c.outside()) {
        // Our PU talks on the flow: it is the client after all. Handshake now; what the peer sent
        // stays held and is released (or dropped) with the verdict.
        start_client(c, PuFrom::kHandshake, false);
        return;
    }
    if (!c.is_control()) {
        c.hold();
        if (c.since_send_at_least(kResetEveryMs)) {
            c.act(Act::kResend);
            c.count(Counter::udp_resets_sent);
        }
        return;
    }
    if (c.ctl_is(UdpCtl::kMalformed)) {
        c.drop(DropReason::TokenMalformed);
        return;
    }
    if (c.ctl_is(UdpCtl::kSyn)) {
        server_syn(c, PuFrom::kHandshake);
        return;
    }
    c.drop(DropReason::UdpControl);
}

// udp_allowed_control(): a UDP Length 8 datagram on a decided flow (allowed or rejected).
template <class Ctx>
void decided_control(Ctx &c) {
    if (!c.outside() || !c.is_control()) {
        if (c.s.auth == Auth::kAllowed)
            c.forward();
        else
            c.drop(DropReason::FlowRejected);
        return;
    }
    if (c.ctl_is(UdpCtl::kMalformed)) {
        c.drop(DropReason::TokenMalformed);
        return;
    }
    if (!c.ask(need(NeedKind::kLocalPu))) return;
    switch (c.ctl()) {
        case UdpCtl::kSyn:
            // The peer's enforcer starts over (it restarted, or its state idled out). An
            // authorized flow stays authorized until the new handshake completes
            // (make-before-break): a forged or replayed SYN starts one that never does.
            c.count(Counter::udp_handshakes_restarted);
            if (c.s.auth != Auth::kAllowed) c.act(Act::kRestart);
            server_syn(c, PuFrom::kLocal);
            return;
        case UdpCtl::kSynAck:
            if (c.has_hs() && c.role_is(Role::kClient)) {
                // Our ACK was lost: the server side re-sent its SYN-ACK. Same ACK again.
                if (c.nonce_server()) {
                    c.act(Act::kResend);
                    c.count(Counter::udp_control_consumed);
                    c.consume();
                    return;
                }
                // Another SYN-ACK: the answer to the SYN of a handshake run beside the
                // authorization (after a RESET), checked as in the handshake - its MAC binds our
                // nonce, so a forged or stale one is dropped; the flow stays authorized meanwhile.
                if (c.s.auth == Auth::kAllowed) {
                    if (!verified_peer(c)) return;
                    client_check_synack(c);
                    return;
                }
            }
            break;
        case UdpCtl::kReject:
            // The peer refused the handshake run beside the authorization, echoing its nonce
            // (ours as the client, or the one of our SYN-ACK): the authorization ends.
            if (c.s.auth == Auth::kAllowed && c.has_hs() &&
                (c.role_is(Role::kClient) ? c.nonce_client() : c.nonce_server())) {
                refused(c);
                return;
            }
            break;
        case UdpCtl::kAck:
            // The ACK of a handshake run beside the authorization (after the peer's SYN).
            if (c.s.auth == Auth::kAllowed && c.has_hs() && c.role_is(Role::kServer)) {
                if (!c.mac_ok()) {
                    c.record(DropReason::MacMismatch, DecisionFrom::kEmpty, PeerFrom::kNone);
                    c.drop(DropReason::MacMismatch);
                    return;
                }
                c.count(Counter::ack_proofs_verified);
                c.act(Act::kFreeHs);
                c.count(Counter::udp_control_consumed);
                c.consume();
                return;
            }
            break;
        case UdpCtl::kReset:
            c.count(Counter::udp_resets_received);
            // A RESET carries no proof: it never ends an authorization. This side runs a fresh
            // handshake as its client beside the authorization (cached claims and session key,
            // so HMACs only; its SYN replaces the kept ACK or an earlier attempt, at most one per
            // kRehandshakeEveryMs, so forged RESETs cost at most 2 SYNs a second) and the peer,
            // if it really forgot the flow, completes it; the datagrams keep flowing meanwhile.
            if (c.s.auth == Auth::kAllowed && !c.local_pu_is(LocalPuAnswer::kNone) &&
                (!c.has_hs() || c.since_send_at_least(kRehandshakeEveryMs))) {
                c.count(Counter::udp_handshakes_restarted);
                start_client(c, PuFrom::kLocal, true);
                return;
            }
            c.count(Counter::udp_control_consumed);
            c.consume();
            return;
        default:
            break;
    }
    c.count(Counter::udp_control_consumed);
    c.consume();
}

// identity_step(), UDP part
template <class Ctx>
void packet(Ctx &c) {
    if (detail::gates(c)) return;
    switch (c.s.auth) {
        case Auth::kPass:
            c.forward();
            return;
        case Auth::kAllowed:
            // Answers to a query the PU sent (the flow is the PU's own): never unsolicited ones.
            if (c.outside() && c.dns_reply()) {
                c.act(Act::kSnoopDns);
                return;
            }
            // UDP Length 8 may be one of our control datagrams (RESET, a re-sent SYN-ACK, ...).
            if (c.udp_len8())
                decided_control(c);
            else
                c.forward();
            return;
        case Auth::kRejected:
            if (c.udp_len8())
                decided_control(c);  // a new SYN starts over
            else
                c.drop(DropReason::FlowRejected);
            return;
        case Auth::kUdpClientSyn:
            client_syn(c);
            return;
        case Auth::kUdpServerSynAck:
            server_synack(c);
            return;
        case Auth::kUdpResetSent:
            reset_sent(c);
            return;
        case Auth::kNew:
            classify(c);
            return;
        case Auth::kClientSyn:
        case Auth::kClientAck:
        case Auth::kServerSyn:
        case Auth::kServerSynAck:
        case Auth::kL4ClientSyn:
        case Auth::kL4ClientWait:
        case Auth::kL4ClientConfirm:
        case Auth::kL4ServerSyn:
        case Auth::kL4ServerWait:
        case Auth::kCount:
            break;
    }
    c.drop(DropReason::FlowRejected);  // cannot happen: a TCP state on a UDP flow
}

// udp_finish_op()
template <class Ctx>
void macs_ready(Ctx &c) {
    if (c.ev.op == BatchOp::kServerSignSynAck) {
        if (!c.ask(detail::need_claims(PuFrom::kHandshake))) return;
        if (!c.claims_same()) {
            c.drop(DropReason::NoSessionKey);
            return;
        }
        if (!c.ask(detail::need_send(UdpMsg::kSynAck, To::kSource))) return;
        if (c.sent_is(SendAnswer::kNoToken)) {
            c.drop(DropReason::NoSessionKey);
            return;
        }
        if (c.sent_is(SendAnswer::kNoMbuf)) {
            c.drop(DropReason::SlowpathBusy);
            return;
        }
        c.count(Counter::udp_synack_sent);
        if (c.s.auth != Auth::kAllowed) c.set_auth(Auth::kUdpServerSynAck);
        c.act(Act::kArmTimer);
        c.record(DropReason::None, DecisionFrom::kDecided, PeerFrom::kLooked);
        c.count(Counter::udp_control_consumed);
        c.consume();
        return;
    }
    // Client: MAC_sa proves the server side holds the session key and saw our nonce.
    if (!c.synack_mac_ok()) {
        // A forged or corrupted SYN-ACK does not end the handshake: keep waiting for the real one.
        c.record(DropReason::MacMismatch, DecisionFrom::kEmpty, PeerFrom::kLooked);
        c.drop(DropReason::MacMismatch);
        return;
    }
    c.count(Counter::synack_verified);
    c.act(Act::kSetDecidedVersion);
    if (!c.batch_accept()) {
        c.record(DropReason::PolicyReject, DecisionFrom::kDecided, PeerFrom::kLooked);
        reject(c, kEchoServerNonce);
        return;
    }
    // The ACK is kept: a re-sent SYN-ACK (our ACK lost) is answered with a copy.
    c.act(Act::kSendUdp, u8v(UdpMsg::kAck), u8v(To::kSource), kKeep);
    c.act(Act::kArmTimer);  // until kAckKeepMs
    c.record(DropReason::None, DecisionFrom::kDecided, PeerFrom::kLooked);
    c.set_auth(Auth::kAllowed);
    c.count(Counter::authorized);
    c.count(Counter::udp_control_consumed);
    c.consume();
    c.act(Act::kReleaseHeld);
}

// udp_fallback(): the peer did not take part in a handshake: its address decides.
template <class Ctx>
void fallback(Ctx &c) {
    if (!c.ask(detail::need_acl(DirFrom::kFromSides, PuFrom::kHandshake, PortFrom::kResponder)))
        return;
    c.act(Act::kSetPeer, u8v(PeerFrom::kNone));
    c.act(Act::kSetDecidedVersion);
    c.count(Counter::acl_decisions);
    c.count(Counter::udp_fallbacks);
    if (c.acl_accept()) {
        c.record(DropReason::None, DecisionFrom::kDecided, PeerFrom::kNone);
        c.act(Act::kFreeHs);
        c.set_auth(Auth::kAllowed);
        c.count(Counter::authorized);
        c.act(Act::kReleaseHeld);
        return;
    }
    c.record(DropReason::PolicyReject, DecisionFrom::kDecided, PeerFrom::kNone);
    c.act(Act::kFreeHs);
    c.set_auth(Auth::kRejected);
    c.count(Counter::rejected);
    c.act(Act::kDropHeld, u8v(DropReason::PolicyReject));
}

// udp_timeout()
template <class Ctx>
void timer(Ctx &c) {
    if (c.timer_stale()) {
        c.act(Act::kDisarm);
        return;
    }
    if (c.parked() || c.in_batch()) return;  // the slow path or a batch has it; decide later
    switch (c.s.auth) {
        case Auth::kUdpClientSyn: {
            const uint8_t tries = c.tries();
            if (tries < 3) {
                if (c.elapsed_at_least(kSynScheduleMs[tries])) {
                    c.act(Act::kResend);
                    c.act(Act::kIncTries);
                }
                return;
            }
            if (c.elapsed_at_least(kSynScheduleMs[3])) {
                // No enforcer answered: the peer is a plain host. Remember it for a while.
                c.act(Act::kRememberPlainPeer, 1);
                fallback(c);
            }
            return;
        }
        case Auth::kUdpServerSynAck:
            if (c.elapsed_at_least(kServerWaitMs)) {
                c.count(Counter::udp_expired);
                c.act(Act::kRecordException);
                c.act(Act::kDropHeld, u8v(DropReason::HandshakeExpired));
                c.act(Act::kFreeHs);
                c.set_auth(Auth::kNew);
                c.set_role(Role::kNone);
            }
            return;
        case Auth::kUdpResetSent:
            if (c.elapsed_at_least(kResetHoldMs)) fallback(c);
            return;
        case Auth::kAllowed:
            // The client's kept ACK; or a handshake run beside the authorization that did not
            // complete in time (the authorization stays).
            if (c.elapsed_at_least(c.role_is(Role::kClient) ? kAckKeepMs : kServerWaitMs))
                c.act(Act::kFreeHs);
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
        case EventKind::kTimer:
            timer(c);
            return;
        case EventKind::kReevaluate:
            detail::reevaluate(c, Proto::kUdp);
            return;
        case EventKind::kExpire:
            detail::expire(c);
            return;
        case EventKind::kPortsReused:
        case EventKind::kCount:
            return;
    }
}

}  // namespace segwire::dp::identity::udp::impl
