// Fuzz target for UDP control datagrams (docs/protocol.md §9): the RFC 9868 surplus area
// (parse_udp_surplus, write_udp_surplus, udp_ocs) and the control messages inside it
// (parse_udp_message, write_udp_ack / _reject / _reset, tokens). The first input byte holds the
// flags (odd start, UDP checksum zero) and which byte a corruption check flips; the rest is used
// three ways: as a surplus area, as a message body, and as the fields of messages this side writes.
//
// Invariants, besides "no read or write outside the buffers" (ASan; every output buffer is a vector
// of exactly the size the codec asks for):
//  - an accepted surplus's body lies inside it, after the OCS and the option header;
//  - the codec is canonical: a surplus of [pad 0][OCS][EXP, short length form, ExID, body] and
//    nothing else is exactly what write_udp_surplus makes of its body;
//  - whatever write_udp_surplus writes parses back to the same body, and flipping any byte after
//    the pad is detected (BadChecksum: a one-byte change always changes a ones'-complement sum);
//  - an accepted message re-encodes to the same bytes, and whatever write_udp_* writes parses back
//    with the same type and fields; a buffer one byte short is refused, not overrun.
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <span>
#include <vector>

#include "crypto/wire.hpp"

using namespace segwire::crypto::wire;
using segwire::crypto::load_be16;

namespace {

void check(bool ok) {
    if (!ok) std::abort();
}

bool inside(std::span<const uint8_t> outer, std::span<const uint8_t> in) {
    return in.data() >= outer.data() && in.data() + in.size() <= outer.data() + outer.size();
}

bool same(std::span<const uint8_t> a, std::span<const uint8_t> b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin());
}

struct Flags {
    bool odd = false;
    bool checksum_zero = false;
    uint8_t flip = 0;  // which byte the corruption check changes (modulo the length)
};

// An accepted message re-encodes to exactly its bytes.
void reencode_message(std::span<const uint8_t> body, const UdpMessageView &m) {
    std::vector<uint8_t> out(body.size());
    size_t n = 0;
    switch (m.type) {
        case MsgType::Ack:
            check(inside(body, {m.mac, kMacLen}));
            n = write_udp_ack(out, m.mac);
            break;
        case MsgType::Reject:
            check(inside(body, {m.echoed_nonce, 16}));
            n = write_udp_reject(out, m.reason, std::span<const uint8_t, 16>(m.echoed_nonce, 16));
            break;
        case MsgType::Reset:
            n = write_udp_reset(out, m.reason);
            break;
        case MsgType::Syn:
        case MsgType::SynAck: {
            const TokenView &t = m.token;
            check(t.data_len == 0 && t.token_len == body.size());
            check(inside(body, {t.nonce, 16}) && inside(body, t.claims));
            uint8_t *slot = nullptr;
            n = write_token(out, t.type, std::span<const uint8_t, 16>(t.nonce, 16), t.claims,
                            &slot);
            if (t.type == MsgType::SynAck) {
                check(slot && inside(body, {t.mac, kMacLen}));
                std::memcpy(slot, t.mac, kMacLen);
            }
            break;
        }
        default:
            check(false);  // parse_udp_message accepts no other type
    }
    check(n == body.size() && same(out, body));
}

void fuzz_message(std::span<const uint8_t> body) {
    UdpMessageView m;
    if (parse_udp_message(body, m) == WireStatus::Ok) reencode_message(body, m);
}

// Wraps `body` as this side would send it and checks that it reads back, and that a flipped byte
// is caught by the OCS.
void wrap_and_parse(std::span<const uint8_t> body, Flags f) {
    if (body.size() > 0xffff - 6) return;
    const size_t len = udp_surplus_len(body.size(), f.odd);
    std::vector<uint8_t> s(len);
    check(write_udp_surplus(std::span(s).first(len - 1), f.odd, body) == 0);  // one byte short
    check(write_udp_surplus(s, f.odd, body) == len);
    std::span<const uint8_t> got;
    check(parse_udp_surplus(s, f.odd, false, got) == WireStatus::Ok);
    check(inside(s, got) && same(got, body));
    check(udp_ocs(s, f.odd) != 0);
    const size_t start = f.odd ? 1 : 0;
    const size_t at = start + f.flip % (len - start);
    s[at] ^= static_cast<uint8_t>(1 + (f.flip >> 4));  // never 0: the byte really changes
    check(parse_udp_surplus(s, f.odd, false, got) == WireStatus::BadChecksum);
}

void fuzz_surplus(std::span<const uint8_t> in, Flags f) {
    std::span<const uint8_t> body;
    if (parse_udp_surplus(in, f.odd, f.checksum_zero, body) != WireStatus::Ok) return;
    const size_t start = f.odd ? 1 : 0;
    // After the pad, the OCS (2) and at least kind, length, ExID (4).
    check(inside(in, body) && body.data() >= in.data() + start + 6);
    if (!f.checksum_zero) check(load_be16(in.data() + start) == udp_ocs(in, f.odd));
    // Canonical form: only our option, right after the OCS, in its short length form.
    const size_t len = udp_surplus_len(body.size(), f.odd);
    if (in.size() == len && (!f.odd || in[0] == 0) && in[start + 2] == kUdpOptExp &&
        load_be16(in.data() + start) != 0) {
        std::vector<uint8_t> out(len);
        check(write_udp_surplus(out, f.odd, body) == len && same(out, in));
    }
    fuzz_message(body);
    wrap_and_parse(body, f);
}

// Messages this side writes, their fields taken from the input, parse back the same.
void fuzz_writers(std::span<const uint8_t> in, Flags f) {
    uint8_t field[16] = {};
    std::memcpy(field, in.data(), std::min<size_t>(in.size(), 16));
    const uint8_t reason = in.empty() ? 0 : in[0];
    std::vector<uint8_t> body;
    UdpMessageView m;
    auto parses_as = [&](MsgType type, size_t n) {
        body.resize(n);
        check(parse_udp_message(body, m) == WireStatus::Ok && m.type == type);
        wrap_and_parse(body, f);
    };

    body.assign(kUdpAckLen, 0);
    check(write_udp_ack(std::span(body).first(kUdpAckLen - 1), field) == 0);
    parses_as(MsgType::Ack, write_udp_ack(body, field));
    check(std::memcmp(m.mac, field, kMacLen) == 0);

    body.assign(kUdpRejectLen, 0);
    check(write_udp_reject(std::span(body).first(kUdpRejectLen - 1), reason, field) == 0);
    parses_as(MsgType::Reject, write_udp_reject(body, reason, field));
    check(m.reason == reason && std::memcmp(m.echoed_nonce, field, 16) == 0);

    body.assign(kUdpResetLen, 0);
    check(write_udp_reset(std::span(body).first(kUdpResetLen - 1), reason) == 0);
    parses_as(MsgType::Reset, write_udp_reset(body, reason));
    check(m.reason == reason);

    // Tokens: the input (at most kMaxClaimsOnWire bytes) as the claims blob.
    std::span<const uint8_t> claims = in.first(std::min(in.size(), kMaxClaimsOnWire));
    for (MsgType type : {MsgType::Syn, MsgType::SynAck}) {
        const size_t n = token_len(type, claims.size());
        body.assign(n, 0);
        uint8_t *slot = nullptr;
        const size_t w = write_token(body, type, field, claims, &slot);
        if (claims.empty()) {
            check(w == 0);
            continue;
        }
        check(write_token(std::span(body).first(n - 1), type, field, claims) == 0);
        check(w == n);
        if (slot) std::memcpy(slot, field, kMacLen);
        parses_as(type, n);
        check(same(m.token.claims, claims) && std::memcmp(m.token.nonce, field, 16) == 0);
        check(type == MsgType::Syn || std::memcmp(m.token.mac, field, kMacLen) == 0);
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    const Flags f{(data[0] & 1) != 0, (data[0] & 2) != 0, static_cast<uint8_t>(data[0] >> 2)};
    std::span<const uint8_t> in(data + 1, size - 1);
    fuzz_surplus(in, f);
    fuzz_message(in);
    wrap_and_parse(in, f);
    fuzz_writers(in, f);
    return 0;
}
