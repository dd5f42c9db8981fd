// What the Console keeps of an enforcer's refused policies: the last refusal from the heartbeat
// (kept across heartbeats without one, replaced by a newer one, listed on GET /enforcers), the
// eventlogs report kind, and the schema upgrade of a database made before either existed.
#include <gtest/gtest.h>

#include <filesystem>

#include "tools/console/console_pki.hpp"
#include "tools/console/db.hpp"
#include "tools/console/enforcers.hpp"
#include "tools/console/error.hpp"
#include "tools/console/reports.hpp"
#include "tools/console/util.hpp"

namespace fs = std::filesystem;

namespace segwire::console {
namespace {

class PolicyErrors : public ::testing::Test {
  protected:
    void SetUp() override {
        dir_ = fs::temp_directory_path() / ("segwire-console-perr-" + random_hex(6));
        fs::create_directories(dir_);
        db_ = std::make_unique<Db>((dir_ / "console.db").string());
        pki_ = std::make_unique<ConsolePki>(ConsolePki::load_or_create(dir_.string()));
        db_->exec(
            "INSERT INTO enforcers(id, name, tags, certificate, registered) "
            "VALUES('enf-b', 'b', '[]', '', 1)");
        reg_ = std::make_unique<EnforcerRegistry>(*db_, *pki_);
    }
    void TearDown() override {
        reg_.reset();
        db_.reset();
        fs::remove_all(dir_);
    }
    rapidjson::Document listed() {
        rapidjson::Document d;
        PageRequest all;
        all.all = true;
        d.Parse(reg_->list(false, all).json().c_str());
        EXPECT_TRUE(d.IsArray() && d.Size() == 1);
        return d;
    }

    fs::path dir_;
    std::unique_ptr<Db> db_;
    std::unique_ptr<ConsolePki> pki_;
    std::unique_ptr<EnforcerRegistry> reg_;
};

const char *kRefused = R"({"status": "Running", "stats": {"policyVersion": "7",
    "policyState": "Refused", "policyRefused": 1,
    "lastPolicyError": {"version": "8", "cause": "out-of-memory", "enforcedVersion": "7",
                        "error": "snapshot: (lpm6): rte_lpm6_create failed: Cannot allocate memory",
                        "time": 1795334400}}})";

TEST_F(PolicyErrors, HeartbeatRefusalIsKeptAndListed) {
    EXPECT_TRUE(reg_->require("enf-b").policy_error_json.empty());
    rapidjson::Document d = listed();
    EXPECT_FALSE(d[0].HasMember("lastPolicyError")) << "nothing refused yet";

    reg_->heartbeat("enf-b", kRefused);
    d = listed();
    ASSERT_TRUE(d[0].HasMember("lastPolicyError"));
    const auto &pe = d[0]["lastPolicyError"];
    EXPECT_STREQ(pe["version"].GetString(), "8");
    EXPECT_STREQ(pe["cause"].GetString(), "out-of-memory");
    EXPECT_STREQ(pe["enforcedVersion"].GetString(), "7");
    ASSERT_TRUE(pe.HasMember("reportedAt"));
    const std::string reported = pe["reportedAt"].GetString();
    EXPECT_STREQ(d[0]["stats"]["policyState"].GetString(), "Refused");

    // A heartbeat without a refusal (e.g. after an enforcer restart) keeps it; so does a repeat of
    // the same refusal (its first arrival time stays).
    reg_->heartbeat("enf-b", R"({"status": "Running", "stats": {"policyVersion": "9"}})");
    reg_->heartbeat("enf-b", kRefused);
    d = listed();
    ASSERT_TRUE(d[0].HasMember("lastPolicyError"));
    EXPECT_STREQ(d[0]["lastPolicyError"]["version"].GetString(), "8");
    EXPECT_EQ(d[0]["lastPolicyError"]["reportedAt"].GetString(), reported);

    // A different refusal replaces it.
    std::string newer = kRefused;
    newer.replace(newer.find(R"("version": "8")"), 14, R"("version": "10")");
    reg_->heartbeat("enf-b", newer);
    d = listed();
    EXPECT_STREQ(d[0]["lastPolicyError"]["version"].GetString(), "10");
    EXPECT_NE(d[0]["lastPolicyError"]["reportedAt"].GetString(), std::string()) << "stamped";

    try {
        reg_->heartbeat("enf-b", R"({"status": "Running", "stats": {"lastPolicyError": "x"}})");
        ADD_FAILURE() << "a non-object lastPolicyError is refused";
    } catch (const ConsoleError &e) {
        EXPECT_EQ(e.status(), 422);
        EXPECT_EQ(e.field(), "stats.lastPolicyError");
    }
    EXPECT_STREQ(listed()[0]["lastPolicyError"]["version"].GetString(), "10") << "unchanged";
}

TEST_F(PolicyErrors, EventLogsAreIngestedAndFilteredByLevel) {
    ReportKind k{};
    ASSERT_TRUE(report_kind_from_name("eventlogs", &k));
    EXPECT_EQ(k, ReportKind::kEventLog);
    auto r = ingest_reports(*db_, ReportKind::kEventLog, R"j({"batchID": "e-1", "reports": [
        {"category": "policy", "level": "Error", "title": "policy 8 refused (out-of-memory)",
         "content": "version 8 not applied, keeping version 7: ...", "targetID": "enf-b",
         "targetIdentity": "enforcer", "timestamp": 1795334400},
        {"category": "policy", "level": "Info", "content": "applied"}]})j",
                            "enf-b");
    EXPECT_EQ(r.stored, 2u);
    ReportFilter f;
    f.action = "Error";  // GET /eventlogs?level=Error
    rapidjson::Document d;
    d.Parse(query_reports(*db_, ReportKind::kEventLog, f).json().c_str());
    ASSERT_EQ(d.Size(), 1u);
    EXPECT_STREQ(d[0]["enforcerID"].GetString(), "enf-b");
    EXPECT_STREQ(d[0]["category"].GetString(), "policy");

    for (const char *bad :
         {R"({"category": "policy", "level": "Loud", "content": "x"})",
          R"({"level": "Error", "content": "x"})", R"({"category": "policy", "level": "Error"})"}) {
        try {
            ingest_reports(*db_, ReportKind::kEventLog,
                           std::string(R"({"batchID": "e-2", "reports": [)") + bad + "]}", "e");
            ADD_FAILURE() << bad;
        } catch (const ConsoleError &e) {
            EXPECT_EQ(e.status(), 422) << bad;
        }
    }
}

TEST_F(PolicyErrors, OlderDatabaseGetsTheColumn) {
    reg_->heartbeat("enf-b", kRefused);
    reg_.reset();
    db_->exec("ALTER TABLE enforcers DROP COLUMN policy_error");  // as made before this change,
    db_->exec("DROP TABLE schema_version");                       // and before versioned migrations
    db_.reset();
    db_ = std::make_unique<Db>((dir_ / "console.db").string());
    reg_ = std::make_unique<EnforcerRegistry>(*db_, *pki_);
    EXPECT_TRUE(reg_->require("enf-b").policy_error_json.empty());
    reg_->heartbeat("enf-b", kRefused);
    EXPECT_NE(reg_->require("enf-b").policy_error_json.find("out-of-memory"), std::string::npos);
}

}  // namespace
}  // namespace segwire::console
