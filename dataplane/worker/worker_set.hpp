// The workers as control/ sees them: created from WorkerSetup structs, launched on the worker
// lcores, and read through the contracts (counters, flow dumps). control/ never sees class
// Worker (dataplane/worker/worker.hpp); this is the one file that does, on control's behalf.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "dataplane/contract/capture.hpp"
#include "dataplane/contract/flow_dump.hpp"
#include "dataplane/contract/geneve.hpp"
#include "dataplane/contract/routing.hpp"
#include "dataplane/contract/stats.hpp"
#include "dataplane/contract/worker_setup.hpp"

namespace segwire::dp {

class Worker;

class WorkerSet {
  public:
    WorkerSet();
    ~WorkerSet();  // the workers must have returned (rte_eal_mp_wait_lcore)
    WorkerSet(const WorkerSet &) = delete;
    WorkerSet &operator=(const WorkerSet &) = delete;

    // ---- main lcore, before launch (allocate; throw std::runtime_error naming the problem) ----
    // Creates and initialises worker `s.id`; workers are added in id order from 0.
    void add(const WorkerSetup &s);
    // With more than one worker: one single-producer/single-consumer steering ring per ordered
    // worker pair, so no two lcores ever contend on one ring.
    void create_steering_rings();
    // Workers added without an identity get `idr` (after they have returned, before the next
    // launch): a first boot that enrolled with the Console while they ran under the fail gate.
    void attach_identity(IdentityRuntime *idr);
    // Worker i runs on the i-th worker lcore until `stop` is set.
    void launch(const std::atomic<bool> &stop);
    // Destroys the workers (after they have returned).
    void clear();

    // ---- any thread (telemetry): what each worker publishes ----
    uint32_t size() const { return static_cast<uint32_t>(workers_.size()); }
    bool empty() const { return workers_.empty(); }
    const WorkerStats &stats(uint32_t i) const;
    const IdentityStats &identity_stats(uint32_t i) const;
    // Worker i's flow-dump mailbox, and how many flows its table holds at most.
    FlowDump &dump(uint32_t i);
    uint32_t flow_capacity(uint32_t i) const;
    // Worker i's capture slot (docs/capture.md).
    CaptureSlot &capture(uint32_t i);
    // Routed mode (docs/routed.md): worker i's routing counters and neighbour-listing mailbox.
    bool routed() const;
    const RoutingStats &routing_stats(uint32_t i) const;
    const GeneveStats &geneve_stats(uint32_t i) const;
    NeighbourDump &neighbour_dump(uint32_t i);
    // The HMAC back-end the workers use ("none" without identity).
    const char *hmac_backend() const;

  private:
    struct Launch {
        Worker *worker;
        const std::atomic<bool> *stop;
    };
    static int run_on_lcore(void *launch);

    std::vector<std::unique_ptr<Worker>> workers_;
    std::vector<Launch> launches_;
};

}  // namespace segwire::dp
