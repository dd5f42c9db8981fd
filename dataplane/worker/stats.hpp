// Worker counters. Each is written by exactly one worker and read by the telemetry thread, so an
// increment is a relaxed load + store (a plain add, no locked read-modify-write on the packet
// path) and the reader still never sees a torn value.
#pragma once

#include <atomic>
#include <cstdint>

#include "dataplane/packet/parse.hpp"

namespace segwire::dp {

class Counter {
  public:
    void add(uint64_t n = 1) {
        v_.store(v_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
    }
    void set(uint64_t n) { v_.store(n, std::memory_order_relaxed); }
    uint64_t get() const { return v_.load(std::memory_order_relaxed); }

  private:
    std::atomic<uint64_t> v_{0};
};

enum PortSide : uint8_t { kInside = 0, kOutside = 1 };

struct alignas(64) WorkerStats {
    Counter rx_pkts[2], rx_bytes[2];  // by arrival port (inside, outside)
    Counter tx_pkts[2], tx_bytes[2];  // by departure port
    Counter drops[kDropReasonCount];
    Counter steered_out, steered_in;  // handed to / received from another worker
    Counter non_ip, fragments;
    Counter flows_active, flows_created, flows_expired, flows_refused;
    Counter polls, idle_sleeps;
};

}  // namespace segwire::dp
