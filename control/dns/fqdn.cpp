#include "control/dns/fqdn.hpp"

#include <algorithm>
#include <cstring>
#include <functional>
#include <iterator>

namespace segwire::control::dns {
namespace {

inline char lower(char c) {
    return c >= 'A' && c <= 'Z' ? static_cast<char>(c + ('a' - 'A')) : c;
}

std::string_view strip_dot(std::string_view s) {
    if (!s.empty() && s.back() == '.') s.remove_suffix(1);
    return s;
}

bool iequal(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i)
        if (lower(a[i]) != lower(b[i])) return false;
    return true;
}

// Lower-case, one trailing dot removed: the form names and patterns are compared in.
std::string normalize(std::string_view s) {
    s = strip_dot(s);
    std::string out(s);
    for (char &c : out) c = lower(c);
    return out;
}

bool wildcard(std::string_view p) {
    return p.size() > 2 && p[0] == '*' && p[1] == '.';
}

struct SvHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const noexcept {
        return std::hash<std::string_view>{}(s);
    }
};

}  // namespace

bool fqdn_match(std::string_view pattern, std::string_view name) noexcept {
    pattern = strip_dot(pattern);
    name = strip_dot(name);
    if (pattern.empty()) return false;
    if (!wildcard(pattern)) return iequal(pattern, name);
    const std::string_view suffix = pattern.substr(1);  // ".example.com"
    // At least one character (so at least one label) before the suffix.
    if (name.size() <= suffix.size()) return false;
    return iequal(name.substr(name.size() - suffix.size()), suffix);
}

bool valid_fqdn_pattern(std::string_view pattern, std::string *why) {
    auto fail = [&](const std::string &what) {
        if (why) *why = "hostname \"" + std::string(pattern) + "\": " + what;
        return false;
    };
    const std::string_view p = strip_dot(pattern);
    if (p.empty()) return fail("empty");
    if (p.size() > 253) return fail("longer than 253 characters");
    size_t start = 0, index = 0;
    while (true) {
        const size_t dot = p.find('.', start);
        const std::string_view label =
            p.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
        if (label.empty()) return fail("empty label");
        if (label == "*") {
            if (index != 0) return fail("'*' is allowed only as the whole first label");
            if (dot == std::string_view::npos) return fail("'*' needs a domain after it");
        } else {
            if (label.size() > 63) return fail("label longer than 63 characters");
            for (char c : label) {
                const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                                (c >= '0' && c <= '9') || c == '-' || c == '_';
                if (ok) continue;
                if (c == '*') return fail("'*' is allowed only as the whole first label");
                return fail(std::string("invalid character '") + c +
                            "' (letters, digits, '-', '_')");
            }
        }
        if (dot == std::string_view::npos) break;
        start = dot + 1;
        ++index;
    }
    return true;
}

// ---- FqdnLearner --------------------------------------------------------------------------------

// A question name and its CNAMEs, shared by the records of one answer. Its charge (the bytes the
// names take) is counted in name_bytes_ while it lives.
struct FqdnLearner::Chain {
    std::vector<std::string> names;  // question name first
    std::vector<uint32_t> nets;      // sorted, unique
    uint64_t epoch = 0;              // rebuild that computed nets
    size_t *bytes = nullptr;
    size_t charge = 0;
    ~Chain() {
        if (bytes) *bytes -= charge;
    }
};

// Patterns by exact name and by wildcard suffix ("*.example.com" under "example.com"), so that a
// name costs one lookup per label instead of one fqdn_match per pattern. Same answers as
// fqdn_match (the unit tests compare them).
class FqdnLearner::PatternIndex {
  public:
    explicit PatternIndex(std::span<const HostnameEntry> patterns)
        : entries_(patterns.begin(), patterns.end()) {
        for (const HostnameEntry &e : patterns) {
            std::string n = normalize(e.pattern);
            if (n.empty()) continue;
            if (wildcard(n))
                wild_[n.substr(2)].push_back(e.network);
            else
                exact_[n].push_back(e.network);
        }
    }
    bool same(std::span<const HostnameEntry> patterns) const {
        return std::equal(entries_.begin(), entries_.end(), patterns.begin(), patterns.end(),
                          [](const HostnameEntry &a, const HostnameEntry &b) {
                              return a.network == b.network && a.pattern == b.pattern;
                          });
    }
    // Appends the networks whose patterns match `name` (normalized).
    void add_matches(std::string_view name, std::vector<uint32_t> &out) const {
        if (auto it = exact_.find(name); it != exact_.end())
            out.insert(out.end(), it->second.begin(), it->second.end());
        for (size_t i = 1; i < name.size(); ++i) {
            if (name[i] != '.') continue;
            if (auto it = wild_.find(name.substr(i + 1)); it != wild_.end())
                out.insert(out.end(), it->second.begin(), it->second.end());
        }
    }

  private:
    using NetMap = std::unordered_map<std::string, std::vector<uint32_t>, SvHash, std::equal_to<>>;
    std::vector<HostnameEntry> entries_;
    NetMap exact_, wild_;
};

bool FqdnLearner::EvictKey::operator<(const EvictKey &o) const {
    if (matched != o.matched) return !matched;
    if (expires_at != o.expires_at) return expires_at < o.expires_at;
    return std::less<const std::string *>()(key, o.key);
}

FqdnLearner::FqdnLearner(FqdnLearnerConfig cfg) : cfg_(cfg) {}

FqdnLearner::~FqdnLearner() {
    // Chains subtract from name_bytes_ when they die: free them while it still exists.
    evict_.clear();
    records_.clear();
}

uint32_t FqdnLearner::clamp_ttl(uint32_t ttl) const {
    if (ttl < cfg_.min_ttl_s) ttl = cfg_.min_ttl_s;
    if (ttl > cfg_.max_ttl_s) ttl = cfg_.max_ttl_s;
    return ttl;
}

std::vector<uint32_t> FqdnLearner::match(const std::vector<std::string> &names) const {
    std::vector<uint32_t> nets;
    if (!index_) return nets;
    for (const std::string &n : names) index_->add_matches(n, nets);
    std::sort(nets.begin(), nets.end());
    nets.erase(std::unique(nets.begin(), nets.end()), nets.end());
    return nets;
}

void FqdnLearner::use_patterns(std::span<const HostnameEntry> patterns) {
    if (!index_ || !index_->same(patterns)) index_ = std::make_unique<PatternIndex>(patterns);
}

void FqdnLearner::file(const std::string &key, Record &r) {
    r.matched = !r.chain->nets.empty();
    evict_.insert(EvictKey{r.matched, r.expires_at, &key});
}

void FqdnLearner::unfile(const std::string &key, const Record &r) {
    evict_.erase(EvictKey{r.matched, r.expires_at, &key});
}

std::unordered_map<std::string, FqdnLearner::Record>::iterator FqdnLearner::erase(
    std::unordered_map<std::string, Record>::iterator it) {
    unfile(it->first, it->second);
    return records_.erase(it);
}

uint32_t FqdnLearner::evict_over_bounds() {
    uint32_t matched = 0;
    while (!evict_.empty() &&
           (records_.size() > cfg_.max_records || name_bytes_ > cfg_.max_name_bytes)) {
        const EvictKey victim = *evict_.begin();
        matched += victim.matched;
        ++counters_.records_evicted;
        erase(records_.find(*victim.key));
    }
    return matched;
}

LearnResult FqdnLearner::learn(std::string_view name, std::span<const std::string_view> cnames,
                               std::span<const DnsAddress> addrs, uint32_t now,
                               std::span<const HostnameEntry> patterns, uint32_t pu) {
    ++counters_.answers;
    LearnResult res;
    use_patterns(patterns);

    auto chain = std::make_shared<Chain>();
    chain->names.reserve(1 + cnames.size());
    chain->names.push_back(normalize(name));
    for (std::string_view c : cnames) chain->names.push_back(normalize(c));
    chain->nets = match(chain->names);
    chain->epoch = epoch_;
    chain->charge = sizeof(Chain);
    for (const std::string &n : chain->names) chain->charge += sizeof(std::string) + n.size();
    chain->bytes = &name_bytes_;
    name_bytes_ += chain->charge;

    const bool matched = !chain->nets.empty();
    res.matched = matched;
    if (matched) ++counters_.answers_matched;
    const std::string &qname = chain->names.front();

    for (const DnsAddress &a : addrs) {
        const uint32_t ttl = clamp_ttl(a.ttl);
        if (ttl != a.ttl) ++counters_.ttl_clamped;
        const uint32_t exp =
            static_cast<uint32_t>(std::min<uint64_t>(uint64_t(now) + ttl, UINT32_MAX));
        std::string key(reinterpret_cast<const char *>(a.addr), 16);
        key.append(reinterpret_cast<const char *>(&pu), sizeof pu);
        key += qname;

        auto it = records_.find(key);
        if (it == records_.end()) {
            it = records_.emplace(std::move(key), Record{chain, exp, matched}).first;
            file(it->first, it->second);
            ++counters_.records_added;
            if (matched) ++res.added;
            continue;
        }
        Record &r = it->second;
        const bool live = r.expires_at > now;
        const uint32_t new_exp = std::max(r.expires_at, exp);
        if (matched) {
            if (!live || !r.matched)
                ++res.added;  // not in any set published from now on
            else if (r.chain->nets != chain->nets)
                ++res.updated;
            else if (new_exp > r.expires_at)
                ++res.refreshed;
        } else if (r.matched && live) {
            ++res.updated;  // the chain changed and no longer matches
        }
        unfile(it->first, r);
        r.chain = chain;
        r.expires_at = new_exp;
        file(it->first, r);
    }
    res.evicted = evict_over_bounds();
    return res;
}

LearnResult FqdnLearner::learn(const DnsResponse &r, uint32_t now,
                               std::span<const HostnameEntry> patterns, uint32_t pu) {
    std::string_view cnames[kMaxCnames];
    for (size_t i = 0; i < r.cname_count; ++i) cnames[i] = r.cnames[i].view();
    return learn(r.resolved_name.view(), std::span<const std::string_view>(cnames, r.cname_count),
                 std::span<const DnsAddress>(r.addrs, r.addr_count), now, patterns, pu);
}

size_t FqdnLearner::expire(uint32_t now) {
    size_t n = 0;
    for (auto it = records_.begin(); it != records_.end();) {
        if (it->second.expires_at <= now) {
            it = erase(it);
            ++n;
        } else {
            ++it;
        }
    }
    counters_.records_expired += n;
    return n;
}

// A record's PU index is part of its key: the node is taken out, re-keyed and put back (its key
// stays where it is, so evict_'s pointer to it stays valid).
void FqdnLearner::remap_pus(std::span<const uint32_t> pu_remap) {
    std::vector<std::string> keys;
    keys.reserve(records_.size());
    for (const auto &[key, r] : records_) keys.push_back(key);
    std::vector<decltype(records_)::node_type> moved;
    for (const std::string &k : keys) {
        uint32_t pu;
        std::memcpy(&pu, k.data() + 16, sizeof pu);
        const uint32_t to = pu < pu_remap.size() ? pu_remap[pu] : policy::kNone;
        if (to == pu) continue;
        auto it = records_.find(k);
        if (to == policy::kNone) {
            ++counters_.records_expired;
            erase(it);
            continue;
        }
        unfile(it->first, it->second);
        auto node = records_.extract(it);
        std::memcpy(node.key().data() + 16, &to, sizeof to);
        moved.push_back(std::move(node));
    }
    for (auto &node : moved) {  // after all are out: a new key may be an old one not yet moved
        auto res = records_.insert(std::move(node));
        file(res.position->first, res.position->second);
    }
}

size_t FqdnLearner::rebuild(std::span<const HostnameEntry> patterns, uint32_t now,
                            uint64_t snapshot_version, std::span<const uint32_t> pu_remap) {
    ++counters_.rebuilds;
    snapshot_version_ = snapshot_version;
    index_ = std::make_unique<PatternIndex>(patterns);
    ++epoch_;
    expire(now);
    if (!pu_remap.empty()) remap_pus(pu_remap);
    size_t matching = 0;
    for (auto &[key, r] : records_) {
        Chain &c = *r.chain;
        if (c.epoch != epoch_) {  // chains are shared: each is matched once
            c.nets = match(c.names);
            c.epoch = epoch_;
        }
        if (!c.nets.empty() != r.matched) {
            unfile(key, r);
            file(key, r);
        }
        matching += r.matched;
    }
    return matching;
}

std::unique_ptr<FqdnSet> FqdnLearner::build(uint32_t now) const {
    auto set = std::make_unique<FqdnSet>();
    set->built_at_ = now;
    set->snapshot_version_ = snapshot_version_;

    struct Item {
        const char *addr;
        uint32_t pu;
        uint32_t expires_at;
        const std::vector<uint32_t> *nets;
    };
    std::vector<Item> items;
    items.reserve(records_.size());
    for (const auto &[key, r] : records_) {
        if (!r.matched || r.expires_at <= now) continue;
        uint32_t pu;
        std::memcpy(&pu, key.data() + 16, sizeof pu);
        items.push_back({key.data(), pu, r.expires_at, &r.chain->nets});
    }
    auto same = [](const Item &a, const Item &b) {
        return a.pu == b.pu && std::memcmp(a.addr, b.addr, 16) == 0;
    };
    std::sort(items.begin(), items.end(), [](const Item &a, const Item &b) {
        const int c = std::memcmp(a.addr, b.addr, 16);
        if (c != 0) return c < 0;
        return a.pu != b.pu ? a.pu < b.pu : a.expires_at > b.expires_at;
    });

    // One entry per (address, PU) and expiry level at which its set of networks grows.
    std::vector<uint32_t> cum, merged;
    for (size_t i = 0; i < items.size();) {
        size_t j = i;
        cum.clear();
        ++set->addresses_;
        for (; j < items.size() && same(items[j], items[i]); ++j) {
            merged.clear();
            std::set_union(cum.begin(), cum.end(), items[j].nets->begin(), items[j].nets->end(),
                           std::back_inserter(merged));
            if (j != i && merged.size() == cum.size()) continue;  // adds no network
            cum.swap(merged);
            FqdnSet::Entry e;
            std::memcpy(e.addr, items[i].addr, 16);
            e.pu = items[i].pu;
            e.expires_at = items[j].expires_at;
            e.off = static_cast<uint32_t>(set->nets_.size());
            e.cnt = static_cast<uint32_t>(cum.size());
            set->entries_.push_back(e);
            set->nets_.insert(set->nets_.end(), cum.begin(), cum.end());
        }
        i = j;
    }
    return set;
}

}  // namespace segwire::control::dns
