#include "tools/console/audit.hpp"

#include <algorithm>
#include <vector>

#include "tools/console/authz.hpp"
#include "tools/console/db.hpp"
#include "tools/console/util.hpp"

namespace segwire::console {
namespace {

struct Row {
    int64_t seq, ts, revision;
    std::string who, name, role, realm, action, kind, id, detail;
};

std::vector<Row> select(Db &db, const AuditFilter &f) {
    std::string sql =
        "SELECT seq, ts, who, name, role, realm, action, kind, object_id, revision, detail "
        "FROM auditlog WHERE ts >= ?";
    if (!f.who.empty()) sql += " AND who = ?";
    if (!f.kind.empty()) sql += " AND kind = ?";
    if (!f.id.empty()) sql += " AND object_id = ?";
    sql += " ORDER BY seq LIMIT ?";
    std::lock_guard lock(db.mutex());
    Stmt s(db, sql.c_str());
    int i = 1;
    s.bind(i++, f.since);
    if (!f.who.empty()) s.bind(i++, f.who);
    if (!f.kind.empty()) s.bind(i++, f.kind);
    if (!f.id.empty()) s.bind(i++, f.id);
    s.bind(i++, f.limit);
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

std::string query_audit(Db &db, const AuditFilter &f) {
    rapidjson::StringBuffer buf;
    JsonWriter w(buf);
    w.StartArray();
    for (const Row &r : select(db, f)) {
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
    }
    w.EndArray();
    return std::string(buf.GetString(), buf.GetSize());
}

std::string format_audit(Db &db, const AuditFilter &f) {
    std::vector<std::vector<std::string>> cells = {
        {"TIME", "WHO", "ROLE", "ACTION", "KIND", "ID", "REVISION"}};
    for (const Row &r : select(db, f))
        cells.push_back({rfc3339(r.ts), r.who + (r.name.empty() ? "" : " (" + r.name + ")"), r.role,
                         r.action, r.kind, r.id.empty() ? "-" : r.id,
                         r.revision ? std::to_string(r.revision) : "-"});
    std::string out = format_table(cells);
    if (cells.size() == 1) out += "(no audit records)\n";
    return out;
}

}  // namespace segwire::console
