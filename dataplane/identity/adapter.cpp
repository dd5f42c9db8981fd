// The identity stage's adapter (docs/identity-machines.md "How the adapter calls the machines"):
// an event goes to the flow's machine; each need it asks is answered here (a cache look-up, a
// nonce, a packet edit, a send) and each action it returns is applied in order. Nothing here
// decides: every branch on a packet, a cache or the clock is the machine's.
#include <cstring>

#include <rte_mbuf.h>
#include <rte_ring.h>

#include "dataplane/identity/adapter.hpp"
#include "dataplane/identity/plain_impl.hpp"
#include "dataplane/identity/plain_machine.hpp"
#include "dataplane/identity/tcp_impl.hpp"
#include "dataplane/identity/tcp_machine.hpp"
#include "dataplane/identity/udp_impl.hpp"
#include "dataplane/identity/udp_machine.hpp"

namespace segwire::dp::identity {

using policy::Direction;
using policy::Verdict;

namespace {

uint16_t policy_port(const PacketView &v) noexcept {
    if (v.proto == kProtoIcmp || v.proto == kProtoIcmp6)
        return policy::icmp_key(v.icmp_type, v.icmp_code);
    return v.dport;
}

// ICMP errors and IPv6 neighbour discovery serve connections that are already decided (and PMTU
// discovery must not be broken by port-based rules).
bool icmp_control(const PacketView &v) noexcept {
    if (v.proto == kProtoIcmp) return v.icmp_type == 3 || v.icmp_type == 11 || v.icmp_type == 12;
    if (v.proto == kProtoIcmp6)
        return v.icmp_type < 128 || (v.icmp_type >= 133 && v.icmp_type <= 137);
    return false;
}

// Refusals by the binding to the Console's record (control/slowpath.cpp).
bool unbound(crypto::ClaimsReason r) noexcept {
    return r == crypto::ClaimsReason::UnknownPu || r == crypto::ClaimsReason::NotHosted;
}

// The drop reason of a refused identity.
DropReason refusal_of(crypto::ClaimsReason r) noexcept {
    switch (r) {
        case crypto::ClaimsReason::UnknownPu:
            return DropReason::ClaimsUnknownPu;
        case crypto::ClaimsReason::NotHosted:
            return DropReason::ClaimsNotHosted;
        case crypto::ClaimsReason::CertificateRevoked:
            return DropReason::CertificateRevoked;
        default:
            return DropReason::ClaimsInvalid;
    }
}

}  // namespace

dp::Counter &Stage::counter(Counter c) noexcept {
    switch (c) {
#define X(n)         \
    case Counter::n: \
        return ids_.n;
        SEGWIRE_IDENTITY_COUNTERS(X)
#undef X
        case Counter::kCount:
            break;
    }
    return ids_.exceptions;  // not reached: every counter is listed
}

// ---------------------------------------------------------------------------------------------
// events

// The machine's step, run the adapter's way (detail.hpp, Direct): each action is applied as the
// machine takes it and each need performed where the machine reaches it. The machine code is
// inlined here, so an action of a path compiles to its own few instructions.
struct Stage::Sink {
    Stage &stage;
    Ev &e;
    Facts &fx;
    [[gnu::always_inline]] void apply(const Action &a) noexcept { stage.apply(a, e); }
    void answer(const Need &n) noexcept {
        stage.answer(n, e, fx.answers);
        fx.answers.mark(n.kind);
    }
};

void Stage::run(const Event &event, Facts &fx, Ev &e) {
    e.hs_pu = e.f->hs < hs_.size() ? hs_[e.f->hs].local_pu : policy::kNone;
    Sink sink{*this, e, fx};
    detail::Direct<Sink> mode(sink);
    detail::Ctx<detail::Direct<Sink>> c(view(*e.f), event, fx, mode);
    if (e.proto == kProtoTcp)
        tcp::impl::dispatch(c);
    else if (e.proto == kProtoUdp)
        udp::impl::dispatch(c);
    else
        plain::impl::dispatch(c);
}

// The facts of a packet, in two parts. First what the steady-state check reads: a few tests of
// parsed fields (for TCP, whether the segment carries any RFC 6994 option at all stands in for
// segwire's option until it is looked for).
[[gnu::always_inline]] inline PacketFacts Stage::packet_facts(const Pkt &k,
                                                              const Flow &f) noexcept {
    PacketFacts p;
    p.arrival = k.arrival == kOutside ? Arrival::kOutside : Arrival::kInside;
    if (k.v.proto == kProtoTcp) {
        const uint8_t fl = k.v.tcp_flags;
        p.kind = (fl & kTcpSyn)   ? ((fl & kTcpAck) ? TcpKind::kSynAck : TcpKind::kSyn)
                 : (fl & kTcpRst) ? TcpKind::kRst
                                  : TcpKind::kOther;
        p.opt = k.v.opt.exp_off ? TcpOpt::kNotOurs : TcpOpt::kNoExp;
        p.dns_reply = k.v.sport == 53 && k.v.payload_len && f.init_side == f.local_side;
    } else if (k.v.proto == kProtoUdp) {
        p.udp_len8 = k.v.udp_len == 8;
        p.dns_reply = k.v.sport == 53 && k.v.payload_len && f.init_side == f.local_side;
    } else {
        p.icmp_control = icmp_control(k.v);
    }
    return p;
}

// Then the rest, for a step: segwire's option, a token or a control datagram, looked at only when
// the packet can carry them, and how they compare with the flow's handshake context.
void Stage::parse_facts(Ev &e, Facts &fx) {
    const Pkt &k = *e.k;
    const Flow &f = *e.f;
    hs_facts(e, fx);
    fx.reject_with_rst = idr_->reject_with_rst;
    if (k.v.proto == kProtoTcp) {
        if (k.v.opt.exp_off || (k.v.tcp_flags & kTcpSyn) || f.hs != kNil) tcp_parse(e, fx);
    } else if (k.v.proto == kProtoUdp) {
        if (fx.pkt.udp_len8 || f.hs != kNil) udp_parse(e, fx);
    }
}

void Stage::packet(Pkt &k) {
    Flow &f = flows_->at(k.pos);
    // Anti-spoofing (docs/handshake.md): a new flow's source must be on the side its PU is (a
    // known flow's packets were checked by admit_known() before the flow table saw them).
    if (f.auth == dp::Auth::kNew) {
        if (const DropReason why = ingress(k); why != DropReason::None) {
            drop(k, why);
            return;
        }
    }
    // DNS queries are remembered before their step (docs/dns.md); the fate stays the machine's.
    if ((k.v.dport == dns::kDnsPort || k.v.sport == dns::kDnsPort) && k.v.payload_len) [[unlikely]]
        dns_observe(k, f);
    {
        // The steady state first: the machine's own summary of the paths that only forward.
        // (These facts stay in registers: the step below computes them again.)
        const PacketFacts pf = packet_facts(k, f);
        const FlowState st = view(f);
        if (k.v.proto == kProtoTcp) {
            if (tcp::forwards(st, pf)) {
                // An L4 flow's segment is shifted as it leaves (docs/l4-mode.md): towards its
                // host in the host's numbers, towards the wire in the wire's.
                if (f.parked & kL4Bit) [[unlikely]]
                    l4_translate(k, k.arrival == kOutside);
                track_seq(f, k);
                forward(k);
                return;
            }
        } else if (k.v.proto == kProtoUdp ? udp::forwards(st, pf) : plain::forwards(st, pf)) {
            forward(k);
            return;
        }
    }
    Ev &e = ev_;
    e.begin(&k, k.pos, &f, k.v.proto);
    Facts fx;
    fx.pkt = packet_facts(k, f);
    parse_facts(e, fx);
    run(Event{EventKind::kPacket, BatchOp::kClientCheckSynAck}, fx, e);
}

// The first packet of a flow: is its source on the side it may send from? A PU hosted here sends
// from inside, a PU hosted by another enforcer from outside; an inside address no PU covers as the
// profile says (excluded networks are never touched).
DropReason Stage::ingress(const Pkt &k) const {
    if (!st_ || !st_->policy) return DropReason::None;
    const policy::PolicySnapshot &pol = *st_->policy;
    const policy::AddressInfo src = pol.classify(addr_of(k.v.src, k.v.family));
    if (src.flags & policy::kExcluded) return DropReason::None;
    const bool inside = k.arrival == kInside;
    if (src.pu == policy::kNone)
        return inside && pol.drop_unmanaged_inside() ? DropReason::UnmanagedInsideSource
                                                     : DropReason::None;
    const EnforcerState::Hosting h = st_->hosting_of(src.pu);
    if ((h == EnforcerState::kHostedHere && !inside) ||
        (h == EnforcerState::kHostedElsewhere && inside))
        return DropReason::SpoofedSource;
    return DropReason::None;
}

bool Stage::source_inside(const PacketView &v) const noexcept {
    if (!st_ || !st_->policy) return false;
    const policy::PolicySnapshot &pol = *st_->policy;
    const policy::AddressInfo src = pol.classify(addr_of(v.src, v.family));
    if (src.pu != policy::kNone && st_->hosting_of(src.pu) == EnforcerState::kHostedHere)
        return true;
    const policy::AddressInfo dst = pol.classify(addr_of(v.dst, v.family));
    if (dst.pu != policy::kNone && st_->hosting_of(dst.pu) == EnforcerState::kHostedHere)
        return false;
    constexpr uint8_t managed = policy::kManagedTcp | policy::kManagedUdp;
    return (src.flags & managed) && !(dst.flags & managed);
}

// The HMACs of the burst are done: the packet that queued them goes on.
void Stage::finish_op(Batched &op) {
    Pkt &k = op.k;
    Flow &f = flows_->at(k.pos);
    f.parked &= static_cast<uint8_t>(~kInBatchBit);
    HandshakeCtx &x = hs_[f.hs];
    const bool l4 = op.op == BatchOp::kL4ClientCheckR2 || op.op == BatchOp::kL4ServerSignR2;
    std::memcpy(x.synack_mac, l4 ? op.l4macs.synack_mac.data() : op.macs.synack_mac.data(),
                crypto::wire::kMacLen);
    std::memcpy(x.ack_mac, l4 ? op.l4macs.ack_mac() : op.macs.ack_mac(), crypto::wire::kMacLen);
    std::memcpy(x.confirm_mac, l4 ? op.l4macs.confirm_mac() : op.macs.confirm_mac(),
                crypto::wire::kMacLen);
    Ev &e = ev_;
    e.begin(&k, k.pos, &f, k.v.proto);
    e.looked = op.peer;
    e.decision = op.decision;
    Facts fx;
    fx.pkt = packet_facts(k, f);
    hs_facts(e, fx);
    fx.reject_with_rst = idr_->reject_with_rst;
    fx.batch_accept = op.decision.action == Verdict::kAccept;
    // A server op's step reads no fact of the packet (it signs, then edits or sends): the SYN is
    // not parsed again. A client op checks MAC_sa of the peer's SYN-ACK against the one computed.
    if (op.op == BatchOp::kClientCheckSynAck) {
        parse_facts(e, fx);
        const uint8_t *mac = nullptr;
        if (e.proto == kProtoTcp && fx.pkt.token == Token::kSynAck) mac = e.tok.mac;
        if (e.proto == kProtoUdp && fx.pkt.ctl == UdpCtl::kSynAck) mac = e.msg.token.mac;
        fx.synack_mac_ok = mac && crypto::tag_equal(mac, x.synack_mac, crypto::wire::kMacLen);
    } else if (op.op == BatchOp::kL4ClientCheckR2) {
        // R2 was taken into the context when the op was queued (its stream position moved on):
        // its MAC is the one the reassembly buffer held, which the batch op kept.
        fx.synack_mac_ok = crypto::tag_equal(op.r2_mac, x.synack_mac, crypto::wire::kMacLen);
    }
    run(Event{EventKind::kMacsReady, op.op}, fx, e);
}

void Stage::ports_reused(int32_t pos) {
    Ev &e = ev_;
    Flow &f = flows_->at(pos);
    if (accounting()) {
        // The finished connection's last counter record; the new one counts from its SYN (this
        // packet, not counted yet) and is exported once decided.
        Acct &a = acct_[static_cast<uint32_t>(pos)];
        acct_final(pos, f, EndReason::kEnd);
        a.gen = f.created_tsc;
        a.decided = false;
        a.from_tsc = now_tsc_;
        for (int i = 0; i < 2; ++i) a.pkts[i] = f.pkts[i], a.bytes[i] = f.bytes[i];
    }
    e.begin(nullptr, pos, &f, kProtoTcp);
    Facts fx;
    run(Event{EventKind::kPortsReused, BatchOp::kClientCheckSynAck}, fx, e);
}

void Stage::on_flow_removed(int32_t pos, Flow &f) {
    acct_end(pos, f,
             f.state == TcpState::Closing || f.state == TcpState::Closed ? EndReason::kEnd
                                                                         : EndReason::kIdle);
    Ev &e = ev_;
    e.begin(nullptr, pos, &f, flows_->key_at(pos).proto);
    Facts fx;
    run(Event{EventKind::kExpire, BatchOp::kClientCheckSynAck}, fx, e);
}

// One authorized flow under a new snapshot (the sweep in stage.cpp).
void Stage::reevaluate_flow(int32_t pos, Flow &f) {
    const uint64_t version = st_->policy->version();
    Ev &e = ev_;
    e.begin(nullptr, pos, &f, flows_->key_at(pos).proto);
    Facts fx;
    fx.decided_current = f.decided_version == version;
    if (const PeerIdentity *p = f.peer) {
        fx.peer_tags_current = p->tags.snapshot_version() == version;
        fx.retag_pending = p->retag_pending;
        fx.peer_revoked = st_->cert_revoked(p->claims.cert_ref());
        if (!fx.peer_revoked && fx.peer_tags_current && p->status != crypto::ClaimsReason::Ok) {
            // Re-tagged under this snapshot and no longer bound: the PU was deleted or moved.
            fx.peer_revoked = true;
            fx.peer_cut = refusal_of(p->status);
        }
    }
    fx.acks_seen = f.ack_seen[0] && f.ack_seen[1];
    run(Event{EventKind::kReevaluate, BatchOp::kClientCheckSynAck}, fx, e);
    // Re-decided and still allowed: its counter records name the new snapshot's policy and rule.
    if (accounting() && !fx.decided_current && f.decided_version == version &&
        f.auth == dp::Auth::kAllowed)
        acct_redecided(pos, f, e);
}

// ---------------------------------------------------------------------------------------------
// needs

void Stage::answer(const Need &n, Ev &e, Answers &ans) {
    Flow &f = *e.f;
    const policy::PolicySnapshot &pol = *st_->policy;
    const FlowKey &key = flows_->key_at(e.pos);
    auto pu_of = [&](PuFrom p) {
        return p == PuFrom::kClassified  ? e.classified_pu
               : p == PuFrom::kHandshake ? e.hs_pu
                                         : e.local_pu;
    };
    auto dir_of = [&](DirFrom d) {
        if (d == DirFrom::kFromSides)
            return f.local_side == f.init_side ? Direction::kOutgoing : Direction::kIncoming;
        return d == DirFrom::kOutgoing ? Direction::kOutgoing : Direction::kIncoming;
    };
    auto port_of = [&](PortFrom p) -> uint16_t {
        switch (p) {
            case PortFrom::kSrcPort:
                return e.k->v.sport;
            case PortFrom::kDstPort:
                return e.k->v.dport;
            case PortFrom::kPolicyPort:
                return policy_port(e.k->v);
            case PortFrom::kResponder:
            case PortFrom::kCount:
                break;
        }
        return f.init_side == kSideA ? key.pb : key.pa;  // rules name the responder's port
    };
    switch (n.kind) {
        case NeedKind::kClassify: {
            const Pkt &k = *e.k;
            const bool from_inside = k.arrival == kInside;
            const policy::AddressInfo li =
                pol.classify(addr_of(from_inside ? k.v.src : k.v.dst, k.v.family));
            const policy::AddressInfo pi =
                pol.classify(addr_of(from_inside ? k.v.dst : k.v.src, k.v.family));
            e.classified_pu = li.pu;
            // Not ours: excluded networks, addresses no PU covers, ignored PUs.
            const bool pass = (pi.flags & policy::kExcluded) || (li.flags & policy::kExcluded) ||
                              li.pu == policy::kNone || pol.pu_ignored(li.pu);
            ans.classify = pass ? ClassifyAnswer::kPass : ClassifyAnswer::kOurs;
            ans.managed_tcp = pi.flags & policy::kManagedTcp;
            ans.managed_udp = pi.flags & policy::kManagedUdp;
            // L4 networks always; auto networks: at the server's side always (a plain SYN from
            // there may be v1's with its option stripped), at the client's once a SYN-ACK from
            // that server came back stripped (docs/l4-mode.md "Modes").
            ans.l4 = (pi.flags & policy::kModeL4) ||
                     ((pi.flags & policy::kModeAuto) &&
                      (!from_inside || l4_peers_->find(plain_key(k.v.dst, k.v.proto, k.v.dport),
                                                       now_unix_) != nullptr));
            return;
        }
        case NeedKind::kPlainPeer:
            ans.plain_peer = plain_peers_->find(plain_key(e.k->v.dst, e.k->v.proto, e.k->v.dport),
                                                now_unix_) != nullptr;
            return;
        case NeedKind::kLocalClaims: {
            const crypto::SignedClaims *c = st_->claims_of(pu_of(n.pu));
            e.claims = c;
            ans.claims = !c ? ClaimsAnswer::kAbsent
                         : f.hs != kNil && c->hash == hs_[f.hs].server_hash
                             ? ClaimsAnswer::kSame
                             : ClaimsAnswer::kPresent;
            return;
        }
        case NeedKind::kLocalPu: {
            const IpAddr &local = f.local_side == kSideA ? key.a : key.b;
            e.local_pu = pol.find_pu(addr_of(local, key.family));
            ans.local_pu = e.local_pu == policy::kNone  ? LocalPuAnswer::kNone
                           : pol.pu_ignored(e.local_pu) ? LocalPuAnswer::kIgnored
                                                        : LocalPuAnswer::kFound;
            return;
        }
        case NeedKind::kPeer: {
            // The blob of the token in hand (TCP SYN / SYN-ACK, UDP SYN / SYN-ACK).
            const std::span<const uint8_t> blob =
                e.proto == kProtoUdp ? e.msg.token.claims : e.tok.claims;
            const PeerIdentity *p = cached_peer(blob, e.peer_key);
            e.looked = p;
            if (!p) {
                ids_.peer_cache_misses.add();
                ans.peer = PeerAnswer::kMiss;
                return;
            }
            const bool current = p->tags.snapshot_version() == pol.version();
            if (p->status != crypto::ClaimsReason::Ok) {
                // A binding refusal is the record's word under one snapshot: under a newer one
                // the slow path checks it again (the signature already verified).
                if (!current && unbound(p->status)) {
                    ans.peer = PeerAnswer::kStale;
                    return;
                }
                ids_.peer_cache_hits.add();
                ans.peer = p->status == crypto::ClaimsReason::CertificateRevoked
                               ? PeerAnswer::kRevoked
                               : PeerAnswer::kRefused;
                ans.refusal = refusal_of(p->status);
                return;
            }
            if (!current) {
                ans.peer = PeerAnswer::kStale;  // the slow path re-tags it
                return;
            }
            ids_.peer_cache_hits.add();
            // Claims signed by a revoked certificate are refused, also when verified (and
            // cached) before the revocation list said so.
            if (st_->cert_revoked(p->claims.cert_ref())) {
                ans.peer = PeerAnswer::kRevoked;
                return;
            }
            // The claims speak for their PU only from its addresses (the packet in hand is the
            // peer's: its source).
            if (!pol.pu_covers(p->pu, addr_of(e.k->v.src, e.k->v.family))) {
                ids_.claims_address_mismatch.add();
                ans.peer = PeerAnswer::kRefused;
                ans.refusal = DropReason::ClaimsAddressMismatch;
                return;
            }
            ans.peer = PeerAnswer::kVerified;
            return;
        }
        case NeedKind::kSessionKey: {
            // The session key between this enforcer and the peer's, one per pair of ephemeral
            // keys (so per peer enforcer and rotation period, not per connection).
            const bool client = n.role == Role::kClient;
            e.key_role = client ? crypto::Role::Client : crypto::Role::Server;
            if (client) {
                e.key_local = hs_[f.hs].local_pub;
                e.key_peer = e.looked->claims.ephemeral_pub();
            } else {
                e.key_local = e.claims->claims.ephemeral_pub;
                e.key_peer = f.peer->claims.ephemeral_pub();
            }
            const crypto::SessionKey ck = crypto::session_cache_key(
                client ? e.key_local : e.key_peer, client ? e.key_peer : e.key_local);
            crypto::SessionKeyEntry *entry = keys_->find(ck, now_unix_);
            if (entry) {
                ids_.key_cache_hits.add();
                e.hk = &entry->key;
                ans.key = KeyAnswer::kCached;
            } else if (key_failed_->find(ck, now_unix_)) {
                ids_.key_failures_cached.add();
                ans.key = KeyAnswer::kFailed;
            } else {
                ids_.key_cache_misses.add();
                ans.key = KeyAnswer::kMissing;
            }
            return;
        }
        case NeedKind::kRules: {
            const PeerIdentity *p = n.peer == PeerFrom::kFlow ? f.peer : e.looked;
            e.decision = decisions_->decide(pol, pu_of(n.pu), dir_of(n.dir), p->tags, key.proto,
                                            port_of(n.port));
            ans.rules_accept = e.decision.action == Verdict::kAccept;
            return;
        }
        case NeedKind::kAcl: {
            const IpAddr &peer = peer_addr(e.pos, f);
            const uint8_t fl = pol.classify(addr_of(peer, key.family)).flags;
            const uint8_t managed = key.proto == kProtoTcp   ? policy::kManagedTcp
                                    : key.proto == kProtoUdp ? policy::kManagedUdp
                                                             : 0;
            if ((fl & policy::kIdentityRequired) && (fl & managed)) {
                // The profile requires identity from this peer's network for this protocol: the
                // address decides nothing (docs/policy.md "Identity required").
                e.decision = policy::Decision{};
                ans.acl_accept = false;
                ans.acl_refusal = DropReason::IdentityRequired;
                return;
            }
            e.decision = decide_by_address(pu_of(n.pu), dir_of(n.dir), peer, key.family, key.proto,
                                           port_of(n.port));
            ans.acl_accept = e.decision.action == Verdict::kAccept;
            return;
        }
        case NeedKind::kNonce: {
            HandshakeCtx &x = hs_[f.hs];
            uint8_t *dst = n.nonce == NonceFor::kClient ? x.client_nonce : x.server_nonce;
            ans.nonce = nonces_->next(std::span<uint8_t, 16>(dst, 16));
            return;
        }
        case NeedKind::kConfirmation: {
            Confirmation *c = confirms_->find(confirm_key(e.pos), now_unix_);
            e.conf = c;
            ans.confirmation = !c                                  ? ConfirmationAnswer::kNone
                               : now_tsc_ - c->last_tsc >= ms_tsc_ ? ConfirmationAnswer::kDue
                                                                   : ConfirmationAnswer::kRecent;
            return;
        }
        case NeedKind::kEdit:
            ans.edit = edit(n.edit, e);
            return;
        case NeedKind::kSend:
            ans.sent = send_handshake(n.msg, n.to, e);
            return;
        case NeedKind::kNone:
        case NeedKind::kCount:
            return;
    }
}

// The timer scan reached armed context h (UDP retransmissions and waits, the TCP half-open
// deadline).
void Stage::timer_event(uint32_t h) {
    HandshakeCtx &x = hs_[h];
    Ev &e = ev_;
    const bool live = flows_->in_use(static_cast<uint32_t>(x.pos));
    e.begin(nullptr, x.pos, &flows_->at(x.pos), flows_->key_at(x.pos).proto);
    e.timer_hs = h;
    Facts fx;
    fx.timer_stale = !live || e.f->hs != h;
    fx.elapsed_ms = whole_ms(now_tsc_ - x.started_tsc, ms_tsc_);
    fx.tries = x.tries;
    if (live && e.proto == kProtoTcp && !fx.timer_stale) {  // L4: the kept record
        fx.l4_sent = l4_[h].own_total != 0;
        fx.l4_acked = x.ctl == nullptr;
        fx.since_send_ms = whole_ms(now_tsc_ - x.last_send_tsc, ms_tsc_);
        fx.acks_seen = e.f->ack_seen[0] && e.f->ack_seen[1];
    }
    run(Event{EventKind::kTimer, BatchOp::kClientCheckSynAck}, fx, e);
    // A flow from outside the timer refused (a UDP peer that never took part in a handshake,
    // decided by the ACL) leaves no entry, as one refused at its first packet does.
    if (live && flows_->in_use(static_cast<uint32_t>(x.pos)) && refused_from_outside(*e.f)) {
        set_peer(*e.f, nullptr);
        remove_flow(x.pos, *e.f, EndReason::kEnd);
        ids_.flows_retired.add();
    }
}

void Stage::arm_timer(uint32_t hs, int32_t pos) {
    HandshakeCtx &x = hs_[hs];
    x.armed = true;
    x.pos = pos;
    x.tries = 0;
    x.started_tsc = now_tsc_;
    if (!x.listed) {
        x.listed = true;
        timers_.push_back(hs);  // capacity reserved for every context: never reallocates
    }
}

void Stage::run_timers() {
    for (size_t i = 0; i < timers_.size();) {
        const uint32_t h = timers_[i];
        if (!hs_[h].armed) {
            hs_[h].listed = false;
            timers_[i] = timers_.back();
            timers_.pop_back();
            continue;
        }
        timer_event(h);
        ++i;
    }
}

// ---------------------------------------------------------------------------------------------
// actions

[[gnu::always_inline]] inline void Stage::apply(const Action &a, Ev &e) {
    if (is_fate(a.kind)) {
        fate(a, e);
        return;
    }
    Flow &f = *e.f;
    switch (a.kind) {
        case Act::kTrackSeq: {
            // In the hosts' numbers: an L4 flow's segment from the wire still carries the wire's
            // (it is shifted as it is forwarded), and during the exchange the peer enforcer's
            // segments acknowledge record bytes no host sent (docs/l4-mode.md).
            const Pkt &k = *e.k;
            if (k.arrival == kOutside && k.v.proto == kProtoTcp) {
                if (f.parked & kL4Bit) {
                    Pkt h = k;
                    h.v.ack -= shift_[static_cast<uint32_t>(e.pos)].ins[f.local_side];
                    track_seq(f, h);
                    return;
                }
                if ((f.auth == dp::Auth::kL4ClientWait || f.auth == dp::Auth::kL4ServerWait) &&
                    f.hs != kNil) {
                    const L4Ctx &l = l4_[f.hs];
                    const uint32_t base = l.own_end - l.own_total;  // our host's ISN + 1
                    if (int32_t(k.v.ack - base) > 0) return;
                }
            }
            track_seq(f, k);
            return;
        }
        case Act::kSetLocalSide:
            f.local_side = e.k->arrival == kInside ? e.k->side : e.k->side ^ 1;
            return;
        case Act::kSetRole:
            f.role = a.a;
            return;
        case Act::kSetAuth:
            f.auth = static_cast<dp::Auth>(a.a);
            // A TCP flow gets the established timeout only once authorized (the worker keeps
            // it in the handshake class until then: a blind ACK must not pin it for an hour).
            if ((f.auth == dp::Auth::kAllowed || f.auth == dp::Auth::kClientAck ||
                 f.auth == dp::Auth::kL4ClientConfirm) &&
                e.proto == kProtoTcp)
                flows_->touch(e.pos, now_tsc_, timeout_class_for(kProtoTcp, f.state));
            // A refused flow is held down: its tuple is tried again once the entry expires.
            else if (f.auth == dp::Auth::kRejected)
                flows_->touch(e.pos, now_tsc_, kRejectedHold);
            return;
        case Act::kSetInitiator:
            f.init_side = static_cast<To>(a.a) == To::kSource ? e.k->side : e.k->side ^ 1;
            return;
        case Act::kSetPeer:
            set_peer(f, static_cast<PeerFrom>(a.a) == PeerFrom::kLooked ? e.looked : nullptr);
            return;
        case Act::kSetDecidedVersion:
            f.decided_version = st_->policy->version();
            return;
        case Act::kAllocHs: {
            const auto from = static_cast<PuFrom>(a.a);
            f.hs = alloc_hs(e.pos, f, e.proto);  // the machine asked hs_pool first (or freed
                                                 // the flow's own)
            hs_[f.hs].local_pu = from == PuFrom::kClassified  ? e.classified_pu
                                 : from == PuFrom::kHandshake ? e.hs_pu
                                                              : e.local_pu;
            return;
        }
        case Act::kFillHs: {
            HandshakeCtx &x = hs_[f.hs];
            switch (static_cast<HsFill>(a.a)) {
                case HsFill::kClientClaims:
                    x.client_hash = e.claims->hash;
                    x.local_pub = e.claims->claims.ephemeral_pub;
                    if (e.k && e.proto == kProtoTcp) x.client_isn = e.k->v.seq;
                    return;
                case HsFill::kServerSyn: {
                    const crypto::wire::TokenView &t = e.proto == kProtoUdp ? e.msg.token : e.tok;
                    std::memcpy(x.client_nonce, t.nonce, 16);
                    x.client_hash = e.looked->claims.hash();
                    // Kept for the claims' lifetime (3 x key rotation = 1.5 x the session key's).
                    std::array<uint8_t, 16> nk;
                    std::memcpy(nk.data(), t.nonce, 16);
                    syn_nonces_->insert(nk, now_unix_ + idr_->session_key_lifetime_s * 3 / 2,
                                        now_unix_) = flows_->hash(flows_->key_at(e.pos));
                    return;
                }
                case HsFill::kServerClaims:
                    x.server_hash = e.claims->hash;
                    x.local_pub = e.claims->claims.ephemeral_pub;
                    return;
                case HsFill::kSynAckIn: {
                    const crypto::wire::TokenView &t = e.proto == kProtoUdp ? e.msg.token : e.tok;
                    std::memcpy(x.server_nonce, t.nonce, 16);
                    x.server_hash = e.looked->claims.hash();
                    return;
                }
                case HsFill::kL4Isn:
                case HsFill::kL4R1In:
                case HsFill::kL4R2In:
                    l4_fill(static_cast<HsFill>(a.a), e);
                    return;
                case HsFill::kCount:
                    return;
            }
            return;
        }
        case Act::kFreeHs:
            free_hs(f);
            return;
        case Act::kRecord: {
            const auto why = static_cast<DropReason>(a.a);
            const auto from = static_cast<PeerFrom>(a.c);
            const PeerIdentity *p = from == PeerFrom::kLooked ? e.looked
                                    : from == PeerFrom::kFlow ? f.peer
                                                              : nullptr;
            const policy::Decision d = static_cast<DecisionFrom>(a.b) == DecisionFrom::kDecided
                                           ? e.decision
                                           : policy::Decision{};
            // A refused identity carries why the slow path refused it.
            uint8_t claims_reason = 0;
            if ((why == DropReason::ClaimsInvalid || why == DropReason::CertificateRevoked) &&
                e.looked)
                claims_reason = static_cast<uint8_t>(e.looked->status);
            record(e.pos, f, d, why, p, claims_reason);
            return;
        }
        case Act::kRecordException:
            record_exception(e.pos, f);
            return;
        case Act::kRst:
            send_reset(*e.k,
                       static_cast<To>(a.a) == To::kInitiator ? f.init_side : f.init_side ^ 1);
            return;
        case Act::kCutRsts:
            cut_rsts(e.pos, f);
            return;
        case Act::kMidstreamRsts:
            midstream_rsts(*e.k);
            return;
        case Act::kCutReset:
            cut_reset(e.pos, f);
            return;
        case Act::kSendConfirm:
            send_confirm(*e.k, a.a ? e.conf->mac : hs_[f.hs].confirm_mac);
            return;
        case Act::kStoreConfirmation: {
            Confirmation &c =
                confirms_->insert(confirm_key(e.pos), now_unix_ + kConfirmKeepS, now_unix_);
            std::memcpy(c.mac, hs_[f.hs].confirm_mac, crypto::wire::kMacLen);
            c.last_tsc = now_tsc_;
            return;
        }
        case Act::kTouchConfirmation:
            e.conf->last_tsc = now_tsc_;
            return;
        case Act::kRememberPlainPeer: {
            // The server (address, protocol, port): the packet's source, or the flow's peer.
            const FlowKey &key = flows_->key_at(e.pos);
            const uint8_t peer_side = f.local_side ^ 1;
            const PlainKey pk = a.a ? plain_key(peer_addr(e.pos, f), key.proto,
                                                peer_side == kSideA ? key.pa : key.pb)
                                    : plain_key(e.k->v.src, e.k->v.proto, e.k->v.sport);
            plain_peers_->insert(pk, now_unix_ + kPlainPeerS, now_unix_) = 1;
            return;
        }
        case Act::kRememberL4Peer:
            l4_peers_->insert(plain_key(e.k->v.src, e.k->v.proto, e.k->v.sport),
                              now_unix_ + kL4PeerS, now_unix_) = 1;
            return;
        case Act::kReleaseHeld:
            release_held(f, e.pos);
            return;
        case Act::kDropHeld:
            drop_held(f, static_cast<DropReason>(a.a));
            return;
        case Act::kRestart:
            restart_flow(f);
            return;
        case Act::kCount:
            counter(static_cast<Counter>(a.a)).add();
            return;
        case Act::kCountDrop:
            wstats_->drops[a.a].add();
            return;
        case Act::kSendUdp:
            send_udp(static_cast<UdpMsg>(a.a), static_cast<To>(a.b), a.c, e);
            return;
        case Act::kResend:
            udp_resend(f.hs);
            return;
        case Act::kArmTimer:
            arm_timer(f.hs, e.pos);
            return;
        case Act::kIncTries:
            ++hs_[f.hs].tries;
            return;
        case Act::kResetTries:
            hs_[f.hs].tries = 0;
            return;
        case Act::kDisarm:
            hs_[e.timer_hs].armed = false;
            return;
        case Act::kStartRetag:
            // One job per identity, not per flow; the sweep comes back once the answer is in.
            if (SlowJob *j = take_job()) {
                retag_job(j, f.peer);
                if (rte_ring_sp_enqueue(idr_->slow_req[id_], j) != 0) {
                    j->target = nullptr;
                    f.peer->retag_pending = false;
                    unpin(f.peer);
                    free_jobs_.push_back(j);
                }
            }
            return;
        case Act::kSweepIncomplete:
            reeval_incomplete_ = true;
            return;
        case Act::kRemoveFlow:
            // After the kExpire actions (held packets, context and peer are gone).
            remove_flow(e.pos, f, EndReason::kIdle);
            return;
        case Act::kL4Send:
            l4_send(a.a, e);
            return;
        case Act::kL4Resend:
            l4_resend(f.hs);
            return;
        case Act::kL4Acked:
            if (f.hs != kNil && hs_[f.hs].ctl) {
                rte_pktmbuf_free(hs_[f.hs].ctl);
                hs_[f.hs].ctl = nullptr;
            }
            return;
        case Act::kL4AckPeer:
            l4_ack_peer(e);
            return;
        case Act::kL4Shift:
            l4_shift_on(e);
            return;
        case Act::kClampMss: {
            Pkt &k = *e.k;
            if (k.v.opt.mss > 24 && clamp_mss(k.m, k.v, static_cast<uint16_t>(k.v.opt.mss - 24)))
                fix_checksums(k.m, k.v, idr_->tx_csum[k.arrival ^ 1]);
            return;
        }
        default:
            return;
    }
}

// The packet's one fate.
void Stage::fate(const Action &a, Ev &e) {
    Pkt &k = *e.k;
    Flow &f = *e.f;
    switch (a.kind) {
        case Act::kForward:
            // A shifted L4 flow's segment is translated as it leaves: towards the wire in wire
            // numbers, towards its host in the host's (the step read the wire's: its facts
            // compare them with the records' positions).
            if ((f.parked & kL4Bit) && k.v.proto == kProtoTcp)
                l4_translate(k, k.arrival == kOutside);
            forward(k);
            return;
        case Act::kDrop:
            drop(k, static_cast<DropReason>(a.a));
            return;
        case Act::kHold:
            if (const DropReason why = hold(f, k.pos, k.m); why != DropReason::None) drop(k, why);
            return;
        case Act::kPark:
            park_job(a, e);
            return;
        case Act::kDefer:
            deferred_[deferred_n_++] = k;
            return;
        case Act::kConsume:
            rte_pktmbuf_free(k.m);
            return;
        case Act::kQueueMacs: {
            const PeerIdentity *p =
                static_cast<PeerFrom>(a.b) == PeerFrom::kFlow ? f.peer : e.looked;
            const policy::Decision d = static_cast<DecisionFrom>(a.c) == DecisionFrom::kDecided
                                           ? e.decision
                                           : policy::Decision{};
            queue_macs(k, static_cast<BatchOp>(a.a), p, d, *e.hk);
            // A's check of R2: the MAC it carried (its bytes leave the reassembly buffer).
            if (static_cast<BatchOp>(a.a) == BatchOp::kL4ClientCheckR2)
                std::memcpy(batch_[batch_n_ - 1].r2_mac, e.tok.mac, crypto::wire::kMacLen);
            return;
        }
        case Act::kSnoopDns:
            if (!snoop_dns(k)) forward(k);
            return;
        default:
            return;
    }
}

// A slow-path job for the flow; its packets wait (held) until the answer is in.
void Stage::park_job(const Action &a, Ev &e) {
    Pkt &k = *e.k;
    SlowJob *j = take_job();
    if (!j) {
        drop(k, DropReason::SlowpathBusy);
        return;
    }
    switch (static_cast<Job>(a.a)) {
        case Job::kVerify: {
            const std::span<const uint8_t> blob =
                e.proto == kProtoUdp ? e.msg.token.claims : e.tok.claims;
            j->kind = SlowJob::kVerify;
            j->cache_key = e.peer_key;
            j->blob_len = static_cast<uint32_t>(blob.size());
            std::memcpy(j->blob, blob.data(), blob.size());
            break;
        }
        case Job::kRetag:
            retag_job(j, const_cast<PeerIdentity *>(e.looked));
            break;
        case Job::kSessionKey:
        case Job::kCount:
            j->kind = SlowJob::kSessionKey;
            j->local_pub = e.key_local;
            j->peer_pub = e.key_peer;
            j->local_role = e.key_role;
            break;
    }
    park(k, j);
}

}  // namespace segwire::dp::identity
