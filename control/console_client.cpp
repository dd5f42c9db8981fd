#include "control/console_client.hpp"

#include <fcntl.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <curl/curl.h>
#include <spdlog/spdlog.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <map>
#include <cstddef>
#include <cstring>
#include <mutex>
#include <thread>
#include <stdexcept>

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

namespace segwire::control {
namespace {

std::once_flag g_curl_init;

size_t on_body(char *p, size_t size, size_t n, void *ud) {
    static_cast<std::string *>(ud)->append(p, size * n);
    return size * n;
}

size_t on_header(char *p, size_t size, size_t n, void *ud) {
    std::string line(p, size * n);
    auto *etag = static_cast<std::string *>(ud);
    if (line.size() > 5 && strncasecmp(line.c_str(), "etag:", 5) == 0) {
        std::string v = line.substr(5);
        size_t a = v.find('"'), b = v.rfind('"');
        *etag = a != std::string::npos && b > a ? v.substr(a + 1, b - a - 1) : v;
        while (!etag->empty() && isspace(static_cast<unsigned char>(etag->back())))
            etag->pop_back();
    }
    return size * n;
}

}  // namespace

std::string base64_decode(const std::string &in) {
    std::string clean;
    for (char c : in)
        if (!isspace(static_cast<unsigned char>(c))) clean += c;
    std::string out(clean.size() * 3 / 4 + 3, '\0');
    int n = EVP_DecodeBlock(reinterpret_cast<unsigned char *>(out.data()),
                            reinterpret_cast<const unsigned char *>(clean.data()),
                            static_cast<int>(clean.size()));
    if (n < 0) throw std::runtime_error("invalid base64");
    size_t pad = 0;
    if (!clean.empty() && clean.back() == '=') ++pad;
    if (clean.size() > 1 && clean[clean.size() - 2] == '=') ++pad;
    out.resize(static_cast<size_t>(n) - pad);
    return out;
}

std::string base64_encode(const std::string &in) {
    std::string out(4 * ((in.size() + 2) / 3) + 1, '\0');
    int n = EVP_EncodeBlock(reinterpret_cast<unsigned char *>(out.data()),
                            reinterpret_cast<const unsigned char *>(in.data()),
                            static_cast<int>(in.size()));
    out.resize(static_cast<size_t>(n));
    return out;
}

namespace {

// One local HTTP exchange on an abstract unix socket: takes the first request (head + body of
// Content-Length) and answers 200 with no body. The request is what this returns.
std::string answer_one_request(int listener) {
    int fd = accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) return "";
    timeval tv{5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    std::string req;
    char buf[4096];
    size_t want = std::string::npos;
    while (want == std::string::npos || req.size() < want) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n <= 0) break;
        req.append(buf, static_cast<size_t>(n));
        size_t end = req.find("\r\n\r\n");
        if (want == std::string::npos && end != std::string::npos) {
            size_t len = 0;
            for (size_t p = req.find("\r\n") + 2; p < end;) {
                size_t eol = req.find("\r\n", p);
                if (strncasecmp(req.c_str() + p, "Content-Length:", 15) == 0)
                    len = std::strtoul(req.c_str() + p + 15, nullptr, 10);
                p = eol + 2;
            }
            want = end + 4 + len;
        }
    }
    static const char kAnswer[] =
        "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    ssize_t ignored = write(fd, kAnswer, sizeof kAnswer - 1);
    (void)ignored;
    close(fd);
    return req;
}

}  // namespace

std::string aws_presigned_caller_identity(const AwsCredentials &creds, const std::string &sts_url,
                                          const std::string &region, const std::string &audience) {
    std::call_once(g_curl_init, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
    // The request is signed for sts_url's host and path but only ever written to a local socket:
    // the scheme curl uses here (plain http) does not matter, SigV4 does not sign it.
    size_t scheme = sts_url.find("://");
    if (scheme == std::string::npos || sts_url.compare(0, scheme, "https") != 0)
        throw std::runtime_error("console.aws_sts_url: \"" + sts_url + "\" is not an https:// URL");
    size_t slash = sts_url.find('/', scheme + 3);
    const std::string authority = sts_url.substr(scheme + 3, slash - (scheme + 3));
    const std::string path = slash == std::string::npos ? "/" : sts_url.substr(slash);
    const std::string body = "Action=GetCallerIdentity&Version=2011-06-15";

    // An abstract unix socket with a random name: nothing on disk, nothing on the network.
    int listener = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    unsigned char rnd[12];
    if (listener < 0 || RAND_bytes(rnd, sizeof rnd) != 1)
        throw std::runtime_error("AWS login: cannot make a local socket");
    std::string name = "segwire-sigv4-";
    for (unsigned char b : rnd)
        name += "0123456789abcdef"[b >> 4], name += "0123456789abcdef"[b & 15];
    std::memcpy(sa.sun_path + 1, name.data(), name.size());
    socklen_t salen = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + name.size());
    if (bind(listener, reinterpret_cast<sockaddr *>(&sa), salen) != 0 || listen(listener, 1) != 0) {
        close(listener);
        throw std::runtime_error("AWS login: cannot listen on a local socket");
    }
    std::string wire;
    std::thread server([&] { wire = answer_one_request(listener); });

    CURL *c = curl_easy_init();
    curl_slist *hdrs = nullptr;
    char errbuf[CURL_ERROR_SIZE] = "";
    CURLcode rc = CURLE_FAILED_INIT;
    if (c) {
        hdrs = curl_slist_append(hdrs,
                                 "Content-Type: application/x-www-form-urlencoded; charset=utf-8");
        hdrs = curl_slist_append(hdrs, ("X-Segwire-Audience: " + audience).c_str());
        if (!creds.session_token.empty())
            hdrs =
                curl_slist_append(hdrs, ("X-Amz-Security-Token: " + creds.session_token).c_str());
        const std::string url = "http://" + authority + path;
        const std::string sigv4 = "aws:amz:" + region + ":sts";
        curl_easy_setopt(c, CURLOPT_URL, url.c_str());
        curl_easy_setopt(c, CURLOPT_ABSTRACT_UNIX_SOCKET, name.c_str());
        curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body.c_str());
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
        curl_easy_setopt(c, CURLOPT_AWS_SIGV4, sigv4.c_str());
        curl_easy_setopt(c, CURLOPT_USERNAME, creds.access_key_id.c_str());
        curl_easy_setopt(c, CURLOPT_PASSWORD, creds.secret_access_key.c_str());
        curl_easy_setopt(c, CURLOPT_TIMEOUT, 5L);
        curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
        std::string ignored;
        curl_easy_setopt(c, CURLOPT_WRITEDATA, &ignored);
        rc = curl_easy_perform(c);
        curl_easy_cleanup(c);
    }
    curl_slist_free_all(hdrs);
    if (rc != CURLE_OK) shutdown(listener, SHUT_RDWR);  // unblocks an accept that never came
    server.join();
    close(listener);
    if (rc != CURLE_OK)
        throw std::runtime_error(std::string("AWS login: signing with libcurl failed: ") +
                                 curl_easy_strerror(rc) +
                                 (errbuf[0] ? std::string(": ") + errbuf : ""));

    // What curl wrote: request line, headers, blank line, body.
    size_t end = wire.find("\r\n\r\n");
    if (end == std::string::npos || wire.compare(end + 4, std::string::npos, body) != 0)
        throw std::runtime_error("AWS login: libcurl wrote an unexpected request");
    std::map<std::string, std::string> headers;
    size_t pos = wire.find("\r\n") + 2;
    while (pos < end) {
        size_t eol = wire.find("\r\n", pos);
        std::string line = wire.substr(pos, eol - pos);
        pos = eol + 2;
        size_t colon = line.find(':');
        if (colon == std::string::npos) continue;
        size_t v = line.find_first_not_of(' ', colon + 1);
        headers[line.substr(0, colon)] = v == std::string::npos ? "" : line.substr(v);
    }
    if (!headers.count("Authorization"))
        throw std::runtime_error("AWS login: libcurl did not sign the request (no Authorization)");
    rapidjson::StringBuffer sb;
    rapidjson::Writer<rapidjson::StringBuffer> w(sb);
    w.StartObject();
    w.Key("method");
    w.String("POST");
    w.Key("url");
    w.String(sts_url.c_str());
    w.Key("body");
    w.String(base64_encode(body).c_str());
    w.Key("headers");
    w.StartObject();
    for (const auto &[k, v] : headers) {
        if (strcasecmp(k.c_str(), "Content-Length") == 0) continue;
        w.Key(k.c_str());
        w.String(v.c_str());
    }
    w.EndObject();
    w.EndObject();
    return sb.GetString();
}

HttpResponse http_call(const HttpRequest &req, const std::string &ca_pem,
                       const std::string &cert_pem, const std::string &key_pem, bool insecure) {
    std::call_once(g_curl_init, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
    HttpResponse res;
    CURL *c = curl_easy_init();
    if (!c) {
        res.error = "curl_easy_init failed";
        return res;
    }
    char errbuf[CURL_ERROR_SIZE] = "";
    curl_slist *hdrs = nullptr;
    for (const auto &h : req.headers) hdrs = curl_slist_append(hdrs, h.c_str());
    if (!req.body.empty()) hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
    curl_easy_setopt(c, CURLOPT_URL, req.url.c_str());
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, req.method.c_str());
    if (!req.body.empty() || req.method == "POST" || req.method == "PUT") {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, req.body.c_str());
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, static_cast<long>(req.body.size()));
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, req.timeout_s);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 5L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &res.body);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &res.etag);
    curl_blob ca{const_cast<char *>(ca_pem.data()), ca_pem.size(), CURL_BLOB_COPY};
    curl_blob cert{const_cast<char *>(cert_pem.data()), cert_pem.size(), CURL_BLOB_COPY};
    curl_blob key{const_cast<char *>(key_pem.data()), key_pem.size(), CURL_BLOB_COPY};
    if (!ca_pem.empty()) curl_easy_setopt(c, CURLOPT_CAINFO_BLOB, &ca);
    if (!cert_pem.empty()) {
        curl_easy_setopt(c, CURLOPT_SSLCERTTYPE, "PEM");
        curl_easy_setopt(c, CURLOPT_SSLCERT_BLOB, &cert);
        curl_easy_setopt(c, CURLOPT_SSLKEYTYPE, "PEM");
        curl_easy_setopt(c, CURLOPT_SSLKEY_BLOB, &key);
    }
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, insecure ? 0L : 1L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, insecure ? 0L : 2L);
    CURLcode rc = curl_easy_perform(c);
    if (rc != CURLE_OK) {
        res.error =
            std::string(curl_easy_strerror(rc)) + (errbuf[0] ? std::string(": ") + errbuf : "");
        res.unreachable = rc == CURLE_COULDNT_RESOLVE_HOST || rc == CURLE_COULDNT_RESOLVE_PROXY ||
                          rc == CURLE_COULDNT_CONNECT || rc == CURLE_OPERATION_TIMEDOUT ||
                          rc == CURLE_GOT_NOTHING || rc == CURLE_SEND_ERROR ||
                          rc == CURLE_RECV_ERROR;
    } else {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &res.status);
    }
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(c);
    return res;
}

ConsoleClient::ConsoleClient(std::string base_url, std::string ca_pem, bool insecure)
    : ConsoleClient(std::vector<std::string>{std::move(base_url)}, std::move(ca_pem), insecure) {}

ConsoleClient::ConsoleClient(std::vector<std::string> base_urls, std::string ca_pem, bool insecure)
    : bases_(std::move(base_urls)), ca_pem_(std::move(ca_pem)), insecure_(insecure) {
    if (bases_.empty()) throw std::runtime_error("console.url: no URL");
    for (size_t i = 0; i < bases_.size(); ++i) {
        std::string &b = bases_[i];
        if (b.rfind("https://", 0) != 0)
            throw std::runtime_error(
                (bases_.size() > 1 ? "console.url[" + std::to_string(i) + "]" : "console.url") +
                ": \"" + b + "\" must be an https:// URL");
        while (!b.empty() && b.back() == '/') b.pop_back();
    }
}

HttpResponse ConsoleClient::call(const std::string &method, const std::string &path,
                                 const std::string &body, long timeout_s,
                                 std::vector<std::string> headers) const {
    HttpRequest r;
    r.method = method;
    r.body = body;
    r.timeout_s = timeout_s;
    r.headers = std::move(headers);
    if (!token_.empty()) r.headers.push_back("Authorization: Bearer " + token_);
    const size_t n = bases_.size(), first = current_->load() % n;
    HttpResponse res;
    for (size_t k = 0; k < n; ++k) {
        const size_t i = (first + k) % n;
        r.url = bases_[i] + path;
        res = http_call(r, ca_pem_, cert_pem_, key_pem_, insecure_);
        if (!res.unreachable || k + 1 == n) break;
        // Moved before the next attempt answers (a long-poll answers only when it ends): the
        // enforcer's other calls skip the dead replica at once. Only the first mover logs.
        const size_t next = (i + 1) % n;
        size_t expected = i;
        if (current_->compare_exchange_strong(expected, next))
            spdlog::warn("console: {}: {}; now using {}", bases_[i], res.error, bases_[next]);
    }
    return res;
}

}  // namespace segwire::control
