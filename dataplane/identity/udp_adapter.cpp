// The UDP side of the identity stage's adapter (docs/protocol.md §9): the facts of a datagram,
// the control datagrams segwire sends (kept in the handshake context and copied for each
// retransmission) and the timer events of armed contexts.
#include <rte_mbuf.h>
#include <rte_udp.h>

#include <cstring>

#include "dataplane/identity/adapter.hpp"
#include "dataplane/identity/udp_machine.hpp"
#include "dataplane/packet/build.hpp"

namespace segwire::dp::identity {

using crypto::wire::MsgType;
using crypto::wire::UdpMessageView;
using crypto::wire::WireStatus;

namespace {

constexpr uint8_t kResetNoState = 1;
constexpr uint8_t kResetPolicyCut = 2;
constexpr uint8_t kRejectPolicy = 1, kRejectClaims = 2;

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

}  // namespace

// The facts of a UDP datagram: is it one of our control datagrams (UDP Length 8 and an EXP
// option in the surplus), and how does it compare with the flow's handshake context.
void Stage::udp_parse(Ev &e, Facts &fx) {
    const Pkt &k = *e.k;
    WireStatus ws = WireStatus::Ok;
    if (udp_control_of(k, e.msg, ws))
        fx.pkt.ctl = ws == WireStatus::Ok ? ctl_fact(e.msg.type) : UdpCtl::kMalformed;
    if (fx.pkt.ctl == UdpCtl::kSyn && k.arrival == kOutside)
        fx.pkt.nonce_seen = replayed_syn(e.msg.token.nonce, e.pos);
    const Flow &f = *e.f;
    if (f.hs == kNil) return;
    const HandshakeCtx &x = hs_[f.hs];
    // Whole milliseconds: a comparison with N ms is exactly `ticks >= N * ms_tsc`. (Only data
    // datagrams are timed against the kept control datagram: machine.hpp.)
    if (fx.pkt.ctl == UdpCtl::kNone || fx.pkt.ctl == UdpCtl::kReset)
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
        fx.pkt.nonce_client = crypto::tag_equal(nonce, x.client_nonce, 16);
        fx.pkt.nonce_server = crypto::tag_equal(nonce, x.server_nonce, 16);
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

// A policy cut of an authorized UDP flow with an identified peer: a RESET (reason 2, policy cut)
// to the peer's enforcer, from the local PU's address and port, built from the flow key (no
// packet in hand; Flow::mac for the Ethernet addresses, as the TCP cut's RSTs).
void Stage::cut_reset(int32_t pos, const Flow &f) {
    uint8_t body[crypto::wire::kUdpResetLen];
    const size_t bl = crypto::wire::write_udp_reset(body, kResetPolicyCut);
    uint8_t surplus[crypto::wire::kUdpResetLen + 16];
    const size_t sl = bl ? crypto::wire::write_udp_surplus(surplus, false, {body, bl}) : 0;
    if (!sl) return;
    const uint8_t peer_side = f.local_side ^ 1;
    // The peer's host sits behind the port its side's packets arrive on.
    const uint8_t out = peer_side == f.init_side ? f.in_port : f.in_port ^ 1;
    rte_mbuf *m = build_udp(idr_->pool, addressing_of(flows_->key_at(pos), f.mac, peer_side), {},
                            {surplus, sl}, idr_->tx_csum[out]);
    if (!m) return;
    m->port = port_id_[out];
    ids_.udp_resets_sent.add();
    tx_->push(m, out);
}

// Is this one of our control datagrams? (UDP Length 8 and a segwire EXP option in the surplus.)
// A surplus with a bad OCS is ignored, per RFC 9868: the datagram is then an ordinary empty one.
bool Stage::udp_control_of(const Pkt &k, UdpMessageView &msg, WireStatus &ws) const {
    if (k.v.proto != kProtoUdp || k.v.udp_len != 8 || k.v.fragment) return false;
    const uint32_t start = k.v.l4_off + 8u;
    if (start >= k.v.ip_end) return false;
    const uint8_t *d = rte_pktmbuf_mtod(k.m, const uint8_t *);
    const bool odd = ((start - k.v.l3_off) & 1u) != 0;
    const bool csum_zero = reinterpret_cast<const rte_udp_hdr *>(d + k.v.l4_off)->dgram_cksum == 0;
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
    const uint8_t out = to_source ? k.arrival : k.arrival ^ 1;
    rte_mbuf *m = build_udp(idr_->pool, addressing_of(k.m, k.v, to_source), {}, {surplus, sl},
                            idr_->tx_csum[out]);
    if (!m) return false;
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

}  // namespace segwire::dp::identity
