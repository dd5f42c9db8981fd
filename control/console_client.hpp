// HTTPS to the Console (libcurl, verified TLS only) and plain HTTP to cloud metadata services.
// Blocking calls: used by the control side's sync thread, never by workers.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <vector>

namespace segwire::control {

struct HttpResponse {
    long status = 0;  // 0: no HTTP answer (see error)
    std::string body;
    std::string etag;   // without quotes
    std::string error;  // transport error (connection refused, TLS verification, timeout, ...)
    // No answer because nothing could be reached (name, route, connection refused, timeout, a
    // dropped connection): worth retrying. A TLS verification failure is not in this class.
    bool unreachable = false;
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

// The Console, or several replicas of it sharing one database (docs/console.md, "Replicas"): a
// call that finds the current one unreachable (HttpResponse::unreachable) is made again to the
// next, in the configured order, and the one that answered becomes current for every later call
// (and for copies of this client). Identity (certificate, token) and the callers' state (spool,
// policy version) are the enforcer's, not a replica's: a replica issues tokens every other one
// accepts, and report batch IDs are unique in the shared database.
class ConsoleClient {
  public:
    // Refuses a non-https URL (the Console is never spoken to in clear text).
    ConsoleClient(std::string base_url, std::string ca_pem, bool insecure);
    ConsoleClient(std::vector<std::string> base_urls, std::string ca_pem, bool insecure);

    void set_client_certificate(std::string cert_pem, std::string key_pem) {
        cert_pem_ = std::move(cert_pem);
        key_pem_ = std::move(key_pem);
    }
    void set_token(std::string token) { token_ = std::move(token); }
    const std::string &base_url() const { return bases_[current_->load() % bases_.size()]; }

    HttpResponse call(const std::string &method, const std::string &path,
                      const std::string &body = "", long timeout_s = 10,
                      std::vector<std::string> headers = {}) const;

  private:
    std::vector<std::string> bases_;
    std::shared_ptr<std::atomic<size_t>> current_ = std::make_shared<std::atomic<size_t>>(0);
    std::string ca_pem_, cert_pem_, key_pem_, token_;
    bool insecure_;
};

std::string base64_decode(const std::string &in);
std::string base64_encode(const std::string &in);

struct AwsCredentials {
    std::string access_key_id, secret_access_key, session_token;
};

// The AWSSecurityToken login: signs — never sends — an sts:GetCallerIdentity request for
// `sts_url` with libcurl's SigV4 (CURLOPT_AWS_SIGV4, service sts, `region`), including the header
// X-Segwire-Audience: `audience` so that the signature is good for this Console's deployment only.
// libcurl writes the signed request into a socket pair (nothing leaves the process); the result
// is the /issue metadata {"method", "url", "body" (base64), "headers"} for the Console to replay
// to STS. The secret key stays here. Throws std::runtime_error.
std::string aws_presigned_caller_identity(const AwsCredentials &creds, const std::string &sts_url,
                                          const std::string &region, const std::string &audience);

}  // namespace segwire::control
