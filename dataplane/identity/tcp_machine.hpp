// The TCP identity handshake (docs/protocol.md §4) as a pure state machine: both roles, the ACL
// fallbacks, verdicts, holding, the HMAC batch and policy re-evaluation of TCP flows. The
// vocabulary and the needs protocol are in machine.hpp; the charts in docs/identity-machines.md.
#pragma once

#include "dataplane/identity/machine.hpp"

namespace segwire::dp::identity::tcp {

// Events: kPacket, kMacsReady, kReevaluate, kExpire, kPortsReused (kTimer: nothing, TCP has no
// timers). States: kNew, kPass, kAllowed, kRejected and the four TCP handshake states.
Result step(const FlowState &state, const Event &ev, const Facts &fx) noexcept;
// The same step the adapter's way (tests): each action and need goes to the oracle as it is
// reached; returns the next state.
FlowState step_direct(const FlowState &state, const Event &ev, Facts &fx, Oracle &o) noexcept;

// The steady state without a step: true only when step(state, {kPacket}, facts) returns just
// [TrackSeq, Forward] - a segment of a pass-through or authorized flow that carries nothing for
// segwire (false: run the step). The adapter asks this first (the established path stays a few
// tests long); tests/unit/identity/fast_path_test checks it against step().
inline bool forwards(const FlowState &s, const PacketFacts &p) noexcept {
    if (s.parked || s.in_batch) return false;
    if (s.auth == Auth::kPass) return true;
    if (s.auth != Auth::kAllowed) return false;
    return p.arrival == Arrival::kInside || (p.opt == TcpOpt::kNoExp && p.kind != TcpKind::kSyn &&
                                             p.kind != TcpKind::kSynAck && !p.dns_reply);
}

}  // namespace segwire::dp::identity::tcp
