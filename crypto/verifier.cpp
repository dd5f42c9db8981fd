#include "crypto/verifier.hpp"

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include <algorithm>
#include <cstring>
#include <mutex>

namespace segwire::crypto {

uint64_t cache_seed() noexcept {
    uint64_t s = 0;
    if (RAND_bytes(reinterpret_cast<unsigned char *>(&s), sizeof(s)) != 1)
        s = 0x6a09e667f3bcc908ULL;  // still correct, only predictable set placement
    return s;
}

void secure_wipe(void *p, size_t n) noexcept {
    OPENSSL_cleanse(p, n);
}

// --- PeerCertStore -------------------------------------------------------------------------------

PeerCertStore::PeerCertStore(TrustStore trust) : trust_(std::move(trust)) {}

Result<Digest> PeerCertStore::add(X509 *cert, int64_t now) {
    auto info = trust_.verify_enforcer_cert(cert, now);
    if (!info) return info.error();
    std::unique_lock lk(mu_);
    if (std::binary_search(revoked_.begin(), revoked_.end(), info->ref))
        return Error{Errc::InvalidArgument,
                     "certificate of " + info->enforcer_id + " is revoked (revocation list)"};
    Entry &e = by_ref_[info->ref];
    e.enforcer_id = info->enforcer_id;
    e.enforcer_group = info->enforcer_group;
    e.not_after = info->not_after;
    e.public_key = std::shared_ptr<EVP_PKEY>(info->public_key.release(), EVP_PKEY_free);
    return info->ref;
}

Result<Digest> PeerCertStore::add_pem(std::string_view pem, int64_t now) {
    auto c = cert_from_pem(pem);
    if (!c) return c.error();
    return add(c->get(), now);
}

Result<Digest> PeerCertStore::add_der(std::span<const uint8_t> der, int64_t now) {
    auto c = cert_from_der(der);
    if (!c) return c.error();
    return add(c->get(), now);
}

size_t PeerCertStore::size() const {
    std::shared_lock lk(mu_);
    return by_ref_.size();
}

bool PeerCertStore::find(const Digest &ref, Entry &out) const {
    std::shared_lock lk(mu_);
    auto it = by_ref_.find(ref);
    if (it == by_ref_.end()) return false;
    out = it->second;
    return true;
}

size_t PeerCertStore::set_revoked(std::vector<Digest> refs) {
    std::sort(refs.begin(), refs.end());
    refs.erase(std::unique(refs.begin(), refs.end()), refs.end());
    std::unique_lock lk(mu_);
    size_t dropped = 0;
    for (const Digest &r : refs) dropped += by_ref_.erase(r);
    revoked_ = std::move(refs);
    return dropped;
}

bool PeerCertStore::revoked(const Digest &ref) const {
    std::shared_lock lk(mu_);
    return std::binary_search(revoked_.begin(), revoked_.end(), ref);
}

// --- VerifiedClaims ------------------------------------------------------------------------------

X25519Public VerifiedClaims::ephemeral_pub() const noexcept {
    X25519Public p;
    std::memcpy(p.data(), blob_.data() + 12, 32);  // fixed offset, docs/protocol.md §3
    return p;
}

VerifiedClaims::Ref VerifiedClaims::ref(const ClaimsView &v, std::string_view s) const noexcept {
    return Ref{static_cast<uint16_t>(reinterpret_cast<const uint8_t *>(s.data()) - v.blob.data()),
               static_cast<uint16_t>(s.size())};
}

void VerifiedClaims::assign(const ClaimsView &v, const Digest &hash, uint32_t expires) noexcept {
    len_ = static_cast<uint16_t>(v.blob.size());
    std::memcpy(blob_.data(), v.blob.data(), len_);
    hash_ = hash;
    issued_at_ = v.issued_at;
    expires_at_ = expires;
    pu_id_ = ref(v, v.pu_id);
    enforcer_id_ = ref(v, v.enforcer_id);
    tag_count_ = v.tag_count;
    for (size_t i = 0; i < v.tag_count; ++i) tags_[i] = ref(v, v.tags[i]);
    group_len_ = 0;
}

// --- ClaimsVerifier ------------------------------------------------------------------------------

ClaimsReason ClaimsVerifier::verify(std::span<const uint8_t> blob, uint32_t now,
                                    VerifiedClaims &out, std::string *detail) const {
    auto say = [&](ClaimsReason r, const std::string &msg) {
        if (detail) *detail = msg;
        return r;
    };
    ClaimsView v;
    const char *why = nullptr;
    ClaimsReason r = decode_claims(blob, v, &why);
    if (r != ClaimsReason::Ok) return say(r, std::string("claims: ") + why);
    const std::string who = "claims of PU '" + std::string(v.pu_id) + "' from enforcer '" +
                            std::string(v.enforcer_id) + "'";
    if (v.issued_at > now + opt_.clock_skew)
        return say(ClaimsReason::NotYetValid, who + ": issued in the future");
    if (v.expires_at <= now) return say(ClaimsReason::Expired, who + ": expired");

    Digest ref;
    std::memcpy(ref.data(), v.cert_ref.data(), 32);
    PeerCertStore::Entry cert;
    if (certs_.revoked(ref))
        return say(ClaimsReason::CertificateRevoked, who + ": signing certificate revoked");
    if (!certs_.find(ref, cert))
        return say(ClaimsReason::UnknownCertificate, who + ": signing certificate unknown");
    if (cert.not_after <= static_cast<int64_t>(now))
        return say(ClaimsReason::CertificateExpired, who + ": signing certificate expired");
    if (cert.enforcer_id != v.enforcer_id)
        return say(ClaimsReason::EnforcerMismatch,
                   who + ": certificate belongs to '" + cert.enforcer_id + "'");
    r = verify_claims_signature(v, cert.public_key.get());
    if (r != ClaimsReason::Ok) return say(r, who + ": " + to_string(r));

    uint32_t exp = v.expires_at;
    if (cert.not_after < static_cast<int64_t>(exp)) exp = static_cast<uint32_t>(cert.not_after);
    out.assign(v, sha256(blob), exp);
    out.set_enforcer_group(cert.enforcer_group);
    return say(ClaimsReason::Ok, who + ": ok");
}

}  // namespace segwire::crypto
