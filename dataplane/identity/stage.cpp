// The identity stage's pools, holds, caches, slow-path hand-off, records, HMAC batch and policy
// sweep (stage.hpp). The decisions are the machines'; adapter.cpp applies them.
#include "dataplane/identity/stage.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <cstring>
#include <ctime>
#include <string>

#include <rte_jhash.h>
#include <rte_mbuf.h>
#include <rte_memory.h>
#include <rte_ring.h>
#include <rte_ring_elem.h>

#include "dataplane/dns/fqdn_set.hpp"

namespace segwire::dp::identity {
namespace {
constexpr uint32_t kDnsExpireBudget = 256;  // unanswered DNS queries forgotten per round
constexpr uint32_t kAcctScanBudget = 256;   // flow positions the accounting scan visits per round

int64_t wall_ms() noexcept {
    timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}
}

using crypto::wire::WireStatus;
using policy::Direction;
using policy::Verdict;

bool Stage::init(IdentityRuntime *idr, uint32_t worker_id, const uint16_t port_id[2],
                 FlowTable &flows, TxQueues &tx, WorkerStats &stats, uint64_t tsc_hz,
                 std::string &err) {
    idr_ = idr;
    id_ = worker_id;
    port_id_[0] = port_id[0];
    port_id_[1] = port_id[1];
    flows_ = &flows;
    tx_ = &tx;
    wstats_ = &stats;
    // Everything the stage needs is allocated here, never on the packet path.
    holds_.init(idr_->hold_total, static_cast<uint16_t>(idr_->hold_per_flow));
    hs_.resize(idr_->handshakes);
    l4_.resize(idr_->handshakes);
    shift_.resize(flows.capacity());
    for (uint32_t i = 0; i < idr_->handshakes; ++i)
        hs_[i].next_free = i + 1 < idr_->handshakes ? i + 1 : kNil;
    hs_free_ = idr_->handshakes ? 0 : kNil;
    for (auto &x : hs_) x.ctl = nullptr, x.armed = x.listed = false;
    timers_.reserve(idr_->handshakes);
    ms_tsc_ = tsc_hz / 1000;
    hmac_ = std::make_unique<crypto::HmacBatch>(idr_->hmac);
    nonces_ = std::make_unique<crypto::NonceSource>();
    decisions_ = std::make_unique<policy::DecisionCache>(idr_->decision_cache);
    peers_ = std::make_unique<crypto::FixedCache<8, PeerIdentity *>>(idr_->peer_cache);
    keys_ = std::make_unique<crypto::SessionKeyCache>(idr_->key_cache);
    plain_peers_ = std::make_unique<crypto::FixedCache<19, uint8_t>>(idr_->peer_cache);
    l4_peers_ = std::make_unique<crypto::FixedCache<19, uint8_t>>(idr_->peer_cache);
    tfo_cookies_ =
        std::make_unique<crypto::FixedCache<32, crypto::l4::TfoCookie>>(idr_->peer_cache);
    confirms_ = std::make_unique<crypto::FixedCache<8, Confirmation>>(idr_->handshakes);
    syn_nonces_ = std::make_unique<crypto::FixedCache<16, uint32_t>>(idr_->handshakes);
    key_failed_ = std::make_unique<crypto::FixedCache<64, uint8_t>>(kKeyFailedEntries);
    if (!queries_.init("sw_dnsq_" + std::to_string(worker_id), idr_->dns_queries,
                       ms_tsc_ * idr_->dns_query_timeout_ms, SOCKET_ID_ANY, err))
        return false;
    jobs_.resize(idr_->slow_jobs);
    free_jobs_.reserve(idr_->slow_jobs);
    for (auto &j : jobs_) free_jobs_.push_back(&j);
    parked_scratch_.reserve(idr_->hold_total);
    released_.reserve(idr_->hold_total);
    uint8_t seed[8];
    if (!nonces_->fill(seed)) {
        err = "cannot seed the peer cache from the CSPRNG";
        return false;
    }
    std::memcpy(jhash_seed_, seed, 8);
    share_.init(jhash_seed_[0] ^ jhash_seed_[1],
                {idr_->handshakes, idr_->hold_total, idr_->slow_jobs, idr_->kept_control},
                idr_->per_source_percent);
    answers_.init(idr_->answers_per_source_s, tsc_hz);
    midstream_.init(idr_->midstream_resets_s, tsc_hz);
    if (idr_->active_timeout_s) {
        // Flow accounting (docs/export.md): one slot per flow position, allocated here only.
        acct_.assign(flows.capacity(), Acct{});
        acct_active_tsc_ = uint64_t(idr_->active_timeout_s) * tsc_hz;
        // Every position once per half active timeout: a busy flow's records are at most
        // 1.5 x the active timeout apart.
        acct_per_tsc_ =
            double(flows.capacity()) / double(std::max<uint64_t>(acct_active_tsc_ / 2, 1));
        acct_scan_tsc_ = rte_rdtsc();
    }
    clock_tsc_ = rte_rdtsc();
    clock_ms_ = wall_ms();
    return true;
}

// A PeerIdentity is owned by the stage while a cache slot, a flow or a slow-path job in flight
// references it; the packet path hands it to the slow path's garbage ring when the last reference
// goes. At teardown nobody drains that ring any more (the benchmark frees it before the worker), so
// the stage deletes what it still owns itself, each object once.
Stage::~Stage() {
    if (!peers_) return;
    std::vector<PeerIdentity *> owned;
    peers_->for_each_value([&](PeerIdentity *p) {
        if (p) owned.push_back(p);
    });
    for (uint32_t pos = 0; pos < flows_->capacity(); ++pos)
        if (flows_->in_use(pos) && flows_->at(static_cast<int32_t>(pos)).peer)
            owned.push_back(flows_->at(static_cast<int32_t>(pos)).peer);
    // Jobs not in the free list are in flight: a retag pins its target, and an answer not taken
    // yet carries a new identity nobody else references. (A free job's `peer` is stale.)
    std::vector<const SlowJob *> idle(free_jobs_.begin(), free_jobs_.end());
    std::sort(idle.begin(), idle.end());
    for (const SlowJob &j : jobs_) {
        if (std::binary_search(idle.begin(), idle.end(), &j)) continue;
        if (j.target) owned.push_back(j.target);
        if (j.peer) owned.push_back(j.peer);
    }
    std::sort(owned.begin(), owned.end());
    owned.erase(std::unique(owned.begin(), owned.end()), owned.end());
    for (PeerIdentity *p : owned) delete p;
}

const char *Stage::hmac_backend() const {
    return hmac_ ? crypto::to_string(hmac_->backend()) : "none";
}

void Stage::begin_loop(uint64_t now) {
    now_tsc_ = now;
    st_ = idr_->state ? idr_->state->current() : nullptr;
    if (!st_ || !st_->policy) st_ = nullptr;
    now_unix_ = static_cast<uint32_t>(std::time(nullptr));
    poll_slowpath();
}

void Stage::end_loop(uint32_t worker_id) {
    st_ = nullptr;
    if (idr_->state) idr_->state->reader_quiescent(worker_id);
}

uint16_t Stage::take_released(rte_mbuf **out, uint16_t cap) noexcept {
    uint16_t n = 0;
    while (n < cap && released_at_ < released_.size()) out[n++] = released_[released_at_++];
    if (released_at_ == released_.size()) {
        released_.clear();
        released_at_ = 0;
    }
    return n;
}

void Stage::end_burst() {
    finish_batch();
    retire_flows();
}

void Stage::housekeeping(uint32_t budget) {
    if (st_) run_timers();
    reevaluate(budget);
    if (accounting()) acct_scan();
    publish_gauges();
    if (const uint32_t gone = queries_.expire(now_tsc_, kDnsExpireBudget))
        ids_.dns_queries_expired.add(gone);
    ids_.dns_queries_pending.set(queries_.size());
}

policy::IpAddr Stage::addr_of(const IpAddr &a, uint8_t family) const {
    if (family == 6) return policy::IpAddr::from_v6(a.b);
    uint32_t v4;
    std::memcpy(&v4, a.b, 4);
    return policy::IpAddr::from_v4(ntohl(v4));
}

// The address of the flow's peer (the side that is not the local PU).
const IpAddr &Stage::peer_addr(int32_t pos, const Flow &f) const {
    const FlowKey &key = flows_->key_at(pos);
    return f.local_side == kSideA ? key.b : key.a;
}

crypto::wire::FlowBinding Stage::binding_of(const Flow &f, int32_t pos) const {
    const FlowKey &k = flows_->key_at(pos);
    const bool a_client = f.init_side == kSideA;
    const IpAddr &c = a_client ? k.a : k.b;
    const IpAddr &s = a_client ? k.b : k.a;
    const uint16_t cp = a_client ? k.pa : k.pb, sp = a_client ? k.pb : k.pa;
    return k.family == 6 ? crypto::wire::FlowBinding::ipv6(k.proto, c.b, cp, s.b, sp)
                         : crypto::wire::FlowBinding::ipv4(k.proto, c.b, cp, s.b, sp);
}

// ---- budgets (docs/handshake.md "Budgets") ----

uint16_t Stage::share_of(int32_t pos, const Flow &f) const noexcept {
    const FlowKey &key = flows_->key_at(pos);
    return share_.bucket(f.init_side == kSideA ? key.a : key.b);
}

// The hs_pool fact: a free context, the source's share of them, and for UDP a kept control
// datagram within the worker's bound. Which of them failed is passed on as the drop reason.
void Stage::hs_facts(const Ev &e, Facts &fx) {
    if (hs_free_ == kNil || (e.proto == kProtoUdp && kept_ >= idr_->kept_control)) {
        fx.hs_pool = false;
        fx.hs_refusal = DropReason::SlowpathBusy;
    } else if (const uint16_t b = share_of(e.pos, *e.f);
               !share_.room(SourceShare::kContexts, b) ||
               (e.proto == kProtoUdp && !share_.room(SourceShare::kKept, b))) {
        fx.hs_pool = false;
        fx.hs_refusal = DropReason::SourceShare;
    } else if (e.k && e.k->arrival == kOutside && !answers_.ready(b, now_tsc_)) {
        fx.hs_pool = false;
        fx.hs_refusal = DropReason::SourceRate;
    } else {
        fx.hs_pool = true;
    }
}

// Holds a packet of the flow, charged to its source; the reason when it cannot be held.
DropReason Stage::hold(Flow &f, int32_t pos, rte_mbuf *m) {
    if (f.hold.count == 0) f.hold.share = share_of(pos, f);
    if (!share_.take(SourceShare::kHolds, f.hold.share)) return DropReason::SourceShare;
    if (!holds_.push(f.hold, m)) {
        share_.give(SourceShare::kHolds, f.hold.share);
        return DropReason::HoldFull;
    }
    return DropReason::None;
}

rte_mbuf *Stage::unhold(Flow &f) {
    rte_mbuf *m = holds_.pop(f.hold);
    if (m) share_.give(SourceShare::kHolds, f.hold.share);
    return m;
}

bool Stage::replayed_syn(const uint8_t *nonce, int32_t pos) noexcept {
    std::array<uint8_t, 16> key;
    std::memcpy(key.data(), nonce, 16);
    const uint32_t *flow = syn_nonces_->find(key, now_unix_);
    return flow && *flow != flows_->hash(flows_->key_at(pos));
}

// Gauges of what is pinned now (a test waits for them to return to zero after an attack).
void Stage::publish_gauges() {
    ids_.handshakes_active.set(hs_used_);
    ids_.held_packets.set(holds_.used());
    ids_.kept_control.set(kept_);
    ids_.slow_jobs_in_flight.set(jobs_.size() - free_jobs_.size());
}

uint32_t Stage::alloc_hs(int32_t pos, const Flow &f, uint8_t proto) {
    uint32_t i = hs_free_;
    if (i == kNil) return i;
    hs_free_ = hs_[i].next_free;
    HandshakeCtx &x = hs_[i];
    x.ctl = nullptr;
    x.armed = false;
    x.tries = 0;
    x.share = share_of(pos, f);
    share_.take(SourceShare::kContexts, x.share);  // hs_facts() saw room
    // A handshake a packet from outside started: one of its source's answers per second.
    if (ev_.k && ev_.k->arrival == kOutside) answers_.take(x.share, now_tsc_);
    x.udp = proto == kProtoUdp;
    kept_ += x.udp;
    if (x.udp) share_.take(SourceShare::kKept, x.share);
    ++hs_used_;
    return i;
}

void Stage::free_hs(Flow &f) {
    if (f.hs == kNil) return;
    HandshakeCtx &x = hs_[f.hs];
    if (x.ctl) {
        rte_pktmbuf_free(x.ctl);
        x.ctl = nullptr;
    }
    share_.give(SourceShare::kContexts, x.share);
    if (x.udp) share_.give(SourceShare::kKept, x.share);
    kept_ -= x.udp;
    x.udp = false;
    --hs_used_;
    x.armed = false;
    x.next_free = hs_free_;
    hs_free_ = f.hs;
    f.hs = kNil;
}

void Stage::restart_flow(Flow &f) {
    while (rte_mbuf *m = unhold(f)) {
        wstats_->drops[static_cast<size_t>(DropReason::FlowRejected)].add();
        tx_->cap->dropped(m, DropReason::FlowRejected);
        rte_pktmbuf_free(m);
    }
    free_hs(f);
    set_peer(f, nullptr);
    f.auth = dp::Auth::kNew;
    f.parked &= static_cast<uint8_t>(~kL4Bit);
    f.role = kRoleNone;
    f.decided_version = 0;
    f.ack_seen[0] = f.ack_seen[1] = 0;
}

void Stage::release_held(Flow &f, int32_t pos) {
    const bool l4 = (f.parked & kL4Bit) && pos >= 0;
    while (rte_mbuf *m = unhold(f)) {
        if (l4) {  // an L4 flow's held segments leave shifted (docs/l4-mode.md)
            release_l4(pos, f, m);
            continue;
        }
        tx_->push(m, side_of(m) ^ 1);
    }
}

// The connection as its initiator sent it.
void Stage::fill_endpoints(FlowRecordEvent &e, int32_t pos, const Flow &f) const {
    const FlowKey &key = flows_->key_at(pos);
    const bool a_init = f.init_side == kSideA;
    e.src = a_init ? key.a : key.b;
    e.dst = a_init ? key.b : key.a;
    e.sport = a_init ? key.pa : key.pb;
    e.dport = a_init ? key.pb : key.pa;
    e.local_is_source = f.local_side == f.init_side;
}

void Stage::record(int32_t pos, const Flow &f, const policy::Decision &d, DropReason why,
                   const PeerIdentity *peer, uint8_t claims_reason) {
    if (d.logs_disabled && why == DropReason::None) return;
    FlowRecordEvent e{};
    e.policy_version = st_ && st_->policy ? st_->policy->version() : 0;
    e.timestamp = now_unix_;
    e.kind = RecordKind::kFlow;
    const FlowKey &key = flows_->key_at(pos);
    e.family = key.family;
    e.proto = key.proto;
    e.action = static_cast<uint8_t>(d.action);
    e.observed_action = static_cast<uint8_t>(d.observed_action);
    e.reason = static_cast<uint8_t>(d.reason);
    e.drop_reason = why;
    e.claims_reason = claims_reason;
    fill_endpoints(e, pos, f);
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
    e.mode = id_mode(pos, f, peer != nullptr);
    if (peer && peer->status == crypto::ClaimsReason::Ok) {
        auto id = peer->claims.pu_id();
        std::memcpy(e.peer_id, id.data(), std::min(id.size(), sizeof(e.peer_id) - 1));
    }
    if (accounting()) acct_decided(pos, f, e);
    ids_.records.add();
    if (!idr_->records[id_] || rte_ring_sp_enqueue_elem(idr_->records[id_], &e, sizeof(e)) != 0)
        ids_.records_lost.add();
}

// ---- flow accounting (docs/export.md) ----
// A flow's packets and bytes reach the control thread as counter records: one when the flow goes
// and one per active timeout while it lasts, each counting what the previous one did not. They
// carry the fields of the flow's last decision record (kept in its slot), so the control thread
// names them and counts them into the same report. Nothing here runs per packet: decisions write
// the slot, removals and the bounded scan read it.

void Stage::acct_decided(int32_t pos, const Flow &f, const FlowRecordEvent &e) noexcept {
    Acct &a = acct_[static_cast<uint32_t>(pos)];
    if (a.gen != f.created_tsc) {  // the slot's first decision for this flow
        a.gen = f.created_tsc;
        a.from_tsc = f.created_tsc;
        a.pkts[0] = a.pkts[1] = a.bytes[0] = a.bytes[1] = 0;
    }
    a.rec = e;
    a.src_side = f.init_side;
    a.decided = true;
}

// An authorized flow re-decided under a new snapshot and still allowed: its counter records name
// the new snapshot's policy and rule (the old snapshot may be gone by the time the flow ends).
void Stage::acct_redecided(int32_t pos, const Flow &f, const Ev &e) noexcept {
    Acct &a = acct_[static_cast<uint32_t>(pos)];
    if (a.gen != f.created_tsc || !a.decided) return;
    const policy::Decision &d = e.decision;
    a.rec.policy_version = st_->policy->version();
    if (e.local_pu != policy::kNone) a.rec.local_pu = e.local_pu;
    a.rec.action = static_cast<uint8_t>(d.action);
    a.rec.observed_action = static_cast<uint8_t>(d.observed_action);
    a.rec.reason = static_cast<uint8_t>(d.reason);
    a.rec.policy = d.policy;
    a.rec.observed_policy = d.observed_policy;
    a.rec.rule_name = d.rule_name;
    a.rec.observed_rule = d.observed_rule_name;
    a.rec.observation = d.observed_action != Verdict::kNotApplicable;
}

// One counter record from the slot: what the flow counted since the slot's baseline. The baseline
// moves only when the ring took the record, so a full ring loses the record (counted) but never
// the counts: the next record carries them.
bool Stage::acct_emit(const Flow &f, Acct &a, EndReason why) noexcept {
    FlowRecordEvent e = a.rec;
    e.kind = RecordKind::kFlowCounters;
    e.end_reason = why;
    e.timestamp = now_unix_;
    const uint8_t s = a.src_side, d = s ^ 1;
    e.packets[0] = f.pkts[s] - a.pkts[s];
    e.packets[1] = f.pkts[d] - a.pkts[d];
    e.bytes[0] = f.bytes[s] - a.bytes[s];
    e.bytes[1] = f.bytes[d] - a.bytes[d];
    const uint64_t end = std::max(f.last_tsc, a.from_tsc);
    e.start_ms = static_cast<uint64_t>(std::max<int64_t>(unix_ms(a.from_tsc), 0));
    e.duration_ms =
        static_cast<uint32_t>(std::min<uint64_t>((end - a.from_tsc) / ms_tsc_, UINT32_MAX));
    ids_.counter_records.add();
    if (!idr_->records[id_] || rte_ring_sp_enqueue_elem(idr_->records[id_], &e, sizeof(e)) != 0) {
        ids_.records_lost.add();
        return false;
    }
    for (int i = 0; i < 2; ++i) a.pkts[i] = f.pkts[i], a.bytes[i] = f.bytes[i];
    a.from_tsc = std::max(now_tsc_, end);
    return true;
}

void Stage::acct_final(int32_t pos, const Flow &f, EndReason why) noexcept {
    Acct &a = acct_[static_cast<uint32_t>(pos)];
    if (a.gen != f.created_tsc) return;  // never decided (passed through, logs disabled, ...)
    if (a.decided) acct_emit(f, a, why);
    a.gen = 0;
}

// Visits flow positions at the rate that covers the table once per half active timeout (at most
// kAcctScanBudget a round): a decided flow whose interval is older than the active timeout and
// that counted packets since gets a counter record.
void Stage::acct_scan() noexcept {
    clock_tsc_ = now_tsc_;  // the wall clock against the TSC, for start times
    clock_ms_ = wall_ms();
    acct_credit_ += double(now_tsc_ - acct_scan_tsc_) * acct_per_tsc_;
    acct_scan_tsc_ = now_tsc_;
    if (acct_credit_ > kAcctScanBudget) acct_credit_ = kAcctScanBudget;
    const uint32_t cap = flows_->capacity();
    for (; acct_credit_ >= 1.0; acct_credit_ -= 1.0) {
        const uint32_t pos = acct_cursor_;
        acct_cursor_ = pos + 1 < cap ? pos + 1 : 0;
        if (!flows_->in_use(pos)) continue;
        Acct &a = acct_[pos];
        const Flow &f = flows_->at(static_cast<int32_t>(pos));
        if (a.gen != f.created_tsc || !a.decided || now_tsc_ - a.from_tsc < acct_active_tsc_)
            continue;
        if (f.pkts[0] == a.pkts[0] && f.pkts[1] == a.pkts[1]) continue;  // nothing new
        acct_emit(f, a, EndReason::kActive);
    }
}

// How the flow's peer is identified, for its report.
IdMode Stage::id_mode(int32_t pos, const Flow &f, bool identity) const {
    const FlowKey &key = flows_->key_at(pos);
    // (B refusing R1 that came in a SYN decides before the flow enters an L4 state.)
    const bool r1_in_syn = ev_.k && ev_.l4_rec_len && is_syn(ev_.k->v);
    const bool l4 = r1_in_syn || (f.parked & kL4Bit) || f.auth == dp::Auth::kL4ClientSyn ||
                    f.auth == dp::Auth::kL4ClientWait || f.auth == dp::Auth::kL4ClientConfirm ||
                    f.auth == dp::Auth::kL4ServerSyn || f.auth == dp::Auth::kL4ServerWait;
    if (l4 && identity) {
        const uint8_t fl =
            st_ && st_->policy ? st_->policy->classify(addr_of(peer_addr(pos, f), key.family)).flags
                               : 0;
        return (fl & policy::kModeAuto) && !(fl & policy::kModeL4) ? IdMode::kL4Auto
                                                                     : IdMode::kL4;
    }
    if (!identity) return IdMode::kAddress;
    return key.proto == kProtoUdp ? IdMode::kUdp : IdMode::kV1;
}

void Stage::record_exception(int32_t pos, const Flow &f) {
    FlowRecordEvent e{};
    e.policy_version = st_ && st_->policy ? st_->policy->version() : 0;
    e.timestamp = now_unix_;
    e.kind = RecordKind::kConnectionException;
    e.family = flows_->key_at(pos).family;
    e.proto = flows_->key_at(pos).proto;
    fill_endpoints(e, pos, f);
    e.local_pu = f.hs != kNil ? hs_[f.hs].local_pu : policy::kNone;
    e.drop_reason = DropReason::HandshakeExpired;
    e.hs_state = f.auth == dp::Auth::kClientSyn || f.auth == dp::Auth::kUdpClientSyn
                     ? HsState::kSynTransmitted
                 : f.auth == dp::Auth::kServerSynAck || f.auth == dp::Auth::kUdpServerSynAck
                     ? HsState::kSynAckTransmitted
                 : f.auth == dp::Auth::kClientAck ? HsState::kAckTransmitted
                                                  : HsState::kNone;
    e.policy = e.observed_policy = e.rule_name = e.observed_rule = policy::kNone;
    ids_.exceptions.add();
    if (!idr_->records[id_] || rte_ring_sp_enqueue_elem(idr_->records[id_], &e, sizeof(e)) != 0)
        ids_.records_lost.add();
}

// The ACL decision for a peer without identity: the external networks its address is in, plus,
// for the PU's outgoing rules only, those it was learned for from answers to that PU's own DNS
// queries (incoming rules never match learned addresses). The learned set is read from the newest
// published state, not the one this loop started with: a DNS answer this or another worker released
// a moment ago is then already matched (the answer is held until the set that has its addresses is
// published, docs/dns.md). Reading a newer RCU object before our next quiescent point is safe.
policy::Decision Stage::decide_by_address(uint32_t pu, Direction dir, const IpAddr &peer,
                                          uint8_t family, uint8_t proto, uint16_t port) {
    const policy::PolicySnapshot &pol = *st_->policy;
    const policy::IpAddr addr = addr_of(peer, family);
    const EnforcerState *fresh = idr_->state->current();
    const dns::FqdnSet *fq = fresh ? fresh->fqdn.get() : nullptr;
    if (dir == Direction::kOutgoing && fq && fq->snapshot_version() == pol.version()) {
        std::span<const uint32_t> learned = family == 6
                                                ? fq->networks_for(peer.b, pu, now_unix_)
                                                : fq->networks_for_v4(peer.b, pu, now_unix_);
        if (!learned.empty()) {
            // Not cached: learned sets change without a new snapshot version.
            ids_.fqdn_decisions.add();
            return pol.decide(pu, dir, addr, proto, port, learned);
        }
    }
    return decisions_->decide(pol, pu, dir, addr, proto, port);
}

// ---- DNS snooping (docs/dns.md, "Matching answers to queries") ----------------------------------
// Queries are remembered as they pass from a PU; an answer teaches only if it answers one. None of
// this changes a packet's fate: a DNS message always goes on (DNS availability comes first); what
// is refused is only the learning, and every refusal is counted.

// The header and question of the packet's DNS message (TCP: the message its segment starts).
bool Stage::dns_question(const Pkt &k, dns::Question &q) const {
    std::span<const uint8_t> msg(rte_pktmbuf_mtod(k.m, const uint8_t *) + k.v.payload_off,
                                 k.v.payload_len);
    if (k.v.proto == kProtoTcp && !dns::tcp_message(msg, msg)) return false;
    return dns::read_question(msg, q) == dns::QuestionStatus::kOk;
}

// A resolver is trusted by the profile's list (trustedDNSResolvers) or, without one, when the
// PU's outgoing rules allow it on the query's port by its address alone: an address learned from
// DNS never makes a resolver trusted.
bool Stage::trusted_resolver(uint32_t pu, const Pkt &k) {
    const policy::PolicySnapshot &pol = *st_->policy;
    const policy::IpAddr resolver = addr_of(k.v.dst, k.v.family);
    if (pol.resolvers_listed()) return pol.classify(resolver).flags & policy::kTrustedResolver;
    return decisions_->decide(pol, pu, Direction::kOutgoing, resolver, k.v.proto, k.v.dport)
               .action == Verdict::kAccept;
}

// Every packet to or from port 53 with a payload, before its step. From the inside only: a query
// of the PU that started the flow is remembered; a DNS answer arriving from the inside on a flow
// a local PU started is a forgery by a workload (the resolver is outside) and is counted.
void Stage::dns_observe(const Pkt &k, const Flow &f) {
    if (k.v.proto != kProtoUdp && k.v.proto != kProtoTcp) return;
    if (k.arrival != kInside) return;  // answers from outside: the machine's SnoopDns fate
    if (k.v.dport == dns::kDnsPort && k.side == f.init_side) {
        if (!(k.v.proto == kProtoTcp && (k.v.tcp_flags & kTcpSyn))) note_dns_query(k, f);
    } else if (k.v.sport == dns::kDnsPort && k.side != f.init_side && f.auth != dp::Auth::kNew &&
               f.init_side == f.local_side) {
        ids_.dns_refused_inside.add();
    }
}

void Stage::note_dns_query(const Pkt &k, const Flow &f) {
    dns::Question q;
    if (!dns_question(k, q) || q.response) {
        ids_.dns_queries_unreadable.add();
        return;
    }
    const policy::PolicySnapshot &pol = *st_->policy;
    const uint32_t pu = pol.find_pu(addr_of(k.v.src, k.v.family));
    if (pu == policy::kNone || pol.pu_ignored(pu)) return;  // passed untouched, never snooped
    if (!trusted_resolver(pu, k)) {
        ids_.dns_queries_untrusted.add();
        return;
    }
    const dns::QueryKey key{static_cast<uint32_t>(k.pos), q.id, q.qtype};
    switch (queries_.note(key, f.created_tsc, q, now_tsc_)) {
        case dns::QueryTable::Noted::kAdded:
            ids_.dns_queries.add();
            return;
        case dns::QueryTable::Noted::kRepeated:
            ids_.dns_queries_repeated.add();
            return;
        case dns::QueryTable::Noted::kFull:
            ids_.dns_queries_dropped.add();
            return;
    }
}

// A DNS answer from outside on a flow a local PU started (the machines' SnoopDns fate). It goes to
// the slow path with its mbuf only if it answers a query that PU sent and still awaits; there it
// is parsed, reported, and what it teaches for hostname entries is published before the answer is
// sent on. Otherwise, or without a free job, it goes on at once (false), counted.
bool Stage::snoop_dns(Pkt &k) {
    const Flow &f = flows_->at(k.pos);
    // TCP: the answer must start exactly at the byte the client acknowledged last (the next one
    // it expects from the resolver): an off-path forger would have to guess the sequence number.
    // A segment that does not start there (the rest of a message split over segments, another
    // answer sent before the client acknowledged the previous one) is not learned from.
    if (k.v.proto == kProtoTcp &&
        (f.ack_seen[f.init_side] == 0 || k.v.seq != f.ack_seen[f.init_side])) {
        ids_.dns_refused_tcp_sequence.add();
        return false;
    }
    dns::Question q;
    if (!dns_question(k, q) || !q.response) {
        ids_.dns_refused_malformed.add();
        return false;
    }
    const dns::QueryKey key{static_cast<uint32_t>(k.pos), q.id, q.qtype};
    switch (queries_.take(key, f.created_tsc, q, now_tsc_)) {
        case dns::QueryTable::Match::kMatched:
            break;
        case dns::QueryTable::Match::kNoQuery:
            ids_.dns_refused_no_query.add();
            return false;
        case dns::QueryTable::Match::kLate:
            ids_.dns_refused_late.add();
            return false;
        case dns::QueryTable::Match::kOtherQuestion:
            ids_.dns_refused_question.add();
            return false;
    }
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
    // The PU that asked: the one at the answer's destination, the query's source on this flow.
    j->pu = st_->policy->find_pu(addr_of(k.v.dst, k.v.family));
    j->policy_version = st_->policy->version();
    if (rte_ring_sp_enqueue(idr_->slow_req[id_], j) != 0) {
        free_jobs_.push_back(j);
        ids_.dns_unsnooped.add();
        return false;
    }
    ids_.dns_snooped.add();
    return true;
}

void Stage::free_identity(PeerIdentity *p) {
    // The slow path frees what workers hand back (the worker never calls delete).
    if (rte_ring_sp_enqueue(idr_->garbage[id_], p) != 0) ids_.identities_lost.add();
}

void Stage::unpin(PeerIdentity *p) {
    if (--p->pins == 0 && !p->cached) free_identity(p);
}

void Stage::uncache(PeerIdentity *p) {
    p->cached = false;
    if (p->pins == 0) free_identity(p);
}

void Stage::set_peer(Flow &f, const PeerIdentity *p) {
    auto *np = const_cast<PeerIdentity *>(p);  // the worker owns every identity it references
    if (f.peer == np) return;
    if (np) ++np->pins;
    PeerIdentity *old = f.peer;
    f.peer = np;
    if (old) unpin(old);
}

// A job asking the slow path for `target`'s tags under the current snapshot.
void Stage::retag_job(SlowJob *j, PeerIdentity *target) {
    j->kind = SlowJob::kRetag;
    j->cache_key = target->cache_key;
    j->expires_at = target->expires_at;
    j->blob_len = target->blob_len;
    std::memcpy(j->blob, target->blob, target->blob_len);
    j->target = target;
    ++target->pins;
    target->retag_pending = true;
}

SlowJob *Stage::take_job() {
    if (free_jobs_.empty()) return nullptr;
    SlowJob *j = free_jobs_.back();
    free_jobs_.pop_back();
    j->worker = static_cast<uint16_t>(id_);
    j->pos = -1;
    j->peer = nullptr;
    j->target = nullptr;
    j->key_ok = false;
    j->share = SourceShare::kNoBucket;
    return j;
}

// Holds the packet and, when `job` is given, sends it to the slow path; the flow is re-run when
// any answer comes back. A flow parks at most once at a time.
bool Stage::park(Pkt &k, SlowJob *job) {
    Flow &f = flows_->at(k.pos);
    if (job) {
        job->pos = k.pos;
        job->flow_created = f.created_tsc;
        job->share = share_of(k.pos, f);
        DropReason refused = DropReason::None;
        if (!share_.take(SourceShare::kJobs, job->share))
            refused = DropReason::SourceShare;
        else if (rte_ring_sp_enqueue(idr_->slow_req[id_], job) != 0)
            refused = DropReason::SlowpathBusy;
        if (refused != DropReason::None) {
            if (refused == DropReason::SlowpathBusy) share_.give(SourceShare::kJobs, job->share);
            job->share = SourceShare::kNoBucket;
            if (PeerIdentity *t = job->target) {  // a retag that never left: give its pin back
                job->target = nullptr;
                t->retag_pending = false;
                unpin(t);
            }
            free_jobs_.push_back(job);
            drop(k, refused);
            return false;
        }
        ids_.slow_jobs.add();
    }
    if (const DropReason why = hold(f, k.pos, k.m); why != DropReason::None) {
        drop(k, why);
        return false;
    }
    if (!(f.parked & kParkedBit)) {
        f.parked |= kParkedBit;
        ids_.parked.add();
    }
    return true;
}

bool Stage::unbindable_syn(const rte_mbuf *m, const PacketView &v) const {
    if (v.proto != kProtoTcp || !is_syn(v) || !v.payload_len || !st_ || !st_->policy) return false;
    crypto::wire::TokenView tok;
    if (crypto::wire::parse_token(
            {rte_pktmbuf_mtod(m, const uint8_t *) + v.payload_off, v.payload_len}, tok) !=
        WireStatus::Ok)
        return false;  // no token (a plain SYN, TFO data): the ACL decides, no slow path needed
    const policy::AddressInfo src = st_->policy->classify(addr_of(v.src, v.family));
    return src.pu == policy::kNone || st_->hosting_of(src.pu) != EnforcerState::kHostedElsewhere;
}

// The verified identity for a claims blob, or nullptr when the packet was parked (or dropped)
// because the slow path must verify it first or re-tag it for a new snapshot.
// The peer cache entry for exactly this blob (any snapshot), or nullptr; `key` is its cache key.
const PeerIdentity *Stage::cached_peer(std::span<const uint8_t> blob, uint64_t &key) const {
    uint32_t h1 = jhash_seed_[0], h2 = jhash_seed_[1];
    // rte_jhash reads 32-bit words; a blob at an odd offset of a frame (an L4 record in a SYN's
    // data, a token) is copied to an aligned buffer first rather than read misaligned (fine on
    // x86, undefined behaviour for the compiler and UBSan).
    const uint8_t *data = blob.data();
    alignas(4) uint8_t aligned[crypto::wire::kMaxClaimsOnWire];
    if ((reinterpret_cast<uintptr_t>(data) & 3) && blob.size() <= sizeof aligned) {
        std::memcpy(aligned, data, blob.size());
        data = aligned;
    }
    rte_jhash_2hashes(data, static_cast<uint32_t>(blob.size()), &h1, &h2);
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
bool Stage::admit_new_flow(const rte_mbuf *m, const PacketView &v, uint8_t arrival) {
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
    wstats_->drops[static_cast<size_t>(DropReason::SlowpathBusy)].add();
    return false;
}

// Takes the slow path's answers, caches them, and re-runs the held packets of the flows that
// waited for them (only those: under a flood of unknown claims thousands of flows may be parked).
void Stage::poll_slowpath() {
    if (!idr_ || !idr_->slow_rep[id_]) return;
    void *done[32];
    unsigned n = rte_ring_sc_dequeue_burst(idr_->slow_rep[id_], done, 32, nullptr);
    if (!n) return;
    parked_scratch_.clear();
    for (unsigned i = 0; i < n; ++i) {
        auto *j = static_cast<SlowJob *>(done[i]);
        if (j->pos >= 0 && flows_->in_use(static_cast<uint32_t>(j->pos)) &&
            flows_->at(j->pos).created_tsc == j->flow_created &&
            (flows_->at(j->pos).parked & kParkedBit))
            parked_scratch_.push_back(j->pos);
        if (j->kind == SlowJob::kDns) {
            rte_mbuf *m = j->mbuf;
            j->mbuf = nullptr;
            tx_->push(m, side_of(m) ^ 1);
        } else if (j->kind == SlowJob::kSessionKey) {
            if (j->key_ok) {
                const bool client = j->local_role == crypto::Role::Client;
                crypto::SessionKey ck = crypto::session_cache_key(
                    client ? j->local_pub : j->peer_pub, client ? j->peer_pub : j->local_pub);
                keys_->insert(ck, now_unix_ + idr_->session_key_lifetime_s, now_unix_).key = j->key;
                crypto::secure_wipe(&j->key, sizeof j->key);  // the cache holds the one copy
            } else {
                // The flows parked for it are dropped (session-key-failed) when their packets run
                // again below, and so is every handshake with this pair of keys for a minute.
                const bool client = j->local_role == crypto::Role::Client;
                key_failed_->insert(crypto::session_cache_key(client ? j->local_pub : j->peer_pub,
                                                              client ? j->peer_pub : j->local_pub),
                                    now_unix_ + kKeyFailedS, now_unix_) = 1;
            }
        } else if (j->target) {
            // A retag: the identity gets the new snapshot's tag IDs in place, so every flow and
            // cache slot that references it sees them (swap: no allocation here).
            PeerIdentity *t = j->target;
            j->target = nullptr;
            t->retag_pending = false;
            if (j->peer) {
                std::swap(t->tags, j->peer->tags);
                // The binding is checked again with the tags: the PU may be gone or moved.
                t->pu = j->peer->pu;
                t->status = j->peer->status;
                t->expires_at = std::min(t->expires_at, j->peer->expires_at);
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
        share_.give(SourceShare::kJobs, j->share);
        j->share = SourceShare::kNoBucket;
        free_jobs_.push_back(j);
    }
    // Those flows' held packets run again (the worker's loop runs released() as bursts): they now
    // hit the caches, or park again.
    for (int32_t pos : parked_scratch_) {
        Flow &f = flows_->at(pos);
        if (!(f.parked & kParkedBit)) continue;  // listed twice
        f.parked &= static_cast<uint8_t>(~kParkedBit);
        while (rte_mbuf *x = unhold(f)) released_.push_back(x);  // reserved: hold_total
    }
    parked_scratch_.clear();
}

// Both MACs of a handshake into this burst's HMAC batch; the packet waits for finish_batch().
void Stage::queue_macs(Pkt &k, BatchOp op, const PeerIdentity *peer, const policy::Decision &d,
                       const crypto::HmacKey &hk) {
    Flow &f = flows_->at(k.pos);
    HandshakeCtx &x = hs_[f.hs];
    Batched &b = batch_[batch_n_++];
    b.op = op;
    b.k = k;
    b.peer = peer;
    b.decision = d;
    crypto::wire::HandshakeInputs in{std::span<const uint8_t, 16>(x.client_nonce, 16),
                                     std::span<const uint8_t, 16>(x.server_nonce, 16),
                                     &x.client_hash, &x.server_hash};
    if (op == BatchOp::kL4ClientCheckR2 || op == BatchOp::kL4ServerSignR2) {
        const L4Ctx &l = l4_[f.hs];
        b.l4macs.prepare(hk, binding_of(f, k.pos), in, l.client_isn, l.server_isn,
                         &hmac_jobs_[2 * (batch_n_ - 1)]);
    } else {
        b.macs.prepare(hk, binding_of(f, k.pos), in, &hmac_jobs_[2 * (batch_n_ - 1)]);
    }
    f.parked |= kInBatchBit;
}

void Stage::finish_batch() {
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
    for (uint16_t i = 0; i < n; ++i) packet(deferred_[i]);
}

void Stage::reevaluate(uint32_t budget) {
    if (!st_ || !st_->policy) return;
    const policy::PolicySnapshot &pol = *st_->policy;
    if (reeval_target_ != pol.version()) {
        reeval_target_ = pol.version();
        reeval_cursor_ = 0;
        reeval_incomplete_ = false;
    }
    reeval_pending_ = reeval_version_ != reeval_target_;
    if (!reeval_pending_) return;
    const uint32_t cap = flows_->capacity();
    while (budget-- && reeval_cursor_ < cap) {
        const int32_t pos = static_cast<int32_t>(reeval_cursor_++);
        if (!flows_->in_use(static_cast<uint32_t>(pos))) continue;
        Flow &f = flows_->at(pos);
        // The sweep visits authorized flows only (the machines re-decide nothing else).
        if (f.auth == dp::Auth::kAllowed) reevaluate_flow(pos, f);
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

// New flows from outside that were refused at their SYN (policy, refused or malformed claims, a
// full slow path) leave no entry behind: a flood of forged SYNs with distinct tuples cannot fill
// the table, and a retransmitted SYN is simply decided again (the decision is cached). Run after
// the batch, when no packet of the burst still refers to the entry.
void Stage::retire_flows() {
    for (uint16_t i = 0; i < retire_n_; ++i) {
        const Retire r = retire_[i];
        if (!flows_->in_use(static_cast<uint32_t>(r.pos))) continue;
        Flow &f = flows_->at(r.pos);
        if (f.created_tsc != r.created) continue;
        if (!refused_from_outside(f)) continue;
        set_peer(f, nullptr);
        remove_flow(r.pos, f, EndReason::kEnd);
        ids_.flows_retired.add();
    }
    retire_n_ = 0;
}

void Stage::drop_held(Flow &f, DropReason why) {
    while (rte_mbuf *m = unhold(f)) {
        wstats_->drops[static_cast<size_t>(why)].add();
        tx_->cap->dropped(m, why);
        rte_pktmbuf_free(m);
    }
}

}  // namespace segwire::dp::identity
