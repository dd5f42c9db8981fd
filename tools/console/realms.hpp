// Cloud login realms: how a verified cloud identity becomes an enforcer token. Each realm has a
// configured rule that maps the identity to one enforcer ID, a template over the identity's
// attributes: "{instancename}", "aws-{account}-{session}", ...
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace segwire::console {

using IdentityData = std::vector<std::pair<std::string, std::string>>;

// "" when `rule` is a usable template (balanced braces, known attribute names from `known`);
// else the problem.
std::string check_enforcer_id_rule(const std::string &rule, const std::vector<std::string> &known);

// Expands `rule` with the identity's attributes. Throws ConsoleError 403 naming `realm` when an
// attribute is absent or the result is not a valid enforcer ID.
std::string map_enforcer_id(const std::string &realm, const std::string &rule,
                            const IdentityData &data);

}  // namespace segwire::console
