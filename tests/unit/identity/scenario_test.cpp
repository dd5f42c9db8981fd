// Walks through the charts of docs/identity-machines.md: each scenario is a sequence of events on
// one flow, run as an adapter runs them (every need answered from the step's facts; a Park fate
// marks the flow parked until a "slow" step, QueueMacs marks it in the batch until its
// macs:... step). Each step names the state it must leave the flow in and the packet's fate.
// The per-transition tables (tcp/udp/plain_machine_test) pin every branch; these pin the walks.
#include <gtest/gtest.h>

#include "dataplane/identity/plain_machine.hpp"
#include "dataplane/identity/tcp_machine.hpp"
#include "dataplane/identity/udp_machine.hpp"
#include "tests/unit/identity/machine_test_util.hpp"

namespace segwire::dp::identity {
namespace {

struct Step {
    const char *event;  // as in the tables, or "slow": the slow path answered (parked cleared)
    const char *facts;
    const char *expect;  // "<state> <fate>" ("-" when the event carries no packet)
};

struct Scenario {
    const char *name;
    test::StepFn step;
    std::vector<Step> steps;
};

void walk(const Scenario &sc) {
    SCOPED_TRACE(sc.name);
    FlowState st;
    for (size_t i = 0; i < sc.steps.size(); ++i) {
        const Step &s = sc.steps[i];
        SCOPED_TRACE(::testing::Message()
                     << "step " << i << ": " << s.event << " [" << s.facts << "]");
        if (std::string(s.event) == "slow") {
            st.parked = false;
            continue;
        }
        Event ev;
        ASSERT_TRUE(test::parse_event(s.event, ev));
        test::Assign a = test::defaults(st.auth);
        a.st = st;
        std::string err;
        ASSERT_TRUE(test::parse_facts(s.facts, a, err)) << err;
        if (ev.kind == EventKind::kMacsReady) a.st.in_batch = false;  // the adapter clears it
        const test::Outcome o = test::run(sc.step, a, ev);
        EXPECT_EQ(o.error, "");
        std::string fate = "-";
        for (const Action &x : o.actions)
            if (is_fate(x.kind)) fate = test::render(x);
        EXPECT_EQ(std::string(name(o.next.auth)) + " " + fate, s.expect) << o.text;
        st = o.next;
        for (const Action &x : o.actions) {
            if (x.kind == Act::kPark) st.parked = true;
            if (x.kind == Act::kQueueMacs) st.in_batch = true;
        }
    }
}

const std::vector<Scenario> kScenarios = {
    {"TCP client role (A): handshake, proof until B confirms",
     tcp::step,
     {{"pkt", "arrival=in kind=syn managed_tcp=1", "ClientSyn Forward"},
      {"pkt", "arrival=in kind=syn", "ClientSyn Forward"},  // retransmitted: same nonce
      {"pkt", "arrival=out kind=synack opt=synack token=synack",
       "ClientSyn QueueMacs(client,looked,decided)"},
      {"macs:client", "synack_mac_ok=1 batch_accept=1", "ClientAck Forward(stripped)"},
      {"pkt", "arrival=in kind=other", "ClientAck Forward"},   // carries the proof
      {"pkt", "arrival=out kind=other", "ClientAck Forward"},  // TFO data is no evidence
      {"pkt", "arrival=out kind=synack token=synack nonce_server=1", "ClientAck Forward(stripped)"},
      {"pkt", "arrival=out kind=other opt=confirm mac_ok=0", "ClientAck Drop(mac-mismatch)"},
      {"pkt", "arrival=out kind=other opt=confirm mac_ok=1", "Allowed Consume"},
      {"pkt", "arrival=out kind=other opt=confirm", "Allowed Consume"},  // repeated
      {"pkt", "arrival=in kind=other", "Allowed Forward"}}},
    {"TCP server role (B): duplicates, lost proof, late proof",
     tcp::step,
     {{"pkt", "arrival=out kind=syn opt=syn token=syn", "ServerSyn Forward(stripped)"},
      {"pkt", "arrival=out kind=syn opt=syn token=syn nonce_client=1",
       "ServerSyn Forward(stripped)"},
      {"pkt", "arrival=out kind=syn opt=syn token=syn", "ServerSyn Drop(token-malformed)"},
      {"pkt", "arrival=out kind=syn", "ServerSyn Drop(token-malformed)"},  // replayed plain SYN
      {"pkt", "arrival=in kind=synack peer=1", "ServerSyn QueueMacs(server,flow,empty)"},
      {"pkt", "arrival=in kind=other", "ServerSyn Defer"},  // same burst, after the op
      {"macs:server", "", "ServerSynAck Forward"},
      {"pkt", "arrival=in kind=synack claims=same", "ServerSynAck Forward"},  // re-sent
      {"pkt", "arrival=out kind=syn token=syn nonce_client=1", "ServerSynAck Forward(stripped)"},
      {"pkt", "arrival=out kind=other", "ServerSynAck Hold"},  // data before the proof
      {"pkt", "arrival=out kind=other opt=ack mac_ok=0", "ServerSynAck Drop(mac-mismatch)"},
      {"pkt", "arrival=out kind=other opt=ack mac_ok=1", "Allowed Forward(stripped)"},
      {"pkt", "arrival=out kind=other opt=ack role=server confirmation=due",
       "Allowed Forward(stripped)"},
      {"pkt", "arrival=out kind=syn opt=syn token=syn", "Allowed Forward(stripped)"},
      {"reeval", "local_pu=found peer=1 peer_tags_current=0", "Allowed -"},
      {"reeval", "local_pu=found peer=1 peer_tags_current=1 rules=0 acks_seen=1", "Rejected -"},
      {"pkt", "arrival=out kind=other", "Rejected Drop(flow-rejected)"},
      {"reused", "", "New -"}}},
    {"TCP unknown and refused claims, slow path",
     tcp::step,
     {{"pkt", "arrival=out kind=syn opt=syn token=syn peer_answer=miss", "New Park(verify)"},
      {"pkt", "arrival=out kind=other", "New Hold"},
      {"slow", "", ""},
      {"pkt", "arrival=out kind=syn opt=syn token=syn peer_answer=refused",
       "Rejected "
       "Drop(claims-invalid)"},
      {"expire", "", "Rejected -"}}},
    {"TCP without an enforcer on the server, RST during the handshake",
     tcp::step,
     {{"pkt", "arrival=in kind=syn managed_tcp=1", "ClientSyn Forward"},
      {"pkt", "arrival=out kind=rst", "New Forward"},
      {"pkt", "arrival=in kind=syn managed_tcp=1", "ClientSyn Forward"},
      {"pkt", "arrival=out kind=synack acl=1", "ClientSyn Drop(tcp-out-of-window)"},  // blind
      {"pkt", "arrival=out kind=synack acks_syn=1 acl=1", "Allowed Forward"},
      {"pkt", "arrival=out kind=other", "Allowed Forward"}}},
    {"TCP forged SYN-ACK and outgoing reject at A",
     tcp::step,
     {{"pkt", "arrival=in kind=syn managed_tcp=1", "ClientSyn Forward"},
      {"pkt", "arrival=out kind=synack opt=synack token=synack",
       "ClientSyn QueueMacs(client,looked,decided)"},
      {"macs:client", "synack_mac_ok=0", "Rejected Drop(mac-mismatch)"}}},
    {"UDP client role (A): retransmission, handshake, kept ACK",
     udp::step,
     {{"pkt", "arrival=in managed_udp=1", "UdpClientSyn Hold"},
      {"timer", "elapsed_ms=199", "UdpClientSyn -"},
      {"timer", "elapsed_ms=200", "UdpClientSyn -"},  // Resend, tries 1
      {"pkt", "arrival=in", "UdpClientSyn Hold"},
      {"pkt", "arrival=out ctl=synack mac_ok=1", "UdpClientSyn QueueMacs(client,looked,decided)"},
      {"macs:client", "synack_mac_ok=1 batch_accept=1", "Allowed Consume"},
      {"pkt", "arrival=out udp_len8=1 ctl=synack hs=1 role=client nonce_server=1",
       "Allowed Consume"},  // our ACK was lost: the same ACK again
      {"timer", "role=client elapsed_ms=3000", "Allowed -"},
      {"pkt", "arrival=out udp_len8=1 ctl=reset role=client",
       "Allowed Consume"},  // B forgot the flow: a fresh handshake beside the authorization
      {"pkt", "arrival=in", "Allowed Forward"},  // make-before-break: the datagrams keep flowing
      {"pkt", "arrival=out udp_len8=1 ctl=reject nonce_client=0",
       "Allowed Consume"},  // echoes no nonce of ours: forged, no effect
      {"pkt", "arrival=out udp_len8=1 ctl=reject nonce_client=1",
       "Rejected Consume"}}},  // B refused the fresh handshake, echoing its nonce
    {"UDP client role, peer without enforcer: fallback to the ACL",
     udp::step,
     {{"pkt", "arrival=in managed_udp=1", "UdpClientSyn Hold"},
      {"timer", "tries=0 elapsed_ms=200", "UdpClientSyn -"},
      {"timer", "tries=1 elapsed_ms=400", "UdpClientSyn -"},
      {"timer", "tries=2 elapsed_ms=800", "UdpClientSyn -"},
      {"timer", "tries=3 elapsed_ms=1400 acl=1", "Allowed -"},
      {"pkt", "arrival=in", "Allowed Forward"}}},
    {"UDP server role (B): lost ACK, SYN-ACK re-sent, expiry, forgotten flow",
     udp::step,
     {{"pkt", "arrival=out ctl=syn", "New QueueMacs(server,looked,decided)"},
      {"macs:server", "claims=same", "UdpServerSynAck Consume"},
      {"pkt", "arrival=out since_send_ms=199", "UdpServerSynAck Hold"},
      {"pkt", "arrival=out since_send_ms=200", "UdpServerSynAck Hold"},  // + Resend
      {"pkt", "arrival=out ctl=syn nonce_client=1", "UdpServerSynAck Consume"},
      {"timer", "elapsed_ms=1400", "New -"},                      // no ACK: held data dropped
      {"pkt", "arrival=out managed_udp=1", "UdpResetSent Hold"},  // forgotten: RESET
      {"pkt", "arrival=out since_send_ms=1000", "UdpResetSent Hold"},
      {"pkt", "arrival=out ctl=syn", "UdpResetSent QueueMacs(server,looked,decided)"},
      {"macs:server", "claims=same", "UdpServerSynAck Consume"},
      {"pkt", "arrival=out ctl=ack mac_ok=0", "UdpServerSynAck Drop(mac-mismatch)"},
      {"pkt", "arrival=out ctl=ack mac_ok=1", "Allowed Consume"},
      {"pkt", "arrival=out udp_len8=1 ctl=syn rules=0", "Rejected Consume"},  // REJECT sent
      {"pkt", "arrival=out", "Rejected Drop(flow-rejected)"}}},
    {"ICMP and other protocols: ACL, pass, policy cut",
     plain::step,
     {{"pkt", "arrival=out acl=1", "Allowed Forward"},
      {"reeval", "local_pu=found acl=0", "Rejected -"},
      {"pkt", "arrival=in", "Rejected Drop(flow-rejected)"},
      {"expire", "", "Rejected -"}}},
};

TEST(IdentityScenarios, WalkTheCharts) {
    for (const Scenario &sc : kScenarios) walk(sc);
}

}  // namespace
}  // namespace segwire::dp::identity
