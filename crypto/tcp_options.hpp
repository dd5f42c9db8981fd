// The one TCP option walker, shared by the packet parser (dataplane/packet/parse.cpp), MSS
// clamping (dataplane/packet/rewrite.cpp) and the identity option codec (crypto/wire.cpp).
// Header-only and without DPDK so the parser library, which links nothing, and crypto/, which
// must not depend on dataplane/, can both use it. noexcept, no allocation: it runs per packet.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace segwire::crypto {

// TCP option kinds (IANA "TCP Option Kind Numbers") segwire looks at.
inline constexpr uint8_t kTcpOptEol = 0;
inline constexpr uint8_t kTcpOptNop = 1;
inline constexpr uint8_t kTcpOptMss = 2;
inline constexpr uint8_t kTcpOptWscale = 3;
inline constexpr uint8_t kTcpOptSackOk = 4;
inline constexpr uint8_t kTcpOptSack = 5;
inline constexpr uint8_t kTcpOptTimestamps = 8;
inline constexpr uint8_t kTcpOptFastOpen = 34;  // RFC 7413
inline constexpr uint8_t kTcpOptExp1 = 253;     // RFC 6994 experimental (segwire's option)
inline constexpr uint8_t kTcpOptExp2 = 254;     // RFC 6994 experimental (Linux's old TFO form)
inline constexpr uint16_t kTfoExId = 0xF989;    // ExID of the pre-RFC Fast Open option

struct TcpOptionWalk {
    bool ok = true;  // false: a length byte is missing, below 2 or runs past the area, or the
                     // visitor refused an option
    size_t end = 0;  // where the list ended: the EOL's offset, or the area's size
};

// Walks a TCP options area (the bytes after the 20-byte header). EOL ends the list (what follows
// is padding); NOP is one byte and is not visited; every other option needs 2 <= length <= what
// is left. Calls visit(offset, kind, length) for each such option in order; a visitor returning
// false stops the walk as malformed (the parser refuses lengths that disagree with the kind's
// definition, because later stages rewrite options in place).
template <class Visit>
constexpr TcpOptionWalk walk_tcp_options(std::span<const uint8_t> o, Visit &&visit) noexcept {
    size_t i = 0;
    while (i < o.size()) {
        const uint8_t kind = o[i];
        if (kind == kTcpOptEol) return {true, i};
        if (kind == kTcpOptNop) {
            ++i;
            continue;
        }
        if (o.size() - i < 2) return {false, i};
        const uint8_t len = o[i + 1];
        if (len < 2 || len > o.size() - i) return {false, i};
        if (!visit(i, kind, len)) return {false, i};
        i += len;
    }
    return {true, i};
}

}  // namespace segwire::crypto
