#include "tools/console/jwt.hpp"

#include <openssl/bn.h>
#include <openssl/core_names.h>

#include <cjose/cjose.h>
#include <httplib.h>

#include "tools/console/error.hpp"
#include "tools/console/util.hpp"

namespace segwire::console {
namespace {

struct JwsFree {
    void operator()(cjose_jws_t *j) const noexcept { cjose_jws_release(j); }
};
using JwsPtr = std::unique_ptr<cjose_jws_t, JwsFree>;
struct HeaderFree {
    void operator()(cjose_header_t *h) const noexcept { cjose_header_release(h); }
};
using HeaderPtr = std::unique_ptr<cjose_header_t, HeaderFree>;

ConsoleError unauthorized(const std::string &msg) {
    return ConsoleError(401, msg);
}

std::string cjose_message(const cjose_err &err) {
    return err.message ? err.message : "unknown error";
}

JwkPtr wrap(cjose_jwk_t *k) {
    return JwkPtr(k, JwkRelease{});
}

int64_t numeric_claim(const rapidjson::Value &payload, const char *key, bool *present) {
    const rapidjson::Value *v = member(payload, key);
    *present = v && v->IsNumber();
    if (!*present) return 0;
    return v->IsInt64() ? v->GetInt64() : static_cast<int64_t>(v->GetDouble());
}

// A compact JWS parsed by cjose, with its protected header's alg and kid. Only the three-part
// compact form is accepted (cjose also takes no other).
struct Parsed {
    JwsPtr jws;
    std::string alg, kid;
};

bool parse(std::string_view token, Parsed *out, std::string *problem) {
    cjose_err err{};
    out->jws.reset(cjose_jws_import(token.data(), token.size(), &err));
    if (!out->jws) {
        *problem = "not a compact JWS (" + cjose_message(err) + ")";
        return false;
    }
    cjose_header_t *h = cjose_jws_get_protected(out->jws.get());  // owned by the JWS
    const char *alg = h ? cjose_header_get(h, CJOSE_HDR_ALG, &err) : nullptr;
    const char *kid = h ? cjose_header_get(h, CJOSE_HDR_KID, &err) : nullptr;
    out->alg = alg ? alg : "";
    out->kid = kid ? kid : "";
    return true;
}

// The verified payload as JSON (cjose_jws_verify has succeeded before this is called).
bool payload(const Parsed &p, rapidjson::Document *out) {
    uint8_t *text = nullptr;
    size_t len = 0;
    cjose_err err{};
    if (!cjose_jws_get_plaintext(p.jws.get(), &text, &len, &err)) return false;
    out->Parse(reinterpret_cast<const char *>(text), len);
    return !out->HasParseError() && out->IsObject();
}

// The EC JWK (crv P-256) of a P-256 key: private when the key has its private half.
JwkPtr ec_jwk_from_key(EVP_PKEY *key) {
    unsigned char point[65];
    size_t plen = 0;
    if (EVP_PKEY_get_octet_string_param(key, OSSL_PKEY_PARAM_PUB_KEY, point, sizeof(point),
                                        &plen) != 1 ||
        plen != 65)
        throw ConsoleError(500, "token key: not an uncompressed P-256 point");
    BIGNUM *d = nullptr;
    unsigned char dbuf[32];
    bool has_d = EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_PRIV_KEY, &d) == 1 &&
                 BN_bn2binpad(d, dbuf, sizeof(dbuf)) == 32;
    BN_clear_free(d);
    cjose_jwk_ec_keyspec spec{};
    spec.crv = CJOSE_JWK_EC_P_256;
    spec.x = point + 1;
    spec.xlen = 32;
    spec.y = point + 33;
    spec.ylen = 32;
    if (has_d) {
        spec.d = dbuf;
        spec.dlen = sizeof(dbuf);
    }
    cjose_err err{};
    JwkPtr jwk = wrap(cjose_jwk_create_EC_spec(&spec, &err));
    OPENSSL_cleanse(dbuf, sizeof(dbuf));
    if (!jwk) throw ConsoleError(500, "token key as JWK: " + cjose_message(err));
    return jwk;
}

}  // namespace

void JwkRelease::operator()(_cjose_jwk_int *k) const noexcept {
    cjose_jwk_release(k);
}

// ---- TokenSigner ----------------------------------------------------------------------------

TokenSigner::TokenSigner(crypto::PKeyPtr key, std::string kid)
    : jwk_(ec_jwk_from_key(key.get())), kid_(std::move(kid)) {}

std::string TokenSigner::sign(const rapidjson::Value &claims) const {
    cjose_err err{};
    HeaderPtr hdr(cjose_header_new(&err));
    if (!hdr || !cjose_header_set(hdr.get(), CJOSE_HDR_ALG, CJOSE_HDR_ALG_ES256, &err) ||
        !cjose_header_set(hdr.get(), "typ", "JWT", &err) ||
        !cjose_header_set(hdr.get(), CJOSE_HDR_KID, kid_.c_str(), &err))
        throw ConsoleError(500, "token header: " + cjose_message(err));
    std::string body = to_json(claims);
    JwsPtr jws(cjose_jws_sign(jwk_.get(), hdr.get(), reinterpret_cast<const uint8_t *>(body.data()),
                              body.size(), &err));
    const char *compact = nullptr;
    if (!jws || !cjose_jws_export(jws.get(), &compact, &err))
        throw ConsoleError(500, "token signing failed: " + cjose_message(err));
    return compact;
}

rapidjson::Document TokenSigner::verify(std::string_view token, int64_t now) const {
    Parsed p;
    std::string problem;
    if (!parse(token, &p, &problem)) throw unauthorized("malformed token: " + problem);
    // The algorithm is ours to choose, not the token's: only ES256 is ever checked.
    if (p.alg != CJOSE_HDR_ALG_ES256) throw unauthorized("malformed token: alg must be ES256");
    cjose_err err{};
    if (!cjose_jws_verify(p.jws.get(), jwk_.get(), &err))
        throw unauthorized("token signature does not verify (not issued by this Console)");
    rapidjson::Document claims;
    if (!payload(p, &claims)) throw unauthorized("malformed token: payload is not a JSON object");
    bool has_exp = false;
    int64_t exp = numeric_claim(claims, "exp", &has_exp);
    if (!has_exp) throw unauthorized("malformed token: no exp claim");
    if (now >= exp)
        throw unauthorized("token expired at " + rfc3339(exp) + " (now " + rfc3339(now) + ")");
    return claims;
}

// ---- JWKS -------------------------------------------------------------------------------------

JwkPtr import_verification_jwk(const rapidjson::Value &jwk, std::string *problem) {
    const rapidjson::Value *kty = member(jwk, "kty");
    std::string type = kty && kty->IsString() ? kty->GetString() : "";
    if (type != "RSA" && type != "EC") {
        *problem = "unsupported kty \"" + type + "\" (RSA or EC)";
        return nullptr;
    }
    if (type == "EC") {
        const rapidjson::Value *crv = member(jwk, "crv");
        if (!crv || !crv->IsString() || std::string(crv->GetString()) != "P-256") {
            *problem = "EC key must be on curve P-256";
            return nullptr;
        }
    }
    std::string text = to_json(jwk);
    cjose_err err{};
    JwkPtr key = wrap(cjose_jwk_import(text.c_str(), text.size(), &err));
    if (!key) {
        *problem = "invalid key material: " + cjose_message(err);
        return nullptr;
    }
    return key;
}

JwksVerifier::JwksVerifier(std::string realm, std::string source, std::string audience,
                           std::string ca_file)
    : realm_(std::move(realm)),
      source_(std::move(source)),
      audience_(std::move(audience)),
      ca_file_(std::move(ca_file)) {}

void JwksVerifier::load_locked(int64_t now) {
    std::string text;
    if (source_.rfind("http://", 0) == 0)
        throw ConsoleError(500,
                           realm_ + ": JWKS " + source_ + " refused: key sets only over https");
    if (source_.rfind("https://", 0) == 0) {
        size_t slash = source_.find('/', source_.find("//") + 2);
        std::string base = source_.substr(0, slash);
        std::string path = slash == std::string::npos ? "/" : source_.substr(slash);
        httplib::Client cli(base);
        cli.enable_server_certificate_verification(true);
        if (!ca_file_.empty()) cli.set_ca_cert_path(ca_file_.c_str());
        cli.set_connection_timeout(5);
        cli.set_read_timeout(5);
        auto res = cli.Get(path.c_str());
        if (!res || res->status != 200)
            throw ConsoleError(502, realm_ + ": cannot fetch JWKS from " + source_ + ": " +
                                        (res ? "HTTP " + std::to_string(res->status)
                                             : httplib::to_string(res.error())));
        text = res->body;
    } else {
        try {
            text = read_file(source_);
        } catch (const ConsoleError &) {
            throw ConsoleError(500, realm_ + ": cannot read JWKS file " + source_);
        }
    }
    rapidjson::Document doc;
    doc.Parse(text.c_str());
    const rapidjson::Value *keys = doc.HasParseError() ? nullptr : member(doc, "keys");
    if (!keys || !keys->IsArray())
        throw ConsoleError(500, realm_ + ": JWKS " + source_ + " has no \"keys\" array");
    keys_.clear();
    for (rapidjson::SizeType i = 0; i < keys->Size(); ++i) {
        std::string problem;
        JwkPtr k = import_verification_jwk((*keys)[i], &problem);
        if (!k) continue;  // one unusable key (another kty) must not hide the others
        const rapidjson::Value *kid = member((*keys)[i], "kid");
        keys_[kid && kid->IsString() ? kid->GetString() : ""] = std::move(k);
    }
    loaded_at_ = now;
}

rapidjson::Document JwksVerifier::verify(std::string_view token, int64_t now) {
    if (source_.empty())
        throw ConsoleError(401, realm_ + " is not enabled on this Console (no JWKS configured)",
                           "realm");
    Parsed p;
    std::string problem;
    if (!parse(token, &p, &problem))
        throw unauthorized(realm_ + ": malformed identity token: " + problem);
    // Only these two, each with its own key type: never "none", never an HMAC keyed with a
    // public key.
    if (p.alg != CJOSE_HDR_ALG_RS256 && p.alg != CJOSE_HDR_ALG_ES256)
        throw unauthorized(realm_ + ": identity token alg \"" + p.alg +
                           "\" not accepted (RS256 or ES256)");
    JwkPtr key;
    {
        std::lock_guard lock(mu_);
        bool remote = source_.find("://") != std::string::npos;
        auto find = [&]() -> JwkPtr {
            auto it = keys_.find(p.kid);
            if (it == keys_.end() && p.kid.empty() && keys_.size() == 1) it = keys_.begin();
            return it == keys_.end() ? nullptr : it->second;
        };
        if (loaded_at_ == 0 || (remote && now - loaded_at_ > 300)) load_locked(now);
        key = find();
        if (!key && (!remote || now - loaded_at_ > 10)) {  // rotation; bounded refetch rate
            load_locked(now);
            key = find();
        }
    }
    if (!key)
        throw unauthorized(realm_ + ": identity token kid \"" + p.kid + "\" is not in the JWKS");
    cjose_err err{};
    cjose_jwk_kty_t kty = cjose_jwk_get_kty(key.get(), &err);
    bool type_ok =
        p.alg == CJOSE_HDR_ALG_RS256 ? kty == CJOSE_JWK_KTY_RSA : kty == CJOSE_JWK_KTY_EC;
    if (!type_ok)
        throw unauthorized(realm_ + ": identity token alg " + p.alg + " does not fit key \"" +
                           p.kid + "\"'s type");
    if (!cjose_jws_verify(p.jws.get(), key.get(), &err))
        throw unauthorized(realm_ + ": identity token signature does not verify");
    rapidjson::Document claims;
    if (!payload(p, &claims))
        throw unauthorized(realm_ + ": identity token payload is not a JSON object");
    bool has = false;
    int64_t exp = numeric_claim(claims, "exp", &has);
    if (!has) throw unauthorized(realm_ + ": identity token has no exp");
    if (now >= exp) throw unauthorized(realm_ + ": identity token expired at " + rfc3339(exp));
    int64_t nbf = numeric_claim(claims, "nbf", &has);
    if (has && now + 60 < nbf) throw unauthorized(realm_ + ": identity token not yet valid");
    const rapidjson::Value *aud = member(claims, "aud");
    bool aud_ok = false;
    if (aud && aud->IsString()) aud_ok = audience_ == aud->GetString();
    if (aud && aud->IsArray())
        for (const auto &a : aud->GetArray())
            aud_ok = aud_ok || (a.IsString() && audience_ == a.GetString());
    if (!aud_ok)
        throw unauthorized(realm_ + ": identity token audience does not include \"" + audience_ +
                           "\"");
    return claims;
}

}  // namespace segwire::console
