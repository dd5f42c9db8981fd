// The DNS queries a worker's PUs have sent and not yet seen answered (docs/dns.md, "Matching
// answers to queries"). An answer may teach the enforcer addresses only when it answers one of
// these: same flow (so the same PU address and port, and the same resolver address and port), same
// ID and type, same name and class, before the query's deadline. Each query is answered once.
//
// One table per worker, used by that worker only: no locks. rte_hash keyed by (flow position, ID,
// type), whose key position indexes a preallocated array of entries (as the flow table does), and
// one FIFO list in insertion order for expiry: every query gets the same timeout, so the list is
// also deadline order and expiry looks only at its head. Bounded: at `capacity` outstanding queries
// a new one is refused (not tracked: its answer teaches nothing). No allocation after init().
#pragma once

#include <cstdint>
#include <string>

#include "dataplane/dns/question.hpp"

struct rte_hash;

namespace segwire::dp::dns {

// The flow is named by its position in the worker's flow table, told apart from a later flow in
// the same slot by the flow's creation time (kept in the entry).
struct QueryKey {
    uint32_t flow;
    uint16_t id;
    uint16_t qtype;
};
static_assert(sizeof(QueryKey) == 8);

class QueryTable {
  public:
    QueryTable() = default;
    ~QueryTable();
    QueryTable(const QueryTable &) = delete;
    QueryTable &operator=(const QueryTable &) = delete;

    // Control-time: allocates (DPDK memory on `socket`). `timeout` in the same unit as the `now`
    // the other calls are given (the worker's TSC).
    bool init(const std::string &name, uint32_t capacity, uint64_t timeout, int socket,
              std::string &err);

    enum class Noted : uint8_t {
        kAdded,
        kRepeated,  // the same query again (a retransmission): its deadline starts over
        kFull,      // `capacity` queries outstanding: not tracked
    };
    // A query (q.response false) sent on flow `key.flow`, created at `flow_created`.
    Noted note(const QueryKey &key, uint64_t flow_created, const Question &q,
               uint64_t now) noexcept;

    enum class Match : uint8_t {
        kMatched,        // answers the query, which is gone now
        kNoQuery,        // no query with this flow, ID and type (or it expired and was removed)
        kLate,           // the query's deadline has passed (it is removed)
        kOtherQuestion,  // the name or class differs (the query stays for the real answer)
    };
    Match take(const QueryKey &key, uint64_t flow_created, const Question &answer,
               uint64_t now) noexcept;

    // Removes at most `budget` queries whose deadline has passed. Returns how many.
    uint32_t expire(uint64_t now, uint32_t budget) noexcept;

    uint32_t size() const noexcept { return size_; }
    uint32_t capacity() const noexcept { return capacity_; }

  private:
    struct Entry {
        uint64_t flow_created;
        uint64_t deadline;
        uint32_t prev, next;  // the FIFO list
        uint16_t qclass;
        uint8_t name_len;
        uint8_t name[kMaxWireName];  // lower-cased wire form
    };
    static_assert(sizeof(Entry) == 288, "docs/dns.md gives the table's memory from this");
    void remove(int32_t pos) noexcept;
    void link_tail(uint32_t pos) noexcept;
    void unlink(uint32_t pos) noexcept;

    rte_hash *hash_ = nullptr;
    Entry *entries_ = nullptr;
    QueryKey *keys_ = nullptr;  // per position, for removal by position
    uint32_t capacity_ = 0;
    uint32_t size_ = 0;
    uint64_t timeout_ = 0;
    uint32_t head_, tail_;
};

}  // namespace segwire::dp::dns
