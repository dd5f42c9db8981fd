"""Anti-spoofing (docs/handshake.md "Anti-spoofing"; issue 17 item 3): a packet is checked against
the port it arrived on. client -- [A] -- wire (+ attacker host, 10.77.0.3) -- [B] -- server; A
hosts pu-client (10.77.0.1), B hosts pu-server (10.77.0.2); 10.77.0.60 on the client's segment
and 10.77.0.61 on the attacker's are covered by no PU (passed untouched, so without the check a
spoofed frame would go straight through).

Each case sends spoofed frames and then a control frame along the same path that must arrive; the
watcher stops at the control, and none of the spoofed frames may have arrived before it. Each
case fails if its check is removed.
"""
import json
import uuid
from pathlib import Path

import pytest

from testbed import IdentityBed, lab_policy, wait_for

SPOOF = Path(__file__).resolve().parent / "spoof.py"
INSIDE_FREE, OUTSIDE_FREE = "10.77.0.60", "10.77.0.61"


def policy(unmanaged="pass"):
    # The client may send udp/9 to the attacker's host (the last case's control frame).
    return lab_policy(client_out=[("to-ext", "Allow", [["net=ext"]], ["udp/9"])],
                      profile_extra={"unmanagedInsideSources": unmanaged}, version=f"spoof-{unmanaged}")


def start(bed, unmanaged="pass"):
    pf = bed.write_policy(policy(unmanaged))
    bed.client.run(f"ip addr add {INSIDE_FREE}/24 dev {bed.client_if}")
    bed.ext.run(f"ip addr add {OUTSIDE_FREE}/24 dev {bed.ext_if}")
    bed.a = bed.start_enforcer("a", pf)
    bed.b = bed.start_enforcer("b", pf)


@pytest.fixture(scope="module")
def bed():
    with IdentityBed() as b:
        start(b)
        yield b


def send(ns, iface, src, dst, marker, sport=40000, dport=9, count=5):
    ns.run(f"python3 {SPOOF} send --iface {iface} --src {src} --dst {dst} --sport {sport} "
           f"--dport {dport} --marker {marker} --count {count}")


def arrived(bed, watch_ns, watch_if, attacker_ns, attacker_if, spoofed, control):
    """Sends the spoofed frames (src, dst, sport, dport), then the control frame; returns how many
    spoofed frames the watcher saw before the control arrived."""
    mark, ctl = f"spoof-{uuid.uuid4().hex[:8]}", f"ctl-{uuid.uuid4().hex[:8]}"
    w = watch_ns.popen(f"python3 -u {SPOOF} watch --iface {watch_if} --marker {mark} --until {ctl} --timeout 30")
    assert json.loads(w.stdout.readline())["ready"]
    src, dst, sport, dport = spoofed
    send(attacker_ns, attacker_if, src, dst, mark, sport, dport)
    csrc, cdst, csport, cdport = control
    send(attacker_ns, attacker_if, csrc, cdst, ctl, csport, cdport)
    out = json.loads(w.stdout.readline())
    w.wait(timeout=10)
    assert out["control"], "the control frame did not arrive: the path itself is broken"
    return out["seen"]


def drops(sw, name):
    return sw.stats()["drops"].get(name, 0)


def test_a_hosted_pus_address_from_outside_is_dropped(bed):
    # The attacker on the wire sends as pu-client (hosted by A) to a free address behind A.
    before = drops(bed.a, "spoofed_source")
    seen = arrived(bed, bed.client, bed.client_if, bed.ext, bed.ext_if,
                   spoofed=(bed.CLIENT4, INSIDE_FREE, 40000, 9),
                   control=(OUTSIDE_FREE, INSIDE_FREE, 40000, 9))
    assert seen == 0, f"{seen} frames from pu-client's address came in through A's outside port"
    assert drops(bed.a, "spoofed_source") >= before + 5


def test_another_enforcers_pu_address_from_inside_is_dropped(bed):
    # A workload behind A sends as pu-server (hosted by B) towards the wire.
    before = drops(bed.a, "spoofed_source")
    seen = arrived(bed, bed.ext, bed.ext_if, bed.client, bed.client_if,
                   spoofed=(bed.SERVER4, OUTSIDE_FREE, 40000, 9),
                   control=(INSIDE_FREE, OUTSIDE_FREE, 40000, 9))
    assert seen == 0, f"{seen} frames from pu-server's address left through A's inside port"
    assert drops(bed.a, "spoofed_source") >= before + 5


def test_an_established_flows_local_side_from_outside_is_dropped(bed):
    # A flow 10.77.0.60:41000 <-> 10.77.0.61:7104 exists at A (passed: no PU), its local side
    # inside. The attacker replays the local side's own direction into A's outside port.
    send(bed.client, bed.client_if, INSIDE_FREE, OUTSIDE_FREE, "open", 41000, 7104, count=1)
    wait_for(lambda: [f for f in bed.a.flows() if f.get("dport") == 7104], timeout=10,
             what="A to track the flow")
    before = drops(bed.a, "spoofed_source")
    seen = arrived(bed, bed.client, bed.client_if, bed.ext, bed.ext_if,
                   spoofed=(INSIDE_FREE, OUTSIDE_FREE, 41000, 7104),
                   control=(OUTSIDE_FREE, INSIDE_FREE, 7104, 41000))
    assert seen == 0, f"{seen} frames of the flow's local side came in through A's outside port"
    assert drops(bed.a, "spoofed_source") >= before + 5


def test_unmanaged_inside_sources_follow_the_profile():
    with IdentityBed() as b:
        start(b, unmanaged="drop")
        # From inside, from an address no PU covers: dropped; pu-client's own address passes.
        seen = arrived(b, b.ext, b.ext_if, b.client, b.client_if,
                       spoofed=(INSIDE_FREE, OUTSIDE_FREE, 40000, 9),
                       control=(b.CLIENT4, b.EXT4, 40000, 9))
        assert seen == 0, f"{seen} frames from an unmanaged inside address left through A"
        assert drops(b.a, "unmanaged_inside_source") >= 5
