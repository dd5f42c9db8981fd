#include "config/policy/profile.hpp"

#include <map>

namespace segwire::policy {
namespace {

ParsedExpression parsed(const TagExpression &e, const std::string &label, const char *field) {
    ParsedExpression out;
    std::string where, problem;
    if (!parse_tag_expression(e, &out, &where, &problem))
        throw PolicyError(label, field + where, problem);
    return out;
}

std::string join_tags(const std::vector<std::string> &tags) {
    std::string s = "[";
    for (size_t i = 0; i < tags.size(); ++i) s += (i ? ", " : "") + tags[i];
    return s + "]";
}

}  // namespace

ProfileResolution resolve_profile(const PolicySet &set,
                                  const std::vector<std::string> &enforcer_tags) {
    std::vector<std::vector<std::string>> profile_tags;
    for (const auto &p : set.enforcer_profiles) profile_tags.push_back(effective_tags(p));

    for (bool fallback : {false, true}) {
        // profile index → mappings that chose it (ordered, so the error text is stable)
        std::map<size_t, std::vector<std::string>> chosen;
        for (size_t i = 0; i < set.enforcer_profile_mappings.size(); ++i) {
            const auto &m = set.enforcer_profile_mappings[i];
            if (m.disabled || m.fallback != fallback) continue;
            std::string label = object_label("enforcerprofilemappingpolicy", m.name, m.id, i);
            if (!expression_matches(parsed(m.subject, label, "subject"), enforcer_tags)) continue;
            ParsedExpression obj = parsed(m.object, label, "object");
            for (size_t p = 0; p < set.enforcer_profiles.size(); ++p)
                if (expression_matches(obj, profile_tags[p]))
                    chosen[p].push_back(m.name.empty() ? m.id : m.name);
        }
        if (chosen.empty()) continue;
        if (chosen.size() == 1) {
            ProfileResolution r;
            r.profile = &set.enforcer_profiles[chosen.begin()->first];
            r.via = chosen.begin()->second;
            r.fallback = fallback;
            return r;
        }
        std::string cands;
        for (const auto &[p, via] : chosen) {
            if (!cands.empty()) cands += ", ";
            cands += "\"" + set.enforcer_profiles[p].name + "\" (via";
            for (const auto &v : via) cands += " \"" + v + "\"";
            cands += ")";
        }
        throw PolicyError("enforcer " + join_tags(enforcer_tags), "enforcerprofilemappingpolicies",
                          std::to_string(chosen.size()) + " enforcerprofiles match" +
                              (fallback ? " through fallback mappings" : "") + ": " + cands +
                              "; exactly one must");
    }
    throw PolicyError("enforcer " + join_tags(enforcer_tags), "enforcerprofilemappingpolicies",
                      "no enforcerprofile matches the enforcer's tags (checked " +
                          std::to_string(set.enforcer_profile_mappings.size()) +
                          " mappings against " + std::to_string(set.enforcer_profiles.size()) +
                          " profiles); exactly one must");
}

}  // namespace segwire::policy
