#include "tools/console/jwt.hpp"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/param_build.h>

#include <httplib.h>

#include "tools/console/error.hpp"
#include "tools/console/util.hpp"

namespace segwire::console {
namespace {

struct BnFree {
    void operator()(BIGNUM *b) const noexcept { BN_free(b); }
};
using BnPtr = std::unique_ptr<BIGNUM, BnFree>;
struct SigFree {
    void operator()(ECDSA_SIG *s) const noexcept { ECDSA_SIG_free(s); }
};
using SigPtr = std::unique_ptr<ECDSA_SIG, SigFree>;
struct MdCtxFree {
    void operator()(EVP_MD_CTX *c) const noexcept { EVP_MD_CTX_free(c); }
};
using MdCtxPtr = std::unique_ptr<EVP_MD_CTX, MdCtxFree>;

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

std::string ecdsa_der_to_jose(std::string_view der) {
    const unsigned char *p = reinterpret_cast<const unsigned char *>(der.data());
    SigPtr sig(d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(der.size())));
    if (!sig) return "";
    const BIGNUM *r = nullptr, *s = nullptr;
    ECDSA_SIG_get0(sig.get(), &r, &s);
    std::string out(64, '\0');
    auto *o = reinterpret_cast<unsigned char *>(out.data());
    if (BN_bn2binpad(r, o, 32) != 32 || BN_bn2binpad(s, o + 32, 32) != 32) return "";
    return out;
}

std::string ecdsa_jose_to_der(std::string_view jose) {
    if (jose.size() != 64) return "";
    const auto *p = reinterpret_cast<const unsigned char *>(jose.data());
    BnPtr r(BN_bin2bn(p, 32, nullptr)), s(BN_bin2bn(p + 32, 32, nullptr));
    SigPtr sig(ECDSA_SIG_new());
    if (!r || !s || !sig || ECDSA_SIG_set0(sig.get(), r.get(), s.get()) != 1) return "";
    r.release();  // owned by sig now
    s.release();
    unsigned char *der = nullptr;
    int n = i2d_ECDSA_SIG(sig.get(), &der);
    if (n <= 0) return "";
    std::string out(reinterpret_cast<char *>(der), static_cast<size_t>(n));
    OPENSSL_free(der);
    return out;
}

bool verify_jws_signature(const std::string &alg, EVP_PKEY *key, std::string_view input,
                          std::string_view signature) {
    std::string der;
    if (alg == "ES256") {
        if (EVP_PKEY_get_base_id(key) != EVP_PKEY_EC) return false;
        der = ecdsa_jose_to_der(signature);
        if (der.empty()) return false;
        signature = der;
    } else if (alg == "RS256") {
        if (EVP_PKEY_get_base_id(key) != EVP_PKEY_RSA) return false;
    } else {
        return false;  // never "none", never HMAC with a public key as secret
    }
    MdCtxPtr ctx(EVP_MD_CTX_new());
    return ctx && EVP_DigestVerifyInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key) == 1 &&
           EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char *>(signature.data()),
                            signature.size(), reinterpret_cast<const unsigned char *>(input.data()),
                            input.size()) == 1;
}

bool split_jwt(std::string_view token, JwtParts *out, std::string *problem) {
    size_t a = token.find('.');
    size_t b = a == std::string_view::npos ? a : token.find('.', a + 1);
    if (b == std::string_view::npos || token.find('.', b + 1) != std::string_view::npos) {
        *problem = "not three dot-separated parts";
        return false;
    }
    std::string header, payload;
    if (!base64url_decode(token.substr(0, a), &header) ||
        !base64url_decode(token.substr(a + 1, b - a - 1), &payload) ||
        !base64url_decode(token.substr(b + 1), &out->signature)) {
        *problem = "a part is not base64url";
        return false;
    }
    out->header.Parse(header.c_str());
    out->payload.Parse(payload.c_str());
    if (out->header.HasParseError() || !out->header.IsObject() || out->payload.HasParseError() ||
        !out->payload.IsObject()) {
        *problem = "header or payload is not a JSON object";
        return false;
    }
    out->signing_input = std::string(token.substr(0, b));
    return true;
}

// ---- TokenSigner ----------------------------------------------------------------------------

TokenSigner::TokenSigner(crypto::PKeyPtr key, std::string kid)
    : key_(std::move(key)), kid_(std::move(kid)) {}

std::string TokenSigner::sign(const rapidjson::Value &claims) const {
    rapidjson::StringBuffer hb;
    JsonWriter hw(hb);
    hw.StartObject();
    write_string(hw, "alg", "ES256");
    write_string(hw, "typ", "JWT");
    write_string(hw, "kid", kid_);
    hw.EndObject();
    std::string input = base64url_encode(std::string_view(hb.GetString(), hb.GetSize())) + "." +
                        base64url_encode(to_json(claims));
    MdCtxPtr ctx(EVP_MD_CTX_new());
    size_t len = 0;
    if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key_.get()) != 1 ||
        EVP_DigestSign(ctx.get(), nullptr, &len,
                       reinterpret_cast<const unsigned char *>(input.data()), input.size()) != 1)
        throw ConsoleError(500, "token signing failed: " + crypto::openssl_error_string());
    std::string der(len, '\0');
    if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char *>(der.data()), &len,
                       reinterpret_cast<const unsigned char *>(input.data()), input.size()) != 1)
        throw ConsoleError(500, "token signing failed: " + crypto::openssl_error_string());
    der.resize(len);
    std::string jose = ecdsa_der_to_jose(der);
    if (jose.empty()) throw ConsoleError(500, "token signing failed: bad ECDSA signature encoding");
    return input + "." + base64url_encode(jose);
}

rapidjson::Document TokenSigner::verify(std::string_view token, int64_t now) const {
    JwtParts parts;
    std::string problem;
    if (!split_jwt(token, &parts, &problem)) throw unauthorized("malformed token: " + problem);
    const rapidjson::Value *alg = member(parts.header, "alg");
    if (!alg || !alg->IsString() || std::string(alg->GetString()) != "ES256")
        throw unauthorized("malformed token: alg must be ES256");
    if (!verify_jws_signature("ES256", key_.get(), parts.signing_input, parts.signature))
        throw unauthorized("token signature does not verify (not issued by this Console)");
    bool has_exp = false;
    int64_t exp = numeric_claim(parts.payload, "exp", &has_exp);
    if (!has_exp) throw unauthorized("malformed token: no exp claim");
    if (now >= exp)
        throw unauthorized("token expired at " + rfc3339(exp) + " (now " + rfc3339(now) + ")");
    return std::move(parts.payload);
}

// ---- JWKS -------------------------------------------------------------------------------------

crypto::PKeyPtr jwk_to_key(const rapidjson::Value &jwk, std::string *problem) {
    auto field = [&](const char *k) -> std::string {
        const rapidjson::Value *v = member(jwk, k);
        std::string raw;
        if (!v || !v->IsString() || !base64url_decode(v->GetString(), &raw)) return "";
        return raw;
    };
    const rapidjson::Value *kty = member(jwk, "kty");
    std::string type = kty && kty->IsString() ? kty->GetString() : "";
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    if (!bld) {
        *problem = "out of memory";
        return nullptr;
    }
    BnPtr n, e;
    std::string point;
    const char *keytype = nullptr;
    if (type == "RSA") {
        std::string nb = field("n"), eb = field("e");
        if (nb.empty() || eb.empty()) {
            OSSL_PARAM_BLD_free(bld);
            *problem = "RSA key needs base64url n and e";
            return nullptr;
        }
        n.reset(BN_bin2bn(reinterpret_cast<const unsigned char *>(nb.data()),
                          static_cast<int>(nb.size()), nullptr));
        e.reset(BN_bin2bn(reinterpret_cast<const unsigned char *>(eb.data()),
                          static_cast<int>(eb.size()), nullptr));
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n.get());
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e.get());
        keytype = "RSA";
    } else if (type == "EC") {
        const rapidjson::Value *crv = member(jwk, "crv");
        std::string x = field("x"), y = field("y");
        if (!crv || !crv->IsString() || std::string(crv->GetString()) != "P-256" ||
            x.size() != 32 || y.size() != 32) {
            OSSL_PARAM_BLD_free(bld);
            *problem = "EC key must be P-256 with 32-byte x and y";
            return nullptr;
        }
        point = std::string(1, '\x04') + x + y;
        OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0);
        OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point.data(), point.size());
        keytype = "EC";
    } else {
        OSSL_PARAM_BLD_free(bld);
        *problem = "unsupported kty \"" + type + "\" (RSA or EC)";
        return nullptr;
    }
    OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
    OSSL_PARAM_BLD_free(bld);
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(nullptr, keytype, nullptr);
    EVP_PKEY *key = nullptr;
    bool ok = params && ctx && EVP_PKEY_fromdata_init(ctx) == 1 &&
              EVP_PKEY_fromdata(ctx, &key, EVP_PKEY_PUBLIC_KEY, params) == 1;
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    if (!ok) {
        *problem = "invalid key material: " + crypto::openssl_error_string();
        return nullptr;
    }
    return crypto::PKeyPtr(key);
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
        crypto::PKeyPtr k = jwk_to_key((*keys)[i], &problem);
        if (!k) continue;  // one unusable key (another kty) must not hide the others
        const rapidjson::Value *kid = member((*keys)[i], "kid");
        std::string id = kid && kid->IsString() ? kid->GetString() : "";
        keys_[id] = std::shared_ptr<EVP_PKEY>(k.release(), EVP_PKEY_free);
    }
    loaded_at_ = now;
}

rapidjson::Document JwksVerifier::verify(std::string_view token, int64_t now) {
    if (source_.empty())
        throw ConsoleError(401, realm_ + " is not enabled on this Console (no JWKS configured)",
                           "realm");
    JwtParts parts;
    std::string problem;
    if (!split_jwt(token, &parts, &problem))
        throw unauthorized(realm_ + ": malformed identity token: " + problem);
    const rapidjson::Value *alg = member(parts.header, "alg");
    const rapidjson::Value *kidv = member(parts.header, "kid");
    std::string alg_s = alg && alg->IsString() ? alg->GetString() : "";
    std::string kid = kidv && kidv->IsString() ? kidv->GetString() : "";
    if (alg_s != "RS256" && alg_s != "ES256")
        throw unauthorized(realm_ + ": identity token alg \"" + alg_s +
                           "\" not accepted (RS256 or ES256)");
    std::shared_ptr<EVP_PKEY> key;
    {
        std::lock_guard lock(mu_);
        bool remote = source_.find("://") != std::string::npos;
        auto find = [&] {
            auto it = keys_.find(kid);
            if (it == keys_.end() && kid.empty() && keys_.size() == 1) it = keys_.begin();
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
        throw unauthorized(realm_ + ": identity token kid \"" + kid + "\" is not in the JWKS");
    if (!verify_jws_signature(alg_s, key.get(), parts.signing_input, parts.signature))
        throw unauthorized(realm_ + ": identity token signature does not verify");
    bool has = false;
    int64_t exp = numeric_claim(parts.payload, "exp", &has);
    if (!has) throw unauthorized(realm_ + ": identity token has no exp");
    if (now >= exp) throw unauthorized(realm_ + ": identity token expired at " + rfc3339(exp));
    int64_t nbf = numeric_claim(parts.payload, "nbf", &has);
    if (has && now + 60 < nbf) throw unauthorized(realm_ + ": identity token not yet valid");
    const rapidjson::Value *aud = member(parts.payload, "aud");
    bool aud_ok = false;
    if (aud && aud->IsString()) aud_ok = audience_ == aud->GetString();
    if (aud && aud->IsArray())
        for (const auto &a : aud->GetArray())
            aud_ok = aud_ok || (a.IsString() && audience_ == a.GetString());
    if (!aud_ok)
        throw unauthorized(realm_ + ": identity token audience does not include \"" + audience_ +
                           "\"");
    return std::move(parts.payload);
}

}  // namespace segwire::console
