// The header and question of a DNS message (RFC 1035 4.1.1, 4.1.2), read on the worker: what a
// query and its answer must agree on (ID, name, type, class) before the answer may teach the
// enforcer anything (docs/dns.md, "Matching answers to queries"). The answer's records are parsed
// later, on the slow path (control/dns/dns_message.hpp).
//
// No DPDK, no allocation, no exceptions; every read inside the span. The name is not copied: the
// view points into the message.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace segwire::dp::dns {

inline constexpr uint16_t kDnsPort = 53;
inline constexpr size_t kMaxWireName = 255;  // RFC 1035 2.3.4, with the root byte

// A question name in wire form (length-prefixed labels, ending with the root byte), as it stands
// in the message. Labels are 1-63 bytes of '!'..'~' other than '.', so the name reads the same
// as the slow path's decoded text (control/dns/dns_message.cpp refuses the same bytes).
struct WireName {
    const uint8_t *p = nullptr;
    uint8_t len = 0;  // bytes, root byte included (1..255)
};

struct Question {
    uint16_t id = 0;
    bool response = false;   // QR
    bool truncated = false;  // TC
    uint8_t opcode = 0;
    uint8_t rcode = 0;  // header RCODE (4 bits)
    WireName name;
    uint16_t qtype = 0, qclass = 0;
};

enum class QuestionStatus : uint8_t {
    kOk,
    kShort,     // the message ends inside the header or the question
    kNotQuery,  // OPCODE is not QUERY (0)
    kQdcount,   // QDCOUNT != 1
    kBadName,   // a compression pointer, a label length over 63, a byte outside '!'..'~' or '.',
                // or more than 255 bytes
};

// Reads the header and the one question. A compression pointer cannot stand in the question
// name (it would have to point before offset 12, into the header), so the name is plain labels.
QuestionStatus read_question(std::span<const uint8_t> msg, Question &q) noexcept;

// True when the two names are the same, ASCII letters compared without case.
bool same_name(const WireName &a, const WireName &b) noexcept;
// Writes `n` with letters lower-cased into `out` (kMaxWireName bytes); returns its length.
uint8_t lower_name(const WireName &n, uint8_t *out) noexcept;

// TCP (RFC 1035 4.2.2, RFC 7766): a segment that starts a message begins with its 2-byte length.
// Sets `msg` to the message's bytes present in the segment (at most the length says; the rest of
// a longer message may follow in later segments). False when the payload cannot start a message.
bool tcp_message(std::span<const uint8_t> payload, std::span<const uint8_t> &msg) noexcept;

}  // namespace segwire::dp::dns
