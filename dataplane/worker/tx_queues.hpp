// A worker's per-loop transmit staging: what leaves on each port at the end of the loop. The
// worker's loop fills it (forwarded packets) and so does its identity stage (forwarded and
// released packets, RSTs, confirmations, control datagrams); the loop flushes it once per loop.
#pragma once

#include <cstdint>

#include <rte_mbuf.h>

#include "dataplane/packet/parse.hpp"
#include "dataplane/contract/stats.hpp"
#include "dataplane/worker/capture_tap.hpp"

namespace segwire::dp {

inline constexpr uint32_t kMaxBurst = 64;

struct TxQueues {
    // Sized for the largest burst from two ports plus steered packets.
    static constexpr uint32_t kCap = 4 * kMaxBurst;
    rte_mbuf *q[2][kCap];
    uint16_t n[2] = {0, 0};
    WorkerStats *stats = nullptr;     // a full queue counts tx-full drops here
    CaptureTap *cap = &no_capture();  // ... and shows them to a capture

    void push(rte_mbuf *m, uint8_t out_side) noexcept {
        uint16_t &k = n[out_side];
        if (k == kCap) {
            stats->drops[static_cast<size_t>(DropReason::TxFull)].add();
            cap->dropped(m, DropReason::TxFull);
            rte_pktmbuf_free(m);
            return;
        }
        q[out_side][k++] = m;
    }
};

}  // namespace segwire::dp
