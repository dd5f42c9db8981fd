// The Console's ES256 tokens and the JWKS verification of cloud identity tokens.
#include <gtest/gtest.h>

#include <openssl/core_names.h>

#include <filesystem>
#include <fstream>

#include "tools/console/error.hpp"
#include "tools/console/jwt.hpp"
#include "tools/console/util.hpp"

namespace segwire::console {
namespace {

crypto::PKeyPtr new_key() {
    auto k = crypto::generate_p256_key();
    EXPECT_TRUE(k.ok());
    return std::move(k).value();
}

rapidjson::Document claims(int64_t exp, const std::string &aud = "") {
    rapidjson::Document d(rapidjson::kObjectType);
    auto &a = d.GetAllocator();
    d.AddMember("sub", "enforcer-1", a);
    d.AddMember("exp", exp, a);
    if (!aud.empty()) d.AddMember("aud", rapidjson::Value(aud.c_str(), a), a);
    return d;
}

int status_of(const std::function<void()> &f, std::string *msg = nullptr) {
    try {
        f();
    } catch (const ConsoleError &e) {
        if (msg) *msg = e.what();
        return e.status();
    }
    return 0;
}

TEST(Jwt, SignsEs256WithJoseSignatureAndVerifies) {
    TokenSigner s(new_key(), "kid-1");
    int64_t now = 1'800'000'000;
    std::string tok = s.sign(claims(now + 60));
    std::string header, signature;
    ASSERT_TRUE(base64url_decode(tok.substr(0, tok.find('.')), &header));
    ASSERT_TRUE(base64url_decode(tok.substr(tok.rfind('.') + 1), &signature));
    EXPECT_EQ(signature.size(), 64u);  // JOSE r || s, not DER
    rapidjson::Document h;
    h.Parse(header.c_str());
    EXPECT_STREQ(h["alg"].GetString(), "ES256");
    EXPECT_STREQ(h["kid"].GetString(), "kid-1");
    auto out = s.verify(tok, now);
    EXPECT_STREQ(out["sub"].GetString(), "enforcer-1");
}

TEST(Jwt, RefusesExpiredTamperedForeignAndMalformedTokens) {
    TokenSigner s(new_key(), "k");
    TokenSigner other(new_key(), "k");
    int64_t now = 1'800'000'000;
    std::string tok = s.sign(claims(now + 60));
    std::string msg;
    EXPECT_EQ(status_of([&] { s.verify(tok, now + 60); }, &msg), 401);
    EXPECT_NE(msg.find("expired"), std::string::npos) << msg;

    // Same header and signature, a payload that claims another subject.
    std::string forged = tok.substr(0, tok.find('.') + 1) +
                         base64url_encode(R"({"sub":"admin","exp":1800000060})") +
                         tok.substr(tok.rfind('.'));
    EXPECT_EQ(status_of([&] { s.verify(forged, now); }, &msg), 401);
    EXPECT_NE(msg.find("signature"), std::string::npos) << msg;

    EXPECT_EQ(status_of([&] { s.verify(other.sign(claims(now + 60)), now); }, &msg), 401);
    EXPECT_NE(msg.find("signature"), std::string::npos) << msg;
    EXPECT_EQ(status_of([&] { s.verify("a.b", now); }, &msg), 401);
    EXPECT_NE(msg.find("malformed"), std::string::npos) << msg;

    // alg "none" with an empty signature, or HS256, must never pass.
    std::string body = tok.substr(tok.find('.') + 1, tok.rfind('.') - tok.find('.') - 1);
    for (const char *alg : {R"({"alg":"none"})", R"({"alg":"HS256","kid":"k"})"}) {
        std::string head = base64url_encode(alg);
        EXPECT_EQ(status_of([&] { s.verify(head + "." + body + ".", now); }, &msg), 401);
        EXPECT_NE(msg.find("alg"), std::string::npos) << msg;
        EXPECT_EQ(
            status_of(
                [&] { s.verify(head + "." + body + "." + tok.substr(tok.rfind('.') + 1), now); },
                &msg),
            401);
    }
}

// A JWKS holding `key`'s public half as an EC JWK.
std::string jwks_for(EVP_PKEY *key, const std::string &kid) {
    unsigned char point[65];
    size_t len = 0;
    EXPECT_EQ(
        EVP_PKEY_get_octet_string_param(key, OSSL_PKEY_PARAM_PUB_KEY, point, sizeof(point), &len),
        1);
    std::string x(reinterpret_cast<char *>(point) + 1, 32);
    std::string y(reinterpret_cast<char *>(point) + 33, 32);
    return R"({"keys":[{"kty":"RSA","kid":"junk"},{"kty":"EC","crv":"P-256","kid":")" + kid +
           R"(","x":")" + base64url_encode(x) + R"(","y":")" + base64url_encode(y) + R"("}]})";
}

TEST(Jwks, VerifiesIdentityTokensAndChecksAudienceAndExpiry) {
    auto key = new_key();
    std::string jwks = jwks_for(key.get(), "cloud-1");
    auto path =
        std::filesystem::temp_directory_path() / ("segwire-jwks-" + random_hex(6) + ".json");
    std::ofstream(path) << jwks;
    TokenSigner cloud(std::move(key), "cloud-1");  // plays the cloud's identity provider
    JwksVerifier v("GCPIdentityToken", path.string(), "segwire-console");
    int64_t now = 1'800'000'000;

    auto ok = v.verify(cloud.sign(claims(now + 60, "segwire-console")), now);
    EXPECT_STREQ(ok["sub"].GetString(), "enforcer-1");
    std::string msg;
    EXPECT_EQ(status_of([&] { v.verify(cloud.sign(claims(now + 60, "other")), now); }, &msg), 401);
    EXPECT_NE(msg.find("audience"), std::string::npos) << msg;
    EXPECT_EQ(
        status_of([&] { v.verify(cloud.sign(claims(now - 1, "segwire-console")), now); }, &msg),
        401);
    EXPECT_NE(msg.find("expired"), std::string::npos) << msg;
    TokenSigner stranger(new_key(), "cloud-1");
    EXPECT_EQ(
        status_of([&] { v.verify(stranger.sign(claims(now + 60, "segwire-console")), now); }, &msg),
        401);
    EXPECT_NE(msg.find("signature"), std::string::npos) << msg;
    TokenSigner unknown_kid(new_key(), "cloud-2");
    EXPECT_EQ(
        status_of([&] { v.verify(unknown_kid.sign(claims(now + 60, "segwire-console")), now); },
                  &msg),
        401);
    EXPECT_NE(msg.find("kid"), std::string::npos) << msg;
    std::filesystem::remove(path);
}

TEST(Jwks, RejectsMalformedAndSymmetricKeys) {
    rapidjson::Document d;
    std::string problem;
    d.Parse(R"({"kty":"EC","crv":"P-384","x":"AA","y":"AA"})");
    EXPECT_EQ(import_verification_jwk(d, &problem), nullptr);
    EXPECT_NE(problem.find("P-256"), std::string::npos);
    d.Parse(R"({"kty":"oct","k":"c2VjcmV0"})");  // an HMAC key in a key set is never used
    EXPECT_EQ(import_verification_jwk(d, &problem), nullptr);
    EXPECT_NE(problem.find("oct"), std::string::npos);
    d.Parse(R"({"kty":"RSA","n":"AA"})");
    EXPECT_EQ(import_verification_jwk(d, &problem), nullptr);
}

}  // namespace
}  // namespace segwire::console
