// `segwirectl capture` (tools/segwirectl/capture.cpp, docs/capture.md).
#pragma once

#include <functional>
#include <string>

namespace segwire::ctl {

// One telemetry command in, its raw JSON reply out (throws std::runtime_error on failure).
using TelemetryQuery = std::function<std::string(const std::string &)>;

// argv[0] is "capture"; returns the process exit code.
int capture(int argc, char **argv, const TelemetryQuery &query, bool json);

}  // namespace segwire::ctl
