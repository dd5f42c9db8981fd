#include "tools/console/realms.hpp"

#include <algorithm>
#include <cctype>
#include <tuple>

#include "tools/console/authz.hpp"
#include "tools/console/error.hpp"

namespace segwire::console {
namespace {

// Calls f(literal) and g(attribute name) in order; false on unbalanced braces.
template <typename F, typename G>
bool walk(const std::string &rule, F &&literal, G &&attribute) {
    size_t pos = 0;
    while (pos < rule.size()) {
        size_t open = rule.find('{', pos), close = rule.find('}', pos);
        if (close < open) return false;  // a '}' before any '{'
        if (open == std::string::npos) {
            literal(rule.substr(pos));
            return true;
        }
        literal(rule.substr(pos, open - pos));
        close = rule.find('}', open);
        if (close == std::string::npos) return false;
        std::string name = rule.substr(open + 1, close - open - 1);
        if (name.empty() || name.find('{') != std::string::npos) return false;
        if (!attribute(name)) return true;
        pos = close + 1;
    }
    return true;
}

bool contains(const std::vector<std::string> &v, const std::string &x) {
    return std::find(v.begin(), v.end(), x) != v.end();
}

std::string https_or_file(const std::string &flag, const std::string &source) {
    if (source.rfind("http://", 0) == 0)
        return flag + ": \"" + source + "\": key sets only over https (or from a local file)";
    return "";
}

}  // namespace

const std::vector<std::string> kAwsAttributes = {"account", "arn", "userid", "rolename", "session"};
const std::vector<std::string> kGcpAttributes = {
    "subject", "issuer", "email", "projectid", "zone", "instancename", "instanceid"};
const std::vector<std::string> kAzureAttributes = {"subject", "issuer", "tenantid", "objectid",
                                                   "resourceid"};

std::vector<std::string> split_list(const std::string &text) {
    std::vector<std::string> out;
    size_t pos = 0;
    while (pos <= text.size()) {
        size_t comma = text.find(',', pos);
        std::string item = text.substr(pos, comma == std::string::npos ? comma : comma - pos);
        item.erase(0, item.find_first_not_of(" \t"));
        item.erase(item.find_last_not_of(" \t") + 1);
        if (!item.empty()) out.push_back(item);
        if (comma == std::string::npos) break;
        pos = comma + 1;
    }
    return out;
}

bool glob_match(const std::string &pattern, const std::string &text) {
    // Iterative wildcard match: remembers the last '*' to backtrack to.
    size_t p = 0, t = 0, star = std::string::npos, mark = 0;
    while (t < text.size()) {
        if (p < pattern.size() && pattern[p] == '*') {
            star = p++;
            mark = t;
        } else if (p < pattern.size() && pattern[p] == text[t]) {
            ++p;
            ++t;
        } else if (star != std::string::npos) {
            p = star + 1;
            t = ++mark;
        } else {
            return false;
        }
    }
    while (p < pattern.size() && pattern[p] == '*') ++p;
    return p == pattern.size();
}

std::string check_realms(const Realms &r) {
    const AwsRealm &a = r.aws;
    if (a.configured) {
        if (a.accounts.empty()) return "--aws-accounts: required to enable the AWS realm";
        for (const auto &acct : a.accounts)
            if (acct.size() != 12 || !std::all_of(acct.begin(), acct.end(), ::isdigit))
                return "--aws-accounts: \"" + acct + "\" is not a 12-digit AWS account ID";
        for (const auto &p : a.role_patterns)
            if (p.rfind("arn:", 0) != 0) return "--aws-roles: \"" + p + "\" is not an ARN pattern";
        if (a.audience.empty()) return "--aws-audience: required to enable the AWS realm";
        if (a.endpoint.rfind("https://", 0) != 0)
            return "--aws-endpoint: \"" + a.endpoint + "\": STS only over https";
        if (a.enforcer_id_rule.empty())
            return "--aws-enforcer-id: required to enable the AWS realm";
        if (auto p = check_enforcer_id_rule(a.enforcer_id_rule, kAwsAttributes); !p.empty())
            return "--aws-enforcer-id: " + p;
    }
    for (auto [name, realm, attrs] : {std::tuple{"gcp", &r.gcp, &kGcpAttributes},
                                      std::tuple{"azure", &r.azure, &kAzureAttributes}}) {
        const JwtRealm &j = *realm;
        if (!j.configured) continue;
        const std::string f = std::string("--") + name + "-";
        if (j.jwks.empty()) return f + "jwks: required to enable the realm";
        if (auto p = https_or_file(f + "jwks", j.jwks); !p.empty()) return p;
        if (j.audience.empty()) return f + "audience: required (this deployment's own audience)";
        if (std::string(name) == "gcp" && j.projects.empty() && j.service_accounts.empty())
            return "--gcp-projects: the GCP realm needs --gcp-projects or --gcp-service-accounts "
                   "(anyone can mint a Google ID token for any audience)";
        if (std::string(name) == "azure" && j.tenants.empty())
            return "--azure-tenants: required to enable the Azure realm";
        if (j.enforcer_id_rule.empty()) return f + "enforcer-id: required to enable the realm";
        if (auto p = check_enforcer_id_rule(j.enforcer_id_rule, *attrs); !p.empty())
            return f + "enforcer-id: " + p;
    }
    return "";
}

void check_aws_identity(const AwsRealm &r, const std::string &account, const std::string &arn) {
    if (!contains(r.accounts, account))
        throw ConsoleError(403,
                           "AWSSecurityToken: account " + account +
                               " is not allowed on this Console (--aws-accounts)",
                           "metadata");
    if (r.role_patterns.empty()) return;
    // arn:aws:sts::<account>:assumed-role/<role>/<session> is checked as the role's IAM ARN
    // arn:aws:iam::<account>:role/<role> (STS drops role paths), other ARNs as they are.
    std::string role_arn = arn;
    size_t ar = arn.find(":assumed-role/");
    if (ar != std::string::npos) {
        std::string rest = arn.substr(ar + 14);
        role_arn = "arn:aws:iam::" + account + ":role/" + rest.substr(0, rest.find('/'));
    }
    for (const auto &p : r.role_patterns)
        if (glob_match(p, role_arn) || glob_match(p, arn)) return;
    throw ConsoleError(403,
                       "AWSSecurityToken: " + role_arn + " matches no allowed role (--aws-roles)",
                       "metadata");
}

void check_gcp_identity(const JwtRealm &r, const std::string &iss, const std::string &project,
                        const std::string &email) {
    bool iss_ok = r.issuer.empty()
                      ? iss == "https://accounts.google.com" || iss == "accounts.google.com"
                      : iss == r.issuer;
    if (!iss_ok)
        throw ConsoleError(403,
                           "GCPIdentityToken: issuer \"" + iss + "\" is not " +
                               (r.issuer.empty() ? "https://accounts.google.com" : r.issuer),
                           "metadata.token");
    if (!r.projects.empty() && !contains(r.projects, project))
        throw ConsoleError(403,
                           "GCPIdentityToken: project \"" + project +
                               "\" is not allowed on this Console (--gcp-projects)",
                           "metadata.token");
    if (!r.service_accounts.empty() && !contains(r.service_accounts, email))
        throw ConsoleError(403,
                           "GCPIdentityToken: service account \"" + email +
                               "\" is not allowed on this Console (--gcp-service-accounts)",
                           "metadata.token");
}

void check_azure_identity(const JwtRealm &r, const std::string &iss, const std::string &tenant) {
    if (!contains(r.tenants, tenant))
        throw ConsoleError(403,
                           "AzureIdentityToken: tenant \"" + tenant +
                               "\" is not allowed on this Console (--azure-tenants)",
                           "metadata.token");
    // The issuer must be the token's own tenant's (v1 or v2 endpoint), or the configured one.
    bool iss_ok = r.issuer.empty()
                      ? iss == "https://sts.windows.net/" + tenant + "/" ||
                            iss == "https://login.microsoftonline.com/" + tenant + "/v2.0"
                      : iss == r.issuer;
    if (!iss_ok)
        throw ConsoleError(403,
                           "AzureIdentityToken: issuer \"" + iss + "\" is not tenant " + tenant +
                               "'s" +
                               (r.issuer.empty() ? "" : " (--azure-issuer " + r.issuer + ")"),
                           "metadata.token");
}

std::string check_enforcer_id_rule(const std::string &rule, const std::vector<std::string> &known) {
    if (rule.empty()) return "empty";
    std::string unknown;
    bool any = false;
    bool ok = walk(
        rule, [](const std::string &) {},
        [&](const std::string &name) {
            any = true;
            if (std::find(known.begin(), known.end(), name) == known.end()) {
                unknown = name;
                return false;
            }
            return true;
        });
    if (!ok) return "unbalanced { } in \"" + rule + "\"";
    if (!unknown.empty()) {
        std::string list;
        for (const auto &k : known) list += (list.empty() ? "" : ", ") + k;
        return "unknown attribute {" + unknown + "} (known: " + list + ")";
    }
    if (!any)
        return "\"" + rule + "\" names no attribute: every identity would get the same enforcer ID";
    return "";
}

std::string map_enforcer_id(const std::string &realm, const std::string &rule,
                            const IdentityData &data) {
    std::string out, missing;
    walk(
        rule, [&](const std::string &lit) { out += lit; },
        [&](const std::string &name) {
            for (const auto &[k, v] : data)
                if (k == name && !v.empty()) {
                    out += v;
                    return true;
                }
            missing = name;
            return false;
        });
    if (!missing.empty())
        throw ConsoleError(403,
                           realm + ": the enforcer ID rule \"" + rule + "\" needs {" + missing +
                               "}, which this identity does not have",
                           "metadata");
    if (!valid_enforcer_id(out))
        throw ConsoleError(403,
                           realm + ": the enforcer ID rule \"" + rule + "\" gives \"" + out +
                               "\", not a usable enforcer ID (1..64 of A-Z a-z 0-9 - _ .)",
                           "metadata");
    return out;
}

}  // namespace segwire::console
