// The plain machine: the identity_step / classify cases of tcp_identity.cpp for protocols other
// than TCP and UDP (no handshake can carry identity, so the peer's address decides).
// Templates on the step context (detail.hpp): instantiated for the needs protocol in
// plain_machine.cpp and for the worker's adapter in dataplane/identity/adapter.cpp.
#pragma once

#include "dataplane/identity/detail.hpp"

namespace segwire::dp::identity::plain::impl {

template <class Ctx>
void packet(Ctx &c) {
    if (detail::gates(c)) return;
    switch (c.s.auth) {
        case Auth::kPass:
        case Auth::kAllowed:
            c.forward();
            return;
        case Auth::kRejected:
            c.drop(DropReason::FlowRejected);
            return;
        case Auth::kNew: {
            // classify()
            if (!c.ask(detail::need(NeedKind::kClassify))) return;
            c.act(Act::kSetLocalSide);
            // ICMP errors and neighbour discovery serve connections already decided (and PMTU
            // discovery must not be broken by port rules): they pass untouched, like flows
            // that are not ours.
            if (c.classify_pass() || c.icmp_control()) {
                c.set_auth(Auth::kPass);
                c.count(Counter::passthrough);
                c.forward();
                return;
            }
            const DirFrom dir = c.outside() ? DirFrom::kIncoming : DirFrom::kOutgoing;
            detail::acl_decision(c, PuFrom::kClassified, dir, PortFrom::kPolicyPort,
                                 detail::Proto::kOther);
            return;
        }
        default:
            break;
    }
    c.drop(DropReason::FlowRejected);  // cannot happen: a handshake state without a handshake
}

// One event of the machine.
template <class Ctx>
void dispatch(Ctx &c) noexcept {
    switch (c.ev.kind) {
        case EventKind::kPacket:
            packet(c);
            return;
        case EventKind::kReevaluate:
            detail::reevaluate(c, detail::Proto::kOther);
            return;
        case EventKind::kExpire:
            detail::expire(c);
            return;
        default:
            return;
    }
}

}  // namespace segwire::dp::identity::plain::impl
