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

}  // namespace segwire::dp::identity::udp
