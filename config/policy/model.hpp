// The Console object model (gaia specs) as the enforcer sees it, and the policy bundle that carries
// it. JSON field names are the Console's (see docs/policy.md); C++ members are their snake_case.
//
// A PolicySet is what one enforcer enforces: the namespace defaults plus every enforcerprofile,
// mapping, processing unit, ruleset and external network that applies. It is parsed from one JSON
// document (the bundle served by the Console) or assembled from a directory of *.json files (the
// reference Console's source of truth). Parsing validates; every error names the object, the field
// and the problem (PolicyError).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/policy/error.hpp"
#include "config/policy/syntax.hpp"

namespace segwire::policy {

enum class RuleAction : uint8_t { kAllow, kReject };

struct NetworkRule {
    RuleAction action = RuleAction::kAllow;
    TagExpression object;
    std::vector<std::string> protocol_ports;  // protocolPorts
    bool observation_enabled = false;         // observationEnabled
    bool logs_disabled = false;               // logsDisabled
    std::string name;                         // ≤ 16 characters; reported as ruleName

    bool operator==(const NetworkRule &) const = default;
};

struct NetworkRuleSetPolicy {
    std::string id;  // ID
    std::string name;
    std::string description;
    TagExpression subject;
    std::vector<NetworkRule> incoming_rules;  // incomingRules
    std::vector<NetworkRule> outgoing_rules;  // outgoingRules
    bool disabled = false;
    bool fallback = false;
    std::vector<std::string> associated_tags;  // associatedTags

    bool operator==(const NetworkRuleSetPolicy &) const = default;
};

struct ExternalNetwork {
    std::string id;
    std::string name;
    std::string description;
    std::vector<std::string> entries;        // CIDRs, "!CIDR" exclusions, hostnames
    std::vector<std::string> service_ports;  // servicePorts; empty = any
    std::vector<std::string> associated_tags;

    bool operator==(const ExternalNetwork &) const = default;
};

inline const std::vector<std::string> &default_target_networks() {
    static const std::vector<std::string> nets = {"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16",
                                                  "127.0.0.0/8"};
    return nets;
}

struct EnforcerProfile {
    std::string id;
    std::string name;
    std::string description;
    // targetNetworks: managed TCP networks. Absent → default_target_networks(); present and empty →
    // nothing is managed.
    std::optional<std::vector<std::string>> target_networks;
    std::vector<std::string> target_udp_networks;  // targetUDPNetworks (no default)
    std::vector<std::string> excluded_networks;    // excludedNetworks
    // identityRequiredNetworks: peers here must prove an identity; no ACL fallback (docs/policy.md
    // "Identity required"). Each prefix lies within targetNetworks or targetUDPNetworks.
    std::vector<std::string> identity_required_networks;
    // l4TargetNetworks / autoTargetNetworks: managed TCP networks whose identity exchange is L4
    // mode (in the byte stream) or "auto" (v1, then L4 for peers whose path strips v1's option)
    // instead of v1 (docs/l4-mode.md "Modes"). Each prefix lies within targetNetworks; the two
    // lists do not overlap.
    std::vector<std::string> l4_target_networks;
    std::vector<std::string> auto_target_networks;
    // unmanagedInsideSources: "pass" (default) or "drop": packets arriving on the inside port
    // from an address no PU covers (docs/handshake.md "Anti-spoofing").
    std::string unmanaged_inside_sources = "pass";
    std::vector<std::string> excluded_interfaces;  // excludedInterfaces
    // trustedDNSResolvers: the resolvers whose answers may teach addresses for hostname entries
    // (docs/dns.md). Absent: those the PU's outgoing rules allow on the query's port by address.
    // Present: only these prefixes (empty: no resolver, no learning).
    std::optional<std::vector<std::string>> trusted_dns_resolvers;
    TagExpression ignore_expression;           // ignoreExpression
    std::vector<std::string> trusted_cas;      // trustedCAs (PEM)
    std::string flow_report_interval = "30m";  // flowReportInterval
    std::vector<std::string> associated_tags;

    const std::vector<std::string> &effective_target_networks() const {
        return target_networks ? *target_networks : default_target_networks();
    }

    bool operator==(const EnforcerProfile &) const = default;
};

struct EnforcerProfileMappingPolicy {
    std::string id;
    std::string name;
    std::string description;
    TagExpression subject;  // selects enforcers
    TagExpression object;   // selects enforcerprofiles
    bool fallback = false;
    bool disabled = false;

    bool operator==(const EnforcerProfileMappingPolicy &) const = default;
};

struct ProcessingUnit {
    std::string id;  // ID (required)
    std::string name;
    std::string type;
    std::vector<std::string> associated_tags;
    std::vector<std::string> normalized_tags;
    std::vector<std::string> addresses;  // IPs/CIDRs (v4/v6) this appliance PU covers
    // enforcerID: the enforcer that hosts the PU. Only that enforcer signs claims for it, and
    // receivers accept the PU's claims only when that enforcer's certificate signed them (docs/
    // policy.md "Who may speak for a PU"). Empty: no enforcer speaks for the PU.
    std::string enforcer_id;

    bool operator==(const ProcessingUnit &) const = default;
};

// ---- L7 (docs/l7.md) ---------------------------------------------------------------------------

// claimsToHTTPHeaderMappings element: the value of claim `claimName` is sent to the service in the
// header `targetHTTPHeader` (and a copy of that header arriving from the client is removed).
struct ClaimHeaderMapping {
    std::string claim_name;          // claimName
    std::string target_http_header;  // targetHTTPHeader

    bool operator==(const ClaimHeaderMapping &) const = default;
};

// An HTTP service of the PUs its selector matches: the enforcer's proxy authorizes every call to
// it against the endpoints of the httpresourcespecs its exposedAPIs select.
struct Service {
    std::string id;
    std::string name;
    std::string description;
    TagExpression selector;           // PUs serving it (OR of AND-lists, as a ruleset's subject)
    uint16_t port = 0;                // the PU's TCP port
    uint16_t exposed_port = 0;        // exposedPort: what clients connect to (0 = port)
    TagExpression exposed_apis;       // exposedAPIs: selects httpresourcespecs by associatedTags
    std::vector<std::string> hosts;   // DNS names (TLS SANs)
    std::string tls_type = "None";    // TLSType: None | Aporeto | External
    std::string tls_certificate;      // TLSCertificate (PEM chain; External only)
    std::string tls_certificate_key;  // TLSCertificateKey (PEM; External only)
    std::string authorization_type = "None";       // authorizationType: None | JWT | OIDC-JWT
    std::string jwt_issuer;                        // JWTIssuer
    std::string jwks_url;                          // JWKSURL (https)
    std::string jwt_audience;                      // JWTAudience
    std::vector<std::string> jwt_algorithms;       // JWTAlgorithms (RS256, ES256; pinned)
    std::vector<std::string> user_claims_to_tags;  // userClaimsToTags: claim → @usr:claim=value
    std::vector<ClaimHeaderMapping> claims_to_http_headers;  // claimsToHTTPHeaderMappings
    bool allow_upgrade = false;                              // allowUpgrade
    std::vector<std::string> associated_tags;
    // upstreams: the local PU addresses, added by the enforcer in <run_dir>/l7/services.json
    // (docs/l7.md "Contract"); never stored by the Console.
    std::vector<std::string> upstreams;

    uint16_t effective_exposed_port() const { return exposed_port ? exposed_port : port; }
    bool needs_user_auth() const { return authorization_type != "None"; }
    bool operator==(const Service &) const = default;
};

struct HttpEndpoint {
    std::string uri;                   // URI: "/orders/?", "/static/*"
    std::vector<std::string> methods;  // GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS, TRACE
    TagExpression allowed_scopes;      // allowedScopes over caller PU tags and @usr: claim tags
    bool is_public = false;            // public: no caller needed at all

    bool operator==(const HttpEndpoint &) const = default;
};

struct HttpResourceSpec {
    std::string id;
    std::string name;
    std::string description;
    std::vector<std::string> associated_tags;  // what services' exposedAPIs select
    std::vector<HttpEndpoint> endpoints;

    bool operator==(const HttpResourceSpec &) const = default;
};

// The methods an endpoint may list.
bool is_http_method(std::string_view m);

// An endpoint URI pattern: "/" then segments; a segment is literal, "?" (exactly one segment) or,
// last, "*" (the rest: zero or more segments). One trailing '/' is ignored; "//", "." and ".."
// are errors. On success *segments (if given) receives the segments.
bool parse_uri_pattern(std::string_view uri, std::vector<std::string> *segments,
                       std::string *problem);

struct Namespace {
    std::string name;
    RuleAction default_incoming = RuleAction::kReject;  // defaultPUIncomingTrafficAction
    RuleAction default_outgoing = RuleAction::kReject;  // defaultPUOutgoingTrafficAction

    bool operator==(const Namespace &) const = default;
};

struct PolicySet {
    std::string version;
    Namespace ns;                                    // "namespace"
    std::vector<EnforcerProfile> enforcer_profiles;  // enforcerprofiles
    std::vector<EnforcerProfileMappingPolicy>
        enforcer_profile_mappings;                       // enforcerprofilemappingpolicies
    std::vector<ProcessingUnit> processing_units;        // processingunits
    std::vector<NetworkRuleSetPolicy> network_policies;  // networkrulesetpolicies
    std::vector<ExternalNetwork> external_networks;      // externalnetworks
    std::vector<Service> services;                       // services
    std::vector<HttpResourceSpec> http_resource_specs;   // httpresourcespecs

    bool operator==(const PolicySet &) const = default;
};

// What the enforcer writes for its proxy in <run_dir>/l7/services.json: the services hosted here
// (each with "upstreams") and every httpresourcespec. docs/l7.md "Contract".
struct L7Document {
    std::string version;
    std::vector<Service> services;
    std::vector<HttpResourceSpec> http_resource_specs;
};

// Parse and validate services.json. Throws PolicyError.
L7Document parse_l7_document(const std::string &json_text);
// Its JSON (parse_l7_document(serialize_l7_document(d)) gives d back).
std::string serialize_l7_document(const L7Document &doc);

// The tags an object is matched on: its own tags plus derived ones ($identity, $name, $id), so that
// an expression can say [["$identity=externalnetwork"]] or [["$name=db"]].
std::vector<std::string> effective_tags(const ProcessingUnit &pu);
std::vector<std::string> effective_tags(const ExternalNetwork &net);
std::vector<std::string> effective_tags(const EnforcerProfile &profile);
std::vector<std::string> effective_tags(const HttpResourceSpec &spec);

// How errors name an object: `<kind> "<name>"` (or the ID, or "#<index>").
std::string object_label(const char *kind, const std::string &name, const std::string &id,
                         size_t index);

// Parse one bundle document and validate it. Throws PolicyError.
PolicySet parse_policy_set(const std::string &json_text);

// Load every *.json file of a directory (sorted by name; each holds any subset of the bundle's
// keys; "version" and "namespace" may appear in at most one file), merge, validate. Throws
// PolicyError whose source() names the file.
PolicySet load_policy_dir(const std::string &dir);

// Semantic checks of a set built in code or parsed: expressions, ports, CIDRs, names, duplicates.
void validate(const PolicySet &set);

// The bundle JSON (stable field order; parse_policy_set(serialize(s)) == s).
std::string serialize_policy_set(const PolicySet &set, bool pretty = true);

}  // namespace segwire::policy
