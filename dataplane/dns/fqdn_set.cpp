#include "dataplane/dns/fqdn_set.hpp"

#include <algorithm>
#include <cstring>

namespace segwire::dp::dns {

std::span<const uint32_t> FqdnSet::networks_for(const uint8_t addr16[16], uint32_t pu,
                                                uint32_t now_unix) const noexcept {
    auto before = [](const Entry &e, const uint8_t *a, uint32_t p) {
        const int c = std::memcmp(e.addr, a, 16);
        return c != 0 ? c < 0 : e.pu < p;
    };
    auto it = std::lower_bound(entries_.begin(), entries_.end(), addr16,
                               [&](const Entry &e, const uint8_t *a) { return before(e, a, pu); });
    const Entry *live = nullptr;
    for (; it != entries_.end() && it->pu == pu && std::memcmp(it->addr, addr16, 16) == 0; ++it) {
        if (now_unix >= it->expires_at) break;  // the rest of the run expires even earlier
        live = &*it;
    }
    if (!live) return {};
    return {nets_.data() + live->off, live->cnt};
}

std::span<const uint32_t> FqdnSet::networks_for_v4(const uint8_t addr4[4], uint32_t pu,
                                                   uint32_t now_unix) const noexcept {
    uint8_t mapped[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    std::memcpy(mapped + 12, addr4, 4);
    return networks_for(mapped, pu, now_unix);
}

}  // namespace segwire::dp::dns
