"""Identity required (docs/policy.md "Identity required"; issue 16 item 3): the profile's
identityRequiredNetworks refuse peers without identity instead of deciding them by address, and an
external network that overlaps managed networks is not a silent way around identity rules.

client -- [A] -- wire (+ a host without enforcer, 10.77.0.3, inside the managed 10.77.0.0/24) --
[B] -- server. The external network "ext-host" (10.77.0.3/32, net=ext) is allowed both ways by
rules: with identityRequiredNetworks covering it, the same connections are refused with
identity-required on both sides; without it, they are allowed by the ACL and the enforcers warn that
the external network overlaps a managed network.
"""
import pytest

from testbed import IdentityBed, lab_policy, probe, probe_server, wait_for

EXT_TO_SERVER, CLIENT_TO_EXT = 7004, 7006


def policy(required):
    client_out = [("to-ext", "Allow", [["net=ext"]], [f"tcp/{CLIENT_TO_EXT}"])]
    server_in = [("from-ext", "Allow", [["net=ext"]], [f"tcp/{EXT_TO_SERVER}"])]
    extra = {"identityRequiredNetworks": ["10.77.0.3/32"]} if required else {}
    return lab_policy(client_out=client_out, server_in=server_in, version=f"req-{required}",
                      profile_extra=extra)


def connect(ns, host, port):
    return probe(ns, f"connections --host {host} --port {port} --count 2 --parallel 1 --timeout 3")["ok"]


@pytest.fixture(params=[True, False], ids=["required", "not-required"])
def lab(request):
    with IdentityBed() as bed:
        pf = bed.write_policy(policy(request.param))
        bed.a = bed.start_enforcer("a", pf)
        bed.b = bed.start_enforcer("b", pf)
        probe_server(bed.server, f"echo-server --port {EXT_TO_SERVER}")
        probe_server(bed.ext, f"echo-server --port {CLIENT_TO_EXT}")
        bed.required = request.param
        yield bed


def refused(sw, port, reason):
    return [r for r in sw.flowlog() if r["destinationPort"] == port and r["action"] == "Reject"
            and r["dropReason"] == reason]


def test_peers_without_identity_in_required_networks_are_refused(lab):
    ext_ok = connect(lab.ext, lab.SERVER4, EXT_TO_SERVER)  # B decides the plain SYN
    client_ok = connect(lab.client, lab.EXT4, CLIENT_TO_EXT)  # A decides the plain SYN-ACK
    if lab.required:
        assert ext_ok == 0 and client_ok == 0, (ext_ok, client_ok)
        wait_for(lambda: refused(lab.b, EXT_TO_SERVER, "identity-required"), timeout=15,
                 what="B to report identity-required")
        wait_for(lambda: refused(lab.a, CLIENT_TO_EXT, "identity-required"), timeout=15,
                 what="A to report identity-required")
        assert lab.b.stats()["drops"]["identity_required"] >= 1
    else:
        # The same host, the same rules: the ACL allows it when identity is not required.
        assert ext_ok == 2 and client_ok == 2, (ext_ok, client_ok)


def test_an_external_network_overlapping_managed_networks_is_a_warning(lab):
    text = ("entry 10.77.0.3/32 overlaps the managed tcp network 10.77.0.0/24: peers in 10.77.0.3/32 "
            "without identity are decided by this network's rules")
    for sw in (lab.a, lab.b):
        wait_for(lambda: "applied" in sw.log(), timeout=30, what="the policy to be applied")
        if lab.required:
            assert text not in sw.log()
        else:
            assert text in sw.log()
            assert sw.telemetry.query("/segwire/control")["policy_warnings"] >= 1
