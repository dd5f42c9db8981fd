#!/usr/bin/env python3
"""Writes the UDP control datagram fuzz target's seed corpus into udp_corpus/ next to this script.

Each seed is one flags byte (bit 0: the surplus starts at an odd offset; bit 1: the UDP checksum is
zero; bits 2-7: which byte the corruption check flips) and then a surplus area (RFC 9868: [pad]
[OCS][options]) or a bare message body: every control message in its canonical surplus, the
extended length form, NOP/EOL/other options around ours, zero OCS, and malformed ones near the
checks (bad OCS, unsafe option, duplicate, truncated option, body one byte long or short).
Deterministic: running it again rewrites the same bytes. Usage: python3 gen_udp_corpus.py
"""
import os
import struct

VERSION, EXID, EXP, NOP, EOL = 1, 0x5357, 127, 1, 0
SYN, SYNACK, ACK, REJECT, RESET = 1, 2, 3, 4, 5

NONCE = bytes(range(0x10, 0x20))
MAC = bytes(range(0xA0, 0xB0))


def claims(n):
    return bytes((i * 37 + 11) & 0xFF for i in range(n))


def token(kind, c):
    body = bytes([VERSION, kind]) + NONCE + struct.pack("!H", len(c)) + c + (MAC if kind == SYNACK else b"")
    return body + struct.pack("!H", len(body) + 2)


def ack():
    return bytes([VERSION, ACK]) + MAC


def reject(reason=3):
    return bytes([VERSION, REJECT, reason]) + NONCE


def reset(reason=1):
    return bytes([VERSION, RESET, reason])


def exp_option(body, extended=None, exid=EXID):
    if extended is None:
        extended = 4 + len(body) > 254
    if extended:
        return bytes([EXP, 255]) + struct.pack("!HH", 6 + len(body), exid) + body
    return bytes([EXP, 4 + len(body)]) + struct.pack("!H", exid) + body


def ocs(surplus, odd):
    start = 1 if odd else 0
    total = len(surplus)
    for i in range(start + 2, len(surplus), 2):
        total += surplus[i] << 8 | (surplus[i + 1] if i + 1 < len(surplus) else 0)
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    v = ~total & 0xFFFF
    return v or 0xFFFF


def surplus(options, odd=False, zero_ocs=False, bad_ocs=False):
    start = b"\x00" if odd else b""
    s = bytearray(start + b"\x00\x00" + options)
    if not zero_ocs:
        v = ocs(s, odd) ^ (0x0101 if bad_ocs else 0)
        s[len(start):len(start) + 2] = struct.pack("!H", v)
    return bytes(s)


def seed(flags, data):
    return bytes([flags]) + data


ODD, ZERO = 1, 2
SEEDS = {
    "ack": seed(0, surplus(exp_option(ack()))),
    "ack_odd": seed(ODD | 4 * 7, surplus(exp_option(ack()), odd=True)),
    "reject": seed(4 * 3, surplus(exp_option(reject()))),
    "reset_odd": seed(ODD, surplus(exp_option(reset()), odd=True)),
    "syn": seed(4 * 20, surplus(exp_option(token(SYN, claims(60))))),
    "synack_odd": seed(ODD | 4 * 40, surplus(exp_option(token(SYNACK, claims(90))), odd=True)),
    "syn_extended_length": seed(0, surplus(exp_option(token(SYN, claims(300))))),
    "reset_noncanonical_extended": seed(0, surplus(exp_option(reset(), extended=True))),
    "ack_after_nops_and_other_option": seed(0, surplus(bytes([NOP, NOP, 2, 4, 0, 0]) + exp_option(ack()))),
    "reset_then_eol_and_junk": seed(0, surplus(exp_option(reset()) + bytes([EOL, 0xFF, 0xFF]))),
    "other_exid_then_ours": seed(0, surplus(exp_option(b"\x09\x09", exid=0x1234) + exp_option(ack()))),
    "reset_zero_ocs_checksum_zero": seed(ZERO, surplus(exp_option(reset()), zero_ocs=True)),
    "reset_zero_ocs": seed(0, surplus(exp_option(reset()), zero_ocs=True)),
    # malformed
    "bad_ocs": seed(0, surplus(exp_option(ack()), bad_ocs=True)),
    "unsafe_option": seed(0, surplus(bytes([200, 2]) + exp_option(ack()))),
    "duplicate": seed(0, surplus(exp_option(reset()) + exp_option(reset()))),
    "truncated_option": seed(0, surplus(bytes([EXP, 40]) + struct.pack("!H", EXID) + ack())),
    "ack_one_byte_short": seed(0, surplus(exp_option(ack()[:-1]))),
    "reject_one_byte_long": seed(0, surplus(exp_option(reject() + b"\x00"))),
    "syn_with_data_before_token": seed(0, surplus(exp_option(b"\x01\x01" + token(SYN, claims(20))))),
    # bare message bodies (the target also reads the input as a body)
    "body_synack": seed(4 * 9, token(SYNACK, claims(33))),
    "body_reject": seed(0, reject(9)),
    "confirm_is_tcp_only": seed(0, surplus(exp_option(bytes([VERSION, 6]) + MAC))),  # BadType
}


def main():
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "udp_corpus")
    os.makedirs(out, exist_ok=True)
    for name, data in SEEDS.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)
    print(f"{len(SEEDS)} seeds in {out}")


if __name__ == "__main__":
    main()
