// Contract: flow listings (FlowDump, FlowRecord) for /segwire/flows and `segwirectl flows`.
// Written by: the telemetry thread (control/telemetry.cpp) allocates `rows` and bumps
// `requested`; the worker lcore copies its flows into `rows` between bursts (housekeeping), sets
// `count` and publishes `completed`.
// Read by: the telemetry thread once completed == requested. No lock: the two sequence numbers
// say who owns the buffer (the worker, while requested != completed).
#pragma once

#include <atomic>
#include <cstdint>

#include "dataplane/flow/flow_table.hpp"

namespace segwire::dp {

// One row of a flow listing (telemetry / segwirectl flows).
struct FlowRecord {
    FlowKey key;
    TcpState state;
    Auth auth;
    uint8_t tclass;
    uint8_t init_side;
    uint16_t worker;
    uint64_t pkts[2];
    uint64_t bytes[2];
    uint32_t age_s;
    uint32_t idle_s;
    // For segwirectl trace: the identity side of the flow.
    uint8_t role;               // Role
    uint8_t parked;             // waiting for the slow path
    uint16_t held;              // packets held until authorization
    uint64_t decided_version;   // policy snapshot of the last decision (0: none)
    char peer_pu[48];           // the verified peer's PU ID (empty: decided without identity)
    char peer_enforcer[48];     // the enforcer that signed its claims
};

// The control thread asks a worker for a copy of its flows; the worker answers between bursts.
// No lock: `requested` and `completed` are sequence numbers, the buffer belongs to the worker
// while requested != completed.
struct FlowDump {
    std::atomic<uint64_t> requested{0};
    std::atomic<uint64_t> completed{0};
    FlowRecord *rows = nullptr;
    uint32_t capacity = 0;
    uint32_t count = 0;
};

}  // namespace segwire::dp
