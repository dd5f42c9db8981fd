// The flow map's aggregation (tools/console/ui.cpp, docs/ui.md) on a real SQLite file: nodes from
// typed and untyped reports, edge classes, the window's bounds, truncation; and which /ui paths
// are public.
#include <gtest/gtest.h>

#include <filesystem>
#include <map>

#include "tools/console/db.hpp"
#include "tools/console/policy_store.hpp"
#include "tools/console/reports.hpp"
#include "tools/console/ui.hpp"
#include "tools/console/util.hpp"

namespace fs = std::filesystem;

namespace segwire::console {
namespace {

const std::string kExamples = std::string(SEGWIRE_SOURCE_ROOT) + "/config/examples/console";

class FlowMapTest : public ::testing::Test {
  protected:
    void SetUp() override {
        dir_ = fs::temp_directory_path() / ("segwire-flowmap-test-" + random_hex(6));
        fs::create_directories(dir_);
        db_ = std::make_unique<Db>((dir_ / "console.db").string());
        PolicyStore(*db_).load_dir(kExamples);
    }
    void TearDown() override {
        db_.reset();
        fs::remove_all(dir_);
    }
    void post(const std::string &batch, const std::string &reports,
              ReportKind kind = ReportKind::kFlow) {
        ingest_reports(*db_, kind, R"({"batchID":")" + batch + R"(","reports":[)" + reports + "]}",
                       "edge-1");
    }
    rapidjson::Document map(int64_t since, int64_t until, size_t max_edges = 2000) {
        rapidjson::Document d;
        d.Parse(flowmap_json(*db_, since, until, max_edges).c_str());
        EXPECT_TRUE(d.IsObject());
        return d;
    }
    // Edges by "source name>target name service".
    static std::map<std::string, const rapidjson::Value *> edges(const rapidjson::Document &d) {
        std::map<std::string, std::string> names;
        for (const auto &n : d["nodes"].GetArray())
            names[n["id"].GetString()] = n["name"].GetString();
        std::map<std::string, const rapidjson::Value *> out;
        for (const auto &e : d["edges"].GetArray())
            out[names[e["source"].GetString()] + ">" + names[e["target"].GetString()] + " " +
                e["service"].GetString()] = &e;
        return out;
    }

    fs::path dir_;
    std::unique_ptr<Db> db_;
};

std::string flow(const std::string &fields, int64_t ts = 1000) {
    return R"({"protocol":6,"timestamp":)" + std::to_string(ts) + "," + fields + "}";
}

TEST_F(FlowMapTest, NodesFromTypedAndUntypedReports) {
    post("b1",
         flow(R"("sourceID":"pu-frontend","destinationID":"pu-backend","destinationPort":8080,)"
              R"("action":"Accept")") +
             "," +
             // No types: "internet" is a known network's name, "pu-gone" no known object.
             flow(R"("sourceID":"internet","destinationID":"pu-frontend","destinationPort":443,)"
                  R"("action":"Accept")") +
             "," +
             flow(R"("sourceID":"pu-gone","destinationFQDN":"api.example.com",)"
                  R"("destinationPort":443,"action":"Reject")") +
             "," +
             flow(R"("sourceType":"ProcessingUnit","sourceID":"pu-db","destinationType":)"
                  R"("ExternalNetwork","destinationID":"unknown","destinationIP":"192.0.2.9",)"
                  R"("destinationPort":25,"action":"Reject")"));
    auto d = map(0, 2000);
    std::map<std::string, const rapidjson::Value *> nodes;
    for (const auto &n : d["nodes"].GetArray()) nodes[n["name"].GetString()] = &n;
    ASSERT_EQ(nodes.size(), 7u);
    EXPECT_STREQ((*nodes["frontend"])["kind"].GetString(), "pu");
    EXPECT_TRUE((*nodes["frontend"])["known"].GetBool());
    EXPECT_STREQ((*nodes["internet"])["kind"].GetString(), "external");
    EXPECT_TRUE((*nodes["internet"])["known"].GetBool());
    EXPECT_STREQ((*nodes["pu-gone"])["kind"].GetString(), "pu");
    EXPECT_FALSE((*nodes["pu-gone"])["known"].GetBool());
    EXPECT_STREQ((*nodes["api.example.com"])["id"].GetString(), "fqdn:api.example.com");
    EXPECT_STREQ((*nodes["unknown network"])["addresses"][0].GetString(), "192.0.2.9");
}

TEST_F(FlowMapTest, EdgeClassIsTheMostSevereAndCountsSumPerAction) {
    const std::string ab = R"("sourceID":"pu-frontend","destinationID":"pu-backend",)";
    post("b1", flow(ab + R"("destinationPort":8080,"action":"Accept","value":9)") + "," +
                   flow(ab + R"("destinationPort":8080,"action":"Reject","value":1,)"
                             R"("dropReason":"policy-reject")") +
                   "," +
                   flow(ab + R"("destinationPort":9090,"action":"Accept","value":3,)"
                             R"("observedAction":"Reject")") +
                   "," +
                   flow(ab + R"("destinationPort":9091,"action":"Accept","value":2,)"
                             R"("observedAction":"NotApplicable")"));
    auto d = map(0, 2000);
    auto e = edges(d);
    ASSERT_EQ(e.size(), 3u);
    const auto &mixed = *e["frontend>backend tcp/8080"];
    EXPECT_STREQ(mixed["class"].GetString(), "rejected");
    EXPECT_EQ(mixed["accepted"].GetInt64(), 9);
    EXPECT_EQ(mixed["rejected"].GetInt64(), 1);
    EXPECT_STREQ(mixed["reasons"][0].GetString(), "policy-reject");
    const auto &observed = *e["frontend>backend tcp/9090"];
    EXPECT_STREQ(observed["class"].GetString(), "observed");
    EXPECT_EQ(observed["observedRejected"].GetInt64(), 3);
    EXPECT_STREQ((*e["frontend>backend tcp/9091"])["class"].GetString(), "accepted");
    EXPECT_EQ(d["flows"].GetInt64(), 15);
}

TEST_F(FlowMapTest, WindowIncludesSinceExcludesUntil) {
    const std::string ab =
        R"("sourceID":"pu-frontend","destinationID":"pu-backend","action":"Accept",)";
    post("b1",
         flow(ab + R"("destinationPort":1)", 100) + "," + flow(ab + R"("destinationPort":2)", 200));
    post("d1",
         R"({"processingUnitID":"pu-db","resolvedName":"a.example","action":"Resolve",)"
         R"("resolvedIPs":["192.0.2.1"],"timestamp":200})",
         ReportKind::kDnsLookup);
    EXPECT_EQ(map(100, 200)["edges"].Size(), 1u);
    EXPECT_EQ(map(100, 200)["dns"].Size(), 0u);
    EXPECT_EQ(map(100, 201)["edges"].Size(), 2u);
    auto d = map(200, 201);
    ASSERT_EQ(d["dns"].Size(), 1u);
    EXPECT_STREQ(d["dns"][0]["name"].GetString(), "db");
    // The PU that only looked a name up is a node.
    ASSERT_EQ(d["nodes"].Size(), 3u);
}

TEST_F(FlowMapTest, KeepsTheBusiestEdgesAndSaysItCut) {
    std::string reports;
    for (int port = 1; port <= 5; ++port)
        reports +=
            (port > 1 ? "," : "") +
            flow(R"("sourceID":"pu-frontend","destinationID":"pu-backend","action":"Accept",)"
                 R"("destinationPort":)" +
                 std::to_string(port) + R"(,"value":)" + std::to_string(port));
    post("b1", reports);
    auto d = map(0, 2000, 2);
    EXPECT_TRUE(d["truncated"].GetBool());
    auto e = edges(d);
    ASSERT_EQ(e.size(), 2u);
    EXPECT_TRUE(e.count("frontend>backend tcp/5") && e.count("frontend>backend tcp/4"));
    EXPECT_FALSE(map(0, 2000, 5)["truncated"].GetBool());
}

TEST(FlowMapPaths, OnlyThePagesFilesArePublic) {
    for (const char *p :
         {"/ui", "/ui/", "/ui/index.html", "/ui/app.js", "/ui/style.css", "/ui/cytoscape.min.js"})
        EXPECT_TRUE(ui_public_path("GET", p)) << p;
    EXPECT_TRUE(ui_public_path("HEAD", "/ui/app.js"));
    for (const char *p :
         {"/ui/flowmap", "/ui/package.json", "/uix/app.js", "/flowreports", "/ui/data"})
        EXPECT_FALSE(ui_public_path("GET", p)) << p;
    EXPECT_FALSE(ui_public_path("POST", "/ui/app.js"));
}

}  // namespace
}  // namespace segwire::console
