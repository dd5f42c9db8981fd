// libFuzzer target for the packet parser. The input is copied into a heap buffer of exactly its
// size (ASan then reports a read one byte past the frame), parsed, and - when the parser accepts
// it - every offset the view reports is checked against the frame and the bytes it points at are
// read (check_view). A violation traps, so the fuzzer records the input as a crash.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "dataplane/packet/parse.hpp"
#include "tests/fuzz/dataplane/view_check.hpp"

using namespace segwire::dp;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > 65535 + 64) return 0;  // bigger than any frame a port hands us
    const auto len = static_cast<uint32_t>(size);
    std::unique_ptr<uint8_t[]> buf(new uint8_t[size]);
    if (size) std::memcpy(buf.get(), data, size);

    PacketView v;
    const DropReason r = parse_packet(buf.get(), len, v);
    if (r >= DropReason::FlowTableFull) __builtin_trap();  // not a reason the parser may return
    if (v.frame_len != len) __builtin_trap();
    if (r != DropReason::None) return 0;
    if (segwire::dptest::check_view(buf.get(), len, v) != nullptr) __builtin_trap();

    // The parser must not depend on bytes outside the frame or on the view's previous contents.
    PacketView again;
    std::memset(static_cast<void *>(&again), 0xa5, sizeof again);
    if (parse_packet(buf.get(), len, again) != r || again.l4_off != v.l4_off ||
        again.payload_off != v.payload_off || again.payload_len != v.payload_len ||
        again.ip_end != v.ip_end || again.proto != v.proto || again.sport != v.sport)
        __builtin_trap();
    return 0;
}
