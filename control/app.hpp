// What the daemon owns while it runs. Built and torn down by control/main.cpp on the main lcore;
// telemetry callbacks (DPDK's telemetry thread) only read counters and ask workers for dumps, and
// the metrics server (control/metrics.hpp) only reads counters.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

#include "config/appliance_config.hpp"
#include "control/capture.hpp"
#include "control/eal_setup.hpp"
#include "control/console_sync.hpp"
#include "control/enforcement.hpp"
#include "control/l7.hpp"
#include "control/metrics.hpp"
#include "control/routing.hpp"
#include "dataplane/contract/fail_gate.hpp"
#include "dataplane/worker/worker_set.hpp"

namespace segwire::control {

struct App {
    config::ApplianceConfig cfg;
    std::string config_path;  // re-read on SIGHUP (routed mode: routing.routes)
    PortInfo ports[2];
    // Routed mode (docs/routed.md): the ports' addresses and the route table; null otherwise.
    // Destroyed after the workers (they read it).
    std::unique_ptr<Routing> routing;
    // L7 mode (docs/l7-path.md): the exception port and the proxy's sockets; null when off.
    // Destroyed after the workers and the enforcement (finish()).
    std::unique_ptr<L7Path> l7;
    dp::WorkerSet workers;
    std::unique_ptr<Enforcement> enforcement;  // null without an identity (forwarding only)
    std::unique_ptr<ConsoleSync> sync;         // null without a Console
    // What the telemetry thread reads for `enforcement`: set once it exists, which may be long
    // after telemetry started (a first boot waiting for the Console, docs/control.md).
    std::atomic<Enforcement *> enforcement_live{nullptr};
    dp::FailGate fail_gate;  // identity.fail_mode closed; the workers point at it
    std::atomic<bool> stop{false};
    rte_mempool *pool = nullptr;  // the one packet pool
    uint64_t start_tsc = 0;
    int64_t start_unix = 0;  // wall clock at start (segwire_start_time_seconds)
    std::string dumpcap;     // dpdk-dumpcap support: "ready" or "off: <why>" (docs/capture.md)
    // `segwirectl capture` (docs/capture.md); destroyed once the workers have returned.
    std::unique_ptr<Capture> capture;
    // metrics.listen's server (null when off). Declared last so that it is destroyed first: it
    // reads everything above; main.cpp's finish() also stops it before tearing anything down.
    std::unique_ptr<MetricsServer> metrics;
};

// Registers the /segwire/... rte_telemetry commands. `app` must outlive the EAL.
void register_telemetry(App &app);

}  // namespace segwire::control
