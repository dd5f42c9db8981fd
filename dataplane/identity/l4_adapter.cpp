// The L4 side of the identity stage's adapter (docs/l4-mode.md): the facts of a segment of an L4
// exchange (record reassembly, acknowledgments of our records), the records sent and kept for
// retransmission, and the sequence shift once the records are final. Nothing here decides: the
// machine (tcp_l4_impl.hpp) branches on the facts and names the actions.
#include <cstring>

#include <rte_mbuf.h>

#include "crypto/l4_wire.hpp"
#include "dataplane/identity/adapter.hpp"
#include "dataplane/packet/build.hpp"
#include "dataplane/packet/rewrite.hpp"

namespace segwire::dp::identity {

using crypto::wire::WireStatus;

namespace {

bool l4_exchange(dp::Auth a) noexcept {
    return a == dp::Auth::kL4ClientWait || a == dp::Auth::kL4ClientConfirm ||
           a == dp::Auth::kL4ServerWait;
}

}  // namespace

// Facts of a segment of a flow in an L4 state with a context: whether our record was sent and is
// still unacknowledged, whether this segment acknowledges all of it, and what its payload adds to
// the peer's record. Sequence numbers here are the wire's (the segment is not shifted yet).
void Stage::l4_facts(Ev &e, Facts &fx) {
    Pkt &k = *e.k;
    const Flow &f = *e.f;
    if (!l4_exchange(f.auth) || f.hs == kNil) return;
    L4Ctx &l = l4_[f.hs];
    fx.l4_sent = l.own_total != 0;
    fx.l4_acked = hs_[f.hs].ctl == nullptr;
    if (k.arrival != kOutside) return;
    if ((k.v.tcp_flags & kTcpAck) && fx.l4_sent)
        fx.pkt.acks_record = int32_t(k.v.ack - l.own_end) >= 0;
    if (k.v.payload_len) fx.pkt.l4_rec = l4_record(l, e, f.auth == dp::Auth::kL4ClientConfirm);
    if (fx.pkt.l4_rec == L4Rec::kR1) fx.pkt.nonce_seen = replayed_syn(e.tok.nonce, e.pos);
}

// What the segment's payload adds to the record expected at rb.first_seq(). The complete record's
// fields go where the machine's needs look for a token (e.tok: nonce, claims, MAC).
L4Rec Stage::l4_record(L4Ctx &l, Ev &e, bool confirm) {
    const Pkt &k = *e.k;
    RecordBuffer &rb = l.rb;
    const uint32_t first = rb.first_seq();
    const uint32_t len = k.v.payload_len;
    if (int32_t(k.v.seq + len - first) <= 0) return L4Rec::kOld;  // before the expected record
    if (confirm) return L4Rec::kNone;  // A is authorized: this is the server's data
    // Bytes wholly past a record whose length is known overtook it (or follow the last one).
    size_t expect = l.expect_len;
    if (!expect && rb.contiguous() >= crypto::l4::kHeaderLen)
        expect = size_t(rb.bytes()[4]) << 8 | rb.bytes()[5];
    const uint32_t rel = k.v.seq - first;
    if (expect && int32_t(rel) >= 0 && rel >= expect) return L4Rec::kBeyond;
    const uint8_t *p = rte_pktmbuf_mtod(k.m, const uint8_t *) + k.v.payload_off;
    const RecordBuffer::Add add = rb.add(k.v.seq, {p, len});
    if (add == RecordBuffer::Add::kConflict) return L4Rec::kBad;
    crypto::l4::RecordView rv;
    size_t need = 0;
    switch (crypto::l4::parse_record(rb.bytes(), rv, &need)) {
        case WireStatus::Ok:
            break;
        case WireStatus::Truncated:
            return add == RecordBuffer::Add::kOutside ? L4Rec::kBeyond : L4Rec::kPartial;
        case WireStatus::NotPresent:
            return L4Rec::kNotRecord;
        default:
            return L4Rec::kBad;
    }
    if (l.expect_len && rv.len != l.expect_len) return L4Rec::kBad;
    e.l4_rec_len = static_cast<uint16_t>(rv.len);
    e.tok.nonce = rv.nonce;
    e.tok.claims = rv.claims;
    e.tok.mac = rv.mac;
    switch (rv.type) {
        case crypto::l4::RecordType::R1:
            return L4Rec::kR1;
        case crypto::l4::RecordType::R2:
            return L4Rec::kR2;
        case crypto::l4::RecordType::R3:
            return L4Rec::kR3;
    }
    return L4Rec::kBad;
}

// FillHs for L4: the ISN of the SYN or SYN-ACK in hand (a peer's ISN starts the stream whose
// record we reassemble, our host's the stream our records go into), and a taken record's nonce
// and claims hash (the stream then expects the peer's next record after it).
void Stage::l4_fill(HsFill what, Ev &e) {
    Flow &f = *e.f;
    HandshakeCtx &x = hs_[f.hs];
    L4Ctx &l = l4_[f.hs];
    switch (what) {
        case HsFill::kL4Isn: {
            const Pkt &k = *e.k;
            if (!(k.v.tcp_flags & kTcpAck)) {  // the SYN: a new exchange
                l.client_isn = k.v.seq;
                x.client_isn = k.v.seq;
                l.own_total = l.peer_total = l.expect_len = 0;
                l.own_started = false;
                crypto::wire::TfoOptionView tfo;
                l.tfo_req =
                    k.arrival == kOutside &&
                    crypto::wire::find_tfo_option(tcp_options(k.m, k.v), tfo) == WireStatus::Ok;
            } else {
                l.server_isn = k.v.seq;
                // A: R1 sent in the SYN is ours in the stream only if this SYN-ACK
                // acknowledges it; otherwise (no cookie or a stale one: B ignored the data) it
                // goes again after the handshake.
                if (k.arrival == kOutside && l.own_total && k.v.ack != l.own_end) {
                    l.own_end = l.client_isn + 1;
                    l.own_total = 0;
                }
            }
            if (k.arrival == kOutside) {
                l.rb.reset(k.v.seq + 1);
            } else if (!l.own_started) {  // (A: kL4Syn may already have put R1 after it)
                l.own_end = k.v.seq + 1;
                l.own_started = true;
            }
            return;
        }
        case HsFill::kL4R1In:
        case HsFill::kL4R2In: {
            uint8_t *nonce = what == HsFill::kL4R1In ? x.client_nonce : x.server_nonce;
            std::memcpy(nonce, e.tok.nonce, 16);
            (what == HsFill::kL4R1In ? x.client_hash : x.server_hash) = e.looked->claims.hash();
            if (what == HsFill::kL4R1In) {  // kept as a v1 SYN's: a replay is refused
                std::array<uint8_t, 16> nk;
                std::memcpy(nk.data(), e.tok.nonce, 16);
                syn_nonces_->insert(nk, now_unix_ + idr_->session_key_lifetime_s * 3 / 2,
                                    now_unix_) = flows_->hash(flows_->key_at(e.pos));
            }
            l.peer_total = static_cast<uint16_t>(l.peer_total + e.l4_rec_len);
            l.rb.reset(l.rb.first_seq() + e.l4_rec_len);
            // After R1 only R3 can come (22 bytes); after R2, the server's data.
            l.expect_len = what == HsFill::kL4R1In ? crypto::l4::kR3Len : 0;
            return;
        }
        default:
            return;
    }
}

// Edit::kStripTfo: a host's TFO option and SYN data off its SYN (docs/l4-mode.md, "A host's own
// TFO"); untouched when it has neither.
DropReason Stage::l4_strip_tfo(Pkt &k) {
    alignas(8) uint8_t out[crypto::wire::kTcpOptionSpace];
    const crypto::wire::OptionEdit oe = crypto::wire::strip_tfo_option(
        tcp_options(k.m, k.v), std::span<uint8_t, crypto::wire::kTcpOptionSpace>(out));
    const bool opt = oe.status == WireStatus::Ok;
    if (!opt && oe.status != WireStatus::NotPresent) return DropReason::TokenMalformed;
    if (!opt && !k.v.payload_len) return DropReason::None;
    const std::span<const uint8_t> options =
        opt ? std::span<const uint8_t>(out, oe.length) : tcp_options(k.m, k.v);
    if (rewrite_tcp(k.m, k.v, options, k.v.payload_len, {}, 65535, idr_->tx_csum[k.arrival ^ 1]) !=
        RewriteStatus::Ok)
        return DropReason::TokenMalformed;
    ids_.options_scrubbed.add();
    return DropReason::None;
}

// L4Send: our next record in its own segment to the peer's enforcer, from our host's address and
// port, at our stream's next sequence number, acknowledging the peer's records taken so far. The
// segment is kept in the context (one at a time: a new record replaces an acknowledged one) and
// a copy is sent; the timer retransmits it until it is acknowledged.
void Stage::l4_send(uint8_t rec, Ev &e) {
    Pkt &k = *e.k;
    Flow &f = *e.f;
    HandshakeCtx &x = hs_[f.hs];
    L4Ctx &l = l4_[f.hs];
    uint8_t body[crypto::l4::kMaxRecordLen];
    size_t n = 0;
    if (rec == 1) {
        n = crypto::l4::write_r1(body, std::span<const uint8_t, 16>(x.client_nonce, 16),
                                 e.claims->blob);
    } else if (rec == 2) {
        uint8_t *slot = nullptr;
        n = crypto::l4::write_r2(body, std::span<const uint8_t, 16>(x.server_nonce, 16),
                                 e.claims->blob, &slot);
        if (n && slot) std::memcpy(slot, x.synack_mac, crypto::wire::kMacLen);
    } else {
        n = crypto::l4::write_r3(body, x.ack_mac);
    }
    if (!n) return;  // (claims of a valid length: cannot happen) the deadline ends the exchange
    const bool to_source = k.arrival == kOutside;
    const TcpSegment seg{
        l.own_end, l.rb.first_seq(), static_cast<uint8_t>(kTcpAck | kTcpPsh), 0xffff,
        {},        {body, n}};
    rte_mbuf *m =
        build_tcp(idr_->pool, addressing_of(k.m, k.v, to_source), seg, idr_->tx_csum[kOutside]);
    // The stream position moves whether or not a buffer was free: a lost record and a record
    // never sent are the same to the peer, and the timer sends the kept copy again.
    l.own_end += static_cast<uint32_t>(n);
    l.own_total = static_cast<uint16_t>(l.own_total + n);
    if (x.ctl) rte_pktmbuf_free(x.ctl);
    x.ctl = m;
    x.ctl_out = kOutside;
    x.last_send_tsc = now_tsc_;
    x.tries = 0;
    if (!m) return;
    m->port = port_id_[kOutside];
    ids_.l4_records_sent.add();
    // The kept segment itself goes out with one more reference (the port frees that one; no
    // driver writes into a frame it sends), so keeping it costs no copy.
    rte_mbuf_refcnt_update(m, 1);
    tx_->push(m, kOutside);
}

void Stage::l4_resend(uint32_t hs) {
    HandshakeCtx &x = hs_[hs];
    if (!x.ctl) return;
    x.last_send_tsc = now_tsc_;
    ids_.l4_retransmits.add();
    rte_mbuf_refcnt_update(x.ctl, 1);  // (as l4_send)
    tx_->push(x.ctl, x.ctl_out);
}

// L4AckPeer (B, at R3): R3 is taken; a bare ACK of it goes back to A at once, since the server
// may have nothing to say.
void Stage::l4_ack_peer(Ev &e) {
    Pkt &k = *e.k;
    L4Ctx &l = l4_[e.f->hs];
    l.peer_total = static_cast<uint16_t>(l.peer_total + e.l4_rec_len);
    l.rb.reset(l.rb.first_seq() + e.l4_rec_len);
    const TcpSegment seg{l.own_end, l.rb.first_seq(), kTcpAck, 0xffff, {}, {}};
    rte_mbuf *m =
        build_tcp(idr_->pool, addressing_of(k.m, k.v, true), seg, idr_->tx_csum[k.arrival]);
    if (!m) return;
    tx_->push(m, k.arrival);
}

// L4Shift: the records of both sides are final; from here every segment of the flow is shifted
// by them (the fast path reads kL4Bit).
void Stage::l4_shift_on(Ev &e) {
    Flow &f = *e.f;
    const L4Ctx &l = l4_[f.hs];
    SeqShift &sh = shift_[static_cast<uint32_t>(e.pos)];
    sh.ins[f.local_side] = l.own_total;
    sh.ins[f.local_side ^ 1] = l.peer_total;
    f.parked |= kL4Bit;
}

// A held segment of a shifted flow leaves: towards its host from the wire, or towards the wire.
void Stage::release_l4(int32_t pos, const Flow &f, rte_mbuf *m) {
    const uint8_t arrival = side_of(m);
    Pkt k{m, {}, pos, arrival, 0};
    if (parse_packet(rte_pktmbuf_mtod(m, const uint8_t *), rte_pktmbuf_data_len(m), k.v) ==
            DropReason::None &&
        k.v.proto == kProtoTcp) {
        // The segment's source is the local side when it came from inside.
        k.side = arrival == kInside ? f.local_side : f.local_side ^ 1;
        l4_translate(k, arrival == kOutside);
    }
    tx_->push(m, arrival ^ 1);
}

}  // namespace segwire::dp::identity

namespace segwire::dp::identity {

// B: a SYN from outside with data: R1 under a valid TFO cookie of ours (RFC 7413 §4.1.2: data
// under any other cookie is ignored). The record must be whole and alone in the SYN.
L4Rec Stage::l4_syn_record(Ev &e) {
    const Pkt &k = *e.k;
    crypto::wire::TfoOptionView tfo;
    if (crypto::wire::find_tfo_option(tcp_options(k.m, k.v), tfo) != WireStatus::Ok ||
        tfo.cookie.empty())
        return L4Rec::kNone;
    const crypto::HmacKey *keys = tfo_keys();
    if (!crypto::l4::tfo_cookie_valid(keys[0], &keys[1], k.v.family, k.v.src.b, tfo.cookie))
        return L4Rec::kNone;
    const uint8_t *p = rte_pktmbuf_mtod(k.m, const uint8_t *) + k.v.payload_off;
    crypto::l4::RecordView rv;
    if (crypto::l4::parse_record({p, k.v.payload_len}, rv) != WireStatus::Ok ||
        rv.type != crypto::l4::RecordType::R1 || rv.len != k.v.payload_len)
        return L4Rec::kNone;
    e.tok.nonce = rv.nonce;
    e.tok.claims = rv.claims;
    e.tok.mac = nullptr;
    e.l4_rec_len = static_cast<uint16_t>(rv.len);
    return L4Rec::kR1;  // (tcp_parse asks whether its nonce was seen)
}

// The cookie keys of this period ([0]) and the previous one ([1]), derived from the master key
// once per period (docs/l4-mode.md: cookies rotate with the ephemeral keys).
const crypto::HmacKey *Stage::tfo_keys() noexcept {
    const uint64_t period = now_unix_ / (idr_->tfo_rotation_s ? idr_->tfo_rotation_s : 300);
    if (period != tfo_period_) {
        for (int i = 0; i < 2; ++i) {
            uint8_t msg[19] = {'s', 'e', 'g', 'w', 'i', 'r', 'e', '-', 't', 'f', 'o'};
            const uint64_t p = period - static_cast<uint64_t>(i);
            for (int b = 0; b < 8; ++b) msg[11 + b] = static_cast<uint8_t>(p >> (56 - 8 * b));
            uint8_t key[crypto::kHmacSha256Len];
            crypto::HmacBatch::compute_one_portable(
                crypto::HmacJob{&idr_->tfo_key, msg, sizeof msg, key, crypto::kHmacSha256Len});
            tfo_keys_[i].set(key);
        }
        tfo_period_ = period;
    }
    return tfo_keys_;
}

namespace {

// The segment's options with the TFO option (either form) taken off; `out` holds them.
std::span<const uint8_t> without_tfo(std::span<const uint8_t> options,
                                     std::span<uint8_t, crypto::wire::kTcpOptionSpace> out,
                                     bool &had) noexcept {
    const crypto::wire::OptionEdit oe = crypto::wire::strip_tfo_option(options, out);
    had = oe.status == WireStatus::Ok;
    return had ? std::span<const uint8_t>(out.data(), oe.length) : options;
}

}  // namespace

// Edit::kL4Syn (A): the host's own TFO (option and data) off; then, with the server enforcer's
// cookie cached, TFO(cookie) and R1 as SYN data (R1 is then in the stream: own_end moves past
// it), else a cookie request. Without option space the SYN goes plain (R1 follows the
// handshake).
DropReason Stage::l4_syn_edit(Ev &e) {
    Pkt &k = *e.k;
    HandshakeCtx &x = hs_[e.f->hs];
    L4Ctx &l = l4_[e.f->hs];
    alignas(8) uint8_t base[crypto::wire::kTcpOptionSpace];
    bool had = false;
    const std::span<const uint8_t> opts = without_tfo(
        tcp_options(k.m, k.v), std::span<uint8_t, crypto::wire::kTcpOptionSpace>(base), had);
    const crypto::l4::TfoCookie *cookie =
        idr_->l4_tfo ? tfo_cookies_->find(tfo_key_of(k.v.src, k.v.dst), now_unix_) : nullptr;
    uint8_t tfo[2 + crypto::l4::kTfoCookieLen];
    const size_t tl =
        !idr_->l4_tfo ? 0
                      : crypto::wire::write_tfo_option(
                            tfo, cookie ? std::span<const uint8_t>(cookie->data(), cookie->size())
                                        : std::span<const uint8_t>());
    alignas(8) uint8_t out[crypto::wire::kTcpOptionSpace];
    const crypto::wire::OptionEdit ae = crypto::wire::add_tcp_option(
        opts, {tfo, tl}, std::span<uint8_t, crypto::wire::kTcpOptionSpace>(out), false);
    const bool add = tl && ae.status == WireStatus::Ok;
    uint8_t r1[crypto::l4::kMaxRecordLen];
    size_t n = 0;
    if (add && cookie && e.claims)
        n = crypto::l4::write_r1(r1, std::span<const uint8_t, 16>(x.client_nonce, 16),
                                 e.claims->blob);
    const std::span<const uint8_t> options = add ? std::span<const uint8_t>(out, ae.length) : opts;
    if (!add && !had && !k.v.payload_len) return DropReason::None;
    const RewriteStatus rs = rewrite_tcp(k.m, k.v, options, k.v.payload_len, {r1, n},
                                         idr_->mtu[kOutside], idr_->tx_csum[kOutside]);
    if (rs == RewriteStatus::TooBig && n) {  // no room for R1 in the SYN: it follows the handshake
        return rewrite_tcp(k.m, k.v, options, k.v.payload_len, {}, idr_->mtu[kOutside],
                           idr_->tx_csum[kOutside]) == RewriteStatus::Ok
                   ? DropReason::None
                   : DropReason::TokenMalformed;
    }
    if (rs != RewriteStatus::Ok) return DropReason::TokenMalformed;
    if (had) ids_.options_scrubbed.add();
    if (n) {
        l.own_end = l.client_isn + 1 + static_cast<uint32_t>(n);
        l.own_total = static_cast<uint16_t>(n);
        ids_.l4_records_sent.add();
    }
    return DropReason::None;
}

// Edit::kL4SynAckIn (A): the server enforcer's cookie is kept for the next connection and its
// option taken off; an ACK number that covers R1 in the SYN goes back to the host's (c + 1).
DropReason Stage::l4_synack_in(Ev &e) {
    Pkt &k = *e.k;
    const L4Ctx &l = l4_[e.f->hs];
    crypto::wire::TfoOptionView tfo;
    if (crypto::wire::find_tfo_option(tcp_options(k.m, k.v), tfo) == WireStatus::Ok &&
        tfo.cookie.size() == crypto::l4::kTfoCookieLen) {
        crypto::l4::TfoCookie &c =
            tfo_cookies_->insert(tfo_key_of(k.v.dst, k.v.src), now_unix_ + kTfoCookieS, now_unix_);
        std::memcpy(c.data(), tfo.cookie.data(), c.size());
    }
    alignas(8) uint8_t base[crypto::wire::kTcpOptionSpace];
    bool had = false;
    const std::span<const uint8_t> opts = without_tfo(
        tcp_options(k.m, k.v), std::span<uint8_t, crypto::wire::kTcpOptionSpace>(base), had);
    if (had &&
        rewrite_tcp(k.m, k.v, opts, 0, {}, 65535, idr_->tx_csum[kInside]) != RewriteStatus::Ok)
        return DropReason::TokenMalformed;
    if (l.own_total && l.own_end == l.client_isn + 1 + l.own_total && k.v.ack == l.own_end) {
        shift_segment(rte_pktmbuf_mtod(k.m, uint8_t *), k.v, 0, 0u - l.own_total);
        k.v.ack -= l.own_total;
    }
    return DropReason::None;
}

// Edit::kL4SynAckOut (B): the server's SYN-ACK acknowledges R1 if the SYN carried it (the server
// never saw it), and carries our TFO cookie for the client's address if the SYN asked.
DropReason Stage::l4_synack_out(Ev &e) {
    Pkt &k = *e.k;
    const L4Ctx &l = l4_[e.f->hs];
    if (l.tfo_req) {
        const crypto::l4::TfoCookie cookie =
            crypto::l4::tfo_cookie(tfo_keys()[0], k.v.family, k.v.dst.b);
        uint8_t tfo[2 + crypto::l4::kTfoCookieLen];
        const size_t tl = crypto::wire::write_tfo_option(tfo, cookie);
        alignas(8) uint8_t out[crypto::wire::kTcpOptionSpace];
        const crypto::wire::OptionEdit ae = crypto::wire::add_tcp_option(
            tcp_options(k.m, k.v), {tfo, tl},
            std::span<uint8_t, crypto::wire::kTcpOptionSpace>(out), false);
        // No option space: no cookie this time (the next SYN asks again).
        if (tl && ae.status == WireStatus::Ok &&
            rewrite_tcp(k.m, k.v, {out, ae.length}, 0, {}, idr_->mtu[kOutside],
                        idr_->tx_csum[kOutside]) != RewriteStatus::Ok)
            return DropReason::OptionSpace;
    }
    if (l.peer_total) {
        shift_segment(rte_pktmbuf_mtod(k.m, uint8_t *), k.v, 0, l.peer_total);
        k.v.ack += l.peer_total;
    }
    return DropReason::None;
}

}  // namespace segwire::dp::identity
