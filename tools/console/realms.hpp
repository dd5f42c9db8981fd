// Cloud login realms: off unless configured, each with an allow-list and a deployment-specific
// audience, and a rule that maps a verified cloud identity to the one enforcer ID its token is
// bound to (a template over the identity's attributes: "{instancename}", "aws-{session}", ...).
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace segwire::console {

using IdentityData = std::vector<std::pair<std::string, std::string>>;

struct AwsRealm {
    std::vector<std::string> accounts;       // 12-digit account IDs; required
    std::vector<std::string> role_patterns;  // ARN globs ('*'); optional, all must be "arn:…"
    std::string audience;                    // the signed X-Segwire-Audience header; required
    std::string endpoint = "https://sts.amazonaws.com/";  // https only
    std::string region = "us-east-1";
    std::string enforcer_id_rule;  // required
    bool configured = false;       // any --aws-* realm flag given
};

struct JwtRealm {
    std::string jwks;      // https URL or local file; required
    std::string issuer;    // GCP: default accounts.google.com; Azure: from the tenant IDs
    std::string audience;  // required
    std::vector<std::string> projects, service_accounts;  // GCP: at least one list
    std::vector<std::string> tenants;                     // Azure: required
    std::string enforcer_id_rule;                         // required
    bool configured = false;
};

struct Realms {
    AwsRealm aws;
    JwtRealm gcp, azure;
    std::string cloud_ca;  // PEM file trusted for STS and JWKS over https; "" = system CAs
    bool auto_register = false;
};

// The attributes each realm's enforcer ID rule may use.
extern const std::vector<std::string> kAwsAttributes, kGcpAttributes, kAzureAttributes;

// "" when every configured realm is complete and sane; else "--flag: problem".
std::string check_realms(const Realms &r);

// "" when `rule` is a usable template (balanced braces, known attribute names from `known`);
// else the problem.
std::string check_enforcer_id_rule(const std::string &rule, const std::vector<std::string> &known);

// Expands `rule` with the identity's attributes. Throws ConsoleError 403 naming `realm` when an
// attribute is absent or the result is not a valid enforcer ID.
std::string map_enforcer_id(const std::string &realm, const std::string &rule,
                            const IdentityData &data);

// Allow-lists; each throws ConsoleError 403 naming what is not allowed.
void check_aws_identity(const AwsRealm &r, const std::string &account, const std::string &arn);
void check_gcp_identity(const JwtRealm &r, const std::string &iss, const std::string &project,
                        const std::string &email);
void check_azure_identity(const JwtRealm &r, const std::string &iss, const std::string &tenant);

// '*' matches any run of characters (including none); everything else literally.
bool glob_match(const std::string &pattern, const std::string &text);

std::vector<std::string> split_list(const std::string &comma_separated);

}  // namespace segwire::console
