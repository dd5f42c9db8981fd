// Small helpers shared by the Console: JSON in and out (rapidjson), base64, time, random IDs,
// files. Nothing here knows about HTTP or SQLite.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

namespace segwire::console {

using JsonWriter = rapidjson::Writer<rapidjson::StringBuffer>;

// Parses a request body; a syntax error or a non-object root is a 400 ConsoleError.
rapidjson::Document parse_json_object(std::string_view text, const char *what = "request body");

std::string to_json(const rapidjson::Value &v);

// Typed field access that throws 422 ConsoleError naming `field` when the type is wrong.
// Absent or null fields return the fallback (or nullptr).
const rapidjson::Value *member(const rapidjson::Value &obj, const char *key);
std::string get_string(const rapidjson::Value &obj, const char *key, const std::string &field,
                       bool required, const std::string &fallback = "");
std::vector<std::string> get_strings(const rapidjson::Value &obj, const char *key,
                                     const std::string &field);

void write_string(JsonWriter &w, const char *key, std::string_view value);
void write_strings(JsonWriter &w, const char *key, const std::vector<std::string> &values);

std::string base64_encode(std::string_view data);
bool base64_decode(std::string_view text, std::string *out);
std::string base64url_encode(std::string_view data);
bool base64url_decode(std::string_view text, std::string *out);

std::string hex(std::string_view bytes);
std::string sha256(std::string_view data);  // raw 32 bytes
std::string random_hex(size_t bytes);

int64_t now_unix();
std::string rfc3339(int64_t unix_seconds);  // "2026-11-22T08:00:00Z"
// RFC 3339 ("2026-11-22T08:00:00Z", fractions and ±hh:mm offsets allowed) or decimal seconds.
bool parse_time(std::string_view text, int64_t *unix_seconds);

std::string read_file(const std::string &path);  // throws ConsoleError(500) when unreadable
// Writes via a temporary file and rename so a crash never leaves half a key on disk.
void write_file(const std::string &path, std::string_view data, unsigned mode = 0644);

// Rows of cells as left-aligned columns two spaces apart, one line per row (CLI listings).
std::string format_table(const std::vector<std::vector<std::string>> &cells);

}  // namespace segwire::console
