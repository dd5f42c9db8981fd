#include "control/console_sync.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>
#include <spdlog/spdlog.h>

#include <openssl/crypto.h>
#include <openssl/x509.h>

#include "control/state_seal.hpp"
#include "crypto/keys.hpp"
#include "crypto/pki.hpp"

namespace segwire::control {
namespace fs = std::filesystem;
namespace {

constexpr size_t kBatchReports = 1000;

int64_t now_s() {
    return static_cast<int64_t>(std::time(nullptr));
}

std::string read_file(const std::string &path) {
    std::ifstream in(path);
    if (!in) throw std::runtime_error("cannot read " + path);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

// Write-then-rename, so a crash never leaves half a file behind.
void write_atomic(const std::string &path, const std::string &text, mode_t mode = 0600) {
    const std::string tmp = path + ".tmp";
    {
        std::ofstream out(tmp, std::ios::trunc);
        if (!out || !(out << text)) throw std::runtime_error("cannot write " + tmp);
    }
    chmod(tmp.c_str(), mode);
    if (std::rename(tmp.c_str(), path.c_str()) != 0)
        throw std::runtime_error("cannot rename " + tmp);
}

std::string json_error(const HttpResponse &r) {
    if (r.status == 0) return r.error;
    rapidjson::Document d;
    d.Parse(r.body.c_str());
    std::string msg = "HTTP " + std::to_string(r.status);
    if (!d.HasParseError() && d.IsObject() && d.HasMember("error") && d["error"].IsString())
        msg += ": " + std::string(d["error"].GetString());
    return msg;
}

std::string str(const rapidjson::Value &o, const char *k) {
    auto it = o.FindMember(k);
    return it != o.MemberEnd() && it->value.IsString() ? it->value.GetString() : "";
}

template <class Writer>
void kv(Writer &w, const char *k, const std::string &v) {
    if (v.empty()) return;
    w.Key(k);
    w.String(v.c_str());
}

// The expiry a Console JWT states (its payload's "exp"); 0 if unreadable.
int64_t jwt_exp(const std::string &token) {
    size_t a = token.find('.'), b = token.find('.', a + 1);
    if (a == std::string::npos || b == std::string::npos) return 0;
    std::string p = token.substr(a + 1, b - a - 1);
    std::replace(p.begin(), p.end(), '-', '+');
    std::replace(p.begin(), p.end(), '_', '/');
    while (p.size() % 4) p += '=';
    try {
        rapidjson::Document d;
        std::string json = base64_decode(p);
        d.Parse(json.c_str());
        if (!d.HasParseError() && d.IsObject() && d.HasMember("exp") && d["exp"].IsInt64())
            return d["exp"].GetInt64();
    } catch (const std::exception &) {
    }
    return 0;
}

}  // namespace

ConsoleSync::ConsoleSync(const config::ApplianceConfig &cfg)
    : cfg_(cfg), state_dir_(cfg.state_dir), enforcer_id_(cfg.identity.enforcer_id) {
    fs::create_directories(state_dir_ + "/spool");
    const auto &cc = cfg.console;
    std::string url = cc.url, ca_pem;
    if (!cc.appcred.empty()) {
        rapidjson::Document d;
        std::string text = read_file(cc.appcred);
        d.Parse(text.c_str());
        if (d.HasParseError() || !d.IsObject())
            throw std::runtime_error("console.appcred: " + cc.appcred + " is not a JSON object");
        for (const char *f : {"certificate", "certificateKey", "certificateAuthority"})
            if (str(d, f).empty())
                throw std::runtime_error("console.appcred: " + cc.appcred + ": missing \"" + f +
                                         "\"");
        appcred_cert_ = base64_decode(str(d, "certificate"));
        appcred_key_ = base64_decode(str(d, "certificateKey"));
        ca_pem = base64_decode(str(d, "certificateAuthority"));
        if (url.empty()) url = str(d, "APIURL");
    }
    if (!cc.ca.empty()) ca_pem = read_file(cc.ca);
    if (url.empty())
        throw std::runtime_error("console.url: not set and the app credential has no APIURL");
    // console.url's list (replicas), else the one URL (given, or the app credential's).
    std::vector<std::string> urls = cc.urls.size() > 1 ? cc.urls : std::vector<std::string>{url};
    client_ = std::make_unique<ConsoleClient>(urls, ca_pem, cc.insecure_skip_verify);
    if (cc.insecure_skip_verify)
        spdlog::warn("console: TLS verification OFF (console.insecure_skip_verify) — tests only");
    load_spool();
}

ConsoleSync::~ConsoleSync() {
    stop();
    OPENSSL_cleanse(state_key_.data(), state_key_.size());
}

void ConsoleSync::set_error(const std::string &e) {
    std::lock_guard<std::mutex> lock(mu_);
    if (st_.connected || st_.last_error != e) spdlog::warn("console: {}", e);
    st_.connected = false;
    st_.last_error = e;
}

HttpResponse ConsoleSync::call(const std::string &method, const std::string &path,
                               const std::string &body, long timeout_s,
                               std::vector<std::string> headers) {
    HttpResponse r = client_->call(method, path, body, timeout_s, std::move(headers));
    if (r.status == 401) {
        // Expired or refused token: issue a new one and try once more.
        {
            std::lock_guard<std::mutex> lock(mu_);
            token_renew_at_ = 0;
        }
        if (ensure_token()) r = client_->call(method, path, body, timeout_s, {});
    }
    if (r.status == 0) set_error(client_->base_url() + ": " + r.error);
    return r;
}

std::string ConsoleSync::fetch_cloud_token(std::string &metadata) {
    const auto &cc = cfg_.console;
    const std::string md = cc.metadata_url;
    auto get = [&](const std::string &url, std::vector<std::string> h, const char *method = "GET") {
        HttpRequest q;
        q.method = method;
        q.url = url;
        q.headers = std::move(h);
        q.timeout_s = 5;
        HttpResponse r = http_call(q);
        if (!r.ok()) throw std::runtime_error("metadata " + url + ": " + json_error(r));
        return r.body;
    };
    rapidjson::StringBuffer sb;
    rapidjson::Writer<rapidjson::StringBuffer> w(sb);
    w.StartObject();
    if (cc.realm == "AWSSecurityToken") {  // IMDSv2: a session token first
        std::string t =
            get(md + "/latest/api/token", {"X-aws-ec2-metadata-token-ttl-seconds: 21600"}, "PUT");
        std::string role = get(md + "/latest/meta-data/iam/security-credentials/",
                               {"X-aws-ec2-metadata-token: " + t});
        role = role.substr(0, role.find('\n'));
        std::string creds = get(md + "/latest/meta-data/iam/security-credentials/" + role,
                                {"X-aws-ec2-metadata-token: " + t});
        rapidjson::Document d;
        d.Parse(creds.c_str());
        if (d.HasParseError() || !d.IsObject())
            throw std::runtime_error("metadata: AWS credentials are not JSON");
        // The secret key signs a GetCallerIdentity request here; only the signed request goes
        // to the Console, which replays it to STS.
        metadata = aws_presigned_caller_identity(
            {str(d, "AccessKeyId"), str(d, "SecretAccessKey"), str(d, "Token")}, cc.aws_sts_url,
            cc.aws_region, cc.audience);
        return cc.realm;
    } else if (cc.realm == "GCPIdentityToken") {
        std::string jwt =
            get(md + "/computeMetadata/v1/instance/service-accounts/default/identity?audience=" +
                    cc.audience + "&format=full",
                {"Metadata-Flavor: Google"});
        kv(w, "token", jwt);
    } else {  // AzureIdentityToken
        std::string j = get(
            md + "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=" + cc.audience,
            {"Metadata: true"});
        rapidjson::Document d;
        d.Parse(j.c_str());
        if (d.HasParseError() || !d.IsObject())
            throw std::runtime_error("metadata: Azure token answer is not JSON");
        kv(w, "token", str(d, "access_token"));
    }
    w.EndObject();
    metadata = sb.GetString();
    return cc.realm;
}

// POST /issue. True when a token was obtained.
bool ConsoleSync::authenticate() {
    const auto &cc = cfg_.console;
    {
        std::lock_guard<std::mutex> lock(mu_);
        unreachable_ = false;
    }
    std::string metadata = "{}";
    if (cc.realm != "Certificate") {
        try {
            fetch_cloud_token(metadata);
        } catch (const std::exception &e) {
            set_error(e.what());
            return false;
        }
    }
    const std::string body = "{\"realm\":\"" + cc.realm + "\",\"validity\":\"" + cc.token_validity +
                             "\",\"metadata\":" + metadata + "}";
    ConsoleClient issuer = *client_;
    issuer.set_token("");
    if (cc.realm == "Certificate") issuer.set_client_certificate(appcred_cert_, appcred_key_);
    HttpResponse r = issuer.call("POST", "/issue", body);
    {
        std::lock_guard<std::mutex> lock(mu_);
        unreachable_ = r.unreachable;
    }
    if (!r.ok()) {
        set_error("POST /issue: " + json_error(r));
        return false;
    }
    rapidjson::Document d;
    d.Parse(r.body.c_str());
    std::string token = d.HasParseError() || !d.IsObject() ? "" : str(d, "token");
    if (token.empty()) {
        set_error("POST /issue: no token in the answer");
        return false;
    }
    const int64_t now = now_s(), exp = jwt_exp(token);
    std::lock_guard<std::mutex> lock(mu_);
    token_ = token;
    client_->set_token(token);
    st_.tokens_issued++;
    st_.token_expires_at = exp;
    // Renew at half the validity (the Console's clients do the same).
    token_renew_at_ = exp > now ? now + (exp - now) / 2 : now + 60;
    return true;
}

bool ConsoleSync::ensure_token() {
    {
        std::lock_guard<std::mutex> lock(mu_);
        if (!token_.empty() && now_s() < token_renew_at_) return true;
    }
    return authenticate();
}

Enrollment ConsoleSync::enroll(config::IdentityConfig &id) {
    const std::string key_path = state_dir_ + "/enforcer.key",
                      cert_path = state_dir_ + "/enforcer.crt",
                      ca_path = state_dir_ + "/console-ca.pem";
    // Not enrolled before: with the Console out of reach the caller runs under the fail mode and
    // asks again; any other failure (TLS verification, a refusal) stops the daemon.
    auto use_cached = [&](const std::string &why, bool unreachable) {
        if (!fs::exists(key_path) || !fs::exists(cert_path) || !fs::exists(ca_path)) {
            if (unreachable) return Enrollment::kUnreachable;
            throw std::runtime_error("console: " + why + ", and no earlier enrollment in " +
                                     state_dir_);
        }
        spdlog::warn("console: {}; enforcing with the enrollment cached in {}", why, state_dir_);
        load_state_key(key_path);
        tags_ = id.tags;
        std::error_code ec;
        const auto mtime = fs::last_write_time(cert_path, ec);
        const int64_t received =
            ec ? now_s()
               : std::chrono::duration_cast<std::chrono::seconds>(
                     (mtime - fs::file_time_type::clock::now() + std::chrono::system_clock::now())
                         .time_since_epoch())
                     .count();
        try {
            schedule_renewal(read_file(cert_path), std::min(received, now_s()));
        } catch (const std::exception &) {
        }
        return Enrollment::kCached;
    };
    id.key = key_path;
    id.certificate = cert_path;
    id.trusted_cas = ca_path;
    if (!authenticate()) {
        bool unreachable;
        {
            std::lock_guard<std::mutex> lock(mu_);
            unreachable = unreachable_;
        }
        return use_cached("cannot authenticate (" + status().last_error + ")", unreachable);
    }
    // A new key the first time; the same key on every later start (its CSR is renewed).
    if (!fs::exists(key_path)) {
        auto k = crypto::generate_p256_key();
        if (!k) throw std::runtime_error("identity: " + k.error().what());
        write_atomic(key_path, *crypto::private_key_to_pem(k->get()));
    }
    tags_ = id.tags;
    std::string error;
    const std::string body = registration_body(&error);
    if (body.empty()) throw std::runtime_error(error);
    HttpResponse r = call("POST", "/enforcers", body);
    if (r.status == 0) return use_cached("registration failed (" + r.error + ")", r.unreachable);
    if (!r.ok()) throw std::runtime_error("console: POST /enforcers: " + json_error(r));
    rapidjson::Document d;
    d.Parse(r.body.c_str());
    if (d.HasParseError() || str(d, "certificate").empty() ||
        str(d, "certificateAuthority").empty())
        throw std::runtime_error("console: POST /enforcers: no certificate in the answer");
    write_atomic(cert_path, str(d, "certificate"), 0644);
    write_atomic(ca_path, str(d, "certificateAuthority"), 0644);
    schedule_renewal(str(d, "certificate"), now_s());
    spdlog::info("console: enrolled as {} at {}", enforcer_id_, client_->base_url());

    HttpResponse p = call("GET", "/enforcers/" + enforcer_id_ + "/enforcerprofiles");
    if (p.status == 409) {
        rapidjson::Document e;
        e.Parse(p.body.c_str());
        std::string names;
        if (!e.HasParseError() && e.IsObject() && e.HasMember("candidates") &&
            e["candidates"].IsArray())
            for (auto &c : e["candidates"].GetArray())
                if (c.IsString()) names += (names.empty() ? "" : ", ") + std::string(c.GetString());
        throw std::runtime_error("console: no unique enforcer profile for " + enforcer_id_ +
                                 " (candidates: [" + names + "]): " + json_error(p));
    }
    if (!p.ok() && p.status != 0) throw std::runtime_error("console: profile: " + json_error(p));
    load_state_key(key_path);
    std::lock_guard<std::mutex> lock(mu_);
    st_.connected = true;
    st_.last_error.clear();
    return Enrollment::kEnrolled;
}

StateKey ConsoleSync::state_key() const {
    std::lock_guard<std::mutex> lock(mu_);
    return state_key_;
}

void ConsoleSync::load_state_key(const std::string &key_path) {
    auto key = crypto::private_key_from_pem(read_file(key_path));
    if (!key) throw std::runtime_error(key_path + ": " + key.error().what());
    auto k = crypto::derive_state_key(key->get());
    if (!k) throw std::runtime_error(key_path + ": " + k.error().what());
    std::lock_guard<std::mutex> lock(mu_);
    state_key_ = *k;
    OPENSSL_cleanse(k->data(), k->size());
}

// The registration request: name, tags and a CSR signed by the enforcer's key (kept in the state
// directory). "" and `error` when the key is unusable.
std::string ConsoleSync::registration_body(std::string *error) {
    const std::string key_path = state_dir_ + "/enforcer.key";
    std::string key_pem;
    try {
        key_pem = read_file(key_path);
    } catch (const std::exception &e) {
        *error = e.what();
        return "";
    }
    auto key = crypto::private_key_from_pem(key_pem);
    if (!key) {
        *error = key_path + ": " + key.error().what();
        return "";
    }
    auto csr = crypto::create_csr(key->get(), enforcer_id_, cfg_.identity.enforcer_group);
    if (!csr) {
        *error = "CSR: " + csr.error().what();
        return "";
    }
    rapidjson::StringBuffer sb;
    rapidjson::Writer<rapidjson::StringBuffer> w(sb);
    w.StartObject();
    kv(w, "name", cfg_.console.enforcer_name.empty() ? enforcer_id_ : cfg_.console.enforcer_name);
    w.Key("associatedTags");
    w.StartArray();
    for (const auto &t : tags_) w.String(t.c_str());
    w.EndArray();
    kv(w, "csr", *crypto::csr_to_pem(csr->get()));
    w.EndObject();
    return sb.GetString();
}

// Renewal at 2/3 of the life the certificate had when it arrived (the Console backdates notBefore
// for clock skew, so notBefore says nothing about when it was issued).
void ConsoleSync::schedule_renewal(const std::string &pem, int64_t received) {
    auto cert = crypto::cert_from_pem(pem);
    if (!cert) return;
    const ASN1_TIME *na = X509_get0_notAfter(cert->get());
    struct tm tm {};
    if (ASN1_TIME_to_tm(na, &tm) != 1) return;
    const int64_t not_after = timegm(&tm);
    const int64_t life = std::max<int64_t>(not_after - received, 0);
    std::lock_guard<std::mutex> lock(mu_);
    renew_at_ = received + life * 2 / 3;
    renew_backoff_s_ = 0;
    st_.cert_not_after = not_after;
    st_.cert_next_renewal_at = renew_at_;
    // Peers learn a renewed certificate by polling the Console every peer_refresh_s; it is used
    // for claims only after 1/6 of the life, which must leave them several polls.
    if (life / 6 < 3 * static_cast<int64_t>(cfg_.console.peer_refresh_s))
        spdlog::warn(
            "console: certificate life {} s leaves peers {} s to fetch a renewed one, less "
            "than 3 x console.peer_refresh_s ({} s): handshakes may fail at a renewal",
            life, life / 6, cfg_.console.peer_refresh_s);
}

void ConsoleSync::set_service_certificates(const std::string &dir,
                                           std::map<std::string, std::vector<std::string>> wanted) {
    std::lock_guard<std::mutex> lock(mu_);
    tls_dir_ = dir;
    tls_wanted_ = std::move(wanted);
    cv_.notify_all();
}

// POST /enforcers/{id}/servicecertificates for each wanted service whose certificate is missing,
// for other hosts, or at 2/3 of its life; the key stays in the file (made once per service).
void ConsoleSync::service_certificates(int64_t now) {
    std::string dir;
    std::map<std::string, std::vector<std::string>> wanted;
    {
        std::lock_guard<std::mutex> lock(mu_);
        dir = tls_dir_;
        wanted = tls_wanted_;
    }
    for (auto it = tls_.begin(); it != tls_.end();)
        it = wanted.count(it->first) ? std::next(it) : tls_.erase(it);
    for (const auto &[name, hosts] : wanted) {
        TlsState &st = tls_[name];
        if (now < st.due && (st.hosts == hosts || st.backoff_s)) continue;
        std::string error;
        try {
            fs::create_directories(dir);
            const std::string key_path = dir + "/" + name + ".key";
            if (!fs::exists(key_path)) {
                auto k = crypto::generate_p256_key();
                if (!k) throw std::runtime_error(k.error().what());
                write_atomic(key_path, *crypto::private_key_to_pem(k->get()), 0600);
            }
            auto key = crypto::private_key_from_pem(read_file(key_path));
            if (!key) throw std::runtime_error(key_path + ": " + key.error().what());
            auto csr = crypto::create_service_csr(key->get(), name, hosts);
            if (!csr) throw std::runtime_error("CSR: " + csr.error().what());
            rapidjson::StringBuffer sb;
            rapidjson::Writer<rapidjson::StringBuffer> w(sb);
            w.StartObject();
            kv(w, "service", name);
            kv(w, "csr", *crypto::csr_to_pem(csr->get()));
            w.EndObject();
            HttpResponse r =
                call("POST", "/enforcers/" + enforcer_id_ + "/servicecertificates", sb.GetString());
            if (!r.ok()) throw std::runtime_error(json_error(r));
            rapidjson::Document d;
            d.Parse(r.body.c_str());
            const std::string pem = d.HasParseError() || !d.IsObject() ? "" : str(d, "certificate");
            auto cert = crypto::cert_from_pem(pem);
            if (!cert) throw std::runtime_error("no certificate in the answer");
            write_atomic(dir + "/" + name + ".crt", pem, 0644);
            struct tm tm {};
            int64_t life = 3600;
            if (ASN1_TIME_to_tm(X509_get0_notAfter(cert->get()), &tm) == 1)
                life = std::max<int64_t>(timegm(&tm) - now, 60);
            st.hosts = hosts;
            st.due = now + life * 2 / 3;
            st.backoff_s = 0;
            spdlog::info("console: service certificate for {} ({} host(s)) in {}, renewed in {} s",
                         name, hosts.size(), dir, life * 2 / 3);
        } catch (const std::exception &e) {
            st.backoff_s = std::min<uint32_t>(st.backoff_s ? st.backoff_s * 2 : 1, 60);
            st.due = now + st.backoff_s;
            st.hosts.clear();  // asked again once due
            spdlog::error("console: service certificate for {}: {}; retrying in {} s", name,
                          e.what(), st.backoff_s);
        }
    }
}

void ConsoleSync::renew_certificate() {
    const int64_t now = now_s();
    std::string error;
    const std::string body = registration_body(&error);
    std::string pem;
    if (!body.empty()) {
        HttpResponse r = call("POST", "/enforcers", body);
        if (r.ok()) {
            rapidjson::Document d;
            d.Parse(r.body.c_str());
            pem = d.HasParseError() || !d.IsObject() ? "" : str(d, "certificate");
            if (pem.empty()) error = "POST /enforcers: no certificate in the answer";
        } else {
            error = "POST /enforcers: " + json_error(r);
        }
    }
    int64_t old_not_after;
    {
        std::lock_guard<std::mutex> lock(mu_);
        old_not_after = st_.cert_not_after;
    }
    if (!pem.empty()) {
        try {
            // The old certificate stays in use until halfway to its expiry: peers poll the
            // Console for the new one meanwhile, and accept claims under the old one until then.
            const int64_t use_at = now + std::max<int64_t>(old_not_after - now, 0) / 2;
            enf_->renewed_certificate(pem, use_at);
            write_atomic(state_dir_ + "/enforcer.crt", pem, 0644);
            schedule_renewal(pem, now);
            std::lock_guard<std::mutex> lock(mu_);
            st_.cert_renewed_at = now;
            st_.cert_renewals++;
            st_.cert_renewal_error.clear();
            return;
        } catch (const std::exception &e) {
            error = e.what();
        }
    }
    std::lock_guard<std::mutex> lock(mu_);
    renew_backoff_s_ = std::min<uint32_t>(renew_backoff_s_ ? renew_backoff_s_ * 2 : 1, 60);
    static thread_local std::mt19937 rng{std::random_device{}()};
    renew_at_ = now + renew_backoff_s_ / 2 +
                std::uniform_int_distribution<uint32_t>(0, renew_backoff_s_)(rng);
    st_.cert_next_renewal_at = renew_at_;
    st_.cert_renewal_failures++;
    st_.cert_renewal_error = error;
    spdlog::error(
        "console: certificate renewal failed ({}); retrying in {} s, the certificate "
        "expires at {}",
        error, renew_at_ - now, old_not_after);
}

std::optional<std::string> ConsoleSync::cached_bundle() {
    const std::string path = state_dir_ + "/bundle.json";
    if (!fs::exists(path)) {
        std::lock_guard<std::mutex> lock(mu_);
        st_.cache_state = "none";
        return std::nullopt;
    }
    std::string text;
    try {
        text = read_file(path);
    } catch (const std::exception &) {
        text.clear();  // unreadable: refused as malformed below
    }
    StateKey key = state_key();
    const int64_t max_age = cfg_.console.cache_max_age_s;
    UnsealResult u = unseal_state(text, "bundle", enforcer_id_, key, now_s(), max_age);
    OPENSSL_cleanse(key.data(), key.size());
    std::lock_guard<std::mutex> lock(mu_);
    if (!u.ok) {
        st_.cache_state = "refused";
        st_.cache_refused = to_string(u.error);
        spdlog::error(
            "cached policy {} refused: {}: {}; identity.fail_mode {} applies until the "
            "Console answers",
            path, to_string(u.error), u.detail, cfg_.identity.fail_closed ? "closed" : "open");
        return std::nullopt;
    }
    st_.cache_state = "valid";
    st_.cache_saved_at = u.ok->saved_at;
    cache_saved_at_ = u.ok->saved_at;
    return std::move(u.ok->body);
}

void ConsoleSync::cached_bundle_applied(const std::string &text, const std::string &version) {
    std::lock_guard<std::mutex> lock(mu_);
    // Not written again: the file keeps the time the Console last vouched for it, so that
    // restarting never makes an old bundle young.
    cache_text_ = text;
    cache_version_ = version;
    // The cache keeps no ETag: the Console's (a digest) will not match this, so the first poll
    // fetches the bundle once and confirms it from then on.
    if (etag_.empty()) etag_ = version;
    cache_etag_ = etag_;
    st_.cache_state = "in-force";
    st_.bundle_version = version;
    st_.bundles_applied++;
}

void ConsoleSync::write_cache(const std::string &text, int64_t saved_at) {
    StateKey key = state_key();
    try {
        write_atomic(state_dir_ + "/bundle.json",
                     seal_state("bundle", enforcer_id_, saved_at, text, key));
    } catch (const std::exception &e) {
        spdlog::error("console: cannot cache the bundle: {}", e.what());
    }
    OPENSSL_cleanse(key.data(), key.size());
}

// The Console vouched again for the version this enforcer enforces (a 304 to the long-poll):
// the cache's savedAt moves forward, at most once per 1/16 of the maximum age (hourly by
// default), so that an enforcer in touch with its Console never restarts into a "too old" cache.
void ConsoleSync::refresh_cache() {
    std::lock_guard<std::mutex> writing(cache_mu_);
    std::string text;
    int64_t confirmed;
    {
        std::lock_guard<std::mutex> lock(mu_);
        const int64_t every = std::clamp<int64_t>(cfg_.console.cache_max_age_s / 16, 1, 3600);
        if (cache_version_.empty() || confirmed_at_ - cache_saved_at_ < every) return;
        text = cache_text_;
        confirmed = confirmed_at_;
        cache_saved_at_ = confirmed;
        st_.cache_saved_at = confirmed;
    }
    write_cache(text, confirmed);
}

void ConsoleSync::start(Enforcement &e) {
    enf_ = &e;
    stop_ = false;
    poll_thread_ = std::thread([this] {
        while (!stop_) poll_policy();
    });
    thread_ = std::thread([this] { loop(); });
}

void ConsoleSync::stop() {
    stop_ = true;
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
    if (poll_thread_.joinable()) poll_thread_.join();
}

void ConsoleSync::poll_policy() {
    if (!ensure_token()) {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait_for(lock, std::chrono::seconds(1), [this] { return stop_.load(); });
        return;
    }
    std::string etag;
    {
        std::lock_guard<std::mutex> lock(mu_);
        etag = etag_;
    }
    const uint32_t wait = cfg_.console.poll_wait_s;
    std::vector<std::string> h;
    if (!etag.empty()) h.push_back("If-None-Match: \"" + etag + "\"");
    HttpResponse r =
        call("GET", "/enforcers/" + enforcer_id_ + "/policy?wait=" + std::to_string(wait), "",
             wait + 15, h);
    if (r.status == 304) {
        std::lock_guard<std::mutex> lock(mu_);
        st_.connected = true;
        if (!cache_version_.empty() && etag_ == cache_etag_) confirmed_at_ = now_s();
        return;
    }
    if (r.status == 200) {
        std::lock_guard<std::mutex> lock(mu_);
        st_.connected = true;
        st_.last_error.clear();
        etag_ = r.etag;  // a bundle that will be refused must not be fetched again and again
        pending_etag_ = r.etag;
        pending_ = r.body;
        return;
    }
    if (r.status != 0) set_error("policy: " + json_error(r));
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, std::chrono::seconds(1), [this] { return stop_.load(); });
}

std::optional<std::string> ConsoleSync::take_bundle() {
    std::lock_guard<std::mutex> lock(mu_);
    if (pending_) taken_etag_ = pending_etag_;
    return std::exchange(pending_, std::nullopt);
}

void ConsoleSync::bundle_applied(const std::string &text, const std::string &version) {
    std::lock_guard<std::mutex> writing(cache_mu_);
    const int64_t now = now_s();
    write_cache(text, now);
    std::lock_guard<std::mutex> lock(mu_);
    cache_text_ = text;
    cache_version_ = version;
    cache_saved_at_ = confirmed_at_ = now;
    if (etag_.empty()) etag_ = version;
    cache_etag_ = taken_etag_.empty() ? version : taken_etag_;
    st_.cache_state = "in-force";
    st_.cache_saved_at = now;
    st_.bundle_version = version;
    st_.bundles_applied++;
}

void ConsoleSync::bundle_rejected(const PolicyStatus &p) {
    {
        std::lock_guard<std::mutex> lock(mu_);
        st_.bundles_rejected++;
    }
    static const std::string run = std::to_string(now_s());
    uint64_t seq;
    {
        std::lock_guard<std::mutex> lock(mu_);
        seq = batch_seq_;
    }
    rapidjson::StringBuffer sb;
    rapidjson::Writer<rapidjson::StringBuffer> w(sb);
    w.StartObject();
    kv(w, "batchID", enforcer_id_ + "-" + run + "-" + std::to_string(seq) + "-eventlogs");
    kv(w, "enforcerID", enforcer_id_);
    w.Key("reports");
    w.StartArray();
    w.StartObject();
    kv(w, "category", "policy");
    kv(w, "level", "Error");
    kv(w, "title", "policy " + p.last_refused_version + " refused (" + p.last_error_cause + ")");
    kv(w, "content",
       "version " + p.last_refused_version + " not applied, keeping version " +
           (p.enforced_version.empty() ? "(none)" : p.enforced_version) + ": " + p.last_error);
    kv(w, "targetID", enforcer_id_);
    kv(w, "targetIdentity", "enforcer");
    w.Key("timestamp");
    w.Int64(p.last_refused_at);
    w.EndObject();
    w.EndArray();
    w.EndObject();
    spool("eventlogs", sb.GetString(), 1);
}

SyncStatus ConsoleSync::status() const {
    std::lock_guard<std::mutex> lock(mu_);
    return st_;
}

uint32_t ConsoleSync::report_interval_s(uint64_t profile_default_s) const {
    if (cfg_.console.report_interval_s) return cfg_.console.report_interval_s;
    return static_cast<uint32_t>(std::max<uint64_t>(profile_default_s, 1));
}

void ConsoleSync::refresh_peers() {
    // Conditional: an unchanged list is a 304 with no body (the certificates we hold stand).
    std::vector<std::string> h;
    if (!peers_etag_.empty()) h.push_back("If-None-Match: \"" + peers_etag_ + "\"");
    HttpResponse r = call("GET", "/enforcers", "", 10, h);
    if (r.status == 304) return;
    if (!r.ok()) return;
    rapidjson::Document d;
    d.Parse(r.body.c_str());
    if (d.HasParseError() || !d.IsArray()) return;
    uint64_t n = 0;
    bool refused = false;
    rapidjson::StringBuffer sb;
    rapidjson::Writer<rapidjson::StringBuffer> w(sb);
    w.StartArray();
    for (auto &e : d.GetArray()) {
        if (!e.IsObject() || str(e, "ID") == enforcer_id_) continue;
        // Every unexpired certificate of the peer: while it renews, its claims may be signed
        // under the old or the new one (a Console without "certificates" sends only the newest).
        std::vector<std::string> pems;
        if (e.HasMember("certificates") && e["certificates"].IsArray()) {
            for (auto &c : e["certificates"].GetArray())
                if (c.IsString()) pems.emplace_back(c.GetString());
        } else if (!str(e, "certificate").empty()) {
            pems.push_back(str(e, "certificate"));
        }
        for (const std::string &pem : pems) {
            if (!enf_->add_peer_certificate(pem)) {
                refused = true;
                continue;
            }
            ++n;
            w.String(pem.c_str());
        }
    }
    w.EndArray();
    if (sb.GetString() != peers_cached_) {
        peers_cached_ = sb.GetString();
        StateKey key = state_key();
        try {
            write_atomic(state_dir_ + "/peers.json",
                         seal_state("peers", enforcer_id_, now_s(), peers_cached_, key), 0644);
        } catch (const std::exception &e) {
            spdlog::error("console: cannot cache peer certificates: {}", e.what());
        }
        OPENSSL_cleanse(key.data(), key.size());
    }
    // A certificate refused now (not yet valid, say) is tried again with the next full list.
    peers_etag_ = refused ? "" : r.etag;
    std::lock_guard<std::mutex> lock(mu_);
    st_.peer_certificates = n;
}

std::vector<std::string> ConsoleSync::cached_peer_certificates() const {
    std::vector<std::string> out;
    const std::string path = state_dir_ + "/peers.json";
    if (!fs::exists(path)) return out;
    StateKey key = state_key();
    std::string text;
    try {
        text = read_file(path);
    } catch (const std::exception &) {
    }
    // No age limit: every certificate carries its own expiry and is verified again when added.
    UnsealResult u = unseal_state(text, "peers", enforcer_id_, key, now_s(), 0);
    OPENSSL_cleanse(key.data(), key.size());
    if (!u.ok) {
        spdlog::error("cached peer certificates {} refused: {}: {}", path, to_string(u.error),
                      u.detail);
        return out;
    }
    rapidjson::Document d;
    d.Parse(u.ok->body.c_str());
    if (d.HasParseError() || !d.IsArray()) return out;
    for (auto &v : d.GetArray())
        if (v.IsString()) out.emplace_back(v.GetString());
    return out;
}

void ConsoleSync::heartbeat() {
    SyncStatus s = status();
    rapidjson::StringBuffer sb;
    rapidjson::Writer<rapidjson::StringBuffer> w(sb);
    w.StartObject();
    kv(w, "status", "Running");
    w.Key("stats");
    w.StartObject();
    kv(w, "policyVersion", s.bundle_version);
    if (enf_) {
        // Refused bundles: the Console keeps the last error for this enforcer.
        const PolicyStatus p = enf_->policy_status();
        kv(w, "policyState", p.last_refused ? "Refused" : "Applied");
        w.Key("policyRefused");
        w.Uint64(p.refused);
        w.Key("snapshotsAlive");
        w.Uint(p.snapshots_alive);
        w.Key("snapshotBytes");
        w.Uint64(p.table_bytes);
        // Records not reported because an interval's report collection was full.
        w.Key("reportsOverflowed");
        w.Uint64(enf_->report_counts().interval_overflow());
        if (p.refused) {
            w.Key("lastPolicyError");
            w.StartObject();
            kv(w, "version", p.last_refused_version);
            kv(w, "cause", p.last_error_cause);
            kv(w, "error", p.last_error);
            kv(w, "enforcedVersion", p.enforced_version);
            w.Key("time");
            w.Int64(p.last_refused_at);
            w.EndObject();
        }
    }
    w.Key("spoolBatches");
    w.Uint64(s.spool_batches);
    w.Key("reportsSent");
    w.Uint64(s.reports_sent);
    w.Key("reportsDropped");
    w.Uint64(s.reports_dropped);
    w.EndObject();
    w.EndObject();
    if (call("POST", "/enforcers/" + enforcer_id_ + "/heartbeat", sb.GetString()).ok()) {
        std::lock_guard<std::mutex> lock(mu_);
        st_.heartbeats++;
        st_.connected = true;
    }
}

void ConsoleSync::load_spool() {
    std::vector<fs::path> files;
    for (auto &e : fs::directory_iterator(state_dir_ + "/spool"))
        if (e.path().extension() == ".json") files.push_back(e.path());
    std::sort(files.begin(), files.end());
    for (auto &p : files) {
        Batch b;
        b.path = p.string();
        b.kind = p.stem().string().substr(p.stem().string().find('-') + 1);
        b.bytes = fs::file_size(p);
        spool_.push_back(b);
        st_.spool_bytes += b.bytes;
        batch_seq_ = std::max<uint64_t>(batch_seq_, std::stoull(p.stem().string()) + 1);
    }
    st_.spool_batches = spool_.size();
    if (!spool_.empty())
        spdlog::info("console: {} report batch(es) spooled by an earlier run", spool_.size());
}

// Every batch is written to the spool before it is sent: a Console outage or an enforcer restart
// loses nothing within spool_max_bytes; beyond it new batches are dropped and counted.
void ConsoleSync::spool(const std::string &kind, const std::string &body, size_t reports) {
    std::lock_guard<std::mutex> lock(mu_);
    if (st_.spool_bytes + body.size() > cfg_.console.spool_max_bytes) {
        st_.reports_dropped += reports;
        spdlog::error("console: report spool full ({} bytes): {} {} dropped", st_.spool_bytes,
                      reports, kind);
        return;
    }
    char name[64];
    std::snprintf(name, sizeof name, "%012llu-%s.json",
                  static_cast<unsigned long long>(batch_seq_++), kind.c_str());
    Batch b{kind, state_dir_ + "/spool/" + name, body.size(), reports};
    try {
        write_atomic(b.path, body);
    } catch (const std::exception &e) {
        st_.reports_dropped += reports;
        spdlog::error("console: cannot spool reports: {}", e.what());
        return;
    }
    spool_.push_back(b);
    st_.spool_batches = spool_.size();
    st_.spool_bytes += b.bytes;
    cv_.notify_all();
}

void ConsoleSync::submit_reports(std::vector<FlowReport> flows, std::vector<ExceptionReport> ex,
                                 std::vector<DnsReport> dns, std::vector<std::string> api_calls) {
    static const std::string run = std::to_string(now_s());  // batch IDs never repeat across runs
    auto emit = [&](const std::string &kind, size_t n, auto &&write_report) {
        for (size_t off = 0; off < n; off += kBatchReports) {
            rapidjson::StringBuffer sb;
            rapidjson::Writer<rapidjson::StringBuffer> w(sb);
            w.StartObject();
            uint64_t seq;
            {
                std::lock_guard<std::mutex> lock(mu_);
                seq = batch_seq_;
            }
            kv(w, "batchID", enforcer_id_ + "-" + run + "-" + std::to_string(seq) + "-" + kind);
            kv(w, "enforcerID", enforcer_id_);
            w.Key("reports");
            w.StartArray();
            size_t end = std::min(n, off + kBatchReports);
            for (size_t i = off; i < end; ++i) write_report(w, i);
            w.EndArray();
            w.EndObject();
            spool(kind, sb.GetString(), end - off);
        }
    };
    emit("flowreports", flows.size(), [&](auto &w, size_t i) {
        const FlowReport &r = flows[i];
        w.StartObject();
        kv(w, "action", r.action);
        kv(w, "observedAction", r.observed_action);
        kv(w, "sourceType", r.source_type);
        kv(w, "sourceID", r.source_id);
        kv(w, "sourceIP", r.source_ip);
        kv(w, "destinationType", r.destination_type);
        kv(w, "destinationID", r.destination_id);
        kv(w, "destinationIP", r.destination_ip);
        w.Key("destinationPort");
        w.Uint(r.destination_port);
        w.Key("protocol");
        w.Uint(r.protocol);
        kv(w, "policyID", r.policy_id);
        kv(w, "observedPolicyID", r.observed_policy_id);
        kv(w, "ruleName", r.rule_name);
        kv(w, "dropReason", r.drop_reason);
        kv(w, "mode", r.mode);
        kv(w, "serviceType", "L3");
        w.Key("value");
        w.Uint64(r.value);
        // The flows' packets and bytes in this interval (their counter records, docs/export.md).
        for (auto [key, v] : {std::pair{"sourcePackets", r.source_packets},
                              std::pair{"sourceBytes", r.source_bytes},
                              std::pair{"destinationPackets", r.destination_packets},
                              std::pair{"destinationBytes", r.destination_bytes}}) {
            w.Key(key);
            w.Uint64(v);
        }
        w.Key("timestamp");
        w.Uint(r.timestamp);
        w.EndObject();
    });
    emit("dnslookupreports", dns.size(), [&](auto &w, size_t i) {
        const DnsReport &r = dns[i];
        w.StartObject();
        kv(w, "processingUnitID", r.processing_unit_id);
        kv(w, "sourceIP", r.source_ip);
        kv(w, "resolvedName", r.resolved_name);
        for (auto [key, list] : {std::pair{"resolvedIPs", &r.resolved_ips},
                                 std::pair{"resolvedCNAMEs", &r.resolved_cnames}}) {
            w.Key(key);
            w.StartArray();
            for (const auto &s : *list)
                w.String(s.c_str(), static_cast<rapidjson::SizeType>(s.size()));
            w.EndArray();
        }
        kv(w, "action", r.action);
        if (!r.reason.empty()) kv(w, "reason", r.reason);
        w.Key("value");
        w.Uint64(r.value);
        w.Key("timestamp");
        w.Uint(r.timestamp);
        w.EndObject();
    });
    emit("apicalls", api_calls.size(), [&](auto &w, size_t i) {
        w.RawValue(api_calls[i].c_str(), api_calls[i].size(), rapidjson::kObjectType);
    });
    emit("connectionexceptionreports", ex.size(), [&](auto &w, size_t i) {
        const ExceptionReport &r = ex[i];
        w.StartObject();
        kv(w, "processingUnitID", r.processing_unit_id);
        kv(w, "sourceIP", r.source_ip);
        kv(w, "destinationIP", r.destination_ip);
        w.Key("destinationPort");
        w.Uint(r.destination_port);
        w.Key("protocol");
        w.Uint(r.protocol);
        kv(w, "state", r.state);
        kv(w, "reason", r.reason);
        w.Key("value");
        w.Uint64(r.value);
        w.Key("timestamp");
        w.Uint(r.timestamp);
        w.EndObject();
    });
}

void ConsoleSync::flush_spool() {
    while (!stop_) {
        Batch b;
        {
            std::lock_guard<std::mutex> lock(mu_);
            if (spool_.empty() || now_s() < next_send_) return;
            b = spool_.front();
        }
        std::string body;
        try {
            body = read_file(b.path);
        } catch (const std::exception &) {
            std::lock_guard<std::mutex> lock(mu_);
            spool_.pop_front();  // vanished (removed by hand): nothing to send
            st_.spool_batches = spool_.size();
            continue;
        }
        HttpResponse r = call("POST", "/" + b.kind, body, 30);
        std::lock_guard<std::mutex> lock(mu_);
        // A Console without event logs answers 404: such a batch must not hold up the reports
        // spooled after it.
        const bool refused = r.status == 422 || (r.status == 404 && b.kind == "eventlogs");
        if (!r.ok() && !refused) {
            // Exponential back-off with jitter: 1, 2, 4 ... 60 s.
            backoff_s_ = std::min<uint32_t>(backoff_s_ ? backoff_s_ * 2 : 1, 60);
            static thread_local std::mt19937 rng{std::random_device{}()};
            next_send_ = now_s() + backoff_s_ / 2 +
                         std::uniform_int_distribution<uint32_t>(0, backoff_s_)(rng);
            return;
        }
        if (refused) {
            // The Console refuses the batch's content: retrying cannot help.
            spdlog::error("console: report batch {} refused: {}", b.path, json_error(r));
            st_.reports_dropped += b.reports;
        } else {
            st_.batches_sent++;
            st_.reports_sent += b.reports;
        }
        backoff_s_ = 0;
        std::error_code ec;
        fs::remove(b.path, ec);
        spool_.pop_front();
        st_.spool_batches = spool_.size();
        st_.spool_bytes -= std::min<uint64_t>(st_.spool_bytes, b.bytes);
    }
}

void ConsoleSync::loop() {
    int64_t next_heartbeat = 0, next_peers = 0;
    while (!stop_) {
        const int64_t now = now_s();
        if (ensure_token()) {
            if (now >= next_peers) {
                refresh_peers();
                next_peers = now + cfg_.console.peer_refresh_s;
            }
            int64_t renew_at;
            {
                std::lock_guard<std::mutex> lock(mu_);
                renew_at = renew_at_;
            }
            if (renew_at && now >= renew_at && enf_) renew_certificate();
            if (now >= next_heartbeat) {
                heartbeat();
                service_certificates(now);
                next_heartbeat = now + cfg_.console.heartbeat_s;
            }
            refresh_cache();
            flush_spool();
        }
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait_for(lock, std::chrono::milliseconds(200), [this] { return stop_.load(); });
    }
}

}  // namespace segwire::control
