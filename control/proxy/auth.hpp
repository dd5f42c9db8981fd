// User authorization for segwire-proxy: bearer JWTs checked against a service's pinned
// algorithms, issuer, audience and the issuer's JWKS (fetched over HTTPS with libcurl, cached,
// refetched on an unknown kid at most every kMinRefetch). docs/l7.md "Users".
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include <rapidjson/document.h>

#include "config/policy/model.hpp"
#include "crypto/jws.hpp"

namespace segwire::proxy {

class JwksCache {
  public:
    // `ca_file`: the CAs JWKS servers are verified against ("" = the system's).
    explicit JwksCache(std::string ca_file) : ca_file_(std::move(ca_file)) {}

    // The key `kid` of the set at `url`: from the cache (at most kMaxAge old), else fetched;
    // an unknown kid fetches again unless the last fetch of that URL is under kMinRefetch old.
    // nullptr and *problem when there is no such key.
    crypto::jws::JwkPtr key(const std::string &url, const std::string &kid, std::string *problem);

    std::atomic<uint64_t> fetches{0}, fetch_errors{0};

    static constexpr std::chrono::seconds kMaxAge{300};
    static constexpr std::chrono::seconds kMinRefetch{10};

  private:
    struct Set {
        std::map<std::string, crypto::jws::JwkPtr> keys;
        std::chrono::steady_clock::time_point fetched{}, attempted{};
        bool ok = false;
    };
    bool fetch_locked(const std::string &url, Set &s, std::string *problem);

    std::string ca_file_;
    std::mutex mu_;
    std::map<std::string, Set> sets_;
};

struct User {
    std::string name;               // email, else sub: the report's callerUser
    std::vector<std::string> tags;  // @usr:<claim>=<value> for the service's userClaimsToTags
    rapidjson::Document claims;     // the verified payload
};

// Checks `token` for `svc`: alg among JWTAlgorithms (never none/HS*), signature with the JWKS key,
// exp (required) and nbf with kLeeway, iss == JWTIssuer, aud contains JWTAudience. False and
// *problem (a sentence for the 401 body) when refused.
bool authenticate(JwksCache &jwks, const policy::Service &svc, std::string_view token, int64_t now,
                  User *out, std::string *problem);

inline constexpr int64_t kLeeway = 30;  // seconds of clock skew tolerated on exp and nbf

// A claim value as text for tags and headers: strings as they are, numbers and booleans printed;
// an array gives one value per element; objects and null give none.
std::vector<std::string> claim_values(const rapidjson::Value &v);

}  // namespace segwire::proxy
