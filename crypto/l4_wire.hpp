// Wire codec of L4 mode (docs/l4-mode.md): the identity records the two enforcers exchange as
// TCP payload right after the handshake (or as TFO data in the SYN), the MAC input that adds the
// ISNs to v1's, and the TFO cookie an enforcer issues to its peers. For the packet path: std::span
// in, no allocation, no exceptions; every read bounds-checked, every failure a WireStatus.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

#include "crypto/hmac.hpp"
#include "crypto/wire.hpp"

namespace segwire::crypto::l4 {

inline constexpr uint8_t kVersion = 2;
inline constexpr uint8_t kMagic[2] = {0x53, 0x57};  // "SW"
inline constexpr size_t kHeaderLen = 6;             // magic, version, type, record length
enum class RecordType : uint8_t {
    R1 = 0x11,  // A -> B: Nc, A's claims
    R2 = 0x12,  // B -> A: Ns, B's claims, MAC_sa
    R3 = 0x13,  // A -> B: MAC_ack
};
inline constexpr size_t kR3Len = kHeaderLen + wire::kMacLen;  // 22
inline constexpr size_t kMaxRecordLen =
    kHeaderLen + 16 + 2 + wire::kMaxClaimsOnWire + wire::kMacLen;  // 552

// Length of a record of `type` carrying `claims_len` bytes of claims (R3: ignored); 0 for a
// claims length outside 1..512.
size_t record_len(RecordType type, size_t claims_len) noexcept;

// Writers. Each returns the bytes written, or 0 when `out` is too small or the claims length is
// outside 1..512. R2's MAC bytes are left zero and *mac_slot points at them (the batched HMAC
// writes the tag in place).
size_t write_r1(std::span<uint8_t> out, std::span<const uint8_t, 16> nonce,
                std::span<const uint8_t> claims) noexcept;
size_t write_r2(std::span<uint8_t> out, std::span<const uint8_t, 16> nonce,
                std::span<const uint8_t> claims, uint8_t **mac_slot = nullptr) noexcept;
size_t write_r3(std::span<uint8_t> out, const uint8_t mac[wire::kMacLen]) noexcept;

struct RecordView {
    RecordType type = RecordType::R1;
    const uint8_t *nonce = nullptr;   // R1, R2: 16 bytes
    std::span<const uint8_t> claims;  // R1, R2
    const uint8_t *mac = nullptr;     // R2, R3
    size_t len = 0;                   // the whole record
};

// Frames the record at the start of `stream` (the bytes of one direction's stream from its
// first byte, as reassembled so far). Ok: `out` describes it. Truncated: the bytes so far are a
// valid beginning; *need (when not null) is the record's full length once the header is in, else
// kHeaderLen. NotPresent: the stream does not start with a record (the magic or the version
// differs: a peer without L4 mode, or host data). BadType, BadLength, BadClaimsLength: a record
// that can never be valid.
wire::WireStatus parse_record(std::span<const uint8_t> stream, RecordView &out,
                              size_t *need = nullptr) noexcept;

// The MAC input of L4 mode: v1's 144 bytes (docs/protocol.md §5) with label "segwire2" and
// version 2, then the client's and the server's ISN (big-endian), 152 bytes.
inline constexpr size_t kMacInputLen = wire::kMacInputLen + 8;
void build_mac_input(wire::MacDirection dir, const wire::FlowBinding &flow,
                     const wire::HandshakeInputs &in, uint32_t client_isn, uint32_t server_isn,
                     std::span<uint8_t, kMacInputLen> out) noexcept;

// Both MACs of one L4 exchange, as wire::HandshakeMacs for v1: MAC_sa (R2), and the HMAC whose
// first half is MAC_ack (R3) and whose second half is the server side's confirmation.
struct Macs {
    alignas(64) std::array<uint8_t, kMacInputLen> synack_input;
    alignas(64) std::array<uint8_t, kMacInputLen> ack_input;
    std::array<uint8_t, wire::kMacLen> synack_mac;
    std::array<uint8_t, 2 * wire::kMacLen> ack_hmac;

    const uint8_t *ack_mac() const noexcept { return ack_hmac.data(); }
    const uint8_t *confirm_mac() const noexcept { return ack_hmac.data() + wire::kMacLen; }
    void prepare(const HmacKey &key, const wire::FlowBinding &flow, const wire::HandshakeInputs &in,
                 uint32_t client_isn, uint32_t server_isn, HmacJob jobs[2]) noexcept;
};

// TCP Fast Open between enforcers (RFC 7413 §4.1.2): the cookie an enforcer issues for a client
// address, the first 8 bytes of HMAC-SHA256(key, family || address as 16 bytes, IPv4 mapped).
// One HMAC outside the batch: it runs once per SYN that carries or asks for a cookie.
inline constexpr size_t kTfoCookieLen = 8;
using TfoCookie = std::array<uint8_t, kTfoCookieLen>;
TfoCookie tfo_cookie(const HmacKey &key, uint8_t family, const uint8_t addr[16]) noexcept;
// A cookie is valid under the current key or the previous one (keys rotate with the ephemeral
// keys, docs/l4-mode.md); compared in constant time. `previous` may be null.
bool tfo_cookie_valid(const HmacKey &current, const HmacKey *previous, uint8_t family,
                      const uint8_t addr[16], std::span<const uint8_t> cookie) noexcept;

}  // namespace segwire::crypto::l4
