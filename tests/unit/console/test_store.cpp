// PolicyStore (CRUD, directory seeding, versions, long-poll wake-up), report ingestion, profile
// candidates and the rendered bundle, on real SQLite files in a temporary directory.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

#include "config/policy/profile.hpp"
#include "tools/console/audit.hpp"
#include "tools/console/db.hpp"
#include "tools/console/enforcers.hpp"
#include "tools/console/error.hpp"
#include "tools/console/policy_store.hpp"
#include "tools/console/reports.hpp"
#include "tools/console/util.hpp"

namespace fs = std::filesystem;

namespace segwire::console {
namespace {

const std::string kExamples = std::string(SEGWIRE_SOURCE_ROOT) + "/config/examples/console";

class StoreTest : public ::testing::Test {
  protected:
    void SetUp() override {
        dir_ = fs::temp_directory_path() / ("segwire-console-test-" + random_hex(6));
        fs::create_directories(dir_ / "policy");
        for (const auto &e : fs::directory_iterator(kExamples))
            fs::copy_file(e.path(), dir_ / "policy" / e.path().filename());
        db_ = std::make_unique<Db>((dir_ / "console.db").string());
    }
    void TearDown() override {
        db_.reset();
        fs::remove_all(dir_);
    }
    std::string policy_dir() const { return (dir_ / "policy").string(); }
    void write_policy(const std::string &name, const std::string &json) {
        std::ofstream(dir_ / "policy" / name) << json;
    }

    fs::path dir_;
    std::unique_ptr<Db> db_;
};

ConsoleError expect_error(const std::function<void()> &f) {
    try {
        f();
    } catch (const ConsoleError &e) {
        return e;
    }
    ADD_FAILURE() << "no ConsoleError";
    return ConsoleError(0, "");
}

TEST_F(StoreTest, SeedsFromDirectoryAndPersists) {
    PolicyStore s(*db_);
    uint64_t v0 = s.snapshot().version;
    EXPECT_EQ(s.load_dir(policy_dir()), 13u);  // 3 PUs, 4 rulesets, 3 nets, 1+1 profile/map, ns
    auto snap = s.snapshot();
    EXPECT_EQ(snap.version, v0 + 1);
    EXPECT_EQ(snap.set->processing_units.size(), 3u);
    EXPECT_EQ(snap.set->ns.name, "/acme/shop");
    // Unnamed IDs are stable: the same directory twice changes nothing.
    EXPECT_EQ(s.load_dir(policy_dir()), 0u);
    EXPECT_EQ(s.snapshot().version, v0 + 1);
    // A second store on the same file sees the same set and version.
    PolicyStore again(*db_);
    EXPECT_EQ(again.snapshot().version, v0 + 1);
    EXPECT_EQ(*again.snapshot().set, *s.snapshot().set);
}

TEST_F(StoreTest, CrudValidatesTheWholeSet) {
    PolicyStore s(*db_);
    s.load_dir(policy_dir());
    auto e = expect_error([&] {
        s.create(Collection::kNetworkPolicies,
                 R"({"name":"frontend","subject":[["a=b"]]})");  // duplicate name
    });
    EXPECT_EQ(e.status(), 422);
    EXPECT_EQ(e.field(), "name");
    EXPECT_EQ(e.object(), "networkrulesetpolicy \"frontend\"");
    e = expect_error([&] { s.create(Collection::kProcessingUnits, "[1]"); });
    EXPECT_EQ(e.status(), 400);

    uint64_t v = s.snapshot().version;
    std::string created =
        s.create(Collection::kExternalNetworks, R"({"name":"n1","entries":["198.51.100.0/24"]})");
    rapidjson::Document d;
    d.Parse(created.c_str());
    std::string id = d["ID"].GetString();
    EXPECT_EQ(s.snapshot().version, v + 1);
    s.replace(Collection::kExternalNetworks, id, R"({"name":"n1","entries":["198.51.100.0/25"]})");
    EXPECT_NE(s.get(Collection::kExternalNetworks, id).find("198.51.100.0/25"), std::string::npos);
    s.remove(Collection::kExternalNetworks, id);
    EXPECT_EQ(s.snapshot().version, v + 3);
    EXPECT_EQ(expect_error([&] { s.get(Collection::kExternalNetworks, id); }).status(), 404);
    e = expect_error(
        [&] { s.put_namespace(R"({"name":"/x","defaultPUIncomingTrafficAction":"Drop"})"); });
    EXPECT_EQ(e.field(), "namespace.defaultPUIncomingTrafficAction");
    EXPECT_EQ(s.snapshot().version, v + 3);  // refused changes do not bump the version
}

TEST_F(StoreTest, ReloadKeepsApiEditsUnlessTheFileChanged) {
    PolicyStore s(*db_);
    s.load_dir(policy_dir());
    auto find_net = [&](const std::string &name) {
        for (const auto &n : s.snapshot().set->external_networks)
            if (n.name == name) return n;
        return policy::ExternalNetwork{};
    };
    std::string dns_id = find_net("dns").id;
    s.replace(Collection::kExternalNetworks, dns_id,
              R"({"name":"dns","entries":["192.0.2.1"],"associatedTags":["net=dns"]})");
    s.load_dir(policy_dir());  // files unchanged → API edit stays
    EXPECT_EQ(find_net("dns").entries, std::vector<std::string>{"192.0.2.1"});

    // The file changes the object → the file wins.
    write_policy("40-externalnetworks.json", R"({"externalnetworks":[
        {"name":"dns","associatedTags":["net=dns"],"entries":["192.0.2.2"]},
        {"name":"internet","associatedTags":["net=internet"],"entries":["0.0.0.0/0"]}]})");
    s.load_dir(policy_dir());
    EXPECT_EQ(find_net("dns").entries, std::vector<std::string>{"192.0.2.2"});
    EXPECT_EQ(find_net("mirrors").name, "");  // removed from the files → removed

    // An invalid directory is refused whole and names the file; the set stays.
    uint64_t v = s.snapshot().version;
    write_policy("90-bad.json", R"({"processingunits":[{"ID":"x","name":"x",
        "addresses":["10.0.0.1/8"]}]})");
    auto e = expect_error([&] { s.load_dir(policy_dir()); });
    EXPECT_EQ(e.status(), 422);
    EXPECT_NE(std::string(e.what()).find("90-bad.json"), std::string::npos) << e.what();
    EXPECT_EQ(e.field(), "addresses[0]");
    EXPECT_EQ(s.snapshot().version, v);
}

TEST_F(StoreTest, WaitForChangeWakesPromptlyAndTimesOut) {
    PolicyStore s(*db_);
    s.load_dir(policy_dir());
    uint64_t v = s.snapshot().version;
    auto t0 = std::chrono::steady_clock::now();
    EXPECT_EQ(s.wait_for_change(v, std::chrono::milliseconds(200)).version, v);
    EXPECT_GE(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(190));

    std::thread writer([&] {
        s.create(Collection::kExternalNetworks, R"({"name":"w","entries":["192.0.2.0/24"]})");
    });
    t0 = std::chrono::steady_clock::now();
    auto snap = s.wait_for_change(v, std::chrono::seconds(30));
    auto waited = std::chrono::steady_clock::now() - t0;
    writer.join();
    EXPECT_EQ(snap.version, v + 1);
    EXPECT_LT(waited, std::chrono::seconds(15));  // woken by the change, not the timeout
}

TEST_F(StoreTest, RevisionsRefuseStaleWritesAndEveryWriteIsAudited) {
    PolicyStore s(*db_);
    s.load_dir(policy_dir());
    Actor ops{"app-ops", "ops", "admin", "Certificate"};
    rapidjson::Document d;
    d.Parse(s.create(Collection::kExternalNetworks,
                     R"({"name":"n1","entries":["198.51.100.0/24"]})", ops)
                .c_str());
    const std::string id = d["ID"].GetString();
    const uint64_t r1 = d["revision"].GetUint64();
    EXPECT_EQ(r1, s.snapshot().version);
    s.replace(Collection::kExternalNetworks, id, R"({"name":"n1","entries":["198.51.100.0/25"]})",
              ops, r1);
    uint64_t r2 = 0;
    s.get(Collection::kExternalNetworks, id, &r2);
    EXPECT_GT(r2, r1);
    auto e = expect_error([&] {
        s.replace(Collection::kExternalNetworks, id, R"({"name":"n1","entries":["192.0.2.0/24"]})",
                  ops, r1);
    });
    EXPECT_EQ(e.status(), 409);
    EXPECT_EQ(e.field(), "If-Match");
    // A body's revision counts when no If-Match is given.
    e = expect_error([&] {
        s.replace(
            Collection::kExternalNetworks, id,
            R"({"name":"n1","entries":["192.0.2.0/24"],"revision":)" + std::to_string(r1) + "}",
            ops);
    });
    EXPECT_EQ(e.status(), 409);
    e = expect_error([&] { s.remove(Collection::kExternalNetworks, id, ops, r1); });
    EXPECT_EQ(e.status(), 409);
    // Other objects keep their revisions; a restart keeps them all.
    PolicyStore again(*db_);
    uint64_t r3 = 0;
    again.get(Collection::kExternalNetworks, id, &r3);
    EXPECT_EQ(r3, r2);
    s.remove(Collection::kExternalNetworks, id, ops, r2);

    rapidjson::Document log;
    AuditFilter by_ops;
    by_ops.who = "app-ops";
    by_ops.page.limit = 100;
    log.Parse(query_audit(*db_, by_ops).json().c_str());
    ASSERT_EQ(log.Size(), 3u);  // create, replace, delete; the refused writes left no trace
    EXPECT_STREQ(log[0]["action"].GetString(), "create");
    EXPECT_STREQ(log[1]["action"].GetString(), "replace");
    EXPECT_EQ(log[1]["revision"].GetUint64(), r2);
    EXPECT_STREQ(log[2]["action"].GetString(), "delete");
    EXPECT_STREQ(log[2]["detail"]["entries"][0].GetString(), "198.51.100.0/25");
    EXPECT_THROW(db_->exec("DELETE FROM auditlog"), ConsoleError);
}

TEST_F(StoreTest, ReportBatchesAreStoredOnce) {
    std::string batch = R"({"batchID":"b-1","enforcerID":"e1","reports":[
        {"sourceID":"pu-a","destinationID":"pu-b","destinationPort":80,"protocol":6,
         "action":"Accept","value":4,"ruleName":"web"},
        {"sourceIP":"10.0.0.1","destinationIP":"10.0.0.2","destinationPort":22,"protocol":6,
         "action":"Reject","value":1,"dropReason":"policy"}]})";
    auto r1 = ingest_reports(*db_, ReportKind::kFlow, batch, "e1");
    EXPECT_FALSE(r1.duplicate);
    EXPECT_EQ(r1.stored, 2u);
    auto r2 = ingest_reports(*db_, ReportKind::kFlow, batch, "e1");
    EXPECT_TRUE(r2.duplicate);
    // The enforcer is the caller's, never the body's: another enforcer naming e1 is refused, and
    // the same batch ID from another enforcer is its own batch (nothing can be pre-empted).
    auto named = expect_error([&] { ingest_reports(*db_, ReportKind::kFlow, batch, "e2"); });
    EXPECT_EQ(named.status(), 403);
    EXPECT_EQ(named.field(), "enforcerID");
    std::string unnamed = batch;
    unnamed.replace(unnamed.find(R"("enforcerID":"e1",)"), 18, "");
    auto r3 = ingest_reports(*db_, ReportKind::kFlow, unnamed, "e2");
    EXPECT_FALSE(r3.duplicate);
    EXPECT_EQ(r3.enforcer_id, "e2");
    std::string in_report = unnamed;
    in_report.replace(in_report.find(R"("action":"Reject")"), 0, R"("enforcerID":"e1",)");
    auto e4 = expect_error([&] { ingest_reports(*db_, ReportKind::kFlow, in_report, "e3"); });
    EXPECT_EQ(e4.field(), "reports[1].enforcerID");
    auto e = expect_error([&] {
        ingest_reports(*db_, ReportKind::kFlow,
                       R"({"batchID":"b-3","reports":[{"action":"Accept"}]})", "e1");
    });
    EXPECT_EQ(e.field(), "reports[0].sourceID");

    ReportFilter f;
    rapidjson::Document all;
    all.Parse(query_reports(*db_, ReportKind::kFlow, f).json().c_str());
    EXPECT_EQ(all.Size(), 4u);
    std::set<std::string> enforcers;
    for (const auto &r : all.GetArray()) enforcers.insert(r["enforcerID"].GetString());
    EXPECT_EQ(enforcers, (std::set<std::string>{"e1", "e2"}));
    f.action = "Reject";
    all.Parse(query_reports(*db_, ReportKind::kFlow, f).json().c_str());
    EXPECT_EQ(all.Size(), 2u);

    auto rows = aggregate_flows(*db_);
    ASSERT_EQ(rows.size(), 2u);
    EXPECT_EQ(rows[0].source, "pu-a");
    EXPECT_EQ(rows[0].port, "tcp/80");
    EXPECT_EQ(rows[0].count, 8);  // 4 + 4 over two batches
    EXPECT_EQ(rows[1].source, "10.0.0.1");
    EXPECT_EQ(rows[1].reason, "policy");
    std::string table = format_flow_table(rows);
    EXPECT_EQ(table.substr(0, 6), "SOURCE");
    EXPECT_NE(table.find("web"), std::string::npos);
}

TEST_F(StoreTest, ProfileCandidatesAgreeWithResolveAndBundleParses) {
    PolicyStore s(*db_);
    s.load_dir(policy_dir());
    auto snap = s.snapshot();
    EnforcerRecord r{"enf-1", "gw", {"role=appliance", "site=dc1"}, "", 0, 0, "", ""};
    auto tags = enforcer_match_tags(r);
    EXPECT_EQ(policy::resolve_profile(*snap.set, tags).profile->name, "shop-appliance");
    EXPECT_EQ(profile_candidates(*snap.set, tags), std::vector<std::string>{"shop-appliance"});

    const std::string ca = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
    const std::string ref(64, 'a');
    std::string bundle = render_bundle(*snap.set, snap.version, r, ca, {ref});
    rapidjson::Document d;
    d.Parse(bundle.c_str());
    ASSERT_FALSE(d.HasParseError());
    EXPECT_STREQ(d["enforcerID"].GetString(), "enf-1");
    EXPECT_EQ(d["version"].GetString(), std::to_string(snap.version));
    ASSERT_TRUE(d["revokedCertificates"].IsArray());
    ASSERT_EQ(d["revokedCertificates"].Size(), 1u);
    EXPECT_EQ(d["revokedCertificates"][0].GetString(), ref);
    // The model's parser accepts the bundle once the top-level trust copy and the revocation
    // list are taken out (what the enforcer does).
    d.RemoveMember("trustedCAs");
    d.RemoveMember("revokedCertificates");
    policy::PolicySet parsed = policy::parse_policy_set(to_json(d));
    ASSERT_EQ(parsed.enforcer_profiles.size(), 1u);
    EXPECT_EQ(parsed.enforcer_profiles[0].trusted_cas.back(), ca);
    EXPECT_EQ(parsed.processing_units, snap.set->processing_units);

    s.create(Collection::kEnforcerProfiles, R"({"name":"other","associatedTags":["p=o"]})");
    s.create(Collection::kMappings, R"({"name":"m2","subject":[["site=dc1"]],
                                        "object":[["p=o"]]})");
    snap = s.snapshot();
    EXPECT_EQ(profile_candidates(*snap.set, tags),
              (std::vector<std::string>{"shop-appliance", "other"}));
    auto e = expect_error([&] { resolve_enforcer_profile(*snap.set, r); });
    EXPECT_EQ(e.status(), 409);
    EXPECT_TRUE(e.has_candidates());
    EXPECT_EQ(e.candidates().size(), 2u);
}

TEST_F(StoreTest, FallbackMappingsCountOnlyWhenNothingElseMatches) {
    PolicyStore s(*db_);
    s.load_dir(policy_dir());
    s.create(Collection::kEnforcerProfiles, R"({"name":"default","associatedTags":["p=d"]})");
    s.create(Collection::kMappings, R"({"name":"fb","fallback":true,"subject":[["role=*"]],
                                        "object":[["p=d"]]})");
    EnforcerRecord dc1{"e1", "", {"role=appliance", "site=dc1"}, "", 0, 0, "", ""};
    EnforcerRecord dc2{"e2", "", {"role=appliance", "site=dc2"}, "", 0, 0, "", ""};
    auto snap = s.snapshot();
    for (const auto &r : {dc1, dc2}) {
        auto tags = enforcer_match_tags(r);
        std::string resolved = policy::resolve_profile(*snap.set, tags).profile->name;
        EXPECT_EQ(profile_candidates(*snap.set, tags), std::vector<std::string>{resolved});
        EXPECT_EQ(resolve_enforcer_profile(*snap.set, r).name, resolved);
    }
    EXPECT_EQ(resolve_enforcer_profile(*snap.set, dc1).name, "shop-appliance");
    EXPECT_EQ(resolve_enforcer_profile(*snap.set, dc2).name, "default");
    // $id is one of the tags mappings can select on.
    EXPECT_EQ(enforcer_match_tags(dc1).back(), "$id=e1");
}

}  // namespace
}  // namespace segwire::console
