// The audit trail: every write (policy objects, namespace, directory reloads, app credentials,
// enforcer registrations, approvals and deletions) appends one row saying who, when and what, in
// the same transaction as the write itself. The table is append-only: SQLite triggers refuse any
// UPDATE or DELETE of it.
#pragma once

#include <cstdint>
#include <string>

#include "tools/console/paging.hpp"

namespace segwire::console {

class Db;
struct Caller;

// Who made a change.
struct Actor {
    std::string who;  // token subject (credential ID, ARN, …), or "cli:<user>", "policy-directory"
    std::string name;   // app credential name when known
    std::string role;   // admin | reader | enforcer | operator (CLI) | system
    std::string realm;  // Certificate | AWSSecurityToken | … | cli | system

    static Actor system(const std::string &who) { return {who, "", "system", "system"}; }
    static Actor cli(const std::string &user) { return {"cli:" + user, "", "operator", "cli"}; }
};

Actor actor_of(const Caller &c);

struct AuditEntry {
    std::string action;    // create | replace | delete | put | reload | register | reregister |
                           // approve | revoke | appcred-create
    std::string kind;      // collection name, "namespace", "appcreds", "enforcers"
    std::string id;        // object ID ("" for the namespace)
    std::string detail;    // JSON: the object as written (or as deleted), or a small summary
    int64_t revision = 0;  // the object's revision after the write (policy objects), else 0
};

// Appends one row. The caller holds db.mutex() and, for a write, its transaction.
void append_audit(Db &db, const Actor &actor, const AuditEntry &e);

struct AuditFilter {
    int64_t since = -1;  // unix seconds, rows at or after
    int64_t until = -1;  // unix seconds, rows before
    std::string who, kind, id, action;
    PageRequest page;  // in seq order (the order rows were written)
};

// One page, oldest first unless page.descending: {seq, time, actor: {who, name?, role, realm},
// action, kind, ID, revision?, detail}.
Page query_audit(Db &db, const AuditFilter &f);

// The table `segwire-console audit` prints.
std::string format_audit(Db &db, const AuditFilter &f);

}  // namespace segwire::console
