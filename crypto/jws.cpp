#include "crypto/jws.hpp"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>

#include <cjose/cjose.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

namespace segwire::crypto::jws {
namespace {

struct HeaderFree {
    void operator()(cjose_header_t *h) const noexcept { cjose_header_release(h); }
};
using HeaderPtr = std::unique_ptr<cjose_header_t, HeaderFree>;

std::string message(const cjose_err &err) {
    return err.message ? err.message : "unknown error";
}

JwkPtr wrap(cjose_jwk_t *k) {
    return JwkPtr(k, JwkRelease{});
}

}  // namespace

void JwkRelease::operator()(_cjose_jwk_int *k) const noexcept {
    cjose_jwk_release(k);
}

void JwsRelease::operator()(_cjose_jws_int *j) const noexcept {
    cjose_jws_release(j);
}

namespace {

bool b64url_decode(std::string_view in, std::string *out) {
    out->clear();
    uint32_t acc = 0;
    int bits = 0;
    for (char ch : in) {
        int v;
        if (ch >= 'A' && ch <= 'Z')
            v = ch - 'A';
        else if (ch >= 'a' && ch <= 'z')
            v = ch - 'a' + 26;
        else if (ch >= '0' && ch <= '9')
            v = ch - '0' + 52;
        else if (ch == '-')
            v = 62;
        else if (ch == '_')
            v = 63;
        else
            return false;
        acc = acc << 6 | uint32_t(v);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out->push_back(static_cast<char>(acc >> bits & 0xff));
        }
    }
    return true;
}

}  // namespace

bool parse(std::string_view token, Parsed *out, std::string *problem) {
    // The header's alg is read first, without cjose: a token of any other algorithm than the two
    // this project accepts is refused before any library parses its signature (cjose 0.6.2 frees
    // an imported HS256 JWS twice).
    const size_t dot = token.find('.');
    std::string header;
    rapidjson::Document hdoc;
    if (dot == std::string_view::npos || !b64url_decode(token.substr(0, dot), &header) ||
        hdoc.Parse(header.c_str()).HasParseError() || !hdoc.IsObject() || !hdoc.HasMember("alg") ||
        !hdoc["alg"].IsString()) {
        *problem = "not a compact JWS (no readable protected header)";
        return false;
    }
    const std::string header_alg = hdoc["alg"].GetString();
    if (header_alg != CJOSE_HDR_ALG_RS256 && header_alg != CJOSE_HDR_ALG_ES256) {
        out->alg = header_alg;
        *problem = "alg \"" + header_alg + "\" is not accepted (RS256 or ES256)";
        return false;
    }
    cjose_err err{};
    out->jws.reset(cjose_jws_import(token.data(), token.size(), &err));
    if (!out->jws) {
        *problem = "not a compact JWS (" + message(err) + ")";
        return false;
    }
    cjose_header_t *h = cjose_jws_get_protected(out->jws.get());  // owned by the JWS
    const char *alg = h ? cjose_header_get(h, CJOSE_HDR_ALG, &err) : nullptr;
    const char *kid = h ? cjose_header_get(h, CJOSE_HDR_KID, &err) : nullptr;
    out->alg = alg ? alg : "";
    out->kid = kid ? kid : "";
    return true;
}

bool verify(const Parsed &p, const JwkPtr &key, std::string *problem) {
    // The algorithm decides the key type, never the other way round: an HMAC keyed with a public
    // key, or "none", never reaches cjose_jws_verify.
    cjose_err err{};
    const cjose_jwk_kty_t kty = cjose_jwk_get_kty(key.get(), &err);
    if (p.alg == CJOSE_HDR_ALG_RS256) {
        if (kty != CJOSE_JWK_KTY_RSA) {
            *problem = "alg RS256 does not fit the key's type";
            return false;
        }
    } else if (p.alg == CJOSE_HDR_ALG_ES256) {
        if (kty != CJOSE_JWK_KTY_EC) {
            *problem = "alg ES256 does not fit the key's type";
            return false;
        }
    } else {
        *problem = "alg \"" + p.alg + "\" is not accepted";
        return false;
    }
    if (!cjose_jws_verify(p.jws.get(), key.get(), &err)) {
        *problem = "signature does not verify";
        return false;
    }
    return true;
}

bool payload(const Parsed &p, rapidjson::Document *out) {
    uint8_t *text = nullptr;
    size_t len = 0;
    cjose_err err{};
    if (!cjose_jws_get_plaintext(p.jws.get(), &text, &len, &err)) return false;
    out->Parse(reinterpret_cast<const char *>(text), len);
    return !out->HasParseError() && out->IsObject();
}

JwkPtr import_verification_jwk(const rapidjson::Value &jwk, std::string *problem) {
    if (!jwk.IsObject()) {
        *problem = "not a JSON object";
        return nullptr;
    }
    auto str = [&](const char *k) -> std::string {
        auto it = jwk.FindMember(k);
        return it != jwk.MemberEnd() && it->value.IsString() ? it->value.GetString() : "";
    };
    const std::string type = str("kty");
    if (type != "RSA" && type != "EC") {
        *problem = "unsupported kty \"" + type + "\" (RSA or EC)";
        return nullptr;
    }
    if (type == "EC" && str("crv") != "P-256") {
        *problem = "EC key must be on curve P-256";
        return nullptr;
    }
    rapidjson::StringBuffer buf;
    rapidjson::Writer<rapidjson::StringBuffer> w(buf);
    jwk.Accept(w);
    cjose_err err{};
    JwkPtr key = wrap(cjose_jwk_import(buf.GetString(), buf.GetSize(), &err));
    if (!key) {
        *problem = "invalid key material: " + message(err);
        return nullptr;
    }
    return key;
}

JwkPtr ec_jwk_from_key(EVP_PKEY *key, std::string *problem) {
    unsigned char point[65];
    size_t plen = 0;
    if (EVP_PKEY_get_octet_string_param(key, OSSL_PKEY_PARAM_PUB_KEY, point, sizeof(point),
                                        &plen) != 1 ||
        plen != 65) {
        *problem = "not an uncompressed P-256 point";
        return nullptr;
    }
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
    if (!jwk) *problem = "key as JWK: " + message(err);
    return jwk;
}

std::string sign_es256(const JwkPtr &key, std::string_view kid, std::string_view payload_json,
                       std::string *problem) {
    cjose_err err{};
    HeaderPtr hdr(cjose_header_new(&err));
    const std::string kid_s(kid);
    if (!hdr || !cjose_header_set(hdr.get(), CJOSE_HDR_ALG, CJOSE_HDR_ALG_ES256, &err) ||
        !cjose_header_set(hdr.get(), "typ", "JWT", &err) ||
        (!kid_s.empty() && !cjose_header_set(hdr.get(), CJOSE_HDR_KID, kid_s.c_str(), &err))) {
        *problem = "header: " + message(err);
        return "";
    }
    std::unique_ptr<_cjose_jws_int, JwsRelease> jws(
        cjose_jws_sign(key.get(), hdr.get(), reinterpret_cast<const uint8_t *>(payload_json.data()),
                       payload_json.size(), &err));
    const char *compact = nullptr;
    if (!jws || !cjose_jws_export(jws.get(), &compact, &err)) {
        *problem = "signing failed: " + message(err);
        return "";
    }
    return compact;
}

}  // namespace segwire::crypto::jws
