#include "crypto/l4_wire.hpp"

#include <cstring>

#include "crypto/bytes.hpp"

namespace segwire::crypto::l4 {

using wire::kMacLen;
using wire::WireStatus;

namespace {

constexpr char kMacLabel[8] = {'s', 'e', 'g', 'w', 'i', 'r', 'e', '2'};

bool claims_len_ok(size_t n) noexcept {
    return n >= 1 && n <= wire::kMaxClaimsOnWire;
}

uint8_t *header(uint8_t *p, RecordType t, size_t len) noexcept {
    p[0] = kMagic[0], p[1] = kMagic[1], p[2] = kVersion, p[3] = static_cast<uint8_t>(t);
    store_be16(p + 4, static_cast<uint16_t>(len));
    return p + kHeaderLen;
}

size_t write_hello(std::span<uint8_t> out, RecordType t, std::span<const uint8_t, 16> nonce,
                   std::span<const uint8_t> claims, uint8_t **mac_slot) noexcept {
    const size_t len = record_len(t, claims.size());
    if (!len || out.size() < len) return 0;
    uint8_t *p = header(out.data(), t, len);
    std::memcpy(p, nonce.data(), 16);
    store_be16(p + 16, static_cast<uint16_t>(claims.size()));
    std::memcpy(p + 18, claims.data(), claims.size());
    if (t == RecordType::R2) {
        uint8_t *mac = p + 18 + claims.size();
        std::memset(mac, 0, kMacLen);
        if (mac_slot) *mac_slot = mac;
    }
    return len;
}

}  // namespace

size_t record_len(RecordType type, size_t claims_len) noexcept {
    switch (type) {
        case RecordType::R1:
            return claims_len_ok(claims_len) ? kHeaderLen + 18 + claims_len : 0;
        case RecordType::R2:
            return claims_len_ok(claims_len) ? kHeaderLen + 18 + claims_len + kMacLen : 0;
        case RecordType::R3:
            return kR3Len;
    }
    return 0;
}

size_t write_r1(std::span<uint8_t> out, std::span<const uint8_t, 16> nonce,
                std::span<const uint8_t> claims) noexcept {
    return write_hello(out, RecordType::R1, nonce, claims, nullptr);
}

size_t write_r2(std::span<uint8_t> out, std::span<const uint8_t, 16> nonce,
                std::span<const uint8_t> claims, uint8_t **mac_slot) noexcept {
    return write_hello(out, RecordType::R2, nonce, claims, mac_slot);
}

size_t write_r3(std::span<uint8_t> out, const uint8_t mac[kMacLen]) noexcept {
    if (out.size() < kR3Len) return 0;
    std::memcpy(header(out.data(), RecordType::R3, kR3Len), mac, kMacLen);
    return kR3Len;
}

WireStatus parse_record(std::span<const uint8_t> s, RecordView &out, size_t *need) noexcept {
    if (need) *need = kHeaderLen;
    // The magic and the version are checked on as many bytes as there are, so a stream that is
    // not L4 (host data, a peer in another mode) is told apart from its first byte.
    const uint8_t lead[3] = {kMagic[0], kMagic[1], kVersion};
    for (size_t i = 0; i < 3 && i < s.size(); ++i)
        if (s[i] != lead[i]) return WireStatus::NotPresent;
    if (s.size() < 4) return WireStatus::Truncated;
    const auto type = static_cast<RecordType>(s[3]);
    if (type != RecordType::R1 && type != RecordType::R2 && type != RecordType::R3)
        return WireStatus::BadType;
    if (s.size() < kHeaderLen) return WireStatus::Truncated;
    const size_t len = load_be16(s.data() + 4);
    // The smallest and largest a record of this type can be (claims 1..512).
    const size_t lo = record_len(type, 1), hi = record_len(type, wire::kMaxClaimsOnWire);
    if (len < lo || len > hi) return WireStatus::BadLength;
    if (need) *need = len;
    if (s.size() < len) return WireStatus::Truncated;
    const uint8_t *p = s.data() + kHeaderLen;
    out = RecordView{};
    out.type = type;
    out.len = len;
    if (type == RecordType::R3) {
        out.mac = p;
        return WireStatus::Ok;
    }
    const size_t claims = load_be16(p + 16);
    if (!claims_len_ok(claims)) return WireStatus::BadClaimsLength;
    if (record_len(type, claims) != len) return WireStatus::BadLength;
    out.nonce = p;
    out.claims = {p + 18, claims};
    if (type == RecordType::R2) out.mac = p + 18 + claims;
    return WireStatus::Ok;
}

void build_mac_input(wire::MacDirection dir, const wire::FlowBinding &flow,
                     const wire::HandshakeInputs &in, uint32_t client_isn, uint32_t server_isn,
                     std::span<uint8_t, kMacInputLen> out) noexcept {
    wire::build_mac_input(dir, flow, in, out.first<wire::kMacInputLen>());
    std::memcpy(out.data(), kMacLabel, 8);
    out[8] = kVersion;
    store_be32(out.data() + wire::kMacInputLen, client_isn);
    store_be32(out.data() + wire::kMacInputLen + 4, server_isn);
}

void Macs::prepare(const HmacKey &key, const wire::FlowBinding &flow,
                   const wire::HandshakeInputs &in, uint32_t client_isn, uint32_t server_isn,
                   HmacJob jobs[2]) noexcept {
    build_mac_input(wire::MacDirection::ServerToClient, flow, in, client_isn, server_isn,
                    synack_input);
    build_mac_input(wire::MacDirection::ClientToServer, flow, in, client_isn, server_isn,
                    ack_input);
    jobs[0] = HmacJob{&key, synack_input.data(), kMacInputLen, synack_mac.data(), kMacLen};
    jobs[1] = HmacJob{&key, ack_input.data(), kMacInputLen, ack_hmac.data(), 2 * kMacLen};
}

TfoCookie tfo_cookie(const HmacKey &key, uint8_t family, const uint8_t addr[16]) noexcept {
    uint8_t msg[17];
    msg[0] = family;
    std::memcpy(msg + 1, addr, 16);
    TfoCookie c{};
    HmacBatch::compute_one_portable(HmacJob{&key, msg, sizeof msg, c.data(), kTfoCookieLen});
    return c;
}

bool tfo_cookie_valid(const HmacKey &current, const HmacKey *previous, uint8_t family,
                      const uint8_t addr[16], std::span<const uint8_t> cookie) noexcept {
    if (cookie.size() != kTfoCookieLen) return false;
    const TfoCookie now = tfo_cookie(current, family, addr);
    bool ok = tag_equal(now.data(), cookie.data(), kTfoCookieLen);
    if (previous) {
        const TfoCookie before = tfo_cookie(*previous, family, addr);
        ok |= tag_equal(before.data(), cookie.data(), kTfoCookieLen);
    }
    return ok;
}

}  // namespace segwire::crypto::l4
