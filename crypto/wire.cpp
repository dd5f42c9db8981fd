#include "crypto/wire.hpp"

#include <cstring>

#include "crypto/claims.hpp"
#include "crypto/tcp_options.hpp"

namespace segwire::crypto::wire {

static_assert(kMaxClaimsOnWire == kClaimsMaxLen, "token and claims bounds must agree");
static_assert(kMacInputLen == 8 + 4 + 16 + 16 + 2 + 2 + 16 + 16 + 32 + 32);

const char *to_string(WireStatus s) noexcept {
    switch (s) {
        case WireStatus::Ok:
            return "ok";
        case WireStatus::NotPresent:
            return "not present";
        case WireStatus::Truncated:
            return "truncated";
        case WireStatus::BadLength:
            return "bad length";
        case WireStatus::BadVersion:
            return "unsupported version";
        case WireStatus::BadType:
            return "bad message type";
        case WireStatus::Duplicate:
            return "duplicate option";
        case WireStatus::NoSpace:
            return "no space";
        case WireStatus::BadOption:
            return "malformed option list";
        case WireStatus::BadChecksum:
            return "option checksum mismatch";
        case WireStatus::UnsafeOption:
            return "unknown unsafe UDP option";
        case WireStatus::BadClaimsLength:
            return "bad claims length";
    }
    return "?";
}

namespace {

constexpr char kMacLabel[8] = {'s', 'e', 'g', 'w', 'i', 'r', 'e', '1'};

uint8_t vt(MsgType t) noexcept {
    return static_cast<uint8_t>((kVersion << 4) | uint8_t(t));
}

bool is_tcp_type(MsgType t) noexcept {
    return t == MsgType::Syn || t == MsgType::SynAck || t == MsgType::Ack || t == MsgType::Confirm;
}

bool carries_mac(MsgType t) noexcept {
    return t == MsgType::Ack || t == MsgType::Confirm;
}

bool is_ours(const uint8_t *opt, size_t len) noexcept {
    return opt[0] == kTcpOptExperimental && len >= 4 && load_be16(opt + 2) == kExId;
}

bool is_tfo(const uint8_t *opt, size_t len) noexcept {
    return opt[0] == kTcpOptFastOpen ||
           (opt[0] == kTcpOptExp2 && len >= 4 && load_be16(opt + 2) == kTfoExId);
}

size_t pad4(uint8_t *out, size_t len) noexcept {
    while (len % 4) out[len++] = kTcpOptNop;
    return len;
}

}  // namespace

// --- TCP option ----------------------------------------------------------------------------------

size_t write_tcp_option(std::span<uint8_t> out, MsgType type, const uint8_t *mac) noexcept {
    if (!is_tcp_type(type)) return 0;
    const bool ack = carries_mac(type);
    const size_t len = ack ? kAckOptLen : kMarkerOptLen;
    if (out.size() < len || (ack && !mac)) return 0;
    out[0] = kTcpOptExperimental;
    out[1] = static_cast<uint8_t>(len);
    store_be16(&out[2], kExId);
    out[4] = vt(type);
    if (ack) std::memcpy(&out[5], mac, kMacLen);
    return len;
}

WireStatus find_tcp_option(std::span<const uint8_t> o, TcpOptionView &out) noexcept {
    bool found = false, dup = false;
    WireStatus inner = WireStatus::Ok;
    const TcpOptionWalk w = walk_tcp_options(o, [&](size_t off, uint8_t, uint8_t len) {
        const uint8_t *p = o.data() + off;
        if (!is_ours(p, len)) return true;
        if (found) {
            dup = true;
            return true;
        }
        found = true;
        out = TcpOptionView{};
        out.offset = off;
        out.length = len;
        if (len < kMarkerOptLen) {
            inner = WireStatus::BadLength;
            return true;
        }
        out.version = p[4] >> 4;
        uint8_t t = p[4] & 0x0f;
        if (out.version != kVersion) {
            inner = WireStatus::BadVersion;
            return true;
        }
        if (!is_tcp_type(static_cast<MsgType>(t))) {
            inner = WireStatus::BadType;
            return true;
        }
        out.type = static_cast<MsgType>(t);
        const size_t want = carries_mac(out.type) ? kAckOptLen : kMarkerOptLen;
        if (len != want) {
            inner = WireStatus::BadLength;
            return true;
        }
        if (carries_mac(out.type)) out.mac = p + 5;
        return true;
    });
    if (!w.ok) return WireStatus::BadOption;
    if (!found) return WireStatus::NotPresent;
    if (dup) return WireStatus::Duplicate;
    return inner;
}

OptionEdit add_tcp_option(std::span<const uint8_t> existing, std::span<const uint8_t> ours,
                          std::span<uint8_t, kTcpOptionSpace> out, bool allow_drop_tfo) noexcept {
    OptionEdit e;
    if (ours.size() > kTcpOptionSpace || existing.size() > kTcpOptionSpace) {
        e.status = WireStatus::NoSpace;
        return e;
    }
    // Pass 1: size of the real options (no NOPs) and of a TFO option.
    size_t real = 0, tfo = 0;
    bool has_ours = false;
    const TcpOptionWalk w = walk_tcp_options(existing, [&](size_t off, uint8_t, uint8_t len) {
        real += len;
        if (is_tfo(existing.data() + off, len)) tfo += len;
        if (is_ours(existing.data() + off, len)) has_ours = true;
        return true;
    });
    if (!w.ok || has_ours) {
        e.status = has_ours ? WireStatus::Duplicate : WireStatus::BadOption;
        return e;
    }
    // Common case: keep the sender's layout byte for byte up to any EOL, then append ours.
    size_t n = w.end;
    if (((n + ours.size() + 3) & ~size_t{3}) <= kTcpOptionSpace) {
        if (n) std::memcpy(out.data(), existing.data(), n);  // memcpy(…, nullptr, 0) is UB
        if (!ours.empty()) std::memcpy(out.data() + n, ours.data(), ours.size());
        e.length = static_cast<uint8_t>(pad4(out.data(), n + ours.size()));
        return e;
    }
    const bool drop_tfo = ((real + ours.size() + 3) & ~size_t{3}) > kTcpOptionSpace;
    if (drop_tfo && (!allow_drop_tfo || tfo == 0 ||
                     ((real - tfo + ours.size() + 3) & ~size_t{3}) > kTcpOptionSpace)) {
        e.status = WireStatus::NoSpace;
        return e;
    }
    n = 0;
    (void)walk_tcp_options(existing, [&](size_t off, uint8_t, uint8_t len) {
        if (drop_tfo && is_tfo(existing.data() + off, len)) return true;
        std::memcpy(out.data() + n, existing.data() + off, len);
        n += len;
        return true;
    });
    if (!ours.empty()) std::memcpy(out.data() + n, ours.data(), ours.size());
    e.length = static_cast<uint8_t>(pad4(out.data(), n + ours.size()));
    e.compacted = true;
    e.dropped_tfo = drop_tfo;
    return e;
}

namespace {

// New options area without every option `drop` selects; the sender's NOPs between the others stay.
template <class Drop>
OptionEdit strip_options(std::span<const uint8_t> existing, std::span<uint8_t, kTcpOptionSpace> out,
                         Drop &&drop) noexcept {
    OptionEdit e;
    if (existing.size() > kTcpOptionSpace) {
        e.status = WireStatus::BadOption;
        return e;
    }
    // The sender's NOPs stay where they are: the bytes between two options are copied as such.
    size_t n = 0, copied = 0;
    auto copy_to = [&](size_t end) {
        if (end > copied) std::memcpy(out.data() + n, existing.data() + copied, end - copied);
        n += end - copied;
    };
    bool found = false;
    // Where the last option kept ends in `out`: trailing NOPs after it are padding, but bytes of
    // 0x01 before it are that option's data (a timestamp ending in 01 01 01 01), never trimmed.
    size_t removed = 0, kept_end = 0;
    const TcpOptionWalk w = walk_tcp_options(existing, [&](size_t off, uint8_t, uint8_t len) {
        if (drop(existing.data() + off, len)) {
            copy_to(off);
            copied = off + len;
            removed += len;
            found = true;
        } else {
            kept_end = off + len - removed;
        }
        return true;
    });
    if (!w.ok) {
        e.status = WireStatus::BadOption;
        return e;
    }
    copy_to(w.end);
    if (!found) e.status = WireStatus::NotPresent;
    while (n > kept_end && out[n - 1] == kTcpOptNop) --n;  // the padding goes with the option
    e.length = static_cast<uint8_t>(pad4(out.data(), n));
    return e;
}

}  // namespace

OptionEdit strip_tcp_option(std::span<const uint8_t> existing,
                            std::span<uint8_t, kTcpOptionSpace> out) noexcept {
    return strip_options(existing, out, is_ours);
}

OptionEdit strip_tfo_option(std::span<const uint8_t> existing,
                            std::span<uint8_t, kTcpOptionSpace> out) noexcept {
    OptionEdit e = strip_options(existing, out, is_tfo);
    e.dropped_tfo = e.status == WireStatus::Ok;
    return e;
}

WireStatus find_tfo_option(std::span<const uint8_t> options, TfoOptionView &out) noexcept {
    bool found = false;
    const TcpOptionWalk w = walk_tcp_options(options, [&](size_t off, uint8_t, uint8_t len) {
        const uint8_t *p = options.data() + off;
        if (found || !is_tfo(p, len)) return true;
        found = true;
        const size_t head = p[0] == kTcpOptFastOpen ? 2 : 4;  // kind, len (+ ExID)
        out.offset = off;
        out.length = len;
        out.cookie = {p + head, len - head};
        out.experimental = p[0] != kTcpOptFastOpen;
        return true;
    });
    if (!w.ok) return WireStatus::BadOption;
    if (!found) return WireStatus::NotPresent;
    // RFC 7413 §4.1.1: a cookie is 4 to 16 bytes; none is a cookie request.
    const size_t c = out.cookie.size();
    if (c != 0 && (c < 4 || c > 16)) return WireStatus::BadLength;
    return WireStatus::Ok;
}

size_t write_tfo_option(std::span<uint8_t> out, std::span<const uint8_t> cookie) noexcept {
    const size_t len = 2 + cookie.size();
    if ((cookie.size() != 0 && (cookie.size() < 4 || cookie.size() > 16)) || out.size() < len)
        return 0;
    out[0] = kTcpOptFastOpen;
    out[1] = static_cast<uint8_t>(len);
    if (!cookie.empty()) std::memcpy(out.data() + 2, cookie.data(), cookie.size());
    return len;
}

// --- token ---------------------------------------------------------------------------------------

size_t token_len(MsgType type, size_t claims_len) noexcept {
    return kTokenHeaderLen + claims_len + (type == MsgType::SynAck ? kMacLen : 0) +
           kTokenTrailerLen;
}

size_t write_token(std::span<uint8_t> out, MsgType type, std::span<const uint8_t, 16> nonce,
                   std::span<const uint8_t> claims, uint8_t **mac_slot) noexcept {
    if (type != MsgType::Syn && type != MsgType::SynAck) return 0;
    if (claims.empty() || claims.size() > kMaxClaimsOnWire) return 0;
    const size_t len = token_len(type, claims.size());
    ByteWriter w(out);
    w.u8(kVersion);
    w.u8(static_cast<uint8_t>(type));
    w.bytes(nonce);
    w.u16(static_cast<uint16_t>(claims.size()));
    w.bytes(claims);
    uint8_t *mac = nullptr;
    if (type == MsgType::SynAck) {
        mac = w.reserve(kMacLen);
        if (mac) std::memset(mac, 0, kMacLen);
    }
    w.u16(static_cast<uint16_t>(len));
    if (!w.ok()) return 0;
    if (mac_slot) *mac_slot = mac;
    return len;
}

WireStatus parse_token(std::span<const uint8_t> payload, TokenView &out) noexcept {
    if (payload.size() < kTokenHeaderLen + kTokenTrailerLen) return WireStatus::NotPresent;
    const size_t len = load_be16(payload.data() + payload.size() - kTokenTrailerLen);
    if (len > payload.size()) return WireStatus::Truncated;
    if (len < kTokenHeaderLen + kTokenTrailerLen + 1 || len > kMaxTokenLen)
        return WireStatus::BadLength;
    std::span<const uint8_t> t = payload.last(len);
    ByteReader r(t);
    uint8_t version = r.u8();
    uint8_t type = r.u8();
    if (version != kVersion) return WireStatus::BadVersion;
    if (type != uint8_t(MsgType::Syn) && type != uint8_t(MsgType::SynAck))
        return WireStatus::BadType;
    out = TokenView{};
    out.type = static_cast<MsgType>(type);
    out.nonce = r.bytes(16).data();
    size_t claims_len = r.u16();
    if (claims_len == 0 || claims_len > kMaxClaimsOnWire) return WireStatus::BadClaimsLength;
    if (token_len(out.type, claims_len) != len) return WireStatus::BadLength;
    out.claims = r.bytes(claims_len);
    if (out.type == MsgType::SynAck) out.mac = r.bytes(kMacLen).data();
    if (!r.ok())
        return WireStatus::Truncated;  // unreachable given the length check; kept as a guard
    out.token_len = len;
    out.data_len = payload.size() - len;
    return WireStatus::Ok;
}

// --- MAC inputs ----------------------------------------------------------------------------------

FlowBinding FlowBinding::ipv4(uint8_t proto, const uint8_t c[4], uint16_t cport, const uint8_t s[4],
                              uint16_t sport) noexcept {
    FlowBinding f;
    f.protocol = proto;
    f.family = 4;
    f.client_addr[10] = f.client_addr[11] = 0xff;
    f.server_addr[10] = f.server_addr[11] = 0xff;
    std::memcpy(&f.client_addr[12], c, 4);
    std::memcpy(&f.server_addr[12], s, 4);
    f.client_port = cport;
    f.server_port = sport;
    return f;
}

FlowBinding FlowBinding::ipv6(uint8_t proto, const uint8_t c[16], uint16_t cport,
                              const uint8_t s[16], uint16_t sport) noexcept {
    FlowBinding f;
    f.protocol = proto;
    f.family = 6;
    std::memcpy(f.client_addr.data(), c, 16);
    std::memcpy(f.server_addr.data(), s, 16);
    f.client_port = cport;
    f.server_port = sport;
    return f;
}

void build_mac_input(MacDirection dir, const FlowBinding &f, const HandshakeInputs &in,
                     std::span<uint8_t, kMacInputLen> out) noexcept {
    uint8_t *p = out.data();
    std::memcpy(p, kMacLabel, 8);
    p[8] = kVersion;
    p[9] = static_cast<uint8_t>(dir);
    p[10] = f.protocol;
    p[11] = f.family;
    std::memcpy(p + 12, f.client_addr.data(), 16);
    std::memcpy(p + 28, f.server_addr.data(), 16);
    store_be16(p + 44, f.client_port);
    store_be16(p + 46, f.server_port);
    std::memcpy(p + 48, in.client_nonce.data(), 16);
    std::memcpy(p + 64, in.server_nonce.data(), 16);
    std::memcpy(p + 80, in.client_claims_hash->data(), 32);
    std::memcpy(p + 112, in.server_claims_hash->data(), 32);
}

void HandshakeMacs::prepare(const HmacKey &key, const FlowBinding &flow, const HandshakeInputs &in,
                            HmacJob jobs[2]) noexcept {
    build_mac_input(MacDirection::ServerToClient, flow, in, synack_input);
    build_mac_input(MacDirection::ClientToServer, flow, in, ack_input);
    jobs[0] = HmacJob{&key, synack_input.data(), kMacInputLen, synack_mac.data(), kMacLen};
    jobs[1] = HmacJob{&key, ack_input.data(), kMacInputLen, ack_hmac.data(), 2 * kMacLen};
}

// --- UDP -----------------------------------------------------------------------------------------

size_t write_udp_ack(std::span<uint8_t> out, const uint8_t mac[kMacLen]) noexcept {
    if (out.size() < kUdpAckLen) return 0;
    out[0] = kVersion;
    out[1] = uint8_t(MsgType::Ack);
    std::memcpy(&out[2], mac, kMacLen);
    return kUdpAckLen;
}

size_t write_udp_reject(std::span<uint8_t> out, uint8_t reason,
                        std::span<const uint8_t, 16> nonce) noexcept {
    if (out.size() < kUdpRejectLen) return 0;
    out[0] = kVersion;
    out[1] = uint8_t(MsgType::Reject);
    out[2] = reason;
    std::memcpy(&out[3], nonce.data(), 16);
    return kUdpRejectLen;
}

size_t write_udp_reset(std::span<uint8_t> out, uint8_t reason) noexcept {
    if (out.size() < kUdpResetLen) return 0;
    out[0] = kVersion;
    out[1] = uint8_t(MsgType::Reset);
    out[2] = reason;
    return kUdpResetLen;
}

WireStatus parse_udp_message(std::span<const uint8_t> body, UdpMessageView &out) noexcept {
    if (body.size() < 2) return WireStatus::Truncated;
    if (body[0] != kVersion) return WireStatus::BadVersion;
    out = UdpMessageView{};
    switch (static_cast<MsgType>(body[1])) {
        case MsgType::Syn:
        case MsgType::SynAck: {
            WireStatus s = parse_token(body, out.token);
            if (s != WireStatus::Ok) return s == WireStatus::NotPresent ? WireStatus::Truncated : s;
            if (out.token.data_len != 0) return WireStatus::BadLength;  // body is exactly a token
            out.type = out.token.type;
            return WireStatus::Ok;
        }
        case MsgType::Ack:
            if (body.size() != kUdpAckLen) return WireStatus::BadLength;
            out.type = MsgType::Ack;
            out.mac = body.data() + 2;
            return WireStatus::Ok;
        case MsgType::Reject:
            if (body.size() != kUdpRejectLen) return WireStatus::BadLength;
            out.type = MsgType::Reject;
            out.reason = body[2];
            out.echoed_nonce = body.data() + 3;
            return WireStatus::Ok;
        case MsgType::Reset:
            if (body.size() != kUdpResetLen) return WireStatus::BadLength;
            out.type = MsgType::Reset;
            out.reason = body[2];
            return WireStatus::Ok;
        case MsgType::Confirm:  // TCP only
            break;
    }
    return WireStatus::BadType;
}

namespace {

size_t exp_option_len(size_t body_len) noexcept {
    // kind, len, ExID, body; the extended form adds a 16-bit length after len = 255.
    return 4 + body_len <= 254 ? 4 + body_len : 6 + body_len;
}

}  // namespace

size_t udp_surplus_len(size_t body_len, bool odd_start) noexcept {
    return (odd_start ? 1 : 0) + 2 + exp_option_len(body_len);
}

uint16_t udp_ocs(std::span<const uint8_t> surplus, bool odd_start) noexcept {
    const size_t start = odd_start ? 1 : 0;
    if (surplus.size() < start + 2) return 0;
    uint32_t sum = static_cast<uint32_t>(surplus.size());  // length pseudo-header
    for (size_t i = start + 2; i < surplus.size(); i += 2) {
        // Words are aligned to the OCS field, i.e. to the IP datagram.
        uint32_t hi = surplus[i];
        uint32_t lo = i + 1 < surplus.size() ? surplus[i + 1] : 0;
        sum += (hi << 8) | lo;
    }
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
    uint16_t ocs = static_cast<uint16_t>(~sum);
    return ocs == 0 ? 0xffff : ocs;
}

size_t write_udp_surplus(std::span<uint8_t> out, bool odd_start,
                         std::span<const uint8_t> body) noexcept {
    const size_t total = udp_surplus_len(body.size(), odd_start);
    if (out.size() < total || body.size() > 0xffff - 6) return 0;
    ByteWriter w(out.first(total));
    if (odd_start) w.u8(0);
    w.u16(0);  // OCS, filled below
    const size_t opt_len = exp_option_len(body.size());
    w.u8(kUdpOptExp);
    if (opt_len == 4 + body.size()) {
        w.u8(static_cast<uint8_t>(opt_len));
    } else {
        w.u8(255);
        w.u16(static_cast<uint16_t>(opt_len));
    }
    w.u16(kExId);
    w.bytes(body);
    if (!w.ok() || w.pos() != total) return 0;
    store_be16(out.data() + (odd_start ? 1 : 0), udp_ocs(out.first(total), odd_start));
    return total;
}

WireStatus parse_udp_surplus(std::span<const uint8_t> surplus, bool odd_start,
                             bool udp_checksum_zero, std::span<const uint8_t> &body) noexcept {
    const size_t start = odd_start ? 1 : 0;
    if (surplus.size() < start + 2) return WireStatus::NotPresent;
    const uint16_t ocs = load_be16(surplus.data() + start);
    if (ocs == 0) {
        if (!udp_checksum_zero) return WireStatus::BadChecksum;
    } else if (ocs != udp_ocs(surplus, odd_start)) {
        return WireStatus::BadChecksum;
    }
    bool found = false;
    size_t i = start + 2;
    while (i < surplus.size()) {
        const uint8_t kind = surplus[i];
        if (kind == kUdpOptEol) break;
        if (kind == kUdpOptNop) {
            ++i;
            continue;
        }
        if (i + 1 >= surplus.size()) return WireStatus::BadOption;
        size_t len = surplus[i + 1];
        size_t hdr = 2;
        if (len == 255) {
            if (i + 3 >= surplus.size()) return WireStatus::BadOption;
            len = load_be16(surplus.data() + i + 2);
            hdr = 4;
        }
        if (len < hdr || len > surplus.size() - i) return WireStatus::BadOption;
        if (kind == kUdpOptExp && len >= hdr + 2 && load_be16(surplus.data() + i + hdr) == kExId) {
            if (found) return WireStatus::Duplicate;
            found = true;
            body = surplus.subspan(i + hdr + 2, len - hdr - 2);
        } else if (kind >= 192) {
            // Unknown unsafe options (incl. UEXP 254) change how the datagram must be read;
            // RFC 9868 says drop it rather than deliver it.
            return WireStatus::UnsafeOption;
        }
        i += len;
    }
    return found ? WireStatus::Ok : WireStatus::NotPresent;
}

}  // namespace segwire::crypto::wire
