#include "control/state_seal.hpp"

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "control/console_client.hpp"
#include "crypto/bytes.hpp"
#include "crypto/hmac.hpp"

namespace segwire::control {
namespace {

constexpr int kFormat = 1;

std::array<uint8_t, 32> state_mac(std::string_view kind, std::string_view enforcer_id,
                                  int64_t saved_at, std::string_view body, const StateKey &key) {
    std::string msg = "segwire/v1 state\n";
    msg.append(kind).append("\n").append(enforcer_id).append("\n");
    msg.append(std::to_string(saved_at)).append("\n").append(body);
    return crypto::hmac_sha256(key, crypto::as_bytes(msg.data(), msg.size()));
}

UnsealResult fail(SealError e, std::string detail) {
    UnsealResult r;
    r.error = e;
    r.detail = std::move(detail);
    return r;
}

}  // namespace

const char *to_string(SealError e) noexcept {
    switch (e) {
        case SealError::kMalformed:
            return "malformed";
        case SealError::kUnsigned:
            return "unsigned";
        case SealError::kTampered:
            return "tampered";
        case SealError::kWrongSubject:
            return "wrong-subject";
        case SealError::kTooOld:
            return "too-old";
        case SealError::kFromTheFuture:
            return "from-the-future";
    }
    return "?";
}

std::string seal_state(std::string_view kind, std::string_view enforcer_id, int64_t saved_at,
                       std::string_view body, const StateKey &key) {
    const auto mac = state_mac(kind, enforcer_id, saved_at, body, key);
    rapidjson::StringBuffer sb;
    rapidjson::Writer<rapidjson::StringBuffer> w(sb);
    auto str = [&](const char *k, std::string_view v) {
        w.Key(k);
        w.String(v.data(), static_cast<rapidjson::SizeType>(v.size()));
    };
    w.StartObject();
    w.Key("segwireState");
    w.Int(kFormat);
    str("kind", kind);
    str("enforcerID", enforcer_id);
    w.Key("savedAt");
    w.Int64(saved_at);
    str("body", body);
    str("mac", base64_encode(std::string(mac.begin(), mac.end())));
    w.EndObject();
    return sb.GetString();
}

UnsealResult unseal_state(std::string_view text, std::string_view kind,
                          std::string_view enforcer_id, const StateKey &key, int64_t now,
                          int64_t max_age_s) {
    rapidjson::Document d;
    d.Parse(text.data(), text.size());
    if (d.HasParseError()) return fail(SealError::kMalformed, "not JSON (cut short?)");
    if (!d.IsObject() || !d.HasMember("segwireState"))
        return fail(SealError::kUnsigned,
                    "no seal (written by a segwire that did not seal its state, or by hand)");
    auto field = [&](const char *k) -> const rapidjson::Value * {
        auto it = d.FindMember(k);
        return it == d.MemberEnd() ? nullptr : &it->value;
    };
    const auto *fmt = field("segwireState"), *k = field("kind"), *id = field("enforcerID"),
               *at = field("savedAt"), *body = field("body"), *mac = field("mac");
    if (!fmt->IsInt() || fmt->GetInt() != kFormat)
        return fail(SealError::kMalformed, "unknown seal format");
    if (!k || !k->IsString() || !id || !id->IsString() || !at || !at->IsInt64() || !body ||
        !body->IsString() || !mac || !mac->IsString())
        return fail(SealError::kMalformed, "seal without kind, enforcerID, savedAt, body or mac");
    std::string tag;
    try {
        tag = base64_decode(mac->GetString());
    } catch (const std::exception &) {
        return fail(SealError::kTampered, "the MAC is not base64");
    }
    const std::string_view body_text(body->GetString(), body->GetStringLength());
    const std::string_view file_kind(k->GetString(), k->GetStringLength());
    const std::string_view file_id(id->GetString(), id->GetStringLength());
    const int64_t saved_at = at->GetInt64();
    const auto want = state_mac(file_kind, file_id, saved_at, body_text, key);
    if (tag.size() != want.size() ||
        !crypto::tag_equal(reinterpret_cast<const uint8_t *>(tag.data()), want.data(), want.size()))
        return fail(SealError::kTampered,
                    "the MAC does not verify (edited, or sealed under another enforcer's key)");
    if (file_kind != kind || file_id != enforcer_id)
        return fail(SealError::kWrongSubject,
                    "sealed as \"" + std::string(file_kind) + "\" for " + std::string(file_id));
    if (saved_at > now + kClockSkewS)
        return fail(SealError::kFromTheFuture,
                    "saved " + std::to_string(saved_at - now) + " s ahead of this clock");
    if (max_age_s > 0 && now - saved_at > max_age_s)
        return fail(SealError::kTooOld, "last confirmed by the Console " +
                                            std::to_string(now - saved_at) +
                                            " s ago, more than console.cache_max_age_s (" +
                                            std::to_string(max_age_s) + " s)");
    UnsealResult r;
    r.ok = Sealed{std::string(body_text), saved_at};
    return r;
}

}  // namespace segwire::control
