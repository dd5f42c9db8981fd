#include "dataplane/policy/publisher.hpp"

#include <chrono>
#include <new>
#include <thread>

#include <rte_rcu_qsbr.h>

namespace segwire::policy {

SnapshotPublisher::SnapshotPublisher(uint32_t max_readers, size_t max_pending)
    : max_readers_(max_readers), max_pending_(max_pending) {
    if (max_readers == 0 || max_readers > RTE_MAX_LCORE)
        throw PolicyError("publisher", "max_readers",
                          "must be 1.." + std::to_string(RTE_MAX_LCORE));
    size_t sz = rte_rcu_qsbr_get_memsize(max_readers);
    qsbr_ = static_cast<rte_rcu_qsbr *>(::operator new(sz, std::align_val_t(RTE_CACHE_LINE_SIZE)));
    if (rte_rcu_qsbr_init(qsbr_, max_readers) != 0) {
        ::operator delete(qsbr_, std::align_val_t(RTE_CACHE_LINE_SIZE));
        throw PolicyError("publisher", "rte_rcu_qsbr_init", "failed");
    }
}

SnapshotPublisher::~SnapshotPublisher() {
    for (const Retired &r : retired_) delete r.snapshot;
    delete __atomic_load_n(&current_, __ATOMIC_ACQUIRE);
    ::operator delete(qsbr_, std::align_val_t(RTE_CACHE_LINE_SIZE));
}

void SnapshotPublisher::register_reader(unsigned thread_id) {
    if (thread_id >= max_readers_)
        throw PolicyError("publisher", "thread_id",
                          std::to_string(thread_id) + " is not below max_readers " +
                              std::to_string(max_readers_));
    rte_rcu_qsbr_thread_register(qsbr_, thread_id);
    rte_rcu_qsbr_thread_online(qsbr_, thread_id);
}

void SnapshotPublisher::unregister_reader(unsigned thread_id) {
    rte_rcu_qsbr_thread_offline(qsbr_, thread_id);
    rte_rcu_qsbr_thread_unregister(qsbr_, thread_id);
}

void SnapshotPublisher::reader_quiescent(unsigned thread_id) noexcept {
    rte_rcu_qsbr_quiescent(qsbr_, thread_id);
}

const PolicySnapshot *SnapshotPublisher::current() const noexcept {
    return __atomic_load_n(&current_, __ATOMIC_ACQUIRE);
}

void SnapshotPublisher::publish(std::unique_ptr<PolicySnapshot> next) {
    std::lock_guard<std::mutex> lock(mu_);
    const PolicySnapshot *old = __atomic_exchange_n(&current_, next.release(), __ATOMIC_ACQ_REL);
    if (old) retired_.push_back({rte_rcu_qsbr_start(qsbr_), old});
    while (retired_.size() > max_pending_) wait_oldest_locked();
}

bool SnapshotPublisher::wait_oldest_locked() {
    // rte_rcu_qsbr_synchronize would do, but polling the inline check keeps the wait visible to
    // sanitizers and lets the control thread sleep instead of spinning.
    const Retired r = retired_.front();
    while (rte_rcu_qsbr_check(qsbr_, r.token, false) != 1)
        std::this_thread::sleep_for(std::chrono::microseconds(50));
    delete r.snapshot;
    retired_.pop_front();
    return true;
}

size_t SnapshotPublisher::reclaim() {
    std::lock_guard<std::mutex> lock(mu_);
    size_t freed = 0;
    // Tokens increase, so once one is not yet safe, the later ones are not either.
    while (!retired_.empty() && rte_rcu_qsbr_check(qsbr_, retired_.front().token, false) == 1) {
        delete retired_.front().snapshot;
        retired_.pop_front();
        ++freed;
    }
    return freed;
}

void SnapshotPublisher::synchronize() {
    std::lock_guard<std::mutex> lock(mu_);
    while (!retired_.empty()) wait_oldest_locked();
}

size_t SnapshotPublisher::pending() const {
    std::lock_guard<std::mutex> lock(mu_);
    return retired_.size();
}

}  // namespace segwire::policy
