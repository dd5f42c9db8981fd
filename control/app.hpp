// What the daemon owns while it runs. Built and torn down by control/main.cpp on the main lcore;
// telemetry callbacks (DPDK's telemetry thread) only read counters and ask workers for dumps.
#pragma once

#include <atomic>
#include <memory>

#include "config/appliance_config.hpp"
#include "control/eal_setup.hpp"
#include "control/console_sync.hpp"
#include "control/enforcement.hpp"
#include "dataplane/worker/worker_set.hpp"

namespace segwire::control {

struct App {
    config::ApplianceConfig cfg;
    PortInfo ports[2];
    dp::WorkerSet workers;
    std::unique_ptr<Enforcement> enforcement;  // null without an identity (forwarding only)
    std::unique_ptr<ConsoleSync> sync;         // null without a Console
    std::atomic<bool> stop{false};
    uint64_t start_tsc = 0;
};

// Registers the /segwire/... rte_telemetry commands. `app` must outlive the EAL.
void register_telemetry(App &app);

}  // namespace segwire::control
