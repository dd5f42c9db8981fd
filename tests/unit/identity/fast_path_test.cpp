// The machines' steady-state summaries (tcp::forwards, udp::forwards, plain::forwards) against
// step(): for every value of every field a summary reads, and the rest of the facts varied,
// forwards() is true only when the step returns just [TrackSeq,] Forward and asks nothing (false
// is always safe: the adapter then runs the step). A summary that forwards one packet the machine
// would hold, scrub or snoop fails here; so does one that stops covering the established path.
#include <gtest/gtest.h>

#include <random>

#include "dataplane/identity/plain_machine.hpp"
#include "dataplane/identity/tcp_machine.hpp"
#include "dataplane/identity/udp_machine.hpp"

namespace segwire::dp::identity {
namespace {

using StepFn = Result (*)(const FlowState &, const Event &, const Facts &) noexcept;
using ForwardsFn = bool (*)(const FlowState &, const PacketFacts &) noexcept;

// True when the step's whole outcome is the steady state's.
bool only_forwards(const Result &r, bool track_seq) {
    if (r.need.kind != NeedKind::kNone || r.overflow) return false;
    uint8_t i = 0;
    if (track_seq) {
        if (r.n < 1 || r.actions[0].kind != Act::kTrackSeq) return false;
        i = 1;
    }
    return r.n == i + 1 && r.actions[i].kind == Act::kForward && r.actions[i].a == 0;
}

// Every combination of what the summaries read; the rest random (several draws each).
size_t check(StepFn step, ForwardsFn forwards, bool track_seq) {
    std::mt19937 rng(14);
    size_t forwarded = 0, cases = 0;
    for (uint8_t auth = 0; auth < uint8_t(Auth::kCount); ++auth)
        for (int flags = 0; flags < 4; ++flags)
            for (uint8_t arrival = 0; arrival < 2; ++arrival)
                for (uint8_t kind = 0; kind < uint8_t(TcpKind::kCount); ++kind)
                    for (uint8_t opt = 0; opt < uint8_t(TcpOpt::kCount); ++opt)
                        for (int bits = 0; bits < 4; ++bits)
                            for (int draw = 0; draw < 4; ++draw) {
                                FlowState s;
                                s.auth = Auth(auth);
                                s.parked = flags & 1;
                                s.in_batch = flags & 2;
                                s.role = Role(rng() % 3);
                                s.hs = rng() & 1;
                                s.peer = rng() & 1;
                                Facts fx;
                                PacketFacts &p = fx.pkt;
                                p.arrival = Arrival(arrival);
                                p.kind = TcpKind(kind);
                                p.opt = TcpOpt(opt);
                                p.dns_reply = bits & 1;
                                p.udp_len8 = bits & 2;
                                p.token = Token(rng() % uint8_t(Token::kCount));
                                p.ctl = UdpCtl(rng() % uint8_t(UdpCtl::kCount));
                                p.mac_ok = rng() & 1;
                                p.nonce_client = rng() & 1;
                                p.nonce_server = rng() & 1;
                                p.icmp_control = rng() & 1;
                                fx.hs_pool = rng() & 1;
                                fx.reject_with_rst = rng() & 1;
                                const Result r = step(
                                    s, Event{EventKind::kPacket, BatchOp::kClientCheckSynAck}, fx);
                                const bool fast = forwards(s, p);
                                EXPECT_TRUE(!fast || only_forwards(r, track_seq))
                                    << "auth " << name(s.auth) << " parked " << s.parked
                                    << " in_batch " << s.in_batch << " arrival " << int(arrival)
                                    << " kind " << int(kind) << " opt " << int(opt) << " dns "
                                    << p.dns_reply << " len8 " << p.udp_len8;
                                forwarded += fast;
                                ++cases;
                            }
    EXPECT_LT(forwarded, cases);
    return forwarded;
}

// The established path: an authorized flow's plain segment or datagram, either direction.
void covers_established(ForwardsFn forwards) {
    for (uint8_t arrival = 0; arrival < 2; ++arrival) {
        FlowState s;
        s.auth = Auth::kAllowed;
        PacketFacts p;
        p.arrival = Arrival(arrival);
        p.kind = TcpKind::kOther;
        p.opt = TcpOpt::kNoExp;
        EXPECT_TRUE(forwards(s, p)) << "arrival " << int(arrival);
        s.auth = Auth::kPass;
        EXPECT_TRUE(forwards(s, p)) << "pass, arrival " << int(arrival);
    }
}

TEST(FastPath, TcpForwardsIsTheMachinesSteadyState) {
    check(tcp::step, tcp::forwards, true);
    covers_established(tcp::forwards);
}
TEST(FastPath, UdpForwardsIsTheMachinesSteadyState) {
    check(udp::step, udp::forwards, false);
    covers_established(udp::forwards);
}
TEST(FastPath, PlainForwardsIsTheMachinesSteadyState) {
    check(plain::step, plain::forwards, false);
    covers_established(plain::forwards);
}

}  // namespace
}  // namespace segwire::dp::identity
