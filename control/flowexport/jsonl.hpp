// JSON lines files of flow counter records (docs/export.md): one object per record, the Console's
// flow report field names, rotated by size. Lines are buffered and written at flush(); rotation
// happens only between lines (a line never spans two files), by renaming path -> path.1 ->
// ... -> path.keep and opening path anew, so a reader that follows the file name loses nothing.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "control/flowexport/record.hpp"

namespace segwire::control::flowexport {

// One record as a JSON object on one line (no newline).
std::string json_line(const ExportRecord &r, const std::string &enforcer_id);

struct JsonlCounts {
    uint64_t lines = 0;       // written
    uint64_t bytes = 0;       // written
    uint64_t rotations = 0;   // files rotated
    uint64_t lines_lost = 0;  // not written: the file could not be opened or written
};

class JsonlWriter {
  public:
    // Opens (appends to) `path`; throws std::runtime_error naming `field` when it cannot.
    JsonlWriter(std::string path, uint64_t rotate_bytes, uint32_t keep,
                const std::string &field = "export.jsonl.path");
    ~JsonlWriter();
    JsonlWriter(const JsonlWriter &) = delete;
    JsonlWriter &operator=(const JsonlWriter &) = delete;

    // Queues a line (without its newline); rotates first when it would take the file past
    // rotate_bytes (a file holds at least one line, however long).
    void append(std::string_view line);
    // Writes what is queued.
    void flush();
    const JsonlCounts &counts() const { return counts_; }

  private:
    void rotate();
    bool reopen();

    std::string path_;
    uint64_t rotate_bytes_;
    uint32_t keep_;
    int fd_ = -1;
    uint64_t size_ = 0;  // bytes in the current file, queued ones included
    std::string pending_;
    uint64_t pending_lines_ = 0;
    bool failing_ = false;  // the last write or open failed (logged once until it works again)
    JsonlCounts counts_;
};

}  // namespace segwire::control::flowexport
