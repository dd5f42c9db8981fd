#include "dataplane/dns/question.hpp"

#include "crypto/bytes.hpp"

namespace segwire::dp::dns {
namespace {

constexpr size_t kHeaderLen = 12;

inline uint8_t lower(uint8_t c) noexcept {
    return c >= 'A' && c <= 'Z' ? static_cast<uint8_t>(c + ('a' - 'A')) : c;
}
// What the slow path's decoder accepts inside a label (control/dns/dns_message.cpp, text_byte).
inline bool text_byte(uint8_t c) noexcept {
    return c > 0x20 && c < 0x7f && c != '.';
}

}  // namespace

QuestionStatus read_question(std::span<const uint8_t> msg, Question &q) noexcept {
    q = Question{};
    if (msg.size() < kHeaderLen) return QuestionStatus::kShort;
    const uint8_t *m = msg.data();
    q.id = crypto::load_be16(m);
    const uint16_t flags = crypto::load_be16(m + 2);
    q.response = flags & 0x8000;
    q.opcode = (flags >> 11) & 0x0f;
    q.truncated = flags & 0x0200;
    q.rcode = flags & 0x0f;
    if (q.opcode != 0) return QuestionStatus::kNotQuery;
    if (crypto::load_be16(m + 4) != 1) return QuestionStatus::kQdcount;
    size_t pos = kHeaderLen;
    for (;;) {
        if (pos >= msg.size()) return QuestionStatus::kShort;
        const uint8_t n = m[pos];
        if (n == 0) break;
        if (n > 63) return QuestionStatus::kBadName;  // a pointer, or an obsolete label type
        if (pos - kHeaderLen + 1 + n + 1 > kMaxWireName) return QuestionStatus::kBadName;
        if (pos + 1 + n > msg.size()) return QuestionStatus::kShort;
        for (size_t i = 1; i <= n; ++i)
            if (!text_byte(m[pos + i])) return QuestionStatus::kBadName;
        pos += 1 + n;
    }
    ++pos;  // the root byte
    if (pos + 4 > msg.size()) return QuestionStatus::kShort;
    q.name = WireName{m + kHeaderLen, static_cast<uint8_t>(pos - kHeaderLen)};
    q.qtype = crypto::load_be16(m + pos);
    q.qclass = crypto::load_be16(m + pos + 2);
    return QuestionStatus::kOk;
}

bool same_name(const WireName &a, const WireName &b) noexcept {
    if (a.len != b.len) return false;
    // Length bytes are 0..63, never letters: folding the whole name compares labels exactly.
    for (size_t i = 0; i < a.len; ++i)
        if (lower(a.p[i]) != lower(b.p[i])) return false;
    return true;
}

uint8_t lower_name(const WireName &n, uint8_t *out) noexcept {
    for (size_t i = 0; i < n.len; ++i) out[i] = lower(n.p[i]);
    return n.len;
}

bool tcp_message(std::span<const uint8_t> payload, std::span<const uint8_t> &msg) noexcept {
    if (payload.size() < 2) return false;
    const size_t len = crypto::load_be16(payload.data());
    const size_t have = payload.size() - 2;
    msg = payload.subspan(2, len < have ? len : have);
    return true;
}

}  // namespace segwire::dp::dns
