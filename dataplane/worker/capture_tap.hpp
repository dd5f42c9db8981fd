// A worker's side of packet capture (docs/capture.md): off, it costs one load and two predictable
// branches per loop and one predictable branch per rx burst, tx burst and drop. Armed by the
// control side through the worker's CaptureSlot (dataplane/contract/capture.hpp), it copies the
// packets that match into the slot's pool (rte_pktmbuf_copy: a pool of its own, so a capture can
// never take the mbufs forwarding needs), stages the records and enqueues them into the slot's
// SPSC ring once per loop. A full ring or an empty pool loses the copy, never the packet, and is
// counted per port. No lock, no allocation beyond the pool's mbufs, nothing that blocks.
#pragma once

#include <cstdint>

#include "dataplane/contract/capture.hpp"
#include "dataplane/packet/parse.hpp"

struct rte_mbuf;

namespace segwire::dp {

class CaptureTap {
  public:
    // Control-time: the worker's id, its ports' ethdev ids (inside, outside) and its slot.
    void init(uint32_t worker, const uint16_t port_id[2], CaptureSlot *slot) noexcept {
        worker_ = worker;
        port_id_[0] = port_id[0];
        port_id_[1] = port_id[1];
        slot_ = slot;
    }

    // Once per loop: a new generation from the control side; last loop's records to the ring.
    void loop() noexcept {
        const uint32_t g = slot_->armed.load(std::memory_order_acquire);
        if (g != gen_ || n_) [[unlikely]]
            sync(g);
    }
    bool on() const noexcept { return on_; }

    // Packets received on / leaving from port `side` (before the tx burst: what goes on the wire).
    void rx(rte_mbuf *const *pkts, uint16_t n, uint8_t side) noexcept {
        if (on_) [[unlikely]]
            copy_burst(pkts, n, side, CaptureDir::kIn);
    }
    void tx(rte_mbuf *const *pkts, uint16_t n, uint8_t side) noexcept {
        if (on_) [[unlikely]]
            copy_burst(pkts, n, side, CaptureDir::kOut);
    }
    // A packet the worker is about to free for `why` (its arrival port is m->port).
    void dropped(const rte_mbuf *m, DropReason why) noexcept {
        if (on_) [[unlikely]]
            copy_drop(m, why);
    }

  private:
    static constexpr uint16_t kStage = 256;

    void sync(uint32_t g) noexcept;
    void flush() noexcept;
    void copy_burst(rte_mbuf *const *pkts, uint16_t n, uint8_t side, CaptureDir dir) noexcept;
    void copy_drop(const rte_mbuf *m, DropReason why) noexcept;
    bool wanted(const rte_mbuf *m, uint8_t side) const noexcept;
    void copy(const rte_mbuf *m, uint8_t side, CaptureDir dir, DropReason why,
              uint64_t tsc) noexcept;

    CaptureSlot *slot_ = nullptr;  // null: never armed (a stage outside a worker)
    bool on_ = false;
    uint32_t gen_ = 0;
    uint32_t worker_ = 0;
    uint16_t port_id_[2] = {0, 0};
    // Copied from the slot at each new generation.
    CaptureFilter filter_;
    uint32_t snaplen_ = 0;
    uint64_t left_ = 0;
    uint16_t n_ = 0;
    CaptureRecord staged_[kStage];
};

// A tap that is never armed: what code that may run outside a worker points at until a worker
// hands it its own.
inline CaptureTap &no_capture() noexcept {
    static CaptureTap off;
    return off;
}

}  // namespace segwire::dp
