// IPFIX (RFC 7011) messages of flow counter records: one template for IPv4 flows, one for IPv6,
// standard IEs for the 5-tuple, counts and times, RFC 5103 reverse IEs for the destination's
// counts (one biflow record per connection), and segwire's own IEs, variable-length strings
// (RFC 7011 section 7), under an enterprise number. Pure encoding: bytes in a buffer, no I/O
// (control/flowexport/exporter.cpp sends them); written by hand, see docs/export.md for why.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "control/flowexport/record.hpp"

namespace segwire::control::flowexport::ipfix {

// PEN 32473 is the IANA enterprise number reserved for documentation and examples (RFC 5612): a
// placeholder until segwire registers its own. A collector shows these IEs as that enterprise's.
inline constexpr uint32_t kSegwirePen = 32473;
inline constexpr uint32_t kReversePen = 29305;  // RFC 5103: reverse direction of a biflow
inline constexpr uint16_t kTemplateV4 = 256, kTemplateV6 = 257;
inline constexpr uint16_t kVariable = 65535;  // field length: variable (RFC 7011 section 7)
// A message fits one UDP datagram on a 1500-byte path with IPv6 and UDP headers to spare.
inline constexpr size_t kMaxMessage = 1400;
// Longest string field value; longer ones are cut (at a UTF-8 character boundary), so that any
// record fits one message.
inline constexpr size_t kMaxString = 100;

// segwire's IEs (enterprise kSegwirePen), every one a string.
enum class Ie : uint16_t {
    kSourceId = 1,        // the source's PU ID, or the external network's name (sourceID)
    kDestinationId = 2,   // the destination's (destinationID)
    kAction = 3,          // Accept | Reject
    kObservedAction = 4,  // Accept | Reject | NotApplicable
    kPolicyId = 5,
    kRuleName = 6,
    kDropReason = 7,    // empty when accepted; docs/protocol.md section 12
    kIdentityMode = 8,  // address | v1 | udp | l4 | l4-auto
    kSourceType = 9,    // ProcessingUnit | ExternalNetwork
    kDestinationType = 10,
    kObservedPolicyId = 11,
};

struct Field {
    uint16_t id;
    uint16_t length;
    uint32_t pen;      // 0: an IANA IE
    const char *name;  // as IANA (or this file) names it
};
// The fields of the IPv4 or IPv6 template, in record order.
std::span<const Field> template_fields(bool v6);

// Builds one message at a time: begin(), add() records while they fit, finish().
class Writer {
  public:
    explicit Writer(uint32_t observation_domain, size_t max_message = kMaxMessage);

    // A new message (the previous one's bytes are gone), with both templates first when asked.
    void begin(uint32_t export_time, bool with_templates);
    // Appends a data record to the message; false when it does not fit (then finish this one and
    // add it to a new one, which it always fits without templates).
    bool add(const ExportRecord &r);
    // The message's bytes: header filled in, the open set closed. Advances the sequence number
    // by the data records in it (sent or not: a collector sees a datagram lost on the way as
    // a gap).
    std::span<const uint8_t> finish();

    size_t records() const { return records_; }
    bool has_templates() const { return templates_; }
    bool empty() const { return records_ == 0 && !templates_; }
    uint32_t sequence() const { return sequence_; }  // data records in earlier messages

  private:
    void close_set();

    uint32_t domain_;
    size_t max_;
    std::vector<uint8_t> buf_, rec_;
    uint32_t export_time_ = 0;
    uint32_t sequence_ = 0;
    size_t records_ = 0;
    bool templates_ = false;
    size_t set_start_ = 0;  // offset of the open data set's header (0: none open)
    uint16_t set_id_ = 0;
};

}  // namespace segwire::control::flowexport::ipfix
