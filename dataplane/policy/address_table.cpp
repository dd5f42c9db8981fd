// Builds the per-family prefix → class tables of a snapshot. Control thread only.
#include "dataplane/policy/address_table.hpp"

#include <algorithm>
#include <set>

#include <rte_errno.h>
#include <rte_malloc.h>

#include "dataplane/policy/snapshot.hpp"

namespace segwire::policy {
namespace {

[[noreturn]] void out_of_memory(const char *field, const std::string &what) {
    throw SnapshotResourceError(SnapshotResourceError::Resource::kMemory, field,
                                what + " failed: " + rte_strerror(rte_errno) +
                                    " (DPDK memory: see eal.memory_mb and docs/policy.md, "
                                    "\"Memory sizing\")");
}

}  // namespace

const char *to_string(AddressTable::Kind k) {
    switch (k) {
        case AddressTable::Kind::kNone:
            return "none";
        case AddressTable::Kind::kRib:
            return "rib";
        case AddressTable::Kind::kLpm:
            return "lpm";
    }
    return "?";
}

size_t dpdk_heap_bytes_in_use() {
    size_t total = 0;
    for (unsigned i = 0; i < rte_socket_count(); ++i) {
        rte_malloc_socket_stats s{};
        if (rte_malloc_get_socket_stats(rte_socket_id_by_idx(i), &s) == 0)
            total += s.heap_allocsz_bytes;
    }
    return total;
}

std::shared_ptr<const AddressTable> AddressTable::build(Entries v4, Entries v6, uint32_t rib_max_v4,
                                                        uint32_t rib_max_v6,
                                                        const std::string &tag) {
    std::shared_ptr<AddressTable> t(new AddressTable());
    t->v4_ = std::move(v4);
    t->v6_ = std::move(v6);
    const size_t before = dpdk_heap_bytes_in_use();
    t->build_v4(rib_max_v4, tag);  // on a throw, ~AddressTable frees what was built
    t->build_v6(rib_max_v6, tag);
    const size_t after = dpdk_heap_bytes_in_use();
    t->dpdk_bytes_ = after > before ? after - before : 0;
    return t;
}

AddressTable::~AddressTable() {
    if (lpm4_) rte_lpm_free(lpm4_);
    if (rib4_) rte_rib_free(rib4_);
    if (lpm6_) rte_lpm6_free(lpm6_);
    if (rib6_) rte_rib6_free(rib6_);
}

void AddressTable::lookup_v4_bulk(const uint32_t *host_order, uint32_t *cls, unsigned n,
                                  uint32_t miss) const noexcept {
    n = std::min(n, 64u);
    if (lpm4_) {
        uint32_t hops[64];
        rte_lpm_lookup_bulk(lpm4_, host_order, hops, n);
        for (unsigned i = 0; i < n; ++i)
            cls[i] = (hops[i] & RTE_LPM_LOOKUP_SUCCESS) ? (hops[i] & 0x00ffffff) : miss;
        return;
    }
    for (unsigned i = 0; i < n; ++i)
        if (!lookup_v4(host_order[i], &cls[i])) cls[i] = miss;
}

void AddressTable::build_v4(uint32_t rib_max, const std::string &tag) {
    if (v4_.empty()) return;
    // DPDK object names are global; the mempool behind a RIB is named "MP_" + the RIB's name and
    // must stay within RTE_MEMPOOL_NAMESIZE, so keep them short.
    const std::string name = "sw4_" + tag;
    if (kind_for(v4_.size(), rib_max) == Kind::kRib) {
        rte_rib_conf cfg{};
        cfg.ext_sz = 0;
        // Each insert adds the prefix's node and at most one branching node.
        cfg.max_nodes = static_cast<int>(2 * v4_.size() + 1);
        rib4_ = rte_rib_create(name.c_str(), SOCKET_ID_ANY, &cfg);
        if (!rib4_) out_of_memory("(rib4)", "rte_rib_create");
        for (const auto &[p, c] : v4_) {
            rte_rib_node *n = rte_rib_insert(rib4_, p.v4_host(), p.len);
            if (!n) {
                if (rte_errno == ENOMEM) out_of_memory("(rib4)", "rte_rib_insert " + p.str());
                throw PolicyError("snapshot", "(rib4)",
                                  "rte_rib_insert " + p.str() + ": " + rte_strerror(rte_errno));
            }
            rte_rib_set_nh(n, c);
        }
        return;
    }
    std::set<uint32_t> tbl8;  // one tbl8 group per /24 holding longer prefixes
    for (const auto &[p, c] : v4_)
        if (p.len > 24) tbl8.insert(p.v4_host() >> 8);
    rte_lpm_config cfg{};
    cfg.max_rules = static_cast<uint32_t>(v4_.size());
    cfg.number_tbl8s = static_cast<uint32_t>(tbl8.size()) + 16;
    lpm4_ = rte_lpm_create(name.c_str(), SOCKET_ID_ANY, &cfg);
    if (!lpm4_) out_of_memory("(lpm4)", "rte_lpm_create");
    for (const auto &[p, c] : v4_) {
        int rc = rte_lpm_add(lpm4_, p.v4_host(), p.len, c);
        if (rc == -ENOMEM) {
            rte_errno = -rc;
            out_of_memory("(lpm4)", "rte_lpm_add " + p.str());
        }
        if (rc < 0)
            throw PolicyError("snapshot", "(lpm4)",
                              "rte_lpm_add " + p.str() + ": " + rte_strerror(-rc));
    }
}

void AddressTable::build_v6(uint32_t rib_max, const std::string &tag) {
    if (v6_.empty()) return;
    const std::string name = "sw6_" + tag;
    if (kind_for(v6_.size(), rib_max) == Kind::kRib) {
        rte_rib6_conf cfg{};
        cfg.ext_sz = 0;
        cfg.max_nodes = static_cast<int>(2 * v6_.size() + 1);
        rib6_ = rte_rib6_create(name.c_str(), SOCKET_ID_ANY, &cfg);
        if (!rib6_) out_of_memory("(rib6)", "rte_rib6_create");
        for (const auto &[p, c] : v6_) {
            rte_rib6_node *n = rte_rib6_insert(rib6_, p.addr.data(), p.len);
            if (!n) {
                if (rte_errno == ENOMEM) out_of_memory("(rib6)", "rte_rib6_insert " + p.str());
                throw PolicyError("snapshot", "(rib6)",
                                  "rte_rib6_insert " + p.str() + ": " + rte_strerror(rte_errno));
            }
            rte_rib6_set_nh(n, c);
        }
        return;
    }
    // Upper bound: each prefix longer than /24 needs one tbl8 per further byte.
    uint64_t tbl8 = 16;
    for (const auto &[p, c] : v6_)
        if (p.len > 24) tbl8 += (p.len - 24 + 7) / 8;
    rte_lpm6_config cfg{};
    cfg.max_rules = static_cast<uint32_t>(v6_.size());
    cfg.number_tbl8s = static_cast<uint32_t>(std::min<uint64_t>(tbl8, 1u << 20));
    lpm6_ = rte_lpm6_create(name.c_str(), SOCKET_ID_ANY, &cfg);
    if (!lpm6_) out_of_memory("(lpm6)", "rte_lpm6_create");
    for (const auto &[p, c] : v6_) {
        int rc = rte_lpm6_add(lpm6_, p.addr.data(), p.len, c);
        if (rc == -ENOMEM) {
            rte_errno = -rc;
            out_of_memory("(lpm6)", "rte_lpm6_add " + p.str());
        }
        if (rc < 0)
            throw PolicyError("snapshot", "(lpm6)",
                              "rte_lpm6_add " + p.str() + ": " + rte_strerror(-rc));
    }
}

}  // namespace segwire::policy
