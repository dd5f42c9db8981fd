// The report collections (ReportBook) under a flood of distinct flows: each stays within its bound,
// what is reported is a subset of what was recorded, and every record is either in a report's
// value or counted as overflow - never lost silently, never counted twice.
#include <gtest/gtest.h>

#include <set>
#include <string>

#include "control/reports.hpp"

namespace segwire::control {
namespace {

FlowReport flow(uint32_t i) {
    FlowReport r;
    r.action = "Accept";
    r.source_type = "ExternalNetwork";
    r.source_ip = "198.51.100." + std::to_string(i % 250);
    r.destination_type = "ProcessingUnit";
    r.destination_id = "pu-server";
    r.destination_ip = "10.0.0.2";
    r.destination_port = static_cast<uint16_t>(1000 + i);
    r.protocol = 17;
    r.value = 1;
    r.timestamp = 1'800'000'000;
    return r;
}

DnsReport dns(uint32_t i) {
    DnsReport r;
    r.processing_unit_id = "pu-client";
    r.source_ip = "10.0.0.1";
    r.resolved_name = "h" + std::to_string(i) + ".example.com";
    r.action = "Accept";
    r.resolved_ips = {"192.0.2.1"};
    r.value = 1;
    return r;
}

uint64_t sum(const auto &reports) {
    uint64_t s = 0;
    for (const auto &r : reports) s += r.value;
    return s;
}

TEST(ReportBook, AFloodOfDistinctFlowsStaysBoundedAndTheExcessIsCounted) {
    ReportBook book({.per_interval = 100, .flowlog = 64});
    constexpr uint32_t kDistinct = 250, kRepeats = 100;
    std::set<std::string> sent;
    for (uint32_t i = 0; i < kDistinct; ++i) {
        sent.insert(flow(i).key());
        book.add_flow(flow(i));
    }
    // Flows already in a report are still counted into it when the collection is full.
    for (uint32_t i = 0; i < kRepeats; ++i) book.add_flow(flow(i));

    ReportCounts c = book.counts();
    EXPECT_EQ(c.flows.size, 100u);
    EXPECT_EQ(c.flows.max, 100u);
    EXPECT_EQ(c.flows.overflow, kDistinct - 100) << "one per record of a flow that did not fit";
    EXPECT_EQ(c.flowlog.size, 64u);
    EXPECT_EQ(c.flowlog.overflow, kDistinct - 64 + (kRepeats - 64));
    EXPECT_EQ(c.interval_overflow(), kDistinct - 100);

    const std::vector<FlowReport> got = book.take_flows();
    ASSERT_EQ(got.size(), 100u);
    for (const FlowReport &r : got) EXPECT_TRUE(sent.count(r.key())) << r.key();
    EXPECT_EQ(sum(got) + c.flows.overflow, kDistinct + kRepeats);
    EXPECT_EQ(sum(book.flowlog()) + c.flowlog.overflow, kDistinct + kRepeats);

    // A new interval starts empty; the overflow count is since start.
    book.add_flow(flow(kDistinct));
    c = book.counts();
    EXPECT_EQ(c.flows.size, 1u);
    EXPECT_EQ(c.flows.overflow, kDistinct - 100);
    EXPECT_EQ(c.flowlog.size, 64u) << "the flowlog is since start: still full";
    EXPECT_EQ(c.flowlog.overflow, kDistinct - 64 + (kRepeats - 64) + 1);
}

TEST(ReportBook, DnsAndExceptionReportsAreBoundedPerInterval) {
    ReportBook book({.per_interval = 16, .flowlog = 16});
    for (uint32_t i = 0; i < 40; ++i) {
        book.add_dns(dns(i));
        book.add_exception(ExceptionReport{.processing_unit_id = "pu", .value = 1});
    }
    book.add_dns(dns(3));  // a name already reported: counted into its report
    ReportCounts c = book.counts();
    EXPECT_EQ(c.dns.size, 16u);
    EXPECT_EQ(c.dns.overflow, 24u);
    EXPECT_EQ(c.exceptions.size, 16u);
    EXPECT_EQ(c.exceptions.overflow, 24u);
    EXPECT_EQ(c.interval_overflow(), 48u);
    const std::vector<DnsReport> d = book.take_dns();
    EXPECT_EQ(d.size(), 16u);
    EXPECT_EQ(sum(d), 17u);
    EXPECT_EQ(book.take_exceptions().size(), 16u);
    c = book.counts();
    EXPECT_EQ(c.dns.size + c.exceptions.size, 0u);
    book.add_exception(ExceptionReport{.value = 1});
    EXPECT_EQ(book.counts().exceptions.size, 1u);
    EXPECT_EQ(book.counts().exceptions.overflow, 24u);
}

TEST(ReportBook, DefaultBounds) {
    const ReportCounts c = ReportBook().counts();
    EXPECT_EQ(c.flows.max, 10000u);
    EXPECT_EQ(c.dns.max, 10000u);
    EXPECT_EQ(c.exceptions.max, 10000u);
    EXPECT_EQ(c.flowlog.max, 4096u);
}

}  // namespace
}  // namespace segwire::control
