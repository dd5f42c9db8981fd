// The UDP identity handshake (docs/protocol.md §9, docs/handshake.md "UDP"). Control datagrams
// travel on the flow's own 5-tuple with UDP Length 8 and the message in the RFC 9868 surplus
// area; the enforcers consume them, so end hosts only ever see application datagrams. The
// client-side enforcer holds the PU's datagrams until the server side has verified its identity
// and both policies agree; lost control datagrams are retransmitted from a copy kept in the
// handshake context, driven by a timer scan in housekeeping (no per-packet timer work).
#include <rte_byteorder.h>
#include <rte_ip.h>
#include <rte_mbuf.h>

#include <cstring>

#include "dataplane/worker/worker.hpp"

namespace segwire::dp {

using crypto::wire::MsgType;
using crypto::wire::UdpMessageView;
using crypto::wire::WireStatus;
using policy::Direction;
using policy::Verdict;

namespace {

constexpr uint8_t kInBatch = 2;  // Flow::parked bit, as in tcp_identity.cpp
// Client: retransmit the SYN 200, 400 and 800 ms after the first one; no SYN-ACK 1.4 s after it
// means the peer has no enforcer and the ACL decides.
constexpr uint32_t kSynScheduleMs[4] = {200, 400, 800, 1400};
constexpr uint32_t kServerWaitMs = 1400;   // server: give up on the ACK
constexpr uint32_t kSynAckResendMs = 200;  // server: at most one SYN-ACK re-send per 200 ms
constexpr uint32_t kResetEveryMs = 1000;   // one RESET per flow per second
constexpr uint32_t kResetHoldMs = 1400;    // a datagram answered with RESET waits this long
constexpr uint8_t kResetNoState = 1;
constexpr uint8_t kRejectPolicy = 1, kRejectClaims = 2;
constexpr uint32_t kPlainPeerS = 60;
// An authorized client keeps its ACK this long to answer a re-sent SYN-ACK (B re-sends for at most
// kServerWaitMs), then the handshake context goes back to the pool.
constexpr uint32_t kAckKeepMs = 3000;

inline uint16_t rd16(const uint8_t *p) {
    return static_cast<uint16_t>(p[0] << 8 | p[1]);
}
inline void wr16(uint8_t *p, uint16_t v) {
    p[0] = static_cast<uint8_t>(v >> 8);
    p[1] = static_cast<uint8_t>(v);
}

}  // namespace

// Is this one of our control datagrams? (UDP Length 8 and a segwire EXP option in the surplus.)
// A surplus with a bad OCS is ignored, per RFC 9868: the datagram is then an ordinary empty one.
bool Worker::udp_control_of(const Pkt &k, UdpMessageView &msg, WireStatus &ws) const {
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
bool Worker::udp_send_ctl(Pkt &k, bool to_source, std::span<const uint8_t> body, uint32_t hs,
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
    m->port = s_.port_id[out];
    if (!keep) {
        enqueue_tx(m, out);
        return true;
    }
    HandshakeCtx &x = hs_[hs];
    if (x.ctl) rte_pktmbuf_free(x.ctl);
    x.ctl = m;
    x.ctl_out = out;
    x.last_send_tsc = now_tsc_;
    if (rte_mbuf *copy = rte_pktmbuf_copy(m, idr_->pool, 0, UINT32_MAX)) enqueue_tx(copy, out);
    return true;
}

void Worker::udp_resend(uint32_t hs) {
    HandshakeCtx &x = hs_[hs];
    if (!x.ctl) return;
    x.last_send_tsc = now_tsc_;
    if (rte_mbuf *copy = rte_pktmbuf_copy(x.ctl, idr_->pool, 0, UINT32_MAX)) {
        ids_.udp_retransmits.add();
        enqueue_tx(copy, x.ctl_out);
    }
}

void Worker::udp_arm(uint32_t hs, int32_t pos) {
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

void Worker::drop_held(Flow &f, DropReason why) {
    while (rte_mbuf *m = holds_.pop(f.hold)) {
        stats_.drops[static_cast<size_t>(why)].add();
        rte_pktmbuf_free(m);
    }
}

void Worker::udp_restart(Pkt &k) {
    restart_flow(flows_.at(k.pos));
    ids_.udp_handshakes_restarted.add();
}

// Refuses the handshake: REJECT echoing the nonce of the message refused, held data dropped.
void Worker::udp_reject(Pkt &k, const uint8_t nonce[16], bool to_source) {
    Flow &f = flows_.at(k.pos);
    uint8_t body[crypto::wire::kUdpRejectLen];
    const size_t bl = crypto::wire::write_udp_reject(body, f.peer ? kRejectPolicy : kRejectClaims,
                                                     std::span<const uint8_t, 16>(nonce, 16));
    if (bl && udp_send_ctl(k, to_source, {body, bl}, 0, false)) ids_.udp_rejects_sent.add();
    udp_refused(k);
}

// The flow is refused (by us or by the peer's REJECT): held data dropped, the control datagram
// in hand consumed.
void Worker::udp_refused(Pkt &k) {
    Flow &f = flows_.at(k.pos);
    f.auth = Auth::kRejected;
    ids_.rejected.add();
    drop_held(f, DropReason::FlowRejected);
    free_hs(f);
    ids_.udp_control_consumed.add();
    rte_pktmbuf_free(k.m);
}

// ---------------------------------------------------------------------------------------------
// classification of a new UDP flow

void Worker::udp_classify(Pkt &k, uint32_t pu, uint8_t peer_flags, Direction dir) {
    Flow &f = flows_.at(k.pos);
    f.init_side = k.side;  // whoever speaks first (after a restart too) initiates
    UdpMessageView msg;
    WireStatus ws = WireStatus::Ok;
    if (k.arrival == kOutside && udp_control_of(k, msg, ws)) {
        if (ws != WireStatus::Ok) {
            drop(k, DropReason::TokenMalformed);
            return;
        }
        if (msg.type == MsgType::Syn) {
            udp_server_syn(k, msg, pu);
            return;
        }
        // SYN-ACK, ACK, REJECT or RESET for a flow we hold no state for (idled out, restarted).
        if (msg.type == MsgType::Reset) ids_.udp_resets_received.add();
        drop(k, DropReason::UdpControl);
        return;
    }
    if (k.arrival == kInside) {
        f.role = kRoleClient;
        if (peer_flags & policy::kManagedUdp) {
            udp_start_client(k, pu, false);
            return;
        }
        decide_without_identity(k, pu, dir);
        return;
    }
    f.role = kRoleServer;
    if (peer_flags & policy::kManagedUdp) {
        // A managed peer's datagram without a handshake: its enforcer thinks the flow is
        // authorized and we forgot it (or the peer has no enforcer): RESET, and hold it a while.
        udp_send_reset(k, pu);
        return;
    }
    decide_without_identity(k, pu, dir);
}

// Client role: the first datagram (held) triggers a SYN with the PU's claims and a fresh nonce.
// `to_source`: restarting on the peer's RESET, which is then consumed instead of held.
void Worker::udp_start_client(Pkt &k, uint32_t pu, bool to_source) {
    Flow &f = flows_.at(k.pos);
    const IpAddr &peer = to_source ? k.v.src : k.v.dst;
    std::array<uint8_t, 16> pk;
    std::memcpy(pk.data(), peer.b, 16);
    const crypto::SignedClaims *c = st_->claims_of(pu);
    if (!to_source && (!c || plain_peers_->find(pk, now_unix_))) {
        // A peer known to have no enforcer, or no claims to send: the ACL decides now.
        decide_without_identity(k, pu, Direction::kOutgoing);
        return;
    }
    if (!c) {
        drop(k, DropReason::UdpControl);
        return;
    }
    free_hs(f);  // a RESET-pending context becomes this handshake's
    const uint32_t h = alloc_hs();
    if (h == kNil) {
        drop(k, DropReason::SlowpathBusy);
        return;
    }
    f.hs = h;
    f.role = kRoleClient;
    f.init_side = to_source ? k.side ^ 1 : k.side;
    HandshakeCtx &x = hs_[h];
    x.local_pu = pu;
    x.client_hash = c->hash;
    x.local_pub = c->claims.ephemeral_pub;
    uint8_t body[crypto::wire::kMaxTokenLen];
    size_t bl = 0;
    if (nonces_->next(std::span<uint8_t, 16>(x.client_nonce, 16)))
        bl = crypto::wire::write_token(body, MsgType::Syn,
                                       std::span<const uint8_t, 16>(x.client_nonce, 16), c->blob);
    if (!bl || !udp_send_ctl(k, to_source, {body, bl}, h, true)) {
        free_hs(f);
        drop(k, DropReason::SlowpathBusy);
        return;
    }
    f.auth = Auth::kUdpClientSyn;
    ids_.udp_syn_sent.add();
    udp_arm(h, k.pos);
    if (to_source) {
        ids_.udp_control_consumed.add();
        rte_pktmbuf_free(k.m);
        return;
    }
    if (!holds_.push(f.hold, k.m)) drop(k, DropReason::HoldFull);
}

// Server role: a SYN. Verify the claims (slow path on a cache miss), apply the incoming rules,
// and have the SYN-ACK's MAC computed in this burst's HMAC batch.
void Worker::udp_server_syn(Pkt &k, const UdpMessageView &msg, uint32_t pu) {
    Flow &f = flows_.at(k.pos);
    const crypto::wire::TokenView &tok = msg.token;
    uint64_t key;
    const PeerIdentity *peer = verified_peer(k, tok, key, false);
    if (!peer) return;  // parked for the slow path, dropped, or refused
    f.role = kRoleServer;
    f.init_side = k.side;
    set_peer(f, peer);
    f.decided_version = st_->policy->version();
    ids_.syn_verified.add();
    const policy::Decision d = decisions_->decide(*st_->policy, pu, Direction::kIncoming,
                                                  peer->tags, kProtoUdp, k.v.dport);
    if (d.action != Verdict::kAccept) {
        record(k, f, d, DropReason::PolicyReject, peer);
        udp_reject(k, tok.nonce, true);
        return;
    }
    const crypto::SignedClaims *c = st_->claims_of(pu);
    if (!c) {
        drop(k, DropReason::NoSessionKey);
        return;
    }
    const crypto::HmacKey *hk =
        session_key(k, c->claims.ephemeral_pub, peer->claims.ephemeral_pub(), crypto::Role::Server);
    if (!hk) return;
    // A pending RESET or an older handshake is replaced (held data stays held).
    HandshakeCtx *hx = start_server_hs(k, tok, *peer, pu);
    if (!hx) return;
    HandshakeCtx &x = *hx;
    x.server_hash = c->hash;
    x.local_pub = c->claims.ephemeral_pub;
    if (!nonces_->next(std::span<uint8_t, 16>(x.server_nonce, 16))) {
        free_hs(f);
        drop(k, DropReason::SlowpathBusy);
        return;
    }
    queue_macs(k, BatchOp::kUdpServerSignSynAck, peer, d, *hk);
}

// A datagram from a managed peer for a flow without state: RESET (reason "no state") and hold it.
void Worker::udp_send_reset(Pkt &k, uint32_t pu) {
    Flow &f = flows_.at(k.pos);
    free_hs(f);  // a context left by a handshake that could not send its SYN-ACK
    const uint32_t h = alloc_hs();
    if (h == kNil) {
        drop(k, DropReason::SlowpathBusy);
        return;
    }
    f.hs = h;
    hs_[h].local_pu = pu;
    uint8_t body[crypto::wire::kUdpResetLen];
    const size_t bl = crypto::wire::write_udp_reset(body, kResetNoState);
    if (bl && udp_send_ctl(k, true, {body, bl}, h, true)) ids_.udp_resets_sent.add();
    f.auth = Auth::kUdpResetSent;
    udp_arm(h, k.pos);
    if (!holds_.push(f.hold, k.m)) drop(k, DropReason::HoldFull);
}

// ---------------------------------------------------------------------------------------------
// the states

void Worker::udp_client_syn_state(Pkt &k) {
    Flow &f = flows_.at(k.pos);
    UdpMessageView msg;
    WireStatus ws = WireStatus::Ok;
    if (k.arrival == kInside || !udp_control_of(k, msg, ws)) {
        // The PU's datagrams (and anything the server sends early) wait for the verdict, in order.
        if (!holds_.push(f.hold, k.m)) drop(k, DropReason::HoldFull);
        return;
    }
    if (ws != WireStatus::Ok) {
        drop(k, DropReason::TokenMalformed);
        return;
    }
    HandshakeCtx &x = hs_[f.hs];
    if (msg.type == MsgType::Reject) {
        if (std::memcmp(msg.echoed_nonce, x.client_nonce, 16) != 0) {
            drop(k, DropReason::UdpControl);  // not about our SYN: forged or stale
            return;
        }
        // B refused us and reports it (with our identity and its rule), as with TCP's RST.
        udp_refused(k);
        return;
    }
    if (msg.type != MsgType::SynAck) {
        drop(k, DropReason::UdpControl);
        return;
    }
    const crypto::wire::TokenView &tok = msg.token;
    uint64_t key;
    const PeerIdentity *peer = verified_peer(k, tok, key, false);
    if (!peer) return;
    client_check_synack(k, BatchOp::kUdpClientCheckSynAck, peer, tok.nonce);
}

void Worker::udp_server_synack_state(Pkt &k) {
    Flow &f = flows_.at(k.pos);
    HandshakeCtx &x = hs_[f.hs];
    UdpMessageView msg;
    WireStatus ws = WireStatus::Ok;
    if (k.arrival == kInside) {
        if (!holds_.push(f.hold, k.m)) drop(k, DropReason::HoldFull);
        return;
    }
    if (!udp_control_of(k, msg, ws)) {
        // The client's data is already coming: our SYN-ACK or its ACK was lost. Hold the data
        // and re-send the SYN-ACK (at most every 200 ms); the client answers with the same ACK.
        if (!holds_.push(f.hold, k.m)) drop(k, DropReason::HoldFull);
        if (now_tsc_ - x.last_send_tsc >= kSynAckResendMs * ms_tsc_) udp_resend(f.hs);
        return;
    }
    if (ws != WireStatus::Ok) {
        drop(k, DropReason::TokenMalformed);
        return;
    }
    switch (msg.type) {
        case MsgType::Syn:
            if (std::memcmp(msg.token.nonce, x.client_nonce, 16) == 0) {
                udp_resend(f.hs);  // a duplicate SYN gets the same SYN-ACK
                ids_.udp_control_consumed.add();
                rte_pktmbuf_free(k.m);
                return;
            }
            udp_server_syn(k, msg, x.local_pu);  // a new nonce replaces the handshake
            return;
        case MsgType::Ack:
            if (!crypto::tag_equal(msg.mac, x.ack_mac, crypto::wire::kMacLen)) {
                record(k, f, policy::Decision{}, DropReason::MacMismatch, nullptr);
                drop(k, DropReason::MacMismatch);
                return;
            }
            ids_.ack_proofs_verified.add();
            ids_.authorized.add();
            f.auth = Auth::kAllowed;
            free_hs(f);
            ids_.udp_control_consumed.add();
            rte_pktmbuf_free(k.m);
            release_held(f);
            return;
        case MsgType::Reject:
            if (std::memcmp(msg.echoed_nonce, x.server_nonce, 16) != 0) break;
            udp_refused(k);  // the client side's outgoing rules refused us
            return;
        default:
            break;
    }
    drop(k, DropReason::UdpControl);
}

void Worker::udp_reset_sent_state(Pkt &k) {
    Flow &f = flows_.at(k.pos);
    HandshakeCtx &x = hs_[f.hs];
    if (k.arrival == kInside) {
        // Our PU talks on the flow: it is the client after all. Handshake now; what the peer sent
        // stays held and is released (or dropped) with the verdict.
        udp_start_client(k, x.local_pu, false);
        return;
    }
    UdpMessageView msg;
    WireStatus ws = WireStatus::Ok;
    if (!udp_control_of(k, msg, ws)) {
        if (!holds_.push(f.hold, k.m)) drop(k, DropReason::HoldFull);
        if (now_tsc_ - x.last_send_tsc >= kResetEveryMs * ms_tsc_) {
            udp_resend(f.hs);
            ids_.udp_resets_sent.add();
        }
        return;
    }
    if (ws != WireStatus::Ok) {
        drop(k, DropReason::TokenMalformed);
        return;
    }
    if (msg.type == MsgType::Syn) {
        udp_server_syn(k, msg, x.local_pu);
        return;
    }
    drop(k, DropReason::UdpControl);
}

// Control datagrams on a decided flow (kAllowed / kRejected).
void Worker::udp_allowed_control(Pkt &k) {
    Flow &f = flows_.at(k.pos);
    UdpMessageView msg;
    WireStatus ws = WireStatus::Ok;
    if (k.arrival == kInside || !udp_control_of(k, msg, ws)) {
        if (f.auth == Auth::kAllowed)
            forward(k);
        else
            drop(k, DropReason::FlowRejected);
        return;
    }
    if (ws != WireStatus::Ok) {
        drop(k, DropReason::TokenMalformed);
        return;
    }
    const FlowKey &key = flows_.key_at(k.pos);
    const uint32_t pu =
        st_->policy->find_pu(addr_of(f.local_side == kSideA ? key.a : key.b, key.family));
    switch (msg.type) {
        case MsgType::Syn:
            // The peer's enforcer starts over (it restarted, or its state idled out).
            udp_restart(k);
            udp_server_syn(k, msg, pu);
            return;
        case MsgType::SynAck:
            // Our ACK was lost: the server side re-sent its SYN-ACK. Same ACK again.
            if (f.hs != kNil && f.role == kRoleClient &&
                std::memcmp(msg.token.nonce, hs_[f.hs].server_nonce, 16) == 0) {
                udp_resend(f.hs);
                ids_.udp_control_consumed.add();
                rte_pktmbuf_free(k.m);
                return;
            }
            break;
        case MsgType::Reset:
            ids_.udp_resets_received.add();
            if (f.auth == Auth::kAllowed && f.role == kRoleClient && pu != policy::kNone) {
                // The server side forgot the flow: a fresh handshake (cached claims and session
                // key, so HMACs only); new datagrams are held until it completes.
                udp_restart(k);
                udp_start_client(k, pu, true);
                return;
            }
            if (f.auth == Auth::kAllowed) udp_restart(k);  // the client side re-handshakes
            ids_.udp_control_consumed.add();
            rte_pktmbuf_free(k.m);
            return;
        default:
            break;
    }
    ids_.udp_control_consumed.add();
    rte_pktmbuf_free(k.m);
}

// After this burst's HMAC batch: sign the server's SYN-ACK, or check the client's.
void Worker::udp_finish_op(BatchOp &op) {
    Pkt &k = op.k;
    Flow &f = flows_.at(k.pos);
    HandshakeCtx &x = hs_[f.hs];
    if (op.op == BatchOp::kUdpServerSignSynAck) {
        const crypto::SignedClaims *c = st_->claims_of(x.local_pu);
        uint8_t body[crypto::wire::kMaxTokenLen];
        uint8_t *slot = nullptr;
        size_t bl = 0;
        if (c && c->hash == x.server_hash)
            bl = crypto::wire::write_token(body, MsgType::SynAck,
                                           std::span<const uint8_t, 16>(x.server_nonce, 16),
                                           c->blob, &slot);
        if (!bl || !slot) {
            drop(k, DropReason::NoSessionKey);
            return;
        }
        std::memcpy(slot, x.synack_mac, crypto::wire::kMacLen);
        if (!udp_send_ctl(k, true, {body, bl}, f.hs, true)) {
            drop(k, DropReason::SlowpathBusy);
            return;
        }
        ids_.udp_synack_sent.add();
        f.auth = Auth::kUdpServerSynAck;
        udp_arm(f.hs, k.pos);
        record(k, f, op.decision, DropReason::None, op.peer);
        ids_.udp_control_consumed.add();
        rte_pktmbuf_free(k.m);
        return;
    }
    // Client: MAC_sa proves the server side holds the session key and saw our nonce.
    UdpMessageView msg;
    WireStatus ws = WireStatus::Ok;
    if (!udp_control_of(k, msg, ws) || ws != WireStatus::Ok || msg.type != MsgType::SynAck ||
        !crypto::tag_equal(msg.token.mac, x.synack_mac, crypto::wire::kMacLen)) {
        // A forged or corrupted SYN-ACK does not end the handshake: keep waiting for the real one.
        record(k, f, policy::Decision{}, DropReason::MacMismatch, op.peer);
        drop(k, DropReason::MacMismatch);
        return;
    }
    ids_.synack_verified.add();
    f.decided_version = st_->policy->version();
    if (op.decision.action != Verdict::kAccept) {
        record(k, f, op.decision, DropReason::PolicyReject, op.peer);
        udp_reject(k, x.server_nonce, true);
        return;
    }
    uint8_t body[crypto::wire::kUdpAckLen];
    const size_t bl = crypto::wire::write_udp_ack(body, x.ack_mac);
    // The ACK is kept: a re-sent SYN-ACK (our ACK lost) is answered with a copy.
    if (bl && udp_send_ctl(k, true, {body, bl}, f.hs, true)) ids_.udp_ack_sent.add();
    udp_arm(f.hs, k.pos);  // until kAckKeepMs
    record(k, f, op.decision, DropReason::None, op.peer);
    f.auth = Auth::kAllowed;
    ids_.authorized.add();
    ids_.udp_control_consumed.add();
    rte_pktmbuf_free(k.m);
    release_held(f);
}

// ---------------------------------------------------------------------------------------------
// timers: a scan of the armed handshake contexts, from housekeeping

void Worker::udp_timers() {
    for (size_t i = 0; i < udp_timers_.size();) {
        const uint32_t h = udp_timers_[i];
        if (!hs_[h].armed) {
            hs_[h].listed = false;
            udp_timers_[i] = udp_timers_.back();
            udp_timers_.pop_back();
            continue;
        }
        udp_timeout(h);
        ++i;
    }
}

void Worker::udp_timeout(uint32_t h) {
    HandshakeCtx &x = hs_[h];
    const int32_t pos = x.pos;
    Flow &f = flows_.at(pos);
    if (!flows_.in_use(static_cast<uint32_t>(pos)) || f.hs != h) {
        x.armed = false;
        return;
    }
    if (f.parked) return;  // the slow path or a batch has it; decide later
    const uint64_t elapsed = now_tsc_ - x.started_tsc;
    switch (f.auth) {
        case Auth::kUdpClientSyn:
            if (x.tries < 3) {
                if (elapsed >= kSynScheduleMs[x.tries] * ms_tsc_) {
                    udp_resend(h);
                    ++x.tries;
                }
                return;
            }
            if (elapsed >= kSynScheduleMs[3] * ms_tsc_) {
                // No enforcer answered: the peer is a plain host. Remember it for a while.
                const FlowKey &key = flows_.key_at(pos);
                std::array<uint8_t, 16> pk;
                std::memcpy(pk.data(), (f.local_side == kSideA ? key.b : key.a).b, 16);
                plain_peers_->insert(pk, now_unix_ + kPlainPeerS, now_unix_) = 1;
                udp_fallback(pos, f);
            }
            return;
        case Auth::kUdpServerSynAck:
            if (elapsed >= kServerWaitMs * ms_tsc_) {
                ids_.udp_expired.add();
                record_exception(pos, f);
                drop_held(f, DropReason::HandshakeExpired);
                free_hs(f);
                f.auth = Auth::kNew;
                f.role = kRoleNone;
            }
            return;
        case Auth::kUdpResetSent:
            if (elapsed >= kResetHoldMs * ms_tsc_) udp_fallback(pos, f);
            return;
        case Auth::kAllowed:
            if (f.role == kRoleClient && elapsed >= kAckKeepMs * ms_tsc_) free_hs(f);
            return;
        default:
            x.armed = false;
            return;
    }
}

// The peer did not take part in a handshake: its address decides (external-network ACL), and the
// held datagrams go or are dropped by that verdict.
void Worker::udp_fallback(int32_t pos, Flow &f) {
    const FlowKey &key = flows_.key_at(pos);
    const policy::PolicySnapshot &pol = *st_->policy;
    const IpAddr &peer = f.local_side == kSideA ? key.b : key.a;
    const uint32_t pu = hs_[f.hs].local_pu;
    const Direction dir = f.local_side == f.init_side ? Direction::kOutgoing : Direction::kIncoming;
    const uint16_t port = f.init_side == kSideA ? key.pb : key.pa;
    const policy::Decision d = decide_by_address(pu, dir, peer, key.family, kProtoUdp, port);
    Pkt k{};
    k.pos = pos;
    k.v.family = key.family;
    k.v.proto = kProtoUdp;
    set_peer(f, nullptr);
    f.decided_version = pol.version();
    ids_.acl_decisions.add();
    ids_.udp_fallbacks.add();
    if (d.action == Verdict::kAccept) {
        record(k, f, d, DropReason::None, nullptr);
        free_hs(f);
        f.auth = Auth::kAllowed;
        ids_.authorized.add();
        release_held(f);
        return;
    }
    record(k, f, d, DropReason::PolicyReject, nullptr);
    free_hs(f);
    f.auth = Auth::kRejected;
    ids_.rejected.add();
    drop_held(f, DropReason::PolicyReject);
}

}  // namespace segwire::dp
