// The packet-path parts of dataplane/dns must not allocate: parse_dns_response,
// dns_from_tcp_payload and FqdnSet lookups. A replaced global operator new counts allocations
// made by this thread while a window is open (hence a binary of its own).
#include <gtest/gtest.h>

#include <cstdlib>
#include <memory>
#include <new>

#include "control/dns/dns_message.hpp"
#include "control/dns/fqdn.hpp"
#include "tests/unit/control/dns_builder.hpp"

#include "tests/unit/alloc_counter.hpp"

namespace {

using namespace segwire::control::dns;
using namespace segwire::dptest;

TEST(DnsNoAlloc, ParseAndLookupDoNotAllocate) {
    DnsMsg m;
    m.an.push_back(rr_a(labels("edge.cdn.example.net"), v4(198, 51, 100, 7), 60));
    m.an.push_back(rr_cname(ptr(kQnameOff), ptr(m.answer_off(0)), 300));
    m.an.push_back(rr_aaaa(ptr(m.answer_off(0)), v6("2001:db8::7"), 60));
    const Bytes msg = m.bytes();
    Bytes tcp = {static_cast<uint8_t>(msg.size() >> 8), static_cast<uint8_t>(msg.size())};
    tcp.insert(tcp.end(), msg.begin(), msg.end());
    auto resp = std::make_unique<DnsResponse>();

    FqdnLearner learner;
    const std::vector<HostnameEntry> patterns = {{2, "*.cdn.example.net"}};
    const uint32_t now = 1'700'000'000;
    ASSERT_EQ(parse_dns_response(msg, *resp), DnsStatus::Ok);
    learner.learn(*resp, now, patterns);
    const std::unique_ptr<FqdnSet> set = learner.build(now);
    const uint8_t v4addr[4] = {198, 51, 100, 7};

    size_t found = 0, ok = 0;
    g_allocations = 0;
    g_counting = true;
    for (int round = 0; round < 3; ++round) {
        std::span<const uint8_t> inner;
        ok += dns_from_tcp_payload(tcp, inner) == DnsStatus::Ok;
        ok += parse_dns_response(inner, *resp) == DnsStatus::Ok;
        for (size_t i = 0; i < resp->addr_count; ++i)
            found += set->networks_for(resp->addrs[i].addr, 0, now).size();
        found += set->networks_for_v4(v4addr, 0, now).size();
        ok += fqdn_match("*.cdn.example.net", resp->final_name());
    }
    g_counting = false;
    EXPECT_EQ(g_allocations, 0u);
    EXPECT_EQ(ok, 9u) << "the window must have parsed real responses";
    EXPECT_EQ(found, 9u) << "and found the learned addresses";
}

}  // namespace
