#include "tools/console/audit.hpp"

#include <algorithm>
#include <cstdlib>
#include <vector>

#include "tools/console/authz.hpp"
#include "tools/console/db.hpp"
#include "tools/console/error.hpp"
#include "tools/console/util.hpp"

namespace segwire::console {
namespace {

struct Row {
    int64_t seq, ts, revision;
    std::string who, name, role, realm, action, kind, id, detail;
};

// Up to limit+1 rows: the extra one says a next page exists.
std::vector<Row> select(Db &db, const AuditFilter &f) {
    const bool desc = f.page.descending;
    int64_t after = 0;
    if (f.page.after) {
        char *end = nullptr;
        after = std::strtoll(f.page.after->c_str(), &end, 10);
        if (f.page.after->empty() || *end)
            throw ConsoleError(400, "cursor: not a cursor of this Console", "cursor");
    }
    std::string sql =
        "SELECT seq, ts, who, name, role, realm, action, kind, object_id, revision, detail "
        "FROM auditlog WHERE 1 = 1";
    if (f.since >= 0) sql += " AND ts >= ?";
    if (f.until >= 0) sql += " AND ts < ?";
    if (!f.who.empty()) sql += " AND who = ?";
    if (!f.kind.empty()) sql += " AND kind = ?";
    if (!f.id.empty()) sql += " AND object_id = ?";
    if (!f.action.empty()) sql += " AND action = ?";
    if (f.page.after) sql += desc ? " AND seq < ?" : " AND seq > ?";
    sql += desc ? " ORDER BY seq DESC LIMIT ?" : " ORDER BY seq LIMIT ?";
    std::lock_guard lock(db.mutex());
    Stmt s(db, sql.c_str());
    int i = 1;
    if (f.since >= 0) s.bind(i++, f.since);
    if (f.until >= 0) s.bind(i++, f.until);
    if (!f.who.empty()) s.bind(i++, f.who);
    if (!f.kind.empty()) s.bind(i++, f.kind);
    if (!f.id.empty()) s.bind(i++, f.id);
    if (!f.action.empty()) s.bind(i++, f.action);
    if (f.page.after) s.bind(i++, after);
    s.bind(i++, f.page.limit + 1);
    std::vector<Row> out;
    while (s.step())
        out.push_back({s.i64(0), s.i64(1), s.i64(9), s.text(2), s.text(3), s.text(4), s.text(5),
                       s.text(6), s.text(7), s.text(8), s.text(10)});
    return out;
}

}  // namespace

Actor actor_of(const Caller &c) {
    return {c.sub, "", role_name(c.role), c.realm};
}

void append_audit(Db &db, const Actor &actor, const AuditEntry &e) {
    Stmt s(db,
           "INSERT INTO auditlog(ts, who, name, role, realm, action, kind, object_id, revision, "
           "detail) VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
    s.bind(1, now_unix()).bind(2, actor.who).bind(3, actor.name).bind(4, actor.role);
    s.bind(5, actor.realm).bind(6, e.action).bind(7, e.kind).bind(8, e.id);
    s.bind(9, e.revision).bind(10, e.detail.empty() ? std::string("{}") : e.detail);
    s.step();
}

Page query_audit(Db &db, const AuditFilter &f) {
    std::vector<Row> rows = select(db, f);
    Page page;
    if (static_cast<int64_t>(rows.size()) > f.page.limit) {
        rows.pop_back();
        page.next_key = std::to_string(rows.back().seq);
    }
    for (const Row &r : rows) {
        rapidjson::StringBuffer buf;
        JsonWriter w(buf);
        w.StartObject();
        w.Key("seq");
        w.Int64(r.seq);
        write_string(w, "time", rfc3339(r.ts));
        w.Key("actor");
        w.StartObject();
        write_string(w, "who", r.who);
        if (!r.name.empty()) write_string(w, "name", r.name);
        write_string(w, "role", r.role);
        write_string(w, "realm", r.realm);
        w.EndObject();
        write_string(w, "action", r.action);
        write_string(w, "kind", r.kind);
        write_string(w, "ID", r.id);
        if (r.revision) {
            w.Key("revision");
            w.Int64(r.revision);
        }
        rapidjson::Document d;
        d.Parse(r.detail.c_str());
        w.Key("detail");
        if (d.HasParseError())
            w.String(r.detail.c_str());
        else
            d.Accept(w);
        w.EndObject();
        page.rows.emplace_back(buf.GetString(), buf.GetSize());
    }
    return page;
}

std::string format_audit(Db &db, const AuditFilter &f) {
    std::vector<std::vector<std::string>> cells = {
        {"TIME", "WHO", "ROLE", "ACTION", "KIND", "ID", "REVISION"}};
    std::vector<Row> rows = select(db, f);
    if (static_cast<int64_t>(rows.size()) > f.page.limit) rows.pop_back();
    for (const Row &r : rows)
        cells.push_back({rfc3339(r.ts), r.who + (r.name.empty() ? "" : " (" + r.name + ")"), r.role,
                         r.action, r.kind, r.id.empty() ? "-" : r.id,
                         r.revision ? std::to_string(r.revision) : "-"});
    std::string out = format_table(cells);
    if (cells.size() == 1) out += "(no audit records)\n";
    return out;
}

}  // namespace segwire::console
