// The Console's policy objects: the current validated PolicySet (config/policy's model), its
// version, and SQLite persistence. Every change — CRUD call, --policy directory load, SIGHUP
// reload — builds a candidate set, validates the whole set with policy::validate (so errors name
// object, field and reason exactly as the enforcer would), persists it in one transaction, then
// publishes it with a new version and wakes the long-polls.
//
// Directory semantics: the directory seeds objects. A reload applies what changed in the files
// since the last load (a file edit wins over an API edit of the same object); objects the files
// did not change keep their API edits; an object removed from the files is deleted unless the API
// changed it since. Objects without an ID get a stable one derived from kind and name.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "config/policy/model.hpp"
#include "tools/console/audit.hpp"
#include "tools/console/paging.hpp"

namespace segwire::console {

class Db;

// The PostgreSQL notification channel of policy versions (payload: the new version).
constexpr const char *kPolicyChannel = "segwire_policy";

enum class Collection : uint8_t {
    kProcessingUnits,
    kNetworkPolicies,
    kExternalNetworks,
    kEnforcerProfiles,
    kMappings,
    kServices,           // services (L7, docs/l7.md)
    kHttpResourceSpecs,  // httpresourcespecs
};

// "processingunits" → kProcessingUnits, … ; false for anything else.
bool collection_from_name(std::string_view name, Collection *out);
const char *collection_name(Collection c);

class PolicyStore {
  public:
    explicit PolicyStore(Db &db);  // loads the persisted set (ConsoleError 500 if it is corrupt)

    struct Snapshot {
        std::shared_ptr<const policy::PolicySet> set;
        uint64_t version = 0;
    };
    Snapshot snapshot() const;

    // Blocks until the version differs from `known`, the timeout passes or shutdown() is called;
    // returns the snapshot at that moment.
    Snapshot wait_for_change(uint64_t known, std::chrono::milliseconds timeout) const;
    void shutdown();

    // Returns how many objects changed. Throws ConsoleError 422 (object/field/reason; the message
    // names the file) and leaves the current set untouched.
    size_t load_dir(const std::string &dir, const Actor &actor = Actor::system("policy-directory"));

    // CRUD; bodies and results are JSON text in the model's field names, plus "revision" in
    // results: the policy version at which the object last changed. A "revision" in a body is
    // not part of the object: it is the revision the writer read (used when no If-Match is given).
    // Every change is recorded in the audit log as `actor`'s, in the same transaction.
    // `if_match`: the revision the writer read; a write against another revision is refused.
    // Throws ConsoleError: 400 bad JSON or If-Match, 404 unknown ID, 409 duplicate ID or stale
    // revision (field "If-Match"), 422 validation.
    // One page of a collection in ID order (each object with its revision).
    Page list(Collection c, const PageRequest &page) const;
    std::string get(Collection c, const std::string &id, uint64_t *revision = nullptr) const;
    std::string create(Collection c, std::string_view body,
                       const Actor &actor = Actor::system("api"));
    std::string replace(Collection c, const std::string &id, std::string_view body,
                        const Actor &actor = Actor::system("api"),
                        std::optional<uint64_t> if_match = std::nullopt);
    void remove(Collection c, const std::string &id, const Actor &actor = Actor::system("api"),
                std::optional<uint64_t> if_match = std::nullopt);
    std::string get_namespace(uint64_t *revision = nullptr) const;
    std::string put_namespace(std::string_view body, const Actor &actor = Actor::system("api"),
                              std::optional<uint64_t> if_match = std::nullopt);

    // A new version with the same objects: what every bundle carries besides the objects (the
    // revocation list) changed. `in_tx` runs inside the version's transaction, with the database
    // mutex held, so the change and its version are one commit; it returns false when nothing
    // changed after all (no new version then). Wakes the long-polls.
    bool bump_version(const std::function<bool()> &in_tx);

    // Replicas: reloads the set when the stored version differs from this process's (a write
    // through another replica) and wakes the long-polls. True when it did. Called on every
    // notification of kPolicyChannel, and before every change.
    bool refresh();

  private:
    using Key = std::pair<std::string, std::string>;  // (kind, id); the namespace is ns/ns
    struct Loaded {
        policy::PolicySet set;
        std::map<Key, uint64_t> revisions;
        uint64_t version = 0;
    };
    static Loaded load(Db &db);
    bool refresh_locked();                         // write_mu_ held
    void check_stored_version(uint64_t expected);  // in the change's transaction
    void commit_locked(policy::PolicySet cand, const void *seeds, const Actor &actor);
    uint64_t revision_of(const Key &k) const;
    void check_revision(const Key &k, const std::string &label, std::optional<uint64_t> if_match,
                        std::string_view body) const;

    Db &db_;
    std::mutex write_mu_;  // serialises changes: validate + persist + publish is one step
    mutable std::mutex mu_;
    mutable std::condition_variable cv_;
    std::shared_ptr<const policy::PolicySet> current_;
    std::map<Key, uint64_t> revisions_;  // guarded by mu_, changed with current_
    uint64_t version_ = 0;
    bool shutdown_ = false;
};

}  // namespace segwire::console
