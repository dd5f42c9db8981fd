// Contract: how one worker is set up (WorkerSetup).
// Written by: the main lcore before launch (control/main.cpp), one per worker.
// Read by: dp::WorkerSet::add (dataplane/worker/worker_set.hpp), which hands it to the worker's
// init on the main lcore; the worker keeps its own copy. Nothing in it changes after launch.
#pragma once

#include <atomic>
#include <cstdint>

#include "config/appliance_config.hpp"
#include "dataplane/contract/routing.hpp"
#include "dataplane/flow/flow_table.hpp"

struct rte_mempool;

namespace segwire::dp {

inline constexpr uint32_t kMaxWorkers = 64;

struct IdentityRuntime;  // dataplane/contract/identity_runtime.hpp
struct FailGate;         // dataplane/contract/fail_gate.hpp

inline constexpr uint16_t kNoPort = UINT16_MAX;

struct L7Neighbours;  // below

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
    // L7 mode (docs/l7-path.md): the exception port (kNoPort: none), the Ethernet address of its
    // kernel side, the mbuf flag that marks packets bound there instead of the inside port, and
    // the Ethernet addresses learned from steered SYNs (shared by all workers).
    uint16_t l7_port = kNoPort;
    uint8_t l7_mac[6] = {};
    uint64_t l7_mark = 0;
    L7Neighbours *l7_neighbours = nullptr;
};

// Who is behind a PU address an L7 flow was steered to: the PU's Ethernet address and the client
// side's (its router's or enforcer's). The proxy's upstream connection to the PU comes out of
// the exception interface addressed to the kernel's own MAC (the interface is NOARP) and, in bump-
// in-the-wire mode, must reach the PU as if from the wire: these are the addresses it gets.
// Written by the worker that steers a SYN, read by the worker that relays the upstream flow (they
// may differ): each slot is published by its address word (release), the MACs written before it.
// IPv4 only; a PU whose MAC changes is relearned at its next steered SYN.
struct L7Neighbours {
    static constexpr uint32_t kSlots = 256;
    struct Slot {
        std::atomic<uint32_t> addr{0};  // network byte order; 0 = empty
        std::atomic<uint64_t> pu_mac{0}, client_mac{0};
    };
    Slot slots[kSlots];

    static uint64_t pack(const uint8_t *m) noexcept {
        uint64_t v = 0;
        for (int i = 0; i < 6; ++i) v = v << 8 | m[i];
        return v;
    }
    static void unpack(uint64_t v, uint8_t *m) noexcept {
        for (int i = 5; i >= 0; --i, v >>= 8) m[i] = static_cast<uint8_t>(v);
    }
    void learn(uint32_t addr, const uint8_t *pu, const uint8_t *client) noexcept {
        for (uint32_t i = 0; i < 8; ++i) {
            Slot &s = slots[((addr * 2654435761u >> 24) + i) & (kSlots - 1)];
            const uint32_t a = s.addr.load(std::memory_order_acquire);
            if (a != 0 && a != addr) continue;
            s.pu_mac.store(pack(pu), std::memory_order_relaxed);
            s.client_mac.store(pack(client), std::memory_order_relaxed);
            if (a == 0) s.addr.store(addr, std::memory_order_release);
            return;
        }
    }
    bool find(uint32_t addr, uint8_t *pu, uint8_t *client) const noexcept {
        for (uint32_t i = 0; i < 8; ++i) {
            const Slot &s = slots[((addr * 2654435761u >> 24) + i) & (kSlots - 1)];
            const uint32_t a = s.addr.load(std::memory_order_acquire);
            if (a == 0) return false;
            if (a != addr) continue;
            unpack(s.pu_mac.load(std::memory_order_relaxed), pu);
            unpack(s.client_mac.load(std::memory_order_relaxed), client);
            return true;
        }
        return false;
    }
};

}  // namespace segwire::dp
