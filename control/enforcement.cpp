#include "control/enforcement.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <ctime>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>
#include <rte_ring.h>
#include <rte_ring_elem.h>
#include <spdlog/spdlog.h>

#include "config/policy/error.hpp"
#include "config/policy/profile.hpp"
#include "control/policy/compile.hpp"

namespace segwire::control {
namespace {

constexpr uint32_t kRecordRing = 16384;  // records per worker between two control ticks

std::string read_file(const std::string &path, const std::string &field) {
    std::ifstream in(path);
    if (!in) throw std::runtime_error(field + ": cannot read " + path);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

std::string ip_text(const dp::IpAddr &a, uint8_t family) {
    char buf[INET6_ADDRSTRLEN] = "";
    inet_ntop(family == 6 ? AF_INET6 : AF_INET, a.b, buf, sizeof(buf));
    return buf;
}

const char *verdict_text(uint8_t v) {
    switch (static_cast<policy::Verdict>(v)) {
        case policy::Verdict::kAccept:
            return "Accept";
        case policy::Verdict::kReject:
            return "Reject";
        default:
            return "NotApplicable";
    }
}

rte_ring *make_ring(const std::string &name, unsigned size, unsigned flags, unsigned esize = 0) {
    rte_ring *r = esize ? rte_ring_create_elem(name.c_str(), esize, size, SOCKET_ID_ANY, flags)
                        : rte_ring_create(name.c_str(), size, SOCKET_ID_ANY, flags);
    if (!r) throw std::runtime_error("cannot create ring " + name);
    return r;
}

// The "version" of a bundle that may not even parse, for naming a refusal.
std::string version_of(const std::string &text) {
    rapidjson::Document d;
    d.Parse(text.c_str());
    if (!d.HasParseError() && d.IsObject() && d.HasMember("version") && d["version"].IsString())
        return d["version"].GetString();
    return "";
}

std::string hex_of(const crypto::Digest &d) {
    static const char *k = "0123456789abcdef";
    std::string out;
    for (uint8_t b : d) {
        out += k[b >> 4];
        out += k[b & 15];
    }
    return out;
}

ReportLimits report_limits(const config::ApplianceConfig &cfg) {
    ReportLimits l;
    l.per_interval = cfg.console.max_reports_per_interval;
    return l;
}

dns::FqdnLearnerConfig learner_config(const config::ApplianceConfig &cfg) {
    dns::FqdnLearnerConfig c;
    c.min_ttl_s = cfg.dns.min_ttl_s;
    c.max_ttl_s = cfg.dns.max_ttl_s;
    return c;
}

unsigned pow2_at_least(unsigned n) {
    unsigned p = 1;
    while (p < n) p <<= 1;
    return p;
}

}  // namespace

Enforcement::Enforcement(const config::ApplianceConfig &cfg, uint32_t workers, rte_mempool *pool,
                         const uint16_t mtu[2], const dp::TxChecksum tx_csum[2])
    : cfg_(cfg),
      workers_(workers),
      publisher_(workers),
      reports_(report_limits(cfg)),
      learner_(learner_config(cfg)) {
    const auto &id = cfg.identity;
    auto key = crypto::private_key_from_pem(read_file(id.key, "identity.key"));
    if (!key) throw std::runtime_error("identity.key: " + key.error().what());
    key_ = std::move(*key);
    auto cert = crypto::cert_from_pem(read_file(id.certificate, "identity.certificate"));
    if (!cert) throw std::runtime_error("identity.certificate: " + cert.error().what());
    cert_ = std::move(*cert);
    crypto::TrustStore trust;
    if (auto st = trust.add_ca_pem(read_file(id.trusted_cas, "identity.trusted_cas")); !st)
        throw std::runtime_error("identity.trusted_cas: " + st.error().what());
    const int64_t now = std::time(nullptr);
    auto info = trust.verify_enforcer_cert(cert_.get(), now);
    if (!info)
        throw std::runtime_error("identity.certificate: not valid under identity.trusted_cas: " +
                                 info.error().what());
    if (info->enforcer_id != id.enforcer_id)
        throw std::runtime_error("identity.enforcer_id: \"" + id.enforcer_id +
                                 "\" differs from the certificate's subject CN \"" +
                                 info->enforcer_id + "\"");
    if (!id.enforcer_group.empty() && id.enforcer_group != info->enforcer_group)
        throw std::runtime_error("identity.enforcer_group: \"" + id.enforcer_group +
                                 "\" is not the group the certificate carries (\"" +
                                 info->enforcer_group + "\"): only the CA binds a group");
    enforcer_group_ = info->enforcer_group;
    if (!enforcer_group_.empty())
        spdlog::info("member of enforcer group {}: signing claims for PUs hosted by group:{}",
                     enforcer_group_, enforcer_group_);
    certs_ = std::make_unique<crypto::PeerCertStore>(std::move(trust));
    if (auto r = certs_->add(cert_.get(), now); !r)
        throw std::runtime_error("identity.certificate: " + r.error().what());
    for (size_t i = 0; i < id.peer_certificates.size(); ++i) {
        const std::string field = "identity.peer_certificates[" + std::to_string(i) + "]";
        if (auto r = certs_->add_pem(read_file(id.peer_certificates[i], field), now); !r)
            throw std::runtime_error(field + ": " + r.error().what());
    }
    crypto::SignerOptions so;
    so.rotation_period = cfg.handshake.key_rotation_s;
    so.claims_lifetime = 3 * cfg.handshake.key_rotation_s;
    so.resign_margin = cfg.handshake.key_rotation_s / 5;
    auto ref = crypto::cert_ref(cert_.get());
    if (!ref) throw std::runtime_error("identity.certificate: " + ref.error().what());
    auto pubkey = crypto::private_key_to_pem(key_.get());  // proves the key is usable
    if (!pubkey) throw std::runtime_error("identity.key: " + pubkey.error().what());
    signer_ = std::make_unique<crypto::IdentitySigner>(std::move(key_), *ref, id.enforcer_id, so);
    cert_st_.ref = hex_of(*ref);
    cert_st_.not_after = info->not_after;

    const auto &h = cfg.handshake;
    rt_.state = &publisher_;
    rt_.pool = pool;
    rt_.reject_with_rst = h.reject_with_rst;
    rt_.mtu[0] = mtu[0];
    rt_.mtu[1] = mtu[1];
    rt_.tx_csum[0] = tx_csum[0];
    rt_.tx_csum[1] = tx_csum[1];
    rt_.hmac = h.hmac == "ipsec-mb"                ? crypto::HmacBackend::IpsecMb
               : h.hmac == "ipsec-mb-multi-buffer" ? crypto::HmacBackend::IpsecMbMultiBuffer
               : h.hmac == "openssl"               ? crypto::HmacBackend::OpenSsl
                                                   : crypto::HmacBackend::Auto;
    rt_.hold_per_flow = h.hold_per_flow;
    rt_.hold_total = h.hold_total ? h.hold_total : rt_.hold_total;  // main: plan_mbufs()
    rt_.kept_control = h.kept_control ? h.kept_control : rt_.kept_control;
    rt_.per_source_percent = h.per_source_percent;
    rt_.answers_per_source_s = h.answers_per_source;
    rt_.midstream_resets_s = h.midstream_resets_per_s;
    rt_.handshakes = h.max_handshakes;
    rt_.l4_tfo = h.l4_tfo;
    rt_.tfo_rotation_s = h.key_rotation_s;
    {
        uint8_t k[32];
        if (RAND_bytes(k, sizeof k) != 1) throw std::runtime_error("no CSPRNG for the TFO key");
        rt_.tfo_key.set(k);
        OPENSSL_cleanse(k, sizeof k);
    }
    rt_.peer_cache = h.peer_cache;
    rt_.key_cache = h.key_cache;
    rt_.session_key_lifetime_s = so.session_key_lifetime();
    rt_.slow_jobs = h.slowpath_queue;
    rt_.dns_queries = cfg.dns.queries_per_worker;
    rt_.dns_query_timeout_ms = cfg.dns.query_timeout_ms;
    // Flow accounting whenever someone reads the counts: the exporters, or the Console's flow
    // reports (docs/export.md). Off, the workers keep no per-flow slot and make no counter record.
    if (cfg.flow_export.enabled() || cfg.console.enabled())
        rt_.active_timeout_s = cfg.flow_export.active_timeout_s;
    if (cfg.flow_export.enabled())
        export_ = std::make_unique<flowexport::FlowExporter>(cfg.flow_export, id.enforcer_id);
    const unsigned jobs = pow2_at_least(h.slowpath_queue + 1);
    for (uint32_t w = 0; w < workers; ++w) {
        const std::string n = std::to_string(w);
        rt_.slow_req[w] = make_ring("sw_slowreq_" + n, jobs, RING_F_SP_ENQ | RING_F_SC_DEQ);
        rt_.slow_rep[w] = make_ring("sw_slowrep_" + n, jobs, RING_F_SP_ENQ | RING_F_SC_DEQ);
        rt_.garbage[w] = make_ring("sw_garbage_" + n, pow2_at_least(h.peer_cache * 2),
                                   RING_F_SP_ENQ | RING_F_SC_DEQ);
        rt_.records[w] = make_ring("sw_records_" + n, kRecordRing, RING_F_SP_ENQ | RING_F_SC_DEQ,
                                   sizeof(dp::FlowRecordEvent));
    }
    slow_ = std::make_unique<SlowPath>(*signer_, *certs_, rt_, workers);
    slow_->set_dns_sink([this](const dns::DnsResponse &r, const dp::SlowJob &j, bool teach) {
        on_dns_answer(r, j, teach);
    });
    spdlog::info("identity: enforcer {} (certificate valid until {}), {} peer certificate(s)",
                 id.enforcer_id, info->not_after, certs_->size() - 1);
}

Enforcement::~Enforcement() {
    stop();
}

void Enforcement::start() {
    slow_->start();
}

void Enforcement::stop() {
    if (slow_) slow_->stop();
}

// Telemetry thread: policy_ is replaced under state_mu_ by the control thread.
uint64_t Enforcement::policy_version() const {
    std::lock_guard<std::mutex> lock(state_mu_);
    return policy_ ? policy_->version() : 0;
}
std::string Enforcement::bundle_version() const {
    std::lock_guard<std::mutex> lock(state_mu_);
    return policy_ ? policy_->bundle_version() : "";
}

void Enforcement::apply_file(const std::string &path) {
    std::string text;
    try {
        text = read_file(path, "identity.policy_file");
        apply_set(policy::parse_policy_set(text));
    } catch (const std::exception &e) {
        refused(version_of(text), e);
        throw;
    }
}

void Enforcement::apply(const policy::PolicySet &set) {
    try {
        apply_set(set);
    } catch (const std::exception &e) {
        refused(set.version, e);
        throw;
    }
}

void Enforcement::apply_set(const policy::PolicySet &set) {
    auto res = policy::resolve_profile(set, cfg_.identity.tags);
    install(set, *res.profile);
}

std::string Enforcement::apply_bundle(const std::string &json_text) {
    try {
        return apply_bundle_text(json_text);
    } catch (const std::exception &e) {
        refused(version_of(json_text), e);
        throw;
    }
}

std::string Enforcement::apply_bundle_text(const std::string &json_text) {
    // The Console adds two keys the policy model does not have: who the bundle is for, and the
    // CA bundle (also present in the profile's trustedCAs).
    rapidjson::Document d;
    d.Parse(json_text.c_str());
    if (d.HasParseError() || !d.IsObject()) throw std::runtime_error("bundle: not a JSON object");
    if (d.HasMember("enforcerID") && d["enforcerID"].IsString() &&
        d["enforcerID"].GetString() != cfg_.identity.enforcer_id)
        throw std::runtime_error(std::string("bundle: for enforcer ") +
                                 d["enforcerID"].GetString() + ", not " +
                                 cfg_.identity.enforcer_id);
    // The revocation list: hex SHA-256 of each revoked certificate. A malformed one refuses the
    // whole bundle, like any other error in it.
    std::vector<crypto::Digest> revoked;
    if (d.HasMember("revokedCertificates")) {
        const auto &list = d["revokedCertificates"];
        if (!list.IsArray()) throw std::runtime_error("bundle: revokedCertificates: not an array");
        for (rapidjson::SizeType i = 0; i < list.Size(); ++i) {
            crypto::Digest ref{};
            const std::string hex = list[i].IsString() ? list[i].GetString() : "";
            bool ok = hex.size() == 64;
            for (size_t j = 0; ok && j < 32; ++j) {
                auto nib = [](char c) {
                    return c >= '0' && c <= '9'   ? c - '0'
                           : c >= 'a' && c <= 'f' ? c - 'a' + 10
                           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                                  : -1;
                };
                const int hi = nib(hex[2 * j]), lo = nib(hex[2 * j + 1]);
                ok = hi >= 0 && lo >= 0;
                ref[j] = static_cast<uint8_t>(hi << 4 | lo);
            }
            if (!ok)
                throw std::runtime_error("bundle: revokedCertificates[" + std::to_string(i) +
                                         "]: not a hex SHA-256");
            revoked.push_back(ref);
        }
    }
    d.RemoveMember("enforcerID");
    d.RemoveMember("trustedCAs");
    d.RemoveMember("revokedCertificates");
    rapidjson::StringBuffer sb;
    rapidjson::Writer<rapidjson::StringBuffer> w(sb);
    d.Accept(w);
    policy::PolicySet set = policy::parse_policy_set(sb.GetString());
    if (set.enforcer_profiles.size() != 1)
        throw std::runtime_error("bundle: expected exactly one (resolved) enforcerprofile, got " +
                                 std::to_string(set.enforcer_profiles.size()));
    const policy::EnforcerProfile profile = set.enforcer_profiles[0];
    install(set, profile, &revoked);
    return set.version;
}

// One place for every refusal: error log naming the cause, counters and last error for telemetry
// and the Console heartbeat. The policy in force stays (fail-static).
void Enforcement::refused(const std::string &version_in, const std::exception &e) {
    const std::string version = version_in.empty() ? "(unknown)" : version_in;
    const char *cause = "invalid-policy";
    if (const auto *r = dynamic_cast<const policy::SnapshotResourceError *>(&e))
        cause = r->resource() == policy::SnapshotResourceError::Resource::kMemory
                    ? "out-of-memory"
                    : "snapshot-bound";
    std::string enforced;
    {
        std::lock_guard<std::mutex> lock(status_mu_);
        enforced = status_.enforced_version.empty() ? "(none)" : status_.enforced_version;
    }
    // Logged first: whoever sees the refusal in telemetry finds it in the log too.
    spdlog::error("policy reload refused ({}): version {} not applied, keeping version {}: {}",
                  cause, version, enforced, e.what());
    std::lock_guard<std::mutex> lock(status_mu_);
    ++status_.refused;
    status_.last_refused = true;
    status_.last_refused_version = version;
    status_.last_error = e.what();
    status_.last_error_cause = cause;
    status_.last_refused_at = std::time(nullptr);
}

PolicyStatus Enforcement::policy_status() const {
    std::lock_guard<std::mutex> lock(status_mu_);
    PolicyStatus s = status_;
    s.snapshots_alive = budget_.alive();
    s.snapshots_max = budget_.max_alive();
    s.snapshots_high_water = budget_.high_water();
    return s;
}

bool Enforcement::add_peer_certificate(const std::string &pem) {
    auto r = certs_->add_pem(pem, std::time(nullptr));  // re-adding a known one is a no-op
    if (!r) spdlog::warn("peer certificate refused: {}", r.error().what());
    return r.ok();
}

void Enforcement::renewed_certificate(const std::string &pem, int64_t use_at) {
    auto cert = crypto::cert_from_pem(pem);
    if (!cert) throw std::runtime_error("renewed certificate: " + cert.error().what());
    const int64_t now = std::time(nullptr);
    // Trusted, ours (same ID), and for our key: else it would sign claims nobody can verify.
    auto r = certs_->add(cert->get(), now);
    if (!r) throw std::runtime_error("renewed certificate: " + r.error().what());
    crypto::PKeyPtr pub(X509_get_pubkey(cert->get()));
    std::lock_guard<std::mutex> lock(state_mu_);
    crypto::PKeyPtr cur(X509_get_pubkey(cert_.get()));
    if (crypto::cert_subject_cn(cert->get()) != cfg_.identity.enforcer_id || !pub || !cur ||
        EVP_PKEY_eq(pub.get(), cur.get()) != 1)
        throw std::runtime_error("renewed certificate: not for this enforcer's ID and key");
    crypto::PeerCertStore::Entry e;
    certs_->find(*r, e);
    next_cert_ = std::move(*cert);
    cert_st_.next_use_at = use_at;
    cert_st_.next_not_after = e.not_after;
    spdlog::info("certificate renewed: {}… valid until {}, signing claims with it from {}",
                 hex_of(*r).substr(0, 16), e.not_after, use_at);
}

CertStatus Enforcement::cert_status() const {
    std::lock_guard<std::mutex> lock(state_mu_);
    return cert_st_;
}

// Frees what the next compile may need the budget for: snapshots kept only to name flow records,
// and retired states whose RCU grace period is over. Control thread.
void Enforcement::make_room() {
    {
        std::lock_guard<std::mutex> lock(state_mu_);
        while (!recent_.empty() && recent_.front() != policy_) recent_.pop_front();
    }
    publisher_.reclaim();
}

void Enforcement::install(const policy::PolicySet &set, const policy::EnforcerProfile &profile,
                          const std::vector<crypto::Digest> *revoked) {
    // Records made under the snapshots about to be dropped are named while those still exist.
    drain_records();
    auto ticket = budget_.acquire(kSnapshotWait, [this] { make_room(); });
    if (!ticket)
        throw policy::SnapshotResourceError(
            policy::SnapshotResourceError::Resource::kSnapshotBound, "(snapshots)",
            std::to_string(budget_.alive()) + " compiled snapshots still alive after " +
                std::to_string(kSnapshotWait.count()) + " ms (the bound is " +
                std::to_string(budget_.max_alive()) +
                "): a worker has not passed an RCU quiescent state");
    CompileOptions opts;
    opts.previous = policy_.get();
    opts.ticket = std::move(*ticket);
    std::shared_ptr<const policy::PolicySnapshot> snap =
        compile_snapshot(set, profile, std::move(opts));
    std::lock_guard<std::mutex> lock(state_mu_);
    // Learned addresses belong to the PU that asked: its index in the new snapshot.
    std::vector<uint32_t> pu_remap;
    if (policy_) {
        pu_remap.resize(policy_->pu_count());
        for (uint32_t i = 0; i < policy_->pu_count(); ++i)
            pu_remap[i] = snap->find_pu_by_id(policy_->pu_id(i));
    }
    set_ = set;
    policy_ = std::move(snap);
    if (l7_) {
        std::unordered_map<std::string, uint32_t> pu_of;
        for (uint32_t i = 0; i < policy_->pu_count(); ++i)
            pu_of[std::string(policy_->pu_id(i))] = i;
        try {
            l7_ports_ = l7_->policy_installed(set, cfg_.identity.enforcer_id, pu_of);
        } catch (const std::exception &e) {
            spdlog::error("l7: {}", e.what());
        }
    }
    recent_.push_back(policy_);
    while (recent_.size() > kMaxAliveSnapshots) recent_.pop_front();
    slow_->set_policy(policy_);
    if (revoked) set_revoked_locked(*revoked, set.version);
    // The learned addresses stay; their networks are recomputed for the new snapshot's indices.
    const uint32_t now = static_cast<uint32_t>(std::time(nullptr));
    learner_.rebuild(policy_->hostnames(), now, policy_->version(), pu_remap);
    fqdn_ = learner_.build(now);
    publish_state();
    const auto st = policy_->stats();
    for (const std::string &w : policy_->warnings())
        spdlog::warn("policy {}: {}", policy_->bundle_version(), w);
    {
        std::lock_guard<std::mutex> slock(status_mu_);
        status_.enforced_version = policy_->bundle_version();
        ++status_.applied;
        status_.last_refused = false;
        status_.warnings = policy_->warnings().size();
        status_.table_bytes = st.table_bytes;
        status_.table_v4 = st.table_v4;
        status_.table_v6 = st.table_v6;
        status_.table_shared = st.table_shared;
    }
    spdlog::info(
        "policy {} applied: profile \"{}\", {} PUs, {} rules, {} external prefixes; address "
        "tables {}/{} ({} KiB of DPDK memory{}), {} of {} snapshots alive",
        policy_->bundle_version(), profile.name, policy_->pu_count(), st.rules,
        st.prefixes_v4 + st.prefixes_v6, st.table_v4, st.table_v6, st.table_bytes / 1024,
        st.table_shared ? ", shared with the previous policy" : "", budget_.alive(),
        budget_.max_alive());
}

// The revocation list of a bundle: the peer store drops and refuses the listed certificates (the
// slow path refuses claims signed by them), and the list goes out with the state being published,
// so that workers refuse cached claims signed by them and cut the flows they authorized. The
// caller holds state_mu_ and publishes next.
void Enforcement::set_revoked_locked(const std::vector<crypto::Digest> &refs,
                                     const std::string &bundle_version) {
    auto list = std::make_shared<dp::RevokedCerts>();
    list->refs = refs;
    std::sort(list->refs.begin(), list->refs.end());
    list->refs.erase(std::unique(list->refs.begin(), list->refs.end()), list->refs.end());
    const size_t dropped = certs_->set_revoked(list->refs);
    if (auto own = crypto::cert_ref(cert_.get());
        own && std::binary_search(list->refs.begin(), list->refs.end(), *own))
        spdlog::error(
            "this enforcer's own certificate is on the Console's revocation list: its "
            "peers refuse its claims (an admin must approve it to register again)");
    if (list->refs.size() != (revoked_ ? revoked_->refs.size() : 0) || dropped)
        spdlog::info(
            "revocation list of bundle {}: {} certificate(s), {} dropped from the peer store",
            bundle_version, list->refs.size(), dropped);
    revoked_ = std::move(list);
    std::lock_guard<std::mutex> slock(status_mu_);
    status_.revocation_version = bundle_version;
    status_.revocation_snapshot = policy_ ? policy_->version() : 0;
    status_.revoked_certificates = revoked_->refs.size();
}

// Signs (or reuses) every local PU's claims and publishes policy + claims as one state. The caller
// holds state_mu_.
void Enforcement::publish_state() {
    const uint32_t now = static_cast<uint32_t>(std::time(nullptr));
    std::vector<std::shared_ptr<const crypto::SignedClaims>> claims(policy_->pu_count());
    std::vector<uint8_t> hosting(policy_->pu_count(), dp::EnforcerState::kHostedByNone);
    for (uint32_t i = 0; i < policy_->pu_count(); ++i) {
        const std::string_view host = policy_->pu_enforcer(i);
        if (!host.empty())
            hosting[i] = crypto::hosts_pu(host, cfg_.identity.enforcer_id, enforcer_group_)
                             ? dp::EnforcerState::kHostedHere
                             : dp::EnforcerState::kHostedElsewhere;
    }
    hosting_ = std::move(hosting);
    uint32_t hosted = 0;
    for (uint32_t i = 0; i < policy_->pu_count(); ++i) {
        // Only the PUs whose record names this enforcer (or its certificate's group) as host: a
        // peer would refuse the claims of any other (docs/policy.md "Who may speak for a PU").
        if (policy_->pu_ignored(i) ||
            !crypto::hosts_pu(policy_->pu_enforcer(i), cfg_.identity.enforcer_id, enforcer_group_))
            continue;
        ++hosted;
        const std::string id(policy_->pu_id(i));
        const policy::ProcessingUnit *pu = nullptr;
        for (const auto &p : set_.processing_units)
            if (p.id == id || (p.id.empty() && p.name == id)) pu = &p;
        if (!pu) continue;
        auto c = signer_->claims_for(id, policy::effective_tags(*pu), now);
        if (!c) {
            spdlog::error("cannot sign claims for PU {}: {}", id, c.error().what());
            continue;
        }
        claims[i] = *c;
    }
    if (hosted != hosted_pus_) {
        spdlog::info("signing claims for {} PU(s) hosted by {}{} (of {} in the policy)", hosted,
                     cfg_.identity.enforcer_id,
                     enforcer_group_.empty() ? "" : " or group:" + enforcer_group_,
                     policy_->pu_count());
        hosted_pus_ = hosted;
    }
    claims_ = std::move(claims);
    published_pub_ = signer_->current_public();
    publish_locked(fqdn_);
}

// Publishes policy + claims + an FQDN set as one state. The caller holds state_mu_.
void Enforcement::publish_locked(std::shared_ptr<const dns::FqdnSet> fqdn) {
    auto state = std::make_unique<dp::EnforcerState>();
    state->policy = policy_;
    state->claims = claims_;
    state->hosting = hosting_;
    state->l7_ports = l7_ports_;
    state->fqdn = fqdn;
    state->revoked = revoked_;
    state->version = ++state_version_;
    fqdn_ = std::move(fqdn);
    publisher_.publish(std::move(state));
}

// The slow-path thread, for every parsed DNS answer to a query a local PU sent (the worker
// matched it and holds it until this returns): learn the addresses for hostname entries, for that
// PU, and publish them if they are new (unless `teach` is false); count a DNS lookup report.
void Enforcement::on_dns_answer(const dns::DnsResponse &r, const dp::SlowJob &j, bool teach) {
    const uint32_t now = static_cast<uint32_t>(std::time(nullptr));
    DnsReport rep;
    {
        std::lock_guard<std::mutex> lock(state_mu_);
        const policy::PolicySnapshot *snap = snapshot_for(j.policy_version);
        if (snap && j.pu < snap->pu_count())
            rep.processing_unit_id = std::string(snap->pu_id(j.pu));
        // The PU's index in the snapshot the learner was last rebuilt for (the worker's may be
        // one policy older).
        const uint32_t pu = !policy_ ? policy::kNone
                            : snap == policy_.get()
                                ? j.pu
                                : policy_->find_pu_by_id(rep.processing_unit_id);
        if (teach && pu != policy::kNone && !rep.processing_unit_id.empty()) {
            const dns::LearnResult res = learner_.learn(r, now, policy_->hostnames(), pu);
            if (res.publish_before_release()) {
                publish_locked(learner_.build(now));
                ++fqdn_publications_;
            } else if (res.changed()) {
                fqdn_dirty_ = true;
            }
        }
    }
    dp::IpAddr client;
    std::memcpy(client.b, j.client, 16);
    rep.source_ip = ip_text(client, j.family);
    rep.resolved_name = std::string(r.resolved_name.view());
    for (uint8_t i = 0; i < r.addr_count; ++i) {
        dp::IpAddr a;
        const dns::DnsAddress &d = r.addrs[i];
        std::memcpy(a.b, d.v4 ? d.addr + 12 : d.addr, d.v4 ? 4 : 16);
        rep.resolved_ips.push_back(ip_text(a, d.v4 ? 4 : 6));
    }
    for (uint8_t i = 0; i < r.cname_count; ++i)
        rep.resolved_cnames.emplace_back(r.cnames[i].view());
    const dns::DnsAction act = dns::dns_action(r);
    rep.action = dns::to_string(act);
    if (act == dns::DnsAction::Fail) rep.reason = dns::rcode_name(r.rcode);
    rep.value = 1;
    rep.timestamp = now;
    reports_.add_dns(std::move(rep));
}

std::vector<DnsReport> Enforcement::take_dns_reports() {
    return reports_.take_dns();
}

DnsStats Enforcement::dns_stats() const {
    DnsStats s;
    s.answers = slow_->dns_answers();
    s.unparsed = slow_->dns_unparsed();
    s.refused_rcode = slow_->dns_refused_rcode();
    s.refused_truncated = slow_->dns_refused_truncated();
    std::lock_guard<std::mutex> lock(state_mu_);
    s.publications = fqdn_publications_;
    s.records = learner_.size();
    s.addresses = fqdn_ ? fqdn_->addresses() : 0;
    s.learner = learner_.counters();
    return s;
}

void Enforcement::tick() {
    const uint32_t now = static_cast<uint32_t>(std::time(nullptr));
    {
        // A renewed certificate whose time has come: claims are re-signed under it and published
        // (peers have had it from the Console since the renewal, and still accept the old one's
        // claims until it expires).
        std::lock_guard<std::mutex> lock(state_mu_);
        if (next_cert_ && static_cast<int64_t>(now) >= cert_st_.next_use_at) {
            auto ref = crypto::cert_ref(next_cert_.get());
            if (ref) {
                auto group = crypto::cert_enforcer_group(next_cert_.get());
                if (group && *group != enforcer_group_) {
                    spdlog::warn(
                        "enforcer group changes with the renewed certificate: \"{}\" -> "
                        "\"{}\"",
                        enforcer_group_, *group);
                    enforcer_group_ = *group;
                }
                cert_ = std::move(next_cert_);
                signer_->set_cert_ref(*ref);
                cert_st_.ref = hex_of(*ref);
                cert_st_.not_after = cert_st_.next_not_after;
                cert_st_.switched_at = now;
                ++cert_st_.switches;
                spdlog::info("claims now signed under the renewed certificate {}… (valid until {})",
                             cert_st_.ref.substr(0, 16), cert_st_.not_after);
            }
            next_cert_.reset();
            cert_st_.next_use_at = cert_st_.next_not_after = 0;
            if (policy_) publish_state();
        }
    }
    if (auto st = signer_->tick(now); !st) spdlog::error("key rotation: {}", st.error().what());
    // A rotated key or claims near expiry: re-sign and republish (the policy is unchanged).
    if (policy_ && signer_->current_public() != published_pub_) {
        std::lock_guard<std::mutex> lock(state_mu_);
        publish_state();
    }
    if (now >= fqdn_next_expire_) {
        // Expired learned addresses already match nothing (lookups compare expiry); dropping
        // them from the published set only bounds its size, so every 10 s is enough.
        fqdn_next_expire_ = now + 10;
        std::lock_guard<std::mutex> lock(state_mu_);
        if (policy_ && (learner_.expire(now) || fqdn_dirty_)) {
            fqdn_dirty_ = false;
            publish_locked(learner_.build(now));
        }
    }
    publisher_.reclaim();
    drain_records();
    if (export_) export_->flush(now);
}

const policy::PolicySnapshot *Enforcement::snapshot_for(uint64_t version) const {
    for (const auto &s : recent_)
        if (s->version() == version) return s.get();
    return nullptr;
}

void Enforcement::add_record(const dp::FlowRecordEvent &e) {
    const policy::PolicySnapshot *snap = snapshot_for(e.policy_version);
    auto name = [&](uint32_t idx) {
        return snap && idx != policy::kNone ? std::string(snap->str(idx)) : std::string();
    };
    auto policy_id = [&](uint32_t idx) {
        return snap && idx != policy::kNone ? std::string(snap->policy_id(idx)) : std::string();
    };
    std::string local_id = snap && e.local_pu != policy::kNone && e.local_pu < snap->pu_count()
                               ? std::string(snap->pu_id(e.local_pu))
                               : std::string();
    std::string peer_type =
        e.peer_kind == dp::PeerKind::kClaims ? "ProcessingUnit" : "ExternalNetwork";
    std::string peer_id = e.peer_id[0]
                              ? std::string(e.peer_id, strnlen(e.peer_id, sizeof(e.peer_id)))
                              : std::string();
    const dp::IpAddr &peer_ip = e.local_is_source ? e.dst : e.src;
    if (e.peer_kind == dp::PeerKind::kExternal && snap) {
        // Name the external network(s) the peer address belongs to.
        policy::IpAddr a;
        if (e.family == 6) {
            a = policy::IpAddr::from_v6(peer_ip.b);
        } else {
            uint32_t v4;
            std::memcpy(&v4, peer_ip.b, 4);
            a = policy::IpAddr::from_v4(ntohl(v4));
        }
        auto info = snap->classify(a);
        auto nets = snap->networks_of(info.class_id);
        if (nets.empty()) {
            // A network with hostname entries, learned from a DNS answer.
            std::shared_ptr<const dns::FqdnSet> fq;
            {
                std::lock_guard<std::mutex> lock(state_mu_);
                fq = fqdn_;
            }
            // Learned addresses name a network only for the PU that asked, outgoing.
            if (fq && fq->snapshot_version() == snap->version() && e.local_is_source)
                nets = e.family == 6 ? fq->networks_for(peer_ip.b, e.local_pu, e.timestamp)
                                     : fq->networks_for_v4(peer_ip.b, e.local_pu, e.timestamp);
            peer_id = nets.empty() ? "unknown" : std::string(snap->network_name(nets[0]));
        } else {
            peer_id = std::string(snap->network_name(nets[0]));
        }
    }
    if (e.kind == dp::RecordKind::kConnectionException) {
        ExceptionReport x;
        x.processing_unit_id = local_id;
        x.source_ip = ip_text(e.src, e.family);
        x.destination_ip = ip_text(e.dst, e.family);
        x.destination_port = e.dport;
        x.protocol = e.proto;
        x.state = e.hs_state == dp::HsState::kSynTransmitted      ? "SynTransmitted"
                  : e.hs_state == dp::HsState::kSynAckTransmitted ? "SynAckTransmitted"
                  : e.hs_state == dp::HsState::kAckTransmitted    ? "AckTransmitted"
                                                                  : "Unknown";
        x.reason = dp::drop_reason_name(e.drop_reason);
        x.value = 1;
        x.timestamp = e.timestamp;
        reports_.add_exception(std::move(x));
        return;
    }
    // L7 mode: who called a service port, for the proxy's identity queries (docs/l7-path.md).
    if (l7_ && e.kind == dp::RecordKind::kFlow && !e.local_is_source && e.proto == 6 &&
        e.drop_reason == dp::DropReason::None)
        l7_->flow_decided(ip_text(e.src, e.family), e.sport, ip_text(e.dst, e.family), e.dport,
                          e.peer_kind == dp::PeerKind::kClaims ? peer_id : std::string());
    FlowReport r;
    const bool accepted = e.drop_reason == dp::DropReason::None;
    r.action = accepted ? "Accept" : "Reject";
    r.observed_action = verdict_text(e.observed_action);
    const std::string local_type = "ProcessingUnit";
    if (e.local_is_source) {
        r.source_type = local_type, r.source_id = local_id;
        r.destination_type = peer_type, r.destination_id = peer_id;
    } else {
        r.source_type = peer_type, r.source_id = peer_id;
        r.destination_type = local_type, r.destination_id = local_id;
    }
    r.source_ip = ip_text(e.src, e.family);
    r.destination_ip = ip_text(e.dst, e.family);
    r.destination_port = e.dport;
    r.protocol = e.proto;
    r.mode = dp::id_mode_name(e.mode);
    r.policy_id = policy_id(e.policy);
    r.observed_policy_id = policy_id(e.observed_policy);
    r.rule_name = name(e.rule_name);
    if (!accepted) {
        r.drop_reason = dp::drop_reason_name(e.drop_reason);
        if (e.drop_reason == dp::DropReason::ClaimsInvalid)
            r.drop_reason += std::string("/") +
                             crypto::to_string(static_cast<crypto::ClaimsReason>(e.claims_reason));
    }
    r.timestamp = e.timestamp;
    if (e.kind != dp::RecordKind::kFlowCounters) {
        r.value = 1;
        reports_.add_flow(std::move(r));
        return;
    }
    // A counter record: the flow's packets and bytes into the report its decision made (value
    // 0: the flow was counted there already), and the record to the exporters.
    r.source_packets = e.packets[0];
    r.source_bytes = e.bytes[0];
    r.destination_packets = e.packets[1];
    r.destination_bytes = e.bytes[1];
    if (export_) {
        flowexport::ExportRecord x;
        x.report = r;
        x.source_port = e.sport;
        x.family = e.family;
        std::memcpy(x.src, e.src.b, sizeof x.src);
        std::memcpy(x.dst, e.dst.b, sizeof x.dst);
        x.start_ms = e.start_ms;
        x.end_ms = e.start_ms + e.duration_ms;
        x.end_reason = static_cast<uint8_t>(e.end_reason);
        x.end_reason_name = dp::end_reason_name(e.end_reason);
        export_->add(x);
    }
    reports_.add_flow(std::move(r));
}

void Enforcement::drain_records() {
    dp::FlowRecordEvent ev[64];
    for (uint32_t w = 0; w < workers_; ++w) {
        unsigned n;
        while ((n = rte_ring_sc_dequeue_burst_elem(rt_.records[w], ev, sizeof(ev[0]), 64,
                                                   nullptr)) > 0)
            for (unsigned i = 0; i < n; ++i) add_record(ev[i]);
    }
}

std::vector<FlowReport> Enforcement::take_flow_reports() {
    return reports_.take_flows();
}

std::vector<ExceptionReport> Enforcement::take_exception_reports() {
    return reports_.take_exceptions();
}

std::optional<flowexport::ExportCounts> Enforcement::export_counts() const {
    if (!export_) return std::nullopt;
    return export_->counts();
}

std::vector<FlowReport> Enforcement::total_flow_reports() const {
    return reports_.flowlog();
}

}  // namespace segwire::control
