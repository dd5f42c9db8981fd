// The fixed inputs of the v1 test vectors (docs/protocol.md §9). Shared by the generator
// (make_vectors, run by hand once) and vectors_test, which recomputes everything deterministic
// from these inputs and checks it against vectors/handshake_v1.txt.
#pragma once

#include <cstdint>

namespace segwire::crypto::vectors {

// RFC 7748 §6.1 key pairs: client enforcer = Alice, server enforcer = Bob.
inline constexpr const char *kClientEphPriv =
    "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a";
inline constexpr const char *kServerEphPriv =
    "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb";
inline constexpr const char *kClientNonce = "000102030405060708090a0b0c0d0e0f";
inline constexpr const char *kServerNonce = "101112131415161718191a1b1c1d1e1f";
inline constexpr uint32_t kIssuedAt = 1'800'000'000;  // 2027-01-15T08:00:00Z
inline constexpr uint32_t kExpiresAt = kIssuedAt + 900;
// Flow: TCP 10.0.0.1:40000 -> 10.0.1.2:443 (and UDP 10.0.0.1:5353 -> 10.0.1.2:53).
inline constexpr uint8_t kClientIp[4] = {10, 0, 0, 1};
inline constexpr uint8_t kServerIp[4] = {10, 0, 1, 2};

}  // namespace segwire::crypto::vectors
