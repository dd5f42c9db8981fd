// The TCP side of the identity stage's adapter: the facts of a TCP segment, segwire's option and
// token edits, RSTs and B's confirmation (docs/protocol.md §4).
#include <cstring>

#include <rte_mbuf.h>

#include "dataplane/identity/adapter.hpp"
#include "dataplane/packet/build.hpp"

namespace segwire::dp::identity {

using crypto::wire::MsgType;
using crypto::wire::WireStatus;

namespace {

TcpOpt opt_fact(WireStatus ws, MsgType type) noexcept {
    if (ws == WireStatus::NotPresent) return TcpOpt::kNotOurs;
    if (ws != WireStatus::Ok) return TcpOpt::kMalformed;
    switch (type) {
        case MsgType::Syn:
            return TcpOpt::kSyn;
        case MsgType::SynAck:
            return TcpOpt::kSynAck;
        case MsgType::Ack:
            return TcpOpt::kAck;
        case MsgType::Confirm:
            return TcpOpt::kConfirm;
        default:
            return TcpOpt::kMalformed;  // find_tcp_option accepts TCP types only
    }
}

}  // namespace

// The facts of a TCP segment that may carry something for segwire: segwire's option (looked for
// only when the parser saw an RFC 6994 option), the token (SYN-flagged segments), and how they
// compare with the flow's handshake context.
void Stage::tcp_parse(Ev &e, Facts &fx) {
    Pkt &k = *e.k;
    const uint8_t fl = k.v.tcp_flags;
    fx.pkt.opt = TcpOpt::kNoExp;
    if (k.v.opt.exp_off) {
        const WireStatus ws = crypto::wire::find_tcp_option(tcp_options(k.m, k.v), e.ov);
        fx.pkt.opt = opt_fact(ws, e.ov.type);
    }
    const bool tok = (fl & kTcpSyn) && token_of(k, e.tok) == WireStatus::Ok;
    if (tok)
        fx.pkt.token = e.tok.type == MsgType::Syn      ? Token::kSyn
                       : e.tok.type == MsgType::SynAck ? Token::kSynAck
                                                       : Token::kMalformed;
    if (fx.pkt.token == Token::kSyn && k.arrival == kOutside)
        fx.pkt.nonce_seen = replayed_syn(e.tok.nonce, e.pos);
    const Flow &f = *e.f;
    // L4: R1 as TFO data in a SYN from a peer enforcer (read only where L4 may start).
    if ((fl & (kTcpSyn | kTcpAck)) == kTcpSyn && k.arrival == kOutside && k.v.payload_len &&
        f.auth == dp::Auth::kNew && !k.v.opt.exp_off)
        if ((fx.pkt.l4_rec = l4_syn_record(e)) == L4Rec::kR1)
            fx.pkt.nonce_seen = replayed_syn(e.tok.nonce, e.pos);
    fx.pkt.seq_data = k.v.payload_len || (fl & kTcpFin);
    if (f.hs == kNil) return;
    l4_facts(e, fx);
    const HandshakeCtx &x = hs_[f.hs];
    if (e.ov.mac && fx.pkt.opt == TcpOpt::kAck)
        fx.pkt.mac_ok = crypto::tag_equal(e.ov.mac, x.ack_mac, crypto::wire::kMacLen);
    if (e.ov.mac && fx.pkt.opt == TcpOpt::kConfirm)
        fx.pkt.mac_ok = crypto::tag_equal(e.ov.mac, x.confirm_mac, crypto::wire::kMacLen);
    if (fx.pkt.l4_rec == L4Rec::kR3)  // L4: R3's MAC_ack
        fx.pkt.mac_ok = crypto::tag_equal(e.tok.mac, x.ack_mac, crypto::wire::kMacLen);
    if (tok) {
        fx.pkt.nonce_client = crypto::tag_equal(e.tok.nonce, x.client_nonce, 16);
        fx.pkt.nonce_server = crypto::tag_equal(e.tok.nonce, x.server_nonce, 16);
    }
    if ((fl & (kTcpSyn | kTcpAck)) == (kTcpSyn | kTcpAck)) {
        fx.pkt.acks_syn = k.v.ack == x.client_isn + 1;
        // L4: a SYN-ACK may acknowledge R1 sent as SYN data (TFO) as well.
        if (f.auth == dp::Auth::kL4ClientSyn && l4_[f.hs].own_total)
            fx.pkt.acks_syn |= k.v.ack == l4_[f.hs].own_end;
        // Auto networks: a plain SYN-ACK from an address an enforcer hosts lost v1's option on
        // the way (docs/l4-mode.md "Modes").
        if (f.auth == dp::Auth::kClientSyn && k.arrival == kOutside && !k.v.opt.exp_off && st_ &&
            st_->policy) {
            const policy::AddressInfo pi = st_->policy->classify(addr_of(k.v.src, k.v.family));
            fx.pkt.auto_peer = (pi.flags & policy::kModeAuto) && pi.pu != policy::kNone &&
                               st_->hosting_of(pi.pu) == EnforcerState::kHostedElsewhere;
        }
    }
}

// The kEdit need: segwire's option and token on and off the segment in hand.
DropReason Stage::edit(Edit what, Ev &e) {
    Pkt &k = *e.k;
    const HandshakeCtx &x = hs_[e.f->hs];
    switch (what) {
        case Edit::kStrip:
            return strip_identity(k, 0) ? DropReason::None : DropReason::TokenMalformed;
        case Edit::kStripWithToken:
            return strip_identity(k, e.tok.token_len) ? DropReason::None
                                                      : DropReason::TokenMalformed;
        case Edit::kAddSynIdentity:
            return add_identity(k, MsgType::Syn, x.client_nonce, e.claims->blob, nullptr);
        case Edit::kAddSynAckIdentity:
            return add_identity(k, MsgType::SynAck, x.server_nonce, e.claims->blob, x.synack_mac);
        case Edit::kAddAckProof:
            return add_ack_proof(k, x.ack_mac) ? DropReason::None : DropReason::OptionSpace;
        case Edit::kStripTfo:
            return l4_strip_tfo(k);
        case Edit::kL4Syn:
            return l4_syn_edit(e);
        case Edit::kL4SynAckIn:
            return l4_synack_in(e);
        case Edit::kL4SynAckOut:
            return l4_synack_out(e);
        case Edit::kStripToken:
            return rewrite_tcp(k.m, k.v, tcp_options(k.m, k.v), static_cast<uint32_t>(e.tok.token_len),
                               {}, 65535, idr_->tx_csum[k.arrival ^ 1]) == RewriteStatus::Ok
                       ? DropReason::None
                       : DropReason::TokenMalformed;
        case Edit::kCount:
            break;
    }
    return DropReason::TokenMalformed;
}

// A policy cut: RSTs to both hosts, each as if its peer had sent it. No packet in hand: the flow's
// own addresses and ports and the MACs its first packet showed.
void Stage::cut_rsts(int32_t pos, Flow &f) {
    const FlowKey &key = flows_->key_at(pos);
    // Side a's host sits behind the port the flow's side-a packets arrive on.
    const uint8_t a_port = f.init_side == kSideA ? f.in_port : f.in_port ^ 1;
    for (uint8_t to : {kSideA, kSideB}) {
        const uint8_t out = to == kSideA ? a_port : a_port ^ 1;
        TcpSegment rst{
            f.ack_seen[to], f.ack_seen[to ^ 1], static_cast<uint8_t>(kTcpRst | kTcpAck), 0, {}};
        if ((f.parked & kL4Bit) && to != f.local_side) {
            // An L4 flow: the remote host's RST crosses the wire in wire numbers; its enforcer
            // shifts it back (docs/l4-mode.md "Cut and reset").
            const SeqShift &sh = shift_[static_cast<uint32_t>(pos)];
            rst.seq += sh.ins[to ^ 1];
            rst.ack += sh.ins[to];
        }
        rte_mbuf *r = build_tcp(idr_->pool, addressing_of(key, f.mac, to), rst, idr_->tx_csum[out]);
        if (!r) continue;
        ids_.resets_sent.add();
        tx_->push(r, out);
    }
}

// A refused segment picked up mid-stream: RSTs to both hosts, within the worker's budget (one
// token for the pair). Each carries exactly what its host expects next (RFC 5961): the receiver
// expects the segment's own sequence number, the sender the number it acknowledges. Without an ACK
// flag the sender's expectation is unknown: only the receiver is reset. No flow state is read:
// the flow entry was made by this very segment.
void Stage::midstream_rsts(const Pkt &k) {
    if (!midstream_.ready(0, now_tsc_)) {
        ids_.midstream_resets_suppressed.add();
        return;
    }
    midstream_.take(0, now_tsc_);
    ids_.midstream_resets.add();
    const uint32_t len = k.v.payload_len + ((k.v.tcp_flags & kTcpFin) ? 1u : 0u);
    rte_mbuf *r = build_tcp_reset(idr_->pool, k.m, k.v, false, k.v.seq, k.v.ack,
                                  (k.v.tcp_flags & kTcpAck) != 0, idr_->tx_csum[k.arrival ^ 1]);
    if (r) {
        ids_.resets_sent.add();
        tx_->push(r, k.arrival ^ 1);
    }
    if (!(k.v.tcp_flags & kTcpAck)) return;
    r = build_tcp_reset(idr_->pool, k.m, k.v, true, k.v.ack, k.v.seq + len, true,
                        idr_->tx_csum[k.arrival]);
    if (r) {
        ids_.resets_sent.add();
        tx_->push(r, k.arrival);
    }
}

// An RST addressed to the host on `to_side` (canonical side), as if its peer had sent it.
void Stage::send_reset(const Pkt &k, uint8_t to_side) {
    const Flow &f = flows_->at(k.pos);
    const bool to_source = to_side == k.side;
    uint32_t seq = f.ack_seen[to_side];
    uint32_t ack = f.ack_seen[to_side ^ 1];
    // Answering a bare SYN: seq 0 and an ACK of the SYN alone (never of data or token bytes).
    if (to_source && is_syn(k.v)) seq = 0, ack = k.v.seq + 1;
    const uint8_t out = to_source ? k.arrival : k.arrival ^ 1;
    rte_mbuf *r =
        build_tcp_reset(idr_->pool, k.m, k.v, to_source, seq, ack, true, idr_->tx_csum[out]);
    if (!r) return;
    ids_.resets_sent.add();
    tx_->push(r, out);
}

// The token at the end of a SYN's or SYN-ACK's payload.
WireStatus Stage::token_of(const Pkt &k, crypto::wire::TokenView &tok) const {
    return crypto::wire::parse_token(
        {rte_pktmbuf_mtod(k.m, const uint8_t *) + k.v.payload_off, k.v.payload_len}, tok);
}

// Adds the marker option and the token; the packet is untouched when it returns a reason (the
// caller decides whether that drops it or sends it on without identity, and counts it once).
DropReason Stage::add_identity(Pkt &k, MsgType type, const uint8_t nonce[16],
                               std::span<const uint8_t> claims, const uint8_t *mac) {
    uint8_t opt[crypto::wire::kMarkerOptLen];
    crypto::wire::write_tcp_option(opt, type);
    alignas(8) uint8_t out[crypto::wire::kTcpOptionSpace];
    // Only a SYN may lose a TFO option to make room: its data then waits for the handshake.
    crypto::wire::OptionEdit e = crypto::wire::add_tcp_option(
        tcp_options(k.m, k.v), opt, std::span<uint8_t, crypto::wire::kTcpOptionSpace>(out),
        type == MsgType::Syn);
    if (e.status != WireStatus::Ok) return DropReason::OptionSpace;
    uint8_t token[crypto::wire::kMaxTokenLen];
    uint8_t *slot = nullptr;
    size_t tl = crypto::wire::write_token(token, type, std::span<const uint8_t, 16>(nonce, 16),
                                          claims, &slot);
    if (!tl) return DropReason::TokenMalformed;
    if (slot && mac) std::memcpy(slot, mac, crypto::wire::kMacLen);
    RewriteStatus r = rewrite_tcp(k.m, k.v, std::span<const uint8_t>(out, e.length), 0,
                                  std::span<const uint8_t>(token, tl), idr_->mtu[k.arrival ^ 1],
                                  idr_->tx_csum[k.arrival ^ 1]);
    if (r != RewriteStatus::Ok)
        return r == RewriteStatus::TooBig ? DropReason::MtuExceeded : DropReason::OptionSpace;
    return DropReason::None;
}

bool Stage::strip_identity(Pkt &k, size_t token_len) {
    alignas(8) uint8_t out[crypto::wire::kTcpOptionSpace];
    crypto::wire::OptionEdit e = crypto::wire::strip_tcp_option(
        tcp_options(k.m, k.v), std::span<uint8_t, crypto::wire::kTcpOptionSpace>(out));
    if (e.status != WireStatus::Ok) return false;
    return rewrite_tcp(k.m, k.v, std::span<const uint8_t>(out, e.length),
                       static_cast<uint32_t>(token_len), {}, 65535,
                       idr_->tx_csum[k.arrival ^ 1]) == RewriteStatus::Ok;
}

bool Stage::add_ack_proof(Pkt &k, const uint8_t *mac) {
    uint8_t opt[crypto::wire::kAckOptLen];
    crypto::wire::write_tcp_option(opt, MsgType::Ack, mac);
    alignas(8) uint8_t out[crypto::wire::kTcpOptionSpace];
    crypto::wire::OptionEdit e = crypto::wire::add_tcp_option(
        tcp_options(k.m, k.v), opt, std::span<uint8_t, crypto::wire::kTcpOptionSpace>(out), false);
    if (e.status != WireStatus::Ok) return false;
    return rewrite_tcp(k.m, k.v, std::span<const uint8_t>(out, e.length), 0, {},
                       idr_->mtu[k.arrival ^ 1], idr_->tx_csum[k.arrival ^ 1]) == RewriteStatus::Ok;
}

// The server side's confirmation that it verified A's proof: a bare ACK from the server's address
// carrying the Confirm option, which A consumes (docs/protocol.md §4.3). `k` is the client
// segment that carried the proof; the confirmation takes its reverse direction.
void Stage::send_confirm(const Pkt &k, const uint8_t *mac) {
    alignas(4) uint8_t opt[24];
    crypto::wire::write_tcp_option(opt, MsgType::Confirm, mac);
    std::memset(opt + crypto::wire::kAckOptLen, 1, sizeof opt - crypto::wire::kAckOptLen);  // NOPs
    // seq: what the client expects next from the server; ack: up to this segment's start.
    rte_mbuf *r = build_tcp_control(idr_->pool, k.m, k.v, true, k.v.ack, k.v.seq, kTcpAck, 0xffff,
                                    opt, idr_->tx_csum[k.arrival]);
    if (!r) return;
    ids_.confirms_sent.add();
    tx_->push(r, k.arrival);
}

// The confirmation cache's key for a flow: its slot and creation time (a later flow in the same
// slot never finds an earlier flow's confirmation).
std::array<uint8_t, 8> Stage::confirm_key(int32_t pos) const {
    std::array<uint8_t, 8> ck;
    const uint32_t p = static_cast<uint32_t>(pos);
    const uint32_t c = static_cast<uint32_t>(flows_->at(pos).created_tsc);
    std::memcpy(ck.data(), &p, 4);
    std::memcpy(ck.data() + 4, &c, 4);
    return ck;
}

}  // namespace segwire::dp::identity
