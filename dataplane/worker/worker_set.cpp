#include "dataplane/worker/worker_set.hpp"

#include <stdexcept>
#include <string>
#include <vector>

#include <rte_launch.h>
#include <rte_lcore.h>
#include <rte_ring.h>
#include <rte_ring_elem.h>

#include "dataplane/worker/worker.hpp"

namespace segwire::dp {

WorkerSet::WorkerSet() = default;
WorkerSet::~WorkerSet() = default;

void WorkerSet::add(const WorkerSetup &s) {
    auto worker = std::make_unique<Worker>();
    std::string err;
    if (!worker->init(s, err))
        throw std::runtime_error("worker " + std::to_string(s.id) + ": " + err);
    workers_.push_back(std::move(worker));
}

void WorkerSet::create_steering_rings() {
    const uint32_t n = size();
    if (n < 2) return;
    for (uint32_t dst = 0; dst < n; ++dst)
        for (uint32_t src = 0; src < n; ++src) {
            if (src == dst) continue;
            std::string name = "sw_steer_" + std::to_string(src) + "_" + std::to_string(dst);
            rte_ring *r =
                rte_ring_create(name.c_str(), 1024, rte_socket_id(), RING_F_SP_ENQ | RING_F_SC_DEQ);
            if (!r) throw std::runtime_error("cannot create ring " + name);
            workers_[dst]->set_steer_ring(src, r);
            workers_[src]->set_peer_ring(dst, r);
        }
    if (!routed()) return;
    // Routed mode: neighbour news (what each worker hears of ARP and ND) to every other worker,
    // one SP/SC ring per ordered pair as for steering.
    std::vector<std::vector<rte_ring *>> ring(n, std::vector<rte_ring *>(n, nullptr));
    for (uint32_t src = 0; src < n; ++src)
        for (uint32_t dst = 0; dst < n; ++dst) {
            if (src == dst) continue;
            std::string name = "sw_nbrev_" + std::to_string(src) + "_" + std::to_string(dst);
            ring[src][dst] = rte_ring_create_elem(name.c_str(), sizeof(NeighbourEvent), 256,
                                                  rte_socket_id(), RING_F_SP_ENQ | RING_F_SC_DEQ);
            if (!ring[src][dst]) throw std::runtime_error("cannot create ring " + name);
        }
    for (uint32_t w = 0; w < n; ++w)
        for (uint32_t o = 0; o < n; ++o)
            if (o != w) workers_[w]->set_neighbour_rings(o, ring[w][o], ring[o][w]);
}

void WorkerSet::attach_identity(IdentityRuntime *idr) {
    for (auto &w : workers_) {
        std::string err;
        if (!w->attach_identity(idr, err))
            throw std::runtime_error("worker " + std::to_string(w->id()) + ": " + err);
    }
}

int WorkerSet::run_on_lcore(void *launch) {
    const Launch *l = static_cast<const Launch *>(launch);
    return l->worker->run(*l->stop);
}

void WorkerSet::launch(const std::atomic<bool> &stop) {
    launches_.clear();
    for (auto &w : workers_) launches_.push_back({w.get(), &stop});
    uint32_t idx = 0;
    unsigned lcore;
    RTE_LCORE_FOREACH_WORKER(lcore) {
        if (idx == launches_.size()) break;
        if (rte_eal_remote_launch(run_on_lcore, &launches_[idx], lcore) != 0)
            throw std::runtime_error("cannot launch worker on lcore " + std::to_string(lcore));
        ++idx;
    }
}

void WorkerSet::clear() {
    workers_.clear();
    launches_.clear();
}

const WorkerStats &WorkerSet::stats(uint32_t i) const {
    return workers_[i]->stats();
}

const IdentityStats &WorkerSet::identity_stats(uint32_t i) const {
    return workers_[i]->identity_stats();
}

FlowDump &WorkerSet::dump(uint32_t i) {
    return workers_[i]->dump();
}

CaptureSlot &WorkerSet::capture(uint32_t i) {
    return workers_[i]->capture();
}

uint32_t WorkerSet::flow_capacity(uint32_t i) const {
    return workers_[i]->flows().capacity();
}

bool WorkerSet::routed() const {
    return !workers_.empty() && workers_[0]->routed();
}

const GeneveStats &WorkerSet::geneve_stats(uint32_t i) const {
    return workers_[i]->geneve_stats();
}

const RoutingStats &WorkerSet::routing_stats(uint32_t i) const {
    return workers_[i]->routing_stats();
}

NeighbourDump &WorkerSet::neighbour_dump(uint32_t i) {
    return workers_[i]->neighbour_dump();
}

const char *WorkerSet::hmac_backend() const {
    return workers_.empty() ? "none" : workers_[0]->hmac_backend();
}

}  // namespace segwire::dp
