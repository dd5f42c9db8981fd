#include "tools/console/apicalls.hpp"

#include <ctime>
#include <memory>
#include <vector>

#include "tools/console/db.hpp"
#include "tools/console/error.hpp"
#include "tools/console/util.hpp"

namespace segwire::console {
namespace {

constexpr size_t kMaxBatch = 10000;
constexpr const char *kKind = "apicalls";

using rapidjson::Value;

struct Call {
    int64_t ts_ms = 0;
    std::string service, method, path, caller_pu, caller_user, caller_ip, verdict, rule, reason;
    int64_t status = 0, latency_us = 0;
    bool pu_null = true, user_null = true;
};

int64_t int_field(const Value &r, const char *key, const std::string &prefix, int64_t lo,
                  int64_t hi, bool required) {
    const std::string field = prefix + "." + key;
    const Value *v = member(r, key);
    if (!v) {
        if (required) throw ConsoleError(422, field + ": missing", field);
        return 0;
    }
    if (!v->IsInt64() || v->GetInt64() < lo || v->GetInt64() > hi)
        throw ConsoleError(
            422,
            field + ": must be an integer in " + std::to_string(lo) + ".." + std::to_string(hi),
            field);
    return v->GetInt64();
}

// A string, or null/absent (the caller fields: a PU without identity, a call without a user).
std::string nullable(const Value &r, const char *key, const std::string &prefix, bool *is_null) {
    const Value *v = member(r, key);
    *is_null = v == nullptr;
    if (!v) return "";
    return get_string(r, key, prefix + "." + key, false);
}

Call check_call(const Value &r, const std::string &prefix) {
    if (!r.IsObject()) throw ConsoleError(422, prefix + ": must be a JSON object", prefix);
    Call c;
    c.service = get_string(r, "service", prefix + ".service", true);
    c.method = get_string(r, "method", prefix + ".method", true);
    c.path = get_string(r, "path", prefix + ".path", true);
    c.caller_pu = nullable(r, "callerPU", prefix, &c.pu_null);
    c.caller_user = nullable(r, "callerUser", prefix, &c.user_null);
    c.caller_ip = get_string(r, "callerIP", prefix + ".callerIP", false);
    c.verdict = get_string(r, "verdict", prefix + ".verdict", true);
    if (c.verdict != "accept" && c.verdict != "reject")
        throw ConsoleError(422,
                           prefix + ".verdict: \"" + c.verdict + "\" is not one of accept|reject",
                           prefix + ".verdict");
    c.rule = get_string(r, "rule", prefix + ".rule", false);
    c.reason = get_string(r, "reason", prefix + ".reason", false);
    c.status = int_field(r, "status", prefix, 0, 999, false);
    c.latency_us = int_field(r, "latencyUs", prefix, 0, INT64_MAX, false);
    // Unix milliseconds (the proxy's clock); 2001..2286 catches seconds sent by mistake.
    c.ts_ms = int_field(r, "timestamp", prefix, 1000000000000LL, 9999999999999LL, true);
    // Traffic content is never exported: a report carrying anything else is refused, so that a
    // proxy bug cannot leak a raw URI or a header into the Console.
    static const char *const kKnown[] = {
        "service", "method", "path",   "callerPU",  "callerUser", "callerIP",  "verdict",
        "rule",    "reason", "status", "latencyUs", "timestamp",  "enforcerID"};
    for (auto it = r.MemberBegin(); it != r.MemberEnd(); ++it) {
        bool known = false;
        for (const char *k : kKnown) known = known || it->name.GetString() == std::string_view(k);
        if (!known) {
            std::string field = prefix + "." + it->name.GetString();
            throw ConsoleError(
                422, field + ": unknown field (an API call report carries no content)", field);
        }
    }
    return c;
}

std::string call_json(Stmt &s) {
    // Columns: seq, ts, ts_ms, enforcer_id, service, method, path, caller_pu, caller_user,
    // caller_ip, verdict, rule, reason, status, latency_us
    rapidjson::StringBuffer buf;
    JsonWriter w(buf);
    w.StartObject();
    write_string(w, "service", s.text(4));
    write_string(w, "method", s.text(5));
    write_string(w, "path", s.text(6));
    w.Key("callerPU");
    if (s.is_null(7))
        w.Null();
    else
        w.String(s.text(7).c_str());
    w.Key("callerUser");
    if (s.is_null(8))
        w.Null();
    else
        w.String(s.text(8).c_str());
    write_string(w, "callerIP", s.text(9));
    write_string(w, "verdict", s.text(10));
    write_string(w, "rule", s.text(11));
    write_string(w, "reason", s.text(12));
    w.Key("status");
    w.Int64(s.i64(13));
    w.Key("latencyUs");
    w.Int64(s.i64(14));
    w.Key("timestamp");
    w.Int64(s.i64(2));
    write_string(w, "enforcerID", s.text(3));
    w.EndObject();
    return std::string(buf.GetString(), buf.GetSize());
}

}  // namespace

PreparedBatch prepare_apicalls(std::string_view body, const std::string &enforcer_id) {
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
        throw ConsoleError(422, "reports: must be an array of API call reports", "reports");
    if (reports->Size() > kMaxBatch)
        throw ConsoleError(422, "reports: more than " + std::to_string(kMaxBatch) + " in one batch",
                           "reports");
    std::vector<Call> calls;
    for (rapidjson::SizeType i = 0; i < reports->Size(); ++i) {
        std::string prefix = "reports[" + std::to_string(i) + "]";
        calls.push_back(check_call((*reports)[i], prefix));
        same_enforcer((*reports)[i], prefix + ".enforcerID");
    }

    const int64_t now = now_unix();
    auto rows = std::make_shared<std::vector<Call>>(std::move(calls));
    out.write = [rows, now](Db &db, IngestResult &res) {
        // DO NOTHING, not a constraint error: that would abort a PostgreSQL transaction shared
        // with other requests' batches (IngestQueue).
        Stmt b(db,
               "INSERT INTO report_batches(kind, enforcer_id, batch_id, count, received) "
               "VALUES(?, ?, ?, ?, ?) ON CONFLICT DO NOTHING");
        b.bind(1, std::string(kKind)).bind(2, res.enforcer_id).bind(3, res.batch_id);
        b.bind(4, static_cast<int64_t>(rows->size())).bind(5, now);
        b.step();
        res.duplicate = db.changes() == 0;  // a retry of a batch already stored: store nothing
        res.stored = 0;
        if (res.duplicate) return;
        Stmt ins(db,
                 "INSERT INTO apicalls(enforcer_id, batch_id, ts, ts_ms, service, method, path, "
                 "caller_pu, caller_user, caller_ip, verdict, rule, reason, status, latency_us) "
                 "VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
        for (const Call &c : *rows) {
            ins.reset();
            ins.bind(1, res.enforcer_id).bind(2, res.batch_id).bind(3, c.ts_ms / 1000);
            ins.bind(4, c.ts_ms).bind(5, c.service).bind(6, c.method).bind(7, c.path);
            if (c.pu_null)
                ins.bind_null(8);
            else
                ins.bind(8, c.caller_pu);
            if (c.user_null)
                ins.bind_null(9);
            else
                ins.bind(9, c.caller_user);
            ins.bind(10, c.caller_ip).bind(11, c.verdict).bind(12, c.rule).bind(13, c.reason);
            ins.bind(14, c.status).bind(15, c.latency_us);
            ins.step();
        }
        res.stored = rows->size();
    };
    return out;
}

IngestResult ingest_apicalls(Db &db, std::string_view body, const std::string &enforcer_id) {
    PreparedBatch b = prepare_apicalls(body, enforcer_id);
    std::lock_guard lock(db.mutex());
    Tx tx(db);
    b.write(db, b.result);
    tx.commit();
    return b.result;
}

Page query_apicalls(Db &db, const ApiCallFilter &f) {
    const bool desc = f.page.descending;
    int64_t after_ts = 0, after_seq = 0;
    if (f.page.after && !parse_report_key(*f.page.after, &after_ts, &after_seq))
        throw ConsoleError(400, "cursor: not a cursor of this Console", "cursor");
    std::string sql =
        "SELECT seq, ts, ts_ms, enforcer_id, service, method, path, caller_pu, caller_user, "
        "caller_ip, verdict, rule, reason, status, latency_us FROM apicalls WHERE 1 = 1";
    if (!f.service.empty()) sql += " AND service = ?";
    if (!f.verdict.empty()) sql += " AND verdict = ?";
    if (!f.caller_pu.empty()) sql += " AND caller_pu = ?";
    if (!f.enforcer_id.empty()) sql += " AND enforcer_id = ?";
    if (f.since >= 0) sql += " AND ts >= ?";
    if (f.until >= 0) sql += " AND ts < ?";
    if (f.page.after) sql += desc ? " AND (ts, seq) < (?, ?)" : " AND (ts, seq) > (?, ?)";
    sql += desc ? " ORDER BY ts DESC, seq DESC" : " ORDER BY ts, seq";
    sql += " LIMIT ?";
    std::lock_guard lock(db.mutex());
    Stmt s(db, sql.c_str());
    int i = 1;
    for (const std::string *v : {&f.service, &f.verdict, &f.caller_pu, &f.enforcer_id})
        if (!v->empty()) s.bind(i++, *v);
    if (f.since >= 0) s.bind(i++, f.since);
    if (f.until >= 0) s.bind(i++, f.until);
    if (f.page.after) {
        s.bind(i++, after_ts);
        s.bind(i++, after_seq);
    }
    s.bind(i++, f.page.all ? INT64_MAX : f.page.limit + 1);
    Page page;
    int64_t last_ts = 0, last_seq = 0;
    while (s.step()) {
        if (!f.page.all && static_cast<int64_t>(page.rows.size()) == f.page.limit) {
            page.next_key = report_key(last_ts, last_seq);
            break;
        }
        last_seq = s.i64(0);
        last_ts = s.i64(1);
        page.rows.push_back(call_json(s));
    }
    return page;
}

size_t prune_apicalls(Db &db, int64_t cutoff, size_t batch) {
    std::lock_guard lock(db.mutex());
    Tx tx(db);
    Stmt d(db,
           "DELETE FROM apicalls WHERE seq IN (SELECT seq FROM apicalls WHERE ts < ? ORDER BY ts "
           "LIMIT ?)");
    d.bind(1, cutoff).bind(2, static_cast<int64_t>(batch));
    d.step();
    const size_t n = static_cast<size_t>(db.changes());
    Stmt b(db, "DELETE FROM report_batches WHERE kind = ? AND received < ?");
    b.bind(1, std::string(kKind)).bind(2, cutoff);
    b.step();
    tx.commit();
    return n;
}

std::string format_apicalls(Db &db, const ApiCallFilter &f) {
    std::vector<std::vector<std::string>> cells = {{"TIME", "SERVICE", "METHOD", "PATH", "CALLER",
                                                    "FROM", "VERDICT", "STATUS", "RULE/REASON",
                                                    "LATENCY"}};
    ApiCallFilter all = f;
    all.page.all = true;
    Page p = query_apicalls(db, all);
    for (const std::string &row : p.rows) {
        rapidjson::Document d;
        d.Parse(row.c_str());
        auto str = [&](const char *k) {
            return d.HasMember(k) && d[k].IsString() ? std::string(d[k].GetString()) : "";
        };
        std::string caller;
        if (!str("callerPU").empty()) caller = "pu:" + str("callerPU");
        if (!str("callerUser").empty())
            caller += (caller.empty() ? "" : " ") + std::string("user:") + str("callerUser");
        if (caller.empty()) caller = "-";
        const int64_t ms = d["timestamp"].GetInt64();
        char when[40];
        std::snprintf(when, sizeof when, "%s", rfc3339(ms / 1000).c_str());
        std::string why = str("verdict") == "accept" ? str("rule") : str("reason");
        cells.push_back({when, str("service"), str("method"), str("path"), caller, str("callerIP"),
                         str("verdict"), std::to_string(d["status"].GetInt64()),
                         why.empty() ? "-" : why,
                         std::to_string(d["latencyUs"].GetInt64() / 1000) + "." +
                             std::to_string(d["latencyUs"].GetInt64() % 1000 / 100) + " ms"});
    }
    std::string out = format_table(cells);
    if (p.rows.empty()) out += "(no API calls)\n";
    return out;
}

}  // namespace segwire::console
