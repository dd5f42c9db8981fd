// An explicit bound on how many compiled policy snapshots may be alive at once.
//
// Every snapshot the enforcer compiles holds a Ticket for its whole life (the ticket is released
// when the snapshot is destroyed, whoever drops the last reference: the RCU reclaim on the control
// thread, the slow path, the record-naming cache). A new compile needs a free ticket first, so the
// snapshots' DPDK memory is bounded by max_alive × (the largest snapshot), whatever the rate of
// policy updates. Control side only (a mutex; never touched by workers).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>

namespace segwire::policy {

class SnapshotBudget {
    struct State {
        std::mutex mu;
        uint32_t alive = 0;
        uint32_t max_alive;
        uint32_t high_water = 0;
    };

  public:
    // max_alive ≥ 1 (PolicyError otherwise).
    explicit SnapshotBudget(uint32_t max_alive);

    // Held by one snapshot; move-only; releases its slot when destroyed. An empty ticket (default
    // constructed) holds nothing. The budget may be destroyed before its tickets.
    class Ticket {
      public:
        Ticket() = default;
        Ticket(Ticket &&o) noexcept : state_(std::move(o.state_)) {}
        Ticket &operator=(Ticket &&o) noexcept {
            if (this != &o) {
                release();
                state_ = std::move(o.state_);
            }
            return *this;
        }
        Ticket(const Ticket &) = delete;
        Ticket &operator=(const Ticket &) = delete;
        ~Ticket() { release(); }
        explicit operator bool() const noexcept { return state_ != nullptr; }

      private:
        friend class SnapshotBudget;
        explicit Ticket(std::shared_ptr<State> s) : state_(std::move(s)) {}
        void release() noexcept;
        std::shared_ptr<State> state_;
    };

    // A ticket if fewer than max_alive are held, else nothing. Never blocks.
    std::optional<Ticket> try_acquire();

    // Tries, and while the budget is full calls `make_room` (which should drop what it can: reclaim
    // RCU-retired snapshots, forget cached old ones) and tries again, sleeping `poll` between
    // rounds, until `timeout` has passed. Nothing when the budget stays full.
    std::optional<Ticket> acquire(std::chrono::milliseconds timeout,
                                  const std::function<void()> &make_room,
                                  std::chrono::microseconds poll = std::chrono::microseconds(500));

    uint32_t alive() const;
    uint32_t max_alive() const { return state_->max_alive; }
    uint32_t high_water() const;  // the most ever alive at once

  private:
    std::shared_ptr<State> state_;
};

}  // namespace segwire::policy
