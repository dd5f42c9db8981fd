#include "dataplane/worker/capture_tap.hpp"

#include <rte_cycles.h>
#include <rte_mbuf.h>
#include <rte_ring.h>
#include <rte_ring_elem.h>

namespace segwire::dp {

// A new generation (armed, re-armed or disarmed), or records staged by the last loop. Records
// staged under the old generation go to the ring first: the control side drains it to the end
// only after every worker has answered a disarm.
void CaptureTap::sync(uint32_t g) noexcept {
    if (n_) flush();
    if (g == gen_) return;
    gen_ = g;
    on_ = g != 0 && slot_->ring && slot_->pool;
    if (on_) {
        filter_ = slot_->filter;
        snaplen_ = slot_->snaplen;
        left_ = slot_->count ? slot_->count : UINT64_MAX;
        for (int s = 0; s < 2; ++s) {
            slot_->matched[s].set(0);
            slot_->lost[s].set(0);
        }
    }
    slot_->seen.store(g, std::memory_order_release);
}

void CaptureTap::flush() noexcept {
    const unsigned sent =
        rte_ring_sp_enqueue_burst_elem(slot_->ring, staged_, sizeof(CaptureRecord), n_, nullptr);
    for (unsigned i = sent; i < n_; ++i) {
        const CaptureRecord &r = staged_[i];
        slot_->lost[r.port == port_id_[kInside] ? kInside : kOutside].add();
        rte_pktmbuf_free(r.m);
    }
    n_ = 0;
}

bool CaptureTap::wanted(const rte_mbuf *m, uint8_t side) const noexcept {
    if (!(filter_.sides & (1u << side))) return false;
    if (!filter_.flow) return true;
    // The one parser, again: only while a flow filter is armed.
    PacketView v;
    if (parse_packet(rte_pktmbuf_mtod(m, const uint8_t *), m->data_len, v) != DropReason::None)
        return false;
    return capture_flow_matches(filter_, v);
}

void CaptureTap::copy(const rte_mbuf *m, uint8_t side, CaptureDir dir, DropReason why,
                      uint64_t tsc) noexcept {
    slot_->matched[side].add();
    rte_mbuf *c = rte_pktmbuf_copy(m, slot_->pool, 0, snaplen_ ? snaplen_ : UINT32_MAX);
    if (!c) {
        slot_->lost[side].add();
        return;
    }
    if (n_ == kStage) flush();
    staged_[n_++] = {c, tsc, m->pkt_len, port_id_[side], dir, why};
    if (--left_ == 0) on_ = false;  // this worker's share of the count is taken
}

void CaptureTap::copy_burst(rte_mbuf *const *pkts, uint16_t n, uint8_t side,
                            CaptureDir dir) noexcept {
    const uint64_t tsc = rte_rdtsc();
    for (uint16_t i = 0; i < n && on_; ++i)
        if (wanted(pkts[i], side)) copy(pkts[i], side, dir, DropReason::None, tsc);
}

void CaptureTap::copy_drop(const rte_mbuf *m, DropReason why) noexcept {
    const uint8_t side = m->port == port_id_[kInside] ? kInside : kOutside;
    if (wanted(m, side)) copy(m, side, CaptureDir::kDrop, why, rte_rdtsc());
}

}  // namespace segwire::dp
