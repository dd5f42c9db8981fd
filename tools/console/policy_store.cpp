#include "tools/console/policy_store.hpp"

#include <algorithm>
#include <map>
#include <optional>
#include <type_traits>
#include <vector>

#include "tools/console/db.hpp"
#include "tools/console/error.hpp"
#include "tools/console/util.hpp"

namespace segwire::console {
namespace {

using policy::PolicySet;

constexpr Collection kAll[] = {Collection::kProcessingUnits,  Collection::kNetworkPolicies,
                               Collection::kExternalNetworks, Collection::kEnforcerProfiles,
                               Collection::kMappings,         Collection::kServices,
                               Collection::kHttpResourceSpecs};
constexpr const char *kNamespaceKind = "namespace";

const char *kind_label(Collection c) {
    switch (c) {
        case Collection::kProcessingUnits:
            return "processingunit";
        case Collection::kNetworkPolicies:
            return "networkrulesetpolicy";
        case Collection::kExternalNetworks:
            return "externalnetwork";
        case Collection::kEnforcerProfiles:
            return "enforcerprofile";
        case Collection::kMappings:
            return "enforcerprofilemappingpolicy";
        case Collection::kServices:
            return "service";
        case Collection::kHttpResourceSpecs:
            return "httpresourcespec";
    }
    return "?";
}

// Calls f with the vector of `s` that holds collection c.
template <typename Set, typename F>
decltype(auto) with_vec(Set &s, Collection c, F &&f) {
    switch (c) {
        case Collection::kProcessingUnits:
            return f(s.processing_units);
        case Collection::kNetworkPolicies:
            return f(s.network_policies);
        case Collection::kExternalNetworks:
            return f(s.external_networks);
        case Collection::kEnforcerProfiles:
            return f(s.enforcer_profiles);
        case Collection::kServices:
            return f(s.services);
        case Collection::kHttpResourceSpecs:
            return f(s.http_resource_specs);
        case Collection::kMappings:
            break;
    }
    return f(s.enforcer_profile_mappings);
}

// The vector of `s` holding objects of type T (the other direction of with_vec).
template <typename T>
std::vector<T> &vec_of(PolicySet &s) {
    if constexpr (std::is_same_v<T, policy::ProcessingUnit>)
        return s.processing_units;
    else if constexpr (std::is_same_v<T, policy::NetworkRuleSetPolicy>)
        return s.network_policies;
    else if constexpr (std::is_same_v<T, policy::ExternalNetwork>)
        return s.external_networks;
    else if constexpr (std::is_same_v<T, policy::EnforcerProfile>)
        return s.enforcer_profiles;
    else if constexpr (std::is_same_v<T, policy::Service>)
        return s.services;
    else if constexpr (std::is_same_v<T, policy::HttpResourceSpec>)
        return s.http_resource_specs;
    else
        return s.enforcer_profile_mappings;
}

template <typename V>
using elem_t = typename std::decay_t<V>::value_type;

// The model's own serialisation of one object (so stored JSON is always canonical).
template <typename T>
std::string one_json(Collection c, const T &obj) {
    PolicySet tmp;
    with_vec(tmp, c, [&](auto &v) {
        if constexpr (std::is_same_v<typename std::decay_t<decltype(v)>::value_type, T>)
            v.push_back(obj);
    });
    rapidjson::Document doc;
    doc.Parse(policy::serialize_policy_set(tmp, false).c_str());
    return to_json(doc[collection_name(c)][0]);
}

std::string namespace_json(const policy::Namespace &ns) {
    PolicySet tmp;
    tmp.ns = ns;
    rapidjson::Document doc;
    doc.Parse(policy::serialize_policy_set(tmp, false).c_str());
    return to_json(doc["namespace"]);
}

// A body's "revision" (the revision its writer read; not a field of the object), if any.
std::optional<uint64_t> body_revision(std::string_view body) {
    rapidjson::Document doc = parse_json_object(body);
    const rapidjson::Value *v = member(doc, "revision");
    if (!v) return std::nullopt;
    if (!v->IsUint64())
        throw ConsoleError(422, "revision: must be the non-negative integer a GET returned",
                           "revision");
    return v->GetUint64();
}

// Parses one object (or the namespace) by wrapping it in a bundle document: the model's parser
// is the only JSON reader of policy objects, so field names and errors cannot drift. A
// "revision" member is not part of the object and is dropped first.
PolicySet parse_wrapped(const std::string &key, std::string_view body, bool array) {
    rapidjson::Document doc = parse_json_object(body);  // 400 for malformed JSON
    doc.RemoveMember("revision");
    std::string text =
        "{\"" + key + "\":" + (array ? "[" : "") + to_json(doc) + (array ? "]" : "") + "}";
    try {
        return policy::parse_policy_set(text);
    } catch (const policy::PolicyError &e) {
        throw ConsoleError::from_policy(e);
    }
}

// Fields only the enforcer writes (services.json's "upstreams") are not the Console's to store.
void refuse_enforcer_fields(Collection c, const PolicySet &one) {
    if (c == Collection::kServices && !one.services.empty() && !one.services[0].upstreams.empty())
        throw ConsoleError(422,
                           "upstreams: written by the enforcer for its proxy from the PUs the "
                           "selector matches; not part of the stored service",
                           "upstreams");
}

std::string stable_id(Collection c, const std::string &name) {
    return hex(sha256(std::string(collection_name(c)) + "/" + name)).substr(0, 24);
}

void validate_or_throw(const PolicySet &s) {
    try {
        policy::validate(s);
    } catch (const policy::PolicyError &e) {
        throw ConsoleError::from_policy(e);
    }
}

using SeedMap = std::map<std::pair<std::string, std::string>, std::string>;

// Every object of a set as canonical JSON, by (kind, id), in the set's order (the order rows are
// stored and read back in); the namespace is (namespace, namespace) and comes first.
std::vector<std::pair<std::pair<std::string, std::string>, std::string>> object_jsons(
    const PolicySet &set) {
    std::vector<std::pair<std::pair<std::string, std::string>, std::string>> out;
    out.push_back({{kNamespaceKind, kNamespaceKind}, namespace_json(set.ns)});
    for (Collection c : kAll)
        with_vec(set, c, [&](const auto &vec) {
            for (const auto &o : vec) out.push_back({{collection_name(c), o.id}, one_json(c, o)});
        });
    return out;
}

// `json` (one object) with "revision": rev added.
std::string with_revision(const std::string &json, uint64_t rev) {
    rapidjson::Document d;
    d.Parse(json.c_str());
    d.AddMember("revision", rev, d.GetAllocator());
    return to_json(d);
}

}  // namespace

bool collection_from_name(std::string_view name, Collection *out) {
    for (Collection c : kAll)
        if (name == collection_name(c)) {
            *out = c;
            return true;
        }
    return false;
}

const char *collection_name(Collection c) {
    switch (c) {
        case Collection::kProcessingUnits:
            return "processingunits";
        case Collection::kNetworkPolicies:
            return "networkrulesetpolicies";
        case Collection::kExternalNetworks:
            return "externalnetworks";
        case Collection::kEnforcerProfiles:
            return "enforcerprofiles";
        case Collection::kMappings:
            return "enforcerprofilemappingpolicies";
        case Collection::kServices:
            return "services";
        case Collection::kHttpResourceSpecs:
            return "httpresourcespecs";
    }
    return "?";
}

// The persisted set, its version and revisions (the caller holds the database).
PolicyStore::Loaded PolicyStore::load(Db &db) {
    // Rebuild one bundle document from the rows (in insertion order) and parse it with the model.
    std::map<std::string, std::vector<std::string>> rows;
    std::string ns;
    {
        Stmt s(db, "SELECT kind, json FROM objects ORDER BY rowid");
        while (s.step()) {
            if (s.text(0) == kNamespaceKind)
                ns = s.text(1);
            else
                rows[s.text(0)].push_back(s.text(1));
        }
    }
    std::string doc = "{";
    if (!ns.empty()) doc += "\"namespace\":" + ns;
    for (const auto &[kind, objs] : rows) {
        if (doc.size() > 1) doc += ",";
        doc += "\"" + kind + "\":[";
        for (size_t i = 0; i < objs.size(); ++i) doc += (i ? "," : "") + objs[i];
        doc += "]";
    }
    doc += "}";
    Loaded out;
    try {
        out.set = policy::parse_policy_set(doc);
    } catch (const policy::PolicyError &e) {
        throw ConsoleError(500, std::string("stored policy objects do not validate: ") + e.what());
    }
    out.version = std::stoull(db.meta("policy_version", "1"));
    out.set.version = std::to_string(out.version);
    {
        Stmt s(db, "SELECT kind, id, revision FROM objects");
        while (s.step())
            out.revisions[{s.text(0), s.text(1)}] = s.i64(2) > 0 ? s.i64(2) : out.version;
    }
    return out;
}

PolicyStore::PolicyStore(Db &db) : db_(db) {
    std::lock_guard lock(db_.mutex());
    Loaded l = load(db_);
    version_ = l.version;
    revisions_ = std::move(l.revisions);
    current_ = std::make_shared<const PolicySet>(std::move(l.set));
}

bool PolicyStore::refresh() {
    std::lock_guard wl(write_mu_);
    return refresh_locked();
}

bool PolicyStore::refresh_locked() {
    Loaded l;
    {
        std::lock_guard dblock(db_.mutex());
        const uint64_t stored = std::stoull(db_.meta("policy_version", "1"));
        {
            std::lock_guard lock(mu_);
            if (stored == version_) return false;
        }
        // Under the write lock of every replica (Tx): the objects and the version read together.
        Tx tx(db_);
        l = load(db_);
    }
    std::lock_guard lock(mu_);
    if (l.version <= version_) return false;
    current_ = std::make_shared<const PolicySet>(std::move(l.set));
    revisions_ = std::move(l.revisions);
    version_ = l.version;
    cv_.notify_all();
    return true;
}

void PolicyStore::check_stored_version(uint64_t expected) {
    // Another replica committed a version after this one's refresh (between refresh_locked and
    // this transaction): building on the stale set would undo its change.
    const uint64_t stored = std::stoull(db_.meta("policy_version", "1"));
    if (stored != expected)
        throw ConsoleError(409,
                           "the policy changed through another Console replica at the same time "
                           "(version " +
                               std::to_string(stored) + "); read it again and reapply your change",
                           "If-Match");
}

uint64_t PolicyStore::revision_of(const Key &k) const {
    std::lock_guard lock(mu_);
    auto it = revisions_.find(k);
    return it == revisions_.end() ? 0 : it->second;
}

void PolicyStore::check_revision(const Key &k, const std::string &label,
                                 std::optional<uint64_t> if_match, std::string_view body) const {
    std::optional<uint64_t> expected = if_match ? if_match : body_revision(body);
    if (!expected) return;
    uint64_t cur = revision_of(k);
    if (*expected != cur)
        throw ConsoleError(409,
                           label + " is at revision " + std::to_string(cur) + ", not " +
                               std::to_string(*expected) +
                               " (If-Match): it changed since you read it; read it again and "
                               "reapply your change",
                           "If-Match");
}

PolicyStore::Snapshot PolicyStore::snapshot() const {
    std::lock_guard lock(mu_);
    return {current_, version_};
}

PolicyStore::Snapshot PolicyStore::wait_for_change(uint64_t known,
                                                   std::chrono::milliseconds timeout) const {
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, timeout, [&] { return version_ != known || shutdown_; });
    return {current_, version_};
}

void PolicyStore::shutdown() {
    std::lock_guard lock(mu_);
    shutdown_ = true;
    cv_.notify_all();
}

void PolicyStore::commit_locked(PolicySet cand, const void *seeds_ptr, const Actor &actor) {
    const auto *seeds = static_cast<const SeedMap *>(seeds_ptr);
    uint64_t next;
    std::map<Key, uint64_t> revs;
    {
        std::lock_guard lock(mu_);
        next = version_ + 1;
        revs = revisions_;
    }
    // What changed, for the revisions and the audit log.
    auto after = object_jsons(cand);
    std::map<Key, std::string> before, after_map;
    for (auto &[key, json] : object_jsons(*snapshot().set)) before[key] = std::move(json);
    for (const auto &[key, json] : after) after_map[key] = json;
    std::vector<AuditEntry> audit;
    std::map<Key, uint64_t> new_revs;
    for (const auto &[key, json] : after) {
        auto it = before.find(key);
        bool same = it != before.end() && it->second == json;
        uint64_t rev = same && revs.count(key) ? revs[key] : next;
        new_revs[key] = rev;
        if (same) continue;
        bool ns = key.first == kNamespaceKind;
        audit.push_back({ns                   ? "put"
                         : it == before.end() ? "create"
                                              : "replace",
                         key.first, ns ? "" : key.second, json, static_cast<int64_t>(rev)});
    }
    for (const auto &[key, json] : before)
        if (!after_map.count(key)) audit.push_back({"delete", key.first, key.second, json, 0});
    {
        std::lock_guard dblock(db_.mutex());
        Tx tx(db_);
        check_stored_version(next - 1);
        db_.exec("DELETE FROM objects");
        Stmt ins(db_, "INSERT INTO objects(kind, id, json, revision) VALUES(?, ?, ?, ?)");
        for (const auto &[key, json] : after) {
            ins.reset();
            ins.bind(1, key.first).bind(2, key.second).bind(3, json);
            ins.bind(4, static_cast<int64_t>(new_revs[key]));
            ins.step();
        }
        if (seeds) {
            db_.exec("DELETE FROM seeds");
            Stmt s(db_, "INSERT INTO seeds(kind, id, json) VALUES(?, ?, ?)");
            for (const auto &[key, json] : *seeds) {
                s.reset();
                s.bind(1, key.first).bind(2, key.second).bind(3, json);
                s.step();
            }
        }
        for (const auto &e : audit) append_audit(db_, actor, e);
        db_.set_meta("policy_version", std::to_string(next));
        db_.notify(kPolicyChannel, std::to_string(next));
        tx.commit();
    }
    cand.version = std::to_string(next);
    std::lock_guard lock(mu_);
    current_ = std::make_shared<const PolicySet>(std::move(cand));
    revisions_ = std::move(new_revs);
    version_ = next;
    cv_.notify_all();
}

bool PolicyStore::bump_version(const std::function<bool()> &in_tx) {
    std::lock_guard wl(write_mu_);
    refresh_locked();
    uint64_t next;
    {
        std::lock_guard lock(mu_);
        next = version_ + 1;
    }
    {
        std::lock_guard dblock(db_.mutex());
        Tx tx(db_);
        check_stored_version(next - 1);
        if (!in_tx()) return false;
        db_.set_meta("policy_version", std::to_string(next));
        db_.notify(kPolicyChannel, std::to_string(next));
        tx.commit();
    }
    std::lock_guard lock(mu_);
    auto set = std::make_shared<PolicySet>(*current_);
    set->version = std::to_string(next);
    current_ = std::move(set);
    version_ = next;
    cv_.notify_all();
    return true;
}

size_t PolicyStore::load_dir(const std::string &dir, const Actor &actor) {
    PolicySet d;
    try {
        d = policy::load_policy_dir(dir);
    } catch (const policy::PolicyError &e) {
        throw ConsoleError::from_policy(e);
    }
    for (Collection c : kAll)
        with_vec(d, c, [&](auto &vec) {
            for (auto &o : vec)
                if (o.id.empty()) o.id = stable_id(c, o.name);
        });

    std::lock_guard wl(write_mu_);
    refresh_locked();
    PolicySet cand = *snapshot().set;
    SeedMap old_seeds, new_seeds;
    {
        std::lock_guard dblock(db_.mutex());
        Stmt s(db_, "SELECT kind, id, json FROM seeds");
        while (s.step()) old_seeds[{s.text(0), s.text(1)}] = s.text(2);
    }
    size_t changed = 0;
    for (Collection c : kAll) {
        std::string kind = collection_name(c);
        with_vec(d, c, [&](auto &dvec) {
            auto &cvec = vec_of<elem_t<decltype(dvec)>>(cand);
            for (const auto &o : dvec) {
                std::string json = one_json(c, o);
                new_seeds[{kind, o.id}] = json;
                auto it = old_seeds.find({kind, o.id});
                if (it != old_seeds.end() && it->second == json) continue;  // file unchanged
                ++changed;
                bool found = false;
                for (auto &x : cvec)
                    if (x.id == o.id) {
                        x = o;
                        found = true;
                    }
                if (!found) cvec.push_back(o);
            }
            // Objects the files no longer define: gone too, unless the API changed them.
            for (const auto &[key, json] : old_seeds) {
                if (key.first != kind || new_seeds.count(key)) continue;
                for (size_t i = 0; i < cvec.size(); ++i)
                    if (cvec[i].id == key.second && one_json(c, cvec[i]) == json) {
                        cvec.erase(cvec.begin() + static_cast<std::ptrdiff_t>(i));
                        ++changed;
                        break;
                    }
            }
        });
    }
    if (!(d.ns == policy::Namespace{})) {
        std::string json = namespace_json(d.ns);
        new_seeds[{kNamespaceKind, kNamespaceKind}] = json;
        auto it = old_seeds.find({kNamespaceKind, kNamespaceKind});
        if (it == old_seeds.end() || it->second != json) {
            cand.ns = d.ns;
            ++changed;
        }
    }
    try {
        policy::validate(cand);
    } catch (const policy::PolicyError &e) {
        throw ConsoleError::from_policy(
            e, 422, " (after merging " + dir + " with the objects created through the API)");
    }
    if (changed || new_seeds != old_seeds) commit_locked(std::move(cand), &new_seeds, actor);
    return changed;
}

Page PolicyStore::list(Collection c, const PageRequest &page) const {
    auto snap = snapshot();
    rapidjson::Document doc;
    doc.Parse(policy::serialize_policy_set(*snap.set, false).c_str());
    rapidjson::Value &arr = doc[collection_name(c)];
    // The policy set is in memory: a page sorts it by ID and slices (collections hold what
    // operators write, thousands at most, not the millions of rows reports reach).
    std::vector<std::pair<std::string, rapidjson::Value *>> sorted;
    for (auto &o : arr.GetArray()) {
        const rapidjson::Value *id = member(o, "ID");
        sorted.emplace_back(id && id->IsString() ? id->GetString() : "", &o);
    }
    std::sort(sorted.begin(), sorted.end(), [&](const auto &a, const auto &b) {
        return page.descending ? a.first > b.first : a.first < b.first;
    });
    Page out;
    std::string last;
    for (auto &[id, o] : sorted) {
        if (page.after && (page.descending ? id >= *page.after : id <= *page.after)) continue;
        if (!page.all && static_cast<int64_t>(out.rows.size()) == page.limit) {
            out.next_key = last;
            break;
        }
        o->AddMember("revision", revision_of({collection_name(c), id}), doc.GetAllocator());
        out.rows.push_back(to_json(*o));
        last = id;
    }
    return out;
}

std::string PolicyStore::get(Collection c, const std::string &id, uint64_t *revision) const {
    auto snap = snapshot();
    std::string out;
    with_vec(*snap.set, c, [&](const auto &vec) {
        for (const auto &o : vec)
            if (o.id == id) out = one_json(c, o);
    });
    if (out.empty())
        throw ConsoleError(404, std::string(kind_label(c)) + " \"" + id + "\" not found", "ID");
    uint64_t rev = revision_of({collection_name(c), id});
    if (revision) *revision = rev;
    return with_revision(out, rev);
}

std::string PolicyStore::create(Collection c, std::string_view body, const Actor &actor) {
    PolicySet one = parse_wrapped(collection_name(c), body, true);
    refuse_enforcer_fields(c, one);
    std::lock_guard wl(write_mu_);
    refresh_locked();
    PolicySet cand = *snapshot().set;
    std::string out;
    with_vec(one, c, [&](auto &ovec) {
        auto o = ovec.at(0);
        if (o.id.empty()) o.id = random_hex(12);
        auto &cvec = vec_of<elem_t<decltype(ovec)>>(cand);
        for (const auto &x : cvec)
            if (x.id == o.id)
                throw ConsoleError(
                    409, std::string(kind_label(c)) + " \"" + o.id + "\" already exists", "ID");
        cvec.push_back(o);
        out = one_json(c, o);
    });
    validate_or_throw(cand);
    std::string id;
    {
        rapidjson::Document d;
        d.Parse(out.c_str());
        id = d["ID"].GetString();
    }
    commit_locked(std::move(cand), nullptr, actor);
    return with_revision(out, revision_of({collection_name(c), id}));
}

std::string PolicyStore::replace(Collection c, const std::string &id, std::string_view body,
                                 const Actor &actor, std::optional<uint64_t> if_match) {
    PolicySet one = parse_wrapped(collection_name(c), body, true);
    refuse_enforcer_fields(c, one);
    std::lock_guard wl(write_mu_);
    refresh_locked();
    PolicySet cand = *snapshot().set;
    std::string out;
    with_vec(one, c, [&](auto &ovec) {
        auto o = ovec.at(0);
        if (!o.id.empty() && o.id != id)
            throw ConsoleError(422, "ID: \"" + o.id + "\" does not match the URL's \"" + id + "\"",
                               "ID");
        o.id = id;
        auto &cvec = vec_of<elem_t<decltype(ovec)>>(cand);
        bool found = false;
        for (auto &x : cvec)
            if (x.id == id) {
                x = o;
                found = true;
            }
        if (!found)
            throw ConsoleError(404, std::string(kind_label(c)) + " \"" + id + "\" not found", "ID");
        out = one_json(c, o);
    });
    check_revision({collection_name(c), id}, std::string(kind_label(c)) + " \"" + id + "\"",
                   if_match, body);
    validate_or_throw(cand);
    commit_locked(std::move(cand), nullptr, actor);
    return with_revision(out, revision_of({collection_name(c), id}));
}

void PolicyStore::remove(Collection c, const std::string &id, const Actor &actor,
                         std::optional<uint64_t> if_match) {
    std::lock_guard wl(write_mu_);
    refresh_locked();
    PolicySet cand = *snapshot().set;
    with_vec(cand, c, [&](auto &cvec) {
        for (size_t i = 0; i < cvec.size(); ++i)
            if (cvec[i].id == id) {
                cvec.erase(cvec.begin() + static_cast<std::ptrdiff_t>(i));
                return;
            }
        throw ConsoleError(404, std::string(kind_label(c)) + " \"" + id + "\" not found", "ID");
    });
    check_revision({collection_name(c), id}, std::string(kind_label(c)) + " \"" + id + "\"",
                   if_match, "{}");
    commit_locked(std::move(cand), nullptr, actor);
}

std::string PolicyStore::get_namespace(uint64_t *revision) const {
    uint64_t rev = revision_of({kNamespaceKind, kNamespaceKind});
    if (revision) *revision = rev;
    return with_revision(namespace_json(snapshot().set->ns), rev);
}

std::string PolicyStore::put_namespace(std::string_view body, const Actor &actor,
                                       std::optional<uint64_t> if_match) {
    PolicySet one = parse_wrapped("namespace", body, false);
    std::lock_guard wl(write_mu_);
    refresh_locked();
    check_revision({kNamespaceKind, kNamespaceKind}, "the namespace", if_match, body);
    PolicySet cand = *snapshot().set;
    cand.ns = one.ns;
    validate_or_throw(cand);
    commit_locked(std::move(cand), nullptr, actor);
    return with_revision(namespace_json(one.ns), revision_of({kNamespaceKind, kNamespaceKind}));
}

}  // namespace segwire::console
