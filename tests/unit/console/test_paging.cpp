// Keyset pages (cursor encoding, report pages that tie on timestamps, the pu union), the retention
// prune and the schema migrations, on real SQLite files in a temporary directory.
#include <gtest/gtest.h>

#include <filesystem>
#include <set>

#include "tools/console/db.hpp"
#include "tools/console/error.hpp"
#include "tools/console/migrations.hpp"
#include "tools/console/paging.hpp"
#include "tools/console/reports.hpp"
#include "tools/console/util.hpp"

namespace fs = std::filesystem;

namespace segwire::console {
namespace {

class PagingTest : public ::testing::Test {
  protected:
    void SetUp() override {
        dir_ = fs::temp_directory_path() / ("segwire-paging-test-" + random_hex(6));
        fs::create_directories(dir_);
        db_ = std::make_unique<Db>((dir_ / "console.db").string());
    }
    void TearDown() override {
        db_.reset();
        fs::remove_all(dir_);
    }
    // `n` flow reports, three per timestamp, source alternating pu-a/pu-b, destination pu-c.
    void ingest(int n, int64_t t0, const std::string &batch) {
        std::string body = R"({"batchID": ")" + batch + R"(", "reports": [)";
        for (int i = 0; i < n; ++i)
            body += std::string(i ? "," : "") + R"({"sourceID": "pu-)" + (i % 2 ? "b" : "a") +
                    R"(", "destinationID": "pu-c", "action": "Accept", "ruleName": ")" + batch +
                    std::to_string(i) + R"(", "timestamp": )" + std::to_string(t0 + i / 3) + "}";
        ingest_reports(*db_, ReportKind::kFlow, body + "]}", "enf-1");
    }
    std::vector<std::string> walk(ReportFilter f, int *pages = nullptr) {
        std::vector<std::string> names;
        for (int p = 1;; ++p) {
            Page page = query_reports(*db_, ReportKind::kFlow, f);
            for (const auto &row : page.rows) {
                rapidjson::Document d;
                d.Parse(row.c_str());
                names.push_back(d["ruleName"].GetString());
            }
            if (!page.next_key) {
                if (pages) *pages = p;
                return names;
            }
            EXPECT_EQ(static_cast<int64_t>(page.rows.size()), f.page.limit);
            f.page.after = *page.next_key;
        }
    }
    fs::path dir_;
    std::unique_ptr<Db> db_;
};

int status_of(const std::function<void()> &f, std::string *field) {
    try {
        f();
    } catch (const ConsoleError &e) {
        *field = e.field();
        return e.status();
    }
    return 0;
}

TEST(Cursor, RoundTripsAndRefusesAnotherListOrOrder) {
    const std::string c = encode_cursor("flowreports", false, "1796000000.42");
    EXPECT_EQ(decode_cursor(c, "flowreports", false), "1796000000.42");
    std::string field;
    EXPECT_EQ(status_of([&] { decode_cursor(c, "eventlogs", false); }, &field), 400);
    EXPECT_EQ(field, "cursor");
    EXPECT_EQ(status_of([&] { decode_cursor(c, "flowreports", true); }, &field), 400);
    EXPECT_EQ(status_of([&] { decode_cursor("%%", "flowreports", false); }, &field), 400);
    EXPECT_EQ(status_of([&] { decode_cursor(base64url_encode("x"), "x", false); }, &field), 400);
    int64_t ts = 0, seq = 0;
    EXPECT_TRUE(parse_report_key("17.3", &ts, &seq));
    EXPECT_EQ(ts, 17);
    EXPECT_EQ(seq, 3);
    EXPECT_FALSE(parse_report_key("17", &ts, &seq));
    EXPECT_FALSE(parse_report_key("17.x", &ts, &seq));
    EXPECT_EQ(percent_encode("a b/c=d~"), "a%20b%2Fc%3Dd~");
}

TEST_F(PagingTest, PagesCoverEveryRowOnceInTimestampOrderBothWays) {
    ingest(100, 1000, "x");
    ReportFilter f;
    f.page.limit = 7;  // pages end in the middle of a timestamp's three rows
    int pages = 0;
    auto asc = walk(f, &pages);
    EXPECT_EQ(pages, 15);
    ASSERT_EQ(asc.size(), 100u);
    EXPECT_EQ(std::set<std::string>(asc.begin(), asc.end()).size(), 100u);
    for (int i = 0; i < 100; ++i) EXPECT_EQ(asc[i], "x" + std::to_string(i));
    f.page.descending = true;
    auto desc = walk(f);
    EXPECT_EQ(std::vector<std::string>(asc.rbegin(), asc.rend()), desc);

    // pu: either side; the union is merged in order and paged like the rest.
    ReportFilter pu;
    pu.pu = "pu-b";
    pu.page.limit = 4;
    auto b = walk(pu);
    ASSERT_EQ(b.size(), 50u);
    EXPECT_EQ(b[0], "x1");
    EXPECT_EQ(b[49], "x99");
    pu.pu = "pu-c";
    EXPECT_EQ(walk(pu).size(), 100u);
    // Time range [since, until).
    ReportFilter t;
    t.since = 1010;
    t.until = 1012;
    EXPECT_EQ(walk(t), (std::vector<std::string>{"x30", "x31", "x32", "x33", "x34", "x35"}));
}

TEST_F(PagingTest, PruneDeletesOldReportsInBoundedBatches) {
    ingest(50, 1000, "old");
    ingest(10, 5000, "new");
    EXPECT_EQ(prune_reports(*db_, ReportKind::kFlow, 2000, 20), 20u);
    EXPECT_EQ(prune_reports(*db_, ReportKind::kFlow, 2000, 20), 20u);
    EXPECT_EQ(prune_reports(*db_, ReportKind::kFlow, 2000, 20), 10u);
    EXPECT_EQ(prune_reports(*db_, ReportKind::kFlow, 2000, 20), 0u);
    ReportFilter f;
    auto left = walk(f);
    ASSERT_EQ(left.size(), 10u);
    EXPECT_EQ(left[0], "new0");
    EXPECT_EQ(prune_reports(*db_, ReportKind::kEventLog, 1u << 30, 20), 0u);  // per kind
}

TEST_F(PagingTest, MigrationsAreRecordedOnceAndANewerDatabaseIsRefused) {
    EXPECT_EQ(schema_version(*db_), schema_version_known());
    db_.reset();
    db_ = std::make_unique<Db>((dir_ / "console.db").string());  // again: nothing to apply
    {
        Stmt s(*db_, "SELECT count(*), count(DISTINCT version) FROM schema_version");
        ASSERT_TRUE(s.step());
        EXPECT_EQ(s.i64(0), schema_version_known());
        EXPECT_EQ(s.i64(1), schema_version_known());
        Stmt a(*db_, "PRAGMA application_id");
        ASSERT_TRUE(a.step());
        EXPECT_EQ(a.i64(0), kApplicationId);
    }
    db_->exec("INSERT INTO schema_version VALUES(999, 'future', 0)");
    db_.reset();
    try {
        Db newer((dir_ / "console.db").string());
        ADD_FAILURE() << "a database from a newer version was opened";
    } catch (const ConsoleError &e) {
        EXPECT_NE(std::string(e.what()).find("schema version 999"), std::string::npos) << e.what();
    }
}

}  // namespace
}  // namespace segwire::console
