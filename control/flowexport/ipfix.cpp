#include "control/flowexport/ipfix.hpp"

#include <algorithm>
#include <array>
#include <cstring>
#include <string>
#include <utility>

namespace segwire::control::flowexport::ipfix {
namespace {

constexpr uint16_t kVersion = 10;
constexpr uint16_t kTemplateSetId = 2;
constexpr size_t kHeaderLen = 16, kSetHeaderLen = 4;

// The two templates differ only in the address IEs: 5-tuple, counts, times, then segwire's strings.
constexpr Field field_at(bool v6, size_t i) {
    constexpr Field kCommon[] = {
        {7, 2, 0, "sourceTransportPort"},
        {11, 2, 0, "destinationTransportPort"},
        {4, 1, 0, "protocolIdentifier"},
        {2, 8, 0, "packetDeltaCount"},  // sent by the source (the initiator)
        {1, 8, 0, "octetDeltaCount"},
        {2, 8, kReversePen, "reversePacketDeltaCount"},  // sent by the destination
        {1, 8, kReversePen, "reverseOctetDeltaCount"},
        {152, 8, 0, "flowStartMilliseconds"},
        {153, 8, 0, "flowEndMilliseconds"},
        {136, 1, 0, "flowEndReason"},
        {uint16_t(Ie::kSourceId), kVariable, kSegwirePen, "segwireSourceID"},
        {uint16_t(Ie::kDestinationId), kVariable, kSegwirePen, "segwireDestinationID"},
        {uint16_t(Ie::kSourceType), kVariable, kSegwirePen, "segwireSourceType"},
        {uint16_t(Ie::kDestinationType), kVariable, kSegwirePen, "segwireDestinationType"},
        {uint16_t(Ie::kAction), kVariable, kSegwirePen, "segwireAction"},
        {uint16_t(Ie::kObservedAction), kVariable, kSegwirePen, "segwireObservedAction"},
        {uint16_t(Ie::kPolicyId), kVariable, kSegwirePen, "segwirePolicyID"},
        {uint16_t(Ie::kObservedPolicyId), kVariable, kSegwirePen, "segwireObservedPolicyID"},
        {uint16_t(Ie::kRuleName), kVariable, kSegwirePen, "segwireRuleName"},
        {uint16_t(Ie::kDropReason), kVariable, kSegwirePen, "segwireDropReason"},
        {uint16_t(Ie::kIdentityMode), kVariable, kSegwirePen, "segwireIdentityMode"},
    };
    if (i == 0)
        return v6 ? Field{27, 16, 0, "sourceIPv6Address"} : Field{8, 4, 0, "sourceIPv4Address"};
    if (i == 1)
        return v6 ? Field{28, 16, 0, "destinationIPv6Address"}
                  : Field{12, 4, 0, "destinationIPv4Address"};
    return kCommon[i - 2];
}
constexpr size_t kFields = 23;
template <bool V6, size_t... I>
constexpr std::array<Field, kFields> make_template(std::index_sequence<I...>) {
    return {field_at(V6, I)...};
}
constexpr auto kV4 = make_template<false>(std::make_index_sequence<kFields>{});
constexpr auto kV6 = make_template<true>(std::make_index_sequence<kFields>{});

void put16(std::vector<uint8_t> &b, uint16_t v) {
    b.push_back(static_cast<uint8_t>(v >> 8));
    b.push_back(static_cast<uint8_t>(v));
}
void put32(std::vector<uint8_t> &b, uint32_t v) {
    put16(b, static_cast<uint16_t>(v >> 16));
    put16(b, static_cast<uint16_t>(v));
}
void put64(std::vector<uint8_t> &b, uint64_t v) {
    put32(b, static_cast<uint32_t>(v >> 32));
    put32(b, static_cast<uint32_t>(v));
}
void set16(std::vector<uint8_t> &b, size_t at, uint16_t v) {
    b[at] = static_cast<uint8_t>(v >> 8);
    b[at + 1] = static_cast<uint8_t>(v);
}
void set32(std::vector<uint8_t> &b, size_t at, uint32_t v) {
    set16(b, at, static_cast<uint16_t>(v >> 16));
    set16(b, at + 2, static_cast<uint16_t>(v));
}

// A variable-length string (RFC 7011 section 7): one length byte below 255, else 255 and two.
// Values are at most kMaxString bytes, cut at a UTF-8 character boundary.
void put_string(std::vector<uint8_t> &b, const std::string &s) {
    size_t n = std::min(s.size(), kMaxString);
    if (n < s.size())
        while (n > 0 && (static_cast<uint8_t>(s[n]) & 0xC0) == 0x80) --n;
    b.push_back(static_cast<uint8_t>(n));  // n <= kMaxString < 255
    b.insert(b.end(), s.begin(), s.begin() + static_cast<std::ptrdiff_t>(n));
}

void put_template(std::vector<uint8_t> &b, uint16_t id, std::span<const Field> fields) {
    put16(b, id);
    put16(b, static_cast<uint16_t>(fields.size()));
    for (const Field &f : fields) {
        put16(b, f.pen ? static_cast<uint16_t>(0x8000 | f.id) : f.id);
        put16(b, f.length);
        if (f.pen) put32(b, f.pen);
    }
}

// One data record in template order (kV4 / kV6).
void encode(std::vector<uint8_t> &b, const ExportRecord &r) {
    const FlowReport &p = r.report;
    const size_t alen = r.family == 6 ? 16 : 4;
    b.insert(b.end(), r.src, r.src + alen);
    b.insert(b.end(), r.dst, r.dst + alen);
    put16(b, r.source_port);
    put16(b, p.destination_port);
    b.push_back(p.protocol);
    put64(b, p.source_packets);
    put64(b, p.source_bytes);
    put64(b, p.destination_packets);
    put64(b, p.destination_bytes);
    put64(b, r.start_ms);
    put64(b, r.end_ms);
    b.push_back(r.end_reason);
    for (const std::string *s : {&p.source_id, &p.destination_id, &p.source_type,
                                 &p.destination_type, &p.action, &p.observed_action, &p.policy_id,
                                 &p.observed_policy_id, &p.rule_name, &p.drop_reason, &p.mode})
        put_string(b, *s);
}

}  // namespace

std::span<const Field> template_fields(bool v6) {
    return v6 ? std::span<const Field>(kV6) : std::span<const Field>(kV4);
}

Writer::Writer(uint32_t observation_domain, size_t max_message)
    : domain_(observation_domain), max_(max_message) {
    buf_.reserve(max_);
    rec_.reserve(max_);
}

void Writer::begin(uint32_t export_time, bool with_templates) {
    buf_.assign(kHeaderLen, 0);
    export_time_ = export_time;
    records_ = 0;
    set_start_ = 0;
    set_id_ = 0;
    templates_ = with_templates;
    if (with_templates) {
        const size_t start = buf_.size();
        put16(buf_, kTemplateSetId);
        put16(buf_, 0);
        put_template(buf_, kTemplateV4, template_fields(false));
        put_template(buf_, kTemplateV6, template_fields(true));
        set16(buf_, start + 2, static_cast<uint16_t>(buf_.size() - start));
    }
}

bool Writer::add(const ExportRecord &r) {
    rec_.clear();
    encode(rec_, r);
    const uint16_t id = r.family == 6 ? kTemplateV6 : kTemplateV4;
    const size_t need = rec_.size() + (set_start_ && set_id_ == id ? 0 : kSetHeaderLen);
    if (buf_.size() + need > max_) return false;
    if (!set_start_ || set_id_ != id) {
        close_set();
        set_start_ = buf_.size();
        set_id_ = id;
        put16(buf_, id);
        put16(buf_, 0);
    }
    buf_.insert(buf_.end(), rec_.begin(), rec_.end());
    ++records_;
    return true;
}

void Writer::close_set() {
    if (set_start_) set16(buf_, set_start_ + 2, static_cast<uint16_t>(buf_.size() - set_start_));
    set_start_ = 0;
    set_id_ = 0;
}

std::span<const uint8_t> Writer::finish() {
    close_set();
    set16(buf_, 0, kVersion);
    set16(buf_, 2, static_cast<uint16_t>(buf_.size()));
    set32(buf_, 4, export_time_);
    set32(buf_, 8, sequence_);
    set32(buf_, 12, domain_);
    sequence_ += static_cast<uint32_t>(records_);  // modulo 2^32 (RFC 7011 section 3.1)
    return {buf_.data(), buf_.size()};
}

}  // namespace segwire::control::flowexport::ipfix
