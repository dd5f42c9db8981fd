// Where a metrics endpoint listens: `ADDRESS:PORT` with an IPv4 literal or a bracketed IPv6 one
// (`127.0.0.1:9470`, `[::1]:9470`). The enforcer's `metrics.listen` and the Console's
// `--metrics-listen` are parsed here, so both refuse the same mistakes in the same words.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace segwire::metrics {

struct ListenAddress {
    std::string host;  // the address without brackets: what bind() is given
    uint16_t port = 0;
};

// False with `*problem` set (a sentence without the field name, which the caller adds) when `text`
// is not ADDRESS:PORT. Host names are refused: binding to one would depend on name resolution at
// start, and an exporter's address is a deliberate choice (loopback or a management address).
// Port 0 (an ephemeral port) only when `allow_port_zero`.
bool parse_listen_address(std::string_view text, ListenAddress *out, std::string *problem,
                          bool allow_port_zero = false);

}  // namespace segwire::metrics
