#include "crypto/claims.hpp"

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>

#include <cstring>
#include <memory>

namespace segwire::crypto {

const char *to_string(ClaimsReason r) noexcept {
    switch (r) {
        case ClaimsReason::Ok:
            return "ok";
        case ClaimsReason::Truncated:
            return "truncated";
        case ClaimsReason::TooLarge:
            return "too large";
        case ClaimsReason::BadVersion:
            return "unsupported claims version";
        case ClaimsReason::BadSigAlg:
            return "unsupported signature algorithm";
        case ClaimsReason::LengthMismatch:
            return "length mismatch";
        case ClaimsReason::BadIdLength:
            return "bad ID length";
        case ClaimsReason::BadIdChars:
            return "bad ID characters";
        case ClaimsReason::TooManyTags:
            return "too many tags";
        case ClaimsReason::BadTagLength:
            return "bad tag length";
        case ClaimsReason::BadTagSyntax:
            return "bad tag syntax";
        case ClaimsReason::BadTimes:
            return "bad validity times";
        case ClaimsReason::NotYetValid:
            return "not yet valid";
        case ClaimsReason::Expired:
            return "expired";
        case ClaimsReason::UnknownCertificate:
            return "unknown certificate";
        case ClaimsReason::CertificateExpired:
            return "certificate expired";
        case ClaimsReason::EnforcerMismatch:
            return "enforcer ID does not match certificate";
        case ClaimsReason::BadSignature:
            return "bad signature";
        case ClaimsReason::Internal:
            return "internal error";
        case ClaimsReason::CertificateRevoked:
            return "certificate revoked";
        case ClaimsReason::UnknownPu:
            return "PU unknown";
        case ClaimsReason::NotHosted:
            return "PU hosted by another enforcer";
    }
    return "?";
}

namespace {

bool id_chars_ok(std::span<const uint8_t> s) noexcept {
    for (uint8_t c : s)
        if (c < 0x21 || c > 0x7e) return false;
    return true;
}

// "key=value": non-empty key without '=', no control characters (UTF-8 bytes >= 0x80 allowed
// because Console tags may hold them).
bool tag_syntax_ok(std::span<const uint8_t> s) noexcept {
    size_t eq = s.size();
    for (size_t i = 0; i < s.size(); ++i) {
        uint8_t c = s[i];
        if (c < 0x20 || c == 0x7f) return false;
        if (c == '=' && eq == s.size()) eq = i;
    }
    return eq > 0 && eq < s.size();
}

std::string_view sv(std::span<const uint8_t> s) noexcept {
    return {reinterpret_cast<const char *>(s.data()), s.size()};
}

ClaimsReason fail(const char **detail, ClaimsReason r, const char *why) noexcept {
    if (detail) *detail = why;
    return r;
}

}  // namespace

ClaimsReason decode_claims(std::span<const uint8_t> blob, ClaimsView &out,
                           const char **detail) noexcept {
    if (blob.size() > kClaimsMaxLen)
        return fail(detail, ClaimsReason::TooLarge, "blob longer than 512 bytes");
    if (blob.size() < kClaimsMinLen)
        return fail(detail, ClaimsReason::Truncated, "blob shorter than the minimum claims size");
    ByteReader r(blob);
    uint8_t version = r.u8();
    uint8_t alg = r.u8();
    uint16_t total = r.u16();
    if (version != kClaimsVersion)
        return fail(detail, ClaimsReason::BadVersion, "claims version is not 1");
    if (alg != kSigAlgEcdsaP256Sha256)
        return fail(detail, ClaimsReason::BadSigAlg, "signature algorithm is not ECDSA P-256");
    if (total != blob.size())
        return fail(detail, ClaimsReason::LengthMismatch, "declared length != blob length");

    out = ClaimsView{};
    out.blob = blob;
    out.issued_at = r.u32();
    out.expires_at = r.u32();
    out.ephemeral_pub = std::span<const uint8_t, 32>(r.bytes(32).data(), 32);
    out.cert_ref = std::span<const uint8_t, 32>(r.bytes(32).data(), 32);
    if (out.expires_at <= out.issued_at || out.expires_at - out.issued_at > kMaxClaimsLifetime)
        return fail(detail, ClaimsReason::BadTimes, "expiry not after issue, or lifetime > 24h");

    // Everything after the fixed header must fit before the signature.
    ByteReader body(blob.subspan(kClaimsFixedLen, blob.size() - kClaimsFixedLen - kClaimsSigLen));
    for (std::string_view *id : {&out.pu_id, &out.enforcer_id}) {
        uint8_t n = body.u8();
        if (!body.ok()) return fail(detail, ClaimsReason::Truncated, "ID length past end");
        if (n == 0 || n > kMaxIdLen)
            return fail(detail, ClaimsReason::BadIdLength, "ID length not in 1..64");
        auto s = body.bytes(n);
        if (!body.ok()) return fail(detail, ClaimsReason::Truncated, "ID past end");
        if (!id_chars_ok(s))
            return fail(detail, ClaimsReason::BadIdChars, "ID has non-printable bytes");
        *id = sv(s);
    }
    uint8_t ntags = body.u8();
    if (!body.ok()) return fail(detail, ClaimsReason::Truncated, "tag count past end");
    if (ntags > kMaxTags) return fail(detail, ClaimsReason::TooManyTags, "more than 32 tags");
    for (uint8_t i = 0; i < ntags; ++i) {
        uint8_t n = body.u8();
        if (!body.ok()) return fail(detail, ClaimsReason::Truncated, "tag length past end");
        if (n == 0 || n > kMaxTagLen)
            return fail(detail, ClaimsReason::BadTagLength, "tag length not in 1..128");
        auto s = body.bytes(n);
        if (!body.ok()) return fail(detail, ClaimsReason::Truncated, "tag past end");
        if (!tag_syntax_ok(s))
            return fail(detail, ClaimsReason::BadTagSyntax, "tag is not key=value");
        out.tags[i] = sv(s);
    }
    out.tag_count = ntags;
    if (body.remaining() != 0)
        return fail(detail, ClaimsReason::LengthMismatch, "bytes between tags and signature");
    out.signed_part = blob.first(blob.size() - kClaimsSigLen);
    out.signature = blob.last(kClaimsSigLen);
    if (detail) *detail = "ok";
    return ClaimsReason::Ok;
}

Claims to_claims(const ClaimsView &v) {
    Claims c;
    c.pu_id = std::string(v.pu_id);
    c.enforcer_id = std::string(v.enforcer_id);
    for (uint8_t i = 0; i < v.tag_count; ++i) c.tags.emplace_back(v.tags[i]);
    std::memcpy(c.cert_ref.data(), v.cert_ref.data(), 32);
    std::memcpy(c.ephemeral_pub.data(), v.ephemeral_pub.data(), 32);
    c.issued_at = v.issued_at;
    c.expires_at = v.expires_at;
    return c;
}

Result<size_t> encoded_claims_size(const Claims &c) {
    auto bad = [](const std::string &m) { return Error{Errc::InvalidArgument, "claims: " + m}; };
    for (const std::string *id : {&c.pu_id, &c.enforcer_id}) {
        if (id->empty() || id->size() > kMaxIdLen) return bad("ID '" + *id + "' not 1..64 bytes");
        if (!id_chars_ok(as_bytes(id->data(), id->size())))
            return bad("ID '" + *id + "' has non-printable bytes");
    }
    if (c.tags.size() > kMaxTags) return bad("more than 32 tags");
    size_t n = kClaimsFixedLen + 1 + c.pu_id.size() + 1 + c.enforcer_id.size() + 1;
    for (const auto &t : c.tags) {
        if (t.empty() || t.size() > kMaxTagLen) return bad("tag '" + t + "' not 1..128 bytes");
        if (!tag_syntax_ok(as_bytes(t.data(), t.size())))
            return bad("tag '" + t + "' not key=value");
        n += 1 + t.size();
    }
    if (c.expires_at <= c.issued_at || c.expires_at - c.issued_at > kMaxClaimsLifetime)
        return bad("expiry must be after issue and within 24h");
    n += kClaimsSigLen;
    if (n > kClaimsMaxLen)
        return bad("encoded size " + std::to_string(n) + " exceeds 512 bytes (fewer/shorter tags)");
    return n;
}

namespace {

struct MdCtxFree {
    void operator()(EVP_MD_CTX *c) const noexcept { EVP_MD_CTX_free(c); }
};
struct SigFree {
    void operator()(ECDSA_SIG *s) const noexcept { ECDSA_SIG_free(s); }
};

}  // namespace

Result<std::vector<uint8_t>> sign_claims(const Claims &c, EVP_PKEY *key) {
    auto size = encoded_claims_size(c);
    if (!size) return size.error();
    std::vector<uint8_t> blob(*size);
    ByteWriter w(blob);
    w.u8(kClaimsVersion);
    w.u8(kSigAlgEcdsaP256Sha256);
    w.u16(static_cast<uint16_t>(*size));
    w.u32(c.issued_at);
    w.u32(c.expires_at);
    w.bytes(c.ephemeral_pub);
    w.bytes(c.cert_ref);
    for (const std::string *id : {&c.pu_id, &c.enforcer_id}) {
        w.u8(static_cast<uint8_t>(id->size()));
        w.bytes(as_bytes(id->data(), id->size()));
    }
    w.u8(static_cast<uint8_t>(c.tags.size()));
    for (const auto &t : c.tags) {
        w.u8(static_cast<uint8_t>(t.size()));
        w.bytes(as_bytes(t.data(), t.size()));
    }
    const size_t signed_len = w.pos();

    std::unique_ptr<EVP_MD_CTX, MdCtxFree> md(EVP_MD_CTX_new());
    uint8_t der[80];
    size_t der_len = sizeof(der);
    if (!md || EVP_DigestSignInit(md.get(), nullptr, EVP_sha256(), nullptr, key) != 1 ||
        EVP_DigestSign(md.get(), der, &der_len, blob.data(), signed_len) != 1)
        return openssl_error("sign claims for PU '" + c.pu_id + "'");
    const unsigned char *p = der;
    std::unique_ptr<ECDSA_SIG, SigFree> sig(d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(der_len)));
    if (!sig) return openssl_error("decode ECDSA signature");
    uint8_t *raw = w.reserve(kClaimsSigLen);
    if (!w.ok() || BN_bn2binpad(ECDSA_SIG_get0_r(sig.get()), raw, 32) != 32 ||
        BN_bn2binpad(ECDSA_SIG_get0_s(sig.get()), raw + 32, 32) != 32)
        return Error{Errc::Unsupported, "signing key is not P-256"};
    return blob;
}

ClaimsReason verify_claims_signature(const ClaimsView &v, EVP_PKEY *pub) noexcept {
    if (v.signature.size() != kClaimsSigLen || !pub) return ClaimsReason::Internal;
    std::unique_ptr<ECDSA_SIG, SigFree> sig(ECDSA_SIG_new());
    BIGNUM *r = BN_bin2bn(v.signature.data(), 32, nullptr);
    BIGNUM *s = BN_bin2bn(v.signature.data() + 32, 32, nullptr);
    if (!sig || !r || !s || ECDSA_SIG_set0(sig.get(), r, s) != 1) {
        BN_free(r);
        BN_free(s);
        ERR_clear_error();
        return ClaimsReason::Internal;
    }
    uint8_t der[80];
    unsigned char *p = der;
    int der_len = i2d_ECDSA_SIG(sig.get(), nullptr);
    if (der_len <= 0 || der_len > static_cast<int>(sizeof(der)) ||
        i2d_ECDSA_SIG(sig.get(), &p) != der_len) {
        ERR_clear_error();
        return ClaimsReason::Internal;
    }
    std::unique_ptr<EVP_MD_CTX, MdCtxFree> md(EVP_MD_CTX_new());
    if (!md || EVP_DigestVerifyInit(md.get(), nullptr, EVP_sha256(), nullptr, pub) != 1) {
        ERR_clear_error();
        return ClaimsReason::Internal;
    }
    int rc = EVP_DigestVerify(md.get(), der, static_cast<size_t>(der_len), v.signed_part.data(),
                              v.signed_part.size());
    ERR_clear_error();
    return rc == 1 ? ClaimsReason::Ok : ClaimsReason::BadSignature;
}

}  // namespace segwire::crypto
