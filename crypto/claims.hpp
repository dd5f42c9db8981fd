// Identity claims: what one enforcer asserts about one of its PUs, signed with the enforcer's
// long-term P-256 key. A compact, versioned, length-bounded binary blob; see docs/protocol.md §3.
//
// Decoding is split so the packet path never allocates: decode_claims() fills a ClaimsView of
// spans into the caller's buffer; to_claims() makes an owning copy for the control side.
#pragma once

#include <openssl/evp.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "crypto/bytes.hpp"
#include "crypto/result.hpp"

namespace segwire::crypto {

inline constexpr uint8_t kClaimsVersion = 1;
inline constexpr uint8_t kSigAlgEcdsaP256Sha256 = 1;  // raw r||s, 64 bytes
inline constexpr size_t kClaimsSigLen = 64;
inline constexpr size_t kClaimsFixedLen = 76;  // header through cert ref
inline constexpr size_t kClaimsMaxLen = 512;   // hard bound on the whole blob
inline constexpr size_t kClaimsMinLen = kClaimsFixedLen + 1 + 1 + 1 + 1 + 1 + kClaimsSigLen;
inline constexpr size_t kMaxIdLen = 64;  // PU ID and enforcer ID
inline constexpr size_t kMaxTags = 32;
inline constexpr size_t kMaxTagLen = 128;  // one "key=value"
inline constexpr uint32_t kMaxClaimsLifetime = 24 * 3600;

using X25519Public = std::array<uint8_t, 32>;

// Why a claims blob was refused. Stable numbering: it is exported in drop reasons and logs.
enum class ClaimsReason : uint8_t {
    Ok = 0,
    // structure (decode_claims)
    Truncated,  // shorter than the fixed header or than a declared field
    TooLarge,   // above kClaimsMaxLen
    BadVersion,
    BadSigAlg,
    LengthMismatch,  // declared total length != buffer length, or trailing bytes
    BadIdLength,     // PU or enforcer ID empty or > kMaxIdLen
    BadIdChars,      // ID holds bytes outside printable ASCII (0x21..0x7e)
    TooManyTags,
    BadTagLength,  // tag empty or > kMaxTagLen
    BadTagSyntax,  // not "key=value" with a non-empty key, or control characters
    BadTimes,      // expires_at <= issued_at or lifetime > kMaxClaimsLifetime
    // verification (ClaimsVerifier)
    NotYetValid,  // issued_at in the future beyond the allowed clock skew
    Expired,
    UnknownCertificate,  // cert ref not in the peer certificate store
    CertificateExpired,  // the signing certificate's notAfter has passed
    EnforcerMismatch,    // enforcer ID differs from the certificate's subject CN
    BadSignature,
    Internal,            // OpenSSL failure while verifying (not the peer's fault)
    CertificateRevoked,  // the signing certificate is on the Console's revocation list
    // binding to the Console's record (control/slowpath.cpp, after the signature verified)
    UnknownPu,  // the claimed PU is not in the receiver's policy snapshot
    NotHosted,  // the PU's record names another enforcer (enforcerID) than the signer
};
const char *to_string(ClaimsReason r) noexcept;

// Owning form, used by the signer and tests.
struct Claims {
    std::string pu_id;
    std::string enforcer_id;
    std::vector<std::string> tags;  // "key=value"
    Digest cert_ref{};              // SHA-256 of the enforcer certificate (DER)
    uint32_t issued_at = 0;         // unix seconds
    uint32_t expires_at = 0;
    X25519Public ephemeral_pub{};

    bool operator==(const Claims &) const = default;
};

// Non-owning, allocation-free view of a decoded blob; valid while the blob bytes live.
struct ClaimsView {
    std::span<const uint8_t> blob;         // the whole blob
    std::span<const uint8_t> signed_part;  // blob minus signature
    std::span<const uint8_t> signature;    // 64 bytes r||s
    uint32_t issued_at = 0;
    uint32_t expires_at = 0;
    std::span<const uint8_t, 32> ephemeral_pub{static_cast<const uint8_t *>(nullptr), 32};
    std::span<const uint8_t, 32> cert_ref{static_cast<const uint8_t *>(nullptr), 32};
    std::string_view pu_id;
    std::string_view enforcer_id;
    uint8_t tag_count = 0;
    std::array<std::string_view, kMaxTags> tags{};
};

// Bounds-checked structural decode. No allocation, no exceptions; `detail`, when given, receives
// a static human-readable description of the first problem found.
ClaimsReason decode_claims(std::span<const uint8_t> blob, ClaimsView &out,
                           const char **detail = nullptr) noexcept;

Claims to_claims(const ClaimsView &v);

// Checks field bounds and syntax before signing (the encoder refuses what the decoder would).
Result<size_t> encoded_claims_size(const Claims &c);

// Encodes and signs with the enforcer's long-term P-256 key. Slow path (one ECDSA sign).
Result<std::vector<uint8_t>> sign_claims(const Claims &c, EVP_PKEY *signing_key);

// Signature check only (one ECDSA verify); structure must already be decoded.
ClaimsReason verify_claims_signature(const ClaimsView &v, EVP_PKEY *public_key) noexcept;

}  // namespace segwire::crypto
