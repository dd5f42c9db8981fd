#include "control/dns/dns_message.hpp"

#include <cstring>

#include "crypto/bytes.hpp"

namespace segwire::control::dns {
namespace {

constexpr uint32_t kHeaderLen = 12;
constexpr uint32_t kMaxWireName = 255;
// Internal: a label visitor asked the walk to stop (never returned by the public functions).
constexpr DnsStatus kStopped = DnsStatus::Count;

using crypto::load_be16;
using crypto::load_be32;

inline char lower(uint8_t c) {
    return static_cast<char>(c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c);
}
// Bytes a decoded (text) name may hold inside a label. '.' would make "a.b" as one label read as
// two labels, so it is refused, as are spaces, controls and non-ASCII bytes.
inline bool text_byte(uint8_t c) {
    return c > 0x20 && c < 0x7f && c != '.';
}

// Walks the name that starts at `off`, calling on_label(data, length) for each label in order.
// `*next` is set to the offset just after the name where it starts (after the first pointer, or
// after the root byte) - where the record continues. Compression pointers must point strictly
// before the start of the label run that contains them (so each hop goes further back and a
// loop is impossible) and not into the header; at most kMaxPointerHops are followed.
template <class OnLabel>
DnsStatus walk_name(const uint8_t *m, uint32_t len, uint32_t off, uint32_t *next,
                    OnLabel &&on_label) noexcept {
    uint32_t pos = off;
    uint32_t run_start = off;
    uint32_t wire = 1;  // the root byte
    uint32_t hops = 0;
    bool jumped = false;
    for (;;) {
        if (pos >= len) return DnsStatus::Truncated;
        const uint8_t b = m[pos];
        if (b == 0) {
            if (!jumped) *next = pos + 1;
            return DnsStatus::Ok;
        }
        switch (b >> 6) {
            case 3: {
                if (pos + 2 > len) return DnsStatus::Truncated;
                const uint32_t target = uint32_t(b & 0x3f) << 8 | m[pos + 1];
                if (!jumped) {
                    *next = pos + 2;
                    jumped = true;
                }
                if (++hops > kMaxPointerHops) return DnsStatus::BadPointer;
                if (target < kHeaderLen || target >= run_start) return DnsStatus::BadPointer;
                pos = run_start = target;
                continue;
            }
            case 1:
            case 2:  // 0x40..0xbf: a length over 63 (RFC 6891 extended label types are obsolete)
                return DnsStatus::LabelTooLong;
            default:
                break;
        }
        if (pos + 1 + b > len) return DnsStatus::Truncated;
        wire += 1u + b;
        if (wire > kMaxWireName) return DnsStatus::NameTooLong;
        if (!on_label(m + pos + 1, b)) return kStopped;
        pos += 1u + b;
    }
}

DnsStatus skip_name(const uint8_t *m, uint32_t len, uint32_t off, uint32_t *next) noexcept {
    return walk_name(m, len, off, next, [](const uint8_t *, uint8_t) { return true; });
}

// Decodes into `out` as lower-case dotted text. The wire limit (255) bounds the text to 253.
DnsStatus decode_name(const uint8_t *m, uint32_t len, uint32_t off, uint32_t *next,
                      DnsName &out) noexcept {
    out.len = 0;
    out.text[0] = '\0';
    DnsStatus st = walk_name(m, len, off, next, [&out](const uint8_t *p, uint8_t n) {
        if (out.len) out.text[out.len++] = '.';
        for (uint8_t i = 0; i < n; ++i) {
            if (!text_byte(p[i])) return false;
            out.text[out.len++] = lower(p[i]);
        }
        return true;
    });
    if (st == kStopped) st = DnsStatus::BadName;
    if (st != DnsStatus::Ok) out.len = 0;
    out.text[out.len] = '\0';
    return st;
}

// True when the (already validated) name at `off` spells `text`, a name decode_name produced.
// Compares label by label, so a wire label holding a '.' never equals two text labels.
bool name_equals(const uint8_t *m, uint32_t len, uint32_t off, std::string_view text) noexcept {
    size_t i = 0;
    uint32_t next = 0;
    const DnsStatus st = walk_name(m, len, off, &next, [&](const uint8_t *p, uint8_t n) {
        if (i != 0) {
            if (i >= text.size() || text[i] != '.') return false;
            ++i;
        }
        if (text.size() - i < n) return false;
        for (uint8_t k = 0; k < n; ++k)
            if (!text_byte(p[k]) || lower(p[k]) != text[i + k]) return false;
        i += n;
        return true;
    });
    return st == DnsStatus::Ok && i == text.size();
}

// RFC 2181 section 8: a TTL with the top bit set is treated as zero.
inline uint32_t ttl_value(uint32_t raw) {
    return (raw & 0x80000000u) ? 0 : raw;
}

struct AddrRef {
    uint16_t owner;  // offset of the owner name
    uint16_t rdata;  // offset of the RDATA
    uint32_t ttl;
    bool v4;
};
struct CnameRef {
    uint16_t owner;
    uint16_t rdata;  // the target name
    uint32_t ttl;
};

}  // namespace

const char *to_string(DnsStatus s) noexcept {
    switch (s) {
#define X(name, text)     \
    case DnsStatus::name: \
        return text;
        SEGWIRE_DNS_STATUSES(X)
#undef X
        default:
            return "unknown";
    }
}

const char *rcode_name(uint8_t rcode) noexcept {
    switch (rcode) {
        case kRcodeNoError:
            return "NOERROR";
        case kRcodeFormErr:
            return "FORMERR";
        case kRcodeServFail:
            return "SERVFAIL";
        case kRcodeNxDomain:
            return "NXDOMAIN";
        case kRcodeNotImp:
            return "NOTIMP";
        case kRcodeRefused:
            return "REFUSED";
        default:
            return "RCODE";
    }
}

DnsStatus parse_dns_response(std::span<const uint8_t> msg, DnsResponse &out) noexcept {
    out.id = 0;
    out.rcode = 0;
    out.tc = false;
    out.qtype = out.qclass = 0;
    out.resolved_name.len = 0;
    out.resolved_name.text[0] = '\0';
    out.cname_count = 0;
    out.addr_count = 0;
    out.min_ttl = 0;
    out.truncated_list = false;

    if (msg.size() > kMaxMessage) return DnsStatus::TooLong;
    const uint8_t *m = msg.data();
    const auto len = static_cast<uint32_t>(msg.size());
    if (len < kHeaderLen) return DnsStatus::Truncated;

    out.id = load_be16(m);
    const uint16_t flags = load_be16(m + 2);
    out.rcode = flags & 0x0f;
    out.tc = (flags & 0x0200) != 0;
    if (!(flags & 0x8000)) return DnsStatus::NotResponse;
    if (((flags >> 11) & 0x0f) != 0) return DnsStatus::NotQuery;
    if (load_be16(m + 4) != 1) return DnsStatus::BadQdcount;
    const uint32_t ancount = load_be16(m + 6);
    if (ancount > kMaxAnswers) return DnsStatus::TooManyRecords;

    // Question.
    uint32_t pos = kHeaderLen;
    uint32_t next = 0;
    DnsStatus st = decode_name(m, len, pos, &next, out.resolved_name);
    if (st != DnsStatus::Ok) return st;
    pos = next;
    if (pos + 4 > len) return DnsStatus::Truncated;
    out.qtype = load_be16(m + pos);
    out.qclass = load_be16(m + pos + 2);
    pos += 4;

    // Pass 1: walk every answer record once, validate its structure, and index the ones that can
    // matter (class IN A, AAAA, CNAME). Names are compared later without decoding them.
    AddrRef addr_refs[kMaxAnswers];
    CnameRef cname_refs[kMaxCnameRecords];
    uint32_t n_addr = 0, n_cname = 0;
    for (uint32_t i = 0; i < ancount; ++i) {
        const uint32_t owner = pos;
        st = skip_name(m, len, pos, &next);
        if (st != DnsStatus::Ok) return st;
        pos = next;
        if (pos + 10 > len) return DnsStatus::Truncated;
        const uint16_t type = load_be16(m + pos);
        const uint16_t cls = load_be16(m + pos + 2);
        const uint32_t ttl = ttl_value(load_be32(m + pos + 4));
        const uint32_t rdlen = load_be16(m + pos + 8);
        pos += 10;
        if (pos + rdlen > len) return DnsStatus::Truncated;
        if (cls == kClassIn) {
            switch (type) {
                case kTypeA:
                case kTypeAaaa:
                    if (rdlen != (type == kTypeA ? 4u : 16u)) return DnsStatus::BadRecord;
                    addr_refs[n_addr++] = {static_cast<uint16_t>(owner), static_cast<uint16_t>(pos),
                                           ttl, type == kTypeA};
                    break;
                case kTypeCname: {
                    uint32_t end = 0;
                    st = skip_name(m, len, pos, &end);
                    if (st != DnsStatus::Ok) return st;
                    if (end != pos + rdlen) return DnsStatus::BadRecord;
                    if (n_cname < kMaxCnameRecords)
                        cname_refs[n_cname++] = {static_cast<uint16_t>(owner),
                                                 static_cast<uint16_t>(pos), ttl};
                    else
                        out.truncated_list = true;
                    break;
                }
                default:
                    break;
            }
        }
        pos += rdlen;
    }
    // The authority and additional sections are not read: nothing there can add an address.

    // Pass 2: follow the chain from the question name; record order does not matter. A name with
    // several CNAMEs (invalid, RFC 2181 10.1) follows the first one in the answer section.
    uint32_t min_ttl = UINT32_MAX;
    std::string_view cur = out.resolved_name.view();
    for (;;) {
        const CnameRef *hit = nullptr;
        for (uint32_t c = 0; c < n_cname; ++c)
            if (name_equals(m, len, cname_refs[c].owner, cur)) {
                hit = &cname_refs[c];
                break;
            }
        if (!hit) break;
        if (out.cname_count == kMaxCnames) {
            out.truncated_list = true;  // the chain goes on: final_name() has no addresses
            break;
        }
        DnsName &dst = out.cnames[out.cname_count];
        st = decode_name(m, len, hit->rdata, &next, dst);
        if (st != DnsStatus::Ok) return st;
        if (dst.view() == out.resolved_name.view()) return DnsStatus::CnameLoop;
        for (uint32_t j = 0; j < out.cname_count; ++j)
            if (dst.view() == out.cnames[j].view()) return DnsStatus::CnameLoop;
        ++out.cname_count;
        if (hit->ttl < min_ttl) min_ttl = hit->ttl;
        cur = dst.view();
    }

    // Pass 3: addresses owned by the final name only; duplicates are kept once.
    for (uint32_t r = 0; r < n_addr; ++r) {
        const AddrRef &a = addr_refs[r];
        if (!name_equals(m, len, a.owner, cur)) continue;
        uint8_t addr[16];
        if (a.v4) {
            std::memset(addr, 0, 10);
            addr[10] = addr[11] = 0xff;
            std::memcpy(addr + 12, m + a.rdata, 4);
        } else {
            std::memcpy(addr, m + a.rdata, 16);
        }
        bool dup = false;
        for (uint32_t k = 0; k < out.addr_count && !dup; ++k)
            dup = std::memcmp(out.addrs[k].addr, addr, 16) == 0;
        if (dup) continue;
        if (out.addr_count == kMaxAddrs) {
            out.truncated_list = true;
            continue;
        }
        DnsAddress &d = out.addrs[out.addr_count++];
        std::memcpy(d.addr, addr, 16);
        d.v4 = a.v4;
        d.ttl = a.ttl;
        if (a.ttl < min_ttl) min_ttl = a.ttl;
    }
    out.min_ttl = min_ttl == UINT32_MAX ? 0 : min_ttl;
    return DnsStatus::Ok;
}

DnsStatus dns_from_tcp_payload(std::span<const uint8_t> payload,
                               std::span<const uint8_t> &msg) noexcept {
    if (payload.size() < 2) return DnsStatus::Incomplete;
    const size_t n = load_be16(payload.data());
    if (payload.size() - 2 < n) return DnsStatus::Incomplete;
    msg = payload.subspan(2, n);
    return payload.size() - 2 == n ? DnsStatus::Ok : DnsStatus::TrailingData;
}

DnsAction dns_action(const DnsResponse &r) noexcept {
    return r.rcode == kRcodeNoError && r.addr_count > 0 ? DnsAction::Resolve : DnsAction::Fail;
}

const char *to_string(DnsAction a) noexcept {
    return a == DnsAction::Resolve ? "Resolve" : "Fail";
}

}  // namespace segwire::control::dns
