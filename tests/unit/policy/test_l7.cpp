// The L7 model: services and httpresourcespecs (parsing, every validation error naming its
// field, serialization, services.json) and the decision (URI matcher, methods, allowedScopes,
// public).
#include <gtest/gtest.h>

#include "config/policy/l7.hpp"
#include "config/policy/model.hpp"

namespace segwire::policy {
namespace {

const char *kService = R"({"name": "orders", "namespace": "/acme", "selector": [["app=orders"]],
  "port": 8080, "exposedAPIs": [["api=orders"]], "hosts": ["orders.acme.test"],
  "authorizationType": "OIDC-JWT", "JWTIssuer": "https://issuer.test",
  "JWKSURL": "https://issuer.test/jwks.json", "JWTAudience": "orders-api",
  "JWTAlgorithms": ["RS256", "ES256"], "userClaimsToTags": ["email", "groups"],
  "claimsToHTTPHeaderMappings": [{"claimName": "email", "targetHTTPHeader": "X-User-Email"}]})";

const char *kSpec =
    R"({"name": "orders-api", "namespace": "/acme", "associatedTags": ["api=orders"],
  "endpoints": [{"URI": "/orders/?", "methods": ["GET", "HEAD"],
                 "allowedScopes": [["app=frontend"], ["@usr:groups=admins"]]},
                {"URI": "/health", "methods": ["GET"], "public": true}]})";

std::string bundle(const std::string &service, const std::string &spec) {
    return "{\"services\": [" + service + "], \"httpresourcespecs\": [" + spec + "]}";
}

TEST(L7Model, ParsesServiceAndSpec) {
    PolicySet s = parse_policy_set(bundle(kService, kSpec));
    ASSERT_EQ(s.services.size(), 1u);
    const Service &svc = s.services[0];
    EXPECT_EQ(svc.name, "orders");
    EXPECT_EQ(svc.port, 8080);
    EXPECT_EQ(svc.effective_exposed_port(), 8080);
    EXPECT_EQ(svc.tls_type, "None");
    EXPECT_TRUE(svc.needs_user_auth());
    ASSERT_EQ(svc.claims_to_http_headers.size(), 1u);
    EXPECT_EQ(svc.claims_to_http_headers[0].target_http_header, "X-User-Email");
    ASSERT_EQ(s.http_resource_specs.size(), 1u);
    EXPECT_EQ(s.http_resource_specs[0].endpoints.size(), 2u);
    EXPECT_TRUE(s.http_resource_specs[0].endpoints[1].is_public);
}

TEST(L7Model, SerializeRoundTrip) {
    PolicySet a = parse_policy_set(bundle(kService, kSpec));
    PolicySet b = parse_policy_set(serialize_policy_set(a));
    EXPECT_EQ(a, b);
}

TEST(L7Model, ServicesJsonWithUpstreams) {
    std::string text = R"({"version": "9", "services": [)" + std::string(kService).substr(0, 1) +
                       R"("upstreams": ["10.0.0.2"], )" + std::string(kService).substr(1) +
                       R"(], "httpresourcespecs": [)" + kSpec + "]}";
    L7Document d = parse_l7_document(text);
    EXPECT_EQ(d.version, "9");
    ASSERT_EQ(d.services.size(), 1u);
    EXPECT_EQ(d.services[0].upstreams, std::vector<std::string>{"10.0.0.2"});
    L7Document e = parse_l7_document(serialize_l7_document(d));
    EXPECT_EQ(e.services, d.services);
    EXPECT_EQ(e.http_resource_specs, d.http_resource_specs);
}

struct Bad {
    const char *service;  // replaces kService when set
    const char *spec;     // replaces kSpec when set
    const char *object;
    const char *field;
    const char *problem;
};

class L7Invalid : public ::testing::TestWithParam<Bad> {};

TEST_P(L7Invalid, NamesTheField) {
    const Bad &b = GetParam();
    std::string text = bundle(b.service ? b.service : kService, b.spec ? b.spec : kSpec);
    try {
        parse_policy_set(text);
        FAIL() << "accepted: " << text;
    } catch (const PolicyError &e) {
        EXPECT_EQ(e.object(), b.object) << e.what();
        EXPECT_EQ(e.field(), b.field) << e.what();
        EXPECT_NE(e.problem().find(b.problem), std::string::npos) << e.what();
    }
}

#define SVC_API(apis, extra) \
    R"({"name": "s", "selector": [["app=a"]], "port": 80, "exposedAPIs": )" apis extra "}"
#define SVC(extra) SVC_API(R"([["api=x"]])", extra)
#define JWT_BASE \
    R"(, "authorizationType": "JWT", "JWTIssuer": "https://i", "JWKSURL": "https://i/k", "JWTAudience": "a")"
// A JWT service with the given JWTAlgorithms and extra fields.
#define JWT_SVC_ALG(algs, extra) SVC(JWT_BASE R"(, "JWTAlgorithms": )" algs extra)
#define JWT_SVC(extra) JWT_SVC_ALG(R"(["RS256"])", extra)
#define SPEC(ep) R"({"name": "p", "associatedTags": ["api=x"], "endpoints": [)" ep "]}"
#define EP(extra) R"({"URI": "/a", "methods": ["GET"], "allowedScopes": [["k=v"]])" extra "}"

INSTANTIATE_TEST_SUITE_P(
    Errors, L7Invalid,
    ::testing::Values(
        Bad{R"({"selector": [["a=b"]], "port": 1, "exposedAPIs": [["a=b"]]})", nullptr,
            "service #0", "name", "missing"},
        Bad{R"({"name": "s", "port": 80, "exposedAPIs": [["api=x"]]})", nullptr, "service \"s\"",
            "selector", "missing or empty"},
        Bad{R"({"name": "s", "selector": [["app"]], "port": 80, "exposedAPIs": [["api=x"]]})",
            nullptr, "service \"s\"", "selector[0][0]", ""},
        Bad{R"({"name": "s", "selector": [["a=b"]], "exposedAPIs": [["api=x"]]})", nullptr,
            "service \"s\"", "port", "missing"},
        Bad{R"({"name": "s", "selector": [["a=b"]], "port": 70000, "exposedAPIs": [["a=b"]]})",
            nullptr, "service \"s\"", "port", "1-65535"},
        Bad{SVC(R"(, "exposedPort": 0)"), nullptr, "service \"s\"", "exposedPort", "1-65535"},
        Bad{R"({"name": "s", "selector": [["a=b"]], "port": 80})", nullptr, "service \"s\"",
            "exposedAPIs", "missing or empty"},
        Bad{SVC(R"(, "hosts": ["bad host"])"), nullptr, "service \"s\"", "hosts[0]",
            "not a DNS name"},
        Bad{SVC(R"(, "TLSType": "Mutual")"), nullptr, "service \"s\"", "TLSType", "is not one of"},
        Bad{SVC(R"(, "TLSType": "Aporeto")"), nullptr, "service \"s\"", "hosts",
            "issues a certificate"},
        Bad{SVC(R"(, "TLSType": "External")"), nullptr, "service \"s\"", "TLSCertificate",
            "PEM certificate"},
        Bad{SVC(R"(, "TLSType": "External", "TLSCertificate": "-----BEGIN CERTIFICATE-----x")"),
            nullptr, "service \"s\"", "TLSCertificateKey", "PEM private key"},
        Bad{SVC(R"(, "TLSCertificate": "-----BEGIN CERTIFICATE-----x")"), nullptr, "service \"s\"",
            "TLSCertificate", "only with TLSType"},
        Bad{SVC(R"(, "authorizationType": "Basic")"), nullptr, "service \"s\"", "authorizationType",
            "is not one of"},
        Bad{SVC(R"(, "authorizationType": "JWT")"), nullptr, "service \"s\"", "JWTIssuer",
            "missing"},
        Bad{SVC(R"(, "authorizationType": "JWT", "JWTIssuer": "https://i")"), nullptr,
            "service \"s\"", "JWKSURL", "missing"},
        Bad{SVC(R"(, "authorizationType": "JWT", "JWTIssuer": "i", "JWKSURL": "http://i/k")"),
            nullptr, "service \"s\"", "JWKSURL", "https://"},
        Bad{SVC(R"(, "authorizationType": "JWT", "JWTIssuer": "i", "JWKSURL": "https://i/k")"),
            nullptr, "service \"s\"", "JWTAudience", "missing"},
        Bad{SVC(R"(, "authorizationType": "JWT", "JWTIssuer": "i", "JWKSURL": "https://i/k",)"
                R"( "JWTAudience": "a")"),
            nullptr, "service \"s\"", "JWTAlgorithms", "missing or empty"},
        Bad{JWT_SVC_ALG(R"(["none"])", ""), nullptr, "service \"s\"", "JWTAlgorithms[0]",
            "refused"},
        Bad{JWT_SVC_ALG(R"(["ES256", "HS256"])", ""), nullptr, "service \"s\"", "JWTAlgorithms[1]",
            "refused"},
        Bad{JWT_SVC_ALG(R"(["PS999"])", ""), nullptr, "service \"s\"", "JWTAlgorithms[0]",
            "unknown algorithm"},
        Bad{SVC(R"(, "JWTAudience": "a")"), nullptr, "service \"s\"", "JWTAudience",
            "only with authorizationType"},
        Bad{JWT_SVC(R"(, "userClaimsToTags": ["a=b"])"), nullptr, "service \"s\"",
            "userClaimsToTags[0]", "not a claim name"},
        Bad{JWT_SVC(R"(, "claimsToHTTPHeaderMappings": [{"targetHTTPHeader": "X-A"}])"), nullptr,
            "service \"s\"", "claimsToHTTPHeaderMappings[0].claimName", "missing"},
        Bad{JWT_SVC(
                R"(, "claimsToHTTPHeaderMappings": [{"claimName": "e", "targetHTTPHeader": "X A"}])"),
            nullptr, "service \"s\"", "claimsToHTTPHeaderMappings[0].targetHTTPHeader",
            "not an HTTP header name"},
        Bad{JWT_SVC(
                R"(, "claimsToHTTPHeaderMappings": [{"claimName": "e", "targetHTTPHeader": "x-segwire-identity"}])"),
            nullptr, "service \"s\"", "claimsToHTTPHeaderMappings[0].targetHTTPHeader", "reserved"},
        Bad{JWT_SVC(
                R"(, "claimsToHTTPHeaderMappings": [{"claimName": "e", "targetHTTPHeader": "X-A"},)"
                R"( {"claimName": "f", "targetHTTPHeader": "x-a"}])"),
            nullptr, "service \"s\"", "claimsToHTTPHeaderMappings[1].targetHTTPHeader",
            "already mapped"},
        Bad{JWT_SVC(R"(, "claimsToHTTPHeaderMappings": [{"claimName": "e", "header": "X-A"}])"),
            nullptr, "service \"s\"", "claimsToHTTPHeaderMappings[0].header", "unknown field"},
        Bad{SVC(R"(, "allowUpgrade": "yes")"), nullptr, "service \"s\"", "allowUpgrade",
            "true or false"},
        Bad{SVC(R"(, "upstreams": ["10.0.0.0/8"])"), nullptr, "service \"s\"", "upstreams[0]",
            "not an IP address"},
        Bad{SVC(R"(, "exposedApis": [])"), nullptr, "service \"s\"", "exposedApis",
            "unknown field"},
        // httpresourcespecs
        Bad{nullptr, R"({"name": "p", "associatedTags": ["api=x"]})", "httpresourcespec \"p\"",
            "endpoints", "missing or empty"},
        Bad{nullptr, R"({"name": "p", "associatedTags": ["api"], "endpoints": [{}]})",
            "httpresourcespec \"p\"", "associatedTags[0]", ""},
        Bad{nullptr, SPEC(R"({"URI": "orders", "methods": ["GET"], "public": true})"),
            "httpresourcespec \"p\"", "endpoints[0].URI", "does not start with '/'"},
        Bad{nullptr, SPEC(R"({"URI": "/a//b", "methods": ["GET"], "public": true})"),
            "httpresourcespec \"p\"", "endpoints[0].URI", "empty segment"},
        Bad{nullptr, SPEC(R"({"URI": "/a/../b", "methods": ["GET"], "public": true})"),
            "httpresourcespec \"p\"", "endpoints[0].URI", "\"..\" segment"},
        Bad{nullptr, SPEC(R"({"URI": "/a/*/b", "methods": ["GET"], "public": true})"),
            "httpresourcespec \"p\"", "endpoints[0].URI", "only as the last segment"},
        Bad{nullptr, SPEC(R"({"URI": "/a/b*", "methods": ["GET"], "public": true})"),
            "httpresourcespec \"p\"", "endpoints[0].URI", "stand alone"},
        Bad{nullptr, SPEC(R"({"URI": "/a", "public": true})"), "httpresourcespec \"p\"",
            "endpoints[0].methods", "missing or empty"},
        Bad{nullptr,
            SPEC(EP("") ","
                        R"({"URI": "/b", "methods": ["GET", "GETT"], "public": true})"),
            "httpresourcespec \"p\"", "endpoints[1].methods[1]", "unknown method \"GETT\""},
        Bad{nullptr, SPEC(EP("") "," EP("")), "httpresourcespec \"p\"", "endpoints[1].methods[0]",
            "already listed"},
        Bad{nullptr, SPEC(EP(R"(, "public": true)")), "httpresourcespec \"p\"",
            "endpoints[0].allowedScopes", "takes no allowedScopes"},
        Bad{nullptr, SPEC(R"({"URI": "/a", "methods": ["GET"]})"), "httpresourcespec \"p\"",
            "endpoints[0].allowedScopes", "nobody could call it"},
        Bad{nullptr, SPEC(R"({"URI": "/a", "methods": ["GET"], "allowedScopes": [["k=v", "x"]]})"),
            "httpresourcespec \"p\"", "endpoints[0].allowedScopes[0][1]", ""},
        Bad{nullptr,
            SPEC(R"({"URI": "/a", "methods": ["GET"], "allowedScopes": [["k=v"]], "pub": 1})"),
            "httpresourcespec \"p\"", "endpoints[0].pub", "unknown field"}));

TEST(L7Model, DuplicateNames) {
    std::string s = bundle(std::string(SVC("")) + "," + SVC(""), kSpec);
    EXPECT_THROW(parse_policy_set(s), PolicyError);
    try {
        parse_policy_set(s);
    } catch (const PolicyError &e) {
        EXPECT_EQ(e.field(), "name");
        EXPECT_NE(e.problem().find("duplicate"), std::string::npos);
    }
}

// ---- the decision ---------------------------------------------------------------------------

ApiRoutes routes_of(const std::string &service, const std::string &specs) {
    PolicySet s = parse_policy_set("{\"services\": [" + service + "], \"httpresourcespecs\": [" +
                                   specs + "]}");
    return ApiRoutes(s.services[0], s.http_resource_specs);
}

const char *kMatcherSpecs = R"(
  {"name": "a", "associatedTags": ["api=x"], "endpoints": [
    {"URI": "/orders/list", "methods": ["GET"], "allowedScopes": [["lit=1"]]},
    {"URI": "/orders/?", "methods": ["GET", "DELETE"], "allowedScopes": [["one=1"]]},
    {"URI": "/orders/*", "methods": ["GET", "POST"], "allowedScopes": [["rest=1"]]},
    {"URI": "/orders/?/items/?", "methods": ["GET"], "allowedScopes": [["items=1"]]},
    {"URI": "/orders/list/?", "methods": ["PUT"], "allowedScopes": [["listput=1"]]},
    {"URI": "/health/", "methods": ["GET", "HEAD"], "public": true}]},
  {"name": "other", "associatedTags": ["api=y"], "endpoints": [
    {"URI": "/admin", "methods": ["GET"], "public": true}]})";

TEST(L7Match, MostSpecificWins) {
    ApiRoutes r = routes_of(SVC(""), kMatcherSpecs);
    ApiRoutes::Miss miss;
    auto uri = [&](const char *m, const char *path) -> std::string {
        const ApiRoute *x = r.match(m, path, &miss);
        return x ? x->uri : "";
    };
    EXPECT_EQ(uri("GET", "/orders/list"), "/orders/list");  // literal > ?
    EXPECT_EQ(uri("GET", "/orders/17"), "/orders/?");       // ? > *
    EXPECT_EQ(uri("GET", "/orders/17/x"), "/orders/*");     // * takes the rest
    EXPECT_EQ(uri("GET", "/orders"), "/orders/*");          // * takes zero segments too
    EXPECT_EQ(uri("GET", "/orders/17/items/3"), "/orders/?/items/?");
    EXPECT_EQ(uri("GET", "/orders/list/items/3"), "/orders/?/items/?");  // backtracks from literal
    EXPECT_EQ(uri("GET", "/orders/17?q=1&x=/y"), "/orders/?");  // the query is not the path
    EXPECT_EQ(uri("GET", "/orders/17/"), "/orders/?");          // trailing slash
    EXPECT_EQ(uri("GET", "/orders/%6Cist"), "/orders/list");    // decoded before comparing
    EXPECT_EQ(uri("HEAD", "/health"), "/health/");
}

TEST(L7Match, MethodsSelectAmongPatterns) {
    ApiRoutes r = routes_of(SVC(""), kMatcherSpecs);
    ApiRoutes::Miss miss;
    // POST is listed only by "/orders/*": the less specific pattern serves it.
    const ApiRoute *x = r.match("POST", "/orders/17", &miss);
    ASSERT_NE(x, nullptr);
    EXPECT_EQ(x->uri, "/orders/*");
    EXPECT_EQ(r.match("DELETE", "/orders/list", &miss)->uri, "/orders/?");
    EXPECT_EQ(r.match("PATCH", "/orders/17", &miss), nullptr);
    EXPECT_EQ(miss, ApiRoutes::Miss::kMethod);
    EXPECT_EQ(r.match("get", "/orders/17", &miss), nullptr);  // methods are case-sensitive
    EXPECT_EQ(miss, ApiRoutes::Miss::kMethod);
}

TEST(L7Match, MissesAndBadPaths) {
    ApiRoutes r = routes_of(SVC(""), kMatcherSpecs);
    ApiRoutes::Miss miss;
    EXPECT_EQ(r.match("GET", "/nothing", &miss), nullptr);
    EXPECT_EQ(miss, ApiRoutes::Miss::kNoEndpoint);
    // A spec the service does not expose.
    EXPECT_EQ(r.match("GET", "/admin", &miss), nullptr);
    EXPECT_EQ(miss, ApiRoutes::Miss::kNoEndpoint);
    for (const char *bad :
         {"/orders/../admin", "/orders/%2e%2e/admin", "/orders/a%2Fb", "orders/1",
          "http://x/orders/1", "*", "/orders//1", "/orders/%zz", "/orders/%0", "/orders/%00"}) {
        EXPECT_EQ(r.match("GET", bad, &miss), nullptr) << bad;
        EXPECT_EQ(miss, ApiRoutes::Miss::kBadPath) << bad;
    }
}

TEST(L7Match, ScopesAreOrOfAnds) {
    ApiRoutes r = routes_of(SVC(""), R"({"name": "a", "associatedTags": ["api=x"], "endpoints": [
      {"URI": "/o", "methods": ["GET"],
       "allowedScopes": [["app=frontend", "env=prod"], ["@usr:groups=admins"]]}]})");
    ApiRoutes::Miss miss;
    const ApiRoute *x = r.match("GET", "/o", &miss);
    ASSERT_NE(x, nullptr);
    using V = std::vector<std::string>;
    EXPECT_TRUE(x->allows(V{"app=frontend", "env=prod"}));
    EXPECT_FALSE(x->allows(V{"app=frontend"}));  // one AND half is not enough
    EXPECT_FALSE(x->allows(V{"app=frontend", "env=dev"}));
    EXPECT_TRUE(x->allows(V{user_claim_tag("groups", "admins")}));
    EXPECT_TRUE(x->allows(V{"app=other", user_claim_tag("groups", "admins")}));
    EXPECT_FALSE(x->allows(V{user_claim_tag("groups", "users")}));
    // A PU tag cannot pose as a claim: "@usr:" is only what the proxy derives from a token, and
    // a tag "groups=admins" is a different key.
    EXPECT_FALSE(x->allows(V{"groups=admins"}));
    EXPECT_FALSE(x->allows(V{}));
}

TEST(L7Match, PublicNeedsNoCaller) {
    ApiRoutes r = routes_of(SVC(""), kMatcherSpecs);
    ApiRoutes::Miss miss;
    const ApiRoute *x = r.match("GET", "/health", &miss);
    ASSERT_NE(x, nullptr);
    EXPECT_TRUE(x->allows({}));
    EXPECT_FALSE(r.match("GET", "/orders/1", &miss)->allows({}));
}

TEST(L7Match, SamePatternInTwoSpecsMergesScopes) {
    ApiRoutes r = routes_of(SVC_API(R"([["api=x"], ["api=y"]])", ""),
                            R"({"name": "a", "associatedTags": ["api=x"], "endpoints": [
                                 {"URI": "/o", "methods": ["GET"], "allowedScopes": [["a=1"]]}]},
                               {"name": "b", "associatedTags": ["api=y"], "endpoints": [
                                 {"URI": "/o", "methods": ["GET"], "allowedScopes": [["b=1"]]}]})");
    ApiRoutes::Miss miss;
    const ApiRoute *x = r.match("GET", "/o", &miss);
    ASSERT_NE(x, nullptr);
    EXPECT_TRUE(x->allows(std::vector<std::string>{"a=1"}));
    EXPECT_TRUE(x->allows(std::vector<std::string>{"b=1"}));
    EXPECT_FALSE(x->allows(std::vector<std::string>{"c=1"}));
    EXPECT_EQ(r.size(), 1u);
}

TEST(L7Match, SelectsSpecsByDerivedName) {
    ApiRoutes r = routes_of(SVC_API(R"([["$name=other"]])", ""), kMatcherSpecs);
    ApiRoutes::Miss miss;
    EXPECT_NE(r.match("GET", "/admin", &miss), nullptr);
    EXPECT_EQ(r.match("GET", "/orders/1", &miss), nullptr);
}

}  // namespace
}  // namespace segwire::policy
