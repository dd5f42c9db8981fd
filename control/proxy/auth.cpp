#include "control/proxy/auth.hpp"

#include <curl/curl.h>

#include <algorithm>

#include <spdlog/spdlog.h>

#include "config/policy/l7.hpp"

namespace segwire::proxy {
namespace {

size_t collect(char *data, size_t size, size_t n, void *out) {
    auto *s = static_cast<std::string *>(out);
    if (s->size() + size * n > (1u << 20)) return 0;  // a key set is small: 1 MiB is plenty
    s->append(data, size * n);
    return size * n;
}

}  // namespace

bool JwksCache::fetch_locked(const std::string &url, Set &s, std::string *problem) {
    s.attempted = std::chrono::steady_clock::now();
    ++fetches;
    std::string body;
    CURL *c = curl_easy_init();
    if (!c) {
        *problem = "JWKS fetch: curl_easy_init failed";
        ++fetch_errors;
        return false;
    }
    curl_easy_setopt(c, CURLOPT_URL, url.c_str());
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR,
                     "https");  // never plain http, never a redirect off it
    curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "https");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(c, CURLOPT_MAXREDIRS, 3L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
    if (!ca_file_.empty()) curl_easy_setopt(c, CURLOPT_CAINFO, ca_file_.c_str());
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 3000L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 5000L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &body);
    CURLcode rc = curl_easy_perform(c);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    if (rc != CURLE_OK || status != 200) {
        *problem = "cannot fetch the issuer's keys from " + url + ": " +
                   (rc != CURLE_OK ? curl_easy_strerror(rc) : "HTTP " + std::to_string(status));
        ++fetch_errors;
        spdlog::warn("{}", *problem);
        return false;
    }
    rapidjson::Document doc;
    doc.Parse(body.c_str());
    if (doc.HasParseError() || !doc.IsObject() || !doc.HasMember("keys") ||
        !doc["keys"].IsArray()) {
        *problem = "the key set at " + url + " has no \"keys\" array";
        ++fetch_errors;
        spdlog::warn("{}", *problem);
        return false;
    }
    s.keys.clear();
    for (const auto &k : doc["keys"].GetArray()) {
        std::string why;
        crypto::jws::JwkPtr key = crypto::jws::import_verification_jwk(k, &why);
        if (!key) continue;  // an unusable key (another kty) must not hide the others
        auto kid = k.FindMember("kid");
        s.keys[kid != k.MemberEnd() && kid->value.IsString() ? kid->value.GetString() : ""] = key;
    }
    s.fetched = s.attempted;
    s.ok = true;
    spdlog::info("JWKS {}: {} key(s)", url, s.keys.size());
    return true;
}

crypto::jws::JwkPtr JwksCache::key(const std::string &url, const std::string &kid,
                                   std::string *problem) {
    std::lock_guard lock(mu_);
    Set &s = sets_[url];
    const auto now = std::chrono::steady_clock::now();
    auto find = [&]() -> crypto::jws::JwkPtr {
        auto it = s.keys.find(kid);
        if (it == s.keys.end() && kid.empty() && s.keys.size() == 1) it = s.keys.begin();
        return it == s.keys.end() ? nullptr : it->second;
    };
    const bool recent_attempt = now - s.attempted < kMinRefetch;
    if ((!s.ok || now - s.fetched > kMaxAge) && !recent_attempt) fetch_locked(url, s, problem);
    crypto::jws::JwkPtr k = find();
    // Key rotation: an unknown kid fetches again, rate-limited so that tokens with made-up kids
    // cannot make the proxy hammer the issuer.
    if (!k && now - s.attempted >= kMinRefetch) {
        fetch_locked(url, s, problem);
        k = find();
    }
    if (!k && problem->empty())
        *problem = s.ok ? "key \"" + kid + "\" is not in the issuer's key set"
                        : "the issuer's key set is not available";
    return k;
}

std::vector<std::string> claim_values(const rapidjson::Value &v) {
    std::vector<std::string> out;
    if (v.IsString())
        out.emplace_back(v.GetString(), v.GetStringLength());
    else if (v.IsBool())
        out.emplace_back(v.GetBool() ? "true" : "false");
    else if (v.IsInt64())
        out.push_back(std::to_string(v.GetInt64()));
    else if (v.IsUint64())
        out.push_back(std::to_string(v.GetUint64()));
    else if (v.IsDouble())
        out.push_back(std::to_string(v.GetDouble()));
    else if (v.IsArray())
        for (const auto &e : v.GetArray())
            for (auto &x : claim_values(e))
                if (!e.IsArray()) out.push_back(std::move(x));
    return out;
}

bool authenticate(JwksCache &jwks, const policy::Service &svc, std::string_view token, int64_t now,
                  User *out, std::string *problem) {
    crypto::jws::Parsed p;
    if (!crypto::jws::parse(token, &p, problem)) {
        *problem = "malformed token: " + *problem;
        return false;
    }
    // Pinned: the service's list decides, never the token. "none" and HS* cannot be in the list
    // (the model refuses them) and crypto::jws::verify accepts only RS256 and ES256 anyway.
    if (std::find(svc.jwt_algorithms.begin(), svc.jwt_algorithms.end(), p.alg) ==
        svc.jwt_algorithms.end()) {
        *problem = "token algorithm \"" + p.alg + "\" is not accepted by this service";
        return false;
    }
    crypto::jws::JwkPtr key = jwks.key(svc.jwks_url, p.kid, problem);
    if (!key) return false;
    if (!crypto::jws::verify(p, key, problem)) {
        *problem = "token " + *problem;
        return false;
    }
    if (!crypto::jws::payload(p, &out->claims)) {
        *problem = "token payload is not a JSON object";
        return false;
    }
    const rapidjson::Value &c = out->claims;
    auto num = [&](const char *k, int64_t *v) {
        auto it = c.FindMember(k);
        if (it == c.MemberEnd() || !it->value.IsNumber()) return false;
        *v = it->value.IsInt64() ? it->value.GetInt64()
                                 : static_cast<int64_t>(it->value.GetDouble());
        return true;
    };
    auto str = [&](const char *k) -> std::string {
        auto it = c.FindMember(k);
        return it != c.MemberEnd() && it->value.IsString() ? it->value.GetString() : "";
    };
    int64_t exp = 0, nbf = 0;
    if (!num("exp", &exp)) {
        *problem = "token has no exp";
        return false;
    }
    if (now >= exp + kLeeway) {
        *problem = "token expired";
        return false;
    }
    if (num("nbf", &nbf) && now + kLeeway < nbf) {
        *problem = "token not yet valid (nbf)";
        return false;
    }
    if (str("iss") != svc.jwt_issuer) {
        *problem = "token issuer \"" + str("iss") + "\" is not this service's";
        return false;
    }
    bool aud_ok = false;
    if (auto it = c.FindMember("aud"); it != c.MemberEnd()) {
        if (it->value.IsString()) aud_ok = svc.jwt_audience == it->value.GetString();
        if (it->value.IsArray())
            for (const auto &a : it->value.GetArray())
                aud_ok = aud_ok || (a.IsString() && svc.jwt_audience == a.GetString());
    }
    if (!aud_ok) {
        *problem = "token audience does not include \"" + svc.jwt_audience + "\"";
        return false;
    }
    out->name = !str("email").empty() ? str("email") : str("sub");
    out->tags.clear();
    for (const std::string &claim : svc.user_claims_to_tags) {
        auto it = c.FindMember(claim.c_str());
        if (it == c.MemberEnd()) continue;
        for (const std::string &v : claim_values(it->value))
            out->tags.push_back(policy::user_claim_tag(claim, v));
    }
    return true;
}

}  // namespace segwire::proxy
