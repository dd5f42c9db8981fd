#!/usr/bin/env python3
"""Writes the identity machine fuzz target's seed corpus into corpus/ next to this script.

Each seed is a scenario of docs/identity-machines.md - both TCP roles, both UDP roles, loss and
retransmission, duplicates, RST / REJECT / RESET, forged MACs, unknown and refused claims, the
slow path, ACL fallbacks, policy cuts, expiry - in the input format fuzz_machines.cpp reads:
machine, configuration, operation count, operations, then the answers that are not the successful
one (0), in the order the needs come. Deterministic: running it again rewrites the same bytes.
Usage: python3 gen_corpus.py
"""
import os
import random
import re

TCP, UDP, PLAIN = 0, 1, 2
IN, OUT = 0, 1
SYN, SYNACK, RST, OTHER = 0, 1, 2, 3
NOEXP, NOTOURS, MALFORMED, O_SYN, O_SYNACK, O_ACK, O_CONFIRM = range(7)
T_BAD, T_SYN, T_SYNACK = range(3)
C_NONE, C_MALFORMED, C_SYN, C_SYNACK, C_ACK, C_REJECT, C_RESET = range(7)


def pkt(arrival, kind=OTHER, opt=NOEXP, token=T_BAD, ctl=C_NONE, mac=0, nc=0, ns=0, dns=0,
        len8=0, icmp=0, acks=0, seen=0):
    # acks: a TCP SYN-ACK whose ACK number acknowledges the SYN A recorded (not a blind forgery);
    # seen: a SYN whose client nonce opened another flow (a replay).
    return [0, arrival | kind << 1 | opt << 3,
            token | ctl << 2 | mac << 5 | nc << 6 | ns << 7,
            dns | len8 << 1 | icmp << 2 | acks << 3 | seen << 4]


def time(ms):
    out = []
    while ms > 0:
        step = min(ms, 2550)
        out += [1, step // 10]
        ms -= step
    return out


TIMER, SLOW, BATCH, REUSED, EXPIRE = [2], [4], [5], [6], [7]


def reeval(decided_current=0, tags_stale=0, retag_pending=0, acks_seen=1):
    return [3, decided_current | tags_stale << 1 | retag_pending << 2 | acks_seen << 3]


def seed(machine, ops, answers=(), cfg=0):
    flat = [b for op in ops for b in op]
    assert len(flat) < 256
    return bytes([machine, cfg, len(flat)] + flat + list(answers))


# Answer bytes (0 is always success): classify 1 pass / 2 unmanaged TCP / 4 unmanaged UDP;
# claims 1 present-but-changed / 2 absent; local_pu 1 none; peer 1 miss / 2 stale / 3 refused;
# key, rules, acl, nonce, plain_peer: 1; confirmation 1 recent / 2 none; edit 1 option-space;
# send 1 no token / 2 no mbuf; park 3 slow path full; batch 1 bad MAC_sa / 2 policy reject.
SEEDS = {
    # TCP server role (B)
    "tcp_b_handshake": seed(TCP, [
        pkt(OUT, SYN, O_SYN, T_SYN), pkt(IN, SYNACK), BATCH,
        pkt(OUT), pkt(OUT, OTHER, O_ACK, mac=1), pkt(OUT, OTHER, O_ACK, mac=1),
        pkt(IN), pkt(OUT, SYN, O_SYN, T_SYN), EXPIRE]),
    "tcp_b_loss_duplicates": seed(TCP, [
        pkt(OUT, SYN, O_SYN, T_SYN), pkt(OUT, SYN, O_SYN, T_SYN, nc=1),
        pkt(OUT, SYN, O_SYN, T_SYN), pkt(OUT, SYN), pkt(IN, SYNACK), BATCH,
        pkt(IN, SYNACK), pkt(OUT, SYN, token=T_SYN, nc=1), pkt(OUT), pkt(OUT),
        pkt(OUT, OTHER, O_ACK, mac=0), pkt(OUT, OTHER, O_ACK, mac=1)], [0, 0, 0, 0, 0, 0, 0, 0, 0, 1]),
    "tcp_b_slow_path": seed(TCP, [
        pkt(OUT, SYN, O_SYN, T_SYN), pkt(OUT), SLOW, pkt(IN, SYNACK), SLOW, BATCH,
        pkt(OUT, OTHER, O_ACK, mac=1)],
        [0, 1, 0,   0, 0, 0, 0,   0, 1, 0,   0, 0, 0]),
    "tcp_b_stale_and_refused": seed(TCP, [
        pkt(OUT, SYN, O_SYN, T_SYN), SLOW, EXPIRE, pkt(OUT, SYN, O_SYN, T_SYN)],
        [0, 2, 0, 0, 3], cfg=0),
    "tcp_b_policy_reject": seed(TCP, [pkt(OUT, SYN, O_SYN, T_SYN), pkt(OUT)], [0, 0, 1]),
    "tcp_b_reject_drop_and_rst": seed(TCP, [
        pkt(OUT, SYN, O_SYN, T_SYN), pkt(IN, RST), pkt(OUT, SYN, O_SYN, T_SYN), pkt(IN, SYNACK),
        BATCH, pkt(OUT, RST)], [0, 0, 1], cfg=1),
    "tcp_b_plain_syn_acl": seed(TCP, [pkt(OUT, SYN), pkt(OUT), pkt(IN)], [0, 1]),
    "tcp_b_no_context": seed(TCP, [pkt(OUT, SYN, O_SYN, T_SYN)], cfg=2),
    "tcp_b_no_share": seed(TCP, [pkt(OUT, SYN, O_SYN, T_SYN)], cfg=6),
    "tcp_b_replayed_syn": seed(TCP, [
        pkt(OUT, SYN, O_SYN, T_SYN, seen=1), pkt(OUT, SYN, O_SYN, T_SYN), pkt(IN, SYNACK), BATCH,
        pkt(OUT, SYN, O_SYN, T_SYN, nc=1, seen=1)]),
    "tcp_b_half_open": seed(TCP, [
        pkt(OUT, SYN, O_SYN, T_SYN), pkt(IN, SYNACK), BATCH, pkt(OUT), time(4900), TIMER,
        time(200), TIMER, pkt(OUT, OTHER, O_ACK, mac=1), pkt(OUT, SYN, O_SYN, T_SYN)]),
    "tcp_a_half_open": seed(TCP, [pkt(IN, SYN), pkt(IN), time(5000), TIMER, pkt(IN, SYN)]),
    "tcp_authorized_keeps_timer": seed(TCP, [
        pkt(IN, SYN), pkt(OUT, SYNACK, O_SYNACK, T_SYNACK), BATCH, pkt(IN),
        pkt(OUT, OTHER, O_CONFIRM, mac=1), time(6000), TIMER, pkt(IN)]),
    "tcp_b_confirm_again": seed(TCP, [
        pkt(OUT, SYN, O_SYN, T_SYN), pkt(IN, SYNACK), BATCH, pkt(OUT, OTHER, O_ACK, mac=1),
        pkt(OUT, OTHER, O_ACK, mac=1), pkt(OUT, OTHER, O_ACK, mac=1)],
        [0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 2]),
    # TCP client role (A)
    "tcp_a_handshake": seed(TCP, [
        pkt(IN, SYN), pkt(IN, SYN), pkt(OUT, SYNACK, O_SYNACK, T_SYNACK), BATCH, pkt(IN),
        pkt(OUT), pkt(OUT, SYNACK, token=T_SYNACK, ns=1), pkt(OUT, OTHER, O_CONFIRM, mac=1),
        pkt(OUT, OTHER, O_CONFIRM, mac=1), pkt(IN), EXPIRE]),
    "tcp_a_plain_server": seed(TCP, [pkt(IN, SYN), pkt(IN), pkt(OUT, SYNACK, acks=1), pkt(OUT)]),
    "tcp_a_plain_synack_blind": seed(TCP, [pkt(IN, SYN), pkt(OUT, SYNACK), pkt(OUT, SYNACK, acks=1),
                                           pkt(OUT)]),
    "tcp_a_forged_synack": seed(TCP, [
        pkt(IN, SYN), pkt(OUT, SYNACK, O_SYNACK, T_SYNACK), BATCH], [0, 0, 0, 0, 0, 0, 0, 0, 1]),
    "tcp_a_rules_reject": seed(TCP, [
        pkt(IN, SYN), pkt(OUT, SYNACK, O_SYNACK, T_SYNACK), BATCH], [0, 0, 0, 0, 0, 0, 0, 0, 2]),
    "tcp_a_no_option_space": seed(TCP, [pkt(IN, SYN), pkt(IN)], [0, 0, 0, 0, 1, 0]),
    "tcp_a_confirm_forged": seed(TCP, [
        pkt(IN, SYN), pkt(OUT, SYNACK, O_SYNACK, T_SYNACK), BATCH,
        pkt(OUT, OTHER, O_CONFIRM, mac=0), pkt(OUT, RST)]),
    "tcp_a_key_miss": seed(TCP, [
        pkt(IN, SYN), pkt(OUT, SYNACK, O_SYNACK, T_SYNACK), SLOW, BATCH],
        [0, 0, 0, 0, 0, 0, 1]),
    # TCP, every state: policy cut, port reuse, mid-stream pick-up
    "tcp_policy_cut": seed(TCP, [
        pkt(OUT, SYN, O_SYN, T_SYN), pkt(IN, SYNACK), BATCH, pkt(OUT, OTHER, O_ACK, mac=1),
        reeval(tags_stale=1), reeval(), pkt(OUT)], [0] * 13 + [1]),
    "tcp_ports_reused": seed(TCP, [
        pkt(IN, SYN), pkt(OUT, SYNACK), REUSED, pkt(IN, SYN), pkt(OUT, OTHER, O_ACK)]),
    "tcp_midstream": seed(TCP, [pkt(OUT, OTHER, O_ACK), pkt(OUT, SYN, O_SYN, T_SYN)], [0]),
    # UDP client role (A)
    "udp_a_handshake": seed(UDP, [
        pkt(IN), pkt(IN), pkt(OUT, ctl=C_SYNACK), BATCH, pkt(IN),
        pkt(OUT, ctl=C_SYNACK, ns=1, len8=1), time(3000), TIMER, pkt(OUT, ctl=C_SYNACK, len8=1),
        pkt(OUT, dns=1)]),
    "udp_a_retransmit_fallback": seed(UDP, [
        pkt(IN), time(200), TIMER, time(200), TIMER, time(400), TIMER, time(600), TIMER,
        pkt(IN)]),
    "udp_a_rejected": seed(UDP, [
        pkt(IN), pkt(OUT, ctl=C_REJECT), pkt(OUT, ctl=C_REJECT, nc=1), pkt(IN),
        pkt(OUT, ctl=C_SYN)]),
    "udp_a_forged_then_real": seed(UDP, [
        pkt(IN), pkt(OUT, ctl=C_SYNACK), BATCH, pkt(OUT, ctl=C_SYNACK), BATCH],
        [0, 0, 0, 0, 0, 0, 0, 0, 0, 1]),
    "udp_a_policy_reject": seed(UDP, [pkt(IN), pkt(OUT, ctl=C_SYNACK), BATCH],
                               [0, 0, 0, 0, 0, 0, 0, 0, 0, 2]),
    "udp_a_reset_rehandshake": seed(UDP, [
        pkt(IN), pkt(OUT, ctl=C_SYNACK), BATCH, pkt(OUT, ctl=C_RESET), pkt(IN),
        pkt(OUT, ctl=C_SYNACK), BATCH]),
    # UDP server role (B)
    "udp_b_handshake": seed(UDP, [
        pkt(OUT, ctl=C_SYN), BATCH, pkt(OUT), time(200), pkt(OUT), pkt(OUT, ctl=C_SYN, nc=1),
        pkt(OUT, ctl=C_ACK, mac=0), pkt(OUT, ctl=C_ACK, mac=1), pkt(IN)]),
    "udp_b_expired": seed(UDP, [pkt(OUT, ctl=C_SYN), BATCH, pkt(OUT), time(1400), TIMER,
                                pkt(OUT)]),
    "udp_b_forgotten_flow": seed(UDP, [
        pkt(OUT), pkt(OUT), time(1000), pkt(OUT), pkt(OUT, ctl=C_SYN), BATCH,
        pkt(OUT, ctl=C_ACK, mac=1)]),
    "udp_b_reset_timeout": seed(UDP, [pkt(OUT), time(1400), TIMER, pkt(OUT)]),
    "udp_b_reset_then_own_pu": seed(UDP, [pkt(OUT), pkt(IN), pkt(OUT, ctl=C_SYNACK)]),
    "udp_b_refused_claims": seed(UDP, [pkt(OUT, ctl=C_SYN), pkt(OUT, ctl=C_SYN)], [0, 3]),
    "udp_b_beside_authorized_expires": seed(UDP, [
        pkt(OUT, ctl=C_SYN), BATCH, pkt(OUT, ctl=C_ACK, mac=1), pkt(IN), pkt(OUT, ctl=C_SYN), BATCH,
        pkt(IN), time(1400), TIMER, pkt(IN)]),
    "udp_b_replayed_syn": seed(UDP, [pkt(OUT, ctl=C_SYN, seen=1), pkt(OUT, ctl=C_SYN), BATCH,
                                     pkt(OUT, ctl=C_ACK, mac=1)]),
    "udp_b_slow_path": seed(UDP, [pkt(OUT, ctl=C_SYN), pkt(OUT), SLOW, BATCH,
                                  pkt(OUT, ctl=C_ACK, mac=1)], [0, 1]),
    "udp_restart_decided": seed(UDP, [
        pkt(IN), pkt(OUT, ctl=C_SYNACK), BATCH, pkt(OUT, ctl=C_SYN), BATCH, reeval(),
        pkt(OUT, ctl=C_MALFORMED), pkt(OUT, ctl=C_ACK)]),
    "udp_not_managed": seed(UDP, [pkt(IN), pkt(OUT), reeval()], [4]),
    # plain (ICMP, other protocols)
    "plain_acl": seed(PLAIN, [pkt(IN), pkt(OUT), reeval(), pkt(OUT), EXPIRE, pkt(OUT, icmp=1)],
                      [0, 0, 0, 1]),
    "plain_rejected": seed(PLAIN, [pkt(OUT), pkt(IN)], [0, 1]),
}


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    out = os.path.join(here, "corpus")
    os.makedirs(out, exist_ok=True)
    # Seeds only: the SHA-1-named files are libFuzzer's, kept by tools/fuzz (docs/fuzzing.md).
    for f in os.listdir(out):
        if not re.fullmatch(r"[0-9a-f]{40}", f):
            os.remove(os.path.join(out, f))
    rng = random.Random(9868)
    for i in range(24):  # a few random inputs too
        SEEDS["random_%02d" % i] = bytes(rng.randrange(256) for _ in range(rng.randrange(8, 160)))
    for name, data in sorted(SEEDS.items()):
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)
    print("%d seeds in %s" % (len(SEEDS), out))


if __name__ == "__main__":
    main()
