#include "tools/console/aws.hpp"

#include <algorithm>
#include <map>
#include <set>

#include <httplib.h>

#include "tools/console/error.hpp"
#include "tools/console/util.hpp"

namespace segwire::console {
namespace {

constexpr const char *kBody = "Action=GetCallerIdentity&Version=2011-06-15";
constexpr const char *kAudienceHeader = "x-segwire-audience";

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

ConsoleError refused(const std::string &what, const std::string &field) {
    return ConsoleError(403, "AWSSecurityToken: " + what, field);
}

}  // namespace

AwsIdentity aws_verify_presigned_request(const std::string &endpoint, const std::string &ca_file,
                                         const std::string &audience, const rapidjson::Value &md) {
    if (member(md, "secretAccessKey"))
        throw ConsoleError(422,
                           "metadata.secretAccessKey: never send the secret key; send a signed "
                           "sts:GetCallerIdentity request {method, url, body, headers}",
                           "metadata.secretAccessKey");
    if (get_string(md, "method", "metadata.method", true) != "POST")
        throw ConsoleError(422, "metadata.method: must be POST", "metadata.method");
    std::string body;
    if (!base64_decode(get_string(md, "body", "metadata.body", true), &body))
        throw ConsoleError(422, "metadata.body: not base64", "metadata.body");
    if (body != kBody)
        throw refused("only sts:GetCallerIdentity is replayed (metadata.body is another request)",
                      "metadata.body");
    const rapidjson::Value *hv = member(md, "headers");
    if (!hv || !hv->IsObject())
        throw ConsoleError(422, "metadata.headers: must be an object of strings",
                           "metadata.headers");
    std::map<std::string, std::string> headers;  // lower-case name → value
    for (const auto &m : hv->GetObject()) {
        std::string name = m.name.GetString();
        if (!m.value.IsString())
            throw ConsoleError(422, "metadata.headers." + name + ": must be a string",
                               "metadata.headers." + name);
        headers[lower(name)] = m.value.GetString();
    }
    const std::string auth = headers["authorization"];
    size_t sh = auth.find("SignedHeaders=");
    if (auth.rfind("AWS4-HMAC-SHA256 ", 0) != 0 || sh == std::string::npos)
        throw ConsoleError(422, "metadata.headers.Authorization: not a SigV4 signature",
                           "metadata.headers.Authorization");
    std::set<std::string> signed_names;
    {
        std::string list = auth.substr(sh + 14, auth.find(',', sh) - (sh + 14));
        size_t pos = 0;
        while (pos <= list.size()) {
            size_t semi = list.find(';', pos);
            signed_names.insert(list.substr(pos, semi == std::string::npos ? semi : semi - pos));
            if (semi == std::string::npos) break;
            pos = semi + 1;
        }
    }
    // The audience binds the signed request to this deployment: one made for another Console
    // (or another service using the same trick) is not accepted here, and cannot be altered
    // without breaking the signature.
    if (!signed_names.count(kAudienceHeader) || !signed_names.count("host"))
        throw refused("the signature must cover the Host and X-Segwire-Audience headers",
                      "metadata.headers.Authorization");
    if (headers[kAudienceHeader] != audience)
        throw refused(
            "audience \"" + headers[kAudienceHeader] + "\" is not this Console's (--aws-audience)",
            "metadata.headers.X-Segwire-Audience");

    size_t scheme_end = endpoint.find("://");
    size_t slash = endpoint.find('/', scheme_end + 3);
    const std::string base = endpoint.substr(0, slash);
    const std::string path = slash == std::string::npos ? "/" : endpoint.substr(slash);
    const std::string host = base.substr(scheme_end + 3);
    if (headers["host"] != host)
        throw refused("the request is signed for host \"" + headers["host"] +
                          "\", not this Console's STS endpoint " + host,
                      "metadata.headers.Host");

    // Replay exactly the signed headers (and the signature), nothing the client added besides.
    httplib::Headers out;
    std::string content_type;
    for (const auto &name : signed_names) {
        auto it = headers.find(name);
        if (it == headers.end())
            throw ConsoleError(422, "metadata.headers: signed header \"" + name + "\" is missing",
                               "metadata.headers");
        if (name == "content-type")
            content_type = it->second;
        else
            out.emplace(name, it->second);
    }
    out.emplace("Authorization", auth);
    httplib::Client cli(base);
    cli.enable_server_certificate_verification(true);
    if (!ca_file.empty()) cli.set_ca_cert_path(ca_file.c_str());
    cli.set_connection_timeout(5);
    cli.set_read_timeout(10);
    auto res =
        cli.Post(path.c_str(), out, body,
                 content_type.empty() ? "application/x-www-form-urlencoded" : content_type.c_str());
    if (!res)
        throw ConsoleError(502, "AWSSecurityToken: STS endpoint " + endpoint +
                                    " unreachable: " + httplib::to_string(res.error()));
    if (res->status == 403 || res->status == 401 || res->status == 400) {
        std::string code = xml_text(res->body, "Code"), msg = xml_text(res->body, "Message");
        throw ConsoleError(401,
                           "AWSSecurityToken: STS refused the signed request (HTTP " +
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
