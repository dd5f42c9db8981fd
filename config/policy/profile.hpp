// Which enforcerprofile applies to an enforcer: exactly one, or the enforcer refuses to start.
#pragma once

#include <string>
#include <vector>

#include "config/policy/model.hpp"

namespace segwire::policy {

struct ProfileResolution {
    const EnforcerProfile *profile = nullptr;
    std::vector<std::string> via;  // names of the mapping policies that selected it
    bool fallback = false;         // chosen through fallback mappings
};

// Mappings whose `subject` matches the enforcer's tags select the profiles their `object` matches.
// Fallback mappings count only when no non-fallback mapping selects anything; disabled mappings
// never count. Zero or several distinct profiles → PolicyError naming the enforcer's tags or the
// candidates and the mappings that chose them.
ProfileResolution resolve_profile(const PolicySet &set,
                                  const std::vector<std::string> &enforcer_tags);

}  // namespace segwire::policy
