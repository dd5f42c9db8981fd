// JSON Web Tokens: the Console's own ES256 tokens (POST /issue, Authorization: Bearer on every
// other call) and verification of cloud identity tokens (GCP, Azure) against a JWKS.
//
// ES256 signatures are JOSE-encoded (RFC 7518 §3.4): raw r || s, 32 bytes each, not DER.
#pragma once

#include <openssl/evp.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include <rapidjson/document.h>

#include "crypto/pki.hpp"

namespace segwire::console {

// Signs and verifies the Console's tokens with its P-256 key (DIR/token.key).
class TokenSigner {
  public:
    TokenSigner(crypto::PKeyPtr key, std::string kid);

    // `claims` is a JSON object; the header is {"alg":"ES256","typ":"JWT","kid":…}.
    std::string sign(const rapidjson::Value &claims) const;

    // Checks the header, the signature and exp (required) against `now`. Throws ConsoleError 401
    // whose message says which: "malformed token", "token signature does not verify",
    // "token expired".
    rapidjson::Document verify(std::string_view token, int64_t now) const;

    const std::string &kid() const { return kid_; }

  private:
    crypto::PKeyPtr key_;
    std::string kid_;
};

// Verifies third-party identity tokens (RS256 or ES256) against a JWKS read from a file or an
// https URL (verified against `ca_file`, else the system CAs; never plain http). URL key sets are
// cached for five minutes and refetched when a token names an unknown kid (key rotation).
class JwksVerifier {
  public:
    JwksVerifier(std::string realm, std::string source, std::string audience,
                 std::string ca_file = "");

    // Signature, exp (required, in the future), nbf, aud (must contain the configured audience).
    // Throws ConsoleError 401 naming the realm and the problem.
    rapidjson::Document verify(std::string_view token, int64_t now);

    const std::string &audience() const { return audience_; }

  private:
    void load_locked(int64_t now);

    std::string realm_, source_, audience_, ca_file_;
    std::mutex mu_;
    std::map<std::string, std::shared_ptr<EVP_PKEY>> keys_;  // kid → key ("" when none given)
    int64_t loaded_at_ = 0;
};

// Builds a public key from one JWK (kty RSA with n/e, or kty EC crv P-256 with x/y).
crypto::PKeyPtr jwk_to_key(const rapidjson::Value &jwk, std::string *problem);

// Low-level pieces, exposed for the unit tests.
struct JwtParts {
    std::string signing_input;  // base64url(header) "." base64url(payload)
    rapidjson::Document header, payload;
    std::string signature;  // raw bytes
};
bool split_jwt(std::string_view token, JwtParts *out, std::string *problem);
std::string ecdsa_der_to_jose(std::string_view der);   // "" on failure
std::string ecdsa_jose_to_der(std::string_view jose);  // "" on failure
bool verify_jws_signature(const std::string &alg, EVP_PKEY *key, std::string_view input,
                          std::string_view signature);

}  // namespace segwire::console
