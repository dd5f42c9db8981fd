// The identity machines never allocate: every step of every machine, over random states, events
// and facts (and the needs they ask answered), with operator new counted.
#include <random>

#include <gtest/gtest.h>

#include "dataplane/identity/plain_machine.hpp"
#include "dataplane/identity/tcp_machine.hpp"
#include "dataplane/identity/udp_machine.hpp"
#include "tests/unit/alloc_counter.hpp"

namespace segwire::dp::identity {
namespace {

TEST(IdentityMachines, StepsNeverAllocate) {
    std::mt19937 rng(7);
    auto pick = [&](unsigned n) { return static_cast<uint8_t>(rng() % n); };
    using StepFn = Result (*)(const FlowState &, const Event &, const Facts &) noexcept;
    const StepFn machines[] = {tcp::step, udp::step, plain::step};
    size_t steps = 0;
    for (int i = 0; i < 20000; ++i) {
        FlowState st;
        st.auth = Auth(pick(uint8_t(Auth::kCount)));
        st.role = Role(pick(3));
        st.hs = pick(2), st.peer = pick(2), st.parked = pick(4) == 0, st.in_batch = pick(4) == 0;
        Event ev{EventKind(pick(uint8_t(EventKind::kCount))), BatchOp(pick(2))};
        Facts fx;
        fx.pkt.arrival = Arrival(pick(2));
        fx.pkt.kind = TcpKind(pick(4));
        fx.pkt.opt = TcpOpt(pick(uint8_t(TcpOpt::kCount)));
        fx.pkt.token = Token(pick(3));
        fx.pkt.ctl = UdpCtl(pick(uint8_t(UdpCtl::kCount)));
        fx.pkt.mac_ok = pick(2), fx.pkt.nonce_client = pick(2), fx.pkt.nonce_server = pick(2);
        fx.pkt.dns_reply = pick(2), fx.pkt.udp_len8 = pick(2), fx.pkt.icmp_control = pick(2);
        fx.since_send_ms = rng() % 2000, fx.elapsed_ms = rng() % 4000, fx.tries = pick(4);
        fx.timer_stale = pick(2), fx.hs_pool = pick(2), fx.reject_with_rst = pick(2);
        fx.synack_mac_ok = pick(2), fx.batch_accept = pick(2), fx.decided_current = pick(2);
        fx.peer_tags_current = pick(2), fx.retag_pending = pick(2), fx.acks_seen = pick(2);
        Answers &a = fx.answers;
        a.classify = ClassifyAnswer(pick(2));
        a.managed_tcp = pick(2), a.managed_udp = pick(2), a.plain_peer = pick(2);
        a.claims = ClaimsAnswer(pick(3)), a.local_pu = LocalPuAnswer(pick(3));
        a.peer = PeerAnswer(pick(5)), a.key = KeyAnswer(pick(3)), a.rules_accept = pick(2);
        a.acl_accept = pick(2), a.nonce = pick(2);
        a.confirmation = ConfirmationAnswer(pick(3));
        a.edit = pick(2) ? DropReason::None : DropReason::OptionSpace;
        a.sent = SendAnswer(pick(3));
        a.known = 0;
        const StepFn step = machines[pick(3)];
        g_counting = true;
        for (int k = 0; k < 16; ++k) {
            const Result r = step(st, ev, fx);
            ++steps;
            if (r.need.kind == NeedKind::kNone) break;
            fx.answers.mark(r.need.kind);
        }
        g_counting = false;
    }
    EXPECT_EQ(g_allocations, 0u);
    EXPECT_GT(steps, 20000u);
}

}  // namespace
}  // namespace segwire::dp::identity
