// Wire codec for the identity handshake (docs/protocol.md is the normative text). Everything here
// is for the packet path: std::span in, no allocation, no exceptions, no locks; every read is
// bounds-checked and every failure has a WireStatus.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

#include "crypto/bytes.hpp"
#include "crypto/hmac.hpp"
#include "crypto/nonce.hpp"

namespace segwire::crypto::wire {

inline constexpr uint8_t kVersion = 1;
inline constexpr uint8_t kTcpOptExperimental = 253;  // RFC 6994 (never 34: that is TFO)
inline constexpr uint16_t kExId = 0x5357;            // "SW"
inline constexpr size_t kMacLen = 16;                // truncated HMAC-SHA256, 128 bits
inline constexpr size_t kTcpOptionSpace = 40;
inline constexpr size_t kMarkerOptLen = 5;     // FD 05 53 57 VT
inline constexpr size_t kAckOptLen = 21;       // FD 15 53 57 VT MAC[16] (Ack and Confirm)
inline constexpr size_t kTokenHeaderLen = 20;  // version, type, nonce[16], claims length
inline constexpr size_t kTokenTrailerLen = 2;  // token length, last two bytes of the payload
inline constexpr size_t kMaxClaimsOnWire = 512;
inline constexpr size_t kMaxTokenLen =
    kTokenHeaderLen + kMaxClaimsOnWire + kMacLen + kTokenTrailerLen;
inline constexpr uint8_t kUdpOptEol = 0, kUdpOptNop = 1, kUdpOptExp = 127;
inline constexpr size_t kMacInputLen = 144;

enum class MsgType : uint8_t {
    Syn = 1,
    SynAck = 2,
    Ack = 3,
    Reject = 4,   // UDP only (TCP uses RST)
    Reset = 5,    // UDP only: "I hold no state for this flow, handshake again"
    Confirm = 6,  // TCP only: the server side's enforcer has verified the ACK proof (§4.3)
};

enum class WireStatus : uint8_t {
    Ok = 0,
    NotPresent,       // no segwire option / EXP option: the peer has no enforcer
    Truncated,        // a length points past the buffer
    BadLength,        // a length field is impossible for its type
    BadVersion,       // a version this build does not speak
    BadType,          // unknown message type, or a type not valid where it was found
    Duplicate,        // two segwire options in one packet
    NoSpace,          // output buffer / option space too small
    BadOption,        // malformed TCP option list or UDP option list
    BadChecksum,      // UDP OCS mismatch (the surplus must then be ignored)
    UnsafeOption,     // UDP option kind >= 192 that we do not know: drop the datagram
    BadClaimsLength,  // token claims length 0 or > 512
};
const char *to_string(WireStatus s) noexcept;

// --- TCP option --------------------------------------------------------------------------------

// Writes the marker (SYN, SYN-ACK), the ACK proof (type Ack) or the proof's confirmation (type
// Confirm); the last two carry `mac` (16 bytes). Returns the option length (5 or 21), 0 if `out`
// is too small or the type is not a TCP type.
size_t write_tcp_option(std::span<uint8_t> out, MsgType type,
                        const uint8_t *mac = nullptr) noexcept;

struct TcpOptionView {
    uint8_t version = 0;
    MsgType type = MsgType::Syn;
    size_t offset = 0;  // within the options area, for stripping
    size_t length = 0;
    const uint8_t *mac = nullptr;  // Ack and Confirm
};

// Walks a TCP options area (the bytes after the 20-byte header, data offset * 4 - 20 long).
// EOL ends the list; NOP is one byte; every other option needs 2 <= len <= remaining.
// Other RFC 6994 options (other ExIDs, TFO's 0xF989) are skipped.
WireStatus find_tcp_option(std::span<const uint8_t> options, TcpOptionView &out) noexcept;

struct OptionEdit {
    WireStatus status = WireStatus::Ok;
    uint8_t length = 0;        // new options length, a multiple of 4, <= 40
    bool compacted = false;    // NOP padding was removed to make room
    bool dropped_tfo = false;  // a TFO option (kind 34, or 254/0xF989) was removed to make room
};

// New options area = `existing` + `ours`, padded with NOPs to a multiple of 4, into `out`. When
// space is short: first drop NOP padding, then (if allow_drop_tfo) the TFO option; otherwise
// NoSpace and the caller sends the segment without identity (docs/protocol.md §4.6).
OptionEdit add_tcp_option(std::span<const uint8_t> existing, std::span<const uint8_t> ours,
                          std::span<uint8_t, kTcpOptionSpace> out, bool allow_drop_tfo) noexcept;

// New options area without the segwire option, padded with NOPs to a multiple of 4.
OptionEdit strip_tcp_option(std::span<const uint8_t> existing,
                            std::span<uint8_t, kTcpOptionSpace> out) noexcept;

// TCP Fast Open (RFC 7413; kind 34, or Linux's old experimental 254 / ExID 0xF989). L4 mode
// strips a host's TFO from its SYN and speaks TFO between enforcers (docs/l4-mode.md).
struct TfoOptionView {
    size_t offset = 0;  // within the options area
    size_t length = 0;
    std::span<const uint8_t> cookie;  // empty: a cookie request
    bool experimental = false;        // the 254 / 0xF989 form
};
// The first TFO option of an options area. NotPresent, BadOption (a malformed list), BadLength
// (a cookie outside 4..16 bytes), or Ok.
WireStatus find_tfo_option(std::span<const uint8_t> options, TfoOptionView &out) noexcept;
// New options area without any TFO option (both forms), padded with NOPs to a multiple of 4;
// NotPresent when there was none (the area is copied as it is).
OptionEdit strip_tfo_option(std::span<const uint8_t> existing,
                            std::span<uint8_t, kTcpOptionSpace> out) noexcept;
// Writes option 34 with `cookie` (4..16 bytes) or, with an empty cookie, a cookie request.
// Returns its length, 0 when `out` is too small or the cookie length is not allowed.
size_t write_tfo_option(std::span<uint8_t> out, std::span<const uint8_t> cookie) noexcept;

// --- SYN / SYN-ACK token (TCP payload tail; also the body of UDP SYN / SYN-ACK) ----------------

size_t token_len(MsgType type, size_t claims_len) noexcept;

// Writes a token. For SynAck the MAC bytes are left zero and *mac_slot points at them, so the
// batched HMAC can write the tag straight into the packet. Returns bytes written or 0.
size_t write_token(std::span<uint8_t> out, MsgType type, std::span<const uint8_t, 16> nonce,
                   std::span<const uint8_t> claims, uint8_t **mac_slot = nullptr) noexcept;

struct TokenView {
    MsgType type = MsgType::Syn;
    const uint8_t *nonce = nullptr;  // 16 bytes
    std::span<const uint8_t> claims;
    const uint8_t *mac = nullptr;  // SynAck only
    size_t token_len = 0;          // trim this many bytes from the payload tail
    size_t data_len = 0;           // the host's own payload before the token (e.g. TFO data)
};

// Finds the token at the end of a TCP payload (or a UDP SYN/SYN-ACK body) and validates it.
WireStatus parse_token(std::span<const uint8_t> payload, TokenView &out) noexcept;

// --- MAC inputs ----------------------------------------------------------------------------------

// The connection as the two enforcers see it. "client" = the side that sent the SYN.
// Addresses are 16 bytes; IPv4 is written IPv4-mapped (::ffff:a.b.c.d). Ports in host order.
struct FlowBinding {
    uint8_t protocol = 6;  // IPPROTO_TCP or IPPROTO_UDP
    uint8_t family = 4;    // 4 or 6
    std::array<uint8_t, 16> client_addr{};
    std::array<uint8_t, 16> server_addr{};
    uint16_t client_port = 0;
    uint16_t server_port = 0;

    static FlowBinding ipv4(uint8_t proto, const uint8_t client[4], uint16_t cport,
                            const uint8_t server[4], uint16_t sport) noexcept;
    static FlowBinding ipv6(uint8_t proto, const uint8_t client[16], uint16_t cport,
                            const uint8_t server[16], uint16_t sport) noexcept;
};

// Direction byte of the MAC input: who produced the MAC.
enum class MacDirection : uint8_t { ClientToServer = 0, ServerToClient = 1 };

struct HandshakeInputs {
    std::span<const uint8_t, 16> client_nonce;
    std::span<const uint8_t, 16> server_nonce;
    const Digest *client_claims_hash;
    const Digest *server_claims_hash;
};

// The 144-byte MAC input for the SYN-ACK (ServerToClient) or ACK (ClientToServer) proof.
void build_mac_input(MacDirection dir, const FlowBinding &flow, const HandshakeInputs &in,
                     std::span<uint8_t, kMacInputLen> out) noexcept;

// Both proofs of one handshake are computed together (the server when it sends the SYN-ACK, the
// client when it receives it), so the later ACK check is a constant-time compare, not an HMAC.
// The ACK input's HMAC is kept whole: its first 16 bytes are the client's proof (ACK option), its
// last 16 the server side's confirmation that it verified that proof (TCP Confirm option). Seeing
// the proof on the wire tells nothing about the confirmation.
struct HandshakeMacs {
    alignas(64) std::array<uint8_t, kMacInputLen> synack_input;
    alignas(64) std::array<uint8_t, kMacInputLen> ack_input;
    std::array<uint8_t, kMacLen> synack_mac;
    std::array<uint8_t, 2 * kMacLen> ack_hmac;

    const uint8_t *ack_mac() const noexcept { return ack_hmac.data(); }
    const uint8_t *confirm_mac() const noexcept { return ack_hmac.data() + kMacLen; }

    // Fills both inputs and two HmacJobs (to be handed to HmacBatch::compute with others).
    void prepare(const HmacKey &key, const FlowBinding &flow, const HandshakeInputs &in,
                 HmacJob jobs[2]) noexcept;
};

// --- UDP options (RFC 9868 surplus area) --------------------------------------------------------

// UDP control message bodies (inside the EXP option, after the ExID).
//   Syn / SynAck : a token (as above)
//   Ack          : version, type, MAC[16]
//   Reject       : version, type, reason, echoed nonce[16]
//   Reset        : version, type, reason
inline constexpr size_t kUdpAckLen = 18, kUdpRejectLen = 19, kUdpResetLen = 3;
size_t write_udp_ack(std::span<uint8_t> out, const uint8_t mac[kMacLen]) noexcept;
size_t write_udp_reject(std::span<uint8_t> out, uint8_t reason,
                        std::span<const uint8_t, 16> echoed_nonce) noexcept;
size_t write_udp_reset(std::span<uint8_t> out, uint8_t reason) noexcept;

struct UdpMessageView {
    MsgType type = MsgType::Syn;
    TokenView token;                        // Syn, SynAck
    const uint8_t *mac = nullptr;           // Ack
    uint8_t reason = 0;                     // Reject, Reset
    const uint8_t *echoed_nonce = nullptr;  // Reject
};
WireStatus parse_udp_message(std::span<const uint8_t> body, UdpMessageView &out) noexcept;

// Surplus-area length for a body of `body_len` bytes (pad + OCS + EXP option).
size_t udp_surplus_len(size_t body_len, bool odd_start) noexcept;

// Writes [0x00 pad if odd_start][OCS][EXP 127 + ExID + body] and fills in the OCS. `odd_start` is
// true when the surplus begins at an odd offset from the start of the IP datagram (i.e. the UDP
// Length is odd). Returns the surplus length or 0 if `out` is too small.
size_t write_udp_surplus(std::span<uint8_t> out, bool odd_start,
                         std::span<const uint8_t> body) noexcept;

// Finds our EXP option in a surplus area. OCS is checked first (a zero OCS is accepted only when
// the UDP checksum is zero, per RFC 9868). `body` receives the message body.
WireStatus parse_udp_surplus(std::span<const uint8_t> surplus, bool odd_start,
                             bool udp_checksum_zero, std::span<const uint8_t> &body) noexcept;

// RFC 9868 OCS over the surplus (OCS field taken as zero).
uint16_t udp_ocs(std::span<const uint8_t> surplus, bool odd_start) noexcept;

}  // namespace segwire::crypto::wire
