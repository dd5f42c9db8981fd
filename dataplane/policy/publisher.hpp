// Publishes PolicySnapshots to worker lcores with one pointer swap; frees a replaced snapshot only
// after every registered reader has reported a quiescent state since the swap (rte_rcu_qsbr).
//
// Worker loop:   reg once: pub.register_reader(id);
//                each loop: const PolicySnapshot *s = pub.current(); ...use s...;
//                           pub.reader_quiescent(id);   // s must not be used after this
// Control thread: pub.publish(compile_snapshot(...)); and pub.reclaim() from its periodic tick.
//
// Workers never wait: current() is one acquire load, reader_quiescent() one store. The control
// thread waits only when more than `max_pending` old snapshots are still in their grace period
// (each holds an LPM of 64+ MiB, so memory must stay bounded).
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>

#include "dataplane/policy/snapshot.hpp"

struct rte_rcu_qsbr;

namespace segwire::policy {

class SnapshotPublisher {
  public:
    explicit SnapshotPublisher(uint32_t max_readers, size_t max_pending = 2);
    ~SnapshotPublisher();  // readers must have stopped; frees every snapshot
    SnapshotPublisher(const SnapshotPublisher &) = delete;
    SnapshotPublisher &operator=(const SnapshotPublisher &) = delete;

    // ---- reader side (worker lcore); thread_id < max_readers, one per reader thread ----
    void register_reader(unsigned thread_id);  // call from the reader thread before current()
    void unregister_reader(unsigned thread_id);
    void reader_quiescent(unsigned thread_id) noexcept;
    const PolicySnapshot *current() const noexcept;

    // ---- control side ----
    // Installs `next` (nullptr is allowed: "no policy yet") and retires the previous snapshot.
    void publish(std::unique_ptr<PolicySnapshot> next);
    // Frees retired snapshots whose grace period has ended. Never blocks. Returns how many.
    size_t reclaim();
    // Waits until every retired snapshot is freed (shutdown, tests).
    void synchronize();
    size_t pending() const;

  private:
    struct Retired {
        uint64_t token;
        const PolicySnapshot *snapshot;
    };
    bool wait_oldest_locked();

    rte_rcu_qsbr *qsbr_ = nullptr;
    uint32_t max_readers_;
    size_t max_pending_;
    alignas(64) const PolicySnapshot *current_ =
        nullptr;             // written with release, read with acquire
    mutable std::mutex mu_;  // control side only
    std::deque<Retired> retired_;
};

}  // namespace segwire::policy
