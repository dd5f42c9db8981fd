// libFuzzer target for the DNS response parser. The input is copied into a heap buffer of exactly
// its size (ASan then reports a read one byte past the message) and parsed twice: as a UDP
// payload, and as a TCP payload through dns_from_tcp_payload. An accepted response must pass
// check_dns_response, and parsing must not depend on the output struct's previous contents. The
// worker's reader of the header and question (dataplane/dns/question.hpp, which matches answers to
// queries) must agree with it: every response the parser accepts has the same ID, type, class and
// name there. That reader runs on the packet path for every DNS packet, so it also gets every input
// on its own (and through its TCP framing, tcp_message): a name it accepts lies inside the message
// and is well formed, and lower_name/same_name agree. A violation traps, so the fuzzer records the
// input as a crash.
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <span>
#include <string_view>

#include "control/dns/dns_message.hpp"
#include "dataplane/dns/question.hpp"
#include "tests/fuzz/control/dns_check.hpp"

using namespace segwire::control::dns;

namespace {

namespace dp = segwire::dp::dns;

bool same(const DnsResponse &a, const DnsResponse &b) {
    if (a.rcode != b.rcode || a.id != b.id || a.tc != b.tc || a.qtype != b.qtype ||
        a.cname_count != b.cname_count || a.addr_count != b.addr_count || a.min_ttl != b.min_ttl ||
        a.truncated_list != b.truncated_list || a.resolved_name.view() != b.resolved_name.view())
        return false;
    for (size_t i = 0; i < a.cname_count; ++i)
        if (a.cnames[i].view() != b.cnames[i].view()) return false;
    for (size_t i = 0; i < a.addr_count; ++i)
        if (std::memcmp(a.addrs[i].addr, b.addrs[i].addr, 16) != 0 ||
            a.addrs[i].ttl != b.addrs[i].ttl || a.addrs[i].v4 != b.addrs[i].v4)
            return false;
    return true;
}

// The question as the worker reads it, against the parser's: same fields, same name.
void check_question(std::span<const uint8_t> msg, const DnsResponse &r) {
    dp::Question q;
    if (dp::read_question(msg, q) != dp::QuestionStatus::kOk) __builtin_trap();
    if (q.id != r.id || !q.response || q.rcode != r.rcode || q.truncated != r.tc ||
        q.qtype != r.qtype || q.qclass != r.qclass)
        __builtin_trap();
    char text[dp::kMaxWireName];
    size_t n = 0;
    for (size_t i = 0; q.name.p[i] != 0; i += 1 + q.name.p[i]) {
        if (n) text[n++] = '.';
        for (size_t k = 1; k <= q.name.p[i]; ++k) {
            const uint8_t c = q.name.p[i + k];
            text[n++] = static_cast<char>(c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c);
        }
    }
    if (std::string_view(text, n) != r.resolved_name.view()) __builtin_trap();
}

// same_name on two names of the same wire form: the same answer as comparing their lower-cased
// copies.
void check_same_name(const dp::WireName &a, const dp::WireName &b) {
    uint8_t la[dp::kMaxWireName], lb[dp::kMaxWireName];
    const bool want =
        dp::lower_name(a, la) == dp::lower_name(b, lb) && std::memcmp(la, lb, a.len) == 0;
    if (dp::same_name(a, b) != want || dp::same_name(b, a) != want) __builtin_trap();
}

// The worker's reader on any bytes (a query from a workload, an answer from anywhere): what it
// accepts is inside the message and well formed; the lower-cased copy is the same name. Returns
// whether it accepted the message (q then holds what it read).
bool check_reader(std::span<const uint8_t> msg, dp::Question &q) {
    const dp::QuestionStatus st = dp::read_question(msg, q);
    if (st > dp::QuestionStatus::kBadName) __builtin_trap();
    if (st != dp::QuestionStatus::kOk) return false;
    const dp::WireName &n = q.name;
    if (n.p != msg.data() + 12 || n.len == 0 || n.len > dp::kMaxWireName ||
        12u + n.len + 4 > msg.size() || n.p[n.len - 1] != 0)
        __builtin_trap();
    size_t i = 0;
    while (n.p[i] != 0) {
        if (n.p[i] > 63) __builtin_trap();
        for (size_t k = 1; k <= n.p[i]; ++k)
            if (n.p[i + k] <= 0x20 || n.p[i + k] >= 0x7f || n.p[i + k] == '.') __builtin_trap();
        i += 1 + n.p[i];
        if (i >= n.len) __builtin_trap();
    }
    if (i + 1 != n.len) __builtin_trap();
    uint8_t low[dp::kMaxWireName];
    if (dp::lower_name(n, low) != n.len) __builtin_trap();
    if (!dp::same_name(n, dp::WireName{low, n.len})) __builtin_trap();
    for (size_t k = 0; k < n.len; ++k)
        if (low[k] >= 'A' && low[k] <= 'Z') __builtin_trap();
    // Against a copy with one byte changed - which one and how (its case, or another value) taken
    // from the message's last byte.
    uint8_t other[dp::kMaxWireName];
    std::memcpy(other, n.p, n.len);
    const uint8_t k = msg.back();
    other[k % n.len] ^= (k & 1) ? 0x20 : static_cast<uint8_t>(1 + (k >> 1));
    check_same_name(n, dp::WireName{other, n.len});
    return true;
}

void check_one(std::span<const uint8_t> msg) {
    static DnsResponse r, again;
    const DnsStatus st = parse_dns_response(msg, r);
    if (st >= DnsStatus::Count || st == DnsStatus::Incomplete || st == DnsStatus::TrailingData)
        __builtin_trap();  // not a status the message parser returns
    std::memset(static_cast<void *>(&again), 0xa5, sizeof again);
    if (parse_dns_response(msg, again) != st) __builtin_trap();
    if (st != DnsStatus::Ok) return;
    if (segwire::dptest::check_dns_response(r) != nullptr) __builtin_trap();
    if (!same(r, again)) __builtin_trap();
    check_question(msg, r);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > kMaxMessage + 2) return 0;
    std::unique_ptr<uint8_t[]> buf(new uint8_t[size ? size : 1]);
    if (size) std::memcpy(buf.get(), data, size);
    const std::span<const uint8_t> in(buf.get(), size);

    check_one(in);
    dp::Question q_udp, q_tcp;
    const bool udp_ok = check_reader(in, q_udp);

    // The worker's TCP framing: the message bytes present after the length prefix.
    std::span<const uint8_t> part;
    if (dp::tcp_message(in, part)) {
        if (size < 2 || part.data() != buf.get() + 2 ||
            part.size() != std::min<size_t>(size - 2, (size_t{in[0]} << 8) | in[1]))
            __builtin_trap();
        if (check_reader(part, q_tcp) && udp_ok) check_same_name(q_udp.name, q_tcp.name);
    } else if (size >= 2) {
        __builtin_trap();
    }

    std::span<const uint8_t> msg;
    const DnsStatus t = dns_from_tcp_payload(in, msg);
    if (t == DnsStatus::Ok || t == DnsStatus::TrailingData) {
        if (msg.data() != buf.get() + 2 || msg.size() + 2 > size) __builtin_trap();
        if ((t == DnsStatus::Ok) != (msg.size() + 2 == size)) __builtin_trap();
        if (part.data() != msg.data() || part.size() != msg.size()) __builtin_trap();
        check_one(msg);
    } else if (t != DnsStatus::Incomplete) {
        __builtin_trap();
    }
    return 0;
}
