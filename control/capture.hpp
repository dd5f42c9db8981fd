// Packet capture to a pcapng file (`segwirectl capture`, docs/capture.md): the control side.
// A telemetry command arms every worker's capture slot (dataplane/contract/capture.hpp); a DPDK
// control thread drains the workers' rings, formats each record with rte_pcapng_copy, adds what
// 22.11's rte_pcapng cannot (the drop reason as opt_comment, opt_endofopt, the original length
// and the worker's timestamp) and writes the file with rte_pcapng_write_packets. Control time:
// allocates, blocks and logs; never on a worker's core.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "dataplane/contract/capture.hpp"

struct rte_mbuf;

namespace segwire::control {

struct App;

// What `/segwire/capture/start,<params>` asks for. `params` are `key=value` pairs separated by
// ';' (a flow spec holds spaces and ':'):
//   file=PATH         absolute; created by the daemon, mode 0600, never over an existing file
//   port=inside|outside|both            (default both)
//   flow=SPEC         parse_flow_filter (default: every packet)
//   count=N           stop after N packets written (0: no limit)
//   duration=SECONDS  stop after this long (decimals allowed; 0: no limit)
//   snaplen=BYTES     bytes kept per packet, 0 (default) or 14..65535
//   lease=SECONDS     stop when no status poll naming this capture came for this long
// A capture needs at least one of count, duration and lease: it must end without an operator.
struct CaptureRequest {
    std::string file;
    std::string port = "both";
    std::string flow;  // as given (status, file comment)
    dp::CaptureFilter filter;
    uint64_t count = 0;
    double duration_s = 0;
    uint32_t snaplen = 0;
    double lease_s = 0;
};

// Throws std::invalid_argument whose message starts with the field at fault ("flow: ...").
CaptureRequest parse_capture_request(std::string_view params);

// A flow filter: `[PROTO] [END [END]]`, matched in both directions. PROTO is tcp, udp, icmp,
// icmp6 or a protocol number; END is ADDR, ADDR:PORT, [IPV6]:PORT, *:PORT or * (an IPv6 address
// without a port needs no brackets). Examples: `tcp 10.0.0.1:40000 10.0.0.2:80` (one
// connection), `10.0.0.1` (one host), `udp *:53`, `tcp fd00::1 [fd00::2]:443`. Sets f.proto,
// f.ends and f.flow; throws std::invalid_argument ("flow: ...") on anything else.
void parse_flow_filter(std::string_view text, dp::CaptureFilter &f);

// Completes an Enhanced Packet Block made by 22.11's rte_pcapng_copy (in `m`, one block) by the
// pcapng spec: sets the timestamp (ns, the IDB's tsresol 9) and the original length, adds an
// opt_comment when `comment` is not empty, ends the options with opt_endofopt (22.11 omits it)
// and rewrites both block lengths. False when `m` holds no such block or lacks the tailroom.
bool finish_epb(rte_mbuf *m, uint64_t ns, uint32_t orig_len, std::string_view comment);

// dpdk-dumpcap / dpdk-pdump support: rte_pdump_init() in this primary process when the EAL runs
// on hugepages (`hugepages`: rte_eal_has_hugepages(); a secondary process cannot attach to
// --no-huge memory) with multi-process IPC on. Returns what operators read in /segwire/capture's
// `dumpcap`: "ready", or "off: <why>". Once, after rte_eal_init.
std::string enable_dumpcap(bool hugepages);
// Undoes enable_dumpcap (before rte_eal_cleanup).
void disable_dumpcap();

// The capture service: one capture at a time, its status kept until the next one starts.
// Registers /segwire/capture, /segwire/capture/start and /segwire/capture/stop.
class Capture {
  public:
    explicit Capture(App &app);
    // Ends a running capture and closes its file. Destroy it only after the workers have
    // returned (it does not wait for their answer to the disarm).
    ~Capture();
    Capture(const Capture &) = delete;
    Capture &operator=(const Capture &) = delete;

    struct Impl;  // capture.cpp

  private:
    std::unique_ptr<Impl> impl_;
};

}  // namespace segwire::control
