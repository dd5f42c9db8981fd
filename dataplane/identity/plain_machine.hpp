// Flows that carry no handshake (ICMP and every protocol but TCP and UDP): classified once, then
// decided by the external-network ACL of the peer's address and re-decided on policy updates.
// The vocabulary is in machine.hpp; the chart in docs/identity-machines.md.
#pragma once

#include "dataplane/identity/machine.hpp"

namespace segwire::dp::identity::plain {

// Events: kPacket, kReevaluate, kExpire. States: kNew, kPass, kAllowed, kRejected.
Result step(const FlowState &state, const Event &ev, const Facts &fx) noexcept;
// The same step the adapter's way (tests): each action and need goes to the oracle as it is
// reached; returns the next state.
FlowState step_direct(const FlowState &state, const Event &ev, Facts &fx, Oracle &o) noexcept;

// The steady state without a step: true only when step(state, {kPacket}, facts) returns just
// [Forward] (checked against step() by the unit tables).
inline bool forwards(const FlowState &s, const PacketFacts &) noexcept {
    return !s.parked && !s.in_batch && (s.auth == Auth::kPass || s.auth == Auth::kAllowed);
}

}  // namespace segwire::dp::identity::plain
