// Flow export beside the Console (docs/export.md), on the control thread: flow counter records
// (names resolved) go to a JSON lines file and, as IPFIX, to a collector over UDP. Nothing here
// waits on the collector: datagrams go out on a non-blocking socket and one that cannot be sent
// is counted and dropped, so a dead collector costs UDP datagrams and nothing else. Counters are
// read by the telemetry and metrics threads.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include "config/appliance_config.hpp"
#include "control/flowexport/ipfix.hpp"
#include "control/flowexport/jsonl.hpp"
#include "control/flowexport/record.hpp"

namespace segwire::control::flowexport {

struct ExportCounts {
    uint64_t records = 0;  // counter records handed to the exporter
    // JSON lines
    uint64_t jsonl_lines = 0, jsonl_bytes = 0, jsonl_rotations = 0, jsonl_lines_lost = 0;
    // IPFIX: messages sent (and the data records and template sets in them); messages the
    // socket did not take (lost, with their records); ICMP refusals the socket reported (the
    // collector's host had no listener: earlier datagrams were lost there).
    uint64_t ipfix_messages = 0, ipfix_records = 0, ipfix_templates = 0;
    uint64_t ipfix_messages_lost = 0, ipfix_records_lost = 0, ipfix_refused = 0;
};

class FlowExporter {
  public:
    // Opens the JSON lines file and the collector's socket (the collector's name is resolved
    // here, once). Throws std::runtime_error naming the config field when either fails.
    FlowExporter(const config::FlowExportConfig &cfg, std::string enforcer_id);
    ~FlowExporter();
    FlowExporter(const FlowExporter &) = delete;
    FlowExporter &operator=(const FlowExporter &) = delete;

    // Control thread: queues one record (a JSON line; a data record in the open IPFIX message,
    // which goes out when full).
    void add(const ExportRecord &r);
    // Control thread, every tick: writes the queued lines, sends the open message, and sends the
    // templates when their refresh is due even without records.
    void flush(uint32_t now_unix);
    ExportCounts counts() const;  // any thread
    bool jsonl() const { return jsonl_ != nullptr; }
    bool ipfix() const { return fd_ >= 0; }
    std::string collector() const { return collector_; }  // the resolved address:port

  private:
    void begin_message(uint32_t now);
    void send_message();
    void publish();

    std::string enforcer_id_;
    std::unique_ptr<JsonlWriter> jsonl_;
    int fd_ = -1;
    std::string collector_;
    ipfix::Writer writer_;
    bool open_ = false;  // a message has been begun
    uint32_t refresh_s_ = 60;
    uint32_t templates_at_ = 0;  // unix seconds of the last template set sent
    bool templates_sent_ = false;
    uint32_t now_ = 0;
    ExportCounts c_;  // the control thread's, copied to published_ at each flush
    mutable std::mutex mu_;
    ExportCounts published_;
};

}  // namespace segwire::control::flowexport
