// API call reports from the enforcers' L7 proxies (docs/l7.md "Reports"): one row per HTTP call
// (service, method, the matched endpoint's path template, caller PU or user, verdict, rule,
// status, latency; never a raw URI, a header or a body). Batches are exactly-once per
// (enforcer, batchID) like flow reports (report_batches, kind "apicalls"); rows live in their own
// table `apicalls` (migration 3).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "tools/console/paging.hpp"
#include "tools/console/reports.hpp"

namespace segwire::console {

class Db;

// Body {batchID, enforcerID?, reports: [...]} as POST /flowreports; each report is checked
// (422 naming reports[i].field) before anything is written.
IngestResult ingest_apicalls(Db &db, std::string_view body, const std::string &enforcer_id);
// Its checks, without touching the database (IngestQueue's group commit; see PreparedBatch).
PreparedBatch prepare_apicalls(std::string_view body, const std::string &enforcer_id);

struct ApiCallFilter {
    std::string service, verdict, caller_pu, enforcer_id;
    int64_t since = -1;  // unix seconds
    int64_t until = -1;
    PageRequest page;
};

// One page in (timestamp, seq) order, each row as the report's JSON plus enforcerID.
Page query_apicalls(Db &db, const ApiCallFilter &f);

// Deletes up to `batch` calls older than cutoff (unix seconds), and old batch records.
size_t prune_apicalls(Db &db, int64_t cutoff, size_t batch);

// `segwire-console apicalls`: one line per call, oldest first.
std::string format_apicalls(Db &db, const ApiCallFilter &f);

}  // namespace segwire::console
