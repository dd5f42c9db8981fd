// Keyset pages for every list of the Console API (docs/console.md, "Lists"). A page is a JSON
// array as before; when more rows follow, the answer carries `Link: <URL>; rel="next"` (RFC 8288)
// whose URL repeats the request with `cursor=` set. The cursor is opaque to clients: base64url of
// "<list>|<order>|<key>", the key of the last row sent (reports: "ts.seq", the audit log: "seq",
// objects: their ID), so the next page starts strictly after it whatever was inserted meanwhile.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace segwire::console {

constexpr int64_t kDefaultPageLimit = 1000;
constexpr int64_t kMaxPageLimit = 10000;

struct PageRequest {
    int64_t limit = kDefaultPageLimit;
    bool descending = false;  // order=desc: newest (reports, audit) or last ID first
    bool all = false;         // object lists without limit or cursor: everything, one answer
    std::optional<std::string> after;  // the cursor's key: rows strictly after it in the order
};

// A page's rows (as JSON texts) and the key of the last one when more rows follow.
struct Page {
    std::vector<std::string> rows;
    std::optional<std::string> next_key;
    std::string json() const;  // "[row,row,...]"
};

std::string encode_cursor(std::string_view list, bool descending, std::string_view key);
// The key of a cursor made for `list` in the same order, or a 400 ConsoleError naming "cursor"
// that says what is wrong (not ours, another list's, another order's).
std::string decode_cursor(std::string_view cursor, std::string_view list, bool descending);

// Reports' and the audit log's keys: "ts.seq" and "seq".
std::string report_key(int64_t ts, int64_t seq);
bool parse_report_key(std::string_view key, int64_t *ts, int64_t *seq);

// RFC 3986 unreserved characters kept, everything else %XX: for the query of a Link URL.
std::string percent_encode(std::string_view s);

}  // namespace segwire::console
