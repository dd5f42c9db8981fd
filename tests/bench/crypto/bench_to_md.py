#!/usr/bin/env python3
"""Turns bench_crypto console output into the tables of docs/protocol.md §11.

    ./build/tests/bench/crypto/bench_crypto --benchmark_min_time=0.2 > /tmp/b.txt
    tests/bench/crypto/bench_to_md.py /tmp/b.txt   # prints Markdown to paste
"""
import re
import sys

b = {}
for line in open(sys.argv[1]):
    m = re.match(r'(BM_\S+)\s+([\d.]+) ns\s+([\d.]+) ns\s+\d+\s*(.*)', line)
    if m:
        ips = re.search(r'items_per_second=([\d.]+)([kM]?)/s', m.group(4))
        v = float(ips.group(1)) * {'': 1, 'k': 1e3, 'M': 1e6}[ips.group(2)] if ips else None
        b[m.group(1)] = (float(m.group(3)), v)


def rate(k):
    v = b[k][1]
    return f"{v / 1e6:.2f} M/s" if v >= 1e6 else f"{v / 1e3:.1f} k/s"


def t(k):
    ns = b[k][0]
    return f"{ns / 1000:.1f} µs" if ns >= 1000 else f"{ns:.0f} ns"


rows = [
    ("Claims sign (encode + ECDSA P-256 sign)", "BM_ClaimsSign"),
    ("Claims full verify (decode, cert lookup, ECDSA verify)", "BM_ClaimsVerifyFull"),
    ("Claims cache hit (SHA-256 of a 234-byte blob + lookup)", "BM_ClaimsCacheHit"),
    ("Claims decode (structure only)", "BM_ClaimsDecode"),
    ("X25519 shared secret, local key kept as EVP_PKEY", "BM_X25519Derive"),
    ("X25519 shared secret from raw private key bytes", "BM_X25519DeriveRawKey"),
    ("X25519 key generation", "BM_X25519Keygen"),
    ("Session-key miss: X25519 + HKDF + HMAC pad expansion", "BM_SessionKeyMiss"),
    ("Nonce (16 bytes, buffered RAND_bytes)", "BM_NonceNext"),
    ("SYN token encode", "BM_TokenEncodeSyn"),
    ("SYN token decode", "BM_TokenDecodeSyn"),
    ("TCP option add + find + strip (Linux SYN)", "BM_TcpOptionAddFindStrip"),
    ("UDP surplus write + parse (222 bytes, OCS twice)", "BM_UdpSurplusWriteParse"),
    ("Both MACs of 32 handshakes (64 × 144 B) in one call; rate in handshakes",
     "BM_HandshakeMacs32"),
]
print("| Operation | Time | Rate |\n| --- | --- | --- |")
for name, k in rows:
    print(f"| {name} | {t(k)} | {rate(k)} |")
print()
print("| Back-end, messages per call | 64 B | 144 B (MAC input) | 256 B |\n| --- | --- | --- | --- |")
for label, pre, bs in [
    ("intel-ipsec-mb burst API, 1 per call", "BM_HmacIpsecMb", "1"),
    ("intel-ipsec-mb, 2 per call", "BM_HmacIpsecMb", "2"),
    ("intel-ipsec-mb, 8 per call", "BM_HmacIpsecMb", "8"),
    ("intel-ipsec-mb, 16 per call", "BM_HmacIpsecMb", "16"),
    ("intel-ipsec-mb, 32 per call", "BM_HmacIpsecMb", "32"),
    ("intel-ipsec-mb, 128 per call", "BM_HmacIpsecMb", "128"),
    ("portable (OpenSSL SHA-256 block fn, SHA-NI), 1 per call", "BM_HmacOpenSsl", "1"),
    ("portable, 32 per call", "BM_HmacOpenSsl", "32"),
]:
    print(f"| {label} | " + " | ".join(rate(f"{pre}/{n}/{bs}") for n in (64, 144, 256)) + " |")
print(f"| OpenSSL `EVP_MAC` one-shot per message (no pre-expanded key) | "
      f"{rate('BM_HmacOpenSslEvpOneShot/64')} | – | {rate('BM_HmacOpenSslEvpOneShot/256')} |")
print()
print("Default `HmacBatch` (auto: portable below 16 jobs, library from 16): " +
      ", ".join(f"{n} jobs of 144 B → {rate(f'BM_HmacAuto/144/{n}')}" for n in (2, 8, 32)) + ".")
