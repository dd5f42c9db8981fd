#include "dataplane/dns/query_table.hpp"

#include <rte_hash.h>
#include <rte_hash_crc.h>
#include <rte_malloc.h>
#include <rte_random.h>

#include <cstring>

#include "dataplane/flow/flow_table.hpp"

namespace segwire::dp::dns {
namespace {
constexpr uint32_t kNil = UINT32_MAX;
}

QueryTable::~QueryTable() {
    if (hash_) rte_hash_free(hash_);
    rte_free(entries_);
    rte_free(keys_);
}

bool QueryTable::init(const std::string &name, uint32_t capacity, uint64_t timeout, int socket,
                      std::string &err) {
    // A PU chooses IDs and types: a seed it cannot know keeps it from piling keys on one bucket.
    hash_ = make_bounded_hash(name, capacity, sizeof(QueryKey), rte_hash_crc,
                              static_cast<uint32_t>(rte_rand()), socket, err);
    if (!hash_) return false;
    entries_ = static_cast<Entry *>(
        rte_zmalloc_socket("dns_queries", sizeof(Entry) * capacity, 64, socket));
    keys_ = static_cast<QueryKey *>(
        rte_zmalloc_socket("dns_query_keys", sizeof(QueryKey) * capacity, 64, socket));
    if (!entries_ || !keys_) {
        err = "cannot allocate " + std::to_string(capacity) + " DNS query entries (" +
              std::to_string(capacity * (sizeof(Entry) + sizeof(QueryKey)) >> 10) +
              " KiB of DPDK memory)";
        return false;
    }
    capacity_ = capacity;
    timeout_ = timeout;
    head_ = tail_ = kNil;
    return true;
}

void QueryTable::link_tail(uint32_t pos) noexcept {
    Entry &e = entries_[pos];
    e.prev = tail_;
    e.next = kNil;
    if (tail_ != kNil)
        entries_[tail_].next = pos;
    else
        head_ = pos;
    tail_ = pos;
}

void QueryTable::unlink(uint32_t pos) noexcept {
    Entry &e = entries_[pos];
    if (e.prev != kNil)
        entries_[e.prev].next = e.next;
    else
        head_ = e.next;
    if (e.next != kNil)
        entries_[e.next].prev = e.prev;
    else
        tail_ = e.prev;
}

void QueryTable::remove(int32_t pos) noexcept {
    unlink(static_cast<uint32_t>(pos));
    rte_hash_del_key(hash_, &keys_[pos]);
    --size_;
}

QueryTable::Noted QueryTable::note(const QueryKey &key, uint64_t flow_created, const Question &q,
                                   uint64_t now) noexcept {
    int32_t pos = rte_hash_lookup(hash_, &key);
    Noted how = Noted::kRepeated;
    if (pos >= 0) {
        unlink(static_cast<uint32_t>(pos));
    } else {
        if (size_ == capacity_) expire(now, 1);
        if (size_ == capacity_) return Noted::kFull;
        pos = rte_hash_add_key(hash_, &key);
        if (pos < 0) return Noted::kFull;
        keys_[pos] = key;
        ++size_;
        how = Noted::kAdded;
    }
    Entry &e = entries_[pos];
    e.flow_created = flow_created;
    e.deadline = now + timeout_;
    e.qclass = q.qclass;
    e.name_len = lower_name(q.name, e.name);
    link_tail(static_cast<uint32_t>(pos));
    return how;
}

QueryTable::Match QueryTable::take(const QueryKey &key, uint64_t flow_created,
                                   const Question &answer, uint64_t now) noexcept {
    const int32_t pos = rte_hash_lookup(hash_, &key);
    if (pos < 0) return Match::kNoQuery;
    const Entry &e = entries_[pos];
    if (e.flow_created != flow_created) {  // a query of an earlier flow in the same slot
        remove(pos);
        return Match::kNoQuery;
    }
    if (now >= e.deadline) {
        remove(pos);
        return Match::kLate;
    }
    if (e.qclass != answer.qclass || !same_name(WireName{e.name, e.name_len}, answer.name))
        return Match::kOtherQuestion;
    remove(pos);
    return Match::kMatched;
}

uint32_t QueryTable::expire(uint64_t now, uint32_t budget) noexcept {
    uint32_t n = 0;
    while (n < budget && head_ != kNil && now >= entries_[head_].deadline) {
        remove(static_cast<int32_t>(head_));
        ++n;
    }
    return n;
}

}  // namespace segwire::dp::dns
