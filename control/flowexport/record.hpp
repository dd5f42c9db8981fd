// A flow counter record as the exporters write it (docs/export.md): the flow report's fields,
// names resolved by the control thread (control/enforcement.cpp), plus what only a single flow
// has: its source port, addresses as bytes, the interval it covers and why it was made.
#pragma once

#include <cstdint>

#include "control/reports.hpp"

namespace segwire::control::flowexport {

struct ExportRecord {
    // action .. mode, the four counts (source_* sent by the source, the flow's initiator) and
    // timestamp (unix seconds when the record was made); value is 0.
    FlowReport report;
    uint16_t source_port = 0;
    uint8_t family = 4;                  // 4 or 6
    uint8_t src[16] = {}, dst[16] = {};  // network order; IPv4 in the first 4 bytes
    uint64_t start_ms = 0, end_ms = 0;   // unix milliseconds
    uint8_t end_reason = 0;              // IPFIX flowEndReason: 1 idle, 2 active, 3 end of flow
    const char *end_reason_name = "none";
};

}  // namespace segwire::control::flowexport
