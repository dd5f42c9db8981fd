// segwire: the enforcer daemon. The main lcore is the control thread; workers run on the others.
#include <getopt.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <ctime>
#include <memory>
#include <string>
#include <thread>

#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_launch.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "config/appliance_config.hpp"
#include "control/app.hpp"
#include "control/eal_setup.hpp"
#include "control/mbuf_budget.hpp"
#include "version.hpp"

using namespace segwire;

namespace {

std::atomic<bool> *g_stop = nullptr;
std::atomic<bool> g_reload{false};

void on_signal(int sig) {
    if (sig == SIGHUP) {
        g_reload.store(true);
        return;
    }
    if (g_stop) g_stop->store(true);
}

void usage(FILE *out) {
    std::fprintf(out,
                 "usage: segwire --config FILE [--check] | --version\n"
                 "  --config FILE  appliance configuration (JSON)\n"
                 "  --check        validate the configuration and exit\n"
                 "  --version      print the version and exit\n");
}

void setup_logging(const config::LogConfig &lc) {
    std::vector<spdlog::sink_ptr> sinks;
    sinks.push_back(std::make_shared<spdlog::sinks::stderr_color_sink_mt>());
    if (!lc.file.empty())
        sinks.push_back(std::make_shared<spdlog::sinks::basic_file_sink_mt>(lc.file));
    auto logger = std::make_shared<spdlog::logger>("segwire", sinks.begin(), sinks.end());
    logger->set_level(spdlog::level::from_str(lc.level));
    logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
    logger->flush_on(spdlog::level::info);
    spdlog::set_default_logger(logger);
}

// One worker per worker lcore; `identity` null: forwarding only (no identity section, or a first
// boot before the enrollment: the identity is attached later).
void add_workers(control::App &app, const dp::FailGate *gate, dp::IdentityRuntime *identity) {
    const config::ApplianceConfig &cfg = app.cfg;
    const auto &to = cfg.flows.timeouts;
    const bool hw_symmetric = app.ports[0].symmetric_rss && app.ports[1].symmetric_rss;
    for (uint32_t w = 0; w < cfg.workers; ++w) {
        dp::WorkerSetup s;
        s.id = w;
        s.nworkers = cfg.workers;
        s.port_id[dp::kInside] = app.ports[0].port_id;
        s.port_id[dp::kOutside] = app.ports[1].port_id;
        s.software_steering = !hw_symmetric;
        s.burst = cfg.burst;
        s.idle = cfg.idle;
        s.flow_capacity = cfg.flows.max_per_worker;
        s.timeouts_s[dp::kTcpHandshake] = to.tcp_handshake_s;
        s.timeouts_s[dp::kTcpEstablished] = to.tcp_established_s;
        s.timeouts_s[dp::kTcpClosing] = to.tcp_closing_s;
        s.timeouts_s[dp::kUdp] = to.udp_s;
        s.timeouts_s[dp::kOther] = to.other_s;
        s.timeouts_s[dp::kRejectedHold] = to.rejected_s;
        s.socket = static_cast<int>(rte_socket_id());
        s.pool = app.pool;
        s.identity = identity;
        s.fail_gate = gate;
        if (app.routing) {
            s.routed_ports = app.routing->ports();
            s.routes = app.routing->slot();
            s.routing = cfg.routing;
            s.geneve = cfg.geneve;
            s.geneve_cfg = cfg.geneve_cfg;
        }
        if (app.l7) {
            s.l7_port = app.l7->port_id();
            std::memcpy(s.l7_mac, app.l7->kernel_mac(), 6);
            s.l7_mark = app.l7->mark();
            s.l7_neighbours = app.l7->neighbours();
        }
        app.workers.add(s);
    }
    app.workers.create_steering_rings();
}

// A first boot with the Console out of reach: the workers forward under the fail mode (no
// identity, no policy) while the main lcore asks the Console again, every 1 s doubling to 10 s.
// True once enrolled (the workers have returned and wait for their identity); false when told to
// stop first.
bool enroll_under_fail_mode(control::App &app, config::IdentityConfig &id, bool closed) {
    std::atomic<bool> enrolled{false};
    app.workers.launch(enrolled);
    spdlog::warn(
        "console: not enrolled yet and the Console is out of reach; identity.fail_mode {}; asking "
        "again",
        closed ? "closed: managed traffic is refused and counted (drops.no_policy)"
               : "open: traffic is forwarded untouched");
    auto wait = std::chrono::seconds(1);
    auto next = std::chrono::steady_clock::now() + wait;
    while (!app.stop.load()) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        if (std::chrono::steady_clock::now() < next) continue;
        control::Enrollment e;
        try {
            e = app.sync->enroll(id);
        } catch (...) {
            enrolled.store(true);  // the workers stop; the caller reports the error
            rte_eal_mp_wait_lcore();
            throw;
        }
        if (e != control::Enrollment::kUnreachable) break;
        wait = std::min(wait * 2, std::chrono::seconds(10));
        next = std::chrono::steady_clock::now() + wait;
    }
    enrolled.store(true);
    rte_eal_mp_wait_lcore();
    return !app.stop.load();
}

// What an operator reads while it runs: GET /metrics (with metrics.listen) and the /segwire/...
// telemetry commands. Once the workers exist, since both read their counters. The listener comes
// first: an address it cannot bind stops the daemon (naming metrics.listen) before telemetry
// answers, which is what tools wait for to know segwire is up.
// L7 mode: the proxy signs with the enforcer's key and shows the Console CA (docs/l7-path.md).
// Read at every report interval; written to <state_dir>/l7/ when they changed (a renewal).
void refresh_l7_credentials(control::App &app, const config::IdentityConfig &id) {
    auto slurp = [](const std::string &path) {
        std::ifstream in(path);
        std::stringstream ss;
        ss << in.rdbuf();
        return ss.str();
    };
    const std::string cert = slurp(id.certificate), key = slurp(id.key), ca = slurp(id.trusted_cas);
    if (!cert.empty() && !key.empty()) app.l7->refresh_credentials(cert, key, ca);
}

void start_observability(control::App &app) {
    if (app.cfg.metrics.enabled()) app.metrics = std::make_unique<control::MetricsServer>(app);
    control::register_telemetry(app);
    app.capture = std::make_unique<control::Capture>(app);
}

void shut_ports(control::App &app) {
    app.capture.reset();  // the workers have returned; its last blocks name the ports
    control::stop_port(app.ports[0].port_id);
    if (!app.cfg.geneve) control::stop_port(app.ports[1].port_id);  // GENEVE: one arm
}

int finish(std::unique_ptr<control::App> app, int rc) {
    g_stop = nullptr;
    app->metrics.reset();  // first: it reads the workers, the enforcement and the sync
    app->capture.reset();
    if (app->sync) app->sync->stop();
    app->workers.clear();
    app->routing.reset();
    app->enforcement_live.store(nullptr);
    app->enforcement.reset();
    app->l7.reset();
    app->sync.reset();
    control::disable_dumpcap();
    rte_eal_cleanup();
    return rc;
}

int run(const config::ApplianceConfig &cfg, const std::string &config_path) {
    auto app = std::make_unique<control::App>();
    app->cfg = cfg;
    app->config_path = config_path;

    std::vector<std::string> args = control::build_eal_args(cfg);
    std::string joined;
    for (auto &a : args) joined += a + " ";
    spdlog::info("EAL: {}", joined);
    std::vector<char *> argv;
    for (auto &a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    if (rte_eal_init(static_cast<int>(args.size()), argv.data()) < 0) {
        spdlog::critical("EAL initialisation failed: {}", rte_strerror(rte_errno));
        return 1;
    }
    app->start_tsc = rte_rdtsc();
    app->start_unix = static_cast<int64_t>(std::time(nullptr));
    // dpdk-dumpcap attaches as a secondary process: only to an EAL on hugepages.
    app->dumpcap = control::enable_dumpcap(rte_eal_has_hugepages());
    spdlog::info("dpdk-dumpcap: {}", app->dumpcap);
    int rc = 0;
    try {
        if (rte_lcore_count() < cfg.workers + 1)
            throw std::runtime_error("eal.lcores: " + std::to_string(rte_lcore_count()) +
                                     " lcores, need " + std::to_string(cfg.workers + 1) +
                                     " (main + one per worker)");
        // The pool's budget (docs/handshake.md "Budgets"): refused here, naming the field, when
        // the handshakes' bounds and the forwarding reserve do not fit.
        const uint16_t nq = static_cast<uint16_t>(cfg.workers);
        const control::MbufPlan plan = control::plan_mbufs(
            cfg, control::ring_mbufs(cfg.inside, "inside", nq) +
                     (cfg.geneve ? 0 : control::ring_mbufs(cfg.outside, "outside", nq)));
        spdlog::info(
            "mbufs {}: {} reserved for forwarding, {} descriptor rings, {} steering, {} caches; "
            "per worker {} held + {} kept control datagrams + {} slow-path jobs",
            cfg.mbufs, plan.reserve, plan.rings, plan.steering, plan.caches, plan.hold_total,
            plan.kept_control, plan.slow_jobs);
        app->cfg.handshake.hold_total = plan.hold_total;
        app->cfg.handshake.kept_control = plan.kept_control;
        // A port MTU above 1500 (jumbo, ports.*.mtu) needs mbufs that hold a whole frame: the
        // parser and the identity stage read the first segment only.
        const uint32_t max_mtu = std::max<uint32_t>(cfg.inside.mtu, cfg.outside.mtu);
        const uint16_t room = static_cast<uint16_t>(std::max<uint32_t>(
            RTE_MBUF_DEFAULT_BUF_SIZE, RTE_PKTMBUF_HEADROOM + max_mtu + RTE_ETHER_HDR_LEN + 8));
        rte_mempool *pool = rte_pktmbuf_pool_create("sw_mbufs", cfg.mbufs, control::kPoolCache, 0,
                                                    room, rte_socket_id());
        if (!pool)
            throw std::runtime_error(std::string("mbufs: cannot create pool of ") +
                                     std::to_string(cfg.mbufs) + ": " + rte_strerror(rte_errno));
        app->pool = pool;
        const uint16_t q = static_cast<uint16_t>(cfg.workers);
        app->ports[dp::kInside] = control::setup_port(cfg.inside, "inside", q, pool);
        // GENEVE mode: one arm, which the workers see as both sides.
        app->ports[dp::kOutside] = cfg.geneve
                                       ? app->ports[dp::kInside]
                                       : control::setup_port(cfg.outside, "outside", q, pool);
        const bool hw_symmetric = app->ports[0].symmetric_rss && app->ports[1].symmetric_rss;
        if (cfg.l7.enabled) app->l7 = std::make_unique<control::L7Path>(cfg, q, pool);
        for (int i = 0; i < 2; ++i)
            spdlog::info("port {}: {} ({}), {} queue(s), mtu {}, steering {}",
                         i == 0 ? "inside" : "outside", app->ports[i].name, app->ports[i].driver, q,
                         app->ports[i].mtu, hw_symmetric ? "symmetric RSS" : "software");
        if (cfg.routed) {
            app->routing = std::make_unique<control::Routing>(cfg, app->ports, cfg.workers);
            const config::PortConfig *pc[2] = {&cfg.inside, &cfg.outside};
            for (int i = 0; i < 2; ++i) {
                std::string addrs;
                for (const auto &a : pc[i]->addresses) addrs += " " + a.str();
                const uint8_t *mac = app->routing->ports()->port[i].mac;
                spdlog::info("routed: {} {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x} mtu {}:{}",
                             i == 0 ? "inside" : "outside", mac[0], mac[1], mac[2], mac[3], mac[4],
                             mac[5], app->ports[i].mtu, addrs);
            }
            const dp::RouteTable *t = app->routing->current();
            spdlog::info("routed: {} IPv4 and {} IPv6 routes (connected and static)", t->routes4,
                         t->routes6);
            if (cfg.geneve)
                spdlog::info(
                    "geneve: one arm, UDP port {}, health check {}, inner MTU {}",
                    cfg.geneve_cfg.udp_port,
                    cfg.geneve_cfg.health_port ? "TCP " + std::to_string(cfg.geneve_cfg.health_port)
                                               : std::string("off"),
                    cfg.geneve_cfg.inner_mtu ? cfg.geneve_cfg.inner_mtu : app->ports[0].mtu - 68);
        }

        g_stop = &app->stop;
        struct sigaction sa {};
        sa.sa_handler = on_signal;
        sigaction(SIGINT, &sa, nullptr);
        sigaction(SIGTERM, &sa, nullptr);
        sigaction(SIGHUP, &sa, nullptr);  // re-read identity.policy_file

        // identity.fail_mode closed: until a policy is in force the workers refuse managed traffic
        // (docs/control.md, "Fail mode").
        const dp::FailGate *gate = nullptr;
        if (cfg.identity.enabled() && cfg.identity.fail_closed) {
            for (const auto &p : cfg.identity.fail_closed_networks) {
                dp::FailGate::Net n{static_cast<uint8_t>(p.v6 ? 6 : 4), p.len, {}};
                std::copy(p.addr.begin(), p.addr.end(), n.addr);
                app->fail_gate.nets.push_back(n);
            }
            gate = &app->fail_gate;
        }
        bool telemetry = false;
        bool bootstrapped = false;  // the workers ran before the enrollment, without an identity
        config::ApplianceConfig ecfg = app->cfg;
        if (cfg.identity.enabled() && cfg.console.enabled()) {
            // Enrollment fills in the key, certificate and CA (or the cached ones).
            app->sync = std::make_unique<control::ConsoleSync>(cfg);
            if (app->sync->enroll(ecfg.identity) == control::Enrollment::kUnreachable) {
                // A first boot with no Console in reach: the workers run without an identity
                // under the fail mode while the enrollment is asked again.
                add_workers(*app, gate, nullptr);
                start_observability(*app);
                telemetry = true;
                if (!enroll_under_fail_mode(*app, ecfg.identity, gate != nullptr)) {
                    spdlog::info("shutting down before the first enrollment");
                    shut_ports(*app);
                    return finish(std::move(app), 0);
                }
                bootstrapped = true;
            }
        }
        if (cfg.identity.enabled()) {
            uint16_t mtu[2] = {app->ports[0].mtu, app->ports[1].mtu};
            dp::TxChecksum csum[2];
            for (int i = 0; i < 2; ++i)
                csum[i] = {app->ports[i].tx_ipv4_cksum, app->ports[i].tx_tcp_cksum,
                           app->ports[i].tx_udp_cksum};
            if (cfg.geneve) {
                // The identity stage works on the inner packet: its rewrites must fit the inner
                // MTU, and its checksums are computed in software (a NIC would checksum the
                // outer headers).
                const uint16_t inner = cfg.geneve_cfg.inner_mtu
                                           ? cfg.geneve_cfg.inner_mtu
                                           : static_cast<uint16_t>(app->ports[0].mtu - 68);
                mtu[0] = mtu[1] = inner;
                csum[0] = csum[1] = dp::TxChecksum{};
            }
            app->enforcement =
                std::make_unique<control::Enforcement>(ecfg, cfg.workers, pool, mtu, csum);
            app->enforcement->set_l7(app->l7.get());
        }
        if (bootstrapped)
            app->workers.attach_identity(&app->enforcement->runtime());
        else
            add_workers(*app, gate, app->enforcement ? &app->enforcement->runtime() : nullptr);
        if (app->enforcement) {
            spdlog::info("identity handshake on; HMAC back-end {}", app->workers.hmac_backend());
            app->enforcement->start();
            if (app->sync) {
                // Fail-static: the last bundle this enforcer accepted is enforced at once, before
                // the Console answers (or while it does not), if its seal verifies under this
                // enforcer's key and the Console vouched for it within console.cache_max_age_s.
                for (const std::string &pem : app->sync->cached_peer_certificates())
                    app->enforcement->add_peer_certificate(pem);
                if (auto cached = app->sync->cached_bundle()) {
                    try {
                        std::string v = app->enforcement->apply_bundle(*cached);
                        app->sync->cached_bundle_applied(*cached, v);
                        spdlog::info("enforcing cached policy {} until the Console answers", v);
                    } catch (const std::exception &e) {
                        spdlog::error("cached policy unusable: {}", e.what());
                    }
                }
                app->sync->start(*app->enforcement);
            } else if (!cfg.identity.policy_file.empty()) {
                try {
                    app->enforcement->apply_file(cfg.identity.policy_file);
                } catch (const std::exception &e) {
                    throw std::runtime_error("identity.policy_file " + cfg.identity.policy_file +
                                             ": " + e.what());
                }
            }
        }
        if (app->l7 && app->enforcement) refresh_l7_credentials(*app, ecfg.identity);
        app->enforcement_live.store(app->enforcement.get(), std::memory_order_release);
        if (app->enforcement && !app->enforcement->has_policy())
            spdlog::warn("no policy yet: identity.fail_mode {} until the first policy is applied",
                         gate ? "closed: managed traffic is refused and counted (drops.no_policy)"
                              : "open: traffic is forwarded untouched");
        if (!telemetry) start_observability(*app);

        app->workers.launch(app->stop);
        spdlog::info(
            "segwire running: {} worker(s), telemetry at /var/run/dpdk/{}/dpdk_telemetry.v2",
            cfg.workers, cfg.eal.file_prefix);
        // The control thread. Later issues add policy sync and log export here; it never polls.
        auto next_report = std::chrono::steady_clock::now();
        uint64_t midstream_logged[2] = {0, 0};  // resets, suppressed: last logged sums
        uint64_t l7_tls_generation = 0;
        while (!app->stop.load()) {
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
            const bool reload = g_reload.exchange(false);
            if (reload && app->routing) {
                // routing.routes are re-read from the config file; a file that does not validate
                // (or a table that cannot be built) is refused whole and the routes stay.
                try {
                    config::ApplianceConfig fresh = config::load_appliance_config(app->config_path);
                    if (!fresh.routed) throw std::runtime_error("mode: no longer routed");
                    app->routing->reload(fresh.routing.routes);
                } catch (const std::exception &e) {
                    spdlog::error("routing: reload refused, the routes in force stay: {}",
                                  e.what());
                }
            }
            if (!app->enforcement) continue;
            if (app->sync && app->l7) {
                uint64_t gen;
                auto tls = app->l7->tls_services(&gen);
                if (gen != l7_tls_generation) {
                    app->sync->set_service_certificates(app->l7->dir() + "/tls", std::move(tls));
                    l7_tls_generation = gen;
                }
            }
            if (app->sync) {
                if (auto b = app->sync->take_bundle()) {
                    try {
                        std::string v = app->enforcement->apply_bundle(*b);
                        app->sync->bundle_applied(*b, v);
                    } catch (const std::exception &) {
                        // Logged and counted by Enforcement; the Console hears of it in the
                        // next heartbeat and in an event log.
                        app->sync->bundle_rejected(app->enforcement->policy_status());
                    }
                }
            }
            if (std::chrono::steady_clock::now() >= next_report) {
                uint64_t profile_s = app->enforcement->report_interval_s();
                uint32_t every = app->sync
                                     ? app->sync->report_interval_s(profile_s)
                                     : static_cast<uint32_t>(std::max<uint64_t>(profile_s, 1));
                next_report = std::chrono::steady_clock::now() + std::chrono::seconds(every);
                // A failover in a scale-out set shows here: connections another appliance
                // authorized arrive mid-stream and are reset at both ends (docs/scale-out.md).
                uint64_t mid[2] = {0, 0};
                for (uint32_t w = 0; w < app->workers.size(); ++w) {
                    mid[0] += app->workers.identity_stats(w).midstream_resets.get();
                    mid[1] += app->workers.identity_stats(w).midstream_resets_suppressed.get();
                }
                if (mid[0] != midstream_logged[0] || mid[1] != midstream_logged[1])
                    spdlog::warn(
                        "mid-stream: {} refused segment(s) of connections this enforcer never saw "
                        "open answered with RSTs to both hosts, {} over "
                        "handshake.midstream_resets_per_s dropped without (clients reconnect and "
                        "authorize anew)",
                        mid[0] - midstream_logged[0], mid[1] - midstream_logged[1]);
                midstream_logged[0] = mid[0];
                midstream_logged[1] = mid[1];
                auto flows = app->enforcement->take_flow_reports();
                auto ex = app->enforcement->take_exception_reports();
                auto dns = app->enforcement->take_dns_reports();
                std::vector<std::string> api =
                    app->l7 ? app->l7->take_reports() : std::vector<std::string>();
                if (app->sync)
                    app->sync->submit_reports(std::move(flows), std::move(ex), std::move(dns),
                                              std::move(api));
                if (app->l7) refresh_l7_credentials(*app, ecfg.identity);
            }
            if (reload && !cfg.identity.policy_file.empty()) {
                // A bad file is refused whole; the policy in force stays (fail-static). The
                // refusal is logged at error level and shown by /segwire/control.
                try {
                    app->enforcement->apply_file(cfg.identity.policy_file);
                } catch (const std::exception &) {
                }
            }
            app->enforcement->tick();
        }
        spdlog::info("shutting down");
        rte_eal_mp_wait_lcore();
        uint64_t rx = 0, tx = 0;
        for (uint32_t w = 0; w < app->workers.size(); ++w) {
            const dp::WorkerStats &s = app->workers.stats(w);
            for (int i = 0; i < 2; ++i) rx += s.rx_pkts[i].get(), tx += s.tx_pkts[i].get();
        }
        spdlog::info("forwarded {} of {} packets received", tx, rx);
        if (app->sync) {
            // Whatever was decided since the last interval goes to the spool, not to waste.
            app->enforcement->tick();
            app->sync->submit_reports(
                app->enforcement->take_flow_reports(), app->enforcement->take_exception_reports(),
                app->enforcement->take_dns_reports(),
                app->l7 ? app->l7->take_reports() : std::vector<std::string>());
            app->sync->stop();
        }
        if (app->enforcement) app->enforcement->stop();
        shut_ports(*app);
    } catch (const std::exception &e) {
        spdlog::critical("{}", e.what());
        app->stop.store(true);
        rte_eal_mp_wait_lcore();
        rc = 1;
    }
    return finish(std::move(app), rc);
}

}  // namespace

int main(int argc, char **argv) {
    std::string config_path;
    bool check = false;
    static option opts[] = {{"config", required_argument, nullptr, 'c'},
                            {"check", no_argument, nullptr, 'k'},
                            {"help", no_argument, nullptr, 'h'},
                            {"version", no_argument, nullptr, 'V'},
                            {nullptr, 0, nullptr, 0}};
    int o;
    while ((o = getopt_long(argc, argv, "c:hV", opts, nullptr)) != -1) {
        switch (o) {
            case 'V':
                std::printf("segwire %s\n", segwire::version_line());
                return 0;
            case 'c':
                config_path = optarg;
                break;
            case 'k':
                check = true;
                break;
            case 'h':
                usage(stdout);
                return 0;
            default:
                usage(stderr);
                return 2;
        }
    }
    if (config_path.empty()) {
        usage(stderr);
        return 2;
    }
    config::ApplianceConfig cfg;
    try {
        cfg = config::load_appliance_config(config_path);
    } catch (const config::ConfigError &e) {
        std::fprintf(stderr, "segwire: invalid config %s: %s\n", config_path.c_str(), e.what());
        return 2;
    }
    if (check) {
        std::printf("segwire: %s is valid\n", config_path.c_str());
        return 0;
    }
    setup_logging(cfg.log);
    return run(cfg, config_path);
}
