#include "tools/console/ingest.hpp"

#include <exception>
#include <vector>

#include "tools/console/db.hpp"

namespace segwire::console {

IngestQueue::IngestQueue(Db &db, size_t max_group, unsigned writers)
    : db_(db), max_group_(max_group ? max_group : 1) {
    if (writers == 0) writers = db.postgres() ? 4 : 1;
    for (unsigned i = 0; i < writers; ++i) writers_.emplace_back([this] { run(); });
}

IngestQueue::~IngestQueue() {
    {
        std::lock_guard lock(mu_);
        stopping_ = true;
    }
    cv_.notify_all();
    for (auto &w : writers_)
        if (w.joinable()) w.join();
}

IngestResult IngestQueue::submit(PreparedBatch batch) {
    std::future<IngestResult> f;
    {
        std::lock_guard lock(mu_);
        queue_.push_back({std::move(batch), {}});
        f = queue_.back().done.get_future();
    }
    cv_.notify_one();
    return f.get();
}

IngestQueue::Stats IngestQueue::stats() const {
    std::lock_guard lock(mu_);
    return stats_;
}

void IngestQueue::run() {
    for (;;) {
        std::vector<Item> group;
        {
            std::unique_lock lock(mu_);
            cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
            if (queue_.empty()) return;  // stopping, and nothing left to write
            // Everything that queued while the last commit ran: no timer, so a lone batch is
            // written at once and a burst shares one transaction.
            while (!queue_.empty() && group.size() < max_group_) {
                group.push_back(std::move(queue_.front()));
                queue_.pop_front();
            }
        }
        bool fallback = false;
        {
            std::lock_guard lock(db_.mutex());
            try {
                Tx tx(db_, false);
                for (Item &it : group) it.batch.write(db_, it.batch.result);
                tx.commit();
            } catch (const std::exception &) {
                fallback = true;  // rolled back: nothing of the group is stored
            }
            if (fallback) {
                // One transaction per batch, so that one batch that cannot be written fails
                // alone (its request gets the error; the others are stored).
                for (Item &it : group) {
                    try {
                        Tx tx(db_, false);
                        it.batch.write(db_, it.batch.result);
                        tx.commit();
                    } catch (...) {
                        it.done.set_exception(std::current_exception());
                        it.batch.write = nullptr;
                    }
                }
            }
        }
        for (Item &it : group)
            if (it.batch.write) it.done.set_value(std::move(it.batch.result));
        std::lock_guard lock(mu_);
        ++stats_.transactions;
        stats_.batches += group.size();
        stats_.fallbacks += fallback;
    }
}

}  // namespace segwire::console
