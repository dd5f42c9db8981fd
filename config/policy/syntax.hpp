// The small languages inside the policy objects: tags, tag expressions, protocolPorts and
// servicePorts, CIDRs and external-network entries, durations.
//
// Parsers return false and set *problem (a sentence naming what is wrong with the text) instead of
// throwing, so that the validator can wrap the problem with the object and field it came from.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace segwire::policy {

// ---- Tags and tag expressions ---------------------------------------------------------------

// A tag is "key=value"; the key is non-empty and has no '=', '*' or trailing '!' (that would read
// as the != operator inside an expression); the value is non-empty.
bool parse_tag(std::string_view text, std::string *key, std::string *value, std::string *problem);

// Fail closed: a negated value needs the key (a peer without k matches neither k=v nor k!=v; only
// k!=* says "no k"). docs/policy.md §1, "Tag predicates", has the table and the reasons.
enum class TagOp : uint8_t {
    kEqual,      // k=v      the tag k=v is present
    kNotEqual,   // k!=v     the key is present and no value of k is v
    kPrefix,     // k=v*     some value of k starts with v
    kNotPrefix,  // k!=v*    the key is present and no value of k starts with v
    kExists,     // k=*      the key is present with any value
    kAbsent,     // k!=*     the key is absent
};

struct TagPredicate {
    TagOp op = TagOp::kEqual;
    std::string key;
    std::string value;  // the prefix without '*' for kPrefix/kNotPrefix; empty for kExists/kAbsent
};

bool parse_tag_predicate(std::string_view text, TagPredicate *out, std::string *problem);

// [][]string: OR of AND-clauses.
using TagExpression = std::vector<std::vector<std::string>>;
using ParsedExpression = std::vector<std::vector<TagPredicate>>;

// Parses every predicate; an empty clause is an error. `where` receives "[i][j]" of the bad
// element.
bool parse_tag_expression(const TagExpression &expr, ParsedExpression *out, std::string *where,
                          std::string *problem);

// One predicate over plain strings (segwirectl explain names the predicate that failed).
bool predicate_matches(const TagPredicate &p, std::span<const std::string> tags);

// Control-side evaluation over plain strings (profile mapping, tests). The packet path uses the
// interned form in dataplane/policy.
bool expression_matches(const ParsedExpression &expr, std::span<const std::string> tags);

// ---- protocolPorts / servicePorts -------------------------------------------------------------

inline constexpr uint16_t kAnyProtocol = 256;
inline constexpr uint8_t kProtoIcmp = 1;
inline constexpr uint8_t kProtoTcp = 6;
inline constexpr uint8_t kProtoUdp = 17;
inline constexpr uint8_t kProtoIcmp6 = 58;

// One compiled protocolPorts element. For tcp/udp [lo, hi] is a port range; for icmp/icmp6 it is
// a range of (type << 8 | code) keys so that "icmp/3/0,3:15" is two ranges and decide() needs a
// single comparison; for other protocols it is always [0, 65535].
struct PortRange {
    uint16_t proto = kAnyProtocol;  // 0..255, or kAnyProtocol
    uint16_t lo = 0;
    uint16_t hi = 65535;
};

inline constexpr uint16_t icmp_key(uint8_t type, uint8_t code) {
    return static_cast<uint16_t>(type << 8 | code);
}

// IANA protocol by name ("tcp", "icmp6", "gre", ...) or number ("47"). False if unknown.
bool parse_protocol(std::string_view text, uint8_t *proto);

// One element: "any", "tcp/80", "tcp/80:100", "udp/53", "icmp/8/0", "icmp/3/0,3:15", "icmp6/128",
// "gre", "47". Appends the ranges it denotes.
bool parse_protocol_port(std::string_view text, std::vector<PortRange> *out, std::string *problem);

// A whole list. "any" must stand alone. `bad_index` receives the index of the offending element
// (or the list size for a list-level problem).
bool parse_protocol_ports(std::span<const std::string> list, std::vector<PortRange> *out,
                          size_t *bad_index, std::string *problem);

inline bool port_ranges_match(std::span<const PortRange> ranges, uint8_t proto, uint16_t port) {
    for (const PortRange &r : ranges)
        if ((r.proto == proto || r.proto == kAnyProtocol) && port >= r.lo && port <= r.hi)
            return true;
    return false;
}

// ---- Addresses --------------------------------------------------------------------------------

// An IPv4 or IPv6 prefix. IPv4 lives in addr[0..3] (network byte order), the rest is zero.
struct IpPrefix {
    bool v6 = false;
    uint8_t len = 0;
    std::array<uint8_t, 16> addr{};

    uint8_t max_len() const { return v6 ? 128 : 32; }
    uint32_t v4_host() const {  // IPv4 address in host byte order
        return uint32_t(addr[0]) << 24 | uint32_t(addr[1]) << 16 | uint32_t(addr[2]) << 8 | addr[3];
    }
    bool contains(const IpPrefix &inner) const;
    bool operator==(const IpPrefix &) const = default;
    std::string str() const;
};

// "10.0.0.0/8", "10.0.1.5" (= /32), "fd00::/8", "::1". Host bits beyond the prefix length are an
// error: "10.1.2.3/8" is almost always a typo for something else.
bool parse_prefix(std::string_view text, IpPrefix *out, std::string *problem);

// An externalnetworks entry: an included CIDR, an excluded CIDR ("!10.1.0.0/16"), or a hostname
// ("api.example.com", "*.example.com").
struct NetworkEntry {
    enum class Kind : uint8_t { kInclude, kExclude, kHostname };
    Kind kind = Kind::kInclude;
    IpPrefix prefix;
    std::string hostname;  // lower-cased
};

bool parse_network_entry(std::string_view text, NetworkEntry *out, std::string *problem);

// ---- Durations --------------------------------------------------------------------------------

// Go-style "30m", "1h30m", "10s", "500ms" → seconds (sub-second parts rounded down, minimum 1s).
bool parse_duration_seconds(std::string_view text, uint64_t *seconds, std::string *problem);

}  // namespace segwire::policy
