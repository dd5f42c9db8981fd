// Internal to the identity stage's adapter (adapter.cpp, tcp_adapter.cpp, udp_adapter.cpp): what
// constants the adapter files share.
#pragma once

#include "dataplane/identity/stage.hpp"

namespace segwire::dp::identity {

inline constexpr uint32_t kPlainPeerS = 60;   // a server without enforcer is remembered this long
inline constexpr uint32_t kConfirmKeepS = 3;  // B answers late proofs with its confirmation

}  // namespace segwire::dp::identity
