// The writer side of RCU publication (control thread): publishes immutable objects (policy
// snapshots, enforcer state) to worker lcores with one pointer swap; frees a replaced object only
// after every registered reader has reported a quiescent state since the swap (rte_rcu_qsbr).
// Workers see only the reader side, the RcuSlot base (dataplane/policy/rcu.hpp).
//
// Control thread: pub.publish(std::make_unique<T>(...)); and pub.reclaim() from its periodic tick.
//
// The control thread waits only when more than `max_pending` old objects are still in their
// grace period. How many compiled policy snapshots may be alive (each retired state may hold one)
// is bounded separately, by SnapshotBudget (dataplane/policy/budget.hpp).
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>

#include "dataplane/policy/rcu.hpp"
#include "dataplane/policy/snapshot.hpp"

namespace segwire::control {

template <class T>
class RcuPublisher : public policy::RcuSlot<T> {
  public:
    explicit RcuPublisher(uint32_t max_readers, size_t max_pending = 2)
        : policy::RcuSlot<T>(max_readers), max_pending_(max_pending) {}
    ~RcuPublisher() {  // readers must have stopped; frees everything
        for (const Retired &r : retired_) delete r.object;
        delete __atomic_load_n(&this->current_, __ATOMIC_ACQUIRE);
    }

    // Installs `next` (nullptr is allowed: "nothing yet") and retires the previous object.
    void publish(std::unique_ptr<T> next) {
        std::lock_guard<std::mutex> lock(mu_);
        const T *old = __atomic_exchange_n(&this->current_, next.release(), __ATOMIC_ACQ_REL);
        if (old) retired_.push_back({this->rcu_.start(), old});
        while (retired_.size() > max_pending_) free_oldest_locked();
    }
    // Frees retired objects whose grace period has ended. Never blocks. Returns how many.
    size_t reclaim() {
        std::lock_guard<std::mutex> lock(mu_);
        size_t freed = 0;
        // Tokens increase, so once one is not yet safe, the later ones are not either.
        while (!retired_.empty() && this->rcu_.done(retired_.front().token)) {
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
        this->rcu_.wait(retired_.front().token);
        delete retired_.front().object;
        retired_.pop_front();
    }

    size_t max_pending_;
    mutable std::mutex mu_;  // control side only
    std::deque<Retired> retired_;
};

using SnapshotPublisher = RcuPublisher<policy::PolicySnapshot>;

}  // namespace segwire::control
