// The plain machine: the identity_step / classify cases of tcp_identity.cpp for protocols other
// than TCP and UDP (no handshake can carry identity, so the peer's address decides).
#include "dataplane/identity/plain_machine.hpp"

#include "dataplane/identity/detail.hpp"

namespace segwire::dp::identity::plain {
namespace {

using detail::Ctx;

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

}  // namespace

Result step(const FlowState &state, const Event &ev, const Facts &fx) noexcept {
    static constexpr detail::Handlers kPlain{detail::Proto::kOther, packet, nullptr, nullptr,
                                             false};
    return detail::run_step(state, ev, fx, kPlain);
}

}  // namespace segwire::dp::identity::plain
