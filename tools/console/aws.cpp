#include "tools/console/aws.hpp"

#include <openssl/hmac.h>

#include <algorithm>
#include <ctime>

#include <httplib.h>

#include "tools/console/error.hpp"
#include "tools/console/util.hpp"

namespace segwire::console {
namespace {

std::string hmac_sha256(std::string_view key, std::string_view data) {
    unsigned char out[32];
    unsigned int len = sizeof(out);
    HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
         reinterpret_cast<const unsigned char *>(data.data()), data.size(), out, &len);
    return std::string(reinterpret_cast<char *>(out), len);
}

std::string trim(const std::string &s) {
    size_t a = s.find_first_not_of(" \t"), b = s.find_last_not_of(" \t");
    return a == std::string::npos ? "" : s.substr(a, b - a + 1);
}

std::string lower(std::string s) {
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
    return s;
}

// The text of the first <tag>…</tag> in an STS XML answer.
std::string xml_text(const std::string &xml, const std::string &tag) {
    size_t a = xml.find("<" + tag + ">");
    if (a == std::string::npos) return "";
    a += tag.size() + 2;
    size_t b = xml.find("</" + tag + ">", a);
    return b == std::string::npos ? "" : xml.substr(a, b - a);
}

}  // namespace

std::string sigv4_authorization(const std::string &method, const std::string &path,
                                const std::string &query,
                                const std::map<std::string, std::string> &headers,
                                const std::string &payload, const AwsCredentials &creds,
                                const std::string &region, const std::string &service,
                                const std::string &amz_date) {
    std::map<std::string, std::string> canon;  // sorted by lower-case name
    for (const auto &[k, v] : headers) canon[lower(k)] = trim(v);
    std::string canonical_headers, signed_headers;
    for (const auto &[k, v] : canon) {
        canonical_headers += k + ":" + v + "\n";
        signed_headers += (signed_headers.empty() ? "" : ";") + k;
    }
    std::string canonical_request = method + "\n" + path + "\n" + query + "\n" + canonical_headers +
                                    "\n" + signed_headers + "\n" + hex(sha256(payload));
    std::string date = amz_date.substr(0, 8);
    std::string scope = date + "/" + region + "/" + service + "/aws4_request";
    std::string to_sign =
        "AWS4-HMAC-SHA256\n" + amz_date + "\n" + scope + "\n" + hex(sha256(canonical_request));
    std::string k = hmac_sha256("AWS4" + creds.secret_access_key, date);
    k = hmac_sha256(k, region);
    k = hmac_sha256(k, service);
    k = hmac_sha256(k, "aws4_request");
    return "AWS4-HMAC-SHA256 Credential=" + creds.access_key_id + "/" + scope +
           ", SignedHeaders=" + signed_headers + ", Signature=" + hex(hmac_sha256(k, to_sign));
}

AwsIdentity aws_get_caller_identity(const std::string &endpoint, const std::string &region,
                                    const AwsCredentials &creds) {
    size_t scheme_end = endpoint.find("://");
    if (scheme_end == std::string::npos)
        throw ConsoleError(500, "AWS endpoint \"" + endpoint + "\" is not an http(s) URL");
    size_t slash = endpoint.find('/', scheme_end + 3);
    std::string base = endpoint.substr(0, slash);
    std::string path = slash == std::string::npos ? "/" : endpoint.substr(slash);
    std::string host = base.substr(scheme_end + 3);

    const std::string body = "Action=GetCallerIdentity&Version=2011-06-15";
    const std::string content_type = "application/x-www-form-urlencoded; charset=utf-8";
    char amz_date[20];
    time_t t = std::time(nullptr);
    struct tm tm {};
    gmtime_r(&t, &tm);
    std::strftime(amz_date, sizeof(amz_date), "%Y%m%dT%H%M%SZ", &tm);

    std::map<std::string, std::string> signed_headers = {
        {"content-type", content_type}, {"host", host}, {"x-amz-date", amz_date}};
    if (!creds.session_token.empty()) signed_headers["x-amz-security-token"] = creds.session_token;
    std::string auth =
        sigv4_authorization("POST", path, "", signed_headers, body, creds, region, "sts", amz_date);

    httplib::Client cli(base);
    cli.set_connection_timeout(5);
    cli.set_read_timeout(10);
    httplib::Headers h = {
        {"X-Amz-Date", amz_date}, {"Authorization", auth}, {"Accept", "application/xml"}};
    if (!creds.session_token.empty()) h.emplace("X-Amz-Security-Token", creds.session_token);
    auto res = cli.Post(path.c_str(), h, body, content_type.c_str());
    if (!res)
        throw ConsoleError(502, "AWSSecurityToken: STS endpoint " + endpoint +
                                    " unreachable: " + httplib::to_string(res.error()));
    if (res->status == 403 || res->status == 401 || res->status == 400) {
        std::string code = xml_text(res->body, "Code"), msg = xml_text(res->body, "Message");
        throw ConsoleError(401,
                           "AWSSecurityToken: STS refused the credentials (HTTP " +
                               std::to_string(res->status) + (code.empty() ? "" : ", " + code) +
                               (msg.empty() ? "" : ": " + msg) + ")",
                           "metadata");
    }
    if (res->status != 200)
        throw ConsoleError(502,
                           "AWSSecurityToken: STS answered HTTP " + std::to_string(res->status));
    AwsIdentity id{xml_text(res->body, "Arn"), xml_text(res->body, "Account"),
                   xml_text(res->body, "UserId")};
    if (id.arn.empty() || id.account.empty())
        throw ConsoleError(502, "AWSSecurityToken: STS answer has no Arn/Account");
    return id;
}

}  // namespace segwire::console
