// The UDP side of the identity stage's adapter (docs/protocol.md §9): the facts of a datagram,
// the control datagrams segwire sends (kept in the handshake context and copied for each
// retransmission) and the timer events of armed contexts.
#include <rte_byteorder.h>
#include <rte_ip.h>
#include <rte_mbuf.h>

#include <cstring>

#include "dataplane/identity/adapter.hpp"
#include "dataplane/identity/udp_machine.hpp"

namespace segwire::dp::identity {

using crypto::wire::MsgType;
using crypto::wire::UdpMessageView;
using crypto::wire::WireStatus;

namespace {

constexpr uint8_t kResetNoState = 1;
constexpr uint8_t kRejectPolicy = 1, kRejectClaims = 2;

inline uint16_t rd16(const uint8_t *p) {
    return static_cast<uint16_t>(p[0] << 8 | p[1]);
}
inline void wr16(uint8_t *p, uint16_t v) {
    p[0] = static_cast<uint8_t>(v >> 8);
    p[1] = static_cast<uint8_t>(v);
}

UdpCtl ctl_fact(MsgType t) noexcept {
    switch (t) {
        case MsgType::Syn:
            return UdpCtl::kSyn;
        case MsgType::SynAck:
            return UdpCtl::kSynAck;
        case MsgType::Ack:
            return UdpCtl::kAck;
        case MsgType::Reject:
            return UdpCtl::kReject;
        case MsgType::Reset:
            return UdpCtl::kReset;
        default:
            return UdpCtl::kMalformed;  // parse_udp_message accepts UDP types only
    }
}

uint32_t whole_ms(uint64_t ticks, uint64_t ms_tsc) noexcept {
    const uint64_t ms = ticks / ms_tsc;
    return ms > UINT32_MAX ? UINT32_MAX : static_cast<uint32_t>(ms);
}

}  // namespace

// The facts of a UDP datagram: is it one of our control datagrams (UDP Length 8 and an EXP
// option in the surplus), and how does it compare with the flow's handshake context.
void Stage::udp_parse(Ev &e, Facts &fx) {
    const Pkt &k = *e.k;
    WireStatus ws = WireStatus::Ok;
    if (udp_control_of(k, e.msg, ws))
        fx.pkt.ctl = ws == WireStatus::Ok ? ctl_fact(e.msg.type) : UdpCtl::kMalformed;
    const Flow &f = *e.f;
    if (f.hs == kNil) return;
    const HandshakeCtx &x = hs_[f.hs];
    // Whole milliseconds: a comparison with N ms is exactly `ticks >= N * ms_tsc`.
    fx.since_send_ms = whole_ms(now_tsc_ - x.last_send_tsc, ms_tsc_);
    const uint8_t *nonce = nullptr;
    switch (fx.pkt.ctl) {
        case UdpCtl::kSyn:
        case UdpCtl::kSynAck:
            nonce = e.msg.token.nonce;
            break;
        case UdpCtl::kReject:
            nonce = e.msg.echoed_nonce;
            break;
        case UdpCtl::kAck:
            fx.pkt.mac_ok = crypto::tag_equal(e.msg.mac, x.ack_mac, crypto::wire::kMacLen);
            break;
        default:
            break;
    }
    if (nonce) {
        fx.pkt.nonce_client = std::memcmp(nonce, x.client_nonce, 16) == 0;
        fx.pkt.nonce_server = std::memcmp(nonce, x.server_nonce, 16) == 0;
    }
}

// The kSend need: the client's SYN or the server's SYN-ACK, kept in the context for re-sends.
SendAnswer Stage::send_handshake(UdpMsg msg, To to, Ev &e) {
    Flow &f = *e.f;
    HandshakeCtx &x = hs_[f.hs];
    uint8_t body[crypto::wire::kMaxTokenLen];
    uint8_t *slot = nullptr;
    size_t bl = 0;
    if (msg == UdpMsg::kSyn)
        bl = crypto::wire::write_token(
            body, MsgType::Syn, std::span<const uint8_t, 16>(x.client_nonce, 16), e.claims->blob);
    else
        bl = crypto::wire::write_token(body, MsgType::SynAck,
                                       std::span<const uint8_t, 16>(x.server_nonce, 16),
                                       e.claims->blob, &slot);
    if (!bl || (msg == UdpMsg::kSynAck && !slot)) return SendAnswer::kNoToken;
    if (slot) std::memcpy(slot, x.synack_mac, crypto::wire::kMacLen);
    return udp_send_ctl(*e.k, to == To::kSource, {body, bl}, f.hs, true) ? SendAnswer::kSent
                                                                         : SendAnswer::kNoMbuf;
}

// The SendUdp action: ACK (kept: a re-sent SYN-ACK is answered with a copy), REJECT, RESET.
void Stage::send_udp(UdpMsg msg, To to, uint8_t flags, Ev &e) {
    Flow &f = *e.f;
    const bool to_source = to == To::kSource;
    const bool keep = flags & kKeep;
    switch (msg) {
        case UdpMsg::kAck: {
            uint8_t body[crypto::wire::kUdpAckLen];
            const size_t bl = crypto::wire::write_udp_ack(body, hs_[f.hs].ack_mac);
            if (bl && udp_send_ctl(*e.k, to_source, {body, bl}, f.hs, keep))
                ids_.udp_ack_sent.add();
            return;
        }
        case UdpMsg::kReject: {
            // Echoes the nonce of the message refused: the context's server nonce, or the token's.
            const uint8_t *nonce =
                (flags & kEchoServerNonce) ? hs_[f.hs].server_nonce : e.msg.token.nonce;
            uint8_t body[crypto::wire::kUdpRejectLen];
            const size_t bl = crypto::wire::write_udp_reject(
                body, (flags & kReasonClaims) ? kRejectClaims : kRejectPolicy,
                std::span<const uint8_t, 16>(nonce, 16));
            if (bl && udp_send_ctl(*e.k, to_source, {body, bl}, 0, false))
                ids_.udp_rejects_sent.add();
            return;
        }
        case UdpMsg::kReset: {
            uint8_t body[crypto::wire::kUdpResetLen];
            const size_t bl = crypto::wire::write_udp_reset(body, kResetNoState);
            if (bl && udp_send_ctl(*e.k, to_source, {body, bl}, f.hs, keep))
                ids_.udp_resets_sent.add();
            return;
        }
        case UdpMsg::kSyn:
        case UdpMsg::kSynAck:
        case UdpMsg::kCount:
            return;
    }
}

// The timer scan reached armed context h.
void Stage::timer_event(uint32_t h) {
    HandshakeCtx &x = hs_[h];
    Ev &e = ev_;
    e.begin(nullptr, x.pos, &flows_->at(x.pos), kProtoUdp);
    e.timer_hs = h;
    Facts fx;
    fx.timer_stale = !flows_->in_use(static_cast<uint32_t>(x.pos)) || e.f->hs != h;
    fx.elapsed_ms = whole_ms(now_tsc_ - x.started_tsc, ms_tsc_);
    fx.tries = x.tries;
    run(udp::step, Event{EventKind::kTimer, BatchOp::kClientCheckSynAck}, fx, e);
}

// Is this one of our control datagrams? (UDP Length 8 and a segwire EXP option in the surplus.)
// A surplus with a bad OCS is ignored, per RFC 9868: the datagram is then an ordinary empty one.
bool Stage::udp_control_of(const Pkt &k, UdpMessageView &msg, WireStatus &ws) const {
    if (k.v.proto != kProtoUdp || k.v.udp_len != 8 || k.v.fragment) return false;
    const uint32_t start = k.v.l4_off + 8u;
    if (start >= k.v.ip_end) return false;
    const uint8_t *d = rte_pktmbuf_mtod(k.m, const uint8_t *);
    const bool odd = ((start - k.v.l3_off) & 1u) != 0;
    const bool csum_zero = rd16(d + k.v.l4_off + 6) == 0;
    std::span<const uint8_t> body;
    ws = crypto::wire::parse_udp_surplus({d + start, k.v.ip_end - start}, odd, csum_zero, body);
    if (ws == WireStatus::NotPresent || ws == WireStatus::BadChecksum) return false;
    if (ws == WireStatus::Ok) ws = crypto::wire::parse_udp_message(body, msg);
    return true;
}

// Builds a control datagram on the flow's tuple from the packet in hand (its Ethernet/VLAN header
// is reused; `to_source` answers its sender) and sends it. With `keep`, the datagram is kept in
// handshake context `hs` and a copy is sent, so retransmissions are copies of the same bytes.
bool Stage::udp_send_ctl(Pkt &k, bool to_source, std::span<const uint8_t> body, uint32_t hs,
                         bool keep) {
    uint8_t surplus[crypto::wire::kMaxTokenLen + 16];
    // UDP Length 8 keeps the surplus at an even offset: no pad byte.
    const size_t sl = crypto::wire::write_udp_surplus(surplus, false, body);
    if (!sl) return false;
    rte_mbuf *m = rte_pktmbuf_alloc(idr_->pool);
    if (!m) return false;
    const bool v6 = k.v.family == 6;
    const uint16_t l2 = k.v.l3_off, l3 = v6 ? 40 : 20;
    const uint32_t total = l2 + l3 + 8u + static_cast<uint32_t>(sl);
    auto *f = reinterpret_cast<uint8_t *>(rte_pktmbuf_append(m, static_cast<uint16_t>(total)));
    if (!f) {
        rte_pktmbuf_free(m);
        return false;
    }
    const uint8_t *src = rte_pktmbuf_mtod(k.m, const uint8_t *);
    std::memcpy(f, src, l2);
    if (to_source) {
        std::memcpy(f, src + 6, 6);
        std::memcpy(f + 6, src, 6);
    }
    const IpAddr &sa = to_source ? k.v.dst : k.v.src;
    const IpAddr &da = to_source ? k.v.src : k.v.dst;
    const uint16_t sp = to_source ? k.v.dport : k.v.sport;
    const uint16_t dp = to_source ? k.v.sport : k.v.dport;
    uint8_t *ip = f + l2;
    uint8_t *udp = ip + l3;
    // Pseudo-header + UDP header, for the checksum (it covers UDP Length bytes only, RFC 9868).
    uint8_t ph[48];
    size_t phl;
    if (v6) {
        std::memset(ip, 0, 40);
        ip[0] = 0x60;
        wr16(ip + 4, static_cast<uint16_t>(8 + sl));
        ip[6] = kProtoUdp;
        ip[7] = 64;
        std::memcpy(ip + 8, sa.b, 16);
        std::memcpy(ip + 24, da.b, 16);
        std::memset(ph, 0, 40);
        std::memcpy(ph, sa.b, 16);
        std::memcpy(ph + 16, da.b, 16);
        ph[35] = 8;
        ph[39] = kProtoUdp;
        phl = 40;
    } else {
        std::memset(ip, 0, 20);
        ip[0] = 0x45;
        wr16(ip + 2, static_cast<uint16_t>(20 + 8 + sl));
        wr16(ip + 6, 0x4000);  // DF
        ip[8] = 64;
        ip[9] = kProtoUdp;
        std::memcpy(ip + 12, sa.b, 4);
        std::memcpy(ip + 16, da.b, 4);
        const uint16_t c = rte_ipv4_cksum(reinterpret_cast<const rte_ipv4_hdr *>(ip));
        std::memcpy(ip + 10, &c, 2);
        std::memcpy(ph, sa.b, 4);
        std::memcpy(ph + 4, da.b, 4);
        ph[8] = 0;
        ph[9] = kProtoUdp;
        wr16(ph + 10, 8);
        phl = 12;
    }
    wr16(udp, sp);
    wr16(udp + 2, dp);
    wr16(udp + 4, 8);
    wr16(udp + 6, 0);
    std::memcpy(ph + phl, udp, 8);
    uint16_t c = static_cast<uint16_t>(~rte_raw_cksum(ph, phl + 8));
    if (c == 0) c = 0xffff;
    std::memcpy(udp + 6, &c, 2);
    std::memcpy(udp + 8, surplus, sl);

    const uint8_t out = to_source ? k.arrival : k.arrival ^ 1;
    m->port = port_id_[out];
    if (!keep) {
        tx_->push(m, out);
        return true;
    }
    HandshakeCtx &x = hs_[hs];
    if (x.ctl) rte_pktmbuf_free(x.ctl);
    x.ctl = m;
    x.ctl_out = out;
    x.last_send_tsc = now_tsc_;
    if (rte_mbuf *copy = rte_pktmbuf_copy(m, idr_->pool, 0, UINT32_MAX)) tx_->push(copy, out);
    return true;
}

void Stage::udp_resend(uint32_t hs) {
    HandshakeCtx &x = hs_[hs];
    if (!x.ctl) return;
    x.last_send_tsc = now_tsc_;
    if (rte_mbuf *copy = rte_pktmbuf_copy(x.ctl, idr_->pool, 0, UINT32_MAX)) {
        ids_.udp_retransmits.add();
        tx_->push(copy, x.ctl_out);
    }
}

void Stage::udp_arm(uint32_t hs, int32_t pos) {
    HandshakeCtx &x = hs_[hs];
    x.armed = true;
    x.pos = pos;
    x.tries = 0;
    x.started_tsc = now_tsc_;
    if (!x.listed) {
        x.listed = true;
        udp_timers_.push_back(hs);  // capacity reserved for every context: never reallocates
    }
}

void Stage::udp_timers() {
    for (size_t i = 0; i < udp_timers_.size();) {
        const uint32_t h = udp_timers_[i];
        if (!hs_[h].armed) {
            hs_[h].listed = false;
            udp_timers_[i] = udp_timers_.back();
            udp_timers_.pop_back();
            continue;
        }
        timer_event(h);
        ++i;
    }
}

}  // namespace segwire::dp::identity
