// Fuzz target for every decoder that sees peer-controlled bytes: claims, SYN/SYN-ACK tokens, the
// TCP option list (find/add/strip) and the UDP surplus area + control messages. The first input
// byte picks the decoder so one corpus covers all of them. Besides "no crash / no overrun" (ASan
// in the libFuzzer build), it checks invariants: accepted spans lie inside the input and
// re-encoding an accepted claims/token body gives the same bytes.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <span>
#include <vector>

#include "crypto/claims.hpp"
#include "crypto/wire.hpp"

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

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    std::span<const uint8_t> in(data + 1, size - 1);
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
