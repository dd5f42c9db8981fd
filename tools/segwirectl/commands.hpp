// segwirectl's commands that live in files of their own (segwirectl.cpp dispatches to them).
#pragma once

#include <string>

namespace segwire::ctl {

// segwirectl explain (tools/segwirectl/explain.cpp): argv[0] is "explain". Throws
// std::runtime_error with a message naming what was wrong.
int explain_main(int argc, char **argv, bool json);

// segwirectl trace (tools/segwirectl/trace.cpp): argv[0] is "trace"; `socket` the telemetry
// socket of the enforcer.
int trace_main(int argc, char **argv, bool json, const std::string &socket);

// segwirectl capture (tools/segwirectl/capture.cpp): argv[0] is "capture"; `socket` the telemetry
// socket of the enforcer that writes the file.
int capture_main(int argc, char **argv, bool json, const std::string &socket);

}  // namespace segwire::ctl
