// Flow, DNS lookup and connection-exception reports and event logs: batched ingestion that is
// idempotent per
// (kind, enforcer, batchID), filtered queries, and the aggregated flow table of `segwire-console
// flows`.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "tools/console/paging.hpp"

namespace segwire::console {

class Db;

enum class ReportKind : uint8_t { kFlow, kDnsLookup, kConnectionException, kEventLog };

bool report_kind_from_name(std::string_view name, ReportKind *out);  // "flowreports", …
const char *report_kind_name(ReportKind k);

struct IngestResult {
    std::string enforcer_id, batch_id;
    size_t stored = 0;
    bool duplicate = false;
};

// Body {batchID, enforcerID?, reports: [...]} from the enforcer `enforcer_id` (the caller's
// token's, never the body's): an enforcerID in the body or in a report that names another
// enforcer is a 403 naming the field. Every report is checked first (422 naming
// reports[i].field); then the batch row and its reports are written in one transaction, and a
// batch already stored is acknowledged without storing anything (duplicate = true). Batch IDs
// are per enforcer, so no caller can pre-empt another enforcer's batch.
IngestResult ingest_reports(Db &db, ReportKind kind, std::string_view body,
                            const std::string &enforcer_id);

// A batch checked and ready to write (ingest_reports in two steps, for IngestQueue's group
// commit): `write` stores it, or finds it a duplicate, filling the result; the caller holds the
// database mutex inside a transaction, which may hold other batches too. It may run again after
// a rollback.
struct PreparedBatch {
    IngestResult result;
    std::function<void(Db &, IngestResult &)> write;
};
// The checks of ingest_reports (same errors), without touching the database.
PreparedBatch prepare_reports(ReportKind kind, std::string_view body,
                              const std::string &enforcer_id);

struct ReportFilter {
    std::string action, source_id, destination_id, enforcer_id;
    std::string pu;  // source_id or destination_id
    int64_t destination_port = -1;
    int64_t since = -1;  // unix seconds, reports with timestamp >= since
    int64_t until = -1;  // unix seconds, reports with timestamp < until
    PageRequest page;
};

// One page of the stored reports (each with enforcerID) in (timestamp, seq) order, oldest first
// unless page.descending. Every filter has an index ending in ts (migrations.cpp), so a page
// reads about limit+1 index entries when one filter is given.
Page query_reports(Db &db, ReportKind kind, const ReportFilter &f);

// Deletes up to `batch` reports of `kind` with timestamp < cutoff (oldest first) and the batch
// records received before it; returns the reports deleted. The caller loops until it gets less
// than `batch`, so that each call holds the database for a bounded time.
size_t prune_reports(Db &db, ReportKind kind, int64_t cutoff, size_t batch);

struct FlowRow {
    std::string source, destination, port, action, observed, policy, rule, reason;
    int64_t count = 0;
    int64_t packets = 0, bytes = 0;  // both directions (sourcePackets + destinationPackets, ...)
};

// Sums of `value`, packets and bytes grouped by (source, destination, port, action, observed
// action, policy, rule, reason); IDs of PUs, external networks and policies are shown by name when
// the Console knows them.
std::vector<FlowRow> aggregate_flows(Db &db, int64_t since = -1);
std::string format_flow_table(const std::vector<FlowRow> &rows);

}  // namespace segwire::console
