// The flow map page the Console serves at /ui (docs/ui.md): static files from a directory, and
// GET /ui/flowmap, the flow and DNS lookup reports of a time window aggregated into a graph of
// PUs and external networks. The page's files need no credential (they hold no data); the data
// endpoint needs an admin or reader token, like every other read.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "tools/console/authz.hpp"

namespace httplib {
struct Request;
}  // namespace httplib

namespace segwire::console {

class Db;
class Router;

// The page's static files: /ui, /ui/ and /ui/NAME.{html,js,css,png,svg,ico} for GET and HEAD.
// The pre-routing authentication lets these through without a token; everything else under /ui
// (the data endpoint) is authenticated as usual.
bool ui_public_path(std::string_view method, std::string_view path);

// Where the page's files are when --ui-dir is not given: next to the executable (`ui/`, the build
// tree) or the installed data directory (`../share/segwire/ui` from the executable, then the
// meson datadir the binary was built for). "" when none has an index.html.
std::string default_ui_dir();

// Registers GET /ui (redirect to /ui/), the files of `ui_dir` under /ui/, and GET /ui/flowmap.
// `authorize` is the Console's: it verifies the bearer token and returns the caller.
void install_ui(Router &svr, const std::string &ui_dir, Db &db,
                std::function<Caller(const httplib::Request &)> authorize);

// The flow map of reports with since <= timestamp < until (unix seconds) as JSON (docs/ui.md,
// "The data endpoint"). At most `max_edges` edges; "truncated" says when more existed.
std::string flowmap_json(Db &db, int64_t since, int64_t until, size_t max_edges = 2000);

}  // namespace segwire::console
