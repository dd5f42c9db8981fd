// Contract: how one worker is set up (WorkerSetup).
// Written by: the main lcore before launch (control/main.cpp), one per worker.
// Read by: dp::WorkerSet::add (dataplane/worker/worker_set.hpp), which hands it to the worker's
// init on the main lcore; the worker keeps its own copy. Nothing in it changes after launch.
#pragma once

#include <cstdint>

#include "config/appliance_config.hpp"
#include "dataplane/contract/routing.hpp"
#include "dataplane/flow/flow_table.hpp"

struct rte_mempool;

namespace segwire::dp {

inline constexpr uint32_t kMaxWorkers = 64;

struct IdentityRuntime;  // dataplane/contract/identity_runtime.hpp
struct FailGate;         // dataplane/contract/fail_gate.hpp

struct WorkerSetup {
    uint32_t id = 0;
    uint32_t nworkers = 1;
    uint16_t port_id[2] = {0, 0};   // ethdev ids of inside, outside
    bool software_steering = true;  // false when both ports hash symmetrically in hardware
    uint32_t burst = 32;
    config::IdleConfig idle;
    uint32_t flow_capacity = 65536;
    uint32_t timeouts_s[kTimeoutClassCount] = {};
    int socket = 0;
    rte_mempool *pool = nullptr;          // the packet pool, sampled for the mbuf_free_min gauge
    IdentityRuntime *identity = nullptr;  // null: forwarding only (the foundation's mode)
    // While no policy state is published (or before the identity is attached): refuse what it
    // says (identity.fail_mode closed). Null: forward untouched (fail open, or no identity at all).
    const FailGate *fail_gate = nullptr;
    // Routed mode (docs/routed.md): the ports' addresses and the published route table; null in
    // bump-in-the-wire mode.
    const RoutedPorts *routed_ports = nullptr;
    RouteSlot *routes = nullptr;
    config::RoutingConfig routing;
    // GENEVE one-arm mode (docs/geneve.md), on top of routed mode: both port ids are the arm.
    bool geneve = false;
    config::GeneveConfig geneve_cfg;
};

}  // namespace segwire::dp
