// Consistency checks on a DnsResponse that parse_dns_response() accepted, shared by the DNS fuzz
// target (which traps on a violation) and the DNS unit tests (which assert no violation).
#pragma once

#include <cstdint>
#include <cstring>

#include "control/dns/dns_message.hpp"

namespace segwire::dptest {

// A decoded name: NUL-terminated at len, lower-case printable ASCII, labels of 1..63 separated by
// single dots, no leading or trailing dot.
inline const char *check_dns_name(const control::dns::DnsName &n) {
    if (n.len > control::dns::kMaxNameText) return "name longer than 253";
    if (n.text[n.len] != '\0' || std::strlen(n.text) != n.len) return "name not NUL-terminated";
    size_t label = 0;
    for (size_t i = 0; i < n.len; ++i) {
        const auto c = static_cast<unsigned char>(n.text[i]);
        if (c == '.') {
            if (label == 0) return "empty label in a name";
            label = 0;
            continue;
        }
        if (c <= 0x20 || c >= 0x7f) return "non-printable byte in a name";
        if (c >= 'A' && c <= 'Z') return "upper case in a name";
        if (++label > 63) return "label longer than 63";
    }
    if (n.len && label == 0) return "trailing dot in a name";
    return nullptr;
}

inline const char *check_dns_response(const control::dns::DnsResponse &r) {
    using namespace segwire::control::dns;
    if (r.rcode > 15) return "rcode above 4 bits";
    if (r.cname_count > kMaxCnames) return "cname_count above capacity";
    if (r.addr_count > kMaxAddrs) return "addr_count above capacity";
    if (const char *e = check_dns_name(r.resolved_name)) return e;
    for (size_t i = 0; i < r.cname_count; ++i) {
        if (const char *e = check_dns_name(r.cnames[i])) return e;
        if (r.cnames[i].view() == r.resolved_name.view()) return "chain returns to the question";
        for (size_t j = 0; j < i; ++j)
            if (r.cnames[i].view() == r.cnames[j].view()) return "chain repeats a name";
    }
    if (r.final_name() !=
        (r.cname_count ? r.cnames[r.cname_count - 1].view() : r.resolved_name.view()))
        return "final_name is not the end of the chain";
    static constexpr uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    uint32_t min_addr_ttl = UINT32_MAX;
    for (size_t i = 0; i < r.addr_count; ++i) {
        const DnsAddress &a = r.addrs[i];
        if (a.v4 && std::memcmp(a.addr, kMapped, 12) != 0) return "A address not IPv4-mapped";
        if (a.ttl & 0x80000000u) return "TTL with the top bit set";
        if (a.ttl < r.min_ttl) return "min_ttl above an address TTL";
        if (a.ttl < min_addr_ttl) min_addr_ttl = a.ttl;
        for (size_t j = 0; j < i; ++j)
            if (std::memcmp(r.addrs[j].addr, a.addr, 16) == 0) return "duplicate address";
    }
    if (r.cname_count == 0 && r.addr_count > 0 && r.min_ttl != min_addr_ttl)
        return "min_ttl is not the smallest address TTL";
    if (r.cname_count == 0 && r.addr_count == 0 && r.min_ttl != 0) return "min_ttl without records";
    if ((dns_action(r) == DnsAction::Resolve) != (r.rcode == 0 && r.addr_count > 0))
        return "dns_action disagrees with rcode/addresses";
    return nullptr;
}

}  // namespace segwire::dptest
