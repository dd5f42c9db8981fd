// Contract: packet capture (`segwirectl capture`, docs/capture.md).
// Written by: the control side (control/capture.cpp, on a telemetry thread) fills one slot per
// worker - `filter`, `snaplen`, `count`, `ring`, `pool` - and then publishes a new generation in
// `armed` (0 disarms). Nothing but `armed` changes while a slot is armed.
// Read by: the worker, once per loop (`armed`, one load): at a new generation it copies the
// settings, zeroes its counters and answers with `seen`; while armed it copies the packets that
// match into `pool` and enqueues them into `ring`, whose only producer it is. The control side's
// capture thread is the ring's only consumer and reads the counters at any time.
// The capture records carry their mbuf by pointer: whoever dequeues a record owns its mbuf.
#pragma once

#include <atomic>
#include <cstdint>

#include "dataplane/contract/stats.hpp"
#include "dataplane/packet/parse.hpp"

struct rte_mbuf;
struct rte_mempool;
struct rte_ring;

namespace segwire::dp {

// Which packets a capture keeps: those on the selected ports, and - when `flow` is set - those
// of the flows that match both endpoints, in either direction. An endpoint with no address and
// no port matches anything; `proto` 0 matches any protocol.
struct CaptureFilter {
    struct Endpoint {
        uint8_t family = 0;  // 0: any address, else 4 or 6
        IpAddr addr{};
        uint16_t port = 0;  // 0: any port
    };
    uint8_t sides = 3;  // bit 1 << kInside, bit 1 << kOutside
    bool flow = false;  // any of proto / ends set: packets are parsed to be matched
    uint8_t proto = 0;  // IP protocol, 0 = any
    Endpoint ends[2];
};

inline bool capture_end_matches(const CaptureFilter::Endpoint &e, uint8_t family, const IpAddr &a,
                                uint16_t port) {
    if (e.family && (e.family != family || !(e.addr == a))) return false;
    return e.port == 0 || e.port == port;
}

// Whether a parsed IP packet belongs to the filter's flows (both directions). Packets that are
// not IP, or that do not parse, never match a flow filter.
inline bool capture_flow_matches(const CaptureFilter &f, const PacketView &v) {
    if (!v.is_ip()) return false;
    if (f.proto && f.proto != v.proto) return false;
    const CaptureFilter::Endpoint &e0 = f.ends[0], &e1 = f.ends[1];
    return (capture_end_matches(e0, v.family, v.src, v.sport) &&
            capture_end_matches(e1, v.family, v.dst, v.dport)) ||
           (capture_end_matches(e0, v.family, v.dst, v.dport) &&
            capture_end_matches(e1, v.family, v.src, v.sport));
}

// Where a capture record comes from; the values are pcapng's epb_flags direction bits (and
// rte_pcapng_direction's).
enum class CaptureDir : uint8_t { kDrop = 0, kIn = 1, kOut = 2 };

// One captured packet on its way from a worker to the capture thread (ring element, by value).
// A dropped packet is recorded as received on its arrival port with `reason` set.
struct CaptureRecord {
    rte_mbuf *m;        // the copy (from the slot's pool), at most snaplen bytes
    uint64_t tsc;       // when it was copied
    uint32_t orig_len;  // the packet's length before any snaplen cut
    uint16_t port;      // ethdev port id it arrived on or leaves from
    CaptureDir dir;
    DropReason reason;  // None unless the worker dropped it
};
static_assert(sizeof(CaptureRecord) == 24, "ring element size (rte_ring_create_elem)");

struct CaptureSlot {
    // Control side -> worker. A new non-zero value arms the slot with the settings below.
    alignas(64) std::atomic<uint32_t> armed{0};
    CaptureFilter filter;
    uint32_t snaplen = 0;      // bytes copied per packet, 0 = all
    uint64_t count = 0;        // at most this many copies per worker, 0 = no limit
    rte_ring *ring = nullptr;  // SPSC, CaptureRecord elements
    rte_mempool *pool = nullptr;

    // Worker -> control side: the generation the worker runs under, and per port (inside,
    // outside) what matched the filter and what of it could not be captured (pool empty, ring
    // full). Zeroed by the worker when it takes a new generation.
    alignas(64) std::atomic<uint32_t> seen{0};
    Counter matched[2], lost[2];
};

}  // namespace segwire::dp
