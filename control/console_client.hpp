// HTTPS to the Console (libcurl, verified TLS only) and plain HTTP to cloud metadata services.
// Blocking calls: used by the control side's sync thread, never by workers.
#pragma once

#include <string>
#include <vector>

namespace segwire::control {

struct HttpResponse {
    long status = 0;  // 0: no HTTP answer (see error)
    std::string body;
    std::string etag;   // without quotes
    std::string error;  // transport error (connection refused, TLS verification, timeout, ...)
    bool ok() const { return status >= 200 && status < 300; }
};

struct HttpRequest {
    std::string method = "GET";
    std::string url;
    std::string body;
    std::vector<std::string> headers;
    long timeout_s = 10;
};

// One call. TLS peers are verified against `ca_pem` (a PEM bundle in memory) unless `insecure`,
// which only a test configuration may set; a client certificate is used when given.
HttpResponse http_call(const HttpRequest &req, const std::string &ca_pem = "",
                       const std::string &client_cert_pem = "",
                       const std::string &client_key_pem = "", bool insecure = false);

class ConsoleClient {
  public:
    // Refuses a non-https URL (the Console is never spoken to in clear text).
    ConsoleClient(std::string base_url, std::string ca_pem, bool insecure);

    void set_client_certificate(std::string cert_pem, std::string key_pem) {
        cert_pem_ = std::move(cert_pem);
        key_pem_ = std::move(key_pem);
    }
    void set_token(std::string token) { token_ = std::move(token); }
    const std::string &base_url() const { return base_; }

    HttpResponse call(const std::string &method, const std::string &path,
                      const std::string &body = "", long timeout_s = 10,
                      std::vector<std::string> headers = {}) const;

  private:
    std::string base_, ca_pem_, cert_pem_, key_pem_, token_;
    bool insecure_;
};

std::string base64_decode(const std::string &in);

}  // namespace segwire::control
