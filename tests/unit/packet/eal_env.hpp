// Initialises DPDK's EAL once per test binary: no hugepages, no PCI, a prefix unique to the
// process, so test binaries can run in parallel.
#pragma once

#include <unistd.h>

#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <rte_eal.h>
#include <rte_mbuf.h>

class EalEnvironment : public ::testing::Environment {
  public:
    void SetUp() override {
        std::string prefix = "segwire-test-" + std::to_string(getpid());
        std::vector<std::string> args = {
            "test", "--no-huge",     "--no-shconf", "--no-pci",           "-l", "0", "-m",
            "256",  "--file-prefix", prefix,        "--log-level=*:error"};
        std::vector<char *> argv;
        for (auto &a : args) argv.push_back(a.data());
        ASSERT_GE(rte_eal_init(static_cast<int>(argv.size()), argv.data()), 0);
        pool = rte_pktmbuf_pool_create("test_pool", 1023, 0, 0, RTE_MBUF_DEFAULT_BUF_SIZE, 0);
        ASSERT_NE(pool, nullptr);
    }
    void TearDown() override { rte_eal_cleanup(); }
    static inline rte_mempool *pool = nullptr;
};
