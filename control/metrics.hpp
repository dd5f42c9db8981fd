// GET /metrics: the enforcer's counters in the Prometheus text format (docs/metrics.md), from the
// same reads as the /segwire/... telemetry commands (control/telemetry.cpp): relaxed loads of the
// workers' counters and the status snapshots of Enforcement and ConsoleSync. Nothing here touches
// a worker: no flow dump, no lock a worker takes, no per-flow label.
#pragma once

#include <memory>
#include <string>

namespace segwire::control {

struct App;

// The exposition of everything `app` has now. Any thread; `app` must be alive.
std::string render_metrics(const App &app);

// The plain-HTTP listener of `metrics.listen`. Its accept loop runs on a DPDK control thread
// (rte_ctrl_thread_create: the CPUs no worker lcore is pinned to) and requests are answered by a
// pool of two threads started from it, so neither ever runs on a worker's core.
class MetricsServer {
  public:
    // Binds app.cfg.metrics and starts serving. Throws std::runtime_error naming metrics.listen
    // when the address cannot be bound (in use, not an address of this host).
    explicit MetricsServer(const App &app);
    // Stops accepting, finishes the requests in progress and joins every thread: call it before
    // anything render_metrics reads is torn down.
    ~MetricsServer();
    MetricsServer(const MetricsServer &) = delete;
    MetricsServer &operator=(const MetricsServer &) = delete;

    struct Impl;  // the httplib server and its thread (metrics.cpp)

  private:
    std::unique_ptr<Impl> impl_;
};

}  // namespace segwire::control
