// The UDP identity handshake (docs/protocol.md §9) as a pure state machine: control datagrams on
// the flow's tuple, holding, retransmission and expiry timers, RESET for forgotten flows, the ACL
// fallback and policy re-evaluation of UDP flows. The vocabulary and the needs protocol are in
// machine.hpp; the charts in docs/identity-machines.md.
#pragma once

#include "dataplane/identity/machine.hpp"

namespace segwire::dp::identity::udp {

// Events: kPacket, kMacsReady, kTimer, kReevaluate, kExpire. States: kNew, kPass, kAllowed,
// kRejected and the three UDP handshake states.
Result step(const FlowState &state, const Event &ev, const Facts &fx) noexcept;
// The same step the adapter's way (tests): each action and need goes to the oracle as it is
// reached; returns the next state.
FlowState step_direct(const FlowState &state, const Event &ev, Facts &fx, Oracle &o) noexcept;

// The steady state without a step: true only when step(state, {kPacket}, facts) returns just
// [Forward] - a datagram of a pass-through or authorized flow that is neither a possible control
// datagram nor a DNS answer to snoop (checked against step() by the unit tables).
inline bool forwards(const FlowState &s, const PacketFacts &p) noexcept {
    if (s.parked || s.in_batch) return false;
    if (s.auth == Auth::kPass) return true;
    return s.auth == Auth::kAllowed && !p.udp_len8 &&
           !(p.arrival == Arrival::kOutside && p.dns_reply);
}

}  // namespace segwire::dp::identity::udp
