// Cloud realm configuration and allow-lists: what check_realms() refuses at start-up, the enforcer
// ID rules, and the per-identity checks (the integration tests run them against fakes over TLS).
#include <gtest/gtest.h>

#include "tools/console/error.hpp"
#include "tools/console/realms.hpp"

namespace segwire::console {
namespace {

int status_of(const std::function<void()> &f) {
    try {
        f();
    } catch (const ConsoleError &e) {
        return e.status();
    }
    return 0;
}

TEST(Realms, OffUnlessConfiguredAndNeverHalfOpen) {
    Realms r;
    EXPECT_EQ(check_realms(r), "");  // nothing configured: nothing enabled
    r.aws.configured = true;
    EXPECT_EQ(check_realms(r).rfind("--aws-accounts:", 0), 0u);
    r.aws.accounts = {"12345"};
    EXPECT_NE(check_realms(r).find("12-digit"), std::string::npos);
    r.aws.accounts = {"123456789012"};
    EXPECT_EQ(check_realms(r).rfind("--aws-audience:", 0), 0u);
    r.aws.audience = "console-prod";
    r.aws.endpoint = "http://sts.example";
    EXPECT_EQ(check_realms(r).rfind("--aws-endpoint:", 0), 0u);
    r.aws.endpoint = "https://sts.amazonaws.com/";
    EXPECT_EQ(check_realms(r).rfind("--aws-enforcer-id:", 0), 0u);
    r.aws.enforcer_id_rule = "aws-{nope}";
    EXPECT_NE(check_realms(r).find("unknown attribute {nope}"), std::string::npos);
    r.aws.enforcer_id_rule = "aws-{session}";
    EXPECT_EQ(check_realms(r), "");

    r.gcp.configured = true;
    r.gcp.jwks = "http://www.googleapis.com/oauth2/v3/certs";
    r.gcp.audience = "console-prod";
    r.gcp.enforcer_id_rule = "{instancename}";
    EXPECT_NE(check_realms(r).find("only over https"), std::string::npos);
    r.gcp.jwks = "https://www.googleapis.com/oauth2/v3/certs";
    EXPECT_EQ(check_realms(r).rfind("--gcp-projects:", 0), 0u);
    r.gcp.projects = {"shop"};
    EXPECT_EQ(check_realms(r), "");

    r.azure.configured = true;
    r.azure.jwks = "/etc/azure-jwks.json";
    r.azure.audience = "api://console-prod";
    r.azure.enforcer_id_rule = "az-{objectid}";
    EXPECT_EQ(check_realms(r).rfind("--azure-tenants:", 0), 0u);
    r.azure.tenants = {"tenant-1"};
    EXPECT_EQ(check_realms(r), "");
}

TEST(Realms, EnforcerIdRules) {
    EXPECT_NE(check_enforcer_id_rule("fixed-id", kGcpAttributes), "");  // same ID for everyone
    EXPECT_NE(check_enforcer_id_rule("{instancename", kGcpAttributes), "");
    EXPECT_NE(check_enforcer_id_rule("a}{b", kGcpAttributes), "");
    EXPECT_EQ(check_enforcer_id_rule("gcp-{projectid}-{instancename}", kGcpAttributes), "");
    IdentityData d = {{"projectid", "shop"}, {"instancename", "gw-1"}};
    EXPECT_EQ(map_enforcer_id("GCPIdentityToken", "gcp-{projectid}-{instancename}", d),
              "gcp-shop-gw-1");
    EXPECT_EQ(status_of([&] { map_enforcer_id("GCPIdentityToken", "{zone}", d); }), 403);
    IdentityData bad = {{"instancename", "gw 1/../x"}};
    EXPECT_EQ(status_of([&] { map_enforcer_id("GCPIdentityToken", "{instancename}", bad); }), 403);
}

TEST(Realms, AllowLists) {
    AwsRealm aws;
    aws.accounts = {"123456789012"};
    aws.role_patterns = {"arn:aws:iam::123456789012:role/segwire-*"};
    const std::string arn = "arn:aws:sts::123456789012:assumed-role/segwire-gw/i-0abc";
    EXPECT_EQ(status_of([&] { check_aws_identity(aws, "123456789012", arn); }), 0);
    EXPECT_EQ(status_of([&] { check_aws_identity(aws, "999999999999", arn); }), 403);
    EXPECT_EQ(status_of([&] {
                  check_aws_identity(aws, "123456789012",
                                     "arn:aws:sts::123456789012:assumed-role/admin/i-0abc");
              }),
              403);

    JwtRealm gcp;
    gcp.projects = {"shop"};
    EXPECT_EQ(
        status_of([&] { check_gcp_identity(gcp, "https://accounts.google.com", "shop", ""); }), 0);
    EXPECT_EQ(status_of([&] { check_gcp_identity(gcp, "https://evil.example", "shop", ""); }), 403);
    EXPECT_EQ(status_of([&] { check_gcp_identity(gcp, "accounts.google.com", "other", ""); }), 403);
    gcp.service_accounts = {"gw@shop.iam.gserviceaccount.com"};
    EXPECT_EQ(status_of([&] { check_gcp_identity(gcp, "accounts.google.com", "shop", "x@y"); }),
              403);

    JwtRealm az;
    az.tenants = {"tenant-1"};
    EXPECT_EQ(status_of([&] {
                  check_azure_identity(az, "https://sts.windows.net/tenant-1/", "tenant-1");
              }),
              0);
    EXPECT_EQ(status_of([&] {
                  check_azure_identity(az, "https://login.microsoftonline.com/tenant-1/v2.0",
                                       "tenant-1");
              }),
              0);
    EXPECT_EQ(status_of([&] {
                  check_azure_identity(az, "https://sts.windows.net/tenant-2/", "tenant-1");
              }),
              403);
    EXPECT_EQ(status_of([&] {
                  check_azure_identity(az, "https://sts.windows.net/tenant-2/", "tenant-2");
              }),
              403);
}

TEST(Realms, GlobMatch) {
    EXPECT_TRUE(glob_match("arn:*:role/a*", "arn:aws:iam::1:role/abc"));
    EXPECT_TRUE(glob_match("*", ""));
    EXPECT_FALSE(glob_match("arn:*:role/a*", "arn:aws:iam::1:role/b"));
    EXPECT_FALSE(glob_match("abc", "abcd"));
    EXPECT_TRUE(glob_match("a*b*c", "a-b-b-c"));
}

}  // namespace
}  // namespace segwire::console
