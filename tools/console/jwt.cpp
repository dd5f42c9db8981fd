#include "tools/console/jwt.hpp"

#include <openssl/bn.h>
#include <openssl/core_names.h>

#include <cjose/cjose.h>
#include <httplib.h>

#include "tools/console/error.hpp"
#include "tools/console/util.hpp"

namespace segwire::console {
namespace {

namespace jws = crypto::jws;

ConsoleError unauthorized(const std::string &msg) {
    return ConsoleError(401, msg);
}

int64_t numeric_claim(const rapidjson::Value &payload, const char *key, bool *present) {
    const rapidjson::Value *v = member(payload, key);
    *present = v && v->IsNumber();
    if (!*present) return 0;
    return v->IsInt64() ? v->GetInt64() : static_cast<int64_t>(v->GetDouble());
}

}  // namespace

// ---- TokenSigner ----------------------------------------------------------------------------

namespace {
JwkPtr signer_jwk(EVP_PKEY *key) {
    std::string problem;
    JwkPtr jwk = jws::ec_jwk_from_key(key, &problem);
    if (!jwk) throw ConsoleError(500, "token key: " + problem);
    return jwk;
}
}  // namespace

TokenSigner::TokenSigner(crypto::PKeyPtr key, std::string kid)
    : jwk_(signer_jwk(key.get())), kid_(std::move(kid)) {}

std::string TokenSigner::sign(const rapidjson::Value &claims) const {
    std::string problem;
    std::string out = jws::sign_es256(jwk_, kid_, to_json(claims), &problem);
    if (out.empty()) throw ConsoleError(500, "token " + problem);
    return out;
}

rapidjson::Document TokenSigner::verify(std::string_view token, int64_t now) const {
    jws::Parsed p;
    std::string problem;
    if (!jws::parse(token, &p, &problem)) throw unauthorized("malformed token: " + problem);
    // The algorithm is ours to choose, not the token's: only ES256 is ever checked.
    if (p.alg != CJOSE_HDR_ALG_ES256) throw unauthorized("malformed token: alg must be ES256");
    if (!jws::verify(p, jwk_, &problem))
        throw unauthorized("token signature does not verify (not issued by this Console)");
    rapidjson::Document claims;
    if (!jws::payload(p, &claims))
        throw unauthorized("malformed token: payload is not a JSON object");
    bool has_exp = false;
    int64_t exp = numeric_claim(claims, "exp", &has_exp);
    if (!has_exp) throw unauthorized("malformed token: no exp claim");
    if (now >= exp)
        throw unauthorized("token expired at " + rfc3339(exp) + " (now " + rfc3339(now) + ")");
    return claims;
}

// ---- JWKS -------------------------------------------------------------------------------------

JwkPtr import_verification_jwk(const rapidjson::Value &jwk, std::string *problem) {
    return jws::import_verification_jwk(jwk, problem);
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
    jws::Parsed p;
    std::string problem;
    if (!jws::parse(token, &p, &problem))
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
    const cjose_jwk_kty_t kty = cjose_jwk_get_kty(key.get(), &err);
    const bool type_ok =
        p.alg == CJOSE_HDR_ALG_RS256 ? kty == CJOSE_JWK_KTY_RSA : kty == CJOSE_JWK_KTY_EC;
    if (!type_ok)
        throw unauthorized(realm_ + ": identity token alg " + p.alg + " does not fit key \"" +
                           p.kid + "\"'s type");
    if (!jws::verify(p, key, &problem))
        throw unauthorized(realm_ + ": identity token signature does not verify");
    rapidjson::Document claims;
    if (!jws::payload(p, &claims))
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
