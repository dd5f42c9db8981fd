// JSON Web Tokens: the Console's own ES256 tokens (POST /issue, Authorization: Bearer on every
// other call) and verification of cloud identity tokens (GCP, Azure) against a JWKS.
//
// JWS signing and verification and JWK import are libcjose's (Debian libcjose-dev) through
// crypto/jws.hpp (shared with segwire-proxy); this file
// decides which algorithms and keys are acceptable before cjose verifies anything — ES256 with the
// Console's key for its own tokens; RS256 with an RSA key or ES256 with a P-256 key for identity
// tokens; never "none", never HMAC — and checks the claims (exp, nbf, aud) afterwards.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include <rapidjson/document.h>

#include "crypto/jws.hpp"
#include "crypto/pki.hpp"

namespace segwire::console {

using JwkPtr = crypto::jws::JwkPtr;  // the JWS/JWK primitives are crypto/jws.hpp's

// Signs and verifies the Console's tokens with its P-256 key (DIR/token.key).
class TokenSigner {
  public:
    TokenSigner(crypto::PKeyPtr key, std::string kid);

    // `claims` is a JSON object; the header is {"alg":"ES256","typ":"JWT","kid":…}.
    std::string sign(const rapidjson::Value &claims) const;

    // Checks the header (alg must be ES256), the signature and exp (required) against `now`.
    // Throws ConsoleError 401 whose message says which: "malformed token", "token signature does
    // not verify", "token expired".
    rapidjson::Document verify(std::string_view token, int64_t now) const;

    const std::string &kid() const { return kid_; }

  private:
    JwkPtr jwk_;  // the private key as a cjose EC JWK
    std::string kid_;
};

// Verifies third-party identity tokens (RS256 or ES256) against a JWKS read from a file or an
// https URL (verified against `ca_file`, else the system CAs; never plain http). URL key sets are
// cached for five minutes and refetched when a token names an unknown kid (key rotation).
class JwksVerifier {
  public:
    JwksVerifier(std::string realm, std::string source, std::string audience,
                 std::string ca_file = "");

    // alg (RS256 with an RSA key, ES256 with a P-256 key), signature, exp (required, in the
    // future), nbf, aud (must contain the configured audience). Throws ConsoleError 401 naming
    // the realm and the problem.
    rapidjson::Document verify(std::string_view token, int64_t now);

    const std::string &audience() const { return audience_; }

  private:
    void load_locked(int64_t now);

    std::string realm_, source_, audience_, ca_file_;
    std::mutex mu_;
    std::map<std::string, JwkPtr> keys_;  // kid → key ("" when none given)
    int64_t loaded_at_ = 0;
};

// One JWK of a key set as a verification key: RSA, or EC on P-256; nullptr (and `problem`) for
// anything else (other curves, symmetric "oct" keys, malformed key material).
JwkPtr import_verification_jwk(const rapidjson::Value &jwk, std::string *problem);

}  // namespace segwire::console
