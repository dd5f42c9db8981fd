// Contract: GENEVE one-arm mode (docs/geneve.md) between the workers and the telemetry thread.
//   GeneveStats  each worker its own counters; the telemetry thread reads them.
#pragma once

#include <cstdint>

#include "dataplane/contract/stats.hpp"

namespace segwire::dp {

#define SEGWIRE_GENEVE_COUNTERS(X)                                                      \
    X(decapsulated, "GENEVE packets received and decapsulated")                         \
    X(encapsulated, "packets sent back to the load balancer, encapsulated")             \
    X(mss_clamped, "inner TCP SYNs whose MSS was lowered for the outer overhead")       \
    X(health_synack, "health-check SYNs answered with a SYN-ACK")                       \
    X(health_rst, "other health-check segments answered with a RST")                    \
    X(contexts_created, "outer headers kept for re-encapsulation (about one per flow)") \
    X(contexts_expired, "outer headers removed after geneve.context_idle_s unused")     \
    X(endpoints_created, "endpoint identities (the endpoint options' values) seen")

struct GeneveStats {
#define X(name, help) Counter name;
    SEGWIRE_GENEVE_COUNTERS(X)
#undef X
    Counter contexts;   // gauge: outer headers kept
    Counter endpoints;  // gauge: endpoint identities known
};

}  // namespace segwire::dp
