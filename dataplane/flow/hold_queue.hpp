// Per-flow packet holding while a flow's authorization is pending. One fixed pool of slots per
// worker; each flow keeps a FIFO (head, tail, count) of slot indices. Bounded per flow and in
// total; no allocation after init.
#pragma once

#include <cstdint>
#include <vector>

struct rte_mbuf;

namespace segwire::dp {

struct HoldList {
    uint32_t head = UINT32_MAX;
    uint32_t tail = UINT32_MAX;
    uint16_t count = 0;
    uint16_t share = UINT16_MAX;  // the flow's source bucket its held packets are charged to
                                  // (identity::SourceShare), set by the first hold
};

class HoldQueue {
  public:
    static constexpr uint32_t kNil = UINT32_MAX;

    void init(uint32_t total_slots, uint16_t per_flow_limit) {
        slots_.assign(total_slots, Slot{});
        for (uint32_t i = 0; i < total_slots; ++i)
            slots_[i].next = i + 1 < total_slots ? i + 1 : kNil;
        free_ = total_slots ? 0 : kNil;
        per_flow_ = per_flow_limit;
        used_ = 0;
    }

    // False when the flow or the pool is full: the caller drops and counts the packet.
    bool push(HoldList &l, rte_mbuf *m) {
        if (l.count >= per_flow_ || free_ == kNil) return false;
        uint32_t i = free_;
        free_ = slots_[i].next;
        slots_[i] = Slot{m, kNil};
        if (l.tail != kNil)
            slots_[l.tail].next = i;
        else
            l.head = i;
        l.tail = i;
        ++l.count;
        ++used_;
        return true;
    }

    // Pops the oldest held packet, or nullptr.
    rte_mbuf *pop(HoldList &l) {
        if (l.head == kNil) return nullptr;
        uint32_t i = l.head;
        rte_mbuf *m = slots_[i].m;
        l.head = slots_[i].next;
        if (l.head == kNil) l.tail = kNil;
        --l.count;
        slots_[i] = Slot{nullptr, free_};
        free_ = i;
        --used_;
        return m;
    }

    uint32_t used() const { return used_; }
    uint32_t capacity() const { return static_cast<uint32_t>(slots_.size()); }

  private:
    struct Slot {
        rte_mbuf *m = nullptr;
        uint32_t next = kNil;
    };
    std::vector<Slot> slots_;
    uint32_t free_ = kNil;
    uint32_t used_ = 0;
    uint16_t per_flow_ = 16;
};

}  // namespace segwire::dp
