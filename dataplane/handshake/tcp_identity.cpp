// The identity stage of a worker: classification, the TCP identity handshake in both roles,
// ACL fallbacks, verdicts, per-flow holding, batched HMACs, the slow-path hand-off and flow
// records. docs/handshake.md explains the states; docs/protocol.md the bytes.
#include <arpa/inet.h>

#include <algorithm>
#include <cstring>

#include <rte_jhash.h>
#include <rte_mbuf.h>
#include <rte_ring.h>
#include <rte_ring_elem.h>

#include "config/policy/syntax.hpp"
#include "dataplane/dns/fqdn_set.hpp"
#include "dataplane/worker/worker.hpp"

namespace segwire::dp {

using crypto::wire::MsgType;
using crypto::wire::WireStatus;
using policy::Direction;
using policy::Verdict;

namespace {

constexpr uint8_t kParked = 1;         // Flow::parked: waiting for the slow path
constexpr uint8_t kInBatch = 2;        // Flow::parked: an HMAC batch op of this burst is pending
constexpr uint32_t kPlainPeerS = 60;   // a server without enforcer is remembered this long
constexpr uint32_t kConfirmKeepS = 3;  // B answers late proofs with its confirmation this long

bool is_syn(const PacketView &v) {
    return (v.tcp_flags & (kTcpSyn | kTcpAck)) == kTcpSyn;
}
bool is_synack(const PacketView &v) {
    return (v.tcp_flags & (kTcpSyn | kTcpAck)) == (kTcpSyn | kTcpAck);
}

// ICMP errors and IPv6 neighbour discovery serve connections that are already decided (and PMTU
// discovery must not be broken by port-based rules), so they pass untouched.
bool icmp_control(const PacketView &v) {
    if (v.proto == kProtoIcmp) return v.icmp_type == 3 || v.icmp_type == 11 || v.icmp_type == 12;
    if (v.proto == kProtoIcmp6)
        return v.icmp_type < 128 || (v.icmp_type >= 133 && v.icmp_type <= 137);
    return false;
}

uint16_t policy_port(const PacketView &v) {
    if (v.proto == kProtoIcmp || v.proto == kProtoIcmp6)
        return policy::icmp_key(v.icmp_type, v.icmp_code);
    return v.dport;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// small helpers

policy::IpAddr Worker::addr_of(const IpAddr &a, uint8_t family) const {
    if (family == 6) return policy::IpAddr::from_v6(a.b);
    uint32_t v4;
    std::memcpy(&v4, a.b, 4);
    return policy::IpAddr::from_v4(ntohl(v4));
}

crypto::wire::FlowBinding Worker::binding_of(const Flow &f, int32_t pos) const {
    const FlowKey &k = flows_.key_at(pos);
    const bool a_client = f.init_side == kSideA;
    const IpAddr &c = a_client ? k.a : k.b;
    const IpAddr &s = a_client ? k.b : k.a;
    const uint16_t cp = a_client ? k.pa : k.pb, sp = a_client ? k.pb : k.pa;
    return k.family == 6 ? crypto::wire::FlowBinding::ipv6(k.proto, c.b, cp, s.b, sp)
                         : crypto::wire::FlowBinding::ipv4(k.proto, c.b, cp, s.b, sp);
}

void Worker::forward(Pkt &k) {
    enqueue_tx(k.m, k.arrival ^ 1);
}

void Worker::drop(Pkt &k, DropReason r) {
    stats_.drops[static_cast<size_t>(r)].add();
    rte_pktmbuf_free(k.m);
}

uint32_t Worker::alloc_hs() {
    uint32_t i = hs_free_;
    if (i == kNil) return i;
    hs_free_ = hs_[i].next_free;
    HandshakeCtx &x = hs_[i];
    x.ctl = nullptr;
    x.armed = false;
    x.tries = 0;
    return i;
}

void Worker::free_hs(Flow &f) {
    if (f.hs == kNil) return;
    HandshakeCtx &x = hs_[f.hs];
    if (x.ctl) {
        rte_pktmbuf_free(x.ctl);
        x.ctl = nullptr;
    }
    x.armed = false;
    x.next_free = hs_free_;
    hs_free_ = f.hs;
    f.hs = kNil;
}

// Remembers what each host has acknowledged: an RST we forge for host X must carry exactly the
// sequence number X expects next (RFC 5961: anything else only earns a challenge ACK), and that is
// the ACK number X itself last sent. Token bytes never enter it: hosts never acknowledge them.
void Worker::track_seq(Flow &f, const Pkt &k) {
    if (k.v.proto != kProtoTcp || !(k.v.tcp_flags & kTcpAck)) return;
    uint32_t &a = f.ack_seen[k.side];
    if (a == 0 || int32_t(k.v.ack - a) > 0) a = k.v.ack;
}

void Worker::restart_flow(Flow &f) {
    while (rte_mbuf *m = holds_.pop(f.hold)) {
        stats_.drops[static_cast<size_t>(DropReason::FlowRejected)].add();
        rte_pktmbuf_free(m);
    }
    free_hs(f);
    set_peer(f, nullptr);
    f.auth = Auth::kNew;
    f.role = kRoleNone;
    f.decided_version = 0;
    f.ack_seen[0] = f.ack_seen[1] = 0;
}

void Worker::release_held(Flow &f) {
    while (rte_mbuf *m = holds_.pop(f.hold)) {
        enqueue_tx(m, side_of(m) ^ 1);
    }
}

// ---------------------------------------------------------------------------------------------
// records

// The connection as its initiator sent it.
void Worker::fill_endpoints(FlowRecordEvent &e, int32_t pos, const Flow &f) const {
    const FlowKey &key = flows_.key_at(pos);
    const bool a_init = f.init_side == kSideA;
    e.src = a_init ? key.a : key.b;
    e.dst = a_init ? key.b : key.a;
    e.sport = a_init ? key.pa : key.pb;
    e.dport = a_init ? key.pb : key.pa;
    e.local_is_source = f.local_side == f.init_side;
}

void Worker::record(const Pkt &k, const Flow &f, const policy::Decision &d, DropReason why,
                    const PeerIdentity *peer, uint8_t claims_reason) {
    if (d.logs_disabled && why == DropReason::None) return;
    FlowRecordEvent e{};
    e.policy_version = st_ && st_->policy ? st_->policy->version() : 0;
    e.timestamp = now_unix_;
    e.kind = RecordKind::kFlow;
    e.family = k.v.family;
    e.proto = k.v.proto;
    e.action = static_cast<uint8_t>(d.action);
    e.observed_action = static_cast<uint8_t>(d.observed_action);
    e.reason = static_cast<uint8_t>(d.reason);
    e.drop_reason = why;
    e.claims_reason = claims_reason;
    fill_endpoints(e, k.pos, f);
    const FlowKey &key = flows_.key_at(k.pos);
    e.peer_kind = peer ? PeerKind::kClaims : PeerKind::kExternal;
    e.local_pu = f.hs != kNil ? hs_[f.hs].local_pu : policy::kNone;
    if (e.local_pu == policy::kNone && st_ && st_->policy) {
        const IpAddr &local = f.local_side == kSideA ? key.a : key.b;
        e.local_pu = st_->policy->find_pu(addr_of(local, key.family));
    }
    e.policy = d.policy;
    e.observed_policy = d.observed_policy;
    e.rule_name = d.rule_name;
    e.observed_rule = d.observed_rule_name;
    e.observation = d.observed_action != Verdict::kNotApplicable;
    if (peer && peer->status == crypto::ClaimsReason::Ok) {
        auto id = peer->claims.pu_id();
        std::memcpy(e.peer_id, id.data(), std::min(id.size(), sizeof(e.peer_id) - 1));
    }
    ids_.records.add();
    if (!idr_->records[s_.id] || rte_ring_sp_enqueue_elem(idr_->records[s_.id], &e, sizeof(e)) != 0)
        ids_.records_lost.add();
}

void Worker::record_exception(int32_t pos, const Flow &f) {
    FlowRecordEvent e{};
    e.policy_version = st_ && st_->policy ? st_->policy->version() : 0;
    e.timestamp = now_unix_;
    e.kind = RecordKind::kConnectionException;
    e.family = flows_.key_at(pos).family;
    e.proto = flows_.key_at(pos).proto;
    fill_endpoints(e, pos, f);
    e.local_pu = f.hs != kNil ? hs_[f.hs].local_pu : policy::kNone;
    e.drop_reason = DropReason::HandshakeExpired;
    e.hs_state = f.auth == Auth::kClientSyn || f.auth == Auth::kUdpClientSyn
                     ? HsState::kSynTransmitted
                 : f.auth == Auth::kServerSynAck || f.auth == Auth::kUdpServerSynAck
                     ? HsState::kSynAckTransmitted
                 : f.auth == Auth::kClientAck ? HsState::kAckTransmitted
                                              : HsState::kNone;
    e.policy = e.observed_policy = e.rule_name = e.observed_rule = policy::kNone;
    ids_.exceptions.add();
    if (!idr_->records[s_.id] || rte_ring_sp_enqueue_elem(idr_->records[s_.id], &e, sizeof(e)) != 0)
        ids_.records_lost.add();
}

// Called by the flow table just before an idle flow is removed.
void Worker::on_flow_removed(int32_t pos, Flow &f) {
    if (f.auth == Auth::kClientSyn || f.auth == Auth::kServerSynAck || f.auth == Auth::kServerSyn ||
        f.auth == Auth::kClientAck || f.auth == Auth::kUdpClientSyn ||
        f.auth == Auth::kUdpServerSynAck)
        record_exception(pos, f);
    while (rte_mbuf *m = holds_.pop(f.hold)) {
        stats_.drops[static_cast<size_t>(DropReason::HandshakeExpired)].add();
        rte_pktmbuf_free(m);
    }
    free_hs(f);
    set_peer(f, nullptr);
}

// ---------------------------------------------------------------------------------------------
// RSTs and verdicts

// An RST addressed to the host on `to_side` (canonical side), as if its peer had sent it.
void Worker::send_reset(const Pkt &k, uint8_t to_side) {
    const Flow &f = flows_.at(k.pos);
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
    enqueue_tx(r, out);
}

// Refuses a TCP flow: RST to the initiator (and to the responder when it already saw the SYN).
void Worker::reject_tcp(Pkt &k, bool reset_peer_side, DropReason why) {
    Flow &f = flows_.at(k.pos);
    if (idr_->reject_with_rst) {
        send_reset(k, f.init_side);
        if (reset_peer_side) send_reset(k, f.init_side ^ 1);
    }
    f.auth = Auth::kRejected;
    ids_.rejected.add();
    while (rte_mbuf *m = holds_.pop(f.hold)) {
        stats_.drops[static_cast<size_t>(DropReason::FlowRejected)].add();
        rte_pktmbuf_free(m);
    }
    free_hs(f);
    drop(k, why);
}

void Worker::apply_acl_verdict(Pkt &k, const policy::Decision &d, Direction) {
    Flow &f = flows_.at(k.pos);
    f.decided_version = st_->policy->version();
    ids_.acl_decisions.add();
    if (d.action == Verdict::kAccept) {
        record(k, f, d, DropReason::None, nullptr);
        f.auth = Auth::kAllowed;
        free_hs(f);
        ids_.authorized.add();
        release_held(f);
        // A TCP segment from a peer decided by address may still carry segwire's option (a
        // proof for a flow this enforcer forgot): hosts never see it.
        if (k.arrival == kOutside && !scrub_if_marked(k)) return;
        forward(k);
        return;
    }
    record(k, f, d, DropReason::PolicyReject, nullptr);
    if (k.v.proto == kProtoTcp) {
        // At the client side a SYN-ACK already reached us: the server must forget the connection.
        reject_tcp(k, f.role == kRoleClient && is_synack(k.v));
    } else {
        f.auth = Auth::kRejected;
        ids_.rejected.add();
        drop_held(f, DropReason::PolicyReject);
        free_hs(f);
        drop(k, DropReason::PolicyReject);
    }
}

void Worker::decide_without_identity(Pkt &k, uint32_t pu, Direction dir) {
    Flow &f = flows_.at(k.pos);
    const FlowKey &key = flows_.key_at(k.pos);
    const IpAddr &peer = f.local_side == kSideA ? key.b : key.a;
    set_peer(f, nullptr);
    // Rules name the responder's port, whichever packet (SYN, SYN-ACK, first datagram) decides.
    uint16_t port = policy_port(k.v);
    if (k.v.proto == kProtoTcp || k.v.proto == kProtoUdp)
        port = f.init_side == kSideA ? key.pb : key.pa;
    apply_acl_verdict(k, decide_by_address(pu, dir, peer, key.family, k.v.proto, port), dir);
}

// The ACL decision for a peer without identity: the external networks its address is in, plus
// those it was learned for from DNS answers. The learned set is read from the newest published
// state, not the one this loop started with: a DNS answer this or another worker released a
// moment ago is then already matched (the answer is held until the set that has its addresses
// is published, docs/dns.md). Reading a newer RCU object before our next quiescent point is safe.
policy::Decision Worker::decide_by_address(uint32_t pu, Direction dir, const IpAddr &peer,
                                           uint8_t family, uint8_t proto, uint16_t port) {
    const policy::PolicySnapshot &pol = *st_->policy;
    const policy::IpAddr addr = addr_of(peer, family);
    const EnforcerState *fresh = idr_->state->current();
    const dns::FqdnSet *fq = fresh ? fresh->fqdn.get() : nullptr;
    if (fq && fq->snapshot_version() == pol.version()) {
        std::span<const uint32_t> learned = family == 6 ? fq->networks_for(peer.b, now_unix_)
                                                        : fq->networks_for_v4(peer.b, now_unix_);
        if (!learned.empty()) {
            // Not cached: learned sets change without a new snapshot version.
            ids_.fqdn_decisions.add();
            return pol.decide(pu, dir, addr, proto, port, learned);
        }
    }
    return decisions_->decide(pol, pu, dir, addr, proto, port);
}

// A DNS answer (UDP or TCP from port 53) to a local PU goes to the slow path with its mbuf: it is
// parsed there, reported, and what it teaches for hostname entries is published before the
// answer is sent on. Without a free job the answer goes on unsnooped (counted), never waits.
bool Worker::snoop_dns(Pkt &k) {
    SlowJob *j = take_job();
    if (!j) {
        ids_.dns_unsnooped.add();
        return false;
    }
    j->kind = SlowJob::kDns;
    j->mbuf = k.m;
    j->dns_off = k.v.payload_off;
    j->dns_len = k.v.payload_len;
    j->dns_tcp = k.v.proto == kProtoTcp;
    j->family = k.v.family;
    std::memcpy(j->client, k.v.dst.b, 16);
    j->pu = st_->policy->find_pu(addr_of(k.v.dst, k.v.family));
    j->policy_version = st_->policy->version();
    if (rte_ring_sp_enqueue(idr_->slow_req[s_.id], j) != 0) {
        free_jobs_.push_back(j);
        ids_.dns_unsnooped.add();
        return false;
    }
    ids_.dns_snooped.add();
    return true;
}

// ---------------------------------------------------------------------------------------------
// option and token edits

// Adds the marker option and the token; the packet is untouched when it returns a reason (the
// caller decides whether that drops it or sends it on without identity, and counts it once).
DropReason Worker::add_identity(Pkt &k, MsgType type, const uint8_t nonce[16],
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

bool Worker::strip_identity(Pkt &k, size_t token_len) {
    alignas(8) uint8_t out[crypto::wire::kTcpOptionSpace];
    crypto::wire::OptionEdit e = crypto::wire::strip_tcp_option(
        tcp_options(k.m, k.v), std::span<uint8_t, crypto::wire::kTcpOptionSpace>(out));
    if (e.status != WireStatus::Ok) return false;
    return rewrite_tcp(k.m, k.v, std::span<const uint8_t>(out, e.length),
                       static_cast<uint32_t>(token_len), {}, 65535,
                       idr_->tx_csum[k.arrival ^ 1]) == RewriteStatus::Ok;
}

bool Worker::add_ack_proof(Pkt &k, const uint8_t *mac) {
    uint8_t opt[crypto::wire::kAckOptLen];
    crypto::wire::write_tcp_option(opt, MsgType::Ack, mac);
    alignas(8) uint8_t out[crypto::wire::kTcpOptionSpace];
    crypto::wire::OptionEdit e = crypto::wire::add_tcp_option(
        tcp_options(k.m, k.v), opt, std::span<uint8_t, crypto::wire::kTcpOptionSpace>(out), false);
    if (e.status != WireStatus::Ok) return false;
    return rewrite_tcp(k.m, k.v, std::span<const uint8_t>(out, e.length), 0, {},
                       idr_->mtu[k.arrival ^ 1], idr_->tx_csum[k.arrival ^ 1]) == RewriteStatus::Ok;
}

// Removes segwire's option (and on a SYN or SYN-ACK its token) from a packet on its way to a host:
// end hosts never see either, in any state (docs/protocol.md §4.2). False: dropped.
bool Worker::scrub_identity(Pkt &k, const crypto::wire::TcpOptionView &ov) {
    size_t token_len = 0;
    if ((k.v.tcp_flags & kTcpSyn) && (ov.type == MsgType::Syn || ov.type == MsgType::SynAck)) {
        crypto::wire::TokenView tok;
        if (token_of(k, tok) != WireStatus::Ok) {
            drop(k, DropReason::TokenMalformed);
            return false;
        }
        token_len = tok.token_len;
    }
    if (!strip_identity(k, token_len)) {
        drop(k, DropReason::TokenMalformed);
        return false;
    }
    ids_.options_scrubbed.add();
    return true;
}

// scrub_identity for a packet that may carry the option: one parsed field tested first.
bool Worker::scrub_if_marked(Pkt &k) {
    if (k.v.proto != kProtoTcp || !k.v.opt.exp_off) return true;
    crypto::wire::TcpOptionView ov;
    const WireStatus ws = crypto::wire::find_tcp_option(tcp_options(k.m, k.v), ov);
    if (ws == WireStatus::NotPresent) return true;
    if (ws != WireStatus::Ok) {
        drop(k, DropReason::TokenMalformed);
        return false;
    }
    return scrub_identity(k, ov);
}

// The server side's confirmation that it verified A's proof: a bare ACK from the server's address
// carrying the Confirm option, which A consumes (docs/protocol.md §4.3). `k` is the client
// segment that carried the proof; the confirmation takes its reverse direction.
void Worker::send_confirm(const Pkt &k, const uint8_t *mac) {
    alignas(4) uint8_t opt[24];
    crypto::wire::write_tcp_option(opt, MsgType::Confirm, mac);
    std::memset(opt + crypto::wire::kAckOptLen, 1, sizeof opt - crypto::wire::kAckOptLen);  // NOPs
    // seq: what the client expects next from the server; ack: up to this segment's start.
    rte_mbuf *r = build_tcp_control(idr_->pool, k.m, k.v, true, k.v.ack, k.v.seq, kTcpAck, 0xffff,
                                    opt, idr_->tx_csum[k.arrival]);
    if (!r) return;
    ids_.confirms_sent.add();
    enqueue_tx(r, k.arrival);
}

// The confirmation cache's key for a flow: its slot and creation time (a later flow in the same
// slot never finds an earlier flow's confirmation).
std::array<uint8_t, 8> Worker::confirm_key(int32_t pos) const {
    std::array<uint8_t, 8> ck;
    const uint32_t p = static_cast<uint32_t>(pos);
    const uint32_t c = static_cast<uint32_t>(flows_.at(pos).created_tsc);
    std::memcpy(ck.data(), &p, 4);
    std::memcpy(ck.data() + 4, &c, 4);
    return ck;
}

// ---------------------------------------------------------------------------------------------
// peer identities: cached, and pinned by the flows that name them

void Worker::free_identity(PeerIdentity *p) {
    // The slow path frees what workers hand back (the worker never calls delete).
    if (rte_ring_sp_enqueue(idr_->garbage[s_.id], p) != 0) ids_.identities_lost.add();
}

void Worker::unpin(PeerIdentity *p) {
    if (--p->pins == 0 && !p->cached) free_identity(p);
}

void Worker::uncache(PeerIdentity *p) {
    p->cached = false;
    if (p->pins == 0) free_identity(p);
}

void Worker::set_peer(Flow &f, const PeerIdentity *p) {
    auto *np = const_cast<PeerIdentity *>(p);  // the worker owns every identity it references
    if (f.peer == np) return;
    if (np) ++np->pins;
    PeerIdentity *old = f.peer;
    f.peer = np;
    if (old) unpin(old);
}

// A job asking the slow path for `target`'s tags under the current snapshot.
void Worker::retag_job(SlowJob *j, PeerIdentity *target) {
    j->kind = SlowJob::kRetag;
    j->cache_key = target->cache_key;
    j->expires_at = target->expires_at;
    j->blob_len = target->blob_len;
    std::memcpy(j->blob, target->blob, target->blob_len);
    j->target = target;
    ++target->pins;
    target->retag_pending = true;
}

// ---------------------------------------------------------------------------------------------
// caches and the slow path

SlowJob *Worker::take_job() {
    if (free_jobs_.empty()) return nullptr;
    SlowJob *j = free_jobs_.back();
    free_jobs_.pop_back();
    j->worker = static_cast<uint16_t>(s_.id);
    j->pos = -1;
    j->peer = nullptr;
    j->target = nullptr;
    j->key_ok = false;
    return j;
}

// Holds the packet and, when `job` is given, sends it to the slow path; the flow is re-run when
// any answer comes back. A flow parks at most once at a time.
bool Worker::park(Pkt &k, SlowJob *job) {
    Flow &f = flows_.at(k.pos);
    if (job) {
        job->pos = k.pos;
        job->flow_created = f.created_tsc;
        if (rte_ring_sp_enqueue(idr_->slow_req[s_.id], job) != 0) {
            if (PeerIdentity *t = job->target) {  // a retag that never left: give its pin back
                job->target = nullptr;
                t->retag_pending = false;
                unpin(t);
            }
            free_jobs_.push_back(job);
            drop(k, DropReason::SlowpathBusy);
            return false;
        }
        ids_.slow_jobs.add();
    }
    if (!holds_.push(f.hold, k.m)) {
        drop(k, DropReason::HoldFull);
        return false;
    }
    if (!(f.parked & kParked)) {
        f.parked |= kParked;
        ids_.parked.add();
    }
    return true;
}

// The verified identity for a claims blob, or nullptr when the packet was parked (or dropped)
// because the slow path must verify it first or re-tag it for a new snapshot.
// The peer cache entry for exactly this blob (any snapshot), or nullptr; `key` is its cache key.
const PeerIdentity *Worker::cached_peer(std::span<const uint8_t> blob, uint64_t &key) const {
    uint32_t h1 = jhash_seed_[0], h2 = jhash_seed_[1];
    rte_jhash_2hashes(blob.data(), static_cast<uint32_t>(blob.size()), &h1, &h2);
    key = (uint64_t(h1) << 32 | h2) | 1;  // never 0: 0 means "no identity" in a flow
    std::array<uint8_t, 8> ck;
    std::memcpy(ck.data(), &key, 8);
    PeerIdentity **slot = peers_->find(ck, now_unix_);
    if (slot && *slot && (*slot)->blob_len == blob.size() &&
        std::memcmp((*slot)->blob, blob.data(), blob.size()) == 0)
        return *slot;
    return nullptr;
}

// Under a flood of unknown claims the slow path's job pool runs dry, and an identity SYN whose
// claims are not cached would be dropped `slowpath-busy` anyway - after a flow entry was made for
// it. Refuse it before: a flood then neither fills the flow table nor costs an insert and an
// expiry per forged SYN. SYNs from peers already verified still get through.
bool Worker::admit_new_flow(const rte_mbuf *m, const PacketView &v, uint8_t arrival) {
    if (!free_jobs_.empty() || arrival != kOutside || v.proto != kProtoTcp || !is_syn(v) ||
        !v.payload_len)
        return true;
    crypto::wire::TokenView tok;
    if (crypto::wire::parse_token(
            {rte_pktmbuf_mtod(m, const uint8_t *) + v.payload_off, v.payload_len}, tok) !=
        WireStatus::Ok)
        return true;  // no token: the ACL decides, no slow path needed
    uint64_t key;
    const PeerIdentity *p = cached_peer(tok.claims, key);
    if (p && (p->status != crypto::ClaimsReason::Ok ||
              p->tags.snapshot_version() == st_->policy->version()))
        return true;
    stats_.drops[static_cast<size_t>(DropReason::SlowpathBusy)].add();
    return false;
}

const PeerIdentity *Worker::lookup_peer(Pkt &k, std::span<const uint8_t> blob, uint64_t &key) {
    if (const PeerIdentity *p = cached_peer(blob, key)) {
        if (p->status != crypto::ClaimsReason::Ok ||
            p->tags.snapshot_version() == st_->policy->version()) {
            ids_.peer_cache_hits.add();
            return p;
        }
        SlowJob *j = take_job();
        if (!j) {
            drop(k, DropReason::SlowpathBusy);
            return nullptr;
        }
        retag_job(j, const_cast<PeerIdentity *>(p));
        park(k, j);
        return nullptr;
    }
    ids_.peer_cache_misses.add();
    SlowJob *j = take_job();
    if (!j) {
        drop(k, DropReason::SlowpathBusy);
        return nullptr;
    }
    j->kind = SlowJob::kVerify;
    j->cache_key = key;
    j->blob_len = static_cast<uint32_t>(blob.size());
    std::memcpy(j->blob, blob.data(), blob.size());
    park(k, j);
    return nullptr;
}

// The session key between this enforcer and the peer's, one per pair of ephemeral keys (so per
// peer enforcer and rotation period, not per connection).
const crypto::HmacKey *Worker::session_key(Pkt &k, const crypto::X25519Public &local_pub,
                                           const crypto::X25519Public &peer_pub,
                                           crypto::Role role) {
    const bool client = role == crypto::Role::Client;
    crypto::SessionKey ck =
        crypto::session_cache_key(client ? local_pub : peer_pub, client ? peer_pub : local_pub);
    if (crypto::SessionKeyEntry *e = keys_->find(ck, now_unix_)) {
        ids_.key_cache_hits.add();
        return &e->key;
    }
    ids_.key_cache_misses.add();
    SlowJob *j = take_job();
    if (!j) {
        drop(k, DropReason::SlowpathBusy);
        return nullptr;
    }
    j->kind = SlowJob::kSessionKey;
    j->local_pub = local_pub;
    j->peer_pub = peer_pub;
    j->local_role = role;
    park(k, j);
    return nullptr;
}

// Takes the slow path's answers, caches them, and re-runs the held packets of the flows that
// waited for them (only those: under a flood of unknown claims thousands of flows may be parked).
void Worker::poll_slowpath() {
    if (!idr_ || !idr_->slow_rep[s_.id]) return;
    void *done[32];
    unsigned n = rte_ring_sc_dequeue_burst(idr_->slow_rep[s_.id], done, 32, nullptr);
    if (!n) return;
    parked_scratch_.clear();
    for (unsigned i = 0; i < n; ++i) {
        auto *j = static_cast<SlowJob *>(done[i]);
        if (j->pos >= 0 && flows_.in_use(static_cast<uint32_t>(j->pos)) &&
            flows_.at(j->pos).created_tsc == j->flow_created &&
            (flows_.at(j->pos).parked & kParked))
            parked_scratch_.push_back(j->pos);
        if (j->kind == SlowJob::kDns) {
            rte_mbuf *m = j->mbuf;
            j->mbuf = nullptr;
            enqueue_tx(m, side_of(m) ^ 1);
        } else if (j->kind == SlowJob::kSessionKey) {
            if (j->key_ok) {
                const bool client = j->local_role == crypto::Role::Client;
                crypto::SessionKey ck = crypto::session_cache_key(
                    client ? j->local_pub : j->peer_pub, client ? j->peer_pub : j->local_pub);
                keys_->insert(ck, now_unix_ + 3600, now_unix_).key = j->key;
            }
        } else if (j->target) {
            // A retag: the identity gets the new snapshot's tag IDs in place, so every flow and
            // cache slot that references it sees them (swap: no allocation here).
            PeerIdentity *t = j->target;
            j->target = nullptr;
            t->retag_pending = false;
            if (j->peer) {
                std::swap(t->tags, j->peer->tags);
                free_identity(j->peer);
            }
            unpin(t);
        } else if (j->peer) {
            std::array<uint8_t, 8> ck;
            std::memcpy(ck.data(), &j->cache_key, 8);
            j->peer->cache_key = j->cache_key;
            PeerIdentity *&slot = peers_->insert(ck, j->peer->expires_at, now_unix_);
            if (slot && slot != j->peer) uncache(slot);
            slot = j->peer;
            slot->cached = true;
        }
        free_jobs_.push_back(j);
    }
    // Re-run those flows: their held packets now hit the caches (or park again).
    for (int32_t pos : parked_scratch_) {
        Flow &f = flows_.at(pos);
        if (!(f.parked & kParked)) continue;  // listed twice
        f.parked &= static_cast<uint8_t>(~kParked);
        HoldList held = f.hold;
        f.hold = HoldList{};
        rte_mbuf *again[kMaxBurst];
        uint16_t m = 0;
        while (rte_mbuf *x = holds_.pop(held)) {
            if (m == kMaxBurst) {
                handle_burst(again, m, now_tsc_, false);
                m = 0;
            }
            again[m++] = x;
        }
        if (m) handle_burst(again, m, now_tsc_, false);
    }
    parked_scratch_.clear();
}

// The token at the end of a SYN's or SYN-ACK's payload.
WireStatus Worker::token_of(const Pkt &k, crypto::wire::TokenView &tok) const {
    return crypto::wire::parse_token(
        {rte_pktmbuf_mtod(k.m, const uint8_t *) + k.v.payload_off, k.v.payload_len}, tok);
}

// The peer's verified identity, or nullptr when the packet was parked for the slow path or the
// claims were refused (then the flow is rejected and the refusal recorded with its reason).
// TCP answers a refusal with RSTs, UDP with a REJECT echoing the token's nonce.
const PeerIdentity *Worker::verified_peer(Pkt &k, const crypto::wire::TokenView &tok, uint64_t &key,
                                          bool reset_peer_side) {
    const PeerIdentity *peer = lookup_peer(k, tok.claims, key);
    if (!peer) return nullptr;
    // Claims signed by a revoked certificate are refused, also when verified (and cached) before
    // the revocation list said so.
    DropReason why = DropReason::ClaimsInvalid;
    if (peer->status == crypto::ClaimsReason::Ok) {
        if (!st_->cert_revoked(peer->claims.cert_ref())) return peer;
        why = DropReason::CertificateRevoked;
    } else if (peer->status == crypto::ClaimsReason::CertificateRevoked) {
        why = DropReason::CertificateRevoked;
    }
    Flow &f = flows_.at(k.pos);
    record(k, f, policy::Decision{}, why, nullptr, static_cast<uint8_t>(peer->status));
    if (k.v.proto == kProtoUdp) {
        set_peer(f, nullptr);
        udp_reject(k, tok.nonce, true);
    } else {
        reject_tcp(k, reset_peer_side, why);
    }
    return nullptr;
}

// Server role (TCP or UDP): a handshake context for a verified SYN, replacing any earlier one,
// with the client's nonce and claims hash. Null (and the packet dropped) when the pool is empty.
Worker::HandshakeCtx *Worker::start_server_hs(Pkt &k, const crypto::wire::TokenView &tok,
                                              const PeerIdentity &peer, uint32_t pu) {
    Flow &f = flows_.at(k.pos);
    free_hs(f);
    const uint32_t h = alloc_hs();
    if (h == kNil) {
        drop(k, DropReason::SlowpathBusy);
        return nullptr;
    }
    f.hs = h;
    HandshakeCtx &x = hs_[h];
    x.local_pu = pu;
    std::memcpy(x.client_nonce, tok.nonce, 16);
    x.client_hash = peer.claims.hash();
    return &x;
}

// ---------------------------------------------------------------------------------------------
// the per-packet state machine

void Worker::identity_step(Pkt &k) {
    Flow &f = flows_.at(k.pos);
    if (f.parked & kParked) {
        if (!holds_.push(f.hold, k.m)) drop(k, DropReason::HoldFull);
        return;
    }
    if (f.parked & kInBatch) {
        deferred_[deferred_n_++] = k;
        return;
    }
    track_seq(f, k);
    switch (f.auth) {
        case Auth::kPass:
            forward(k);
            return;
        case Auth::kAllowed:
            // Past the handshake segwire's option may still arrive from outside (a proof A added
            // before it had our confirmation, a replayed SYN): it never reaches the host.
            if (k.v.proto == kProtoTcp && k.arrival == kOutside &&
                (k.v.opt.exp_off || (k.v.tcp_flags & kTcpSyn))) {
                allowed_tcp_from_outside(k);
                return;
            }
            // Answers to a query the PU sent (the flow is the PU's own): never unsolicited ones.
            if (k.v.sport == 53 && k.arrival == kOutside && k.v.payload_len &&
                (k.v.proto == kProtoUdp || k.v.proto == kProtoTcp) && f.init_side == f.local_side &&
                snoop_dns(k))
                return;
            // UDP Length 8 may be one of our control datagrams (RESET, a re-sent SYN-ACK, ...).
            if (k.v.proto == kProtoUdp && k.v.udp_len == 8)
                udp_allowed_control(k);
            else
                forward(k);
            return;
        case Auth::kRejected:
            if (k.v.proto == kProtoUdp && k.v.udp_len == 8)
                udp_allowed_control(k);  // a new SYN starts over
            else
                drop(k, DropReason::FlowRejected);
            return;
        case Auth::kUdpClientSyn:
            udp_client_syn_state(k);
            return;
        case Auth::kUdpServerSynAck:
            udp_server_synack_state(k);
            return;
        case Auth::kUdpResetSent:
            udp_reset_sent_state(k);
            return;
        case Auth::kNew:
            classify(k);
            return;
        case Auth::kClientSyn:
            client_syn_state(k);
            return;
        case Auth::kClientAck:
            client_ack_state(k);
            return;
        case Auth::kServerSyn:
            server_syn_state(k);
            return;
        case Auth::kServerSynAck:
            server_synack_state(k);
            return;
    }
}

void Worker::classify(Pkt &k) {
    Flow &f = flows_.at(k.pos);
    const policy::PolicySnapshot &pol = *st_->policy;
    const bool from_inside = k.arrival == kInside;
    const IpAddr &local = from_inside ? k.v.src : k.v.dst;
    const IpAddr &peer = from_inside ? k.v.dst : k.v.src;
    const policy::AddressInfo li = pol.classify(addr_of(local, k.v.family));
    const policy::AddressInfo pi = pol.classify(addr_of(peer, k.v.family));
    f.local_side = from_inside ? k.side : k.side ^ 1;
    if ((pi.flags & policy::kExcluded) || (li.flags & policy::kExcluded) ||
        li.pu == policy::kNone || pol.pu_ignored(li.pu) || icmp_control(k.v)) {
        // Not ours: excluded networks, addresses no PU covers, ignored PUs. Untouched, unreported.
        f.auth = Auth::kPass;
        ids_.passthrough.add();
        forward(k);
        return;
    }
    const Direction dir = from_inside ? Direction::kOutgoing : Direction::kIncoming;
    if (k.v.proto == kProtoUdp) {
        udp_classify(k, li.pu, pi.flags, dir);
        return;
    }
    if (k.v.proto != kProtoTcp || !is_syn(k.v)) {
        // UDP, ICMP, other protocols, and TCP picked up mid-stream (e.g. after a restart): no
        // handshake to carry identity, so the peer's address decides (external-network ACL).
        decide_without_identity(k, li.pu, dir);
        return;
    }
    if (from_inside) {
        f.role = kRoleClient;
        if (!(pi.flags & policy::kManagedTcp)) {
            decide_without_identity(k, li.pu, dir);
            return;
        }
        start_client(k, li.pu);
        return;
    }
    f.role = kRoleServer;
    server_syn_state(k);
}

// Client role, first SYN: add the local PU's claims and a fresh nonce.
void Worker::start_client(Pkt &k, uint32_t pu) {
    Flow &f = flows_.at(k.pos);
    std::array<uint8_t, 16> pk;
    std::memcpy(pk.data(), k.v.dst.b, 16);
    if (plain_peers_->find(pk, now_unix_)) {
        decide_without_identity(k, pu, Direction::kOutgoing);
        return;
    }
    const crypto::SignedClaims *c = st_->claims_of(pu);
    if (!c) {
        // No claims for this PU yet (signing failed or pending): decide without identity.
        decide_without_identity(k, pu, Direction::kOutgoing);
        return;
    }
    uint32_t h = alloc_hs();
    if (h == kNil) {
        drop(k, DropReason::SlowpathBusy);
        return;
    }
    f.hs = h;
    HandshakeCtx &x = hs_[h];
    x.local_pu = pu;
    x.client_hash = c->hash;
    x.local_pub = c->claims.ephemeral_pub;
    if (!nonces_->next(std::span<uint8_t, 16>(x.client_nonce, 16))) {
        free_hs(f);
        drop(k, DropReason::SlowpathBusy);
        return;
    }
    if (const DropReason why = add_identity(k, MsgType::Syn, x.client_nonce, c->blob, nullptr);
        why != DropReason::None) {
        // No room for identity (option space or MTU): the peer decides us by address instead.
        // Counted under the reason although the SYN goes on (docs/protocol.md §4.5).
        stats_.drops[static_cast<size_t>(why)].add();
        free_hs(f);
        decide_without_identity(k, pu, Direction::kOutgoing);
        return;
    }
    f.auth = Auth::kClientSyn;
    ids_.syn_signed.add();
    forward(k);
}

void Worker::client_syn_state(Pkt &k) {
    Flow &f = flows_.at(k.pos);
    HandshakeCtx &x = hs_[f.hs];
    if (k.arrival == kInside) {
        if (is_syn(k.v)) {  // retransmission: the same nonce, the current claims
            const crypto::SignedClaims *c = st_->claims_of(x.local_pu);
            const DropReason why =
                c ? add_identity(k, MsgType::Syn, x.client_nonce, c->blob, nullptr)
                  : DropReason::NoSessionKey;
            if (why != DropReason::None) {
                drop(k, why);
                return;
            }
            x.client_hash = c->hash;
            x.local_pub = c->claims.ephemeral_pub;
            forward(k);
            return;
        }
        if (k.v.tcp_flags & kTcpRst) {
            restart_flow(f);
            forward(k);
            return;
        }
        if (!holds_.push(f.hold, k.m)) drop(k, DropReason::HoldFull);
        return;
    }
    if (k.v.tcp_flags & kTcpRst) {  // the server refused (or a peer enforcer rejected us)
        restart_flow(f);
        if (scrub_if_marked(k)) forward(k);
        return;
    }
    if (!is_synack(k.v)) {
        drop(k, DropReason::FlowRejected);
        return;
    }
    crypto::wire::TcpOptionView ov;
    WireStatus ws = crypto::wire::find_tcp_option(tcp_options(k.m, k.v), ov);
    if (ws == WireStatus::NotPresent) {
        // The server has no enforcer: decide with the ACL for its address, and remember it.
        std::array<uint8_t, 16> pk;
        std::memcpy(pk.data(), k.v.src.b, 16);
        plain_peers_->insert(pk, now_unix_ + kPlainPeerS, now_unix_) = 1;
        free_hs(f);
        decide_without_identity(k, x.local_pu, Direction::kOutgoing);
        return;
    }
    crypto::wire::TokenView tok;
    if (ws != WireStatus::Ok || ov.type != MsgType::SynAck || token_of(k, tok) != WireStatus::Ok ||
        tok.type != MsgType::SynAck) {
        drop(k, DropReason::TokenMalformed);
        return;
    }
    uint64_t key;
    const PeerIdentity *peer = verified_peer(k, tok, key, true);
    if (!peer) return;
    client_check_synack(k, BatchOp::kClientCheckSynAck, peer, tok.nonce);
}

// Both MACs of a handshake into this burst's HMAC batch; the packet waits for finish_batch().
void Worker::queue_macs(Pkt &k, BatchOp::Op op, const PeerIdentity *peer, const policy::Decision &d,
                        const crypto::HmacKey &hk) {
    Flow &f = flows_.at(k.pos);
    HandshakeCtx &x = hs_[f.hs];
    BatchOp &b = batch_[batch_n_++];
    b.op = op;
    b.k = k;
    b.peer = peer;
    b.decision = d;
    crypto::wire::HandshakeInputs in{std::span<const uint8_t, 16>(x.client_nonce, 16),
                                     std::span<const uint8_t, 16>(x.server_nonce, 16),
                                     &x.client_hash, &x.server_hash};
    b.macs.prepare(hk, binding_of(f, k.pos), in, &hmac_jobs_[2 * (batch_n_ - 1)]);
    f.parked |= kInBatch;
}

// Client role (TCP or UDP), a SYN-ACK whose claims are verified: with the session key, MAC_sa is
// checked in the batch, and the outgoing rules decide on the server's port (the SYN-ACK's source).
void Worker::client_check_synack(Pkt &k, BatchOp::Op op, const PeerIdentity *peer,
                                 const uint8_t server_nonce[16]) {
    Flow &f = flows_.at(k.pos);
    HandshakeCtx &x = hs_[f.hs];
    const crypto::HmacKey *hk =
        session_key(k, x.local_pub, peer->claims.ephemeral_pub(), crypto::Role::Client);
    if (!hk) return;
    set_peer(f, peer);
    std::memcpy(x.server_nonce, server_nonce, 16);
    x.server_hash = peer->claims.hash();
    const policy::Decision d = decisions_->decide(*st_->policy, x.local_pu, Direction::kOutgoing,
                                                  peer->tags, k.v.proto, k.v.sport);
    queue_macs(k, op, peer, d, *hk);
}

void Worker::client_ack_state(Pkt &k) {
    Flow &f = flows_.at(k.pos);
    HandshakeCtx &x = hs_[f.hs];
    if (k.arrival == kInside) {
        // Until the server side confirms it verified the proof, every client packet carries it
        // (the ACK that first carried it may be lost; TCP does not retransmit a pure ACK).
        if (!(k.v.tcp_flags & kTcpRst) && add_ack_proof(k, x.ack_mac)) ids_.ack_proofs_added.add();
        forward(k);
        return;
    }
    if (k.v.tcp_flags & kTcpRst) {  // the server, or B refusing us, ended the connection
        restart_flow(f);
        if (scrub_if_marked(k)) forward(k);
        return;
    }
    if (is_synack(k.v)) {  // retransmitted SYN-ACK: our client lost the first one
        crypto::wire::TokenView tok;
        if (token_of(k, tok) == WireStatus::Ok && std::memcmp(tok.nonce, x.server_nonce, 16) == 0 &&
            strip_identity(k, tok.token_len)) {
            forward(k);
        } else {
            drop(k, DropReason::TokenMalformed);
        }
        return;
    }
    if (k.v.opt.exp_off) {
        crypto::wire::TcpOptionView ov;
        const WireStatus ws = crypto::wire::find_tcp_option(tcp_options(k.m, k.v), ov);
        if (ws == WireStatus::Ok && ov.type == MsgType::Confirm) {
            if (!crypto::tag_equal(ov.mac, x.confirm_mac, crypto::wire::kMacLen)) {
                drop(k, DropReason::MacMismatch);
                return;
            }
            // B holds our proof: the flow is authorized. The confirmation was B's own segment.
            ids_.confirms_received.add();
            ids_.authorized.add();
            f.auth = Auth::kAllowed;
            free_hs(f);
            rte_pktmbuf_free(k.m);
            return;
        }
        if (ws != WireStatus::NotPresent) {
            if (ws != WireStatus::Ok) {
                drop(k, DropReason::TokenMalformed);
                return;
            }
            if (!scrub_identity(k, ov)) return;
        }
    }
    // A server segment is no evidence that B has our proof: with TCP Fast Open the server sends
    // data before the client's ACK has even reached B.
    forward(k);
}

// An authorized TCP flow, a packet from outside that may carry segwire's option (or a SYN).
void Worker::allowed_tcp_from_outside(Pkt &k) {
    Flow &f = flows_.at(k.pos);
    if (is_syn(k.v)) ids_.syns_on_open_flow.add();  // answered by the host's challenge ACK
    crypto::wire::TcpOptionView ov;
    const WireStatus ws = k.v.opt.exp_off ? crypto::wire::find_tcp_option(tcp_options(k.m, k.v), ov)
                                          : WireStatus::NotPresent;
    if (ws == WireStatus::NotPresent) {
        forward(k);
        return;
    }
    if (ws != WireStatus::Ok) {
        drop(k, DropReason::TokenMalformed);
        return;
    }
    if (ov.type == MsgType::Confirm && f.role == kRoleClient) {
        rte_pktmbuf_free(k.m);  // a repeated confirmation: B's own segment, nothing for the host
        return;
    }
    if (ov.type == MsgType::Ack && f.role == kRoleServer) {
        // A has not seen our confirmation yet: repeat it (at most once per millisecond).
        if (Confirmation *c = confirms_->find(confirm_key(k.pos), now_unix_);
            c && now_tsc_ - c->last_tsc >= ms_tsc_) {
            send_confirm(k, c->mac);
            c->last_tsc = now_tsc_;
        }
    }
    if (!scrub_identity(k, ov)) return;
    forward(k);
}

void Worker::server_syn_state(Pkt &k) {
    Flow &f = flows_.at(k.pos);
    if (k.arrival == kOutside) {
        if (!is_syn(k.v)) {
            if (!holds_.push(f.hold, k.m)) drop(k, DropReason::HoldFull);
            return;
        }
        crypto::wire::TcpOptionView ov;
        WireStatus ws = crypto::wire::find_tcp_option(tcp_options(k.m, k.v), ov);
        const policy::PolicySnapshot &pol = *st_->policy;
        const uint32_t pu = pol.find_pu(addr_of(k.v.dst, k.v.family));
        if (ws == WireStatus::NotPresent) {
            if (f.auth == Auth::kServerSyn) {  // a plain SYN on a flow that had identity: replay
                drop(k, DropReason::TokenMalformed);
                return;
            }
            decide_without_identity(k, pu, Direction::kIncoming);
            return;
        }
        crypto::wire::TokenView tok;
        if (ws != WireStatus::Ok || ov.type != MsgType::Syn || token_of(k, tok) != WireStatus::Ok ||
            tok.type != MsgType::Syn) {
            drop(k, DropReason::TokenMalformed);
            return;
        }
        if (f.auth == Auth::kServerSyn) {
            // Retransmitted SYN: forward it again, stripped, only if it is the same handshake.
            if (std::memcmp(tok.nonce, hs_[f.hs].client_nonce, 16) == 0 &&
                strip_identity(k, tok.token_len))
                forward(k);
            else
                drop(k, DropReason::TokenMalformed);
            return;
        }
        uint64_t key;
        const PeerIdentity *peer = verified_peer(k, tok, key, false);
        if (!peer) return;
        set_peer(f, peer);
        ids_.syn_verified.add();
        policy::Decision d =
            decisions_->decide(pol, pu, Direction::kIncoming, peer->tags, kProtoTcp, k.v.dport);
        accept_server_syn(k, *peer, tok, d, pu);
        return;
    }
    // From inside: the server's SYN-ACK gets our PU's identity and the MAC over both sides.
    if (k.v.tcp_flags & kTcpRst) {
        restart_flow(f);
        forward(k);
        return;
    }
    if (!is_synack(k.v)) {
        forward(k);
        return;
    }
    HandshakeCtx &x = hs_[f.hs];
    const crypto::SignedClaims *c = st_->claims_of(x.local_pu);
    if (!c || !f.peer) {
        drop(k, DropReason::NoSessionKey);
        return;
    }
    x.server_hash = c->hash;
    x.local_pub = c->claims.ephemeral_pub;
    const crypto::HmacKey *hk =
        session_key(k, x.local_pub, f.peer->claims.ephemeral_pub(), crypto::Role::Server);
    if (!hk) return;
    if (!nonces_->next(std::span<uint8_t, 16>(x.server_nonce, 16))) {
        drop(k, DropReason::SlowpathBusy);
        return;
    }
    queue_macs(k, BatchOp::kServerSignSynAck, f.peer, policy::Decision{}, *hk);
}

void Worker::accept_server_syn(Pkt &k, const PeerIdentity &peer, const crypto::wire::TokenView &tok,
                               const policy::Decision &d, uint32_t pu) {
    Flow &f = flows_.at(k.pos);
    f.decided_version = st_->policy->version();
    if (d.action != Verdict::kAccept) {
        record(k, f, d, DropReason::PolicyReject, &peer);
        reject_tcp(k, false);
        return;
    }
    if (!start_server_hs(k, tok, peer, pu)) return;
    if (!strip_identity(k, tok.token_len)) {
        free_hs(f);
        drop(k, DropReason::TokenMalformed);
        return;
    }
    record(k, f, d, DropReason::None, &peer);
    f.auth = Auth::kServerSyn;
    forward(k);
}

void Worker::server_synack_state(Pkt &k) {
    Flow &f = flows_.at(k.pos);
    HandshakeCtx &x = hs_[f.hs];
    if (k.arrival == kInside) {
        if (is_synack(k.v)) {  // retransmitted SYN-ACK: the same nonce and MAC as the first
            const crypto::SignedClaims *c = st_->claims_of(x.local_pu);
            const DropReason why =
                c && c->hash == x.server_hash
                    ? add_identity(k, MsgType::SynAck, x.server_nonce, c->blob, x.synack_mac)
                    : DropReason::NoSessionKey;  // our claims changed: the client restarts
            if (why != DropReason::None) {
                drop(k, why);
                return;
            }
            forward(k);
            return;
        }
        forward(k);
        return;
    }
    if (is_syn(k.v)) {  // the client did not get our SYN-ACK: let the server answer again
        crypto::wire::TokenView tok;
        if (token_of(k, tok) == WireStatus::Ok && std::memcmp(tok.nonce, x.client_nonce, 16) == 0 &&
            strip_identity(k, tok.token_len))
            forward(k);
        else
            drop(k, DropReason::TokenMalformed);
        return;
    }
    crypto::wire::TcpOptionView ov;
    WireStatus ws = crypto::wire::find_tcp_option(tcp_options(k.m, k.v), ov);
    if (ws == WireStatus::NotPresent) {
        // Data that overtook the proof, or a client side without our proof yet: hold it.
        if (k.v.tcp_flags & kTcpRst) {
            restart_flow(f);
            forward(k);
            return;
        }
        if (!holds_.push(f.hold, k.m)) drop(k, DropReason::HoldFull);
        return;
    }
    if (ws != WireStatus::Ok || ov.type != MsgType::Ack || !ov.mac ||
        !crypto::tag_equal(ov.mac, x.ack_mac, crypto::wire::kMacLen)) {
        policy::Decision d;
        record(k, f, d, DropReason::MacMismatch, f.peer);  // names the client the SYN proved
        drop(k, DropReason::MacMismatch);
        return;
    }
    if (!strip_identity(k, 0)) {
        drop(k, DropReason::TokenMalformed);
        return;
    }
    send_confirm(k, x.confirm_mac);  // only once authorized: A stops proving when it gets this
    Confirmation &c = confirms_->insert(confirm_key(k.pos), now_unix_ + kConfirmKeepS, now_unix_);
    std::memcpy(c.mac, x.confirm_mac, crypto::wire::kMacLen);
    c.last_tsc = now_tsc_;
    ids_.ack_proofs_verified.add();
    ids_.authorized.add();
    f.auth = Auth::kAllowed;
    free_hs(f);
    forward(k);
    release_held(f);
}

// ---------------------------------------------------------------------------------------------
// the batch: every HMAC of the burst in one call, then the packets that waited for them

void Worker::finish_batch() {
    if (batch_n_) {
        hmac_->compute({hmac_jobs_, size_t(2) * batch_n_});
        ids_.hmac_batches.add();
        ids_.hmac_jobs.add(2u * batch_n_);
        for (uint16_t i = 0; i < batch_n_; ++i) finish_op(batch_[i]);
        batch_n_ = 0;
    }
    // Packets of those flows that came later in the burst, in arrival order.
    uint16_t n = deferred_n_;
    deferred_n_ = 0;
    for (uint16_t i = 0; i < n; ++i) identity_step(deferred_[i]);
}

void Worker::finish_op(BatchOp &op) {
    Pkt &k = op.k;
    Flow &f = flows_.at(k.pos);
    f.parked &= static_cast<uint8_t>(~kInBatch);
    HandshakeCtx &x = hs_[f.hs];
    std::memcpy(x.synack_mac, op.macs.synack_mac.data(), crypto::wire::kMacLen);
    std::memcpy(x.ack_mac, op.macs.ack_mac(), crypto::wire::kMacLen);
    std::memcpy(x.confirm_mac, op.macs.confirm_mac(), crypto::wire::kMacLen);
    if (op.op == BatchOp::kUdpServerSignSynAck || op.op == BatchOp::kUdpClientCheckSynAck) {
        udp_finish_op(op);
        return;
    }
    if (op.op == BatchOp::kServerSignSynAck) {
        const crypto::SignedClaims *c = st_->claims_of(x.local_pu);
        const DropReason why =
            c ? add_identity(k, MsgType::SynAck, x.server_nonce, c->blob, x.synack_mac)
              : DropReason::NoSessionKey;
        if (why != DropReason::None) {
            drop(k, why);
            return;
        }
        ids_.synack_signed.add();
        f.auth = Auth::kServerSynAck;
        forward(k);
        return;
    }
    // Client side: the SYN-ACK's MAC proves the server side holds the session key and saw our
    // nonce; only then do the outgoing rules decide.
    crypto::wire::TokenView tok;
    if (token_of(k, tok) != WireStatus::Ok ||
        !crypto::tag_equal(tok.mac, x.synack_mac, crypto::wire::kMacLen)) {
        policy::Decision d;
        record(k, f, d, DropReason::MacMismatch, op.peer);
        reject_tcp(k, true, DropReason::MacMismatch);
        return;
    }
    ids_.synack_verified.add();
    f.decided_version = st_->policy->version();
    if (op.decision.action != Verdict::kAccept) {
        record(k, f, op.decision, DropReason::PolicyReject, op.peer);
        reject_tcp(k, true);
        return;
    }
    if (!strip_identity(k, tok.token_len)) {
        drop(k, DropReason::TokenMalformed);
        return;
    }
    // Leave room for the proof option on full-sized client segments.
    if (k.v.opt.mss > 24 && clamp_mss(k.m, k.v, static_cast<uint16_t>(k.v.opt.mss - 24)))
        fix_checksums(k.m, k.v, idr_->tx_csum[k.arrival ^ 1]);
    record(k, f, op.decision, DropReason::None, op.peer);
    f.auth = Auth::kClientAck;
    forward(k);
}

// ---------------------------------------------------------------------------------------------
// policy updates: re-decide authorized flows, cut the ones now rejected

void Worker::reevaluate(uint32_t budget) {
    if (!st_ || !st_->policy) return;
    const policy::PolicySnapshot &pol = *st_->policy;
    if (reeval_target_ != pol.version()) {
        reeval_target_ = pol.version();
        reeval_cursor_ = 0;
        reeval_incomplete_ = false;
    }
    reeval_pending_ = reeval_version_ != reeval_target_;
    if (!reeval_pending_) return;
    const uint32_t cap = flows_.capacity();
    while (budget-- && reeval_cursor_ < cap) {
        const int32_t pos = static_cast<int32_t>(reeval_cursor_++);
        if (!flows_.in_use(static_cast<uint32_t>(pos))) continue;
        Flow &f = flows_.at(pos);
        if (f.auth != Auth::kAllowed || f.decided_version == pol.version()) continue;
        const FlowKey &key = flows_.key_at(pos);
        const IpAddr &local = f.local_side == kSideA ? key.a : key.b;
        const IpAddr &peer = f.local_side == kSideA ? key.b : key.a;
        const uint32_t pu = pol.find_pu(addr_of(local, key.family));
        if (pu == policy::kNone || pol.pu_ignored(pu)) continue;
        const Direction dir =
            f.local_side == f.init_side ? Direction::kOutgoing : Direction::kIncoming;
        const uint16_t port = f.init_side == kSideA ? key.pb : key.pa;
        policy::Decision d;
        DropReason cut = DropReason::PolicyCut;
        const PeerIdentity *pid = f.peer;  // pinned for the flow's life, whatever its age
        if (pid && st_->cert_revoked(pid->claims.cert_ref())) {
            // The peer's certificate was revoked: cut whatever the rules say.
            cut = DropReason::CertificateRevoked;
        } else if (pid) {
            if (pid->tags.snapshot_version() != pol.version()) {
                // Needs the new snapshot's tag IDs from the slow path (one job per identity, not
                // per flow); the sweep comes back for it as soon as the answer is in.
                if (!pid->retag_pending) {
                    if (SlowJob *j = take_job()) {
                        retag_job(j, f.peer);
                        if (rte_ring_sp_enqueue(idr_->slow_req[s_.id], j) != 0) {
                            j->target = nullptr;
                            f.peer->retag_pending = false;
                            unpin(f.peer);
                            free_jobs_.push_back(j);
                        }
                    }
                }
                reeval_incomplete_ = true;
                continue;
            }
            d = decisions_->decide(pol, pu, dir, pid->tags, key.proto, port);
        } else {
            d = decide_by_address(pu, dir, peer, key.family, key.proto, port);
        }
        f.decided_version = pol.version();
        if (d.action == Verdict::kAccept && cut == DropReason::PolicyCut) continue;
        // Revoked: cut the connection both ways.
        f.auth = Auth::kRejected;
        ids_.flows_cut.add();
        drop_held(f, DropReason::PolicyCut);
        free_hs(f);
        if (key.proto == kProtoTcp && f.ack_seen[0] && f.ack_seen[1]) {
            // Build the RSTs from a template of the flow's own addresses.
            rte_mbuf *tmpl = rte_pktmbuf_alloc(idr_->pool);
            if (tmpl) {
                uint8_t *fr = reinterpret_cast<uint8_t *>(rte_pktmbuf_append(tmpl, 54 + 20));
                std::memset(fr, 0, 74);
                std::memcpy(fr, f.mac[kSideB], 6);  // as if side a had sent it to side b
                std::memcpy(fr + 6, f.mac[kSideA], 6);
                const bool v6 = key.family == 6;
                fr[12] = v6 ? 0x86 : 0x08;
                fr[13] = v6 ? 0xdd : 0x00;
                PacketView tv{};
                tv.family = key.family;
                tv.l3_off = 14;
                tv.src = key.a;
                tv.dst = key.b;
                tv.sport = key.pa;
                tv.dport = key.pb;
                tv.proto = kProtoTcp;
                // Side a's host sits behind the port the flow's side-a packets arrive on.
                const uint8_t a_port = f.init_side == kSideA ? f.in_port : f.in_port ^ 1;
                tmpl->port = s_.port_id[a_port];
                for (uint8_t to = 0; to < 2; ++to) {
                    rte_mbuf *r = build_tcp_reset(
                        idr_->pool, tmpl, tv, to == kSideA, f.ack_seen[to], f.ack_seen[to ^ 1],
                        true, idr_->tx_csum[to == kSideA ? a_port : a_port ^ 1]);
                    if (!r) continue;
                    ids_.resets_sent.add();
                    enqueue_tx(r, to == kSideA ? a_port : a_port ^ 1);
                }
                rte_pktmbuf_free(tmpl);
            }
        }
        Pkt k{};
        k.pos = pos;
        k.v.family = key.family;
        k.v.proto = key.proto;
        record(k, f, d, cut, pid);
    }
    if (reeval_cursor_ >= cap) {
        if (reeval_incomplete_) {
            reeval_cursor_ = 0;
            reeval_incomplete_ = false;
        } else {
            reeval_version_ = reeval_target_;
            reeval_pending_ = false;
            ids_.policy_enforced.set(reeval_version_);
        }
    }
}

}  // namespace segwire::dp
