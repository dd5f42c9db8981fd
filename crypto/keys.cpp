#include "crypto/keys.hpp"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/kdf.h>

#include <algorithm>
#include <cstring>

namespace segwire::crypto {

namespace {

constexpr char kSessionSalt[] = "segwire/v1 session";
constexpr char kSessionInfo[] = "segwire/v1 hmac";

PKeyPtr x25519_private(std::span<const uint8_t, 32> priv) {
    return PKeyPtr(EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, nullptr, priv.data(), 32));
}

}  // namespace

X25519KeyPair::~X25519KeyPair() {
    OPENSSL_cleanse(priv.data(), priv.size());
}

Result<X25519KeyPair> X25519KeyPair::generate() {
    PKeyPtr k(EVP_PKEY_Q_keygen(nullptr, nullptr, "X25519"));
    if (!k) return openssl_error("X25519 keygen");
    X25519KeyPair kp;
    size_t n = 32;
    if (EVP_PKEY_get_raw_private_key(k.get(), kp.priv.data(), &n) != 1 || n != 32)
        return openssl_error("X25519 private key export");
    n = 32;
    if (EVP_PKEY_get_raw_public_key(k.get(), kp.pub.data(), &n) != 1 || n != 32)
        return openssl_error("X25519 public key export");
    kp.pkey = std::shared_ptr<EVP_PKEY>(k.release(), EVP_PKEY_free);
    return kp;
}

Result<X25519KeyPair> X25519KeyPair::from_private(std::span<const uint8_t, 32> priv) {
    PKeyPtr k = x25519_private(priv);
    if (!k) return openssl_error("X25519 private key import");
    X25519KeyPair kp;
    std::memcpy(kp.priv.data(), priv.data(), 32);
    size_t n = 32;
    if (EVP_PKEY_get_raw_public_key(k.get(), kp.pub.data(), &n) != 1 || n != 32)
        return openssl_error("X25519 public key export");
    kp.pkey = std::shared_ptr<EVP_PKEY>(k.release(), EVP_PKEY_free);
    return kp;
}

Result<std::array<uint8_t, 32>> x25519(std::span<const uint8_t, 32> priv,
                                       std::span<const uint8_t, 32> peer_pub) {
    PKeyPtr mine = x25519_private(priv);
    if (!mine) return openssl_error("X25519 private key import");
    return x25519(mine.get(), peer_pub);
}

Result<std::array<uint8_t, 32>> x25519(EVP_PKEY *mine, std::span<const uint8_t, 32> peer_pub) {
    PKeyPtr peer(EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, nullptr, peer_pub.data(), 32));
    if (!mine || !peer) return openssl_error("X25519 key import");
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(mine, nullptr);
    std::array<uint8_t, 32> out{};
    size_t n = out.size();
    bool ok = ctx && EVP_PKEY_derive_init(ctx) == 1 &&
              EVP_PKEY_derive_set_peer(ctx, peer.get()) == 1 &&
              EVP_PKEY_derive(ctx, out.data(), &n) == 1 && n == 32;
    EVP_PKEY_CTX_free(ctx);
    if (!ok) return openssl_error("X25519 derive");  // OpenSSL also refuses all-zero output
    uint8_t acc = 0;
    for (uint8_t b : out) acc |= b;
    if (acc == 0) return Error{Errc::InvalidArgument, "X25519 peer key is a small-order point"};
    return out;
}

Result<std::vector<uint8_t>> hkdf_sha256(std::span<const uint8_t> ikm,
                                         std::span<const uint8_t> salt,
                                         std::span<const uint8_t> info, size_t out_len) {
    EVP_KDF *kdf = EVP_KDF_fetch(nullptr, "HKDF", nullptr);
    EVP_KDF_CTX *ctx = kdf ? EVP_KDF_CTX_new(kdf) : nullptr;
    EVP_KDF_free(kdf);
    if (!ctx) return openssl_error("HKDF fetch");
    static uint8_t empty = 0;
    auto ptr = [](std::span<const uint8_t> s) {
        return const_cast<uint8_t *>(s.empty() ? &empty : s.data());
    };
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, const_cast<char *>("SHA256"), 0),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, ptr(ikm), ikm.size()),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, ptr(salt), salt.size()),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, ptr(info), info.size()),
        OSSL_PARAM_construct_end()};
    std::vector<uint8_t> out(out_len);
    int rc = EVP_KDF_derive(ctx, out.data(), out.size(), params);
    EVP_KDF_CTX_free(ctx);
    if (rc != 1) return openssl_error("HKDF derive");
    return out;
}

Result<std::array<uint8_t, 32>> derive_session_key(std::span<const uint8_t, 32> shared,
                                                   const X25519Public &hc, const X25519Public &hs) {
    uint8_t info[sizeof(kSessionInfo) - 1 + 64];
    std::memcpy(info, kSessionInfo, sizeof(kSessionInfo) - 1);
    std::memcpy(info + sizeof(kSessionInfo) - 1, hc.data(), 32);
    std::memcpy(info + sizeof(kSessionInfo) - 1 + 32, hs.data(), 32);
    auto okm = hkdf_sha256(shared, as_bytes(kSessionSalt, sizeof(kSessionSalt) - 1), info, 32);
    if (!okm) return okm.error();
    std::array<uint8_t, 32> k;
    std::memcpy(k.data(), okm->data(), 32);
    OPENSSL_cleanse(okm->data(), okm->size());
    return k;
}

Result<std::array<uint8_t, 32>> derive_state_key(EVP_PKEY *key) {
    static constexpr char kSalt[] = "segwire/v1 state";
    static constexpr char kInfo[] = "segwire/v1 state mac";
    if (!key || EVP_PKEY_get_base_id(key) != EVP_PKEY_EC)
        return Error{Errc::InvalidArgument, "state key: not a P-256 private key"};
    BIGNUM *d = nullptr;
    if (EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_PRIV_KEY, &d) != 1)
        return openssl_error("state key: private scalar");
    std::array<uint8_t, 32> scalar;
    const int n = BN_bn2binpad(d, scalar.data(), static_cast<int>(scalar.size()));
    BN_clear_free(d);
    if (n != 32) return Error{Errc::InvalidArgument, "state key: not a P-256 private key"};
    auto okm = hkdf_sha256(scalar, as_bytes(kSalt, sizeof(kSalt) - 1),
                           as_bytes(kInfo, sizeof(kInfo) - 1), 32);
    OPENSSL_cleanse(scalar.data(), scalar.size());
    if (!okm) return okm.error();
    std::array<uint8_t, 32> k;
    std::memcpy(k.data(), okm->data(), 32);
    OPENSSL_cleanse(okm->data(), okm->size());
    return k;
}

// --- IdentitySigner ------------------------------------------------------------------------------

IdentitySigner::IdentitySigner(PKeyPtr key, Digest cert_ref, std::string enforcer_id,
                               SignerOptions opt)
    : key_(std::move(key)), cert_ref_(cert_ref), enforcer_id_(std::move(enforcer_id)), opt_(opt) {}

Status IdentitySigner::rotate_locked(uint32_t now) {
    auto kp = X25519KeyPair::generate();
    if (!kp) return kp.error();
    previous_ = std::move(current_);
    current_ = std::make_unique<X25519KeyPair>(std::move(kp.value()));
    rotated_at_ = now;
    return {};
}

Status IdentitySigner::tick(uint32_t now) {
    std::lock_guard lk(mu_);
    if (!current_ || now - rotated_at_ >= opt_.rotation_period) {
        Status s = rotate_locked(now);
        if (!s) return s;
    }
    for (auto &[pu, sc] : by_pu_) {
        if (sc->claims.ephemeral_pub != current_->pub || sc->claims.cert_ref != cert_ref_ ||
            sc->claims.expires_at <= now + opt_.resign_margin) {
            auto r = sign_locked(pu, sc->claims.tags, now);
            if (!r) return r.error();
            sc = *r;
        }
    }
    return {};
}

Result<std::shared_ptr<const SignedClaims>> IdentitySigner::sign_locked(
    const std::string &pu_id, std::vector<std::string> tags, uint32_t now) {
    if (!current_ || now - rotated_at_ >= opt_.rotation_period) {
        Status s = rotate_locked(now);
        if (!s) return s.error();
    }
    auto sc = std::make_shared<SignedClaims>();
    sc->claims.pu_id = pu_id;
    sc->claims.enforcer_id = enforcer_id_;
    sc->claims.tags = std::move(tags);
    sc->claims.cert_ref = cert_ref_;
    sc->claims.issued_at = now;
    sc->claims.expires_at = now + opt_.claims_lifetime;
    sc->claims.ephemeral_pub = current_->pub;
    auto blob = sign_claims(sc->claims, key_.get());
    if (!blob) return blob.error();
    ++signatures_;
    sc->blob = std::move(blob.value());
    sc->hash = sha256(sc->blob);
    return std::shared_ptr<const SignedClaims>(std::move(sc));
}

Result<std::shared_ptr<const SignedClaims>> IdentitySigner::claims_for(
    const std::string &pu_id, std::vector<std::string> tags, uint32_t now) {
    std::sort(tags.begin(), tags.end());
    tags.erase(std::unique(tags.begin(), tags.end()), tags.end());
    std::lock_guard lk(mu_);
    auto it = by_pu_.find(pu_id);
    if (it != by_pu_.end() && current_ && now - rotated_at_ < opt_.rotation_period) {
        const SignedClaims &sc = *it->second;
        if (sc.claims.tags == tags && sc.claims.ephemeral_pub == current_->pub &&
            sc.claims.cert_ref == cert_ref_ && sc.claims.expires_at > now + opt_.resign_margin)
            return it->second;
    }
    auto r = sign_locked(pu_id, std::move(tags), now);
    if (!r) return r;
    by_pu_[pu_id] = *r;
    return r;
}

void IdentitySigner::forget(const std::string &pu_id) {
    std::lock_guard lk(mu_);
    by_pu_.erase(pu_id);
}

Result<std::array<uint8_t, 32>> IdentitySigner::session_key(const X25519Public &local_pub,
                                                            const X25519Public &peer_pub,
                                                            Role role) const {
    std::shared_ptr<EVP_PKEY> mine;  // derive outside the lock; the key object is read-only
    {
        std::lock_guard lk(mu_);
        const X25519KeyPair *kp = nullptr;
        if (current_ && current_->pub == local_pub)
            kp = current_.get();
        else if (previous_ && previous_->pub == local_pub)
            kp = previous_.get();
        if (!kp)
            return Error{Errc::NotFound, "local ephemeral key was rotated out; restart handshake"};
        mine = kp->pkey;
    }
    auto shared = x25519(mine.get(), peer_pub);
    if (!shared) return shared.error();
    auto k = role == Role::Client ? derive_session_key(*shared, local_pub, peer_pub)
                                  : derive_session_key(*shared, peer_pub, local_pub);
    OPENSSL_cleanse(shared->data(), shared->size());
    return k;
}

void IdentitySigner::set_cert_ref(const Digest &ref) {
    std::lock_guard lk(mu_);
    cert_ref_ = ref;
}

Digest IdentitySigner::cert_ref() const {
    std::lock_guard lk(mu_);
    return cert_ref_;
}

X25519Public IdentitySigner::current_public() const {
    std::lock_guard lk(mu_);
    return current_ ? current_->pub : X25519Public{};
}

uint64_t IdentitySigner::signatures() const {
    std::lock_guard lk(mu_);
    return signatures_;
}

}  // namespace segwire::crypto
