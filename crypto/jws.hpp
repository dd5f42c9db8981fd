// JWS/JWK primitives on libcjose shared by the Console (tools/console/jwt.cpp: its own tokens and
// cloud identity tokens) and segwire-proxy (control/proxy: user bearer tokens and the injected
// identity header). Callers decide which algorithms and keys are acceptable before anything is
// verified; this file only parses, imports keys, verifies and signs.
#pragma once

#include <openssl/evp.h>

#include <memory>
#include <string>
#include <string_view>

#include <rapidjson/document.h>

struct _cjose_jwk_int;
struct _cjose_jws_int;

namespace segwire::crypto::jws {

struct JwkRelease {
    void operator()(_cjose_jwk_int *k) const noexcept;
};
using JwkPtr = std::shared_ptr<_cjose_jwk_int>;

struct JwsRelease {
    void operator()(_cjose_jws_int *j) const noexcept;
};

// A compact JWS with its protected header's alg and kid (not yet verified).
struct Parsed {
    std::unique_ptr<_cjose_jws_int, JwsRelease> jws;
    std::string alg, kid;
};

// Only the three-part compact form. False and *problem for anything else.
bool parse(std::string_view token, Parsed *out, std::string *problem);

// The key type fits the algorithm (RS256: RSA, ES256: EC P-256) and the signature verifies.
// Only "RS256" and "ES256" can ever return true.
bool verify(const Parsed &p, const JwkPtr &key, std::string *problem);

// The payload as a JSON object (after verify).
bool payload(const Parsed &p, rapidjson::Document *out);

// One JWK of a key set as a verification key: RSA, or EC on P-256; nullptr (and *problem) for
// anything else (other curves, symmetric "oct" keys, malformed key material).
JwkPtr import_verification_jwk(const rapidjson::Value &jwk, std::string *problem);

// The EC JWK of a P-256 EVP_PKEY (private when the key has its private half); nullptr and
// *problem when the key is not P-256.
JwkPtr ec_jwk_from_key(EVP_PKEY *key, std::string *problem);

// A compact JWS of `payload_json`: header {"alg":"ES256","typ":"JWT","kid":kid?}. "" and
// *problem on failure.
std::string sign_es256(const JwkPtr &key, std::string_view kid, std::string_view payload_json,
                       std::string *problem);

}  // namespace segwire::crypto::jws
