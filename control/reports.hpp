// The reports the control plane aggregates for the Console between two report intervals (flow,
// connection-exception and DNS lookup reports) and since start for telemetry (the flowlog). Every
// collection is bounded: a record that would need a new entry in a full one is not kept and is
// counted as overflow instead, so a flood of distinct flows (spoofed addresses, scanned ports)
// costs bounded memory (docs/control.md, "Reports").
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace segwire::control {

// One aggregated flow report (ANCHORS §2 field names), counted per interval.
struct FlowReport {
    std::string action, observed_action;
    std::string source_type, source_id, source_ip;
    std::string destination_type, destination_id, destination_ip;
    uint16_t destination_port = 0;
    uint8_t protocol = 0;
    std::string policy_id, observed_policy_id, rule_name, drop_reason;
    std::string mode;  // how the peer was identified: address, v1, udp, l4, l4-auto
    uint64_t value = 0;
    // Packets and bytes (of IP datagrams) sent by the source and by the destination, from the
    // flows' counter records (docs/export.md); summed like `value`, not part of the key.
    uint64_t source_packets = 0, source_bytes = 0, destination_packets = 0, destination_bytes = 0;
    uint32_t timestamp = 0;  // first record of the interval
    // The aggregation key: every field but the counts and timestamp (source port is never part
    // of it).
    std::string key() const;
    void add_counts(const FlowReport &o) {
        value += o.value;
        source_packets += o.source_packets;
        source_bytes += o.source_bytes;
        destination_packets += o.destination_packets;
        destination_bytes += o.destination_bytes;
    }
};

// A connection-exception report: a handshake that never completed.
struct ExceptionReport {
    std::string processing_unit_id, source_ip, destination_ip, state, reason;
    uint16_t destination_port = 0;
    uint8_t protocol = 0;
    uint64_t value = 0;
    uint32_t timestamp = 0;
};

// A DNS lookup report (ANCHORS §2 dnslookupreport), aggregated per interval.
struct DnsReport {
    std::string processing_unit_id, source_ip, resolved_name, action, reason;
    std::vector<std::string> resolved_ips, resolved_cnames;
    uint64_t value = 0;
    uint32_t timestamp = 0;
    std::string key() const;
    void add_counts(const DnsReport &o) { value += o.value; }
};

struct ReportLimits {
    // Per interval and kind (console.max_reports_per_interval): distinct flow reports, DNS lookup
    // reports, connection-exception reports.
    size_t per_interval = 10000;
    // Distinct flow reports kept since start for /segwire/flowlog.
    size_t flowlog = 4096;
};

// One collection: entries now, its bound, and records not kept since start (each record that
// found the collection full and its key absent counts once).
struct ReportCount {
    size_t size = 0, max = 0;
    uint64_t overflow = 0;
};
struct ReportCounts {
    ReportCount flows, dns, exceptions, flowlog;
    // Records the Console never got (the per-interval collections).
    uint64_t interval_overflow() const {
        return flows.overflow + dns.overflow + exceptions.overflow;
    }
};

// Thread-safe: the control thread adds flow and exception records and takes reports, the slow-path
// thread adds DNS reports, telemetry reads.
class ReportBook {
  public:
    explicit ReportBook(ReportLimits limits = {});

    // Counts one record (r.value, normally 1; 0 with packets and bytes for a flow's counter
    // record) into the interval's reports and the flowlog.
    void add_flow(FlowReport r);
    void add_exception(ExceptionReport r);
    void add_dns(DnsReport r);

    // The interval's reports; the collection starts empty again (overflow counts stay).
    std::vector<FlowReport> take_flows();
    std::vector<ExceptionReport> take_exceptions();
    std::vector<DnsReport> take_dns();
    // Flow reports aggregated since start (at most limits.flowlog of them).
    std::vector<FlowReport> flowlog() const;
    ReportCounts counts() const;

  private:
    // Reports by key, at most `max` keys.
    template <class Report>
    struct Keyed {
        std::map<std::string, Report> map;
        size_t max;
        uint64_t overflow = 0;
        void add(const std::string &key, Report r);
        std::vector<Report> take();
        ReportCount count() const { return {map.size(), max, overflow}; }
    };

    mutable std::mutex mu_;
    Keyed<FlowReport> flows_, flowlog_;
    Keyed<DnsReport> dns_;
    std::vector<ExceptionReport> exceptions_;  // not aggregated: one per expired handshake
    size_t exceptions_max_;
    uint64_t exceptions_overflow_ = 0;
};

}  // namespace segwire::control
