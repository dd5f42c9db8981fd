// Internal to the identity stage's adapter (adapter.cpp, tcp_adapter.cpp, udp_adapter.cpp): what
// the adapter knows about one event beyond the machine's Facts.
#pragma once

#include "dataplane/identity/stage.hpp"

namespace segwire::dp::identity {

inline constexpr uint8_t kParkedBit = 1;  // Flow::parked: waiting for the slow path
inline constexpr uint8_t kInBatchBit =
    2;  // Flow::parked: an HMAC batch op of this burst is pending
inline constexpr uint32_t kPlainPeerS = 60;   // a server without enforcer is remembered this long
inline constexpr uint32_t kConfirmKeepS = 3;  // B answers late proofs with its confirmation

}  // namespace segwire::dp::identity
