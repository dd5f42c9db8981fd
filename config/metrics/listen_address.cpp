#include "config/metrics/listen_address.hpp"

#include <arpa/inet.h>

namespace segwire::metrics {

bool parse_listen_address(std::string_view text, ListenAddress *out, std::string *problem,
                          bool allow_port_zero) {
    const std::string quoted = "\"" + std::string(text) + "\"";
    const size_t colon = text.rfind(':');
    if (text.empty() || colon == std::string_view::npos || colon == 0) {
        *problem = quoted + " is not ADDRESS:PORT (e.g. 127.0.0.1:9470 or [::1]:9470)";
        return false;
    }
    std::string_view host = text.substr(0, colon);
    const std::string_view port = text.substr(colon + 1);
    const bool bracketed = host.size() >= 2 && host.front() == '[' && host.back() == ']';
    if (bracketed) host = host.substr(1, host.size() - 2);
    const std::string h(host);
    unsigned char buf[16];
    const bool v4 = !bracketed && inet_pton(AF_INET, h.c_str(), buf) == 1;
    const bool v6 = bracketed && inet_pton(AF_INET6, h.c_str(), buf) == 1;
    if (!v4 && !v6) {
        *problem = quoted + ": \"" + h + "\" is not an IP address" +
                   (!bracketed && h.find(':') != std::string::npos
                        ? " (write an IPv6 address in brackets: [::1]:9470)"
                        : " (an IPv4 address, or an IPv6 address in brackets; no host names)");
        return false;
    }
    uint32_t n = 0;
    bool digits = !port.empty() && port.size() <= 5;  // five digits cannot overflow n
    for (char c : port) {
        if (c < '0' || c > '9') digits = false;
        n = n * 10 + static_cast<uint32_t>(c - '0');
    }
    if (!digits || n > 65535 || (n == 0 && !allow_port_zero)) {
        *problem = quoted + ": the port must be a number from " + (allow_port_zero ? "0" : "1") +
                   " to 65535 (got \"" + std::string(port) + "\")";
        return false;
    }
    out->host = h;
    out->port = static_cast<uint16_t>(n);
    return true;
}

}  // namespace segwire::metrics
