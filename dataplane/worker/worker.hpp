// A worker lcore: run to completion, one burst at a time.
//   rx burst (both ports, queue = worker id) -> parse -> steer to the flow's owner worker
//   -> bulk flow lookup -> per-flow state -> forward to the other port -> tx burst
// Both directions of a flow are handled by its owner (symmetric hash of the canonical key), so
// flow tables are per worker and never shared. Housekeeping (ageing, dumps) runs every
// kHousekeepingPolls loops, not per packet.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "config/appliance_config.hpp"
#include "dataplane/contract/capture.hpp"
#include "dataplane/contract/fail_gate.hpp"
#include "dataplane/contract/flow_dump.hpp"
#include "dataplane/contract/identity_runtime.hpp"
#include "dataplane/contract/stats.hpp"
#include "dataplane/contract/worker_setup.hpp"
#include "dataplane/flow/flow_table.hpp"
#include "dataplane/identity/stage.hpp"
#include "dataplane/route/geneve.hpp"
#include "dataplane/route/router.hpp"
#include "dataplane/worker/capture_tap.hpp"
#include "dataplane/worker/tx_queues.hpp"

struct rte_mbuf;
struct rte_mempool;
struct rte_ring;

namespace segwire::dp {

class Worker {
  public:
    Worker() = default;
    Worker(const Worker &) = delete;
    Worker &operator=(const Worker &) = delete;

    // Control-time (allocates).
    bool init(const WorkerSetup &s, std::string &err);
    // Control-time, while the worker is not running (allocates): a worker set up without an
    // identity (a first boot waiting for the Console, docs/control.md "Fail mode") gets one. Its
    // flow table and counters stay.
    bool attach_identity(IdentityRuntime *idr, std::string &err);
    // steer_rings[src] is the ring worker `src` enqueues into for this worker.
    void set_steer_ring(uint32_t from, rte_ring *r) { inbound_[from] = r; }
    void set_peer_ring(uint32_t to, rte_ring *r) { outbound_[to] = r; }
    // Routed mode with several workers: neighbour news to and from worker `other`.
    void set_neighbour_rings(uint32_t other, rte_ring *out, rte_ring *in) {
        router_.set_event_rings(other, out, in);
    }

    // Lcore entry: loops until stop is set.
    int run(const std::atomic<bool> &stop);

    // Entry points also used by the benchmark and tests without ports: process mbufs that
    // arrived on `side` and collect what must leave on each port in tx_[].
    // `steered`: handed over by another worker, which already ran routed mode's ingress on them.
    void handle_burst(rte_mbuf **pkts, uint16_t n, uint64_t now, bool fresh = true,
                      bool steered = false);
    // One loop's worth of identity work outside packet handling (the benchmark drives it too):
    // the slow path's answers, and the held packets they release, run as bursts of their own.
    void begin_loop(uint64_t now);
    void end_loop();
    // What the loop does to the tx queues before the tx bursts: in routed mode the egress (route,
    // resolve, rewrite the Ethernet header); nothing in bump-in-the-wire mode. Before take_tx.
    void prepare_tx(uint64_t now) {
        if (geneve_.enabled()) geneve_.egress();  // the outer header back on, then routed
        if (router_.enabled()) router_.egress(now);
    }
    uint16_t take_tx(uint8_t side, rte_mbuf **out);

    const WorkerStats &stats() const { return stats_; }
    const IdentityStats &identity_stats() const { return stage_.stats(); }
    const char *hmac_backend() const { return idr_ ? stage_.hmac_backend() : "none"; }
    WorkerStats &stats() { return stats_; }
    const FlowTable &flows() const { return flows_; }
    FlowDump &dump() { return dump_; }
    CaptureSlot &capture() { return capture_; }
    RoutingStats &routing_stats() { return router_.stats(); }
    GeneveStats &geneve_stats() { return geneve_.stats(); }
    NeighbourDump &neighbour_dump() { return router_.dump(); }
    bool routed() const { return router_.enabled(); }
    uint32_t id() const { return s_.id; }

  private:
    void flush_tx(uint64_t now);
    void flush_steer();
    void housekeeping(uint64_t now);
    void answer_dump(uint64_t now);
    // Per packet on the established path: inline, not a call.
    uint8_t side_of(const rte_mbuf *m) const {
        return m->port == s_.port_id[kInside] ? kInside : kOutside;
    }
    // L7 mode (docs/l7-path.md): moves the packets marked for the exception port out of the
    // inside port's queue; rewrites Ethernet addresses of frames to and from the kernel side.
    void take_l7_tx();
    void push_l7(rte_mbuf *m);
    int l7_steer(rte_mbuf *m, const PacketView &v, Flow &f, uint8_t side, uint8_t &arrival,
                 bool created, const EnforcerState *st);

    WorkerSetup s_;
    FlowTable flows_;
    WorkerStats stats_;
    FlowDump dump_;
    uint64_t tsc_hz_ = 0;
    rte_ring *inbound_[kMaxWorkers] = {};
    rte_ring *outbound_[kMaxWorkers] = {};

    TxQueues tx_;
    rte_mbuf *l7_tx_[TxQueues::kCap];  // bound for the exception port
    uint16_t l7_n_ = 0;
    rte_mbuf *steer_[kMaxWorkers][kMaxBurst];
    uint16_t steer_n_[kMaxWorkers] = {};

    IdentityRuntime *idr_ = nullptr;  // null: forwarding only
    identity::Stage stage_;

    // Routed mode (docs/routed.md): how packets get in and out; off in bump-in-the-wire mode.
    Router router_;
    // GENEVE one-arm mode (docs/geneve.md): decapsulation before the flow stage, encapsulation
    // before the Router's egress; off otherwise.
    Geneve geneve_;

    // Packet capture (docs/capture.md): the slot the control side arms, and this worker's tap.
    CaptureSlot capture_;
    CaptureTap cap_;
};

}  // namespace segwire::dp
