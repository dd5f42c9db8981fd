// Drop reasons have one vocabulary: the SEGWIRE_DROP_REASONS table in parse.hpp names every reason
// for flow reports (dropReason), connection-exception reports and telemetry
// (drop_reason_counter_name: the same name with '-' written '_'), and docs/protocol.md §12 lists
// exactly those names. These tests hold the three together: unique well-formed names, a unique
// telemetry spelling, and the docs table.
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <string>

#include <gtest/gtest.h>

#include "dataplane/packet/parse.hpp"

namespace {

using namespace segwire::dp;

std::set<std::string> code_names(bool with_none) {
    std::set<std::string> names;
    for (size_t i = with_none ? 0 : 1; i < kDropReasonCount; ++i)
        names.insert(drop_reason_name(static_cast<DropReason>(i)));
    return names;
}

TEST(DropReasonNames, EveryReasonHasOneWellFormedUniqueName) {
    ASSERT_EQ(static_cast<size_t>(DropReason::None), 0u);
    std::set<std::string> names, tel;
    const std::regex form("[a-z0-9]+(-[a-z0-9]+)*");
    for (size_t i = 0; i < kDropReasonCount; ++i) {
        const std::string n = drop_reason_name(static_cast<DropReason>(i));
        EXPECT_NE(n, "unknown") << "reason " << i << " has no name";
        // Lower-case words joined by '-': a report name, and (with '_') a valid telemetry key
        // that no other reason can share.
        EXPECT_TRUE(std::regex_match(n, form)) << "\"" << n << "\" is not lower-case-with-hyphens";
        EXPECT_TRUE(names.insert(n).second) << "two reasons are named \"" << n << "\"";
        std::string counter = n;
        for (char &c : counter)
            if (c == '-') c = '_';
        EXPECT_EQ(drop_reason_counter_name(static_cast<DropReason>(i)), counter);
        EXPECT_TRUE(tel.insert(counter).second)
            << "two reasons share the telemetry counter \"" << counter << "\"";
    }
    EXPECT_EQ(names.size(), kDropReasonCount);
}

// The rows `| \`name\` | ...` of the table under "### Drop reasons" in docs/protocol.md.
std::set<std::string> documented_names(std::string *error) {
    const std::string path = std::string(SEGWIRE_DOCS_DIR) + "/protocol.md";
    std::ifstream in(path);
    if (!in) {
        *error = "cannot read " + path;
        return {};
    }
    std::set<std::string> names;
    const std::regex row(R"(^\| `([^`]+)` \|.*)");
    bool in_section = false;
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind("#", 0) == 0) {
            if (in_section) break;
            in_section = line.rfind("### Drop reasons", 0) == 0;
            continue;
        }
        std::smatch m;
        if (in_section && std::regex_match(line, m, row)) {
            if (!names.insert(m[1].str()).second) *error += "listed twice: " + m[1].str() + "\n";
        }
    }
    if (names.empty()) *error += "no \"### Drop reasons\" table in " + path;
    return names;
}

TEST(DropReasonDocs, ProtocolMdListsEveryReason) {
    std::string error;
    const std::set<std::string> docs = documented_names(&error);
    ASSERT_TRUE(error.empty()) << error;
    const std::set<std::string> code = code_names(false);  // "none" is never reported or counted
    for (const std::string &n : code)
        EXPECT_TRUE(docs.count(n)) << "docs/protocol.md §12 does not list \"" << n << "\"";
    for (const std::string &n : docs)
        EXPECT_TRUE(code.count(n)) << "docs/protocol.md §12 lists \"" << n
                                   << "\", which is no drop reason in parse.hpp";
}

}  // namespace
