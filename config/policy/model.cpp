#include "config/policy/model.hpp"

#include <algorithm>
#include <cctype>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include <rapidjson/document.h>
#include <rapidjson/error/en.h>
#include <rapidjson/prettywriter.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

namespace segwire::policy {
namespace {

using rapidjson::Value;

constexpr const char *kPolicyKind = "networkrulesetpolicy";
constexpr const char *kExtNetKind = "externalnetwork";
constexpr const char *kProfileKind = "enforcerprofile";
constexpr const char *kMappingKind = "enforcerprofilemappingpolicy";
constexpr const char *kPuKind = "processingunit";
constexpr const char *kNamespaceKind = "namespace";
constexpr const char *kBundleKind = "bundle";
constexpr const char *kServiceKind = "service";
constexpr const char *kSpecKind = "httpresourcespec";

// Console fields an enforcer has no use for. They are accepted (a Console bundle carries them) and
// dropped; any other unknown field is an error so that a typo like "incomingRule" is not silently
// ignored.
const std::set<std::string> &ignored_fields() {
    static const std::set<std::string> f = {
        "namespace",
        "propagate",
        "propagationHidden",
        "protected",
        "metadata",
        "annotations",
        "createTime",
        "updateTime",
        "expirationTime",
        "activeDuration",
        "activeSchedule",
        "migrationsLog",
        "zone",
        "zHash",
        "enforcerID",
        "operationalStatus",
        "enforcementStatus",
        "lastSyncTime",
        "lastPokeTime",
        "nativeContextID",
        "unreachable",
        "images",
        "collectedInfo",
        "datapathType",
        "enforcerVersion",
        "tracing",
        "normalizedTags",
        "type",
        "owner",
        "visible",
        "archived",
    };
    return f;
}

std::string idx(size_t i) {
    return "[" + std::to_string(i) + "]";
}

// Walks one JSON object of a known kind; every error carries the object label and field path.
class Reader {
  public:
    Reader(const Value &v, std::string label, std::string prefix = "")
        : v_(v), label_(std::move(label)), prefix_(std::move(prefix)) {
        if (!v_.IsObject())
            throw PolicyError(label_, prefix_.empty() ? "(object)" : prefix_,
                              "must be a JSON object");
    }
    std::string path(const std::string &key) const {
        return prefix_.empty() ? key : prefix_ + "." + key;
    }
    [[noreturn]] void fail(const std::string &field, const std::string &problem) const {
        throw PolicyError(label_, field, problem);
    }
    const Value *get(const char *key) {
        seen_.insert(key);
        auto it = v_.FindMember(key);
        return it == v_.MemberEnd() || it->value.IsNull() ? nullptr : &it->value;
    }
    void str(const char *key, std::string &out) {
        const Value *x = get(key);
        if (!x) return;
        if (!x->IsString()) fail(path(key), "must be a string");
        out.assign(x->GetString(), x->GetStringLength());
    }
    void boolean(const char *key, bool &out) {
        const Value *x = get(key);
        if (!x) return;
        if (!x->IsBool()) fail(path(key), "must be true or false");
        out = x->GetBool();
    }
    void port(const char *key, uint16_t &out) {
        const Value *x = get(key);
        if (!x) return;
        if (!x->IsUint() || x->GetUint() < 1 || x->GetUint() > 65535)
            fail(path(key), "must be a TCP port number (1-65535)");
        out = static_cast<uint16_t>(x->GetUint());
    }
    void strings(const char *key, std::vector<std::string> &out) {
        const Value *x = get(key);
        if (!x) return;
        strings_of(*x, path(key), out);
    }
    void strings_of(const Value &x, const std::string &field, std::vector<std::string> &out) const {
        if (!x.IsArray()) fail(field, "must be an array of strings");
        out.clear();
        for (rapidjson::SizeType i = 0; i < x.Size(); ++i) {
            if (!x[i].IsString()) fail(field + idx(i), "must be a string");
            out.emplace_back(x[i].GetString(), x[i].GetStringLength());
        }
    }
    void expression(const char *key, TagExpression &out) {
        const Value *x = get(key);
        if (!x) return;
        if (!x->IsArray()) fail(path(key), "must be an array of arrays of strings ([][]string)");
        out.clear();
        for (rapidjson::SizeType i = 0; i < x->Size(); ++i) {
            const Value &clause = (*x)[i];
            if (!clause.IsArray())
                fail(path(key) + idx(i), "must be an array of strings (an AND-clause)");
            out.emplace_back();
            strings_of(clause, path(key) + idx(i), out.back());
        }
    }
    void action(const char *key, RuleAction &out) {
        const Value *x = get(key);
        if (!x) return;
        std::string s = x->IsString() ? x->GetString() : "";
        if (s == "Allow")
            out = RuleAction::kAllow;
        else if (s == "Reject")
            out = RuleAction::kReject;
        else
            fail(path(key), "must be \"Allow\" or \"Reject\"");
    }
    void finish() const {
        for (auto it = v_.MemberBegin(); it != v_.MemberEnd(); ++it) {
            std::string k = it->name.GetString();
            if (!seen_.count(k) && !ignored_fields().count(k)) fail(path(k), "unknown field");
        }
    }

  private:
    const Value &v_;
    std::string label_, prefix_;
    std::set<std::string> seen_;
};

std::string peek(const Value &v, const char *key) {
    if (!v.IsObject()) return "";
    auto it = v.FindMember(key);
    return it != v.MemberEnd() && it->value.IsString() ? it->value.GetString() : "";
}

std::string label_of(const char *kind, const Value &v, size_t i) {
    return object_label(kind, peek(v, "name"), peek(v, "ID"), i);
}

NetworkRule parse_rule(const Value &v, const std::string &label, const std::string &prefix) {
    Reader r(v, label, prefix);
    NetworkRule rule;
    r.action("action", rule.action);
    r.expression("object", rule.object);
    r.strings("protocolPorts", rule.protocol_ports);
    r.boolean("observationEnabled", rule.observation_enabled);
    r.boolean("logsDisabled", rule.logs_disabled);
    r.str("name", rule.name);
    r.finish();
    return rule;
}

void parse_rules(Reader &r, const char *key, const std::string &label,
                 std::vector<NetworkRule> &out) {
    const Value *x = r.get(key);
    if (!x) return;
    if (!x->IsArray()) r.fail(key, "must be an array of rules");
    for (rapidjson::SizeType i = 0; i < x->Size(); ++i)
        out.push_back(parse_rule((*x)[i], label, std::string(key) + idx(i)));
}

NetworkRuleSetPolicy parse_policy(const Value &v, size_t i) {
    std::string label = label_of(kPolicyKind, v, i);
    Reader r(v, label);
    NetworkRuleSetPolicy p;
    r.str("ID", p.id);
    r.str("name", p.name);
    r.str("description", p.description);
    r.expression("subject", p.subject);
    parse_rules(r, "incomingRules", label, p.incoming_rules);
    parse_rules(r, "outgoingRules", label, p.outgoing_rules);
    r.boolean("disabled", p.disabled);
    r.boolean("fallback", p.fallback);
    r.strings("associatedTags", p.associated_tags);
    r.finish();
    return p;
}

ExternalNetwork parse_extnet(const Value &v, size_t i) {
    Reader r(v, label_of(kExtNetKind, v, i));
    ExternalNetwork n;
    r.str("ID", n.id);
    r.str("name", n.name);
    r.str("description", n.description);
    r.strings("entries", n.entries);
    r.strings("servicePorts", n.service_ports);
    r.strings("associatedTags", n.associated_tags);
    r.finish();
    return n;
}

EnforcerProfile parse_profile(const Value &v, size_t i) {
    Reader r(v, label_of(kProfileKind, v, i));
    EnforcerProfile p;
    r.str("ID", p.id);
    r.str("name", p.name);
    r.str("description", p.description);
    if (r.get("targetNetworks")) {
        p.target_networks.emplace();
        r.strings("targetNetworks", *p.target_networks);
    }
    r.strings("targetUDPNetworks", p.target_udp_networks);
    r.strings("identityRequiredNetworks", p.identity_required_networks);
    r.strings("l4TargetNetworks", p.l4_target_networks);
    r.strings("autoTargetNetworks", p.auto_target_networks);
    r.str("unmanagedInsideSources", p.unmanaged_inside_sources);
    r.strings("excludedNetworks", p.excluded_networks);
    r.strings("excludedInterfaces", p.excluded_interfaces);
    if (r.get("trustedDNSResolvers")) {
        p.trusted_dns_resolvers.emplace();
        r.strings("trustedDNSResolvers", *p.trusted_dns_resolvers);
    }
    r.expression("ignoreExpression", p.ignore_expression);
    r.strings("trustedCAs", p.trusted_cas);
    r.str("flowReportInterval", p.flow_report_interval);
    r.strings("associatedTags", p.associated_tags);
    r.finish();
    return p;
}

EnforcerProfileMappingPolicy parse_mapping(const Value &v, size_t i) {
    Reader r(v, label_of(kMappingKind, v, i));
    EnforcerProfileMappingPolicy m;
    r.str("ID", m.id);
    r.str("name", m.name);
    r.str("description", m.description);
    r.expression("subject", m.subject);
    r.expression("object", m.object);
    r.boolean("fallback", m.fallback);
    r.boolean("disabled", m.disabled);
    r.finish();
    return m;
}

ProcessingUnit parse_pu(const Value &v, size_t i) {
    Reader r(v, label_of(kPuKind, v, i));
    ProcessingUnit pu;
    r.str("ID", pu.id);
    r.str("name", pu.name);
    r.str("type", pu.type);
    r.strings("associatedTags", pu.associated_tags);
    r.strings("normalizedTags", pu.normalized_tags);
    r.strings("addresses", pu.addresses);
    r.str("enforcerID", pu.enforcer_id);
    r.finish();
    return pu;
}

Service parse_service(const Value &v, size_t i) {
    std::string label = label_of(kServiceKind, v, i);
    Reader r(v, label);
    Service s;
    r.str("ID", s.id);
    r.str("name", s.name);
    r.str("description", s.description);
    r.expression("selector", s.selector);
    r.port("port", s.port);
    r.port("exposedPort", s.exposed_port);
    r.expression("exposedAPIs", s.exposed_apis);
    r.strings("hosts", s.hosts);
    r.str("TLSType", s.tls_type);
    r.str("TLSCertificate", s.tls_certificate);
    r.str("TLSCertificateKey", s.tls_certificate_key);
    r.str("authorizationType", s.authorization_type);
    r.str("JWTIssuer", s.jwt_issuer);
    r.str("JWKSURL", s.jwks_url);
    r.str("JWTAudience", s.jwt_audience);
    r.strings("JWTAlgorithms", s.jwt_algorithms);
    r.strings("userClaimsToTags", s.user_claims_to_tags);
    if (const Value *m = r.get("claimsToHTTPHeaderMappings")) {
        if (!m->IsArray()) r.fail("claimsToHTTPHeaderMappings", "must be an array of objects");
        for (rapidjson::SizeType j = 0; j < m->Size(); ++j) {
            Reader mr((*m)[j], label, "claimsToHTTPHeaderMappings" + idx(j));
            ClaimHeaderMapping chm;
            mr.str("claimName", chm.claim_name);
            mr.str("targetHTTPHeader", chm.target_http_header);
            mr.finish();
            s.claims_to_http_headers.push_back(std::move(chm));
        }
    }
    r.boolean("allowUpgrade", s.allow_upgrade);
    r.strings("associatedTags", s.associated_tags);
    r.strings("upstreams", s.upstreams);
    r.finish();
    return s;
}

HttpResourceSpec parse_spec(const Value &v, size_t i) {
    std::string label = label_of(kSpecKind, v, i);
    Reader r(v, label);
    HttpResourceSpec s;
    r.str("ID", s.id);
    r.str("name", s.name);
    r.str("description", s.description);
    r.strings("associatedTags", s.associated_tags);
    if (const Value *e = r.get("endpoints")) {
        if (!e->IsArray()) r.fail("endpoints", "must be an array of objects");
        for (rapidjson::SizeType j = 0; j < e->Size(); ++j) {
            Reader er((*e)[j], label, "endpoints" + idx(j));
            HttpEndpoint ep;
            er.str("URI", ep.uri);
            er.strings("methods", ep.methods);
            er.expression("allowedScopes", ep.allowed_scopes);
            er.boolean("public", ep.is_public);
            er.finish();
            s.endpoints.push_back(std::move(ep));
        }
    }
    r.finish();
    return s;
}

template <typename T, typename F>
void parse_array(Reader &root, const char *key, std::vector<T> &out, F parse_one) {
    const Value *x = root.get(key);
    if (!x) return;
    if (!x->IsArray()) throw PolicyError(kBundleKind, key, "must be an array of objects");
    size_t base = out.size();
    for (rapidjson::SizeType i = 0; i < x->Size(); ++i) out.push_back(parse_one((*x)[i], base + i));
}

struct MergeState {
    std::string version_source, namespace_source;
};

void parse_document_into(const std::string &json_text, PolicySet &set, MergeState &ms,
                         const std::string &source) {
    rapidjson::Document doc;
    doc.Parse<rapidjson::kParseCommentsFlag | rapidjson::kParseTrailingCommasFlag>(
        json_text.c_str());
    if (doc.HasParseError())
        throw PolicyError(kBundleKind, "(json)",
                          "parse error at offset " + std::to_string(doc.GetErrorOffset()) + ": " +
                              rapidjson::GetParseError_En(doc.GetParseError()));
    if (!doc.IsObject()) throw PolicyError(kBundleKind, "(root)", "must be a JSON object");
    Reader root(doc, kBundleKind);
    if (const Value *v = root.get("version")) {
        if (!v->IsString()) throw PolicyError(kBundleKind, "version", "must be a string");
        if (!ms.version_source.empty())
            throw PolicyError(kBundleKind, "version", "already set in " + ms.version_source);
        set.version = v->GetString();
        ms.version_source = source.empty() ? "(this document)" : source;
    }
    if (const Value *v = root.get("namespace")) {
        if (!ms.namespace_source.empty())
            throw PolicyError(kBundleKind, "namespace", "already set in " + ms.namespace_source);
        Reader r(*v, kNamespaceKind, "namespace");
        r.str("name", set.ns.name);
        r.action("defaultPUIncomingTrafficAction", set.ns.default_incoming);
        r.action("defaultPUOutgoingTrafficAction", set.ns.default_outgoing);
        r.finish();
        ms.namespace_source = source.empty() ? "(this document)" : source;
    }
    parse_array(root, "enforcerprofiles", set.enforcer_profiles, parse_profile);
    parse_array(root, "enforcerprofilemappingpolicies", set.enforcer_profile_mappings,
                parse_mapping);
    parse_array(root, "processingunits", set.processing_units, parse_pu);
    parse_array(root, "networkrulesetpolicies", set.network_policies, parse_policy);
    parse_array(root, "externalnetworks", set.external_networks, parse_extnet);
    parse_array(root, "services", set.services, parse_service);
    parse_array(root, "httpresourcespecs", set.http_resource_specs, parse_spec);
    root.finish();
}

// ---- validation -------------------------------------------------------------------------------

void check_tags(const std::string &label, const std::string &field,
                const std::vector<std::string> &tags) {
    std::string k, v, problem;
    for (size_t i = 0; i < tags.size(); ++i)
        if (!parse_tag(tags[i], &k, &v, &problem))
            throw PolicyError(label, field + idx(i), problem);
}

void check_expression(const std::string &label, const std::string &field, const TagExpression &expr,
                      bool required) {
    if (required && expr.empty())
        throw PolicyError(label, field,
                          "missing or empty (an expression needs at least one clause)");
    ParsedExpression parsed;
    std::string where, problem;
    if (!parse_tag_expression(expr, &parsed, &where, &problem))
        throw PolicyError(label, field + where, problem);
}

void check_ports(const std::string &label, const std::string &field,
                 const std::vector<std::string> &ports, bool required) {
    if (required && ports.empty())
        throw PolicyError(label, field, "missing or empty (use [\"any\"] for every protocol)");
    std::vector<PortRange> ranges;
    size_t bad = 0;
    std::string problem;
    if (!parse_protocol_ports(ports, &ranges, &bad, &problem))
        throw PolicyError(label, field + idx(bad), problem);
}

std::vector<IpPrefix> check_prefixes(const std::string &label, const std::string &field,
                                     const std::vector<std::string> &list) {
    std::vector<IpPrefix> out(list.size());
    std::string problem;
    for (size_t i = 0; i < list.size(); ++i)
        if (!parse_prefix(list[i], &out[i], &problem))
            throw PolicyError(label, field + idx(i), problem);
    return out;
}

// Names identify objects in errors, flow reports and `segwirectl explain`: required and unique.
class NameRegistry {
  public:
    explicit NameRegistry(const char *kind) : kind_(kind) {}
    void add(const std::string &label, const std::string &name, const char *field = "name") {
        if (name.empty()) throw PolicyError(label, field, "missing or empty");
        auto [it, fresh] = seen_.emplace(name, label);
        if (!fresh)
            throw PolicyError(label, field,
                              "duplicate " + std::string(field) + " \"" + name + "\" (another " +
                                  kind_ + " already uses it)");
    }

  private:
    const char *kind_;
    std::map<std::string, std::string> seen_;
};

void validate_rule(const std::string &label, const std::string &prefix, const NetworkRule &r) {
    check_expression(label, prefix + ".object", r.object, true);
    check_ports(label, prefix + ".protocolPorts", r.protocol_ports, true);
    if (r.name.size() > 16)
        throw PolicyError(label, prefix + ".name",
                          "\"" + r.name +
                              "\" is longer than 16 characters (it is reported as "
                              "ruleName in flow reports)");
}

bool is_token_char(unsigned char c) {
    // RFC 9110 tchar
    return std::isalnum(c) || (c && std::strchr("!#$%&'*+-.^_`|~", c) != nullptr);
}

bool iequals(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i)
        if (std::tolower(static_cast<unsigned char>(a[i])) !=
            std::tolower(static_cast<unsigned char>(b[i])))
            return false;
    return true;
}

// A DNS name (letters, digits, '-', dots; "*." first label allowed) or an IP address.
bool valid_host(const std::string &h) {
    if (h.empty() || h.size() > 253) return false;
    IpPrefix p;
    std::string problem;
    if (h.find('/') == std::string::npos && parse_prefix(h, &p, &problem)) return true;
    std::string_view rest = h;
    if (rest.starts_with("*.")) rest.remove_prefix(2);
    size_t label = 0;
    for (char c : rest) {
        if (c == '.') {
            if (label == 0) return false;
            label = 0;
            continue;
        }
        if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-')) return false;
        if (++label > 63) return false;
    }
    return label > 0;
}

void validate_service(const Service &s, const std::string &label) {
    check_expression(label, "selector", s.selector, true);
    if (s.port == 0) throw PolicyError(label, "port", "missing (the PU's TCP port)");
    check_expression(label, "exposedAPIs", s.exposed_apis, true);
    for (size_t j = 0; j < s.hosts.size(); ++j)
        if (!valid_host(s.hosts[j]))
            throw PolicyError(label, "hosts" + idx(j),
                              "\"" + s.hosts[j] + "\" is not a DNS name or an IP address");
    if (s.tls_type != "None" && s.tls_type != "Aporeto" && s.tls_type != "External")
        throw PolicyError(
            label, "TLSType",
            "\"" + s.tls_type + "\" is not one of \"None\", \"Aporeto\", \"External\"");
    if (s.tls_type == "Aporeto" && s.hosts.empty())
        throw PolicyError(
            label, "hosts",
            "missing or empty (TLSType \"Aporeto\" issues a certificate for these names)");
    if (s.tls_type == "External") {
        if (s.tls_certificate.find("-----BEGIN CERTIFICATE-----") == std::string::npos)
            throw PolicyError(label, "TLSCertificate",
                              "missing or not a PEM certificate (TLSType \"External\" needs one)");
        if (s.tls_certificate_key.find("PRIVATE KEY-----") == std::string::npos)
            throw PolicyError(label, "TLSCertificateKey",
                              "missing or not a PEM private key (TLSType \"External\" needs one)");
    } else {
        if (!s.tls_certificate.empty())
            throw PolicyError(label, "TLSCertificate", "only with TLSType \"External\"");
        if (!s.tls_certificate_key.empty())
            throw PolicyError(label, "TLSCertificateKey", "only with TLSType \"External\"");
    }
    const bool jwt = s.authorization_type == "JWT" || s.authorization_type == "OIDC-JWT";
    if (!jwt && s.authorization_type != "None")
        throw PolicyError(
            label, "authorizationType",
            "\"" + s.authorization_type + "\" is not one of \"None\", \"JWT\", \"OIDC-JWT\"");
    if (jwt) {
        if (s.jwt_issuer.empty())
            throw PolicyError(
                label, "JWTIssuer",
                "missing (authorizationType \"" + s.authorization_type + "\" needs it)");
        if (s.jwks_url.empty())
            throw PolicyError(label, "JWKSURL", "missing (the issuer's keys are fetched from it)");
        if (!s.jwks_url.starts_with("https://"))
            throw PolicyError(
                label, "JWKSURL",
                "\"" + s.jwks_url + "\" is not an https:// URL (keys are fetched over TLS)");
        if (s.jwt_audience.empty())
            throw PolicyError(label, "JWTAudience",
                              "missing (a token for another service must not pass)");
        if (s.jwt_algorithms.empty())
            throw PolicyError(label, "JWTAlgorithms", "missing or empty (pin RS256 and/or ES256)");
    } else {
        struct {
            const char *field;
            bool set;
        } jwt_fields[] = {{"JWTIssuer", !s.jwt_issuer.empty()},
                          {"JWKSURL", !s.jwks_url.empty()},
                          {"JWTAudience", !s.jwt_audience.empty()},
                          {"JWTAlgorithms", !s.jwt_algorithms.empty()},
                          {"userClaimsToTags", !s.user_claims_to_tags.empty()},
                          {"claimsToHTTPHeaderMappings", !s.claims_to_http_headers.empty()}};
        for (const auto &f : jwt_fields)
            if (f.set)
                throw PolicyError(label, f.field,
                                  "only with authorizationType \"JWT\" or \"OIDC-JWT\"");
    }
    for (size_t j = 0; j < s.jwt_algorithms.size(); ++j) {
        const std::string &a = s.jwt_algorithms[j];
        if (a == "RS256" || a == "ES256") continue;
        if (iequals(a, "none") || a.starts_with("HS"))
            throw PolicyError(label, "JWTAlgorithms" + idx(j),
                              "\"" + a +
                                  "\" is refused (unsigned or symmetric: whoever can verify "
                                  "could forge); use RS256 or ES256");
        throw PolicyError(label, "JWTAlgorithms" + idx(j),
                          "unknown algorithm \"" + a + "\" (RS256 or ES256)");
    }
    for (size_t j = 0; j < s.user_claims_to_tags.size(); ++j) {
        const std::string &c = s.user_claims_to_tags[j];
        if (c.empty() || c.find_first_of("=* ") != std::string::npos)
            throw PolicyError(
                label, "userClaimsToTags" + idx(j),
                "\"" + c + "\" is not a claim name (non-empty, no '=', '*' or space)");
    }
    static const char *const kReserved[] = {"X-Segwire-Identity",
                                            "Host",
                                            "Content-Length",
                                            "Transfer-Encoding",
                                            "Connection",
                                            "Upgrade",
                                            "TE",
                                            "Trailer",
                                            "Keep-Alive",
                                            "Proxy-Connection",
                                            "Authorization",
                                            "Cookie"};
    for (size_t j = 0; j < s.claims_to_http_headers.size(); ++j) {
        const ClaimHeaderMapping &m = s.claims_to_http_headers[j];
        std::string f = "claimsToHTTPHeaderMappings" + idx(j);
        if (m.claim_name.empty()) throw PolicyError(label, f + ".claimName", "missing or empty");
        if (m.target_http_header.empty())
            throw PolicyError(label, f + ".targetHTTPHeader", "missing or empty");
        for (unsigned char c : m.target_http_header)
            if (!is_token_char(c))
                throw PolicyError(label, f + ".targetHTTPHeader",
                                  "\"" + m.target_http_header + "\" is not an HTTP header name");
        for (const char *r : kReserved)
            if (iequals(m.target_http_header, r))
                throw PolicyError(label, f + ".targetHTTPHeader",
                                  "\"" + m.target_http_header +
                                      "\" is reserved (the proxy or HTTP itself sets it)");
        for (size_t k = 0; k < j; ++k)
            if (iequals(s.claims_to_http_headers[k].target_http_header, m.target_http_header))
                throw PolicyError(label, f + ".targetHTTPHeader",
                                  "\"" + m.target_http_header + "\" is already mapped by [" +
                                      std::to_string(k) + "]");
    }
    check_tags(label, "associatedTags", s.associated_tags);
    std::string problem;
    for (size_t j = 0; j < s.upstreams.size(); ++j) {
        IpPrefix p;
        if (!parse_prefix(s.upstreams[j], &p, &problem) || p.len != p.max_len() ||
            s.upstreams[j].find('/') != std::string::npos)
            throw PolicyError(label, "upstreams" + idx(j),
                              "\"" + s.upstreams[j] + "\" is not an IP address");
    }
}

void validate_spec(const HttpResourceSpec &s, const std::string &label) {
    check_tags(label, "associatedTags", s.associated_tags);
    if (s.endpoints.empty()) throw PolicyError(label, "endpoints", "missing or empty");
    std::set<std::pair<std::string, std::string>> seen;  // (URI, method)
    for (size_t j = 0; j < s.endpoints.size(); ++j) {
        const HttpEndpoint &e = s.endpoints[j];
        std::string f = "endpoints" + idx(j);
        std::string problem;
        if (!parse_uri_pattern(e.uri, nullptr, &problem))
            throw PolicyError(label, f + ".URI", problem);
        if (e.methods.empty())
            throw PolicyError(label, f + ".methods", "missing or empty (e.g. [\"GET\"])");
        for (size_t k = 0; k < e.methods.size(); ++k) {
            if (!is_http_method(e.methods[k]))
                throw PolicyError(label, f + ".methods" + idx(k),
                                  "unknown method \"" + e.methods[k] + "\"");
            if (!seen.insert({e.uri, e.methods[k]}).second)
                throw PolicyError(
                    label, f + ".methods" + idx(k),
                    e.methods[k] + " " + e.uri + " is already listed by an earlier endpoint");
        }
        if (e.is_public && !e.allowed_scopes.empty())
            throw PolicyError(label, f + ".allowedScopes",
                              "a public endpoint takes no allowedScopes (it needs no caller)");
        if (!e.is_public && e.allowed_scopes.empty())
            throw PolicyError(label, f + ".allowedScopes",
                              "missing or empty (nobody could call it; \"public\": true admits "
                              "every caller)");
        check_expression(label, f + ".allowedScopes", e.allowed_scopes, false);
    }
}

}  // namespace

bool is_http_method(std::string_view m) {
    static const char *const kMethods[] = {"GET",   "HEAD",   "POST",    "PUT",
                                           "PATCH", "DELETE", "OPTIONS", "TRACE"};
    for (const char *x : kMethods)
        if (m == x) return true;
    return false;
}

bool parse_uri_pattern(std::string_view uri, std::vector<std::string> *segments,
                       std::string *problem) {
    if (!uri.starts_with("/")) {
        *problem = "\"" + std::string(uri) + "\" does not start with '/'";
        return false;
    }
    std::vector<std::string> segs;
    size_t pos = 1;
    while (pos <= uri.size()) {
        size_t end = uri.find('/', pos);
        if (end == std::string_view::npos) end = uri.size();
        std::string_view seg = uri.substr(pos, end - pos);
        pos = end + 1;
        if (seg.empty()) {
            if (end == uri.size()) break;  // one trailing '/' is the same path
            *problem = "\"" + std::string(uri) + "\" has an empty segment (\"//\")";
            return false;
        }
        if (seg == "." || seg == "..") {
            *problem = "\"" + std::string(uri) + "\" has a \"" + std::string(seg) + "\" segment";
            return false;
        }
        if (seg.size() > 1 && seg.find_first_of("?*") != std::string_view::npos) {
            *problem = "\"" + std::string(uri) + "\": '?' and '*' stand alone in a segment (\"" +
                       std::string(seg) + "\")";
            return false;
        }
        if (!segs.empty() && segs.back() == "*") {
            *problem = "\"" + std::string(uri) + "\": '*' is allowed only as the last segment";
            return false;
        }
        for (unsigned char c : seg)
            if (c <= 0x20 || c >= 0x7f || c == '#') {
                *problem = "\"" + std::string(uri) + "\" has a character not allowed in a path";
                return false;
            }
        segs.emplace_back(seg);
    }
    if (segments) *segments = std::move(segs);
    return true;
}

std::string object_label(const char *kind, const std::string &name, const std::string &id,
                         size_t index) {
    if (!name.empty()) return std::string(kind) + " \"" + name + "\"";
    if (!id.empty()) return std::string(kind) + " ID \"" + id + "\"";
    return std::string(kind) + " #" + std::to_string(index);
}

namespace {
std::vector<std::string> with_derived(std::vector<std::string> tags, const char *identity,
                                      const std::string &name, const std::string &id) {
    tags.push_back(std::string("$identity=") + identity);
    if (!name.empty()) tags.push_back("$name=" + name);
    if (!id.empty()) tags.push_back("$id=" + id);
    return tags;
}
}  // namespace

std::vector<std::string> effective_tags(const ProcessingUnit &pu) {
    std::vector<std::string> t = pu.associated_tags;
    for (const auto &n : pu.normalized_tags)
        if (std::find(t.begin(), t.end(), n) == t.end()) t.push_back(n);
    return with_derived(std::move(t), "processingunit", pu.name, pu.id);
}

std::vector<std::string> effective_tags(const ExternalNetwork &net) {
    return with_derived(net.associated_tags, "externalnetwork", net.name, net.id);
}

std::vector<std::string> effective_tags(const EnforcerProfile &profile) {
    return with_derived(profile.associated_tags, "enforcerprofile", profile.name, profile.id);
}

std::vector<std::string> effective_tags(const HttpResourceSpec &spec) {
    return with_derived(spec.associated_tags, "httpresourcespec", spec.name, spec.id);
}

namespace {
void validate_l7(const std::vector<Service> &services, const std::vector<HttpResourceSpec> &specs);
}  // namespace

void validate(const PolicySet &set) {
    {
        NameRegistry names(kProfileKind);
        for (size_t i = 0; i < set.enforcer_profiles.size(); ++i) {
            const EnforcerProfile &p = set.enforcer_profiles[i];
            std::string label = object_label(kProfileKind, p.name, p.id, i);
            names.add(label, p.name);
            if (p.target_networks) check_prefixes(label, "targetNetworks", *p.target_networks);
            check_prefixes(label, "targetUDPNetworks", p.target_udp_networks);
            if (p.unmanaged_inside_sources != "pass" && p.unmanaged_inside_sources != "drop")
                throw PolicyError(
                    label, "unmanagedInsideSources",
                    "\"" + p.unmanaged_inside_sources + "\" is not one of \"pass\", \"drop\"");
            {
                // Identity is only ever offered inside the managed networks: requiring it
                // anywhere else would refuse every peer there.
                std::vector<IpPrefix> managed =
                    check_prefixes(label, "targetNetworks", p.effective_target_networks());
                for (const IpPrefix &u :
                     check_prefixes(label, "targetUDPNetworks", p.target_udp_networks))
                    managed.push_back(u);
                const std::vector<IpPrefix> req =
                    check_prefixes(label, "identityRequiredNetworks", p.identity_required_networks);
                for (size_t j = 0; j < req.size(); ++j) {
                    bool inside = false;
                    for (const IpPrefix &m : managed) inside = inside || m.contains(req[j]);
                    if (!inside)
                        throw PolicyError(label, "identityRequiredNetworks" + idx(j),
                                          req[j].str() +
                                              " is not inside targetNetworks or targetUDPNetworks "
                                              "(identity is only offered there)");
                }
            }
            {
                // A mode is a way to offer identity over TCP: only inside the managed TCP
                // networks, and one mode per address.
                const std::vector<IpPrefix> tcp =
                    check_prefixes(label, "targetNetworks", p.effective_target_networks());
                const std::vector<IpPrefix> l4 =
                    check_prefixes(label, "l4TargetNetworks", p.l4_target_networks);
                const std::vector<IpPrefix> au =
                    check_prefixes(label, "autoTargetNetworks", p.auto_target_networks);
                for (const auto &[field, list] :
                     {std::pair<const char *, const std::vector<IpPrefix> *>{"l4TargetNetworks",
                                                                             &l4},
                      {"autoTargetNetworks", &au}})
                    for (size_t j = 0; j < list->size(); ++j) {
                        bool inside = false;
                        for (const IpPrefix &m : tcp) inside = inside || m.contains((*list)[j]);
                        if (!inside)
                            throw PolicyError(label, field + idx(j),
                                              (*list)[j].str() +
                                                  " is not inside targetNetworks (modes apply "
                                                  "to managed TCP networks)");
                    }
                for (size_t j = 0; j < au.size(); ++j)
                    for (const IpPrefix &x : l4)
                        if (x.contains(au[j]) || au[j].contains(x))
                            throw PolicyError(label, "autoTargetNetworks" + idx(j),
                                              au[j].str() + " overlaps l4TargetNetworks entry " +
                                                  x.str() + " (one mode per address)");
            }
            check_prefixes(label, "excludedNetworks", p.excluded_networks);
            if (p.trusted_dns_resolvers)
                check_prefixes(label, "trustedDNSResolvers", *p.trusted_dns_resolvers);
            check_expression(label, "ignoreExpression", p.ignore_expression, false);
            check_tags(label, "associatedTags", p.associated_tags);
            uint64_t secs;
            std::string problem;
            if (!parse_duration_seconds(p.flow_report_interval, &secs, &problem))
                throw PolicyError(label, "flowReportInterval", problem);
            for (size_t j = 0; j < p.trusted_cas.size(); ++j)
                if (p.trusted_cas[j].find("-----BEGIN CERTIFICATE-----") == std::string::npos)
                    throw PolicyError(label, "trustedCAs" + idx(j),
                                      "is not a PEM certificate (no BEGIN CERTIFICATE line)");
            for (size_t j = 0; j < p.excluded_interfaces.size(); ++j)
                if (p.excluded_interfaces[j].empty())
                    throw PolicyError(label, "excludedInterfaces" + idx(j), "empty interface name");
        }
    }
    {
        NameRegistry names(kMappingKind);
        for (size_t i = 0; i < set.enforcer_profile_mappings.size(); ++i) {
            const auto &m = set.enforcer_profile_mappings[i];
            std::string label = object_label(kMappingKind, m.name, m.id, i);
            names.add(label, m.name);
            check_expression(label, "subject", m.subject, true);
            check_expression(label, "object", m.object, true);
        }
    }
    {
        NameRegistry ids(kPuKind);
        std::vector<std::pair<IpPrefix, std::string>> owners;
        for (size_t i = 0; i < set.processing_units.size(); ++i) {
            const ProcessingUnit &pu = set.processing_units[i];
            std::string label = object_label(kPuKind, pu.name, pu.id, i);
            ids.add(label, pu.id, "ID");
            // The hosting enforcer's ID, as claims carry it (crypto/claims.hpp: 1-64 printable
            // ASCII characters, no space).
            if (!pu.enforcer_id.empty()) {
                if (pu.enforcer_id.size() > 64)
                    throw PolicyError(label, "enforcerID", "longer than 64 characters");
                for (unsigned char ch : pu.enforcer_id)
                    if (ch < 0x21 || ch > 0x7e)
                        throw PolicyError(label, "enforcerID",
                                          "only printable ASCII without spaces is allowed");
                // "group:NAME": every enforcer whose certificate carries group NAME hosts it
                // (docs/scale-out.md); NAME as the certificate can carry it.
                if (pu.enforcer_id.rfind("group:", 0) == 0 &&
                    (pu.enforcer_id.size() == 6 ||
                     pu.enforcer_id.find_first_not_of(
                         "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.", 6) !=
                         std::string::npos))
                    throw PolicyError(label, "enforcerID",
                                      "\"" + pu.enforcer_id +
                                          "\": a group is group:NAME, NAME 1..58 of "
                                          "A-Z a-z 0-9 - _ .");
            }
            check_tags(label, "associatedTags", pu.associated_tags);
            check_tags(label, "normalizedTags", pu.normalized_tags);
            std::vector<IpPrefix> prefixes = check_prefixes(label, "addresses", pu.addresses);
            for (size_t j = 0; j < prefixes.size(); ++j) {
                for (const auto &[other, owner] : owners)
                    if (other == prefixes[j])
                        throw PolicyError(label, "addresses" + idx(j),
                                          prefixes[j].str() + " is already covered by " + owner +
                                              " (an address prefix belongs to one PU)");
                owners.emplace_back(prefixes[j], label);
            }
        }
    }
    {
        NameRegistry names(kPolicyKind);
        for (size_t i = 0; i < set.network_policies.size(); ++i) {
            const NetworkRuleSetPolicy &p = set.network_policies[i];
            std::string label = object_label(kPolicyKind, p.name, p.id, i);
            names.add(label, p.name);
            check_expression(label, "subject", p.subject, true);
            check_tags(label, "associatedTags", p.associated_tags);
            for (size_t j = 0; j < p.incoming_rules.size(); ++j)
                validate_rule(label, "incomingRules" + idx(j), p.incoming_rules[j]);
            for (size_t j = 0; j < p.outgoing_rules.size(); ++j)
                validate_rule(label, "outgoingRules" + idx(j), p.outgoing_rules[j]);
        }
    }
    {
        NameRegistry names(kExtNetKind);
        for (size_t i = 0; i < set.external_networks.size(); ++i) {
            const ExternalNetwork &n = set.external_networks[i];
            std::string label = object_label(kExtNetKind, n.name, n.id, i);
            names.add(label, n.name);
            if (n.entries.empty())
                throw PolicyError(label, "entries", "missing or empty (needs CIDRs or hostnames)");
            std::vector<NetworkEntry> entries(n.entries.size());
            std::string problem;
            for (size_t j = 0; j < n.entries.size(); ++j)
                if (!parse_network_entry(n.entries[j], &entries[j], &problem))
                    throw PolicyError(label, "entries" + idx(j), problem);
            for (size_t j = 0; j < entries.size(); ++j) {
                if (entries[j].kind != NetworkEntry::Kind::kExclude) continue;
                bool inside = std::any_of(entries.begin(), entries.end(), [&](const auto &e) {
                    return e.kind == NetworkEntry::Kind::kInclude &&
                           e.prefix.len < entries[j].prefix.len &&
                           e.prefix.contains(entries[j].prefix);
                });
                if (!inside)
                    throw PolicyError(label, "entries" + idx(j),
                                      "exclusion \"" + n.entries[j] +
                                          "\" is not inside any included CIDR of this network");
            }
            check_ports(label, "servicePorts", n.service_ports, false);
            check_tags(label, "associatedTags", n.associated_tags);
        }
    }
    validate_l7(set.services, set.http_resource_specs);
}

namespace {
void validate_l7(const std::vector<Service> &services, const std::vector<HttpResourceSpec> &specs) {
    {
        NameRegistry names(kServiceKind);
        for (size_t i = 0; i < services.size(); ++i) {
            std::string label = object_label(kServiceKind, services[i].name, services[i].id, i);
            names.add(label, services[i].name);
            validate_service(services[i], label);
        }
    }
    NameRegistry names(kSpecKind);
    for (size_t i = 0; i < specs.size(); ++i) {
        std::string label = object_label(kSpecKind, specs[i].name, specs[i].id, i);
        names.add(label, specs[i].name);
        validate_spec(specs[i], label);
    }
}
}  // namespace

L7Document parse_l7_document(const std::string &json_text) {
    rapidjson::Document doc;
    doc.Parse(json_text.c_str());
    if (doc.HasParseError())
        throw PolicyError("services.json", "(json)",
                          "parse error at offset " + std::to_string(doc.GetErrorOffset()) + ": " +
                              rapidjson::GetParseError_En(doc.GetParseError()));
    Reader root(doc, "services.json");
    L7Document out;
    root.str("version", out.version);
    if (const Value *v = root.get("services")) {
        if (!v->IsArray()) root.fail("services", "must be an array of objects");
        for (rapidjson::SizeType i = 0; i < v->Size(); ++i)
            out.services.push_back(parse_service((*v)[i], i));
    }
    if (const Value *v = root.get("httpresourcespecs")) {
        if (!v->IsArray()) root.fail("httpresourcespecs", "must be an array of objects");
        for (rapidjson::SizeType i = 0; i < v->Size(); ++i)
            out.http_resource_specs.push_back(parse_spec((*v)[i], i));
    }
    root.finish();
    validate_l7(out.services, out.http_resource_specs);
    return out;
}

PolicySet parse_policy_set(const std::string &json_text) {
    PolicySet set;
    MergeState ms;
    parse_document_into(json_text, set, ms, "");
    validate(set);
    return set;
}

PolicySet load_policy_dir(const std::string &dir) {
    namespace fs = std::filesystem;
    std::error_code ec;
    if (!fs::is_directory(dir, ec))
        throw PolicyError(kBundleKind, "(directory)",
                          "\"" + dir + "\" is not a readable directory");
    std::vector<fs::path> files;
    for (const auto &e : fs::directory_iterator(dir, ec))
        if (e.is_regular_file() && e.path().extension() == ".json") files.push_back(e.path());
    if (ec)
        throw PolicyError(kBundleKind, "(directory)",
                          "cannot list \"" + dir + "\": " + ec.message());
    std::sort(files.begin(), files.end());

    PolicySet set;
    MergeState ms;
    // Which file each object came from, so that a validation error can name it.
    std::map<std::string, std::string> origin;
    auto note = [&](const char *kind, auto &vec, size_t from, const std::string &file) {
        for (size_t i = from; i < vec.size(); ++i)
            origin.emplace(object_label(kind, vec[i].name, vec[i].id, i), file);
    };
    for (const auto &f : files) {
        std::ifstream in(f);
        if (!in) throw PolicyError(kBundleKind, "(file)", "cannot read", f.string());
        std::stringstream ss;
        ss << in.rdbuf();
        size_t np = set.network_policies.size(), ne = set.external_networks.size(),
               npu = set.processing_units.size(), nprof = set.enforcer_profiles.size(),
               nmap = set.enforcer_profile_mappings.size(), nsvc = set.services.size(),
               nspec = set.http_resource_specs.size();
        try {
            parse_document_into(ss.str(), set, ms, f.filename().string());
        } catch (const PolicyError &e) {
            throw e.with_source(f.string());
        }
        note(kPolicyKind, set.network_policies, np, f.string());
        note(kExtNetKind, set.external_networks, ne, f.string());
        note(kPuKind, set.processing_units, npu, f.string());
        note(kProfileKind, set.enforcer_profiles, nprof, f.string());
        note(kMappingKind, set.enforcer_profile_mappings, nmap, f.string());
        note(kServiceKind, set.services, nsvc, f.string());
        note(kSpecKind, set.http_resource_specs, nspec, f.string());
    }
    try {
        validate(set);
    } catch (const PolicyError &e) {
        auto it = origin.find(e.object());
        if (it != origin.end()) throw e.with_source(it->second);
        throw;
    }
    return set;
}

// ---- serialization ----------------------------------------------------------------------------

namespace {

template <typename W>
void write_strings(W &w, const char *key, const std::vector<std::string> &v) {
    w.Key(key);
    w.StartArray();
    for (const auto &s : v) w.String(s.c_str(), static_cast<rapidjson::SizeType>(s.size()));
    w.EndArray();
}

template <typename W>
void write_expr(W &w, const char *key, const TagExpression &e) {
    w.Key(key);
    w.StartArray();
    for (const auto &clause : e) {
        w.StartArray();
        for (const auto &s : clause)
            w.String(s.c_str(), static_cast<rapidjson::SizeType>(s.size()));
        w.EndArray();
    }
    w.EndArray();
}

template <typename W>
void write_str(W &w, const char *key, const std::string &s) {
    w.Key(key);
    w.String(s.c_str(), static_cast<rapidjson::SizeType>(s.size()));
}

const char *action_str(RuleAction a) {
    return a == RuleAction::kAllow ? "Allow" : "Reject";
}

template <typename W>
void write_rules(W &w, const char *key, const std::vector<NetworkRule> &rules) {
    w.Key(key);
    w.StartArray();
    for (const NetworkRule &r : rules) {
        w.StartObject();
        write_str(w, "name", r.name);
        w.Key("action");
        w.String(action_str(r.action));
        write_expr(w, "object", r.object);
        write_strings(w, "protocolPorts", r.protocol_ports);
        w.Key("observationEnabled");
        w.Bool(r.observation_enabled);
        w.Key("logsDisabled");
        w.Bool(r.logs_disabled);
        w.EndObject();
    }
    w.EndArray();
}

template <typename W>
void write_services(W &w, const std::vector<Service> &services) {
    w.Key("services");
    w.StartArray();
    for (const Service &s : services) {
        w.StartObject();
        write_str(w, "ID", s.id);
        write_str(w, "name", s.name);
        write_str(w, "description", s.description);
        write_expr(w, "selector", s.selector);
        w.Key("port");
        w.Uint(s.port);
        if (s.exposed_port) {
            w.Key("exposedPort");
            w.Uint(s.exposed_port);
        }
        write_expr(w, "exposedAPIs", s.exposed_apis);
        write_strings(w, "hosts", s.hosts);
        write_str(w, "TLSType", s.tls_type);
        if (!s.tls_certificate.empty()) write_str(w, "TLSCertificate", s.tls_certificate);
        if (!s.tls_certificate_key.empty())
            write_str(w, "TLSCertificateKey", s.tls_certificate_key);
        write_str(w, "authorizationType", s.authorization_type);
        if (s.needs_user_auth()) {
            write_str(w, "JWTIssuer", s.jwt_issuer);
            write_str(w, "JWKSURL", s.jwks_url);
            write_str(w, "JWTAudience", s.jwt_audience);
            write_strings(w, "JWTAlgorithms", s.jwt_algorithms);
            write_strings(w, "userClaimsToTags", s.user_claims_to_tags);
            w.Key("claimsToHTTPHeaderMappings");
            w.StartArray();
            for (const ClaimHeaderMapping &m : s.claims_to_http_headers) {
                w.StartObject();
                write_str(w, "claimName", m.claim_name);
                write_str(w, "targetHTTPHeader", m.target_http_header);
                w.EndObject();
            }
            w.EndArray();
        }
        w.Key("allowUpgrade");
        w.Bool(s.allow_upgrade);
        write_strings(w, "associatedTags", s.associated_tags);
        if (!s.upstreams.empty()) write_strings(w, "upstreams", s.upstreams);
        w.EndObject();
    }
    w.EndArray();
}

template <typename W>
void write_specs(W &w, const std::vector<HttpResourceSpec> &specs) {
    w.Key("httpresourcespecs");
    w.StartArray();
    for (const HttpResourceSpec &s : specs) {
        w.StartObject();
        write_str(w, "ID", s.id);
        write_str(w, "name", s.name);
        write_str(w, "description", s.description);
        write_strings(w, "associatedTags", s.associated_tags);
        w.Key("endpoints");
        w.StartArray();
        for (const HttpEndpoint &e : s.endpoints) {
            w.StartObject();
            write_str(w, "URI", e.uri);
            write_strings(w, "methods", e.methods);
            write_expr(w, "allowedScopes", e.allowed_scopes);
            w.Key("public");
            w.Bool(e.is_public);
            w.EndObject();
        }
        w.EndArray();
        w.EndObject();
    }
    w.EndArray();
}

template <typename W>
void write_set(W &w, const PolicySet &s) {
    w.StartObject();
    write_str(w, "version", s.version);
    w.Key("namespace");
    w.StartObject();
    write_str(w, "name", s.ns.name);
    w.Key("defaultPUIncomingTrafficAction");
    w.String(action_str(s.ns.default_incoming));
    w.Key("defaultPUOutgoingTrafficAction");
    w.String(action_str(s.ns.default_outgoing));
    w.EndObject();

    w.Key("enforcerprofiles");
    w.StartArray();
    for (const EnforcerProfile &p : s.enforcer_profiles) {
        w.StartObject();
        write_str(w, "ID", p.id);
        write_str(w, "name", p.name);
        write_str(w, "description", p.description);
        if (p.target_networks) write_strings(w, "targetNetworks", *p.target_networks);
        write_strings(w, "targetUDPNetworks", p.target_udp_networks);
        if (!p.identity_required_networks.empty())
            write_strings(w, "identityRequiredNetworks", p.identity_required_networks);
        if (!p.l4_target_networks.empty())
            write_strings(w, "l4TargetNetworks", p.l4_target_networks);
        if (!p.auto_target_networks.empty())
            write_strings(w, "autoTargetNetworks", p.auto_target_networks);
        if (p.unmanaged_inside_sources != "pass")
            write_str(w, "unmanagedInsideSources", p.unmanaged_inside_sources);
        write_strings(w, "excludedNetworks", p.excluded_networks);
        write_strings(w, "excludedInterfaces", p.excluded_interfaces);
        if (p.trusted_dns_resolvers)
            write_strings(w, "trustedDNSResolvers", *p.trusted_dns_resolvers);
        write_expr(w, "ignoreExpression", p.ignore_expression);
        write_strings(w, "trustedCAs", p.trusted_cas);
        write_str(w, "flowReportInterval", p.flow_report_interval);
        write_strings(w, "associatedTags", p.associated_tags);
        w.EndObject();
    }
    w.EndArray();

    w.Key("enforcerprofilemappingpolicies");
    w.StartArray();
    for (const EnforcerProfileMappingPolicy &m : s.enforcer_profile_mappings) {
        w.StartObject();
        write_str(w, "ID", m.id);
        write_str(w, "name", m.name);
        write_str(w, "description", m.description);
        write_expr(w, "subject", m.subject);
        write_expr(w, "object", m.object);
        w.Key("fallback");
        w.Bool(m.fallback);
        w.Key("disabled");
        w.Bool(m.disabled);
        w.EndObject();
    }
    w.EndArray();

    w.Key("processingunits");
    w.StartArray();
    for (const ProcessingUnit &pu : s.processing_units) {
        w.StartObject();
        write_str(w, "ID", pu.id);
        write_str(w, "name", pu.name);
        write_str(w, "type", pu.type);
        write_strings(w, "associatedTags", pu.associated_tags);
        write_strings(w, "normalizedTags", pu.normalized_tags);
        write_strings(w, "addresses", pu.addresses);
        if (!pu.enforcer_id.empty()) write_str(w, "enforcerID", pu.enforcer_id);
        w.EndObject();
    }
    w.EndArray();

    w.Key("networkrulesetpolicies");
    w.StartArray();
    for (const NetworkRuleSetPolicy &p : s.network_policies) {
        w.StartObject();
        write_str(w, "ID", p.id);
        write_str(w, "name", p.name);
        write_str(w, "description", p.description);
        write_expr(w, "subject", p.subject);
        write_rules(w, "incomingRules", p.incoming_rules);
        write_rules(w, "outgoingRules", p.outgoing_rules);
        w.Key("disabled");
        w.Bool(p.disabled);
        w.Key("fallback");
        w.Bool(p.fallback);
        write_strings(w, "associatedTags", p.associated_tags);
        w.EndObject();
    }
    w.EndArray();

    w.Key("externalnetworks");
    w.StartArray();
    for (const ExternalNetwork &n : s.external_networks) {
        w.StartObject();
        write_str(w, "ID", n.id);
        write_str(w, "name", n.name);
        write_str(w, "description", n.description);
        write_strings(w, "entries", n.entries);
        write_strings(w, "servicePorts", n.service_ports);
        write_strings(w, "associatedTags", n.associated_tags);
        w.EndObject();
    }
    w.EndArray();
    write_services(w, s.services);
    write_specs(w, s.http_resource_specs);
    w.EndObject();
}

}  // namespace

std::string serialize_policy_set(const PolicySet &set, bool pretty) {
    rapidjson::StringBuffer buf;
    if (pretty) {
        rapidjson::PrettyWriter<rapidjson::StringBuffer> w(buf);
        w.SetIndent(' ', 2);
        write_set(w, set);
    } else {
        rapidjson::Writer<rapidjson::StringBuffer> w(buf);
        write_set(w, set);
    }
    return std::string(buf.GetString(), buf.GetSize());
}

std::string serialize_l7_document(const L7Document &d) {
    rapidjson::StringBuffer buf;
    rapidjson::Writer<rapidjson::StringBuffer> w(buf);
    w.StartObject();
    write_str(w, "version", d.version);
    write_services(w, d.services);
    write_specs(w, d.http_resource_specs);
    w.EndObject();
    return std::string(buf.GetString(), buf.GetSize());
}

}  // namespace segwire::policy
