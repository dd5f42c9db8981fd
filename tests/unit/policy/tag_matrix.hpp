// The fail-closed tag semantics (docs/policy.md §1, "Tag predicates") as one table, run against
// both evaluators: the control side's expression_matches (test_syntax.cpp) and the compiled
// snapshot's decide() with the expression as an Allow rule's object (test_engine.cpp).
//
// The rows marked "changed" were the other way round before issue 16 item 6 (`k!=v` and `k!=v*`
// were true for a peer without the key). The multi-valued rows pin where segwire deliberately
// differs from Trireme (which counts `k!=a` as true for a peer carrying k=a and k=b).
#pragma once

#include <ostream>
#include <string>
#include <vector>

#include "config/policy/syntax.hpp"

namespace segwire::policy::test {

struct TagCase {
    const char *what;
    TagExpression expr;
    std::vector<std::string> tags;
    bool match;
};

inline std::ostream &operator<<(std::ostream &os, const TagCase &c) {
    return os << c.what;
}

inline const std::vector<TagCase> &tag_matrix() {
    static const std::vector<TagCase> cases = {
        // ---- absent key: only k!=* is true (changed: k!=v, k!=v*) ----
        {"absent key, k!=v", {{"env!=prod"}}, {"app=web"}, false},
        {"absent key, k!=v*", {{"env!=pr*"}}, {"app=web"}, false},
        {"no tags at all, k!=v", {{"env!=prod"}}, {}, false},
        {"absent key, k=v", {{"env=prod"}}, {"app=web"}, false},
        {"absent key, k=*", {{"env=*"}}, {"app=web"}, false},
        {"absent key, k!=*", {{"env!=*"}}, {"app=web"}, true},
        {"absent key, inside an AND clause", {{"app=web", "env!=prod"}}, {"app=web"}, false},
        {"absent key, the !=* clause of an OR still admits",
         {{"env!=prod"}, {"env!=*"}},
         {"app=web"},
         true},
        // ---- present key, one value ----
        {"k=b, k!=a", {{"k!=a"}}, {"k=b"}, true},
        {"k=a, k!=a", {{"k!=a"}}, {"k=a"}, false},
        {"k=web, k!=we*", {{"k!=we*"}}, {"k=web"}, false},
        {"k=db, k!=we*", {{"k!=we*"}}, {"k=db"}, true},
        // ---- one key with several values: k=a and k=b ----
        {"k=a+k=b, k!=a (Trireme: true)", {{"k!=a"}}, {"k=a", "k=b"}, false},
        {"k=a+k=b, k=a", {{"k=a"}}, {"k=a", "k=b"}, true},
        {"k=a+k=b, k!=c", {{"k!=c"}}, {"k=a", "k=b"}, true},
        {"k=a+k=b, k=*", {{"k=*"}}, {"k=a", "k=b"}, true},
        {"k=a+k=b, k!=*", {{"k!=*"}}, {"k=a", "k=b"}, false},
        {"k=a+k=b, k!=a* (Trireme: no !=prefix)", {{"k!=a*"}}, {"k=a", "k=b"}, false},
        {"k=b+k=c, [k!=a, x=y] counts k!=a once (Trireme: twice, matches)",
         {{"k!=a", "x=y"}},
         {"k=b", "k=c"},
         false},
        // ---- $-prefixed derived tags behave like any other key (changed: absent rows) ----
        {"no $name, $name!=db", {{"$name!=db"}}, {"app=web"}, false},
        {"no $id, $id!=pu-db", {{"$id!=pu-db"}}, {"app=web"}, false},
        {"no $identity, $identity!=externalnetwork",
         {{"$identity!=externalnetwork"}},
         {"app=web"},
         false},
        {"$identity=processingunit, $identity!=externalnetwork",
         {{"$identity!=externalnetwork"}},
         {"$identity=processingunit", "$name=web"},
         true},
        {"$name=db, $name!=db", {{"$name!=db"}}, {"$identity=processingunit", "$name=db"}, false},
        {"no $id, $id!=*", {{"$id!=*"}}, {"app=web"}, true},
        {"$id present, $id=*", {{"$id=*"}}, {"$id=pu-web"}, true},
    };
    return cases;
}

}  // namespace segwire::policy::test
