// One EAL per test binary: rte_lpm/rte_lpm6 allocate from DPDK memory.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <string>
#include <vector>

#include <rte_eal.h>

namespace segwire::test {

class EalEnvironment : public ::testing::Environment {
  public:
    void SetUp() override {
        // A small policy's snapshot takes kilobytes (RIB tables), but the sizing tests build
        // LPM tables (64 MiB tbl24 each) and exhaust what is left on purpose.
        std::string prefix = "segwire-policytest-" + std::to_string(getpid());
        std::vector<std::string> args = {"segwire-policy-test",
                                         "--no-huge",
                                         "--no-shconf",
                                         "--no-pci",
                                         "--no-telemetry",
                                         "-l",
                                         "0-1",
                                         "-m",
                                         "1024",
                                         "--file-prefix",
                                         prefix,
                                         "--log-level=*:error"};
        std::vector<char *> argv;
        for (auto &a : args) argv.push_back(a.data());
        int rc = rte_eal_init(static_cast<int>(argv.size()), argv.data());
        ASSERT_GE(rc, 0) << "rte_eal_init failed";
    }
    void TearDown() override { rte_eal_cleanup(); }
};

}  // namespace segwire::test
