#include "tools/console/appcreds.hpp"

#include "tools/console/console_pki.hpp"
#include "tools/console/db.hpp"
#include "tools/console/error.hpp"
#include "tools/console/util.hpp"

namespace segwire::console {
namespace {

constexpr const char *kSelect =
    "SELECT id, name, namespace, role, enforcer_id, created, coalesce(revoked, 0), enforcer_group "
    "FROM appcreds";

AppCredential read_row(Stmt &s) {
    AppCredential c{s.text(0), s.text(1), s.text(2), s.text(3), s.text(4), "", s.i64(5), s.i64(6)};
    c.enforcer_group = s.text(7);
    return c;
}

void write_fields(JsonWriter &w, const AppCredential &c) {
    write_string(w, "ID", c.id);
    write_string(w, "name", c.name);
    write_string(w, "namespace", c.ns);
    write_string(w, "role", c.role);
    if (!c.enforcer_id.empty()) write_string(w, "enforcerID", c.enforcer_id);
    if (!c.enforcer_group.empty()) write_string(w, "enforcerGroup", c.enforcer_group);
}

}  // namespace

std::string create_app_credential(Db &db, const ConsolePki &pki, const std::string &name, Role role,
                                  const std::string &enforcer_id, const std::string &api_url,
                                  const std::string &tls_trust_pem, const Actor &actor,
                                  const std::string &enforcer_group) {
    if (name.empty()) throw ConsoleError(422, "name: must not be empty", "name");
    if (role == Role::kEnforcer && !valid_enforcer_id(enforcer_id))
        throw ConsoleError(422,
                           "enforcerID: an enforcer credential is bound to one enforcer ID (1..64 "
                           "of A-Z a-z 0-9 - _ .), got \"" +
                               enforcer_id + "\"",
                           "enforcerID");
    if (role != Role::kEnforcer && !enforcer_id.empty())
        throw ConsoleError(422,
                           std::string("enforcerID: only an enforcer credential is bound to an "
                                       "enforcer ID, not a ") +
                               role_name(role) + " credential",
                           "enforcerID");
    if (!enforcer_group.empty() && role != Role::kEnforcer)
        throw ConsoleError(422,
                           std::string("enforcerGroup: only an enforcer credential binds an "
                                       "enforcer group, not a ") +
                               role_name(role) + " credential",
                           "enforcerGroup");
    if (!enforcer_group.empty() && !crypto::valid_enforcer_group(enforcer_group))
        throw ConsoleError(
            422, "enforcerGroup: \"" + enforcer_group + "\" is not 1..64 of A-Z a-z 0-9 - _ .",
            "enforcerGroup");
    AppCredential c;
    c.id = "app-" + random_hex(8);
    c.enforcer_group = enforcer_group;
    c.name = name;
    c.role = role_name(role);
    c.enforcer_id = enforcer_id;
    c.created = now_unix();
    auto key = unwrap(crypto::generate_p256_key(), "app credential key");
    auto csr = unwrap(crypto::create_csr(key.get(), c.id), "app credential CSR");
    crypto::IssueOptions opt;
    opt.validity = std::chrono::hours(24 * 365);
    auto cert =
        unwrap(crypto::sign_enforcer_csr(pki.appcred_ca(), csr.get(), opt), "app credential");
    std::string cert_pem = unwrap(crypto::cert_to_pem(cert.get()), "certificate PEM");
    std::string key_pem = unwrap(crypto::private_key_to_pem(key.get()), "key PEM");

    {
        std::lock_guard lock(db.mutex());
        Tx tx(db);
        c.ns = "/";
        {
            Stmt s(db, "SELECT json_extract(json, '$.name') FROM objects WHERE kind = 'namespace'");
            if (s.step() && !s.text(0).empty()) c.ns = s.text(0);
        }
        Stmt s(db,
               "INSERT INTO appcreds(id, name, namespace, cert_sha256, created, role, enforcer_id, "
               "enforcer_group) VALUES(?, ?, ?, ?, ?, ?, ?, ?)");
        s.bind(1, c.id).bind(2, c.name).bind(3, c.ns).bind(4, cert_fingerprint(cert.get()));
        s.bind(5, c.created).bind(6, c.role).bind(7, c.enforcer_id).bind(8, c.enforcer_group);
        s.step();
        append_audit(db, actor, {"create", "appcreds", c.id, app_credential_json(c)});
        tx.commit();
    }
    rapidjson::StringBuffer buf;
    JsonWriter w(buf);
    w.StartObject();
    write_fields(w, c);
    write_string(w, "APIURL", api_url);
    write_string(w, "certificate", base64_encode(cert_pem));
    write_string(w, "certificateAuthority", base64_encode(tls_trust_pem));
    write_string(w, "certificateKey", base64_encode(key_pem));
    w.EndObject();
    return std::string(buf.GetString(), buf.GetSize());
}

std::vector<AppCredential> list_app_credentials(Db &db) {
    std::lock_guard lock(db.mutex());
    Stmt s(db, (std::string(kSelect) + " ORDER BY created, id").c_str());
    std::vector<AppCredential> out;
    while (s.step()) out.push_back(read_row(s));
    return out;
}

Page app_credentials_page(Db &db, const PageRequest &page) {
    std::string sql = kSelect;
    if (page.after) sql += page.descending ? " WHERE id < ?" : " WHERE id > ?";
    sql += page.descending ? " ORDER BY id DESC" : " ORDER BY id";
    if (!page.all) sql += " LIMIT ?";
    std::vector<AppCredential> all;
    {
        std::lock_guard lock(db.mutex());
        Stmt s(db, sql.c_str());
        int i = 1;
        if (page.after) s.bind(i++, *page.after);
        if (!page.all) s.bind(i++, page.limit + 1);
        while (s.step()) all.push_back(read_row(s));
    }
    Page out;
    if (!page.all && static_cast<int64_t>(all.size()) > page.limit) {
        all.pop_back();
        out.next_key = all.back().id;
    }
    for (const auto &c : all) out.rows.push_back(app_credential_json(c));
    return out;
}

std::optional<AppCredential> find_app_credential(Db &db, const std::string &id) {
    std::lock_guard lock(db.mutex());
    Stmt s(db, (std::string(kSelect) + " WHERE id = ?").c_str());
    s.bind(1, id);
    if (!s.step()) return std::nullopt;
    return read_row(s);
}

std::optional<AppCredential> find_app_credential_by_fingerprint(Db &db, const std::string &sha256) {
    std::lock_guard lock(db.mutex());
    Stmt s(db, (std::string(kSelect) + " WHERE cert_sha256 = ?").c_str());
    s.bind(1, sha256);
    if (!s.step()) return std::nullopt;
    return read_row(s);
}

AppCredential revoke_app_credential(Db &db, const std::string &id, const Actor &actor) {
    {
        std::lock_guard lock(db.mutex());
        Tx tx(db);
        Stmt s(db, "UPDATE appcreds SET revoked = ? WHERE id = ? AND revoked IS NULL");
        s.bind(1, now_unix()).bind(2, id);
        s.step();
        if (db.changes() > 0) {
            append_audit(db, actor, {"revoke", "appcreds", id, "{}"});
            tx.commit();
        }
    }
    auto c = find_app_credential(db, id);
    if (!c) throw ConsoleError(404, "app credential \"" + id + "\" not found", "ID");
    return *c;
}

std::string app_credential_json(const AppCredential &c) {
    rapidjson::StringBuffer buf;
    JsonWriter w(buf);
    w.StartObject();
    write_fields(w, c);
    write_string(w, "created", rfc3339(c.created));
    if (c.revoked) write_string(w, "revoked", rfc3339(c.revoked));
    w.EndObject();
    return std::string(buf.GetString(), buf.GetSize());
}

}  // namespace segwire::console
