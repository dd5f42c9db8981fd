#include "control/console_client.hpp"

#include <strings.h>

#include <curl/curl.h>
#include <openssl/evp.h>

#include <mutex>
#include <stdexcept>

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
    } else {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &res.status);
    }
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(c);
    return res;
}

ConsoleClient::ConsoleClient(std::string base_url, std::string ca_pem, bool insecure)
    : base_(std::move(base_url)), ca_pem_(std::move(ca_pem)), insecure_(insecure) {
    if (base_.rfind("https://", 0) != 0)
        throw std::runtime_error("console.url: \"" + base_ + "\" must be an https:// URL");
    while (!base_.empty() && base_.back() == '/') base_.pop_back();
}

HttpResponse ConsoleClient::call(const std::string &method, const std::string &path,
                                 const std::string &body, long timeout_s,
                                 std::vector<std::string> headers) const {
    HttpRequest r;
    r.method = method;
    r.url = base_ + path;
    r.body = body;
    r.timeout_s = timeout_s;
    r.headers = std::move(headers);
    if (!token_.empty()) r.headers.push_back("Authorization: Bearer " + token_);
    return http_call(r, ca_pem_, cert_pem_, key_pem_, insecure_);
}

}  // namespace segwire::control
