#include "config/policy/syntax.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <charconv>
#include <cstring>

namespace segwire::policy {
namespace {

std::string quote(std::string_view s) {
    return "\"" + std::string(s) + "\"";
}

bool parse_uint(std::string_view s, uint64_t max, uint64_t *out) {
    if (s.empty() || s.size() > 20) return false;
    uint64_t v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || p != s.data() + s.size() || v > max) return false;
    *out = v;
    return true;
}

std::string lower(std::string_view s) {
    std::string r(s);
    for (char &c : r) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return r;
}

bool has_space(std::string_view s) {
    return std::any_of(s.begin(), s.end(), [](char c) { return std::isspace((unsigned char)c); });
}

bool check_key(std::string_view key, std::string_view text, std::string *problem) {
    if (key.empty()) {
        *problem = quote(text) + " has an empty key";
        return false;
    }
    if (key.find('*') != std::string_view::npos || key.back() == '!' || has_space(key)) {
        *problem = quote(text) + " has an invalid key (no '*', spaces or trailing '!')";
        return false;
    }
    return true;
}

}  // namespace

// ---- Tags -------------------------------------------------------------------------------------

bool parse_tag(std::string_view text, std::string *key, std::string *value, std::string *problem) {
    size_t eq = text.find('=');
    if (eq == std::string_view::npos) {
        *problem = quote(text) + " is not a key=value tag";
        return false;
    }
    std::string_view k = text.substr(0, eq), v = text.substr(eq + 1);
    if (!check_key(k, text, problem)) return false;
    if (v.empty()) {
        *problem = quote(text) + " has an empty value";
        return false;
    }
    *key = std::string(k);
    *value = std::string(v);
    return true;
}

bool parse_tag_predicate(std::string_view text, TagPredicate *out, std::string *problem) {
    size_t ne = text.find("!=");
    size_t eq = text.find('=');
    if (eq == std::string_view::npos) {
        *problem = quote(text) + " is not an expression (expected k=v, k!=v, k=v*, k=* or k!=*)";
        return false;
    }
    // "a!=b": the first '=' is the one of "!=".
    bool negate = ne != std::string_view::npos && ne + 1 == eq;
    std::string_view key = text.substr(0, negate ? ne : eq);
    std::string_view value = text.substr(eq + 1);
    if (!check_key(key, text, problem)) return false;
    if (value.empty()) {
        *problem = quote(text) + " has an empty value (use k=* for \"key exists\")";
        return false;
    }
    out->key = std::string(key);
    size_t star = value.find('*');
    if (star != std::string_view::npos && star + 1 != value.size()) {
        *problem =
            quote(text) + " has '*' before the end of the value (only a trailing '*' is allowed)";
        return false;
    }
    if (value == "*") {
        out->op = negate ? TagOp::kAbsent : TagOp::kExists;
        out->value.clear();
    } else if (star != std::string_view::npos) {
        out->op = negate ? TagOp::kNotPrefix : TagOp::kPrefix;
        out->value = std::string(value.substr(0, value.size() - 1));
    } else {
        out->op = negate ? TagOp::kNotEqual : TagOp::kEqual;
        out->value = std::string(value);
    }
    return true;
}

bool parse_tag_expression(const TagExpression &expr, ParsedExpression *out, std::string *where,
                          std::string *problem) {
    out->clear();
    out->reserve(expr.size());
    for (size_t i = 0; i < expr.size(); ++i) {
        if (expr[i].empty()) {
            *where = "[" + std::to_string(i) + "]";
            *problem = "empty clause (a clause is a non-empty AND-list of predicates)";
            return false;
        }
        std::vector<TagPredicate> clause(expr[i].size());
        for (size_t j = 0; j < expr[i].size(); ++j) {
            if (!parse_tag_predicate(expr[i][j], &clause[j], problem)) {
                *where = "[" + std::to_string(i) + "][" + std::to_string(j) + "]";
                return false;
            }
        }
        out->push_back(std::move(clause));
    }
    return true;
}

// The same semantics as the compiled snapshot (control/policy/compile.cpp, compile_expr).
bool predicate_matches(const TagPredicate &p, std::span<const std::string> tags) {
    bool key = false, found = false;
    for (const std::string &t : tags) {
        if (t.size() <= p.key.size() || t[p.key.size()] != '=' ||
            t.compare(0, p.key.size(), p.key) != 0)
            continue;
        key = true;
        std::string_view v = std::string_view(t).substr(p.key.size() + 1);
        switch (p.op) {
            case TagOp::kEqual:
            case TagOp::kNotEqual:
                found = v == p.value;
                break;
            case TagOp::kPrefix:
            case TagOp::kNotPrefix:
                found = v.starts_with(p.value);
                break;
            case TagOp::kExists:
            case TagOp::kAbsent:
                found = true;
                break;
        }
        if (found) break;
    }
    switch (p.op) {
        case TagOp::kEqual:
        case TagOp::kPrefix:
        case TagOp::kExists:
            return found;
        case TagOp::kNotEqual:
        case TagOp::kNotPrefix:
            return key && !found;  // absence is no evidence: "k!=v" needs the key
        case TagOp::kAbsent:
            return !found;
    }
    return false;
}

bool expression_matches(const ParsedExpression &expr, std::span<const std::string> tags) {
    for (const auto &clause : expr) {
        bool all = true;
        for (const TagPredicate &p : clause) {
            if (!predicate_matches(p, tags)) {
                all = false;
                break;
            }
        }
        if (all) return true;
    }
    return false;
}

// ---- Protocols and ports ----------------------------------------------------------------------

bool parse_protocol(std::string_view text, uint8_t *proto) {
    struct Name {
        const char *name;
        uint8_t proto;
    };
    // IANA keywords (and the aliases people type). ICMPv6 is 58; gaia's 143 is a bug.
    static constexpr Name kNames[] = {
        {"icmp", 1},   {"igmp", 2},   {"ipip", 4},      {"ipencap", 4},      {"tcp", 6},
        {"egp", 8},    {"udp", 17},   {"ipv6", 41},     {"rsvp", 46},        {"gre", 47},
        {"esp", 50},   {"ah", 51},    {"icmp6", 58},    {"icmpv6", 58},      {"ipv6-icmp", 58},
        {"eigrp", 88}, {"ospf", 89},  {"ospfigp", 89},  {"pim", 103},        {"vrrp", 112},
        {"l2tp", 115}, {"sctp", 132}, {"udplite", 136}, {"mpls-in-ip", 137},
    };
    std::string l = lower(text);
    for (const Name &n : kNames) {
        if (l == n.name) {
            *proto = n.proto;
            return true;
        }
    }
    uint64_t v;
    if (parse_uint(l, 255, &v)) {
        *proto = static_cast<uint8_t>(v);
        return true;
    }
    return false;
}

namespace {

// "a" or "a:b" with a < b, each within [lo_min, hi_max].
bool parse_range(std::string_view s, uint64_t min, uint64_t max, const char *what,
                 std::string_view whole, uint16_t *lo, uint16_t *hi, std::string *problem) {
    size_t colon = s.find(':');
    uint64_t a, b;
    if (colon == std::string_view::npos) {
        if (!parse_uint(s, max, &a) || a < min) {
            *problem = quote(whole) + ": " + what + " " + quote(s) + " is not a number in " +
                       std::to_string(min) + ".." + std::to_string(max);
            return false;
        }
        *lo = *hi = static_cast<uint16_t>(a);
        return true;
    }
    std::string_view l = s.substr(0, colon), r = s.substr(colon + 1);
    if (!parse_uint(l, max, &a) || a < min || !parse_uint(r, max, &b) || b < min) {
        *problem = quote(whole) + ": " + what + " range " + quote(s) + " needs two numbers in " +
                   std::to_string(min) + ".." + std::to_string(max);
        return false;
    }
    if (a >= b) {
        *problem = quote(whole) + ": " + what + " range " + quote(s) + " must have left < right";
        return false;
    }
    *lo = static_cast<uint16_t>(a);
    *hi = static_cast<uint16_t>(b);
    return true;
}

}  // namespace

bool parse_protocol_port(std::string_view text, std::vector<PortRange> *out, std::string *problem) {
    std::string l = lower(text);
    if (l == "any") {
        out->push_back(PortRange{});
        return true;
    }
    std::string_view s = l;
    size_t slash = s.find('/');
    std::string_view proto_s = s.substr(0, slash);
    uint8_t proto;
    if (proto_s.empty() || !parse_protocol(proto_s, &proto)) {
        *problem = quote(text) + ": unknown protocol " + quote(proto_s) +
                   " (expected an IANA name like tcp, udp, icmp, icmp6, gre, or a number 0-255)";
        return false;
    }
    if (slash == std::string_view::npos) {
        out->push_back(PortRange{proto, 0, 65535});
        return true;
    }
    std::string_view rest = s.substr(slash + 1);
    if (proto == kProtoTcp || proto == kProtoUdp) {
        PortRange r{proto, 0, 0};
        if (!parse_range(rest, 1, 65535, "port", text, &r.lo, &r.hi, problem)) return false;
        out->push_back(r);
        return true;
    }
    if (proto == kProtoIcmp || proto == kProtoIcmp6) {
        size_t slash2 = rest.find('/');
        uint64_t type;
        std::string_view type_s = rest.substr(0, slash2);
        if (!parse_uint(type_s, 255, &type)) {
            *problem = quote(text) + ": ICMP type " + quote(type_s) + " is not a number in 0..255";
            return false;
        }
        if (slash2 == std::string_view::npos) {
            out->push_back(
                PortRange{proto, icmp_key(uint8_t(type), 0), icmp_key(uint8_t(type), 255)});
            return true;
        }
        std::string_view codes = rest.substr(slash2 + 1);
        if (codes.empty()) {
            *problem = quote(text) + ": empty ICMP code list after the type";
            return false;
        }
        while (true) {
            size_t comma = codes.find(',');
            std::string_view c = codes.substr(0, comma);
            uint16_t lo, hi;
            if (!parse_range(c, 0, 255, "ICMP code", text, &lo, &hi, problem)) return false;
            out->push_back(PortRange{proto, icmp_key(uint8_t(type), uint8_t(lo)),
                                     icmp_key(uint8_t(type), uint8_t(hi))});
            if (comma == std::string_view::npos) break;
            codes = codes.substr(comma + 1);
        }
        return true;
    }
    *problem = quote(text) + ": ports are only allowed for tcp and udp (and type/code for icmp)";
    return false;
}

bool parse_protocol_ports(std::span<const std::string> list, std::vector<PortRange> *out,
                          size_t *bad_index, std::string *problem) {
    out->clear();
    for (size_t i = 0; i < list.size(); ++i) {
        if (lower(list[i]) == "any" && list.size() != 1) {
            *bad_index = i;
            *problem = "\"any\" must be the only element of the list";
            return false;
        }
        if (!parse_protocol_port(list[i], out, problem)) {
            *bad_index = i;
            return false;
        }
    }
    return true;
}

// ---- Addresses --------------------------------------------------------------------------------

bool IpPrefix::contains(const IpPrefix &inner) const {
    if (v6 != inner.v6 || len > inner.len) return false;
    unsigned full = len / 8, bits = len % 8;
    if (std::memcmp(addr.data(), inner.addr.data(), full) != 0) return false;
    if (bits == 0) return true;
    uint8_t mask = static_cast<uint8_t>(0xff << (8 - bits));
    return (addr[full] & mask) == (inner.addr[full] & mask);
}

std::string IpPrefix::str() const {
    char buf[INET6_ADDRSTRLEN];
    inet_ntop(v6 ? AF_INET6 : AF_INET, addr.data(), buf, sizeof(buf));
    return std::string(buf) + "/" + std::to_string(len);
}

bool parse_prefix(std::string_view text, IpPrefix *out, std::string *problem) {
    size_t slash = text.find('/');
    std::string a(text.substr(0, slash));
    IpPrefix p;
    if (a.find(':') != std::string::npos) {
        p.v6 = true;
        if (inet_pton(AF_INET6, a.c_str(), p.addr.data()) != 1) {
            *problem = quote(text) + " is not an IPv6 address or CIDR";
            return false;
        }
    } else if (inet_pton(AF_INET, a.c_str(), p.addr.data()) != 1) {
        *problem = quote(text) + " is not an IPv4/IPv6 address or CIDR";
        return false;
    }
    p.len = p.max_len();
    if (slash != std::string_view::npos) {
        uint64_t len;
        if (!parse_uint(text.substr(slash + 1), p.max_len(), &len)) {
            *problem = quote(text) + ": prefix length must be a number in 0.." +
                       std::to_string(p.max_len());
            return false;
        }
        p.len = static_cast<uint8_t>(len);
    }
    IpPrefix masked = p;
    for (unsigned bit = p.len; bit < p.max_len(); ++bit)
        masked.addr[bit / 8] &= static_cast<uint8_t>(~(0x80u >> (bit % 8)));
    if (masked.addr != p.addr) {
        *problem = quote(text) + " has host bits set beyond /" + std::to_string(p.len) +
                   " (did you mean " + masked.str() + "?)";
        return false;
    }
    *out = p;
    return true;
}

bool parse_network_entry(std::string_view text, NetworkEntry *out, std::string *problem) {
    if (text.empty()) {
        *problem = "empty entry";
        return false;
    }
    if (text[0] == '!') {
        out->kind = NetworkEntry::Kind::kExclude;
        if (!parse_prefix(text.substr(1), &out->prefix, problem)) {
            *problem = "exclusion " + *problem;
            return false;
        }
        return true;
    }
    bool looks_ip = text.find(':') != std::string_view::npos ||
                    std::all_of(text.begin(), text.end(), [](char c) {
                        return std::isdigit((unsigned char)c) || c == '.' || c == '/';
                    });
    if (looks_ip) {
        out->kind = NetworkEntry::Kind::kInclude;
        return parse_prefix(text, &out->prefix, problem);
    }
    // Hostname: labels of [a-z0-9-] (not starting/ending with '-'), "*." only as the first label,
    // at least two labels.
    std::string h = lower(text);
    std::string_view rest = h;
    if (rest.starts_with("*.")) rest.remove_prefix(2);
    size_t labels = 0;
    while (true) {
        size_t dot = rest.find('.');
        std::string_view label = rest.substr(0, dot);
        bool ok = !label.empty() && label.size() <= 63 && label.front() != '-' &&
                  label.back() != '-' && std::all_of(label.begin(), label.end(), [](char c) {
                      return std::isalnum((unsigned char)c) || c == '-';
                  });
        if (!ok) {
            *problem = quote(text) +
                       " is neither a CIDR nor a hostname (labels of a-z, 0-9, '-'; '*.' only "
                       "as the first label)";
            return false;
        }
        ++labels;
        if (dot == std::string_view::npos) break;
        rest = rest.substr(dot + 1);
    }
    if (labels < 2 || h.size() > 253) {
        *problem = quote(text) +
                   " is not a fully qualified hostname (needs a domain, e.g. "
                   "\"*.example.com\")";
        return false;
    }
    out->kind = NetworkEntry::Kind::kHostname;
    out->hostname = h;
    return true;
}

// ---- Durations --------------------------------------------------------------------------------

bool parse_duration_seconds(std::string_view text, uint64_t *seconds, std::string *problem) {
    if (text.empty()) {
        *problem = "empty duration (expected e.g. \"30m\", \"1h\", \"90s\")";
        return false;
    }
    uint64_t total_ms = 0;
    std::string_view s = text;
    while (!s.empty()) {
        size_t i = 0;
        while (i < s.size() && std::isdigit((unsigned char)s[i])) ++i;
        uint64_t n;
        if (i == 0 || !parse_uint(s.substr(0, i), 1ull << 32, &n)) {
            *problem =
                quote(text) + " is not a duration (expected e.g. \"30m\", \"1h30m\", \"90s\")";
            return false;
        }
        s.remove_prefix(i);
        uint64_t unit_ms;
        if (s.starts_with("ms")) {
            unit_ms = 1, s.remove_prefix(2);
        } else if (s.starts_with("s")) {
            unit_ms = 1000, s.remove_prefix(1);
        } else if (s.starts_with("m")) {
            unit_ms = 60'000, s.remove_prefix(1);
        } else if (s.starts_with("h")) {
            unit_ms = 3'600'000, s.remove_prefix(1);
        } else {
            *problem = quote(text) + ": unknown or missing unit (ms, s, m, h)";
            return false;
        }
        total_ms += n * unit_ms;
    }
    *seconds = std::max<uint64_t>(1, total_ms / 1000);
    return true;
}

}  // namespace segwire::policy
