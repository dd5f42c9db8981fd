// The plain machine (dataplane/identity/plain_machine.cpp: ICMP and every protocol but TCP and
// UDP) as a table: one row per branch path. EveryPathHasARow explores the machine and fails on any
// path the table lacks.
//
// Row facts: FlowState role/hs/peer/parked/in_batch, arrival, icmp_control, the sweep facts and
// the answers to needs (classify, acl, local_pu, rules).
#include "dataplane/identity/plain_machine.hpp"

#include "tests/unit/identity/machine_test_util.hpp"

namespace segwire::dp::identity {
namespace {

using test::Row;

const std::vector<test::Impossible> kCannotHappen = test::with_pairs(
    test::with_pairs(
        {
    {Auth::kClientSyn, "*", "a handshake state: no handshake without TCP or UDP"},
    {Auth::kClientAck, "*", "a handshake state"},
    {Auth::kServerSyn, "*", "a handshake state"},
    {Auth::kServerSynAck, "*", "a handshake state"},
    {Auth::kUdpClientSyn, "*", "a handshake state"},
    {Auth::kUdpServerSynAck, "*", "a handshake state"},
    {Auth::kUdpResetSent, "*", "a handshake state"},
    {Auth::kNew, "macs:client", "no handshake, no HMACs"},
    {Auth::kPass, "macs:client", "no HMACs"},
    {Auth::kAllowed, "macs:client", "no HMACs"},
    {Auth::kRejected, "macs:client", "no HMACs"},
    {Auth::kNew, "macs:server", "no HMACs"},
    {Auth::kPass, "macs:server", "no HMACs"},
    {Auth::kAllowed, "macs:server", "no HMACs"},
    {Auth::kRejected, "macs:server", "no HMACs"},
    {Auth::kNew, "timer", "no handshake context"},
    {Auth::kPass, "timer", "no handshake context"},
    {Auth::kAllowed, "timer", "no handshake context"},
    {Auth::kRejected, "timer", "no handshake context"},
    {Auth::kNew, "reused", "TCP only"},
    {Auth::kPass, "reused", "TCP only"},
    {Auth::kAllowed, "reused", "TCP only"},
    {Auth::kRejected, "reused", "TCP only"},
        },
        {Auth::kL4ClientSyn, Auth::kL4ClientWait, Auth::kL4ClientConfirm, Auth::kL4ServerSyn, Auth::kL4ServerWait}, {"*"}, "a handshake state"),
    {Auth::kNew, Auth::kPass, Auth::kAllowed, Auth::kRejected}, {"macs:l4client", "macs:l4server"},
    "no HMACs");

// clang-format off
const std::vector<Row> kRows = {
    // New, pkt
    {"New", "pkt", "parked=0 in_batch=0 classify=ours icmp_control=0 arrival=in acl=0",
     "Rejected: ?classify SetLocalSide SetPeer(none) ?acl(out,classified,policy-port) SetDecidedVersion Count(acl_decisions) Record(policy-reject,decided,none) SetAuth(Rejected) Count(rejected) DropHeld(policy-reject) FreeHs Drop(policy-reject)"},
    {"New", "pkt", "parked=0 in_batch=0 classify=ours icmp_control=0 arrival=in acl=1",
     "Allowed: ?classify SetLocalSide SetPeer(none) ?acl(out,classified,policy-port) SetDecidedVersion Count(acl_decisions) Record(none,decided,none) SetAuth(Allowed) FreeHs Count(authorized) ReleaseHeld Forward"},
    {"New", "pkt", "parked=0 in_batch=0 classify=ours icmp_control=0 arrival=out acl=0",
     "Rejected: ?classify SetLocalSide SetPeer(none) ?acl(in,classified,policy-port) SetDecidedVersion Count(acl_decisions) Record(policy-reject,decided,none) SetAuth(Rejected) Count(rejected) DropHeld(policy-reject) FreeHs Drop(policy-reject)"},
    {"New", "pkt", "parked=0 in_batch=0 classify=ours icmp_control=0 arrival=out acl=1",
     "Allowed: ?classify SetLocalSide SetPeer(none) ?acl(in,classified,policy-port) SetDecidedVersion Count(acl_decisions) Record(none,decided,none) SetAuth(Allowed) FreeHs Count(authorized) ReleaseHeld Forward"},
    {"New", "pkt", "parked=0 in_batch=0 classify=ours icmp_control=1",
     "Pass: ?classify SetLocalSide SetAuth(Pass) Count(passthrough) Forward"},
    {"New", "pkt", "parked=0 in_batch=0 classify=pass",
     "Pass: ?classify SetLocalSide SetAuth(Pass) Count(passthrough) Forward"},
    {"New", "pkt", "parked=0 in_batch=1",
     "New: Defer"},
    {"New", "pkt", "parked=1",
     "New: Hold"},
    // New, reeval
    {"New", "reeval", "",
     "New:"},
    // New, expire
    {"New", "expire", "",
     "New: DropHeld(handshake-expired) FreeHs SetPeer(none)"},
    // Pass, pkt
    {"Pass", "pkt", "parked=0 in_batch=0",
     "Pass: Forward"},
    {"Pass", "pkt", "parked=0 in_batch=1",
     "Pass: Defer"},
    {"Pass", "pkt", "parked=1",
     "Pass: Hold"},
    // Pass, reeval
    {"Pass", "reeval", "",
     "Pass:"},
    // Pass, expire
    {"Pass", "expire", "",
     "Pass: DropHeld(handshake-expired) FreeHs SetPeer(none)"},
    // Allowed, pkt
    {"Allowed", "pkt", "parked=0 in_batch=0",
     "Allowed: Forward"},
    {"Allowed", "pkt", "parked=0 in_batch=1",
     "Allowed: Defer"},
    {"Allowed", "pkt", "parked=1",
     "Allowed: Hold"},
    // Allowed, reeval
    {"Allowed", "reeval", "decided_current=0 local_pu=found peer=0 acl=0",
     "Rejected: ?local_pu ?acl(sides,local,responder) SetDecidedVersion SetAuth(Rejected) Count(flows_cut) DropHeld(policy-cut) FreeHs Record(policy-cut,decided,flow)"},
    {"Allowed", "reeval", "decided_current=0 local_pu=found peer=0 acl=1",
     "Allowed: ?local_pu ?acl(sides,local,responder) SetDecidedVersion"},
    {"Allowed", "reeval", "decided_current=0 local_pu=found peer=1 peer_revoked=0 peer_tags_current=0 retag_pending=0",
     "Allowed: ?local_pu StartRetag SweepIncomplete"},
    {"Allowed", "reeval", "decided_current=0 local_pu=found peer=1 peer_revoked=0 peer_tags_current=0 retag_pending=1",
     "Allowed: ?local_pu SweepIncomplete"},
    {"Allowed", "reeval", "decided_current=0 local_pu=found peer=1 peer_revoked=0 peer_tags_current=1 rules=0",
     "Rejected: ?local_pu ?rules(sides,local,responder,flow) SetDecidedVersion SetAuth(Rejected) Count(flows_cut) DropHeld(policy-cut) FreeHs Record(policy-cut,decided,flow)"},
    {"Allowed", "reeval", "decided_current=0 local_pu=found peer=1 peer_revoked=0 peer_tags_current=1 rules=1",
     "Allowed: ?local_pu ?rules(sides,local,responder,flow) SetDecidedVersion"},
    {"Allowed", "reeval", "decided_current=0 local_pu=found peer=1 peer_revoked=1",
     "Rejected: ?local_pu SetDecidedVersion SetAuth(Rejected) Count(flows_cut) DropHeld(policy-cut) FreeHs Record(certificate-revoked,empty,flow)"},
    {"Allowed", "reeval", "decided_current=0 local_pu=none",
     "Allowed: ?local_pu"},
    {"Allowed", "reeval", "decided_current=1",
     "Allowed:"},
    // Allowed, expire
    {"Allowed", "expire", "",
     "Allowed: DropHeld(handshake-expired) FreeHs SetPeer(none)"},
    // Rejected, pkt
    {"Rejected", "pkt", "parked=0 in_batch=0",
     "Rejected: Drop(flow-rejected)"},
    {"Rejected", "pkt", "parked=0 in_batch=1",
     "Rejected: Defer"},
    {"Rejected", "pkt", "parked=1",
     "Rejected: Hold"},
    // Rejected, reeval
    {"Rejected", "reeval", "",
     "Rejected:"},
    // Rejected, expire
    {"Rejected", "expire", "",
     "Rejected: DropHeld(handshake-expired) FreeHs SetPeer(none)"},
};
// clang-format on

TEST(PlainMachine, Rows) {
    test::check_rows(plain::step, kRows, kCannotHappen);
}

TEST(PlainMachine, EveryPathHasARow) {
    test::check_every_path("plain", plain::step, kRows, kCannotHappen);
}

}  // namespace
}  // namespace segwire::dp::identity
