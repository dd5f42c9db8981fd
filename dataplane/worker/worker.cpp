#include "dataplane/worker/worker.hpp"

#include <cstring>
#include <ctime>

#include <rte_byteorder.h>
#include <rte_cycles.h>
#include <rte_ethdev.h>
#include <rte_malloc.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>
#include <rte_prefetch.h>
#include <rte_ring.h>

namespace segwire::dp {
namespace {
constexpr uint32_t kHousekeepingPolls = 64;
constexpr uint32_t kExpireBudget = 256;
constexpr uint32_t kSweepBudget = 1024;         // flows re-decided per housekeeping round
constexpr uint32_t kMaxReevalSpins = 1u << 16;  // idle loops without sleep for one policy sweep
}  // namespace

bool Worker::init(const WorkerSetup &s, std::string &err) {
    s_ = s;
    if (s_.burst > kMaxBurst) s_.burst = kMaxBurst;
    tsc_hz_ = rte_get_tsc_hz();
    tx_.stats = &stats_;
    cap_.init(s_.id, s_.port_id, &capture_);
    tx_.cap = &cap_;
    stats_.mbuf_free_min.set(UINT64_MAX);
    if (!flows_.init("sw_flows_" + std::to_string(s.id), s.flow_capacity, s.socket, s.timeouts_s,
                     tsc_hz_, err))
        return false;
    if (s.routed_ports) {
        RouterSetup rs;
        rs.ports = s.routed_ports;
        rs.routes = s.routes;
        rs.cfg = s.routing;
        rs.pool = s.pool;
        rs.worker = s.id;
        rs.socket = s.socket;
        rs.local_only = s.geneve;
        if (!router_.init(rs, &tx_, tsc_hz_, err)) return false;
        if (s.geneve) {
            GeneveSetup gs;
            gs.cfg = s.geneve_cfg;
            gs.arm_mtu = s.routed_ports->port[0].mtu;
            gs.worker = s.id;
            gs.socket = s.socket;
            if (!geneve_.init(gs, &router_, &tx_, tsc_hz_, err)) return false;
        }
    }
    idr_ = s.identity;
    if (!idr_) return true;
    return stage_.init(idr_, s_.id, s_.port_id, flows_, tx_, stats_, tsc_hz_, err);
}

bool Worker::attach_identity(IdentityRuntime *idr, std::string &err) {
    if (idr_ || !idr) {
        err = "identity already attached";
        return false;
    }
    if (!stage_.init(idr, s_.id, s_.port_id, flows_, tx_, stats_, tsc_hz_, err)) return false;
    s_.identity = idr_ = idr;
    return true;
}

// The slow path's answers release held packets: they run again as bursts of their own, parsed
// and looked up like received packets (not counted again), before this loop's rx.
void Worker::begin_loop(uint64_t now) {
    if (!idr_) return;
    stage_.begin_loop(now);
    rte_mbuf *again[kMaxBurst];
    while (uint16_t n = stage_.take_released(again, kMaxBurst)) handle_burst(again, n, now, false);
}

void Worker::end_loop() {
    if (idr_) stage_.end_loop(s_.id);
}

uint16_t Worker::take_tx(uint8_t side, rte_mbuf **out) {
    uint16_t n = tx_.n[side];
    for (uint16_t i = 0; i < n; ++i) out[i] = tx_.q[side][i];
    tx_.n[side] = 0;
    return n;
}

// Parses a burst, hands packets owned by other workers to them, and runs the flow stage on the
// rest. `arrival` is the port side for rx bursts; packets from steering rings carry it in m->port.
void Worker::handle_burst(rte_mbuf **pkts, uint16_t n, uint64_t now, bool fresh, bool steered) {
    PacketView views[kMaxBurst];
    FlowKey keys[kMaxBurst];
    const FlowKey *key_ptrs[kMaxBurst];
    uint32_t sigs[kMaxBurst];
    uint8_t src_side[kMaxBurst];
    uint8_t arrival_of[kMaxBurst];
    rte_mbuf *owned[kMaxBurst];
    uint16_t k = 0;
    const bool steer = s_.software_steering && s_.nworkers > 1;
    // No policy in force (yet) and identity.fail_mode closed: managed packets are refused before
    // they get a flow entry. Once a policy state is published this is one false test per burst.
    const FailGate *gate = s_.fail_gate && !(idr_ && stage_.enforcing()) ? s_.fail_gate : nullptr;
    // The slow path has no free job: identity SYNs that can never bind are shed before the lookup.
    const bool shed = idr_ && stage_.enforcing() && stage_.saturated();
    // Routed mode: received packets go through the router's ingress (ARP, ND, own addresses,
    // TTL, route, MTU) first, once: released held packets (not fresh) and packets another worker
    // steered here went through it on the worker that received them.
    const bool route_in = fresh && !steered && router_.enabled();
    // GENEVE mode: fresh packets are decapsulated first (or answered, or dropped); which side an
    // inner packet comes from is derived from its addresses, and its flow key carries the
    // endpoint identity of its outer header.
    const bool geneve = geneve_.enabled();
    if (geneve && route_in) geneve_.prefetch(pkts, n);
    // L7 mode: an exception port exists (docs/l7-path.md). Off: this one test per burst.
    const bool l7 = s_.l7_port != kNoPort;

    for (uint16_t i = 0; i < n; ++i) {
        if (i + 1 < n) rte_prefetch0(rte_pktmbuf_mtod(pkts[i + 1], void *));
        rte_mbuf *m = pkts[i];
        uint8_t arrival = side_of(m);
        PacketView &v = views[k];
        // Multi-segment frames are parsed from the first segment only; anything cut short there
        // is a truncation drop rather than a read past the segment.
        DropReason r = parse_packet(rte_pktmbuf_mtod(m, const uint8_t *), m->data_len, v);
        if (r != DropReason::None) {
            stats_.drops[static_cast<size_t>(r)].add();
            cap_.dropped(m, r);
            rte_pktmbuf_free(m);
            continue;
        }
        if (geneve) [[unlikely]] {
            if (route_in && !geneve_.ingress(m, v, arrival, now, i)) continue;
            arrival = idr_ && stage_.source_inside(v) ? kInside : kOutside;
        } else if (route_in && !router_.ingress(m, v, arrival, now)) {
            continue;
        }
        if (!v.is_ip()) {
            if (l7 && m->port == s_.l7_port) {
                // The kernel side is NOARP and has no business on the wire (IPv6 ND, LLDP...).
                stats_.l7_refused.add();
                rte_pktmbuf_free(m);
                continue;
            }
            stats_.non_ip.add();
            tx_.push(m, arrival ^ 1);
            continue;
        }
        if (gate && gate->refuses(v)) {
            stats_.drops[static_cast<size_t>(DropReason::NoPolicy)].add();
            cap_.dropped(m, DropReason::NoPolicy);
            rte_pktmbuf_free(m);
            continue;
        }
        if (v.fragment && !v.first_fragment) {
            // No ports here; forwarded by address (see docs/dataplane.md on fragments).
            stats_.fragments.add();
            tx_.push(m, arrival ^ 1);
            continue;
        }
        src_side[k] = make_flow_key(v, keys[k]);
        if (geneve) [[unlikely]]
            keys[k].vlan = geneve_.endpoint_of(m);  // the inner packet has no VLAN of its own
        sigs[k] = flows_.hash(keys[k]);
        if (steer) {
            uint32_t owner = sigs[k] % s_.nworkers;
            if (owner != s_.id) {
                uint16_t &sn = steer_n_[owner];
                steer_[owner][sn++] = m;
                if (sn == kMaxBurst) flush_steer();
                continue;
            }
        }
        if (shed && arrival == kOutside && stage_.unbindable_syn(m, v)) {
            stats_.drops[static_cast<size_t>(DropReason::SlowpathBusy)].add();
            cap_.dropped(m, DropReason::SlowpathBusy);
            rte_pktmbuf_free(m);
            continue;
        }
        key_ptrs[k] = &keys[k];
        arrival_of[k] = arrival;
        owned[k++] = m;
    }
    if (k == 0) return;

    int32_t pos[kMaxBurst];
    flows_.lookup_bulk(key_ptrs, sigs, k, pos);
    const bool enforce = idr_ && stage_.enforcing();
    // The flow entries of the whole burst are fetched while the first ones are worked on (with 1M
    // flows nearly every entry is a cache miss). The second line holds the identity state.
    for (uint16_t i = 0; i < k; ++i) {
        if (pos[i] < 0) continue;
        const Flow *f = &flows_.at(pos[i]);
        rte_prefetch0(f);
        if (enforce) rte_prefetch0(reinterpret_cast<const uint8_t *>(f) + 64);
    }
    for (uint16_t i = 0; i < k; ++i) {
        rte_mbuf *m = owned[i];
        const PacketView &v = views[i];
        uint8_t arrival = arrival_of[i];
        const uint8_t side = src_side[i];
        const bool from_l7 = l7 && m->port == s_.l7_port;
        int32_t p = pos[i];
        bool created = false;
        if (p < 0) {
            if (enforce && !from_l7 && !stage_.admit_new_flow(m, v, arrival)) {
                cap_.dropped(m, DropReason::SlowpathBusy);  // counted by the stage
                rte_pktmbuf_free(m);
                continue;
            }
            // A burst can hold several packets of a new flow: insert returns the flow an earlier
            // packet of this burst created.
            p = flows_.insert(keys[i], sigs[i], now, timeout_class_for(v.proto, TcpState::None),
                              &created);
            if (p < 0) {
                stats_.drops[static_cast<size_t>(DropReason::FlowTableFull)].add();
                cap_.dropped(m, DropReason::FlowTableFull);
                rte_pktmbuf_free(m);
                continue;
            }
            if (created) {
                Flow &nf = flows_.at(p);
                nf.init_side = side;
                nf.in_port = arrival;
                nf.worker = static_cast<uint8_t>(s_.id);
                const uint8_t *eth = rte_pktmbuf_mtod(m, const uint8_t *);
                std::memcpy(nf.mac[side], eth + 6, 6);
                std::memcpy(nf.mac[side ^ 1], eth, 6);
            }
        }
        Flow &f = flows_.at(p);
        // L7 mode: the client's flow to a service port is handshaken and decided as usual, with
        // the exception interface in place of the PU; the proxy's upstream flow is relayed.
        bool relay = false;
        if (l7 && (from_l7 || created || f.l7 != kL7None)) {
            const int r =
                l7_steer(m, v, f, side, arrival, created, enforce ? stage_.state() : nullptr);
            if (r < 0) {
                stats_.l7_refused.add();
                rte_pktmbuf_free(m);
                continue;
            }
            relay = r > 0;
        }
        if (enforce && !relay) {
            if (const DropReason why = identity::Stage::admit_known(f, v, side, arrival);
                why != DropReason::None) {
                stats_.drops[static_cast<size_t>(why)].add();
                cap_.dropped(m, why);
                rte_pktmbuf_free(m);
                continue;
            }
        }
        const TcpState before = f.state;
        uint8_t tclass = v.proto == kProtoTcp ? tcp_track(f, side, v.tcp_flags)
                                              : timeout_class_for(v.proto, f.state);
        // An enforced TCP flow gets the established timeout only once authorized (or passed):
        // a blind ACK after a replayed SYN must not pin its entry for an hour. The stage moves
        // it when the handshake authorizes it (docs/handshake.md "Budgets").
        if (tclass == kTcpEstablished && enforce && f.auth != Auth::kAllowed &&
            f.auth != Auth::kPass && f.auth != Auth::kClientAck)
            tclass = kTcpHandshake;
        if (idr_ && f.state == TcpState::SynSent &&
            (before == TcpState::Closing || before == TcpState::Closed)) {
            // A SYN reusing a finished connection's ports is a new connection: authorize it anew
            // (a replayed SYN must never inherit the old flow's verdict).
            stage_.ports_reused(p);
        }
        // A refused flow stays in its hold-down, which the packets it drops do not extend.
        if (f.auth == Auth::kRejected) tclass = kRejectedHold;
        if (f.tclass == tclass) {
            if (tclass != kRejectedHold)
                f.last_tsc = now;  // FlowTable::touch's common case, without the call
        } else {
            flows_.touch(p, now, tclass);
        }
        if (fresh) {
            // Bytes of the IP datagram (header and payload, as IPFIX's octetDeltaCount counts
            // them): without the Ethernet header, VLAN tags and padding.
            ++f.pkts[side];
            f.bytes[side] += v.ip_end - v.l3_off;
        }
        if (relay) {
            if (from_l7) {
                stats_.l7_upstream.add();
                tx_.push(m, kInside);
            } else {
                push_l7(m);
            }
            continue;
        }
        if (!enforce) {
            tx_.push(m, arrival ^ 1);
            continue;
        }
        // A flow from outside that the inside never answered may be refused at this packet:
        // then it must not keep its entry (a flood of forged SYNs, spoofed datagrams or blind
        // ACKs with distinct tuples would fill the table; docs/handshake.md "Budgets").
        if (arrival == kOutside && f.pkts[side ^ 1] == 0) stage_.maybe_retire(p, f.created_tsc);
        identity::Pkt pk{m, v, p, arrival, side};
        stage_.packet(pk);
    }
    if (enforce) stage_.end_burst();
}

// Returns 0: the packet goes on through the identity stage (`arrival` may have been changed: a
// frame of the proxy to a client stands in for one from the PU's port); 1: relayed (the proxy's
// upstream flow; Ethernet addresses already set); -1: refused.
int Worker::l7_steer(rte_mbuf *m, const PacketView &v, Flow &f, uint8_t side, uint8_t &arrival,
                     bool created, const EnforcerState *st) {
    uint8_t *eth = rte_pktmbuf_mtod(m, uint8_t *);
    if (m->port == s_.l7_port) {
        if (f.l7 == kL7Client) {
            // The proxy answers the client: out through the outside port as if from the PU.
            std::memcpy(eth, f.mac[side ^ 1], 6);
            std::memcpy(eth + 6, f.mac[side], 6);
            arrival = kInside;
            return 0;
        }
        // The proxy's upstream connection to the PU (its source the client's address).
        if (created) {
            f.l7 = kL7Upstream;
            f.auth = Auth::kPass;
        }
        if (f.l7 != kL7Upstream || v.family != 4) return -1;
        uint32_t dst;
        std::memcpy(&dst, v.dst.b, 4);
        if (!s_.l7_neighbours->find(dst, eth, eth + 6)) return -1;
        return 1;
    }
    if (f.l7 == kL7Upstream) {
        if (arrival != kInside) return -1;  // only the PU answers an upstream flow
        std::memcpy(eth, s_.l7_mac, 6);
        return 1;
    }
    if (created && st && !st->l7_ports.empty() && arrival == kOutside && v.family == 4 &&
        v.proto == kProtoTcp && (v.tcp_flags & (kTcpSyn | kTcpAck)) == kTcpSyn) {
        uint32_t dst;
        std::memcpy(&dst, v.dst.b, 4);
        const uint32_t pu = st->policy->classify_v4(rte_be_to_cpu_32(dst)).pu;
        if (pu != policy::kNone && st->hosting_of(pu) == EnforcerState::kHostedHere &&
            st->l7_service(pu, v.dport)) {
            f.l7 = kL7Client;
            s_.l7_neighbours->learn(dst, eth, eth + 6);
        }
    }
    // Client to service: handed to the stage, which sends it to the inside queue; the mark
    // moves it to the exception port there (take_l7_tx).
    if (f.l7 == kL7Client && arrival == kOutside) m->ol_flags |= s_.l7_mark;
    return 0;
}

void Worker::push_l7(rte_mbuf *m) {
    if (l7_n_ == TxQueues::kCap) {
        stats_.drops[static_cast<size_t>(DropReason::TxFull)].add();
        rte_pktmbuf_free(m);
        return;
    }
    l7_tx_[l7_n_++] = m;
}

void Worker::take_l7_tx() {
    rte_mbuf **q = tx_.q[kInside];
    const uint16_t n = tx_.n[kInside];
    uint16_t k = 0;
    for (uint16_t i = 0; i < n; ++i) {
        rte_mbuf *m = q[i];
        if (m->ol_flags & s_.l7_mark) {
            m->ol_flags &= ~s_.l7_mark;
            std::memcpy(rte_pktmbuf_mtod(m, uint8_t *), s_.l7_mac, 6);
            push_l7(m);
        } else {
            q[k++] = m;
        }
    }
    tx_.n[kInside] = k;
}

void Worker::flush_steer() {
    for (uint32_t w = 0; w < s_.nworkers; ++w) {
        uint16_t n = steer_n_[w];
        if (!n) continue;
        unsigned sent = rte_ring_sp_enqueue_burst(outbound_[w],
                                                  reinterpret_cast<void **>(steer_[w]), n, nullptr);
        stats_.steered_out.add(sent);
        if (sent < n) {
            stats_.drops[static_cast<size_t>(DropReason::SteerRingFull)].add(n - sent);
            for (uint16_t i = sent; i < n; ++i)
                cap_.dropped(steer_[w][i], DropReason::SteerRingFull);
            rte_pktmbuf_free_bulk(&steer_[w][sent], n - sent);
        }
        steer_n_[w] = 0;
    }
}

void Worker::flush_tx(uint64_t now) {
    // Routed mode: every packet queued is routed and its Ethernet header rewritten (or held
    // until its next hop is resolved); the router's own frames join the queues.
    prepare_tx(now);
    if (s_.l7_port != kNoPort) {
        take_l7_tx();
        if (l7_n_) {
            uint16_t sent = 0;
            for (int tries = 0; tries < 4 && sent < l7_n_; ++tries)
                sent += rte_eth_tx_burst(s_.l7_port, static_cast<uint16_t>(s_.id), &l7_tx_[sent],
                                         l7_n_ - sent);
            stats_.l7_to_exception.add(sent);
            if (sent < l7_n_) {
                stats_.drops[static_cast<size_t>(DropReason::TxFull)].add(l7_n_ - sent);
                rte_pktmbuf_free_bulk(&l7_tx_[sent], l7_n_ - sent);
            }
            l7_n_ = 0;
        }
    }
    for (uint8_t side = 0; side < 2; ++side) {
        uint16_t n = tx_.n[side];
        if (!n) continue;
        rte_mbuf **q = tx_.q[side];
        cap_.tx(q, n, side);
        uint64_t bytes = 0;
        for (uint16_t i = 0; i < n; ++i) bytes += q[i]->pkt_len;
        uint16_t sent = 0;
        // A few retries absorb a momentarily full descriptor ring; then the rest is dropped
        // rather than stalling every other flow on this worker.
        for (int tries = 0; tries < 4 && sent < n; ++tries)
            sent += rte_eth_tx_burst(s_.port_id[side], static_cast<uint16_t>(s_.id), &q[sent],
                                     n - sent);
        if (sent < n) {
            for (uint16_t i = sent; i < n; ++i) bytes -= q[i]->pkt_len;
            stats_.drops[static_cast<size_t>(DropReason::TxFull)].add(n - sent);
            for (uint16_t i = sent; i < n; ++i) cap_.dropped(q[i], DropReason::TxFull);
            rte_pktmbuf_free_bulk(&q[sent], n - sent);
        }
        stats_.tx_pkts[side].add(sent);
        stats_.tx_bytes[side].add(bytes);
        tx_.n[side] = 0;
    }
}

void Worker::answer_dump(uint64_t now) {
    uint64_t req = dump_.requested.load(std::memory_order_acquire);
    if (req == dump_.completed.load(std::memory_order_relaxed)) return;
    uint32_t n = 0;
    for (uint32_t pos = 0; pos < flows_.capacity() && n < dump_.capacity; ++pos) {
        if (!flows_.in_use(pos)) continue;
        const Flow &f = flows_.at(static_cast<int32_t>(pos));
        FlowRecord &r = dump_.rows[n++];
        r.key = flows_.key_at(static_cast<int32_t>(pos));
        r.state = f.state;
        r.auth = f.auth;
        r.tclass = f.tclass;
        r.init_side = f.init_side;
        r.worker = f.worker;
        r.pkts[0] = f.pkts[0], r.pkts[1] = f.pkts[1];
        r.bytes[0] = f.bytes[0], r.bytes[1] = f.bytes[1];
        r.age_s = static_cast<uint32_t>((now - f.created_tsc) / tsc_hz_);
        r.idle_s = static_cast<uint32_t>((now - f.last_tsc) / tsc_hz_);
        r.role = f.role;
        r.parked = f.parked;
        r.held = f.hold.count;
        r.decided_version = f.decided_version;
        auto copy = [](char(&dst)[48], std::string_view v) {
            const size_t n = std::min(v.size(), sizeof dst - 1);
            std::memcpy(dst, v.data(), n);
            dst[n] = '\0';
        };
        const bool peer = f.peer && f.peer->status == crypto::ClaimsReason::Ok;
        copy(r.peer_pu, peer ? f.peer->claims.pu_id() : std::string_view());
        copy(r.peer_enforcer, peer ? f.peer->claims.enforcer_id() : std::string_view());
    }
    dump_.count = n;
    dump_.completed.store(req, std::memory_order_release);
}

void Worker::housekeeping(uint64_t now) {
    if (idr_) {
        flows_.expire(
            now, kExpireBudget,
            [](void *ctx, int32_t pos, Flow &f) {
                static_cast<identity::Stage *>(ctx)->on_flow_removed(pos, f);
            },
            &stage_);
        stage_.housekeeping(kSweepBudget);
    } else {
        flows_.expire(now, kExpireBudget);
    }
    if (router_.enabled()) router_.housekeeping(now);
    if (geneve_.enabled()) geneve_.housekeeping(now);
    if (s_.pool) {
        const uint64_t free = rte_mempool_avail_count(s_.pool);
        if (free < stats_.mbuf_free_min.get()) stats_.mbuf_free_min.set(free);
        if (free == 0) stats_.mbuf_pool_empty.add();
    }
    const FlowTableStats &fs = flows_.stats();
    stats_.flows_active.set(flows_.size());
    stats_.flows_created.set(fs.created);
    stats_.flows_expired.set(fs.expired);
    stats_.flows_refused.set(fs.refused);
    answer_dump(now);
}

int Worker::run(const std::atomic<bool> &stop) {
    rte_mbuf *pkts[kMaxBurst];
    const uint16_t queue = static_cast<uint16_t>(s_.id);
    uint32_t idle_polls = 0;
    uint32_t sleep_us = 1;
    uint32_t reeval_spins = 0;
    uint64_t polls = 0;
    if (idr_ && idr_->state) idr_->state->register_reader(s_.id);
    if (router_.enabled()) {
        router_.online();
        if (s_.id == 0) router_.announce();  // gratuitous ARP, unsolicited NA
    }
    while (!stop.load(std::memory_order_relaxed)) {
        const uint64_t now = rte_rdtsc();
        if (router_.enabled()) {
            router_.quiescent();  // the route table read last loop is done
            if (s_.nworkers > 1) router_.take_events(now);  // what the other workers heard
        }
        cap_.loop();
        begin_loop(now);
        uint32_t got = 0;
        for (uint8_t side = 0; side < 2; ++side) {
            if (side == 1 && s_.port_id[1] == s_.port_id[0]) break;  // GENEVE: one arm
            uint16_t n =
                rte_eth_rx_burst(s_.port_id[side], queue, pkts, static_cast<uint16_t>(s_.burst));
            if (!n) continue;
            got += n;
            uint64_t bytes = 0;
            for (uint16_t i = 0; i < n; ++i) {
                bytes += pkts[i]->pkt_len;
                pkts[i]->port = s_.port_id[side];  // not every PMD sets it
            }
            stats_.rx_pkts[side].add(n);
            stats_.rx_bytes[side].add(bytes);
            cap_.rx(pkts, n, side);
            handle_burst(pkts, n, now);
        }
        if (s_.l7_port != kNoPort) {
            // The exception interface: the proxy's answers to clients and its upstream flows.
            uint16_t n = rte_eth_rx_burst(s_.l7_port, queue, pkts, static_cast<uint16_t>(s_.burst));
            if (n) {
                got += n;
                for (uint16_t i = 0; i < n; ++i) pkts[i]->port = s_.l7_port;
                stats_.l7_from_exception.add(n);
                handle_burst(pkts, n, now);
            }
        }
        if (s_.nworkers > 1) {
            for (uint32_t w = 0; w < s_.nworkers; ++w) {
                if (!inbound_[w]) continue;
                unsigned n = rte_ring_sc_dequeue_burst(inbound_[w], reinterpret_cast<void **>(pkts),
                                                       s_.burst, nullptr);
                if (!n) continue;
                got += n;
                stats_.steered_in.add(n);
                handle_burst(pkts, static_cast<uint16_t>(n), now, true, true);
            }
            flush_steer();
        }
        if ((++polls % kHousekeepingPolls) == 0) housekeeping(now);
        flush_tx(now);
        end_loop();

        if (got) {
            idle_polls = 0;
            sleep_us = 1;
        } else if (s_.idle.backoff && ++idle_polls > s_.idle.spin_polls) {
            // Idle: give the core back (several instances and test hosts share two cores).
            begin_loop(now);
            housekeeping(now);
            flush_tx(now);
            end_loop();
            // A policy update is being applied to the existing flows: finish that sweep at full
            // speed (it is paced by housekeeping rounds, and idle sleeps would stretch a sweep of
            // a large table over seconds), then go back to sleeping.
            // Bounded: a sweep waiting on the slow path for long goes back to the normal pace.
            if (idr_ && stage_.sweep_pending() && ++reeval_spins < kMaxReevalSpins) continue;
            reeval_spins = 0;
            stats_.idle_sleeps.add();
            rte_delay_us_sleep(sleep_us);
            if (sleep_us < s_.idle.max_sleep_us)
                sleep_us = std::min(sleep_us * 2, s_.idle.max_sleep_us);
        }
    }
    stats_.polls.set(polls);
    if (router_.enabled()) router_.offline();
    if (idr_ && idr_->state) idr_->state->unregister_reader(s_.id);
    return 0;
}

}  // namespace segwire::dp
