#include "tools/console/reports.hpp"

#include <algorithm>
#include <map>
#include <memory>
#include <set>

#include "tools/console/db.hpp"
#include "tools/console/error.hpp"
#include "tools/console/util.hpp"

namespace segwire::console {
namespace {

constexpr size_t kMaxBatch = 10000;

struct Extracted {
    int64_t ts = 0;
    std::string action, source_id, destination_id;
    int64_t destination_port = -1;
    int64_t packets = 0, bytes = 0;  // flow reports: both directions' sums
};

using rapidjson::Value;

std::string opt_string(const Value &r, const char *key, const std::string &prefix) {
    return get_string(r, key, prefix + "." + key, false);
}

void require_one_of(const Value &r, const char *key, const std::string &prefix,
                    std::initializer_list<const char *> allowed, bool required) {
    std::string field = prefix + "." + key;
    std::string v = get_string(r, key, field, required);
    if (v.empty() && !required) return;
    for (const char *a : allowed)
        if (v == a) return;
    std::string list;
    for (const char *a : allowed) list += (list.empty() ? "" : "|") + std::string(a);
    throw ConsoleError(422, field + ": \"" + v + "\" is not one of " + list, field);
}

int64_t opt_int(const Value &r, const char *key, const std::string &prefix, int64_t lo, int64_t hi,
                int64_t fallback) {
    const Value *v = member(r, key);
    if (!v) return fallback;
    std::string field = prefix + "." + key;
    if (!v->IsInt64() || v->GetInt64() < lo || v->GetInt64() > hi)
        throw ConsoleError(
            422,
            field + ": must be an integer in " + std::to_string(lo) + ".." + std::to_string(hi),
            field);
    return v->GetInt64();
}

// Checks one report against the Console model and pulls out the indexed columns.
Extracted check_report(ReportKind kind, const Value &r, const std::string &prefix, int64_t now) {
    if (!r.IsObject()) throw ConsoleError(422, prefix + ": must be a JSON object", prefix);
    Extracted x;
    x.ts = now;
    if (const Value *t = member(r, "timestamp")) {
        bool ok = false;
        if (t->IsString()) ok = parse_time(t->GetString(), &x.ts);
        if (t->IsInt64()) {
            x.ts = t->GetInt64();
            ok = true;
        }
        if (!ok)
            throw ConsoleError(422, prefix + ".timestamp: must be RFC 3339 or unix seconds",
                               prefix + ".timestamp");
    }
    opt_int(r, "value", prefix, 0, INT64_MAX, 1);
    switch (kind) {
        case ReportKind::kFlow:
            require_one_of(r, "action", prefix, {"Accept", "Reject"}, true);
            require_one_of(r, "observedAction", prefix, {"Accept", "Reject", "NotApplicable"},
                           false);
            x.source_id = opt_string(r, "sourceID", prefix);
            x.destination_id = opt_string(r, "destinationID", prefix);
            if (x.source_id.empty() && opt_string(r, "sourceIP", prefix).empty())
                throw ConsoleError(422, prefix + ".sourceID: sourceID or sourceIP is required",
                                   prefix + ".sourceID");
            if (x.destination_id.empty() && opt_string(r, "destinationIP", prefix).empty() &&
                opt_string(r, "destinationFQDN", prefix).empty())
                throw ConsoleError(422,
                                   prefix +
                                       ".destinationID: destinationID, destinationIP or "
                                       "destinationFQDN is required",
                                   prefix + ".destinationID");
            x.destination_port = opt_int(r, "destinationPort", prefix, 0, 65535, -1);
            opt_int(r, "protocol", prefix, 0, 255, -1);
            // The flows' packets and bytes in the interval, each direction (docs/export.md).
            {
                const int64_t sp = opt_int(r, "sourcePackets", prefix, 0, INT64_MAX, 0);
                const int64_t sb = opt_int(r, "sourceBytes", prefix, 0, INT64_MAX, 0);
                const int64_t dp = opt_int(r, "destinationPackets", prefix, 0, INT64_MAX, 0);
                const int64_t db = opt_int(r, "destinationBytes", prefix, 0, INT64_MAX, 0);
                // Saturating: a sum past INT64_MAX would need 9 EB in one report.
                x.packets = sp > INT64_MAX - dp ? INT64_MAX : sp + dp;
                x.bytes = sb > INT64_MAX - db ? INT64_MAX : sb + db;
            }
            break;
        case ReportKind::kDnsLookup:
            require_one_of(r, "action", prefix, {"Accept", "Fail", "Reject", "Resolve"}, true);
            get_string(r, "resolvedName", prefix + ".resolvedName", true);
            x.source_id = opt_string(r, "processingUnitID", prefix);
            get_strings(r, "resolvedIPs", prefix + ".resolvedIPs");
            get_strings(r, "resolvedCNAMEs", prefix + ".resolvedCNAMEs");
            break;
        case ReportKind::kConnectionException:
            get_string(r, "state", prefix + ".state", true);
            x.source_id = opt_string(r, "processingUnitID", prefix);
            x.destination_port = opt_int(r, "destinationPort", prefix, 0, 65535, -1);
            opt_int(r, "protocol", prefix, 0, 255, -1);
            break;
        case ReportKind::kEventLog:
            // gaia's eventlog: what happened to an enforcer or a PU (a refused policy, ...).
            require_one_of(r, "level", prefix, {"Debug", "Info", "Warning", "Error", "Critical"},
                           true);
            get_string(r, "category", prefix + ".category", true);
            get_string(r, "content", prefix + ".content", true);
            get_string(r, "title", prefix + ".title", false);
            x.source_id = opt_string(r, "targetID", prefix);
            x.action = opt_string(r, "level", prefix);  // the indexed column: ?level= filters
            return x;
    }
    x.action = opt_string(r, "action", prefix);
    return x;
}

}  // namespace

bool report_kind_from_name(std::string_view name, ReportKind *out) {
    for (ReportKind k : {ReportKind::kFlow, ReportKind::kDnsLookup,
                         ReportKind::kConnectionException, ReportKind::kEventLog})
        if (name == report_kind_name(k)) {
            *out = k;
            return true;
        }
    return false;
}

const char *report_kind_name(ReportKind k) {
    switch (k) {
        case ReportKind::kFlow:
            return "flowreports";
        case ReportKind::kDnsLookup:
            return "dnslookupreports";
        case ReportKind::kConnectionException:
            return "connectionexceptionreports";
        case ReportKind::kEventLog:
            return "eventlogs";
    }
    return "?";
}

PreparedBatch prepare_reports(ReportKind kind, std::string_view body,
                              const std::string &enforcer_id) {
    rapidjson::Document doc = parse_json_object(body);
    PreparedBatch out;
    IngestResult &res = out.result;
    res.batch_id = get_string(doc, "batchID", "batchID", true);
    if (res.batch_id.size() > 128)
        throw ConsoleError(422, "batchID: longer than 128 characters", "batchID");
    res.enforcer_id = enforcer_id;
    auto same_enforcer = [&](const Value &obj, const std::string &field) {
        std::string named = get_string(obj, "enforcerID", field, false);
        if (!named.empty() && named != enforcer_id)
            throw ConsoleError(403,
                               field + ": \"" + named + "\" is not this token's enforcer (" +
                                   enforcer_id + "): an enforcer reports only as itself",
                               field);
    };
    same_enforcer(doc, "enforcerID");
    const Value *reports = member(doc, "reports");
    if (!reports || !reports->IsArray())
        throw ConsoleError(422, "reports: must be an array of report objects", "reports");
    if (reports->Size() > kMaxBatch)
        throw ConsoleError(422, "reports: more than " + std::to_string(kMaxBatch) + " in one batch",
                           "reports");
    int64_t now = now_unix();
    std::vector<Extracted> cols;
    for (rapidjson::SizeType i = 0; i < reports->Size(); ++i) {
        std::string prefix = "reports[" + std::to_string(i) + "]";
        cols.push_back(check_report(kind, (*reports)[i], prefix, now));
        same_enforcer((*reports)[i], prefix + ".enforcerID");
    }
    // Each report's stored JSON is made here, outside the database lock.
    auto json = std::make_shared<std::vector<std::string>>();
    for (rapidjson::SizeType i = 0; i < reports->Size(); ++i) {
        Value &r = doc["reports"][i];
        auto &a = doc.GetAllocator();
        r.RemoveMember("enforcerID");
        r.AddMember("enforcerID", Value(res.enforcer_id.c_str(), a), a);
        if (!member(r, "timestamp"))
            r.AddMember("timestamp", Value(rfc3339(cols[i].ts).c_str(), a), a);
        if (!member(r, "value")) r.AddMember("value", 1, a);
        json->push_back(to_json(r));
    }
    auto rows = std::make_shared<std::vector<Extracted>>(std::move(cols));
    out.write = [kind, rows, json, now](Db &db, IngestResult &res) {
        // The batch's UNIQUE key makes a retry (to this or another replica) count once; DO
        // NOTHING rather than a constraint error, which would abort a PostgreSQL transaction
        // shared with other requests' batches (IngestQueue).
        Stmt b(db,
               "INSERT INTO report_batches(kind, enforcer_id, batch_id, count, received) "
               "VALUES(?, ?, ?, ?, ?) ON CONFLICT DO NOTHING");
        b.bind(1, std::string(report_kind_name(kind))).bind(2, res.enforcer_id);
        b.bind(3, res.batch_id).bind(4, static_cast<int64_t>(rows->size())).bind(5, now);
        b.step();
        res.duplicate = db.changes() == 0;  // a retry of a batch we hold: store nothing
        res.stored = 0;
        if (res.duplicate) return;
        // Many rows per INSERT (kRowsPerInsert × 11 parameters, well under SQLite's 32766 and
        // PostgreSQL's 65535): one statement round trip per chunk instead of one per report.
        constexpr size_t kRowsPerInsert = 100;
        const std::string kind_name = report_kind_name(kind);
        for (size_t first = 0; first < rows->size(); first += kRowsPerInsert) {
            const size_t k = std::min(kRowsPerInsert, rows->size() - first);
            std::string sql =
                "INSERT INTO reports(kind, enforcer_id, batch_id, ts, action, source_id, "
                "destination_id, destination_port, json, packets, bytes) VALUES";
            for (size_t i = 0; i < k; ++i)
                sql +=
                    i ? ",(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)" : "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
            Stmt ins(db, sql.c_str());
            for (size_t i = 0; i < k; ++i) {
                const Extracted &c = (*rows)[first + i];
                const int p = static_cast<int>(i * 11);
                ins.bind(p + 1, kind_name).bind(p + 2, res.enforcer_id);
                ins.bind(p + 3, res.batch_id).bind(p + 4, c.ts);
                ins.bind(p + 5, c.action).bind(p + 6, c.source_id).bind(p + 7, c.destination_id);
                if (c.destination_port >= 0)
                    ins.bind(p + 8, c.destination_port);
                else
                    ins.bind_null(p + 8);
                ins.bind(p + 9, (*json)[first + i]);
                ins.bind(p + 10, c.packets).bind(p + 11, c.bytes);
            }
            ins.step();
        }
        res.stored = rows->size();
    };
    return out;
}

IngestResult ingest_reports(Db &db, ReportKind kind, std::string_view body,
                            const std::string &enforcer_id) {
    PreparedBatch b = prepare_reports(kind, body, enforcer_id);
    std::lock_guard lock(db.mutex());
    Tx tx(db, false);
    b.write(db, b.result);
    tx.commit();
    return b.result;
}

Page query_reports(Db &db, ReportKind kind, const ReportFilter &f) {
    const bool desc = f.page.descending;
    int64_t after_ts = 0, after_seq = 0;
    if (f.page.after && !parse_report_key(*f.page.after, &after_ts, &after_seq))
        throw ConsoleError(400, "cursor: not a cursor of this Console", "cursor");
    // One branch's WHERE; `pu_col` adds "<column> = pu" (a pu filter runs two branches).
    auto where = [&](const char *pu_col) {
        std::string w = "kind = ?";
        if (!f.action.empty()) w += " AND action = ?";
        if (!f.source_id.empty()) w += " AND source_id = ?";
        if (!f.destination_id.empty()) w += " AND destination_id = ?";
        if (!f.enforcer_id.empty()) w += " AND enforcer_id = ?";
        if (pu_col) w += std::string(" AND ") + pu_col + " = ?";
        if (f.destination_port >= 0) w += " AND destination_port = ?";
        if (f.since >= 0) w += " AND ts >= ?";
        if (f.until >= 0) w += " AND ts < ?";
        // A row value comparison: SQLite (3.15+) and PostgreSQL both seek the index with it.
        if (f.page.after) w += desc ? " AND (ts, seq) < (?, ?)" : " AND (ts, seq) > (?, ?)";
        return w;
    };
    const std::string order = desc ? " ORDER BY ts DESC, seq DESC" : " ORDER BY ts, seq";
    std::string sql;
    if (f.pu.empty()) {
        sql = "SELECT seq, ts, json FROM reports WHERE " + where(nullptr) + order + " LIMIT ?";
    } else {
        // (source = pu OR destination = pu) as two index walks of limit+1 rows each, merged:
        // an OR would make SQLite collect every match and sort it.
        auto branch = [&](const char *col) {
            // (The alias: PostgreSQL before 16 requires one.)
            return "SELECT * FROM (SELECT seq, ts, json FROM reports WHERE " + where(col) + order +
                   " LIMIT ?) AS " + col;
        };
        sql = branch("source_id") + " UNION " + branch("destination_id") +
              (desc ? " ORDER BY 2 DESC, 1 DESC" : " ORDER BY 2, 1") + " LIMIT ?";
    }
    std::lock_guard lock(db.mutex());
    Stmt s(db, sql.c_str());
    int i = 1;
    auto bind_branch = [&](bool with_pu) {
        s.bind(i++, std::string(report_kind_name(kind)));
        if (!f.action.empty()) s.bind(i++, f.action);
        if (!f.source_id.empty()) s.bind(i++, f.source_id);
        if (!f.destination_id.empty()) s.bind(i++, f.destination_id);
        if (!f.enforcer_id.empty()) s.bind(i++, f.enforcer_id);
        if (with_pu) s.bind(i++, f.pu);
        if (f.destination_port >= 0) s.bind(i++, f.destination_port);
        if (f.since >= 0) s.bind(i++, f.since);
        if (f.until >= 0) s.bind(i++, f.until);
        if (f.page.after) {
            s.bind(i++, after_ts);
            s.bind(i++, after_seq);
        }
    };
    // One row more than the page: tells whether a next page exists without a second query.
    const int64_t want = f.page.limit + 1;
    bind_branch(!f.pu.empty());
    s.bind(i++, want);
    if (!f.pu.empty()) {
        bind_branch(true);
        s.bind(i++, want);
        s.bind(i++, want);
    }
    Page page;
    int64_t last_ts = 0, last_seq = 0;
    while (s.step()) {
        if (static_cast<int64_t>(page.rows.size()) == f.page.limit) {
            page.next_key = report_key(last_ts, last_seq);
            break;
        }
        last_seq = s.i64(0);
        last_ts = s.i64(1);
        page.rows.push_back(s.text(2));
    }
    return page;
}

size_t prune_reports(Db &db, ReportKind kind, int64_t cutoff, size_t batch) {
    std::lock_guard lock(db.mutex());
    Tx tx(db);
    // Walks reports_kind_ts from the oldest: reads only the rows it deletes.
    Stmt d(db,
           "DELETE FROM reports WHERE seq IN (SELECT seq FROM reports WHERE kind = ? AND ts < ? "
           "ORDER BY ts LIMIT ?)");
    d.bind(1, std::string(report_kind_name(kind))).bind(2, cutoff);
    d.bind(3, static_cast<int64_t>(batch));
    d.step();
    const size_t n = static_cast<size_t>(db.changes());
    // Batch records only make a retried batch idempotent; an enforcer retries within its spool's
    // lifetime, far below any retention worth setting.
    Stmt b(db,
           "DELETE FROM report_batches WHERE rowid IN (SELECT rowid FROM report_batches WHERE "
           "kind = ? AND received < ? LIMIT ?)");
    b.bind(1, std::string(report_kind_name(kind))).bind(2, cutoff);
    b.bind(3, static_cast<int64_t>(batch));
    b.step();
    tx.commit();
    return n;
}

std::vector<FlowRow> aggregate_flows(Db &db, int64_t since) {
    std::lock_guard lock(db.mutex());
    std::map<std::string, std::string> names;  // object ID → name
    {
        Stmt s(db, "SELECT id, json_extract(json, '$.name') FROM objects");
        while (s.step())
            if (!s.text(1).empty()) names[s.text(0)] = s.text(1);
    }
    auto display = [&](const std::string &id, const std::string &fallback) {
        if (id.empty()) return fallback;
        auto it = names.find(id);
        return it == names.end() ? id : it->second;
    };
    Stmt s(db, R"sql(
        SELECT coalesce(json_extract(json, '$.sourceID'), ''),
               coalesce(json_extract(json, '$.sourceIP'), ''),
               coalesce(json_extract(json, '$.destinationID'), ''),
               coalesce(json_extract(json, '$.destinationIP'), ''),
               coalesce(json_extract(json, '$.destinationFQDN'), ''),
               CAST(coalesce(json_extract(json, '$.protocol'), '-1') AS INTEGER),
               CAST(coalesce(json_extract(json, '$.destinationPort'), '-1') AS INTEGER),
               coalesce(json_extract(json, '$.action'), ''),
               coalesce(json_extract(json, '$.observedAction'), ''),
               coalesce(json_extract(json, '$.policyID'), ''),
               coalesce(json_extract(json, '$.ruleName'), ''),
               coalesce(json_extract(json, '$.dropReason'), ''),
               sum(CAST(coalesce(json_extract(json, '$.value'), '1') AS INTEGER)) AS n,
               sum(packets), sum(bytes)
        FROM reports WHERE kind = 'flowreports' AND ts >= ?
        GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12
        ORDER BY n DESC, 1, 3)sql");
    s.bind(1, since);
    struct Sums {
        int64_t count = 0, packets = 0, bytes = 0;
    };
    std::map<std::vector<std::string>, Sums> merged;  // after ID → name mapping
    std::vector<std::vector<std::string>> order;
    while (s.step()) {
        int64_t proto = s.i64(5), port = s.i64(6);
        std::string proto_s = proto == 6    ? "tcp"
                              : proto == 17 ? "udp"
                              : proto == 1  ? "icmp"
                              : proto == 58 ? "icmp6"
                              : proto < 0   ? ""
                                            : std::to_string(proto);
        std::string port_s =
            port < 0 ? proto_s : (proto_s.empty() ? "" : proto_s + "/") + std::to_string(port);
        std::string dst_fallback = !s.text(4).empty() ? s.text(4) : s.text(3);
        std::vector<std::string> key = {display(s.text(0), s.text(1)),
                                        display(s.text(2), dst_fallback),
                                        port_s,
                                        s.text(7),
                                        s.text(8),
                                        display(s.text(9), ""),
                                        s.text(10),
                                        s.text(11)};
        if (!merged.count(key)) order.push_back(key);
        Sums &m = merged[key];
        m.count += s.i64(12);
        m.packets += s.i64(13);
        m.bytes += s.i64(14);
    }
    std::vector<FlowRow> rows;
    for (const auto &k : order) {
        const Sums &m = merged[k];
        rows.push_back(
            {k[0], k[1], k[2], k[3], k[4], k[5], k[6], k[7], m.count, m.packets, m.bytes});
    }
    std::stable_sort(rows.begin(), rows.end(),
                     [](const FlowRow &a, const FlowRow &b) { return a.count > b.count; });
    return rows;
}

std::string format_flow_table(const std::vector<FlowRow> &rows) {
    std::vector<std::vector<std::string>> cells = {{"SOURCE", "DESTINATION", "PORT", "ACTION",
                                                    "OBSERVED", "POLICY", "RULE", "REASON", "COUNT",
                                                    "PACKETS", "BYTES"}};
    for (const auto &r : rows)
        cells.push_back({r.source, r.destination, r.port, r.action,
                         r.observed.empty() ? "-" : r.observed, r.policy.empty() ? "-" : r.policy,
                         r.rule.empty() ? "-" : r.rule, r.reason.empty() ? "-" : r.reason,
                         std::to_string(r.count), std::to_string(r.packets),
                         std::to_string(r.bytes)});
    std::string out = format_table(cells);
    if (rows.empty()) out += "(no flow reports)\n";
    return out;
}

}  // namespace segwire::console
