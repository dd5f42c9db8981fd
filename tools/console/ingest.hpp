// Group commit of report batches (flow, DNS, exception reports, event logs, API calls): request
// threads hand their checked batch (PreparedBatch) to a writer thread, which writes every batch
// that queued while its last commit ran in one transaction, and answers each request only once
// that transaction committed (docs/console.md, "Batched ingestion").
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <future>
#include <mutex>
#include <thread>
#include <vector>

#include "tools/console/reports.hpp"

namespace segwire::console {

class Db;

class IngestQueue {
  public:
    // At most `max_group` batches in one transaction. `writers` threads each take what queued
    // (0: one for SQLite, whose one connection serialises writes anyway; four for PostgreSQL,
    // whose pooled connections commit in parallel).
    explicit IngestQueue(Db &db, size_t max_group = 256, unsigned writers = 0);
    ~IngestQueue();  // writes what is queued, then stops the writer
    IngestQueue(const IngestQueue &) = delete;
    IngestQueue &operator=(const IngestQueue &) = delete;

    // Blocks until the batch is committed (stored, or found a duplicate) and returns its
    // result; rethrows what writing it threw. Any thread.
    IngestResult submit(PreparedBatch batch);

    struct Stats {
        uint64_t transactions = 0, batches = 0;  // group commits and the batches they held
        uint64_t fallbacks = 0;  // groups that failed and were written one batch at a time
    };
    Stats stats() const;

  private:
    struct Item {
        PreparedBatch batch;
        std::promise<IngestResult> done;
    };
    void run();

    Db &db_;
    const size_t max_group_;
    mutable std::mutex mu_;
    std::condition_variable cv_;
    std::deque<Item> queue_;
    bool stopping_ = false;
    Stats stats_;
    std::vector<std::thread> writers_;
};

}  // namespace segwire::console
