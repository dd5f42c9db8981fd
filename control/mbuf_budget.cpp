#include "control/mbuf_budget.hpp"

#include <algorithm>

namespace segwire::control {

namespace {
constexpr uint32_t kSteerRingHolds = 1023;    // a 1024-slot rte_ring (dp::WorkerSet)
constexpr uint32_t kInFlightPerWorker = 512;  // a burst, two tx queues, deferred packets
constexpr uint32_t kAutoKeptMax = 2048;
constexpr uint32_t kAutoHoldMax = 8192;
constexpr uint32_t kMinHold = 64;
}  // namespace

MbufPlan plan_mbufs(const config::ApplianceConfig &cfg, uint32_t ring_mbufs) {
    MbufPlan p;
    const uint32_t w = std::max<uint32_t>(cfg.workers, 1);
    const auto &h = cfg.handshake;
    p.rings = ring_mbufs;
    p.steering = w > 1 ? w * (w - 1) * kSteerRingHolds : 0;
    p.caches = (w + 1) * (kPoolCache * 3 / 2);
    p.reserve = std::max<uint32_t>(
        static_cast<uint32_t>(uint64_t(cfg.mbufs) * h.mbuf_reserve_percent / 100),
        w * kInFlightPerWorker);
    const uint64_t fixed = uint64_t(p.rings) + p.steering + p.caches + p.reserve;
    auto whence = [&] {
        return "mbufs " + std::to_string(cfg.mbufs) + " less " + std::to_string(p.reserve) +
               " reserved for forwarding (handshake.mbuf_reserve_percent " +
               std::to_string(h.mbuf_reserve_percent) + "), " + std::to_string(p.rings) +
               " in descriptor rings, " + std::to_string(p.steering) + " in steering rings, " +
               std::to_string(p.caches) + " in lcore caches";
    };
    if (fixed >= cfg.mbufs)
        throw config::ConfigError("mbufs", "too small: " + whence() + " leave nothing");
    p.per_worker = static_cast<uint32_t>((cfg.mbufs - fixed) / w);
    if (!cfg.identity.enabled()) return p;  // only forwarding: nothing is pinned

    p.slow_jobs = h.slowpath_queue;
    const std::string share = " per worker exceed the " + std::to_string(p.per_worker) +
                              " mbufs each of the " + std::to_string(w) +
                              " workers' handshakes may pin (" + whence() +
                              "); lower it or raise mbufs";
    if (p.slow_jobs + 2 * kMinHold > p.per_worker)
        throw config::ConfigError("handshake.slowpath_queue",
                                  std::to_string(p.slow_jobs) + " slow-path jobs" + share);
    const uint32_t left = p.per_worker - p.slow_jobs;
    p.kept_control = h.kept_control ? h.kept_control : std::min(kAutoKeptMax, left / 4);
    if (p.kept_control >= left)
        throw config::ConfigError("handshake.kept_control",
                                  std::to_string(p.kept_control) + " kept control datagrams + " +
                                      std::to_string(p.slow_jobs) + " slow-path jobs" + share);
    p.hold_total = h.hold_total ? h.hold_total : std::min(kAutoHoldMax, left - p.kept_control);
    if (uint64_t(p.hold_total) + p.kept_control > left)
        throw config::ConfigError(h.hold_total ? "handshake.hold_total" : "handshake.kept_control",
                                  std::to_string(p.hold_total) + " held + " +
                                      std::to_string(p.kept_control) +
                                      " kept control datagrams + " + std::to_string(p.slow_jobs) +
                                      " slow-path jobs" + share);
    if (p.hold_total < kMinHold)
        throw config::ConfigError(
            "mbufs", "too small: " + whence() + " leave " + std::to_string(p.hold_total) +
                         " held packets per worker (at least " + std::to_string(kMinHold) + ")");
    return p;
}

}  // namespace segwire::control
