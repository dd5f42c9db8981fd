// Ephemeral X25519 keys, the session-key schedule (docs/protocol.md §5) and the local signer that
// keeps each local PU's signed claims blob ready, so sending a SYN costs no public-key operation.
#pragma once

#include <openssl/evp.h>

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "crypto/bytes.hpp"
#include "crypto/claims.hpp"
#include "crypto/pki.hpp"
#include "crypto/result.hpp"

namespace segwire::crypto {

struct X25519KeyPair {
    std::array<uint8_t, 32> priv{};
    X25519Public pub{};
    // The same key as an OpenSSL object: importing a raw X25519 private key recomputes its public
    // key (a full scalar multiplication), so deriving from this halves the cost per new peer.
    std::shared_ptr<EVP_PKEY> pkey;

    static Result<X25519KeyPair> generate();
    static Result<X25519KeyPair> from_private(std::span<const uint8_t, 32> priv);
    ~X25519KeyPair();
};

// RFC 7748 X25519. Fails on an all-zero result (peer sent a small-order point), which a
// contributory key exchange must refuse (RFC 7748 §6.1).
Result<std::array<uint8_t, 32>> x25519(std::span<const uint8_t, 32> priv,
                                       std::span<const uint8_t, 32> peer_pub);
Result<std::array<uint8_t, 32>> x25519(EVP_PKEY *priv, std::span<const uint8_t, 32> peer_pub);

// RFC 5869 HKDF-SHA256 via OpenSSL's EVP_KDF.
Result<std::vector<uint8_t>> hkdf_sha256(std::span<const uint8_t> ikm,
                                         std::span<const uint8_t> salt,
                                         std::span<const uint8_t> info, size_t out_len);

// The key that MACs the files an enforcer keeps for itself (the fail-static policy bundle and peer
// certificates in its state directory, docs/control.md "Fail-static cache"):
//   K_state = HKDF-SHA256(IKM = the P-256 private scalar (32 bytes), salt = "segwire/v1 state",
//                         info = "segwire/v1 state mac", L = 32)
// Only a holder of the enforcer's long-term key can make a file it will accept. Slow path.
Result<std::array<uint8_t, 32>> derive_state_key(EVP_PKEY *p256_key);

// The protocol's session key between two enforcers, per direction of connection set-up:
//   K = HKDF-SHA256(IKM = X25519(e_c, E_s), salt = "segwire/v1 session",
//                   info = "segwire/v1 hmac" || E_c || E_s, L = 32)
// E_c / E_s are the ephemeral public keys from the client's / server's signed claims. One key per
// enforcer pair and rotation period (not per PU pair: a gateway fronting 1000 PUs talking to 1000
// PUs still does one X25519 per peer enforcer). Both claims hashes and both nonces enter every MAC
// input instead, which gives per-connection freshness without a per-connection key schedule.
Result<std::array<uint8_t, 32>> derive_session_key(std::span<const uint8_t, 32> shared_secret,
                                                   const X25519Public &client_eph_pub,
                                                   const X25519Public &server_eph_pub);

enum class Role : uint8_t { Client, Server };  // client = the side whose PU sent the SYN

// A local PU's current signed claims, ready to copy into a SYN / SYN-ACK.
struct SignedClaims {
    std::vector<uint8_t> blob;
    Digest hash{};  // SHA-256(blob)
    Claims claims;
};

struct SignerOptions {
    uint32_t rotation_period = 300;  // seconds between ephemeral X25519 keys
    uint32_t claims_lifetime = 900;  // expires_at - issued_at; > rotation_period so a blob signed
                                     // just before a rotation stays valid for peers
    uint32_t resign_margin = 60;     // re-sign when less than this is left

    // A rotated-out ephemeral key still completes handshakes for one more period (the previous
    // generation): that is its grace period. No session key derived with it is usable later, so
    // a cache of derived keys keeps an entry at most rotation + grace (docs/protocol.md §5).
    uint32_t grace_period() const noexcept { return rotation_period; }
    uint32_t session_key_lifetime() const noexcept { return rotation_period + grace_period(); }
};

// Owned by the control thread; the slow path calls session_key(). Locks a mutex: never call it
// from a worker's hot loop (workers receive immutable SignedClaims via shared_ptr).
class IdentitySigner {
  public:
    IdentitySigner(PKeyPtr longterm_key, Digest cert_ref, std::string enforcer_id,
                   SignerOptions opt = {});

    // Rotates the ephemeral key when due (keeping the previous generation for handshakes in
    // flight) and re-signs every PU whose blob used the old key or nears expiry.
    Status tick(uint32_t now);

    // Current blob for a PU; signs a new one if the tags changed, the key rotated or it nears
    // expiry. Tags are compared as a sorted set.
    Result<std::shared_ptr<const SignedClaims>> claims_for(const std::string &pu_id,
                                                           std::vector<std::string> tags,
                                                           uint32_t now);
    void forget(const std::string &pu_id);

    // Session key for a handshake in which this enforcer used ephemeral key `local_pub` (from its
    // own claims) in role `local_role` and the peer `peer_pub`. Fails if `local_pub` was rotated
    // out (older than two periods): the handshake is then restarted.
    Result<std::array<uint8_t, 32>> session_key(const X25519Public &local_pub,
                                                const X25519Public &peer_pub,
                                                Role local_role) const;

    // A renewed certificate (same long-term key): claims signed from now on carry its reference;
    // tick() and claims_for() re-sign every PU whose blob names another.
    void set_cert_ref(const Digest &ref);
    Digest cert_ref() const;

    X25519Public current_public() const;
    uint64_t signatures() const;  // how many ECDSA signs so far (tests assert caching)

  private:
    Result<std::shared_ptr<const SignedClaims>> sign_locked(const std::string &pu_id,
                                                            std::vector<std::string> tags,
                                                            uint32_t now);
    Status rotate_locked(uint32_t now);

    mutable std::mutex mu_;
    PKeyPtr key_;
    Digest cert_ref_;
    std::string enforcer_id_;
    SignerOptions opt_;
    std::unique_ptr<X25519KeyPair> current_, previous_;
    uint32_t rotated_at_ = 0;
    uint64_t signatures_ = 0;
    std::map<std::string, std::shared_ptr<const SignedClaims>> by_pu_;
};

}  // namespace segwire::crypto
