#include "dataplane/policy/budget.hpp"

#include <algorithm>
#include <string>
#include <thread>

#include "config/policy/error.hpp"

namespace segwire::policy {

SnapshotBudget::SnapshotBudget(uint32_t max_alive) : state_(std::make_shared<State>()) {
    if (max_alive == 0) throw PolicyError("snapshot budget", "max_alive", "must be at least 1");
    state_->max_alive = max_alive;
}

void SnapshotBudget::Ticket::release() noexcept {
    if (!state_) return;
    {
        std::lock_guard<std::mutex> lock(state_->mu);
        --state_->alive;
    }
    state_.reset();
}

std::optional<SnapshotBudget::Ticket> SnapshotBudget::try_acquire() {
    std::lock_guard<std::mutex> lock(state_->mu);
    if (state_->alive >= state_->max_alive) return std::nullopt;
    ++state_->alive;
    state_->high_water = std::max(state_->high_water, state_->alive);
    return Ticket(state_);
}

std::optional<SnapshotBudget::Ticket> SnapshotBudget::acquire(
    std::chrono::milliseconds timeout, const std::function<void()> &make_room,
    std::chrono::microseconds poll) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        if (auto t = try_acquire()) return t;
        if (make_room) make_room();
        if (auto t = try_acquire()) return t;
        if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
        std::this_thread::sleep_for(poll);
    }
}

uint32_t SnapshotBudget::alive() const {
    std::lock_guard<std::mutex> lock(state_->mu);
    return state_->alive;
}

uint32_t SnapshotBudget::high_water() const {
    std::lock_guard<std::mutex> lock(state_->mu);
    return state_->high_water;
}

}  // namespace segwire::policy
