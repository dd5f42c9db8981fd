// L4 mode of the TCP machine (docs/l4-mode.md): the identity records R1 / R2 / R3 travel as real,
// acknowledged payload at the start of each direction's byte stream, right after the TCP
// handshake; end hosts never see them. The enforcers send, retransmit and consume the records
// (adapter actions L4Send / L4Resend / Consume), hold their hosts' data until mutual
// authorization with key confirmation, and then shift sequence and acknowledgment numbers for the
// flow's life (L4Shift). Same step context and needs protocol as the v1 machine (tcp_impl.hpp,
// which includes this file and calls into it from classify(), packet(), macs_ready() and timer()).
//
//   A (client side)                                   B (server side)
//   New -SYN in, peer in an L4 network-> L4ClientSyn   New -plain SYN out, peer L4-> L4ServerSyn
//   L4ClientSyn -SYN-ACK out-> L4ClientWait            L4ServerSyn -SYN-ACK in-> L4ServerWait
//   L4ClientWait: the host's ACK -> R1 sent;           L4ServerWait: R1 -> verify, rules(in),
//     R2 -> verify, rules(out), MAC_sa (batch)           MAC_sa (batch) -> R2 sent;
//     -> R3 sent, shift -> L4ClientConfirm               R3 -> MAC_ack -> ACK, shift -> Allowed
//   L4ClientConfirm: R3 acknowledged -> Allowed        no R1 within kL4WaitMs: the ACL decides
#pragma once

#include "dataplane/identity/detail.hpp"

namespace segwire::dp::identity::tcp::l4 {

using detail::need;

constexpr uint8_t u8v(auto e) {
    return detail::u8(e);
}

// Record numbers of the L4Send action.
inline constexpr uint8_t kR1 = 1, kR2 = 2, kR3 = 3;

// A record is sent kTries times in all: again kRtoMs after the first send, doubling (200, 400,
// 800 ms); kRtoMs << 3 after the last the exchange is given up, 3 s after the record was first
// sent (docs/l4-mode.md "Reliability of the records").
inline constexpr uint32_t kRtoMs = 200;
inline constexpr uint8_t kTries = 4;
// B gives a connection whose client sent no R1 to the ACL this long after the server's SYN-ACK
// (a client host without an enforcer in an L4 network).
inline constexpr uint32_t kWaitMs = 1000;
// The half-open deadline of v1 (tcp_impl.hpp kHalfOpenMs), here for the whole exchange.
inline constexpr uint32_t kDeadlineMs = 5000;

// Refuse the exchange: both hosts get an RST (each from its peer's address, with the numbers it
// expects), the flow is rejected.
template <class Ctx>
void refuse(Ctx &c, DropReason why, DecisionFrom d, PeerFrom p) {
    c.record(why, d, p);
    detail::reject_tcp(c, true, why);
}

// The peer's claims in a record: true when verified; otherwise parked for the slow path or
// refused (RSTs both ways by default: the hosts may hold an open connection).
template <class Ctx>
bool verify_peer(Ctx &c, bool reset_responder = true) {
    return detail::verified_peer(c, reset_responder);
}

// A: the client's SYN towards a peer in an L4 network. The SYN goes on plain (no option, no
// token); the host's own TCP Fast Open option and SYN data are taken off (the host sends the data
// again after the handshake, RFC 7413 §4.2): the stream's first byte must be R1.
template <class Ctx>
void start_client(Ctx &c) {
    if (!c.ask(need(NeedKind::kPlainPeer))) return;
    if (c.plain_peer()) {  // a server known to have no enforcer
        detail::acl_decision(c, PuFrom::kClassified, DirFrom::kOutgoing, PortFrom::kResponder,
                             detail::Proto::kTcp);
        return;
    }
    if (!c.ask(detail::need_claims(PuFrom::kClassified))) return;
    if (!c.claims_present()) {
        detail::acl_decision(c, PuFrom::kClassified, DirFrom::kOutgoing, PortFrom::kResponder,
                             detail::Proto::kTcp);
        return;
    }
    if (!c.hs_pool()) {
        c.drop(c.hs_refusal());
        return;
    }
    c.act(Act::kAllocHs, u8v(PuFrom::kClassified));
    c.act(Act::kArmTimer);
    c.act(Act::kFillHs, u8v(HsFill::kClientClaims));
    c.act(Act::kFillHs, u8v(HsFill::kL4Isn));
    if (!c.ask(detail::need_nonce(NonceFor::kClient))) return;
    if (!c.nonce_ok()) {
        c.act(Act::kFreeHs);
        c.drop(DropReason::SlowpathBusy);
        return;
    }
    // With the server enforcer's TFO cookie, R1 rides in the SYN (RFC 7413): no extra round trip.
    if (!c.ask(detail::need_edit(Edit::kL4Syn))) return;
    if (!c.edit_ok()) {
        c.act(Act::kFreeHs);
        c.drop(c.edit_failure());
        return;
    }
    c.set_auth(Auth::kL4ClientSyn);
    c.count(Counter::l4_started);
    c.forward();
}

// A retransmitted SYN of an L4 exchange: as the first (A: kL4Syn, B: plain).
template <class Ctx>
void resend_syn(Ctx &c, Edit how) {
    if (!c.ask(detail::need_edit(how))) return;
    if (!c.edit_ok()) {
        c.drop(DropReason::TokenMalformed);
        return;
    }
    c.forward();
}

// An RST from either host ends the exchange; the flow starts over at its next SYN.
template <class Ctx>
void reset(Ctx &c) {
    c.act(Act::kRestart);
    if (c.outside() && !detail::scrub_if_marked(c)) return;
    c.forward();
}

template <class Ctx>
void client_syn(Ctx &c) {
    if (!c.outside()) {
        if (c.is_syn()) {  // R1 may ride in it again: the current claims
            if (!c.ask(detail::need_claims(PuFrom::kHandshake))) return;
            if (!c.claims_present()) {
                c.drop(DropReason::NoSessionKey);
                return;
            }
            resend_syn(c, Edit::kL4Syn);
            return;
        }
        if (c.is_rst()) {
            reset(c);
            return;
        }
        c.hold();
        return;
    }
    if (c.is_rst()) {
        reset(c);
        return;
    }
    if (!c.is_synack()) {
        c.drop(DropReason::FlowRejected);
        return;
    }
    if (!c.acks_syn()) {  // a blind SYN-ACK (it acknowledges neither the SYN nor R1 in it)
        c.drop(DropReason::TcpOutOfWindow);
        return;
    }
    // The server's ISN: R2 starts after it. R1 sent in the SYN and not acknowledged here (no
    // cookie, or a stale one: B ignored the data) goes again after the handshake.
    // segwire's v1 option on it: not B's answer to a plain SYN (a forgery, or a path that adds
    // it): the host never sees it.
    if (c.opt_present()) {
        c.drop(DropReason::TokenMalformed);
        return;
    }
    c.act(Act::kFillHs, u8v(HsFill::kL4Isn));
    if (!c.ask(detail::need_edit(Edit::kL4SynAckIn))) return;
    if (!c.edit_ok()) {
        c.drop(DropReason::TokenMalformed);
        return;
    }
    c.set_auth(Auth::kL4ClientWait);
    c.forward();
}

// A: R2 is complete: verify B's claims, decide the outgoing rules, check MAC_sa in the batch.
template <class Ctx>
void client_take_r2(Ctx &c) {
    if (!verify_peer(c)) return;
    if (!detail::session_key(c, Role::kClient)) return;
    c.act(Act::kSetPeer, u8v(PeerFrom::kLooked));
    c.act(Act::kFillHs, u8v(HsFill::kL4R2In));
    if (!c.ask(detail::need_rules(DirFrom::kOutgoing, PuFrom::kHandshake, PortFrom::kSrcPort,
                                  PeerFrom::kLooked)))
        return;
    c.act(Act::kQueueMacs, u8v(BatchOp::kL4ClientCheckR2), u8v(PeerFrom::kLooked),
          u8v(DecisionFrom::kDecided));
}

template <class Ctx>
void client_wait(Ctx &c) {
    if (!c.outside()) {
        if (c.is_rst()) {
            reset(c);
            return;
        }
        if (c.is_syn()) {  // R1 may ride in it again: the current claims
            if (!c.ask(detail::need_claims(PuFrom::kHandshake))) return;
            if (!c.claims_present()) {
                c.drop(DropReason::NoSessionKey);
                return;
            }
            resend_syn(c, Edit::kL4Syn);
            return;
        }
        // The host's first segment after the SYN-ACK (its ACK, or data): R1 goes first.
        if (!c.l4_sent()) {
            if (!c.ask(detail::need_claims(PuFrom::kHandshake))) return;
            if (!c.claims_present()) {  // the PU's claims went away: the deadline ends it
                c.drop(DropReason::NoSessionKey);
                return;
            }
            c.act(Act::kL4Send, kR1);
        }
        if (c.seq_data()) {  // host data waits for mutual authorization
            c.hold();
            return;
        }
        c.forward();
        return;
    }
    if (c.is_rst()) {
        reset(c);
        return;
    }
    if (c.is_synack()) {  // our host's ACK was lost: the server repeats its SYN-ACK
        if (c.opt_present()) {
            c.drop(DropReason::TokenMalformed);
            return;
        }
        if (!c.ask(detail::need_edit(Edit::kL4SynAckIn))) return;
        if (!c.edit_ok()) {
            c.drop(DropReason::TokenMalformed);
            return;
        }
        c.forward();
        return;
    }
    if (c.acks_record()) c.act(Act::kL4Acked);
    switch (c.l4_rec()) {
        case L4Rec::kR2:
            client_take_r2(c);
            return;
        case L4Rec::kPartial:
        case L4Rec::kOld:
            c.consume();
            return;
        case L4Rec::kNone:
            if (!c.seq_data()) {
                // A bare ACK: one that acknowledges record bytes is the peer enforcer's (the host
                // never sent them); any other may go on.
                if (c.acks_record()) {
                    c.consume();
                    return;
                }
                c.forward();
                return;
            }
            [[fallthrough]];  // a FIN before any record: the server side has no L4 enforcer
        case L4Rec::kNotRecord:
            // The stream does not start with R2: no enforcer speaks L4 for the server, and R1 may
            // already be in its stream. Refused (an operator lists only enforced networks as L4).
            refuse(c, DropReason::L4NoRecord, DecisionFrom::kEmpty, PeerFrom::kNone);
            return;
        case L4Rec::kBeyond:
            c.hold();
            return;
        case L4Rec::kR1:
        case L4Rec::kR3:
        case L4Rec::kBad:
        case L4Rec::kCount:
            break;
    }
    refuse(c, DropReason::TokenMalformed, DecisionFrom::kEmpty, PeerFrom::kNone);
}

// A: authorized and shifting; R3 not yet acknowledged (B holds the server's data until it has
// checked R3).
template <class Ctx>
void client_confirm(Ctx &c) {
    if (c.outside()) {
        if (c.acks_record()) {  // B has R3: nothing left to retransmit
            c.act(Act::kL4Acked);
            c.act(Act::kFreeHs);
            c.set_auth(Auth::kAllowed);
        } else if (c.l4_rec_is(L4Rec::kOld)) {
            // B repeats R2: it has not got R3.
            c.act(Act::kL4Resend);
            c.consume();
            return;
        }
        if (!detail::scrub_if_marked(c)) return;
    }
    c.forward();
}

// B: the server's SYN-ACK goes on acknowledging R1 if the SYN carried it, with our TFO cookie if
// the SYN asked for one; the exchange then waits for R1 (or R3).
template <class Ctx>
bool synack_out(Ctx &c) {
    if (!c.ask(detail::need_edit(Edit::kL4SynAckOut))) return false;
    if (!c.edit_ok()) {
        c.drop(c.edit_failure());
        return false;
    }
    c.act(Act::kArmTimer);  // kWaitMs for R1 from here
    c.set_auth(Auth::kL4ServerWait);
    c.forward();
    return true;
}

// B: a plain SYN from a client in an L4 network. It goes on to the server (without any TFO
// option or data: the stream's first byte must be R1); the client's enforcer sends R1 after the
// handshake.
template <class Ctx>
void start_server(Ctx &c) {
    // R1 as TFO data under a valid cookie of ours (the facts report it only then): A's claims
    // and our incoming rules are decided now; the MACs need the server's ISN (its SYN-ACK).
    const bool r1 = c.l4_rec_is(L4Rec::kR1);
    if (r1) {
        if (c.nonce_seen()) {  // R1 of another connection, replayed
            c.drop(DropReason::SynReplayed);
            return;
        }
        if (!verify_peer(c, false)) return;  // (a SYN: the server has seen nothing yet)
        c.act(Act::kSetPeer, u8v(PeerFrom::kLooked));
        c.count(Counter::syn_verified);
        if (!c.ask(detail::need_rules(DirFrom::kIncoming, PuFrom::kClassified,
                                      PortFrom::kDstPort, PeerFrom::kLooked)))
            return;
        c.act(Act::kSetDecidedVersion);
        if (!c.rules_accept()) {
            c.record(DropReason::PolicyReject, DecisionFrom::kDecided, PeerFrom::kLooked);
            detail::reject_tcp(c, false, DropReason::PolicyReject);
            return;
        }
    }
    if (!c.hs_pool()) {
        c.drop(c.hs_refusal());
        return;
    }
    c.act(Act::kAllocHs, u8v(PuFrom::kClassified));
    c.act(Act::kArmTimer);
    c.act(Act::kFillHs, u8v(HsFill::kL4Isn));  // the client's ISN: R1 starts after it
    if (r1) c.act(Act::kFillHs, u8v(HsFill::kL4R1In));
    if (!c.ask(detail::need_edit(Edit::kStripTfo))) return;
    if (!c.edit_ok()) {
        c.act(Act::kFreeHs);
        c.drop(DropReason::TokenMalformed);
        return;
    }
    c.set_auth(Auth::kL4ServerSyn);
    c.count(Counter::l4_started);
    c.forward();
}

template <class Ctx>
void server_syn(Ctx &c) {
    if (c.outside()) {
        if (c.is_syn()) {
            resend_syn(c, Edit::kStripTfo);
            return;
        }
        if (c.is_rst()) {
            reset(c);
            return;
        }
        c.hold();
        return;
    }
    if (c.is_rst()) {
        reset(c);
        return;
    }
    if (!c.is_synack()) {
        c.forward();
        return;
    }
    c.act(Act::kFillHs, u8v(HsFill::kL4Isn));  // the server's ISN: R2 starts after it
    if (c.has_peer()) {
        // R1 came in the SYN: R2 is signed now and follows the SYN-ACK at once.
        if (!c.ask(detail::need_claims(PuFrom::kHandshake))) return;
        if (!c.claims_present()) {
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
        c.act(Act::kQueueMacs, u8v(BatchOp::kL4ServerSignR2), u8v(PeerFrom::kFlow),
              u8v(DecisionFrom::kEmpty));
        return;
    }
    synack_out(c);
}

// B: a client without an L4 enforcer (its stream starts with host data, or no R1 came in time):
// the client's address decides, as for a plain SYN outside L4 networks.
template <class Ctx>
void server_plain_client(Ctx &c) {
    c.count(Counter::l4_plain_clients);
    detail::acl_decision(c, PuFrom::kHandshake, DirFrom::kIncoming, PortFrom::kResponder,
                         detail::Proto::kTcp);
}

// B: R1 is complete: verify A's claims and the incoming rules, then sign R2 in the batch.
template <class Ctx>
void server_take_r1(Ctx &c) {
    // R1 of another connection, replayed (its nonce opened another flow within the claims'
    // lifetime): refused before it costs a context's HMACs (the MACs would refuse it anyway).
    if (c.nonce_seen()) {
        refuse(c, DropReason::SynReplayed, DecisionFrom::kEmpty, PeerFrom::kNone);
        return;
    }
    if (!verify_peer(c)) return;
    c.act(Act::kSetPeer, u8v(PeerFrom::kLooked));
    c.count(Counter::syn_verified);
    if (!c.ask(detail::need_rules(DirFrom::kIncoming, PuFrom::kHandshake, PortFrom::kDstPort,
                                  PeerFrom::kLooked)))
        return;
    c.act(Act::kSetDecidedVersion);
    if (!c.rules_accept()) {
        refuse(c, DropReason::PolicyReject, DecisionFrom::kDecided, PeerFrom::kLooked);
        return;
    }
    if (!c.ask(detail::need_claims(PuFrom::kHandshake))) return;
    if (!c.claims_present()) {
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
    c.act(Act::kFillHs, u8v(HsFill::kL4R1In));  // R1 taken: the stream expects R3 next
    c.act(Act::kQueueMacs, u8v(BatchOp::kL4ServerSignR2), u8v(PeerFrom::kFlow),
          u8v(DecisionFrom::kDecided));
}

// B: R3 is complete: A holds the session key and saw R2. Authorized both ways.
template <class Ctx>
void server_take_r3(Ctx &c) {
    if (!c.mac_ok()) {
        refuse(c, DropReason::MacMismatch, DecisionFrom::kEmpty, PeerFrom::kFlow);
        return;
    }
    // The flow is reported once it is authorized (not at R1: a replayed R1 never gets here).
    if (!c.ask(detail::need_rules(DirFrom::kIncoming, PuFrom::kHandshake, PortFrom::kDstPort,
                                  PeerFrom::kFlow)))
        return;
    c.act(Act::kSetDecidedVersion);
    if (!c.rules_accept()) {
        refuse(c, DropReason::PolicyReject, DecisionFrom::kDecided, PeerFrom::kFlow);
        return;
    }
    c.record(DropReason::None, DecisionFrom::kDecided, PeerFrom::kFlow);
    c.act(Act::kL4AckPeer);  // A stops retransmitting R3 (the server may have nothing to say)
    c.act(Act::kL4Shift);
    c.count(Counter::ack_proofs_verified);
    c.count(Counter::authorized);
    c.set_auth(Auth::kAllowed);
    c.act(Act::kFreeHs);
    c.consume();
    c.act(Act::kReleaseHeld);
}

template <class Ctx>
void server_wait(Ctx &c) {
    if (!c.outside()) {
        if (c.is_rst()) {
            reset(c);
            return;
        }
        if (c.is_synack()) {  // the client side lost it: as the first
            if (!c.ask(detail::need_edit(Edit::kL4SynAckOut))) return;
            if (!c.edit_ok()) {
                c.drop(c.edit_failure());
                return;
            }
            c.forward();
            // R2 went out behind the lost SYN-ACK, and A drops a record that comes before the
            // SYN-ACK: it goes again right behind this one, with its retransmissions counted
            // afresh (the exchange's deadline still runs from the first SYN-ACK).
            if (c.l4_sent() && !c.l4_acked()) {
                c.act(Act::kL4Resend);
                c.act(Act::kResetTries);
            }
            return;
        }
        if (c.seq_data()) {  // the server speaks first: held until R3
            c.hold();
            return;
        }
        c.forward();
        return;
    }
    if (c.is_rst()) {
        reset(c);
        return;
    }
    if (c.is_syn()) {
        resend_syn(c, Edit::kStripTfo);
        return;
    }
    if (c.acks_record()) c.act(Act::kL4Acked);
    switch (c.l4_rec()) {
        case L4Rec::kR1:
            server_take_r1(c);
            return;
        case L4Rec::kR3:
            server_take_r3(c);
            return;
        case L4Rec::kPartial:
            c.consume();
            return;
        case L4Rec::kOld:
            // A repeats R1: our R2 did not reach it (or is on its way).
            if (c.l4_sent()) c.act(Act::kL4Resend);
            c.consume();
            return;
        case L4Rec::kBeyond:
            c.hold();
            return;
        case L4Rec::kNone:
            if (!c.seq_data()) {
                if (c.acks_record()) {  // acknowledges R2, which the server never sent
                    c.consume();
                    return;
                }
                c.forward();  // the client's ACK of the handshake
                return;
            }
            [[fallthrough]];  // a FIN before any record: a plain client
        case L4Rec::kNotRecord:
            if (c.l4_sent()) break;  // R1 was taken: what follows it must be R3
            server_plain_client(c);
            return;
        case L4Rec::kR2:
        case L4Rec::kBad:
        case L4Rec::kCount:
            break;
    }
    refuse(c, DropReason::TokenMalformed, DecisionFrom::kEmpty, PeerFrom::kFlow);
}

// The HMACs of the burst are done.
template <class Ctx>
void macs_ready(Ctx &c) {
    if (c.ev.op == BatchOp::kL4ServerSignR2) {
        if (!c.ask(detail::need_claims(PuFrom::kHandshake))) return;
        if (!c.claims_present()) {
            c.drop(DropReason::NoSessionKey);
            return;
        }
        c.count(Counter::synack_signed);
        if (c.is_synack()) {  // R1 came in the SYN: the SYN-ACK first, R2 right behind it
            if (synack_out(c)) c.act(Act::kL4Send, kR2);
            return;
        }
        c.act(Act::kL4Send, kR2);  // acknowledges R1
        c.consume();               // the segment that carried R1
        return;
    }
    // A: R2's MAC proves that B holds the session key and saw our nonce and both ISNs.
    if (!c.synack_mac_ok()) {
        refuse(c, DropReason::MacMismatch, DecisionFrom::kEmpty, PeerFrom::kLooked);
        return;
    }
    c.count(Counter::synack_verified);
    c.act(Act::kSetDecidedVersion);
    if (!c.batch_accept()) {
        refuse(c, DropReason::PolicyReject, DecisionFrom::kDecided, PeerFrom::kLooked);
        return;
    }
    c.act(Act::kL4Send, kR3);  // acknowledges R2
    c.act(Act::kL4Shift);
    c.record(DropReason::None, DecisionFrom::kDecided, PeerFrom::kLooked);
    c.count(Counter::authorized);
    c.set_auth(Auth::kL4ClientConfirm);
    c.consume();  // the segment that carried R2
    c.act(Act::kReleaseHeld);
}

// Give the exchange up: both hosts get RSTs with the numbers each expects (there is no packet in
// hand), the held data goes.
template <class Ctx>
void give_up(Ctx &c) {
    c.count(Counter::half_open_expired);
    c.act(Act::kRecordException);
    c.set_auth(Auth::kRejected);
    c.count(Counter::rejected);
    c.act(Act::kDropHeld, u8v(DropReason::HandshakeExpired));
    c.act(Act::kFreeHs);
    if (c.acks_seen()) c.act(Act::kCutRsts);
}

// The context's timer: record retransmissions, B's wait for R1, the deadline.
template <class Ctx>
void timer(Ctx &c) {
    switch (c.s.auth) {
        case Auth::kL4ClientSyn:
        case Auth::kL4ServerSyn:
            if (c.elapsed_at_least(kDeadlineMs)) {
                c.count(Counter::half_open_expired);
                detail::expire(c);
                c.act(Act::kRemoveFlow);
            }
            return;
        default:
            break;
    }
    // L4ClientWait, L4ClientConfirm, L4ServerWait
    if (c.l4_sent() && !c.l4_acked()) {
        const uint8_t tries = c.tries();
        if (tries + 1 >= kTries) {
            if (c.since_send_at_least(kRtoMs << tries)) give_up(c);
            return;
        }
        if (c.since_send_at_least(kRtoMs << tries)) {
            c.act(Act::kL4Resend);
            c.act(Act::kIncTries);
        }
        return;
    }
    if (c.s.auth == Auth::kL4ClientConfirm) {  // R3 acknowledged: nothing left to wait for
        c.act(Act::kDisarm);
        return;
    }
    if (c.s.auth == Auth::kL4ServerWait && !c.l4_sent() && c.elapsed_at_least(kWaitMs)) {
        // No R1: a client host without an enforcer. Its address decides.
        c.count(Counter::l4_plain_clients);
        c.act(Act::kSetPeer, u8v(PeerFrom::kNone));
        if (!c.ask(detail::need_acl(DirFrom::kIncoming, PuFrom::kHandshake, PortFrom::kResponder)))
            return;
        c.act(Act::kSetDecidedVersion);
        c.count(Counter::acl_decisions);
        if (c.acl_accept()) {
            c.record(DropReason::None, DecisionFrom::kDecided, PeerFrom::kNone);
            c.set_auth(Auth::kAllowed);
            c.act(Act::kFreeHs);
            c.count(Counter::authorized);
            c.act(Act::kReleaseHeld);
            return;
        }
        c.record(c.acl_refusal(), DecisionFrom::kDecided, PeerFrom::kNone);
        c.set_auth(Auth::kRejected);
        c.count(Counter::rejected);
        c.act(Act::kDropHeld, u8v(c.acl_refusal()));
        c.act(Act::kFreeHs);
        if (c.acks_seen()) c.act(Act::kCutRsts);
        return;
    }
    // The hosts hold an open connection: it is reset, not forgotten (a forgotten flow would be
    // picked up mid-stream and judged by address).
    if (c.s.auth != Auth::kL4ClientConfirm && c.elapsed_at_least(kDeadlineMs)) give_up(c);
}

}  // namespace segwire::dp::identity::tcp::l4
