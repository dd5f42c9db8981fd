#include "tools/console/realms.hpp"

#include <algorithm>

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

}  // namespace

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
