#include "tools/console/authz.hpp"

#include <algorithm>
#include <cctype>

#include "tools/console/error.hpp"
#include "tools/console/util.hpp"

namespace segwire::console {
namespace {

std::string claim(const rapidjson::Value &obj, const char *key) {
    const rapidjson::Value *v = member(obj, key);
    return v && v->IsString() ? std::string(v->GetString(), v->GetStringLength()) : "";
}

std::string roles_text(std::initializer_list<Role> roles) {
    std::string out;
    for (Role r : roles) out += (out.empty() ? "" : " or ") + std::string(role_name(r));
    return out;
}

}  // namespace

const char *role_name(Role r) {
    switch (r) {
        case Role::kAdmin:
            return "admin";
        case Role::kReader:
            return "reader";
        case Role::kEnforcer:
            return "enforcer";
    }
    return "?";
}

std::optional<Role> role_from_name(std::string_view name) {
    for (Role r : {Role::kAdmin, Role::kReader, Role::kEnforcer})
        if (name == role_name(r)) return r;
    return std::nullopt;
}

Caller caller_from_claims(const rapidjson::Value &claims) {
    Caller c;
    auto role = role_from_name(claim(claims, "role"));
    if (!role)
        throw ConsoleError(401,
                           "token has no role (issued before roles existed?): get a new one "
                           "from POST /issue",
                           "Authorization");
    c.role = *role;
    c.sub = claim(claims, "sub");
    c.realm = claim(claims, "realm");
    c.enforcer_id = claim(claims, "enforcerID");
    if (const rapidjson::Value *data = member(claims, "data"))
        c.appcred_id = claim(*data, "appcredID");
    if (c.role == Role::kEnforcer && !valid_enforcer_id(c.enforcer_id))
        throw ConsoleError(401, "enforcer token without a valid enforcerID", "Authorization");
    if (c.role != Role::kEnforcer) c.enforcer_id.clear();
    return c;
}

void require_role(const Caller &c, std::initializer_list<Role> roles, const std::string &what) {
    if (std::find(roles.begin(), roles.end(), c.role) != roles.end()) return;
    throw ConsoleError(
        403,
        what + " needs role " + roles_text(roles) + "; this token has role " + role_name(c.role),
        "role");
}

void require_enforcer_or(const Caller &c, const std::string &enforcer_id,
                         std::initializer_list<Role> others, const std::string &what) {
    if (std::find(others.begin(), others.end(), c.role) != others.end()) return;
    if (c.role != Role::kEnforcer) {
        std::string needed = roles_text(others);
        throw ConsoleError(403,
                           what + " needs role " + (needed.empty() ? "" : needed + " or ") +
                               "enforcer " + enforcer_id + "; this token has role " +
                               role_name(c.role),
                           "role");
    }
    if (c.enforcer_id != enforcer_id)
        throw ConsoleError(403,
                           what + " needs enforcer " + enforcer_id +
                               "'s token; this token is "
                               "bound to enforcer " +
                               c.enforcer_id,
                           "enforcerID");
}

bool valid_enforcer_id(std::string_view id) {
    if (id.empty() || id.size() > 64) return false;
    return std::all_of(id.begin(), id.end(), [](unsigned char ch) {
        return std::isalnum(ch) || ch == '-' || ch == '_' || ch == '.';
    });
}

}  // namespace segwire::console
