// Receiver side of identity: peer enforcer certificates (verified once against the Console CA
// bundle), claims verification (one ECDSA verify per new blob) and the two caches that make the
// steady state free of public-key operations:
//   ClaimsCache      SHA-256(blob) -> VerifiedClaims   (a SYN with a known blob: one hash + lookup)
//   SessionKeyCache  (client eph key, server eph key) -> expanded HMAC key (no X25519 per
//   connection)
#pragma once

#include <algorithm>
#include <array>
#include <cstring>
#include <cstdint>
#include <map>
#include <shared_mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "crypto/bytes.hpp"
#include "crypto/cache.hpp"
#include "crypto/claims.hpp"
#include "crypto/hmac.hpp"
#include "crypto/pki.hpp"
#include "crypto/result.hpp"

namespace segwire::crypto {

// Certificates of peer enforcers, keyed by SHA-256(DER) (the claims' cert ref). Certificates are
// only admitted after chain/expiry/usage verification. Thread-safe (control thread adds, slow path
// looks up); not used on the hot path.
class PeerCertStore {
  public:
    explicit PeerCertStore(TrustStore trust);

    // Verifies and adds; returns the certificate reference. Re-adding is a no-op; a revoked
    // certificate is refused.
    Result<Digest> add(X509 *cert, int64_t now_unix);
    Result<Digest> add_pem(std::string_view pem, int64_t now_unix);
    Result<Digest> add_der(std::span<const uint8_t> der, int64_t now_unix);
    size_t size() const;

    struct Entry {
        std::string enforcer_id;
        std::string enforcer_group;  // from the verified certificate, "" none
        int64_t not_after = 0;
        std::shared_ptr<EVP_PKEY> public_key;
    };
    // A copy (cheap: shared key) so the caller holds no lock while verifying.
    bool find(const Digest &ref, Entry &out) const;

    // The revocation list in force (the Console's, from the bundle): replaces the previous one,
    // drops the listed certificates from the store and refuses them from now on. Returns how
    // many certificates were dropped.
    size_t set_revoked(std::vector<Digest> refs);
    bool revoked(const Digest &ref) const;

  private:
    TrustStore trust_;
    mutable std::shared_mutex mu_;
    std::map<Digest, Entry> by_ref_;
    std::vector<Digest> revoked_;  // sorted
};

// A verified claims blob, self-contained and fixed-size so it can live in a FixedCache.
class VerifiedClaims {
  public:
    std::span<const uint8_t> blob() const noexcept { return {blob_.data(), len_}; }
    const Digest &hash() const noexcept { return hash_; }
    std::string_view pu_id() const noexcept { return str(pu_id_); }
    std::string_view enforcer_id() const noexcept { return str(enforcer_id_); }
    // The enforcer group the signing certificate carries ("" none): not in the blob, read from the
    // certificate when the claims verified (docs/scale-out.md).
    std::string_view enforcer_group() const noexcept { return {group_.data(), group_len_}; }
    void set_enforcer_group(std::string_view g) noexcept {
        group_len_ = static_cast<uint8_t>(std::min(g.size(), group_.size()));
        std::memcpy(group_.data(), g.data(), group_len_);
    }
    size_t tag_count() const noexcept { return tag_count_; }
    std::string_view tag(size_t i) const noexcept { return str(tags_[i]); }
    X25519Public ephemeral_pub() const noexcept;
    uint32_t issued_at() const noexcept { return issued_at_; }
    uint32_t expires_at() const noexcept { return expires_at_; }  // min(claims, certificate)
    // SHA-256 of the signing certificate (the claims' cert_ref), in the blob.
    const uint8_t *cert_ref() const noexcept { return blob_.data() + 44; }

    // Fills from a decoded view of `blob` (copied here); used by the verifier and by the local
    // side for its own blobs.
    void assign(const ClaimsView &v, const Digest &hash, uint32_t expires_at) noexcept;

  private:
    struct Ref {
        uint16_t off = 0, len = 0;
    };
    std::string_view str(Ref r) const noexcept {
        return {reinterpret_cast<const char *>(blob_.data()) + r.off, r.len};
    }
    Ref ref(const ClaimsView &v, std::string_view s) const noexcept;

    std::array<uint8_t, kClaimsMaxLen> blob_{};
    uint16_t len_ = 0;
    uint8_t tag_count_ = 0;
    Digest hash_{};
    uint32_t issued_at_ = 0, expires_at_ = 0;
    Ref pu_id_, enforcer_id_;
    std::array<Ref, kMaxTags> tags_{};
    std::array<char, 64> group_{};
    uint8_t group_len_ = 0;
};

struct VerifyOptions {
    uint32_t clock_skew = 60;  // seconds a peer's clock may run ahead
};

class ClaimsVerifier {
  public:
    ClaimsVerifier(const PeerCertStore &certs, VerifyOptions opt = {}) : certs_(certs), opt_(opt) {}

    // Full verification of an unknown blob: structure, times, certificate, enforcer ID, signature.
    // Slow path: one ECDSA verify (~100 us). `detail` (optional) gets a message naming the field.
    ClaimsReason verify(std::span<const uint8_t> blob, uint32_t now, VerifiedClaims &out,
                        std::string *detail = nullptr) const;

  private:
    const PeerCertStore &certs_;
    VerifyOptions opt_;
};

using ClaimsCache = FixedCache<32, VerifiedClaims>;

struct SessionKeyEntry {
    HmacKey key;
};
// Keyed like the HKDF info: client's then server's ephemeral public key. X25519 public keys are
// uniformly distributed enough for the set index (and the set index is seeded anyway). Entries
// live SignerOptions::session_key_lifetime() (rotation + grace) and are wiped when they go.
using SessionKey = std::array<uint8_t, 64>;
using SessionKeyCache = FixedCache<64, SessionKeyEntry, 4, /*Secret=*/true>;

inline SessionKey session_cache_key(const X25519Public &client_eph,
                                    const X25519Public &server_eph) noexcept {
    SessionKey k;
    std::memcpy(k.data(), client_eph.data(), 32);
    std::memcpy(k.data() + 32, server_eph.data(), 32);
    return k;
}

}  // namespace segwire::crypto
