// Fuzz target for every decoder that sees peer-controlled bytes: claims, SYN/SYN-ACK tokens, the
// TCP option list (find/add/strip) and the UDP surplus area + control messages; and L4 mode's
// records, their reassembly and the TFO option (first byte 0xf0 and above). The first input
// byte picks the decoder so one corpus covers all of them. Besides "no crash / no overrun" (ASan
// in the libFuzzer build), it checks invariants: accepted spans lie inside the input and
// re-encoding an accepted claims/token body gives the same bytes.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <span>
#include <vector>

#include "crypto/claims.hpp"
#include "crypto/l4_wire.hpp"
#include "crypto/wire.hpp"
#include "dataplane/identity/record_buffer.hpp"

using namespace segwire::crypto;
using namespace segwire::crypto::wire;

namespace {

void check(bool ok) {
    if (!ok) std::abort();
}

bool inside(std::span<const uint8_t> outer, const uint8_t *p, size_t n) {
    return p >= outer.data() && p + n <= outer.data() + outer.size();
}

void fuzz_claims(std::span<const uint8_t> in) {
    ClaimsView v;
    if (decode_claims(in, v) != ClaimsReason::Ok) return;
    check(v.signature.size() == kClaimsSigLen && inside(in, v.signature.data(), 64));
    check(v.tag_count <= kMaxTags);
    check(v.pu_id.size() >= 1 && v.pu_id.size() <= kMaxIdLen);
    // Re-encoding the decoded fields (without signing) must reproduce the signed part.
    Claims c = to_claims(v);
    auto n = encoded_claims_size(c);
    check(n.ok() && *n == in.size());
}

void fuzz_token(std::span<const uint8_t> in) {
    TokenView t;
    if (parse_token(in, t) != WireStatus::Ok) return;
    check(t.token_len + t.data_len == in.size());
    check(inside(in, t.nonce, 16) && inside(in, t.claims.data(), t.claims.size()));
    std::vector<uint8_t> out(t.token_len);
    uint8_t *slot = nullptr;
    check(write_token(out, t.type, std::span<const uint8_t, 16>(t.nonce, 16), t.claims, &slot) ==
          t.token_len);
    if (t.type == MsgType::SynAck) std::memcpy(slot, t.mac, kMacLen);
    check(std::memcmp(out.data(), in.data() + t.data_len, t.token_len) == 0);
}

void fuzz_tcp_options(std::span<const uint8_t> in) {
    if (in.size() > kTcpOptionSpace) in = in.first(kTcpOptionSpace);
    TcpOptionView v;
    if (find_tcp_option(in, v) == WireStatus::Ok) check(v.offset + v.length <= in.size());
    uint8_t out[kTcpOptionSpace], marker[kMarkerOptLen];
    write_tcp_option(marker, MsgType::Syn);
    OptionEdit e = add_tcp_option(in, marker, out, true);
    if (e.status == WireStatus::Ok) {
        check(e.length <= kTcpOptionSpace && e.length % 4 == 0);
        check(find_tcp_option(std::span(out, e.length), v) == WireStatus::Ok);
    }
    e = strip_tcp_option(in, out);
    if (e.status == WireStatus::Ok) check(e.length <= kTcpOptionSpace);
}

void fuzz_udp(std::span<const uint8_t> in, bool odd) {
    std::span<const uint8_t> body;
    if (parse_udp_surplus(in, odd, true, body) != WireStatus::Ok) return;
    check(inside(in, body.data(), body.size()));
    UdpMessageView m;
    (void)parse_udp_message(body, m);
}

// An L4 record at the start of a stream: an accepted one lies inside the input and re-encodes to
// the same bytes; a valid beginning asks for more than it has.
void fuzz_l4_record(std::span<const uint8_t> in) {
    l4::RecordView r;
    size_t need = 0;
    const WireStatus st = l4::parse_record(in, r, &need);
    if (st == WireStatus::Truncated) check(need > in.size() && need <= l4::kMaxRecordLen);
    if (st != WireStatus::Ok) return;
    check(r.len <= in.size() && r.len <= l4::kMaxRecordLen);
    std::vector<uint8_t> out(r.len);
    size_t n = 0;
    if (r.type == l4::RecordType::R3) {
        check(inside(in, r.mac, kMacLen));
        n = l4::write_r3(out, r.mac);
    } else {
        check(inside(in, r.nonce, 16) && inside(in, r.claims.data(), r.claims.size()));
        const std::span<const uint8_t, 16> nonce(r.nonce, 16);
        uint8_t *slot = nullptr;
        n = r.type == l4::RecordType::R1 ? l4::write_r1(out, nonce, r.claims)
                                         : l4::write_r2(out, nonce, r.claims, &slot);
        if (slot) std::memcpy(slot, r.mac, kMacLen);
    }
    check(n == r.len && std::memcmp(out.data(), in.data(), n) == 0);
}

// Segments of a stream into the reassembly buffer: each input byte pair is (offset, length) of a
// piece of the input itself; the contiguous prefix always equals the input's prefix.
void fuzz_record_buffer(std::span<const uint8_t> in) {
    if (in.size() < 4) return;
    const uint32_t first = uint32_t(in[0]) << 24 | uint32_t(in[1]) << 16 | 0xfff0u;
    const std::span<const uint8_t> stream = in.subspan(2);
    segwire::dp::identity::RecordBuffer b;
    b.reset(first);
    for (size_t i = 0; i + 1 < stream.size(); i += 2) {
        const size_t off = stream[i] % stream.size(), len = stream[i + 1] % 64;
        const size_t n = std::min(len, stream.size() - off);
        check(b.add(first + uint32_t(off), stream.subspan(off, n)) !=
              segwire::dp::identity::RecordBuffer::Add::kConflict);
    }
    const auto held = b.bytes();
    check(held.size() <= stream.size() &&
          std::memcmp(held.data(), stream.data(), held.size()) == 0);
}

void fuzz_tfo(std::span<const uint8_t> in) {
    if (in.size() > kTcpOptionSpace) in = in.first(kTcpOptionSpace);
    TfoOptionView t;
    if (find_tfo_option(in, t) == WireStatus::Ok) {
        check(t.offset + t.length <= in.size() && inside(in, t.cookie.data(), t.cookie.size()));
        uint8_t opt[18];
        check(t.experimental || write_tfo_option(opt, t.cookie) == t.length);
    }
    uint8_t out[kTcpOptionSpace];
    const OptionEdit e = strip_tfo_option(in, out);
    if (e.status == WireStatus::Ok || e.status == WireStatus::NotPresent) {
        check(e.length <= kTcpOptionSpace && e.length % 4 == 0);
        check(find_tfo_option(std::span(out, e.length), t) == WireStatus::NotPresent);
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    std::span<const uint8_t> in(data + 1, size - 1);
    if (data[0] >= 0xf0) {  // L4 mode's decoders (the older seeds keep their first byte's meaning)
        switch (data[0] % 3) {
            case 0:
                fuzz_l4_record(in);
                break;
            case 1:
                fuzz_record_buffer(in);
                break;
            case 2:
                fuzz_tfo(in);
                break;
        }
        return 0;
    }
    switch (data[0] % 5) {
        case 0:
            fuzz_claims(in);
            break;
        case 1:
            fuzz_token(in);
            break;
        case 2:
            fuzz_tcp_options(in);
            break;
        case 3:
            fuzz_udp(in, false);
            break;
        case 4:
            fuzz_udp(in, true);
            break;
    }
    return 0;
}
