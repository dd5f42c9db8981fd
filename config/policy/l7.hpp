// The L7 decision, shared by segwire-proxy and the tests: which endpoint of a service a request
// hits (method + path, most specific pattern first) and whether a caller's tags satisfy it.
// docs/l7.md "Model".
#pragma once

#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "config/policy/model.hpp"
#include "config/policy/syntax.hpp"

namespace segwire::policy {

// The tag a user claim becomes in allowedScopes: "@usr:<claim>=<value>".
inline std::string user_claim_tag(std::string_view claim, std::string_view value) {
    return "@usr:" + std::string(claim) + "=" + std::string(value);
}

// One (URI pattern, method) of a service, merged over every selected spec that lists it: public
// if one of them says so, otherwise allowed when any scope of any of them matches.
struct ApiRoute {
    std::string uri;  // the pattern, reported as the call's path template
    bool is_public = false;
    std::vector<ParsedExpression> scopes;  // each an OR of ANDs; the route allows if one matches

    bool allows(std::span<const std::string> caller_tags) const;
};

class ApiRoutes {
  public:
    ApiRoutes();
    // The endpoints of the specs whose associatedTags (plus $name/$id/$identity) the service's
    // exposedAPIs select. The inputs are validated (parse_l7_document / validate).
    ApiRoutes(const Service &service, const std::vector<HttpResourceSpec> &specs);
    ApiRoutes(ApiRoutes &&) noexcept;
    ApiRoutes &operator=(ApiRoutes &&) noexcept;
    ~ApiRoutes();

    enum class Miss : uint8_t {
        kNone,
        kNoEndpoint,  // no pattern matches the path
        kMethod,      // a pattern matches the path, none of them lists the method
        kBadPath,     // not an origin-form path, or "."/".."/an encoded '/' in a segment
    };
    // The most specific route for (method, request target): at the first segment where candidate
    // patterns differ, a literal beats '?' which beats '*'. A query string is ignored; segments
    // are percent-decoded before comparison. nullptr and *miss when none.
    const ApiRoute *match(std::string_view method, std::string_view target, Miss *miss) const;

    size_t size() const { return routes_.size(); }

  private:
    struct Node;
    std::unique_ptr<Node> root_;
    std::vector<std::unique_ptr<ApiRoute>> routes_;
};

// The request target's path split into percent-decoded segments (query dropped). False for a
// target that is not origin-form ("/…") or holds ".", "..", an empty segment or a decoded '/'.
bool split_request_path(std::string_view target, std::vector<std::string> *segments);

}  // namespace segwire::policy
