// The TCP identity handshake (docs/protocol.md §4) as a pure state machine: both roles, the ACL
// fallbacks, verdicts, holding, the HMAC batch and policy re-evaluation of TCP flows. The
// vocabulary and the needs protocol are in machine.hpp; the charts in docs/identity-machines.md.
#pragma once

#include "dataplane/identity/machine.hpp"

namespace segwire::dp::identity::tcp {

// Events: kPacket, kMacsReady, kReevaluate, kExpire, kPortsReused (kTimer: nothing, TCP has no
// timers). States: kNew, kPass, kAllowed, kRejected and the four TCP handshake states.
Result step(const FlowState &state, const Event &ev, const Facts &fx) noexcept;

}  // namespace segwire::dp::identity::tcp
