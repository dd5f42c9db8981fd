// Internal to the identity stage's adapter (adapter.cpp, tcp_adapter.cpp, udp_adapter.cpp): what
// constants the adapter files share.
#pragma once

#include "dataplane/identity/stage.hpp"

namespace segwire::dp::identity {

inline constexpr uint32_t kPlainPeerS = 60;   // a server without enforcer is remembered this long
inline constexpr uint32_t kConfirmKeepS = 3;  // B answers late proofs with its confirmation

// Whole milliseconds: a comparison with N ms is exactly `ticks >= N * ms_tsc`.
inline uint32_t whole_ms(uint64_t ticks, uint64_t ms_tsc) noexcept {
    const uint64_t ms = ticks / ms_tsc;
    return ms > UINT32_MAX ? UINT32_MAX : static_cast<uint32_t>(ms);
}

}  // namespace segwire::dp::identity
