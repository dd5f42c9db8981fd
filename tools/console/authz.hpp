// Who may do what on the Console (docs/console.md, "Security model").
//
// Every app credential and every token carries a role:
//   admin     policy objects, namespace, app credentials, enforcer approval and deletion, and
//             every read;
//   reader    reads only: policy objects, namespace, enforcers, bundles, reports, audit log;
//   enforcer  bound to exactly one enforcer ID: registers that ID, reads that ID's record,
//             profile and bundle and the peer certificates, posts heartbeats and reports as it.
// A route names the roles it admits and, for enforcer routes, whose ID it concerns; check()
// answers 403 naming what is missing.
#pragma once

#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>

#include <rapidjson/document.h>

namespace segwire::console {

enum class Role : uint8_t { kAdmin, kReader, kEnforcer };

const char *role_name(Role r);
std::optional<Role> role_from_name(std::string_view name);

// The verified token's subject, as the routes see it.
struct Caller {
    Role role = Role::kReader;
    std::string enforcer_id;  // enforcer role only
    std::string sub;          // the token's subject (credential ID, ARN, cloud subject)
    std::string realm;        // Certificate | AWSSecurityToken | GCPIdentityToken | ...
    std::string appcred_id;   // realm Certificate: the credential that obtained the token
};

// Reads role, enforcerID, sub, realm and data.appcredID from verified claims. A token without a
// usable role (issued before roles existed, or altered) is a 401.
Caller caller_from_claims(const rapidjson::Value &claims);

// 403 unless the caller's role is one of `roles`. `what` names the action ("PUT /namespace").
void require_role(const Caller &c, std::initializer_list<Role> roles, const std::string &what);

// For routes that concern one enforcer: admits `others` roles for any ID, and the enforcer role
// only for its own ID (403 naming both IDs otherwise).
void require_enforcer_or(const Caller &c, const std::string &enforcer_id,
                         std::initializer_list<Role> others, const std::string &what);

// Enforcer IDs: 1..64 of A-Z a-z 0-9 - _ . (the CSR CN, the certificate CN, the claims' ID).
bool valid_enforcer_id(std::string_view id);

}  // namespace segwire::console
