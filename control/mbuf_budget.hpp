// The mbuf budget (docs/handshake.md "Budgets"): how the one packet pool is shared between what
// the ports' descriptor rings and the lcore caches hold, what handshakes may pin (held packets,
// kept UDP control datagrams, DNS answers in the slow path), and a reserve that only forwarding
// uses. Checked once at start, before the pool is created; a configuration the pool cannot carry
// is refused with the field to change.
#pragma once

#include <cstdint>
#include <string>

#include "config/appliance_config.hpp"

namespace segwire::control {

struct MbufPlan {
    uint32_t rings = 0;         // mbufs the ports' rx/tx descriptor rings may hold
    uint32_t steering = 0;      // mbufs the inter-worker steering rings may hold
    uint32_t caches = 0;        // per-lcore mempool caches (1.5 x the cache size each)
    uint32_t reserve = 0;       // forwarding only: handshakes can never take it
    uint32_t per_worker = 0;    // what one worker's handshakes may pin in all
    uint32_t hold_total = 0;    // per worker: held packets
    uint32_t kept_control = 0;  // per worker: kept UDP control datagrams (UDP contexts)
    uint32_t slow_jobs = 0;     // per worker: slow-path jobs (a DNS answer each, at most)
};

// `ring_mbufs`: what the two ports' descriptor rings can hold (0 for drivers that copy frames,
// such as net_af_packet and net_tap). Throws config::ConfigError naming the field when the
// pool cannot carry the handshakes' bounds beside the reserve.
MbufPlan plan_mbufs(const config::ApplianceConfig &cfg, uint32_t ring_mbufs);

// The mempool cache size segwire creates its pool with (per lcore).
inline constexpr uint32_t kPoolCache = 256;

}  // namespace segwire::control
