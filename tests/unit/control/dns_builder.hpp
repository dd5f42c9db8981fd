// Test-only DNS message writer. A DnsMsg computes its header counts from its sections unless a
// test overrides them, and reports the offset of each record's owner and RDATA so that a later
// record can point at an earlier name with a compression pointer.
#pragma once

#include <arpa/inet.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "control/dns/dns_message.hpp"

namespace segwire::dptest {

using Bytes = std::vector<uint8_t>;

inline Bytes operator+(Bytes a, const Bytes &b) {
    a.insert(a.end(), b.begin(), b.end());
    return a;
}

inline void push16(Bytes &b, uint16_t v) {
    b.push_back(static_cast<uint8_t>(v >> 8));
    b.push_back(static_cast<uint8_t>(v));
}
inline void push32(Bytes &b, uint32_t v) {
    push16(b, static_cast<uint16_t>(v >> 16));
    push16(b, static_cast<uint16_t>(v));
}

// Uncompressed name: "www.example.com" -> 3www7example3com0; "" is the root.
inline Bytes labels(std::string_view dotted) {
    Bytes b;
    while (!dotted.empty()) {
        const size_t dot = dotted.find('.');
        const std::string_view l = dotted.substr(0, dot);
        b.push_back(static_cast<uint8_t>(l.size()));
        b.insert(b.end(), l.begin(), l.end());
        if (dot == std::string_view::npos) break;
        dotted.remove_prefix(dot + 1);
    }
    b.push_back(0);
    return b;
}

// A compression pointer to `off`.
inline Bytes ptr(size_t off) {
    return {static_cast<uint8_t>(0xC0 | (off >> 8)), static_cast<uint8_t>(off)};
}

// Labels of `prefix` followed by a pointer to `off` ("www" + pointer to "example.com").
inline Bytes labels_then_ptr(std::string_view prefix, size_t off) {
    Bytes b = labels(prefix);
    b.pop_back();  // no root: the pointer ends the name
    return b + ptr(off);
}

inline Bytes v4(uint8_t a, uint8_t b, uint8_t c, uint8_t d) {
    return {a, b, c, d};
}
inline Bytes v6(const char *text) {
    Bytes b(16);
    inet_pton(AF_INET6, text, b.data());
    return b;
}

struct Rr {
    Bytes owner;
    uint16_t type;
    uint32_t ttl;
    Bytes rdata;
    uint16_t cls = control::dns::kClassIn;
    int rdlength = -1;  // -1: rdata.size()
};

inline Rr rr_a(Bytes owner, Bytes addr, uint32_t ttl = 300) {
    return {std::move(owner), control::dns::kTypeA, ttl, std::move(addr)};
}
inline Rr rr_aaaa(Bytes owner, Bytes addr, uint32_t ttl = 300) {
    return {std::move(owner), control::dns::kTypeAaaa, ttl, std::move(addr)};
}
inline Rr rr_cname(Bytes owner, Bytes target, uint32_t ttl = 300) {
    return {std::move(owner), control::dns::kTypeCname, ttl, std::move(target)};
}

inline constexpr size_t kQnameOff = 12;  // the question name always starts here

struct DnsMsg {
    uint16_t id = 0x1234;
    uint16_t flags = 0x8180;  // QR, RD, RA, NOERROR
    Bytes qname = labels("www.example.com");
    uint16_t qtype = control::dns::kTypeA, qclass = control::dns::kClassIn;
    int qdcount = -1, ancount = -1;  // -1: from the sections
    std::vector<Rr> an, ns, ar;

    static Bytes record(const Rr &r) {
        Bytes b = r.owner;
        push16(b, r.type);
        push16(b, r.cls);
        push32(b, r.ttl);
        push16(b, static_cast<uint16_t>(r.rdlength < 0 ? r.rdata.size() : r.rdlength));
        return b + r.rdata;
    }
    size_t question_end() const { return kQnameOff + qname.size() + 4; }
    // Offset of answer i's owner name / RDATA (answers 0..i-1 must already be in `an`).
    size_t answer_off(size_t i) const {
        size_t off = question_end();
        for (size_t k = 0; k < i; ++k) off += record(an[k]).size();
        return off;
    }
    size_t rdata_off(size_t i) const { return answer_off(i) + an[i].owner.size() + 10; }
    size_t answers_end() const { return answer_off(an.size()); }

    Bytes bytes() const {
        Bytes b;
        push16(b, id);
        push16(b, flags);
        push16(b, static_cast<uint16_t>(qdcount < 0 ? 1 : qdcount));
        push16(b, static_cast<uint16_t>(ancount < 0 ? an.size() : ancount));
        push16(b, static_cast<uint16_t>(ns.size()));
        push16(b, static_cast<uint16_t>(ar.size()));
        b = b + qname;
        push16(b, qtype);
        push16(b, qclass);
        for (const auto *sec : {&an, &ns, &ar})
            for (const Rr &r : *sec) b = b + record(r);
        return b;
    }
};

// Parses from a heap buffer of exactly the message's size, so ASan sees any read past the end.
inline control::dns::DnsStatus parse_exact(const Bytes &msg, control::dns::DnsResponse &out) {
    std::unique_ptr<uint8_t[]> buf(new uint8_t[msg.size() ? msg.size() : 1]);
    std::copy(msg.begin(), msg.end(), buf.get());
    return control::dns::parse_dns_response(std::span<const uint8_t>(buf.get(), msg.size()), out);
}

inline std::string addr_text(const control::dns::DnsAddress &a) {
    char s[INET6_ADDRSTRLEN] = {};
    if (a.v4)
        inet_ntop(AF_INET, a.addr + 12, s, sizeof s);
    else
        inet_ntop(AF_INET6, a.addr, s, sizeof s);
    return s;
}

}  // namespace segwire::dptest
