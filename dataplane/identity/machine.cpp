// The paths the identity machines share, transcribed from dataplane/handshake/tcp_identity.cpp
// (function names in the comments are the worker's), and the vocabulary's names.
#include "dataplane/identity/machine.hpp"

namespace segwire::dp::identity {

const char *name(Auth a) noexcept {
    switch (a) {
        case Auth::kNew:
            return "New";
        case Auth::kPass:
            return "Pass";
        case Auth::kAllowed:
            return "Allowed";
        case Auth::kRejected:
            return "Rejected";
        case Auth::kClientSyn:
            return "ClientSyn";
        case Auth::kClientAck:
            return "ClientAck";
        case Auth::kServerSyn:
            return "ServerSyn";
        case Auth::kServerSynAck:
            return "ServerSynAck";
        case Auth::kUdpClientSyn:
            return "UdpClientSyn";
        case Auth::kUdpServerSynAck:
            return "UdpServerSynAck";
        case Auth::kUdpResetSent:
            return "UdpResetSent";
        case Auth::kL4ClientSyn:
            return "L4ClientSyn";
        case Auth::kL4ClientWait:
            return "L4ClientWait";
        case Auth::kL4ClientConfirm:
            return "L4ClientConfirm";
        case Auth::kL4ServerSyn:
            return "L4ServerSyn";
        case Auth::kL4ServerWait:
            return "L4ServerWait";
        case Auth::kCount:
            break;
    }
    return "?";
}

const char *name(Role r) noexcept {
    switch (r) {
        case Role::kNone:
            return "none";
        case Role::kClient:
            return "client";
        case Role::kServer:
            return "server";
        case Role::kCount:
            break;
    }
    return "?";
}

const char *name(EventKind e) noexcept {
    switch (e) {
        case EventKind::kPacket:
            return "pkt";
        case EventKind::kMacsReady:
            return "macs";
        case EventKind::kTimer:
            return "timer";
        case EventKind::kReevaluate:
            return "reeval";
        case EventKind::kExpire:
            return "expire";
        case EventKind::kPortsReused:
            return "reused";
        case EventKind::kCount:
            break;
    }
    return "?";
}

const char *name(BatchOp o) noexcept {
    switch (o) {
        case BatchOp::kClientCheckSynAck:
            return "client";
        case BatchOp::kServerSignSynAck:
            return "server";
        case BatchOp::kL4ClientCheckR2:
            return "l4client";
        case BatchOp::kL4ServerSignR2:
            return "l4server";
        case BatchOp::kCount:
            break;
    }
    return "?";
}

const char *name(Act a) noexcept {
    switch (a) {
#define X(n, text)  \
    case Act::k##n: \
        return #n;
        SEGWIRE_IDENTITY_ACTIONS(X)
#undef X
        case Act::kEnd:
            break;
    }
    return "?";
}

const char *name(Counter c) noexcept {
    switch (c) {
#define X(n)         \
    case Counter::n: \
        return #n;
        SEGWIRE_IDENTITY_COUNTERS(X)
#undef X
        case Counter::kCount:
            break;
    }
    return "?";
}

const char *name(NeedKind k) noexcept {
    switch (k) {
        case NeedKind::kNone:
            return "none";
        case NeedKind::kClassify:
            return "classify";
        case NeedKind::kPlainPeer:
            return "plain_peer";
        case NeedKind::kLocalClaims:
            return "claims";
        case NeedKind::kLocalPu:
            return "local_pu";
        case NeedKind::kPeer:
            return "peer";
        case NeedKind::kSessionKey:
            return "key";
        case NeedKind::kRules:
            return "rules";
        case NeedKind::kAcl:
            return "acl";
        case NeedKind::kNonce:
            return "nonce";
        case NeedKind::kConfirmation:
            return "confirmation";
        case NeedKind::kEdit:
            return "edit";
        case NeedKind::kSend:
            return "send";
        case NeedKind::kCount:
            break;
    }
    return "?";
}

const char *name(Field f) noexcept {
    switch (f) {
        case Field::kRole:
            return "role";
        case Field::kHs:
            return "hs";
        case Field::kPeer:
            return "peer";
        case Field::kParked:
            return "parked";
        case Field::kInBatch:
            return "in_batch";
        case Field::kArrival:
            return "arrival";
        case Field::kKind:
            return "kind";
        case Field::kOpt:
            return "opt";
        case Field::kToken:
            return "token";
        case Field::kCtl:
            return "ctl";
        case Field::kMacOk:
            return "mac_ok";
        case Field::kNonceClient:
            return "nonce_client";
        case Field::kNonceServer:
            return "nonce_server";
        case Field::kAcksSyn:
            return "acks_syn";
        case Field::kDnsReply:
            return "dns_reply";
        case Field::kUdpLen8:
            return "udp_len8";
        case Field::kIcmpControl:
            return "icmp_control";
        case Field::kNonceSeen:
            return "nonce_seen";
        case Field::kL4Rec:
            return "l4_rec";
        case Field::kAcksRecord:
            return "acks_record";
        case Field::kSeqData:
            return "seq_data";
        case Field::kAutoPeer:
            return "auto_peer";
        case Field::kSinceSendMs:
            return "since_send_ms";
        case Field::kElapsedMs:
            return "elapsed_ms";
        case Field::kTries:
            return "tries";
        case Field::kTimerStale:
            return "timer_stale";
        case Field::kHsPool:
            return "hs_pool";
        case Field::kRejectWithRst:
            return "reject_with_rst";
        case Field::kSynAckMacOk:
            return "synack_mac_ok";
        case Field::kBatchAccept:
            return "batch_accept";
        case Field::kDecidedCurrent:
            return "decided_current";
        case Field::kPeerTagsCurrent:
            return "peer_tags_current";
        case Field::kRetagPending:
            return "retag_pending";
        case Field::kAcksSeen:
            return "acks_seen";
        case Field::kPeerRevoked:
            return "peer_revoked";
        case Field::kL4Sent:
            return "l4_sent";
        case Field::kL4Acked:
            return "l4_acked";
        case Field::kClassify:
            return "classify";
        case Field::kManagedTcp:
            return "managed_tcp";
        case Field::kManagedUdp:
            return "managed_udp";
        case Field::kL4:
            return "l4";
        case Field::kPlainPeer:
            return "plain_peer";
        case Field::kClaims:
            return "claims";
        case Field::kLocalPu:
            return "local_pu";
        case Field::kPeerAnswer:
            return "peer_answer";
        case Field::kKey:
            return "key";
        case Field::kRulesAccept:
            return "rules";
        case Field::kAclAccept:
            return "acl";
        case Field::kNonce:
            return "nonce";
        case Field::kConfirmation:
            return "confirmation";
        case Field::kEdit:
            return "edit";
        case Field::kSent:
            return "sent";
        case Field::kCount:
            break;
    }
    return "?";
}

}  // namespace segwire::dp::identity
