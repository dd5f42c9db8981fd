// DNS response parser (RFC 1035). Runs on the slow-path thread (control/slowpath.cpp) for each
// answer a worker saw on its way to a client and holds until it is parsed: extracts what FQDN
// policy needs, the question name, the CNAME chain that starts at it, and the A/AAAA addresses of
// the chain's last name with their TTLs.
//
// No allocation, no exceptions, every read inside the message. Names are decoded into fixed
// buffers as lower-case dotted text without the trailing dot. Records whose owner is not on the
// chain are ignored (anti-spoofing), and the authority and additional sections are never read.
// See docs/dns.md.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

namespace segwire::control::dns {

inline constexpr size_t kMaxAddrs = 16;           // addresses kept per response
inline constexpr size_t kMaxCnames = 8;           // CNAME hops followed from the question name
inline constexpr size_t kMaxNameText = 253;       // longest dotted name (255 bytes on the wire)
inline constexpr uint32_t kMaxAnswers = 256;      // ANCOUNT above this is TooManyRecords
inline constexpr uint32_t kMaxCnameRecords = 32;  // CNAME records considered per answer section
inline constexpr uint32_t kMaxPointerHops = 16;   // compression pointers followed per name
inline constexpr size_t kMaxMessage = 65535;

inline constexpr uint16_t kTypeA = 1;
inline constexpr uint16_t kTypeCname = 5;
inline constexpr uint16_t kTypeAaaa = 28;
inline constexpr uint16_t kClassIn = 1;

inline constexpr uint8_t kRcodeNoError = 0;
inline constexpr uint8_t kRcodeFormErr = 1;
inline constexpr uint8_t kRcodeServFail = 2;
inline constexpr uint8_t kRcodeNxDomain = 3;
inline constexpr uint8_t kRcodeNotImp = 4;
inline constexpr uint8_t kRcodeRefused = 5;

#define SEGWIRE_DNS_STATUSES(X)                                                           \
    X(Ok, "ok")                                                                           \
    X(Incomplete, "incomplete")           /* TCP: fewer bytes than the length prefix */   \
    X(TrailingData, "trailing-data")      /* TCP: more bytes than one message */          \
    X(Truncated, "truncated")             /* message ends inside a header/name/record */  \
    X(TooLong, "too-long")                /* more than 65535 bytes */                     \
    X(NotResponse, "not-response")        /* QR bit clear */                              \
    X(NotQuery, "not-query")              /* OPCODE is not QUERY (0) */                   \
    X(BadQdcount, "bad-qdcount")          /* QDCOUNT != 1 */                              \
    X(TooManyRecords, "too-many-records") /* ANCOUNT > kMaxAnswers */                     \
    X(BadName, "bad-name")                /* byte outside '!'..'~', or '.', in a label */ \
    X(LabelTooLong, "label-too-long")     /* label length byte 64..191 (types 01, 10) */  \
    X(NameTooLong, "name-too-long")       /* more than 255 bytes on the wire */           \
    X(BadPointer, "bad-pointer")          /* not strictly backwards, into header, hops */ \
    X(BadRecord, "bad-record")            /* RDLENGTH wrong for A/AAAA/CNAME */           \
    X(CnameLoop, "cname-loop")            /* the chain returns to one of its names */

enum class DnsStatus : uint8_t {
#define X(name, text) name,
    SEGWIRE_DNS_STATUSES(X)
#undef X
        Count
};

const char *to_string(DnsStatus s) noexcept;
// "NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED", else "RCODE".
const char *rcode_name(uint8_t rcode) noexcept;

// A decoded name: lower-case, dotted, no trailing dot (the root is the empty string).
struct DnsName {
    uint16_t len = 0;
    char text[kMaxNameText + 1];  // NUL-terminated
    std::string_view view() const noexcept { return {text, len}; }
};

struct DnsAddress {
    uint8_t addr[16];  // IPv6, or IPv4-mapped ::ffff:a.b.c.d
    bool v4;           // from an A record
    uint32_t ttl;      // seconds, as received (RFC 2181: values with the top bit set read as 0)
};

struct DnsResponse {
    uint16_t id;
    uint8_t rcode;  // header RCODE (4 bits)
    bool tc;        // TC bit: the server truncated the response (the client will retry on TCP)
    uint16_t qtype, qclass;
    DnsName resolved_name;  // the question name
    uint8_t cname_count;
    DnsName cnames[kMaxCnames];  // the chain in order: cnames[0] is the question's alias target
    uint8_t addr_count;
    DnsAddress addrs[kMaxAddrs];  // A/AAAA records owned by final_name(), answer-section order
    uint32_t min_ttl;     // smallest TTL over the chain's CNAMEs and addrs[] (0 when neither)
    bool truncated_list;  // a fixed capacity overflowed: first entries kept, the rest dropped

    // The name the addresses belong to: the last CNAME, or the question name.
    std::string_view final_name() const noexcept {
        return cname_count ? cnames[cname_count - 1].view() : resolved_name.view();
    }
};

// Parses a DNS response (a UDP payload, or a message taken out of TCP with
// dns_from_tcp_payload). On Ok every field is set. Otherwise the answer must not be used; `id`,
// `rcode` and `tc` are set once the 12-byte header is there, and the name and list fields hold
// whatever was decoded before the error.
DnsStatus parse_dns_response(std::span<const uint8_t> msg, DnsResponse &out) noexcept;

// TCP (RFC 1035 4.2.2): the segment payload starts with a 2-byte length. Ok when the payload is
// exactly one complete message (`msg` is set to it); Incomplete when bytes are missing (a response
// split over segments is not reassembled here); TrailingData when more than one message's bytes
// are present (`msg` is still set to the first message).
DnsStatus dns_from_tcp_payload(std::span<const uint8_t> payload,
                               std::span<const uint8_t> &msg) noexcept;

// What a DNS lookup report says about a parsed response.
enum class DnsAction : uint8_t { Resolve, Fail };
// Resolve: RCODE NOERROR and at least one address. Fail: any other RCODE (NXDOMAIN, SERVFAIL, ...)
// or no address for the chain's final name (NODATA, CNAME-only).
DnsAction dns_action(const DnsResponse &r) noexcept;
const char *to_string(DnsAction a) noexcept;  // "Resolve", "Fail" (the report's action values)

}  // namespace segwire::control::dns
