// Publishes immutable objects (policy snapshots, enforcer state) to worker lcores with one pointer
// swap; frees a replaced object only after every registered reader has reported a quiescent state
// since the swap (rte_rcu_qsbr).
//
// Worker loop:   reg once: pub.register_reader(id);
//                each loop: const T *s = pub.current(); ...use s...;
//                           pub.reader_quiescent(id);   // s must not be used after this
// Control thread: pub.publish(std::make_unique<T>(...)); and pub.reclaim() from its periodic tick.
//
// Workers never wait: current() is one acquire load, reader_quiescent() one store. The control
// thread waits only when more than `max_pending` old objects are still in their grace period.
// How many compiled policy snapshots may be alive (each retired state may hold one) is bounded
// separately, by SnapshotBudget (dataplane/policy/budget.hpp).
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>

#include "dataplane/policy/snapshot.hpp"

struct rte_rcu_qsbr;

namespace segwire::policy {

// The part that does not depend on T: the QSBR variable and grace-period tokens.
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

template <class T>
class RcuPublisher {
  public:
    explicit RcuPublisher(uint32_t max_readers, size_t max_pending = 2)
        : rcu_(max_readers), max_pending_(max_pending) {}
    ~RcuPublisher() {  // readers must have stopped; frees everything
        for (const Retired &r : retired_) delete r.object;
        delete __atomic_load_n(&current_, __ATOMIC_ACQUIRE);
    }
    RcuPublisher(const RcuPublisher &) = delete;
    RcuPublisher &operator=(const RcuPublisher &) = delete;

    // ---- reader side (worker lcore); thread_id < max_readers, one per reader thread ----
    void register_reader(unsigned thread_id) { rcu_.register_reader(thread_id); }
    void unregister_reader(unsigned thread_id) { rcu_.unregister_reader(thread_id); }
    void reader_quiescent(unsigned thread_id) noexcept { rcu_.reader_quiescent(thread_id); }
    const T *current() const noexcept { return __atomic_load_n(&current_, __ATOMIC_ACQUIRE); }

    // ---- control side ----
    // Installs `next` (nullptr is allowed: "nothing yet") and retires the previous object.
    void publish(std::unique_ptr<T> next) {
        std::lock_guard<std::mutex> lock(mu_);
        const T *old = __atomic_exchange_n(&current_, next.release(), __ATOMIC_ACQ_REL);
        if (old) retired_.push_back({rcu_.start(), old});
        while (retired_.size() > max_pending_) free_oldest_locked();
    }
    // Frees retired objects whose grace period has ended. Never blocks. Returns how many.
    size_t reclaim() {
        std::lock_guard<std::mutex> lock(mu_);
        size_t freed = 0;
        // Tokens increase, so once one is not yet safe, the later ones are not either.
        while (!retired_.empty() && rcu_.done(retired_.front().token)) {
            delete retired_.front().object;
            retired_.pop_front();
            ++freed;
        }
        return freed;
    }
    // Waits until every retired object is freed (shutdown, tests).
    void synchronize() {
        std::lock_guard<std::mutex> lock(mu_);
        while (!retired_.empty()) free_oldest_locked();
    }
    size_t pending() const {
        std::lock_guard<std::mutex> lock(mu_);
        return retired_.size();
    }

  private:
    struct Retired {
        uint64_t token;
        const T *object;
    };
    void free_oldest_locked() {
        rcu_.wait(retired_.front().token);
        delete retired_.front().object;
        retired_.pop_front();
    }

    RcuDomain rcu_;
    size_t max_pending_;
    alignas(64) const T *current_ = nullptr;  // written with release, read with acquire
    mutable std::mutex mu_;                   // control side only
    std::deque<Retired> retired_;
};

using SnapshotPublisher = RcuPublisher<PolicySnapshot>;

}  // namespace segwire::policy
