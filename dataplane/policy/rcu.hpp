// The reader side of RCU publication: workers read an immutable object (policy snapshot, enforcer
// state) through an RcuSlot with one acquire load and report a quiescent state once per loop
// (rte_rcu_qsbr). The writer side, control::RcuPublisher (control/policy/publisher.hpp), is an
// RcuSlot that also swaps the pointer and frees a replaced object once every registered
// reader has reported a quiescent state since the swap.
//
// Worker loop:   reg once: slot.register_reader(id);
//                each loop: const T *s = slot.current(); ...use s...;
//                           slot.reader_quiescent(id);   // s must not be used after this
//
// Workers never wait: current() is one acquire load, reader_quiescent() one store.
#pragma once

#include <cstdint>

struct rte_rcu_qsbr;

namespace segwire::policy {

// The part that does not depend on T: the QSBR variable and grace-period tokens. Readers use
// register_reader / unregister_reader / reader_quiescent; start / done / wait are the writer's.
class RcuDomain {
  public:
    explicit RcuDomain(uint32_t max_readers);
    ~RcuDomain();
    RcuDomain(const RcuDomain &) = delete;
    RcuDomain &operator=(const RcuDomain &) = delete;

    void register_reader(unsigned thread_id);
    void unregister_reader(unsigned thread_id);
    void reader_quiescent(unsigned thread_id) noexcept;
    uint64_t start() noexcept;                 // a token for "after every reader's next QS"
    bool done(uint64_t token) const noexcept;  // never blocks
    void wait(uint64_t token) const;           // sleeps until done(token)

  private:
    rte_rcu_qsbr *qsbr_ = nullptr;
    uint32_t max_readers_;
};

// What readers hold: the current object and the QSBR domain they report to. Only the writer
// (a derived RcuPublisher) sets the object.
template <class T>
class RcuSlot {
  public:
    RcuSlot(const RcuSlot &) = delete;
    RcuSlot &operator=(const RcuSlot &) = delete;

    // thread_id < max_readers, one per reader thread.
    void register_reader(unsigned thread_id) { rcu_.register_reader(thread_id); }
    void unregister_reader(unsigned thread_id) { rcu_.unregister_reader(thread_id); }
    void reader_quiescent(unsigned thread_id) noexcept { rcu_.reader_quiescent(thread_id); }
    const T *current() const noexcept { return __atomic_load_n(&current_, __ATOMIC_ACQUIRE); }

  protected:
    explicit RcuSlot(uint32_t max_readers) : rcu_(max_readers) {}
    ~RcuSlot() = default;

    RcuDomain rcu_;
    alignas(64) const T *current_ = nullptr;  // written with release, read with acquire
};

}  // namespace segwire::policy
