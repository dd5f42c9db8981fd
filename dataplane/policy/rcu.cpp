#include "dataplane/policy/rcu.hpp"

#include <chrono>
#include <new>
#include <string>
#include <thread>

#include <rte_rcu_qsbr.h>

#include "config/policy/error.hpp"

namespace segwire::policy {

RcuDomain::RcuDomain(uint32_t max_readers) : max_readers_(max_readers) {
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

RcuDomain::~RcuDomain() {
    ::operator delete(qsbr_, std::align_val_t(RTE_CACHE_LINE_SIZE));
}

void RcuDomain::register_reader(unsigned thread_id) {
    if (thread_id >= max_readers_)
        throw PolicyError("publisher", "thread_id",
                          std::to_string(thread_id) + " is not below max_readers " +
                              std::to_string(max_readers_));
    rte_rcu_qsbr_thread_register(qsbr_, thread_id);
    rte_rcu_qsbr_thread_online(qsbr_, thread_id);
}

void RcuDomain::unregister_reader(unsigned thread_id) {
    rte_rcu_qsbr_thread_offline(qsbr_, thread_id);
    rte_rcu_qsbr_thread_unregister(qsbr_, thread_id);
}

void RcuDomain::reader_quiescent(unsigned thread_id) noexcept {
    rte_rcu_qsbr_quiescent(qsbr_, thread_id);
}

uint64_t RcuDomain::start() noexcept {
    return rte_rcu_qsbr_start(qsbr_);
}

bool RcuDomain::done(uint64_t token) const noexcept {
    return rte_rcu_qsbr_check(qsbr_, token, false) == 1;
}

void RcuDomain::wait(uint64_t token) const {
    // rte_rcu_qsbr_synchronize would do, but polling the inline check keeps the wait visible to
    // sanitizers and lets the control thread sleep instead of spinning.
    while (!done(token)) std::this_thread::sleep_for(std::chrono::microseconds(50));
}

}  // namespace segwire::policy
