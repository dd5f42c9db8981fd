// segwire-bench console: simulated enforcers against a real segwire-console (console_bench.cpp).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace segwire::bench {

struct ConsoleBenchOptions {
    std::string console_bin;  // segwire-console of this build
    std::string policy_dir;   // the Console's --policy (the example set)
    std::vector<uint32_t> counts = {50, 200, 1000, 2000};  // simulated enforcers per run
    uint32_t writes = 3;                                   // policy writes measured per run
    uint32_t poll_wait_s = 30;  // the long-poll's wait (the enforcer's default)
    uint32_t connect_s = 120;   // every enforcer holds a bundle within this, or the run ends
    uint32_t propagate_s = 60;  // a write reaches every enforcer within this, or counts as missed
    uint32_t report_s = 30;     // the reporting window (from the first write)
    std::string csv;
    // --database: a PostgreSQL URI the Console keeps its data in (its public schema is emptied
    // before each run, with psql); "" = SQLite in the run's data directory.
    std::string database;
    uint32_t threads = 0;  // --threads: the Console's server threads (0 = its default, 64)
    // --stores: the rows of one run, each count measured on each: "sqlite", "pg1" (one Console on
    // PostgreSQL), "pg2" (two replicas on one PostgreSQL, the simulated enforcers split across
    // them). The PostgreSQL rows start their own unprivileged cluster in a temporary directory
    // (pg_bin's initdb and pg_ctl, as the `postgres` system user, Unix socket only) unless
    // --database names one. Empty: the old single row (SQLite, or --database).
    std::vector<std::string> stores;
    std::string pg_bin = "/usr/lib/postgresql/15/bin";
};

// Prints one row per count (the series stops at the first count the Console does not hold);
// returns 0 when every run enrolled its enforcers and measured at least one write.
int run_console_bench(const ConsoleBenchOptions &o);

}  // namespace segwire::bench
