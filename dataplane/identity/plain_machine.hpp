// Flows that carry no handshake (ICMP and every protocol but TCP and UDP): classified once, then
// decided by the external-network ACL of the peer's address and re-decided on policy updates.
// The vocabulary is in machine.hpp; the chart in docs/identity-machines.md.
#pragma once

#include "dataplane/identity/machine.hpp"

namespace segwire::dp::identity::plain {

// Events: kPacket, kReevaluate, kExpire. States: kNew, kPass, kAllowed, kRejected.
Result step(const FlowState &state, const Event &ev, const Facts &fx) noexcept;

}  // namespace segwire::dp::identity::plain
