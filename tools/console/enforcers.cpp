#include "tools/console/enforcers.hpp"

#include <algorithm>
#include <cctype>
#include <set>
#include <ctime>

#include <openssl/x509.h>

#include "config/policy/profile.hpp"
#include "crypto/pki.hpp"
#include "tools/console/appcreds.hpp"
#include "tools/console/audit.hpp"
#include "tools/console/authz.hpp"
#include "tools/console/console_pki.hpp"
#include "tools/console/db.hpp"
#include "tools/console/error.hpp"
#include "tools/console/util.hpp"

namespace segwire::console {
namespace {

EnforcerRecord read_row(Stmt &s) {
    EnforcerRecord r;
    r.id = s.text(0);
    r.name = s.text(1);
    rapidjson::Document tags;
    tags.Parse(s.text(2).c_str());
    if (tags.IsArray())
        for (const auto &t : tags.GetArray())
            if (t.IsString()) r.tags.emplace_back(t.GetString());
    r.certificate = s.text(3);
    r.registered = s.i64(4);
    r.last_seen = s.is_null(5) ? 0 : s.i64(5);
    r.status = s.text(6);
    r.stats_json = s.text(7);
    r.policy_error_json = s.is_null(8) ? "" : s.text(8);
    return r;
}

constexpr const char *kSelect =
    "SELECT id, name, tags, certificate, registered, last_seen, status, stats, policy_error "
    "FROM enforcers";

// The enforcer group a certificate PEM carries ("" none or unreadable).
std::string group_of(const std::string &pem) {
    auto c = crypto::cert_from_pem(pem);
    if (!c) return "";
    auto g = crypto::cert_enforcer_group(c->get());
    return g ? *g : "";
}

}  // namespace

std::pair<int, std::string> EnforcerRegistry::register_enforcer(std::string_view body,
                                                                const Caller &caller,
                                                                const std::string &tls_cert_sha256,
                                                                bool cloud_auto_register) {
    rapidjson::Document doc = parse_json_object(body);
    EnforcerRecord r;
    r.name = get_string(doc, "name", "name", true);
    r.tags = get_strings(doc, "associatedTags", "associatedTags");
    for (size_t i = 0; i < r.tags.size(); ++i) {
        std::string k, v, problem;
        if (!policy::parse_tag(r.tags[i], &k, &v, &problem)) {
            std::string f = "associatedTags[" + std::to_string(i) + "]";
            throw ConsoleError(422, f + ": " + problem, f);
        }
    }
    CsrInfo csr = pki_.parse_csr(get_string(doc, "csr", "csr", true), "csr");
    r.id = csr.subject_cn;
    if (!valid_enforcer_id(r.id))
        throw ConsoleError(422,
                           "csr: subject CN \"" + r.id +
                               "\" is not a usable enforcer ID (1..64 of A-Z a-z 0-9 - _ .)",
                           "csr");
    if (caller.role != Role::kEnforcer || caller.enforcer_id != r.id)
        throw ConsoleError(
            403,
            "csr: subject CN \"" + r.id + "\" is not this token's enforcer ID (" +
                (caller.role == Role::kEnforcer ? "bound to " + caller.enforcer_id
                                                : std::string("role ") + role_name(caller.role)) +
                "): an enforcer registers only its own ID",
            "csr");
    // The enforcer group is the credential's (segwire-console appcred create --enforcer-group):
    // an enforcer never chooses its own. A CSR may ask for one only to have a mismatch said at
    // once; asking for a group the credential does not bind is refused, naming both.
    std::string group;
    if (caller.realm == "Certificate" && !caller.appcred_id.empty())
        if (auto cred = find_app_credential(db_, caller.appcred_id)) group = cred->enforcer_group;
    {
        auto asked = crypto::csr_enforcer_group(csr.csr.get());
        if (!asked) throw ConsoleError(422, "csr: " + asked.error().message, "csr");
        if (!asked->empty() && *asked != group)
            throw ConsoleError(
                403,
                "csr: asks for enforcer group \"" + *asked + "\", but this token's credential " +
                    (group.empty() ? std::string("binds no enforcer group")
                                   : "binds group \"" + group + "\"") +
                    ": only the admin binds a group (appcred create --enforcer-group)",
                "csr");
    }
    // Proof and first-registration rules are checked again inside the transaction below; this
    // early look only avoids signing a certificate that would be thrown away.
    bool revoked_id = false;
    auto check_proof = [&](const std::optional<EnforcerRecord> &cur, bool approved) {
        if (!cur) {
            if (revoked_id && !approved)
                throw ConsoleError(403,
                                   "enforcer " + r.id +
                                       " was revoked: registering it again needs an admin's "
                                       "approval (POST /enforcers/" +
                                       r.id + "/approval, or segwire-console enforcer approve)",
                                   "approval");
            if (caller.realm != "Certificate" && !cloud_auto_register && !approved)
                throw ConsoleError(403,
                                   "first registration of enforcer " + r.id + " by a " +
                                       caller.realm +
                                       " identity needs an admin's approval "
                                       "(POST /enforcers/" +
                                       r.id + "/approval, or segwire-console enforcer approve)",
                                   "approval");
            return;
        }
        if (!tls_cert_sha256.empty()) {
            auto cur_cert = crypto::cert_from_pem(cur->certificate);
            if (cur_cert && cert_fingerprint(cur_cert->get()) == tls_cert_sha256) return;
        }
        auto cur_cert = crypto::cert_from_pem(cur->certificate);
        if (cur_cert) {
            crypto::PKeyPtr cur_key(X509_get_pubkey(cur_cert->get()));
            if (cur_key && EVP_PKEY_eq(cur_key.get(), csr.public_key.get()) == 1) return;
        }
        throw ConsoleError(403,
                           "re-registration of enforcer " + r.id +
                               " needs proof of its current key: a CSR signed by the key of its "
                               "current certificate, or mTLS with that certificate (an admin can "
                               "DELETE /enforcers/" +
                               r.id + " to start afresh)",
                           "csr");
    };
    auto approved = [&] {
        Stmt s(db_, "SELECT 1 FROM approvals WHERE enforcer_id = ?");
        s.bind(1, r.id);
        return s.step();
    };
    auto is_revoked = [&] {
        Stmt s(db_, "SELECT 1 FROM revoked_enforcers WHERE enforcer_id = ?");
        s.bind(1, r.id);
        return s.step();
    };
    {
        std::optional<EnforcerRecord> cur = find(r.id);
        bool ok;
        {
            std::lock_guard lock(db_.mutex());
            ok = approved();
            revoked_id = is_revoked();
        }
        check_proof(cur, ok);
    }
    r.certificate = pki_.sign_csr(csr, "csr", std::chrono::seconds(cert_validity_), group);
    r.registered = now_unix();
    std::string ref;
    int64_t not_after = 0;
    {
        auto c = crypto::cert_from_pem(r.certificate);
        if (!c) throw ConsoleError(500, "issued certificate does not parse");
        ref = cert_fingerprint(c->get());
        auto nb = X509_get0_notAfter(c->get());
        struct tm tm {};
        if (ASN1_TIME_to_tm(nb, &tm) == 1) not_after = timegm(&tm);
    }

    rapidjson::StringBuffer tb;
    JsonWriter tw(tb);
    tw.StartArray();
    for (const auto &t : r.tags) tw.String(t.c_str());
    tw.EndArray();

    bool existed;
    {
        std::lock_guard lock(db_.mutex());
        Tx tx(db_);
        {
            // The same rules again, atomically with the write: two registrations racing for one
            // ID cannot both pass as "first".
            Stmt s(db_, (std::string(kSelect) + " WHERE id = ?").c_str());
            s.bind(1, r.id);
            std::optional<EnforcerRecord> cur;
            if (s.step()) cur = read_row(s);
            revoked_id = is_revoked();
            check_proof(cur, approved());
            existed = cur.has_value();
        }
        for (const char *sql : {"DELETE FROM approvals WHERE enforcer_id = ?",  // used up
                                "DELETE FROM revoked_enforcers WHERE enforcer_id = ?"}) {
            if (existed) break;
            Stmt s(db_, sql);
            s.bind(1, r.id);
            s.step();
        }
        {
            // Every certificate issued is kept (revoking the enforcer lists them all); those
            // expired for longer than the retention are forgotten here.
            Stmt p(db_, "DELETE FROM enforcer_certs WHERE not_after < ?");
            p.bind(1, r.registered - kRevocationRetention);
            p.step();
            Stmt c(db_,
                   "INSERT INTO enforcer_certs(ref, enforcer_id, pem, not_after, issued) "
                   "VALUES(?, ?, ?, ?, ?) ON CONFLICT(ref) DO UPDATE SET "
                   "enforcer_id = excluded.enforcer_id, pem = excluded.pem, "
                   "not_after = excluded.not_after, issued = excluded.issued");
            c.bind(1, ref).bind(2, r.id).bind(3, r.certificate).bind(4, not_after);
            c.bind(5, r.registered);
            c.step();
        }
        Stmt s(db_,
               "INSERT INTO enforcers(id, name, tags, certificate, registered) "
               "VALUES(?, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET name = excluded.name, "
               "tags = excluded.tags, certificate = excluded.certificate, "
               "registered = excluded.registered");
        s.bind(1, r.id).bind(2, r.name).bind(3, std::string(tb.GetString(), tb.GetSize()));
        s.bind(4, r.certificate).bind(5, r.registered);
        s.step();
        rapidjson::StringBuffer db;
        JsonWriter dw(db);
        dw.StartObject();
        write_string(dw, "name", r.name);
        write_strings(dw, "associatedTags", r.tags);
        dw.EndObject();
        append_audit(db_, actor_of(caller),
                     {existed ? "reregister" : "register", "enforcers", r.id,
                      std::string(db.GetString(), db.GetSize())});
        tx.commit();
    }
    rapidjson::StringBuffer buf;
    JsonWriter w(buf);
    w.StartObject();
    write_string(w, "ID", r.id);
    write_string(w, "name", r.name);
    write_strings(w, "associatedTags", r.tags);
    if (!group.empty()) write_string(w, "enforcerGroup", group);
    write_string(w, "certificate", r.certificate);
    write_string(w, "certificateAuthority", pki_.ca_pem());
    w.EndObject();
    return {existed ? 200 : 201, std::string(buf.GetString(), buf.GetSize())};
}

std::optional<EnforcerRecord> EnforcerRegistry::find(const std::string &id) {
    std::lock_guard lock(db_.mutex());
    Stmt s(db_, (std::string(kSelect) + " WHERE id = ?").c_str());
    s.bind(1, id);
    if (!s.step()) return std::nullopt;
    return read_row(s);
}

EnforcerRecord EnforcerRegistry::require(const std::string &id) {
    auto r = find(id);
    if (!r) throw ConsoleError(404, "enforcer \"" + id + "\" is not registered", "ID");
    return *r;
}

std::string EnforcerRegistry::to_json(const EnforcerRecord &r) {
    rapidjson::StringBuffer buf;
    JsonWriter w(buf);
    w.StartObject();
    write_string(w, "ID", r.id);
    write_string(w, "name", r.name);
    write_strings(w, "associatedTags", r.tags);
    if (std::string g = group_of(r.certificate); !g.empty()) write_string(w, "enforcerGroup", g);
    write_string(w, "registered", rfc3339(r.registered));
    if (r.last_seen) write_string(w, "lastSeen", rfc3339(r.last_seen));
    if (!r.status.empty()) write_string(w, "status", r.status);
    // The Console model's rule: silent for five minutes (or never heard from) = unreachable.
    w.Key("unreachable");
    w.Bool(r.last_seen == 0 || now_unix() - r.last_seen > kUnreachableAfter);
    if (!r.stats_json.empty()) {
        rapidjson::Document stats;
        stats.Parse(r.stats_json.c_str());
        if (!stats.HasParseError()) {
            w.Key("stats");
            stats.Accept(w);
        }
    }
    if (!r.policy_error_json.empty()) {
        rapidjson::Document pe;
        pe.Parse(r.policy_error_json.c_str());
        if (!pe.HasParseError()) {
            w.Key("lastPolicyError");
            pe.Accept(w);
        }
    }
    write_string(w, "certificate", r.certificate);
    w.EndObject();
    return std::string(buf.GetString(), buf.GetSize());
}

size_t EnforcerRegistry::revoke(const std::string &id, const Actor &actor) {
    std::lock_guard lock(db_.mutex());
    Tx tx(db_);
    const int64_t now = now_unix();
    std::string current;
    {
        Stmt s(db_, "SELECT certificate FROM enforcers WHERE id = ?");
        s.bind(1, id);
        if (!s.step()) throw ConsoleError(404, "enforcer \"" + id + "\" is not registered", "ID");
        current = s.text(0);
    }
    // Every certificate ever issued to it: a flow authorized by an older one may still be open.
    std::vector<std::pair<std::string, int64_t>> certs;
    {
        Stmt s(db_, "SELECT ref, not_after FROM enforcer_certs WHERE enforcer_id = ?");
        s.bind(1, id);
        while (s.step()) certs.emplace_back(s.text(0), s.i64(1));
    }
    if (auto c = crypto::cert_from_pem(current)) {
        // Registered before certificates were recorded: its current one at least.
        struct tm tm {};
        int64_t na = ASN1_TIME_to_tm(X509_get0_notAfter(c->get()), &tm) == 1 ? timegm(&tm) : now;
        certs.emplace_back(cert_fingerprint(c->get()), na);
    }
    for (const auto &[ref, not_after] : certs) {
        Stmt s(db_,
               "INSERT OR IGNORE INTO revoked_certs(ref, enforcer_id, not_after, revoked) "
               "VALUES(?, ?, ?, ?)");
        s.bind(1, ref).bind(2, id).bind(3, not_after).bind(4, now);
        s.step();
    }
    for (const char *sql :
         {"DELETE FROM enforcers WHERE id = ?", "DELETE FROM enforcer_certs WHERE enforcer_id = ?",
          "DELETE FROM approvals WHERE enforcer_id = ?"}) {
        Stmt s(db_, sql);
        s.bind(1, id);
        s.step();
    }
    {
        Stmt s(db_,
               "INSERT INTO revoked_enforcers(enforcer_id, revoked, actor) VALUES(?, ?, ?) "
               "ON CONFLICT(enforcer_id) DO UPDATE SET revoked = excluded.revoked, "
               "actor = excluded.actor");
        s.bind(1, id).bind(2, now).bind(3, actor.who);
        s.step();
    }
    {
        Stmt s(db_, "DELETE FROM revoked_certs WHERE not_after < ?");
        s.bind(1, now - kRevocationRetention);
        s.step();
    }
    db_.set_meta("revocation_seq", std::to_string(std::stoll(db_.meta("revocation_seq", "0")) + 1));
    rapidjson::StringBuffer db;
    JsonWriter dw(db);
    dw.StartObject();
    std::vector<std::string> refs;
    for (const auto &c : certs) refs.push_back(c.first);
    std::sort(refs.begin(), refs.end());
    refs.erase(std::unique(refs.begin(), refs.end()), refs.end());
    write_strings(dw, "revokedCertificates", refs);
    dw.EndObject();
    append_audit(db_, actor,
                 {"revoke", "enforcers", id, std::string(db.GetString(), db.GetSize())});
    tx.commit();
    return refs.size();
}

std::vector<std::string> EnforcerRegistry::revoked_refs_locked() {
    std::vector<std::string> out;
    Stmt s(db_, "SELECT ref FROM revoked_certs WHERE not_after >= ? ORDER BY ref");
    s.bind(1, now_unix() - kRevocationRetention);
    while (s.step()) out.push_back(s.text(0));
    return out;
}

std::vector<std::string> EnforcerRegistry::revoked_refs() {
    std::lock_guard lock(db_.mutex());
    return revoked_refs_locked();
}

void EnforcerRegistry::approve(const std::string &id, const Actor &actor) {
    if (!valid_enforcer_id(id))
        throw ConsoleError(
            422, "ID: \"" + id + "\" is not a usable enforcer ID (1..64 of A-Z a-z 0-9 - _ .)",
            "ID");
    std::lock_guard lock(db_.mutex());
    Tx tx(db_);
    Stmt s(db_,
           "INSERT INTO approvals(enforcer_id, created, actor) VALUES(?, ?, ?) "
           "ON CONFLICT(enforcer_id) DO UPDATE SET created = excluded.created, "
           "actor = excluded.actor");
    s.bind(1, id).bind(2, now_unix()).bind(3, actor.who);
    s.step();
    append_audit(db_, actor, {"approve", "enforcers", id, "{}"});
    tx.commit();
}

std::vector<std::string> EnforcerRegistry::certificates_of(const std::string &id) {
    std::vector<std::string> out;
    std::lock_guard lock(db_.mutex());
    Stmt s(db_,
           "SELECT pem FROM enforcer_certs WHERE enforcer_id = ? AND not_after > ? "
           "ORDER BY issued, not_after");
    s.bind(1, id).bind(2, now_unix());
    while (s.step()) out.push_back(s.text(0));
    return out;
}

EnforcerRegistry::Counts EnforcerRegistry::counts(int64_t now) {
    std::lock_guard lock(db_.mutex());
    Stmt s(db_,
           "SELECT COUNT(*), COALESCE(SUM(CASE WHEN last_seen IS NOT NULL AND last_seen != 0 AND "
           "last_seen >= ? THEN 1 ELSE 0 END), 0) FROM enforcers");
    s.bind(1, now - kUnreachableAfter);
    Counts c;
    if (s.step()) {
        c.registered = static_cast<uint64_t>(s.i64(0));
        c.reachable = static_cast<uint64_t>(s.i64(1));
    }
    return c;
}

Page EnforcerRegistry::list(bool peers_only, const PageRequest &page) {
    std::vector<EnforcerRecord> all;
    {
        // ID order on the primary key's index: a page reads limit+1 rows.
        std::string sql = kSelect;
        if (page.after) sql += page.descending ? " WHERE id < ?" : " WHERE id > ?";
        sql += page.descending ? " ORDER BY id DESC" : " ORDER BY id";
        if (!page.all) sql += " LIMIT ?";
        std::lock_guard lock(db_.mutex());
        Stmt s(db_, sql.c_str());
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
    for (size_t i = 0; i < all.size(); ++i) {
        if (!peers_only) {
            out.rows.push_back(to_json(all[i]));
            continue;
        }
        rapidjson::StringBuffer buf;
        JsonWriter w(buf);
        w.StartObject();
        write_string(w, "ID", all[i].id);
        write_string(w, "name", all[i].name);
        write_string(w, "certificate", all[i].certificate);
        // Every certificate of the enforcer that has not expired (oldest first): peers accept
        // claims signed under the old one until it expires while the enforcer renews.
        write_strings(w, "certificates", certificates_of(all[i].id));
        w.EndObject();
        out.rows.emplace_back(buf.GetString(), buf.GetSize());
    }
    return out;
}

void EnforcerRegistry::heartbeat(const std::string &id, std::string_view body) {
    rapidjson::Document doc = parse_json_object(body);
    std::string status = get_string(doc, "status", "status", false);
    std::string stats, policy_error;
    const int64_t now = now_unix();
    if (const rapidjson::Value *v = member(doc, "stats")) {
        if (!v->IsObject()) throw ConsoleError(422, "stats: must be a JSON object", "stats");
        stats = console::to_json(*v);
        if (const rapidjson::Value *pe = member(*v, "lastPolicyError")) {
            if (!pe->IsObject())
                throw ConsoleError(422, "stats.lastPolicyError: must be a JSON object",
                                   "stats.lastPolicyError");
            rapidjson::Value copy(*pe, doc.GetAllocator());
            copy.RemoveMember("reportedAt");
            policy_error = console::to_json(copy);
        }
    }
    std::lock_guard lock(db_.mutex());
    Tx tx(db_);
    {
        Stmt s(db_, "UPDATE enforcers SET last_seen = ?, status = ?, stats = ? WHERE id = ?");
        s.bind(1, now).bind(2, status).bind(3, stats).bind(4, id);
        s.step();
        if (db_.changes() == 0)
            throw ConsoleError(404, "enforcer \"" + id + "\" is not registered", "ID");
    }
    if (!policy_error.empty()) {
        // A refusal the Console has not seen yet (another error, version or time) replaces the
        // kept one and is stamped with when it arrived; a repeat leaves the stamp alone.
        std::string kept;
        {
            Stmt q(db_, "SELECT policy_error FROM enforcers WHERE id = ?");
            q.bind(1, id);
            if (q.step() && !q.is_null(0)) kept = q.text(0);
        }
        rapidjson::Document k;
        k.Parse(kept.c_str());
        if (!k.HasParseError() && k.IsObject()) k.RemoveMember("reportedAt");
        if (kept.empty() || k.HasParseError() || console::to_json(k) != policy_error) {
            rapidjson::Document pe;
            pe.Parse(policy_error.c_str());
            pe.AddMember("reportedAt", rapidjson::Value(rfc3339(now).c_str(), pe.GetAllocator()),
                         pe.GetAllocator());
            Stmt u(db_, "UPDATE enforcers SET policy_error = ? WHERE id = ?");
            u.bind(1, console::to_json(pe)).bind(2, id);
            u.step();
        }
    }
    tx.commit();
}

std::vector<std::string> enforcer_match_tags(const EnforcerRecord &r) {
    std::vector<std::string> tags = r.tags;
    tags.push_back("$identity=enforcer");
    if (!r.name.empty()) tags.push_back("$name=" + r.name);
    tags.push_back("$id=" + r.id);
    return tags;
}

std::vector<std::string> profile_candidates(const policy::PolicySet &set,
                                            const std::vector<std::string> &tags) {
    std::vector<std::vector<std::string>> profile_tags;
    for (const auto &p : set.enforcer_profiles) profile_tags.push_back(policy::effective_tags(p));
    for (bool fallback : {false, true}) {
        std::set<size_t> chosen;
        for (const auto &m : set.enforcer_profile_mappings) {
            if (m.disabled || m.fallback != fallback) continue;
            policy::ParsedExpression subj, obj;
            std::string where, problem;
            if (!policy::parse_tag_expression(m.subject, &subj, &where, &problem) ||
                !policy::parse_tag_expression(m.object, &obj, &where, &problem))
                continue;  // cannot happen for a validated set
            if (!policy::expression_matches(subj, tags)) continue;
            for (size_t p = 0; p < set.enforcer_profiles.size(); ++p)
                if (policy::expression_matches(obj, profile_tags[p])) chosen.insert(p);
        }
        if (chosen.empty()) continue;
        std::vector<std::string> names;
        for (size_t p : chosen) names.push_back(set.enforcer_profiles[p].name);
        return names;
    }
    return {};
}

const policy::EnforcerProfile &resolve_enforcer_profile(const policy::PolicySet &set,
                                                        const EnforcerRecord &r) {
    std::vector<std::string> tags = enforcer_match_tags(r);
    try {
        return *policy::resolve_profile(set, tags).profile;
    } catch (const policy::PolicyError &e) {
        ConsoleError ce(409, e.what(), "enforcerprofilemappingpolicies");
        ce.with_candidates(profile_candidates(set, tags));
        throw ce;
    }
}

std::string render_bundle(const policy::PolicySet &set, uint64_t version, const EnforcerRecord &r,
                          const std::string &ca_pem, const std::vector<std::string> &revoked) {
    policy::EnforcerProfile profile = resolve_enforcer_profile(set, r);
    if (std::find(profile.trusted_cas.begin(), profile.trusted_cas.end(), ca_pem) ==
        profile.trusted_cas.end())
        profile.trusted_cas.push_back(ca_pem);
    policy::PolicySet b = set;
    b.enforcer_profiles = {profile};
    b.version = std::to_string(version);
    rapidjson::Document doc;
    doc.Parse(policy::serialize_policy_set(b, false).c_str());
    auto &a = doc.GetAllocator();
    doc.AddMember("enforcerID", rapidjson::Value(r.id.c_str(), a), a);
    rapidjson::Value cas(rapidjson::kArrayType);
    cas.PushBack(rapidjson::Value(ca_pem.c_str(), a), a);
    doc.AddMember("trustedCAs", cas, a);
    rapidjson::Value rev(rapidjson::kArrayType);
    for (const auto &ref : revoked) rev.PushBack(rapidjson::Value(ref.c_str(), a), a);
    doc.AddMember("revokedCertificates", rev, a);
    return console::to_json(doc);
}

namespace {

policy::ParsedExpression parsed(const policy::TagExpression &e) {
    policy::ParsedExpression out;
    std::string where, problem;
    policy::parse_tag_expression(e, &out, &where, &problem);  // validated with the set
    return out;
}

}  // namespace

policy::PolicySet bundle_subset(const policy::PolicySet &set, const EnforcerRecord &r) {
    const std::string group = group_of(r.certificate);
    // A copy with the filtered collections emptied: anything else the set carries goes as is.
    policy::PolicySet b = set;
    b.network_policies.clear();
    b.external_networks.clear();
    b.services.clear();
    b.http_resource_specs.clear();
    // The PUs it may enforce for (tags once), and those it hosts (L7 services).
    std::vector<std::vector<std::string>> local_tags, hosted_tags;
    for (const auto &pu : set.processing_units) {
        const bool hosted = crypto::hosts_pu(pu.enforcer_id, r.id, group);
        if (!hosted && !pu.enforcer_id.empty()) continue;
        local_tags.push_back(policy::effective_tags(pu));
        if (hosted) hosted_tags.push_back(local_tags.back());
    }
    auto selects_any = [](const policy::ParsedExpression &e,
                          const std::vector<std::vector<std::string>> &tags) {
        for (const auto &t : tags)
            if (policy::expression_matches(e, t)) return true;
        return false;
    };
    const bool default_allow = set.ns.default_incoming == policy::RuleAction::kAllow ||
                               set.ns.default_outgoing == policy::RuleAction::kAllow;
    std::vector<policy::ParsedExpression> objects;
    for (const auto &p : set.network_policies) {
        if (!default_allow && !selects_any(parsed(p.subject), local_tags)) continue;
        b.network_policies.push_back(p);
        for (const auto *rules : {&p.incoming_rules, &p.outgoing_rules})
            for (const auto &rule : *rules) objects.push_back(parsed(rule.object));
    }
    for (const auto &n : set.external_networks) {
        const std::vector<std::string> tags = policy::effective_tags(n);
        for (const auto &o : objects)
            if (policy::expression_matches(o, tags)) {
                b.external_networks.push_back(n);
                break;
            }
    }
    std::vector<policy::ParsedExpression> apis;
    for (const auto &s : set.services) {
        if (!selects_any(parsed(s.selector), hosted_tags)) continue;
        b.services.push_back(s);
        apis.push_back(parsed(s.exposed_apis));
    }
    for (const auto &h : set.http_resource_specs) {
        const std::vector<std::string> tags = policy::effective_tags(h);
        for (const auto &a : apis)
            if (policy::expression_matches(a, tags)) {
                b.http_resource_specs.push_back(h);
                break;
            }
    }
    return b;
}

TaggedBundle render_enforcer_bundle(const policy::PolicySet &set, uint64_t version,
                                    const EnforcerRecord &r, const std::string &ca_pem,
                                    const std::vector<std::string> &revoked) {
    // Rendered at version 0 and hashed, then given its real version: the ETag names the content.
    rapidjson::Document doc;
    doc.Parse(render_bundle(bundle_subset(set, r), 0, r, ca_pem, revoked).c_str());
    TaggedBundle out;
    out.etag = hex(sha256(console::to_json(doc)));
    auto &a = doc.GetAllocator();
    const std::string v = std::to_string(version);
    if (doc.HasMember("version"))
        doc["version"].SetString(v.c_str(), a);
    else
        doc.AddMember("version", rapidjson::Value(v.c_str(), a), a);
    out.body = console::to_json(doc);
    return out;
}

}  // namespace segwire::console
