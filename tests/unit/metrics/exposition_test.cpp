// The text exposition writer (config/metrics/exposition.cpp): HELP and TYPE lines, label value
// escaping, value formatting, and the naming conventions it refuses to break.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <stdexcept>

#include "config/metrics/exposition.hpp"
#include "tests/unit/metrics/exposition_check.hpp"

namespace segwire::metrics {
namespace {

using testing::find;
using testing::parse_exposition;

TEST(Exposition, FamilyHasHelpThenTypeThenSamples) {
    Exposition x;
    x.counter("segwire_things_total", "Things seen.")
        .sample(3, {{"worker", "0"}})
        .sample(4, {{"worker", "1"}});
    x.gauge("segwire_level", "How full.").sample(7);
    EXPECT_EQ(x.text(),
              "# HELP segwire_things_total Things seen.\n"
              "# TYPE segwire_things_total counter\n"
              "segwire_things_total{worker=\"0\"} 3\n"
              "segwire_things_total{worker=\"1\"} 4\n"
              "# HELP segwire_level How full.\n"
              "# TYPE segwire_level gauge\n"
              "segwire_level 7\n");
    EXPECT_TRUE(parse_exposition(x.text()).problems.empty());
}

TEST(Exposition, LabelValuesAreEscaped) {
    EXPECT_EQ(escape_label_value(R"(a\b)"), R"(a\\b)");
    EXPECT_EQ(escape_label_value("say \"hi\""), R"(say \"hi\")");
    EXPECT_EQ(escape_label_value("two\nlines"), R"(two\nlines)");
    EXPECT_EQ(escape_label_value("plain-value_1.2/x"), "plain-value_1.2/x");
    EXPECT_EQ(escape_label_value(""), "");
    // Valid UTF-8 passes unchanged; what is not becomes U+FFFD (Prometheus refuses the scrape).
    EXPECT_EQ(escape_label_value("caf\xC3\xA9"), "caf\xC3\xA9");
    EXPECT_EQ(escape_label_value("\xF0\x9F\x94\x92"), "\xF0\x9F\x94\x92");
    EXPECT_EQ(escape_label_value("a\xFFz"), "a\xEF\xBF\xBDz");
    EXPECT_EQ(escape_label_value("\xC3"), "\xEF\xBF\xBD");                  // truncated
    EXPECT_EQ(escape_label_value("\xC0\xAF"), "\xEF\xBF\xBD\xEF\xBF\xBD");  // overlong '/'
    EXPECT_EQ(escape_label_value("\xED\xA0\x80"),
              "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // a surrogate
    // Round trip through an independent reader.
    Exposition x;
    x.gauge("segwire_policy_bundle_info", "Bundle.").sample(1, {{"version", "v\"1\"\\\nnext"}});
    const auto p = parse_exposition(x.text());
    ASSERT_TRUE(p.problems.empty()) << p.problems[0];
    ASSERT_EQ(p.samples.size(), 1u);
    EXPECT_EQ(p.samples[0].labels.at("version"), "v\"1\"\\\nnext");
}

TEST(Exposition, HelpIsEscapedButKeepsQuotes) {
    EXPECT_EQ(escape_help("a \"b\" \\ c\nd"), R"(a "b" \\ c\nd)");
    Exposition x;
    x.gauge("segwire_x", "line one\nline \\two").sample(0);
    EXPECT_NE(x.text().find("# HELP segwire_x line one\\nline \\\\two\n"), std::string::npos);
    const auto p = parse_exposition(x.text());
    ASSERT_TRUE(p.problems.empty()) << p.problems[0];
    EXPECT_EQ(p.help.at("segwire_x"), "line one\nline \\two");
}

TEST(Exposition, Values) {
    EXPECT_EQ(format_value(0), "0");
    EXPECT_EQ(format_value(42), "42");
    EXPECT_EQ(format_value(0.25), "0.25");
    EXPECT_EQ(format_value(-1.5), "-1.5");
    EXPECT_EQ(format_value(1e21), "1e+21");
    EXPECT_EQ(format_value(std::numeric_limits<double>::quiet_NaN()), "NaN");
    EXPECT_EQ(format_value(std::numeric_limits<double>::infinity()), "+Inf");
    EXPECT_EQ(format_value(-std::numeric_limits<double>::infinity()), "-Inf");
    // Counters are written as exact integers, also past 2^53.
    Exposition x;
    x.counter("segwire_big_total", "Big.").sample(18446744073709551615ull);
    EXPECT_NE(x.text().find("segwire_big_total 18446744073709551615\n"), std::string::npos);
}

TEST(Exposition, CountersEndInTotalAndNothingElseDoes) {
    Exposition x;
    EXPECT_THROW(x.counter("segwire_packets", "No suffix."), std::logic_error);
    EXPECT_THROW(x.gauge("segwire_packets_total", "A gauge named like a counter."),
                 std::logic_error);
    EXPECT_NO_THROW(x.counter("segwire_packets_total", "Fine."));
    EXPECT_NO_THROW(x.gauge("segwire_packets_in_flight", "Fine."));
}

TEST(Exposition, NamesAreSnakeCaseDeclaredOnceWithHelp) {
    Exposition x;
    EXPECT_THROW(x.gauge("segwire-flows", "Dash."), std::logic_error);
    EXPECT_THROW(x.gauge("SegwireFlows", "Camel."), std::logic_error);
    EXPECT_THROW(x.gauge("9flows", "Digit first."), std::logic_error);
    EXPECT_THROW(x.gauge("segwire:flows", "Colons are for recording rules."), std::logic_error);
    EXPECT_THROW(x.gauge("", "Empty."), std::logic_error);
    EXPECT_THROW(x.gauge("segwire_flows", ""), std::logic_error);
    x.gauge("segwire_flows", "Flows.");
    EXPECT_THROW(x.gauge("segwire_flows", "Again."), std::logic_error);
    EXPECT_TRUE(valid_name("segwire_flows_2"));
    EXPECT_FALSE(valid_name("segwire flows"));
}

TEST(Exposition, LabelNamesAreCheckedAndUnique) {
    Exposition x;
    EXPECT_THROW(x.sample(1), std::logic_error);  // before any family
    x.gauge("segwire_g", "G.");
    EXPECT_THROW(x.sample(1, {{"Worker", "0"}}), std::logic_error);
    EXPECT_THROW(x.sample(1, {{"__name__", "x"}}), std::logic_error);
    EXPECT_THROW(x.sample(1, {{"drop-reason", "x"}}), std::logic_error);
    EXPECT_THROW(x.sample(1, {{"port", "inside"}, {"port", "outside"}}), std::logic_error);
    EXPECT_NO_THROW(x.sample(1, {{"port", "inside"}, {"reason", "policy-reject"}}));
    const auto s = find(parse_exposition(x.take()), "segwire_g", {{"reason", "policy-reject"}});
    ASSERT_EQ(s.size(), 1u);
}

TEST(Exposition, TheIndependentReaderCatchesWhatPromtoolWould) {
    // The reader the render tests rely on must itself fail on broken input.
    EXPECT_FALSE(parse_exposition("segwire_x 1\n").problems.empty());  // no HELP/TYPE
    EXPECT_FALSE(parse_exposition("# HELP segwire_x X.\n# TYPE segwire_x counter\nsegwire_x 1\n")
                     .problems.empty());  // counter without _total
    EXPECT_FALSE(parse_exposition("# HELP a_total A.\n# TYPE a_total counter\n"
                                  "a_total{l=\"bad\\q\"} 1\n")
                     .problems.empty());  // bad escape
    EXPECT_FALSE(parse_exposition("# HELP g G.\n# TYPE g gauge\ng one\n").problems.empty());
    EXPECT_FALSE(parse_exposition("# HELP g G.\n# TYPE g gauge\n# HELP h H.\n# TYPE h gauge\n"
                                  "g 1\n")
                     .problems.empty());  // a sample away from its family
}

}  // namespace
}  // namespace segwire::metrics
