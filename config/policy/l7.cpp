#include "config/policy/l7.hpp"

#include <algorithm>

namespace segwire::policy {

struct ApiRoutes::Node {
    std::map<std::string, std::unique_ptr<Node>, std::less<>> literal;
    std::unique_ptr<Node> one;                            // '?'
    std::map<std::string, ApiRoute *, std::less<>> here;  // method → route ending at this node
    std::map<std::string, ApiRoute *, std::less<>> rest;  // method → route of "<this>/*"
};

ApiRoutes::ApiRoutes() = default;
ApiRoutes::~ApiRoutes() = default;
ApiRoutes::ApiRoutes(ApiRoutes &&) noexcept = default;
ApiRoutes &ApiRoutes::operator=(ApiRoutes &&) noexcept = default;

bool ApiRoute::allows(std::span<const std::string> caller_tags) const {
    if (is_public) return true;
    for (const ParsedExpression &e : scopes)
        if (expression_matches(e, caller_tags)) return true;
    return false;
}

ApiRoutes::ApiRoutes(const Service &service, const std::vector<HttpResourceSpec> &specs)
    : root_(std::make_unique<Node>()) {
    ParsedExpression exposed;
    std::string where, problem;
    if (!parse_tag_expression(service.exposed_apis, &exposed, &where, &problem)) return;
    std::map<std::pair<std::string, std::string>, ApiRoute *> by_key;  // (URI, method)
    for (const HttpResourceSpec &spec : specs) {
        if (!expression_matches(exposed, effective_tags(spec))) continue;
        for (const HttpEndpoint &ep : spec.endpoints) {
            std::vector<std::string> segs;
            if (!parse_uri_pattern(ep.uri, &segs, &problem)) continue;
            ParsedExpression scope;
            bool scope_ok = ep.allowed_scopes.empty() ||
                            parse_tag_expression(ep.allowed_scopes, &scope, &where, &problem);
            Node *n = root_.get();
            bool star = !segs.empty() && segs.back() == "*";
            if (star) segs.pop_back();
            for (const std::string &s : segs) {
                std::unique_ptr<Node> &next = s == "?" ? n->one : n->literal[s];
                if (!next) next = std::make_unique<Node>();
                n = next.get();
            }
            auto &slot = star ? n->rest : n->here;
            for (const std::string &m : ep.methods) {
                ApiRoute *&r = by_key[{ep.uri, m}];
                if (!r) {
                    routes_.push_back(std::make_unique<ApiRoute>());
                    r = routes_.back().get();
                    r->uri = ep.uri;
                    slot[m] = r;
                }
                r->is_public = r->is_public || ep.is_public;
                if (scope_ok && !scope.empty()) r->scopes.push_back(scope);
            }
        }
    }
}

namespace {

int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

}  // namespace

bool split_request_path(std::string_view target, std::vector<std::string> *segments) {
    segments->clear();
    if (!target.starts_with("/")) return false;
    size_t q = target.find_first_of("?#");
    if (q != std::string_view::npos) target = target.substr(0, q);
    size_t pos = 1;
    while (pos <= target.size()) {
        size_t end = target.find('/', pos);
        if (end == std::string_view::npos) end = target.size();
        std::string_view raw = target.substr(pos, end - pos);
        pos = end + 1;
        if (raw.empty()) {
            if (end == target.size()) break;  // trailing '/'
            return false;                     // "//"
        }
        std::string seg;
        seg.reserve(raw.size());
        for (size_t i = 0; i < raw.size(); ++i) {
            if (raw[i] == '%') {
                if (i + 2 >= raw.size()) return false;
                int hi = hexval(raw[i + 1]), lo = hexval(raw[i + 2]);
                if (hi < 0 || lo < 0) return false;
                char c = static_cast<char>(hi << 4 | lo);
                // An encoded '/' or NUL would let one segment pose as two (or end early).
                if (c == '/' || c == '\0') return false;
                seg.push_back(c);
                i += 2;
            } else {
                seg.push_back(raw[i]);
            }
        }
        // The server would resolve these; the decision must see the path it will serve.
        if (seg == "." || seg == "..") return false;
        segments->push_back(std::move(seg));
    }
    return true;
}

namespace {

struct Search {
    std::string_view method;
    const std::vector<std::string> *segs;
    bool path_seen = false;

    template <typename Node>
    const ApiRoute *in(const std::map<std::string, ApiRoute *, std::less<>> &m) {
        if (m.empty()) return nullptr;
        path_seen = true;
        auto it = m.find(method);
        return it == m.end() ? nullptr : it->second;
    }

    template <typename Node>
    const ApiRoute *walk(const Node &n, size_t i) {
        if (i == segs->size()) {
            if (const ApiRoute *r = in<Node>(n.here)) return r;
        } else {
            auto it = n.literal.find((*segs)[i]);
            if (it != n.literal.end())
                if (const ApiRoute *r = walk(*it->second, i + 1)) return r;
            if (n.one)
                if (const ApiRoute *r = walk(*n.one, i + 1)) return r;
        }
        return in<Node>(n.rest);
    }
};

}  // namespace

const ApiRoute *ApiRoutes::match(std::string_view method, std::string_view target,
                                 Miss *miss) const {
    std::vector<std::string> segs;
    if (!split_request_path(target, &segs)) {
        *miss = Miss::kBadPath;
        return nullptr;
    }
    if (!root_) {
        *miss = Miss::kNoEndpoint;
        return nullptr;
    }
    Search s{method, &segs};
    const ApiRoute *r = s.walk(*root_, 0);
    *miss = r ? Miss::kNone : s.path_seen ? Miss::kMethod : Miss::kNoEndpoint;
    return r;
}

}  // namespace segwire::policy
