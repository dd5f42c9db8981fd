// Policy engine micro-benchmarks (Google Benchmark; run by hand, figures in docs/policy.md):
//   ninja -C build tests/bench/policy/bench_policy && ./build/tests/bench/policy/bench_policy
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <random>
#include <string>
#include <vector>

#include <rte_eal.h>

#include "control/policy/compile.hpp"
#include "dataplane/policy/decision_cache.hpp"
#include "dataplane/policy/snapshot.hpp"

namespace segwire::policy {
using namespace segwire::control;  // compile_snapshot, CompileOptions (control/policy/)
namespace {

constexpr uint8_t kTcp = 6;

std::string v4(uint32_t a, int len) {
    return std::to_string(a >> 24) + "." + std::to_string((a >> 16) & 255) + "." +
           std::to_string((a >> 8) & 255) + "." + std::to_string(a & 255) + "/" +
           std::to_string(len);
}

uint32_t masked(uint32_t a, int len) {
    return len == 0 ? 0 : a & ~((1ull << (32 - len)) - 1);
}

// 1000 PUs (one /24 each) and `rulesets` networkrulesetpolicies: each selects one "svc" group of
// PUs and has 2 incoming + 1 outgoing rules over identity tags with a mix of operators.
PolicySet rulesets_set(int rulesets) {
    PolicySet s;
    for (int i = 0; i < 1000; ++i) {
        ProcessingUnit pu;
        pu.id = "pu-" + std::to_string(i);
        pu.name = "pu" + std::to_string(i);
        pu.associated_tags = {"app=svc" + std::to_string(i % 500), "env=prod",
                              "team=t" + std::to_string(i % 37), "zone=z" + std::to_string(i % 3)};
        pu.addresses = {v4(0x0a000000u + (uint32_t(i) << 8), 24)};
        s.processing_units.push_back(pu);
    }
    for (int i = 0; i < rulesets; ++i) {
        NetworkRuleSetPolicy p;
        p.name = "rs-" + std::to_string(i);
        p.subject = {{"app=svc" + std::to_string(i % 500), "env=prod"}};
        NetworkRule a;
        a.name = "in-a";
        a.object = {{"app=svc" + std::to_string((i * 7) % 500), "env=prod"}, {"team=t1*"}};
        a.protocol_ports = {"tcp/" + std::to_string(1000 + i % 5000)};
        NetworkRule b;
        b.name = "in-b";
        b.action = RuleAction::kReject;
        b.object = {{"env!=prod", "team=*"}};
        b.protocol_ports = {"any"};
        NetworkRule c;
        c.name = "out";
        c.object = {{"app=svc" + std::to_string((i * 13) % 500)}};
        c.protocol_ports = {"tcp/443", "udp/53"};
        p.incoming_rules = {a, b};
        p.outgoing_rules = {c};
        s.network_policies.push_back(p);
    }
    return s;
}

// `entries` external-network entries in networks of 100 entries each: mostly /16–/24, 10% host
// routes, 10% `!` exclusions inside the preceding include, 10% IPv6.
PolicySet extnets_set(int entries) {
    PolicySet s;
    std::mt19937 rng(42);
    ProcessingUnit pu;
    pu.id = "pu";
    pu.associated_tags = {"app=web"};
    pu.addresses = {"10.0.0.1"};
    s.processing_units.push_back(pu);
    NetworkRuleSetPolicy p;
    p.name = "web";
    p.subject = {{"app=web"}};
    for (int g = 0; g < 10; ++g) {
        NetworkRule r;
        r.name = "g" + std::to_string(g);
        r.action = g == 9 ? RuleAction::kReject : RuleAction::kAllow;
        r.object = {{"group=g" + std::to_string(g)}};
        r.protocol_ports = {"tcp/443", "tcp/8000:8100"};
        p.incoming_rules.push_back(r);
        p.outgoing_rules.push_back(r);
    }
    s.network_policies.push_back(p);
    int nets = (entries + 99) / 100;
    for (int n = 0; n < nets; ++n) {
        ExternalNetwork net;
        net.name = "net-" + std::to_string(n);
        net.associated_tags = {"group=g" + std::to_string(n % 10)};
        uint32_t last = 0;
        int last_len = 0;
        for (int e = 0; e < 100; ++e) {
            uint32_t kind = rng() % 10;
            uint32_t a = rng() | 0x01000000u;
            if (kind == 0 && last_len && last_len < 28) {
                int len = last_len + 4;
                uint32_t host = a & uint32_t((1ull << (32 - last_len)) - 1);
                net.entries.push_back("!" + v4(masked(last | host, len), len));
            } else if (kind == 1) {
                char buf[64];
                snprintf(buf, sizeof(buf), "2001:db8:%x:%x::/64", unsigned(rng() & 0xffff),
                         unsigned(rng() & 0xffff));
                net.entries.push_back(buf);
            } else {
                int len = kind == 2 ? 32 : 16 + int(rng() % 9);
                last = masked(a, len);
                last_len = len;
                net.entries.push_back(v4(last, len));
            }
        }
        s.external_networks.push_back(net);
    }
    return s;
}

void BM_Compile10kRulesets(benchmark::State &state) {
    PolicySet s = rulesets_set(int(state.range(0)));
    validate(s);
    EnforcerProfile prof;
    for (auto _ : state) {
        auto snap = compile_snapshot(s, prof);
        benchmark::DoNotOptimize(snap.get());
        state.counters["rules"] = snap->stats().rules;
        state.counters["rule_lists"] = snap->stats().rule_lists;
    }
}
BENCHMARK(BM_Compile10kRulesets)->Arg(10000)->Unit(benchmark::kMillisecond)->Iterations(3);

void BM_ParseValidate10kRulesets(benchmark::State &state) {
    std::string json = serialize_policy_set(rulesets_set(int(state.range(0))), false);
    for (auto _ : state) {
        PolicySet s = parse_policy_set(json);
        benchmark::DoNotOptimize(s.network_policies.data());
    }
    state.counters["bytes"] = double(json.size());
}
BENCHMARK(BM_ParseValidate10kRulesets)->Arg(10000)->Unit(benchmark::kMillisecond)->Iterations(3);

void BM_Compile100kExternalEntries(benchmark::State &state) {
    PolicySet s = extnets_set(int(state.range(0)));
    validate(s);
    EnforcerProfile prof;
    for (auto _ : state) {
        auto snap = compile_snapshot(s, prof);
        benchmark::DoNotOptimize(snap.get());
        state.counters["classes"] = snap->stats().address_classes;
        state.counters["table_MiB"] = double(snap->stats().table_bytes) / (1 << 20);
        state.counters["v4_prefixes"] = snap->stats().prefixes_v4;
        state.counters["v6_prefixes"] = snap->stats().prefixes_v6;
    }
}
BENCHMARK(BM_Compile100kExternalEntries)->Arg(100000)->Unit(benchmark::kMillisecond)->Iterations(3);

// Shared snapshots for the decision benchmarks (built once).
struct Fixtures {
    PolicySet rs = rulesets_set(10000);
    PolicySet ext = extnets_set(100000);
    std::unique_ptr<PolicySnapshot> rs_snap = compile_snapshot(rs, EnforcerProfile{});
    std::unique_ptr<PolicySnapshot> ext_snap = compile_snapshot(ext, EnforcerProfile{});
};
std::unique_ptr<Fixtures> g_fixtures;  // freed in main, before the EAL goes away
Fixtures &fx() {
    if (!g_fixtures) g_fixtures = std::make_unique<Fixtures>();
    return *g_fixtures;
}

// Peers with ~12 tags, PUs with 20 ruleset rules each (10k rulesets over 500 groups).
std::vector<PeerTags> identity_peers(const PolicySnapshot &s, int n) {
    std::vector<PeerTags> out;
    for (int i = 0; i < n; ++i) {
        std::vector<std::string> tags = {"app=svc" + std::to_string((i * 7) % 500),
                                         "env=prod",
                                         "team=t" + std::to_string(i % 37),
                                         "zone=z1",
                                         "$identity=processingunit",
                                         "image=nginx:1." + std::to_string(i % 20)};
        for (int k = 0; k < 6; ++k)
            tags.push_back("label" + std::to_string(k) + "=v" + std::to_string(i));
        out.push_back(s.make_peer_tags(tags));
    }
    return out;
}

void BM_DecideIdentityUncached(benchmark::State &state) {
    const PolicySnapshot &s = *fx().rs_snap;
    auto peers = identity_peers(s, 256);
    uint32_t i = 0;
    for (auto _ : state) {
        uint32_t pu = (i * 7919) % s.pu_count();
        Decision d =
            s.decide(pu, Direction::kIncoming, peers[i & 255], kTcp, uint16_t(1000 + (i % 5000)));
        benchmark::DoNotOptimize(d);
        ++i;
    }
}
BENCHMARK(BM_DecideIdentityUncached);

void BM_DecideExternalUncached(benchmark::State &state) {
    const PolicySnapshot &s = *fx().ext_snap;
    std::mt19937 rng(1);
    std::vector<IpAddr> addrs;
    for (int i = 0; i < 4096; ++i) addrs.push_back(IpAddr::from_v4(rng() | 0x01000000u));
    uint32_t i = 0;
    for (auto _ : state) {
        Decision d = s.decide(0, Direction::kOutgoing, addrs[i & 4095], kTcp, 443);
        benchmark::DoNotOptimize(d);
        ++i;
    }
}
BENCHMARK(BM_DecideExternalUncached);

// Cold cache: every lookup misses (distinct ports cycle through 64k keys in a 4096-entry cache),
// so this is hash + compare + decide() + fill.
void BM_CacheMissIdentity(benchmark::State &state) {
    const PolicySnapshot &s = *fx().rs_snap;
    auto peers = identity_peers(s, 256);
    DecisionCache cache(4096);
    uint32_t i = 0;
    for (auto _ : state) {
        Decision d = cache.decide(s, i % s.pu_count(), Direction::kIncoming, peers[i & 255], kTcp,
                                  uint16_t(i));
        benchmark::DoNotOptimize(d);
        ++i;
    }
    state.counters["hit_ratio"] = double(cache.hits()) / double(cache.hits() + cache.misses());
}
BENCHMARK(BM_CacheMissIdentity);

// Warm cache: 1024 distinct (PU, peer, port) keys, all resident.
void BM_CacheHitIdentity(benchmark::State &state) {
    const PolicySnapshot &s = *fx().rs_snap;
    auto peers = identity_peers(s, 256);
    DecisionCache cache(4096);
    uint32_t i = 0;
    for (auto _ : state) {
        uint32_t k = i & 1023;
        Decision d = cache.decide(s, k % 64, Direction::kIncoming, peers[k & 255], kTcp,
                                  uint16_t(1000 + (k >> 8)));
        benchmark::DoNotOptimize(d);
        ++i;
    }
    state.counters["hit_ratio"] = double(cache.hits()) / double(cache.hits() + cache.misses());
}
BENCHMARK(BM_CacheHitIdentity);

void BM_CacheHitExternal(benchmark::State &state) {
    const PolicySnapshot &s = *fx().ext_snap;
    std::mt19937 rng(2);
    std::vector<IpAddr> addrs;
    for (int i = 0; i < 1024; ++i) addrs.push_back(IpAddr::from_v4(rng() | 0x01000000u));
    DecisionCache cache(4096);
    uint32_t i = 0;
    for (auto _ : state) {
        Decision d = cache.decide(s, 0, Direction::kOutgoing, addrs[i & 1023], kTcp, 443);
        benchmark::DoNotOptimize(d);
        ++i;
    }
    state.counters["hit_ratio"] = double(cache.hits()) / double(cache.hits() + cache.misses());
}
BENCHMARK(BM_CacheHitExternal);

void BM_ClassifyV4(benchmark::State &state) {
    const PolicySnapshot &s = *fx().ext_snap;
    std::mt19937 rng(3);
    std::vector<uint32_t> addrs(4096);
    for (auto &a : addrs) a = rng();
    uint32_t i = 0;
    for (auto _ : state) {
        benchmark::DoNotOptimize(s.classify_v4(addrs[i & 4095]));
        ++i;
    }
}
BENCHMARK(BM_ClassifyV4);

void BM_ClassifyV4Bulk32(benchmark::State &state) {
    const PolicySnapshot &s = *fx().ext_snap;
    std::mt19937 rng(4);
    std::vector<uint32_t> addrs(4096);
    for (auto &a : addrs) a = rng();
    AddressInfo out[32];
    uint32_t i = 0;
    for (auto _ : state) {
        s.classify_v4_bulk(&addrs[(i * 32) & 4095], out, 32);
        benchmark::DoNotOptimize(out);
        ++i;
    }
    state.SetItemsProcessed(int64_t(state.iterations()) * 32);
}
BENCHMARK(BM_ClassifyV4Bulk32);

// Classification against `entries` external-network entries (extnets_set: ~88 % v4, ~10 % v6)
// in a RIB (arg 1 = 0) or an LPM (arg 1 = 1): the lookup cost behind kRibMaxPrefixesV4/V6.
// Addresses: half inside a listed prefix, half random. Counters: the tables' DPDK bytes.
void classify_by_size(benchmark::State &state, bool v6) {
    PolicySet set = extnets_set(int(state.range(0)));
    validate(set);
    CompileOptions o;
    o.rib_max_v4 = o.rib_max_v6 = state.range(1) == 0 ? UINT32_MAX : 0;
    auto snap = compile_snapshot(set, EnforcerProfile{}, std::move(o));
    std::mt19937 rng(5);
    std::vector<IpAddr> addrs;
    for (const auto &n : set.external_networks)
        for (const auto &e : n.entries) {
            if (e[0] == '!' || (e.find(':') != std::string::npos) != v6) continue;
            IpPrefix p;
            std::string problem;
            if (!parse_prefix(e, &p, &problem)) continue;
            IpAddr a;
            a.v6 = v6;
            if (v6)
                std::copy(p.addr.begin(), p.addr.end(), a.b6.begin());
            else
                a.v4 = p.v4_host() | (p.len < 32 ? rng() & ((1u << (32 - p.len)) - 1) : 0);
            addrs.push_back(a);
        }
    size_t inside = addrs.size();
    for (size_t i = 0; i < std::max<size_t>(inside, 512); ++i) {
        IpAddr a;
        a.v6 = v6;
        a.v4 = rng();
        for (auto &b : a.b6) b = uint8_t(rng());
        addrs.push_back(a);
    }
    std::shuffle(addrs.begin(), addrs.end(), rng);
    addrs.resize(4096 <= addrs.size() ? 4096 : addrs.size());
    size_t mask = 1;
    while (mask * 2 <= addrs.size()) mask *= 2;
    --mask;
    uint32_t i = 0;
    for (auto _ : state) {
        benchmark::DoNotOptimize(snap->classify(addrs[i & mask]));
        ++i;
    }
    const auto st = snap->stats();
    state.counters["prefixes"] = v6 ? st.prefixes_v6 : st.prefixes_v4;
    state.counters["table_MiB"] = double(st.table_bytes) / (1 << 20);
    state.SetLabel(std::string(v6 ? st.table_v6 : st.table_v4));
}
void BM_ClassifyV4BySize(benchmark::State &state) {
    classify_by_size(state, false);
}
void BM_ClassifyV6BySize(benchmark::State &state) {
    classify_by_size(state, true);
}
BENCHMARK(BM_ClassifyV4BySize)->ArgsProduct({{100, 1000, 4600, 10000, 50000}, {0, 1}});
BENCHMARK(BM_ClassifyV6BySize)->ArgsProduct({{1000, 2000, 5000, 10000, 50000}, {0, 1}});

void BM_MakePeerTags(benchmark::State &state) {
    const PolicySnapshot &s = *fx().rs_snap;
    std::vector<std::string> tags = {
        "app=svc7",       "env=prod", "team=t12", "zone=z1", "$identity=processingunit",
        "image=nginx:1.2"};
    for (int k = 0; k < 6; ++k) tags.push_back("label" + std::to_string(k) + "=v");
    for (auto _ : state) benchmark::DoNotOptimize(s.make_peer_tags(tags));
}
BENCHMARK(BM_MakePeerTags);

}  // namespace
}  // namespace segwire::policy

int main(int argc, char **argv) {
    std::string prefix = "segwire-policybench-" + std::to_string(getpid());
    std::vector<std::string> args = {
        "bench", "--no-huge", "--no-shconf",   "--no-pci", "--no-telemetry",     "-l", "0",
        "-m",    "1536",      "--file-prefix", prefix,     "--log-level=*:error"};
    std::vector<char *> eal_argv;
    for (auto &a : args) eal_argv.push_back(a.data());
    if (rte_eal_init(int(eal_argv.size()), eal_argv.data()) < 0) {
        fprintf(stderr, "rte_eal_init failed\n");
        return 1;
    }
    benchmark::Initialize(&argc, argv);
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    segwire::policy::g_fixtures.reset();  // free the address tables before the EAL goes away
    rte_eal_cleanup();
    return 0;
}
