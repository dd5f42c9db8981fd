"""The GENEVE test bed (docs/geneve.md): segwire B in GENEVE one-arm mode behind a GENEVE load
balancer built from real Linux parts (kernel routing, a TUN device) and gwlb.py (the
encapsulation, AWS Gateway Load Balancer's contract: this kernel has no GENEVE device).

  client 10.63.1.2 --- [A bump-in-the-wire] --- lc 10.63.1.254 \\
  server 10.63.2.2 ------------------------------ ls 10.63.2.254 >- LB ns: everything arriving on
  ext    10.63.3.3 ------------------------------ le 10.63.3.254 /   lc/ls/le is routed into the TUN
                                                                   device; gwlb.py encapsulates it
  arm segment 10.63.9.0/24 (bridge in the LB ns, 10.63.9.254) ---- [B GENEVE arm 10.63.9.1]
                                                              |--- attacker 10.63.9.66
                                                              \\--- [C GENEVE arm 10.63.9.3]
                                                                   (GeneveBed(appliances=2) only)

With two appliances gwlb.py sends each flow to one of them by a symmetric hash of the inner
5-tuple (both directions to the same one, as GWLB's stickiness does) and health-checks them on
HEALTH_PORT, as GWLB does; `group` makes B and C members of that enforcer group
(test_geneve_scaleout.py, docs/scale-out.md).

The client and the server are PUs (client hosted by A, server by B): an identity handshake runs
between A and B through the load balancer; the ext host has no enforcer (an external network).
Nothing reaches B but GENEVE (and ARP, and the health check). Everything goes in Bed.close.
"""
import json
import tempfile
import time
from pathlib import Path

from testbed import Bed, Pki, Segwire, sh, wait_for

HERE = Path(__file__).resolve().parent


class GeneveBed(Bed):
    CLIENT4, SERVER4, EXT4 = "10.63.1.2", "10.63.2.2", "10.63.3.3"
    LB_ARM4, ARM4, ATTACKER4 = "10.63.9.254", "10.63.9.1", "10.63.9.66"
    HEALTH_PORT = 8080
    ARM4_C = "10.63.9.3"

    def __init__(self, appliances=1, group=None):
        super().__init__()
        self.appliances = appliances
        self.group = group  # the enforcer group bound into B's and C's certificates

    def _build(self):
        t = self.tag[3:]
        self.client, self.enf_a, self.lb = self.ns("cli"), self.ns("ea"), self.ns("lb")
        self.server, self.ext, self.enf_b = self.ns("srv"), self.ns("ext"), self.ns("eb")
        self.attacker = self.ns("atk")
        self.if_a_in, self.if_a_out, self.arm_if = f"ai{t}", f"ao{t}", f"g{t}"
        self.client_if, self.server_if, self.ext_if = f"c{t}", f"s{t}", f"e{t}"
        self.lb_arm_if, self.attacker_if, self.tun = f"la{t}", f"k{t}", f"tn{t}"
        self.lb_bridge = f"br{t}"
        links = [  # (ns1, if1, ns2, if2)
            (self.client, self.client_if, self.enf_a, self.if_a_in),
            (self.enf_a, self.if_a_out, self.lb, f"lc{t}"),
            (self.server, self.server_if, self.lb, f"ls{t}"),
            (self.ext, self.ext_if, self.lb, f"le{t}"),
            (self.enf_b, self.arm_if, self.lb, self.lb_arm_if),
            (self.attacker, self.attacker_if, self.lb, f"lk{t}"),
        ]
        if self.appliances == 2:
            self.enf_c, self.arm_c_if = self.ns("ec"), f"h{t}"
            links.append((self.enf_c, self.arm_c_if, self.lb, f"lh{t}"))
        for n in self.namespaces:
            n.run("sysctl -qw net.ipv6.conf.all.disable_ipv6=1")
            n.run("sysctl -qw net.ipv6.conf.default.disable_ipv6=1")
        for n1, i1, n2, i2 in links:
            sh(f"ip link add {i1} type veth peer name {i2}")
            sh(f"ip link set {i1} netns {n1.name}")
            sh(f"ip link set {i2} netns {n2.name}")
            for n, i in ((n1, i1), (n2, i2)):
                n.run(f"ethtool -K {i} rx off tx off tso off gso off gro off", check=False)
                n.run(f"ip link set {i} up")
        # The load balancer: a router whose forwarding goes through the TUN device (gwlb.py).
        lb = self.lb
        lb.run("sysctl -qw net.ipv4.ip_forward=1")
        for k in ("all", "default"):
            lb.run(f"sysctl -qw net.ipv4.conf.{k}.rp_filter=0")
        lb.run(f"ip link add {self.lb_bridge} type bridge")
        for i in (self.lb_arm_if, f"lk{t}") + ((f"lh{t}",) if self.appliances == 2 else ()):
            lb.run(f"ip link set {i} master {self.lb_bridge}")
        lb.run(f"ip link set {self.lb_bridge} up")
        lb.run(f"ip addr add {self.LB_ARM4}/24 dev {self.lb_bridge}")
        for i, a in ((f"lc{t}", "10.63.1.254"), (f"ls{t}", "10.63.2.254"), (f"le{t}", "10.63.3.254")):
            lb.run(f"ip addr add {a}/24 dev {i}")
            lb.run(f"sysctl -qw net.ipv4.conf.{i}.rp_filter=0")
            lb.run(f"ip rule add iif {i} lookup 100")
        lb.run(f"ip tuntap add dev {self.tun} mode tun")
        lb.run(f"ip link set {self.tun} up")
        lb.run(f"sysctl -qw net.ipv4.conf.{self.tun}.rp_filter=0")
        lb.run(f"ip route add default dev {self.tun} table 100")
        for host, ifname, a, gw in ((self.client, self.client_if, self.CLIENT4, "10.63.1.254"),
                                    (self.server, self.server_if, self.SERVER4, "10.63.2.254"),
                                    (self.ext, self.ext_if, self.EXT4, "10.63.3.254"),
                                    (self.attacker, self.attacker_if, self.ATTACKER4, None)):
            host.run(f"ip addr add {a}/24 dev {ifname}")
            if gw:
                host.run(f"ip route add default via {gw}")
        self.workdir = Path(tempfile.mkdtemp(prefix=f"{self.tag}-"))
        self.pki = Pki(self.workdir / "pki")
        self.keys = {e: self.pki.enforcer(e, group=None if e == "enf-a" else self.group)
                     for e in ("enf-a", "enf-b", "enf-c")}
        self.lb_stats = self.workdir / "gwlb.json"
        self.gwlb = lb.popen(f"python3 -u {HERE / 'gwlb.py'} --tun {self.tun} --local {self.LB_ARM4} "
                             f"--appliance {self.ARM4} --stats {self.lb_stats}" +
                             (f" --appliance {self.ARM4_C} --health-port {self.HEALTH_PORT}"
                              if self.appliances == 2 else ""))
        line = self.gwlb.stdout.readline()
        if not line or not json.loads(line).get("listening"):
            raise RuntimeError(f"gwlb.py did not start: {line}")

    def identity(self, which, policy_file):
        eid = f"enf-{which}"
        others = [e for e in self.keys if e != eid]
        key, cert = self.keys[eid]
        return {"enforcer_id": eid, "tags": ["site=lab"], "key": str(key), "certificate": str(cert),
                "trusted_cas": str(self.pki.ca),
                "peer_certificates": [str(self.keys[o][1]) for o in others],
                "policy_file": str(policy_file)}

    def start_a(self, policy_file):
        """Enforcer A, bump in the wire between the client and the load balancer."""
        sw = Segwire(self.enf_a, f"{self.tag}a", self.if_a_in, self.if_a_out,
                     extra={"identity": self.identity("a", policy_file)},
                     workdir=self.workdir / "enf-a")
        self.enforcers.append(sw)
        return sw.start()

    def start_b(self, policy_file, geneve=None):
        """Enforcer B in GENEVE mode on its one arm."""
        tag = f"{self.tag}b"
        sw = Segwire(self.enf_b, tag, self.arm_if, self.arm_if,
                     extra={"identity": self.identity("b", policy_file),
                            "metrics": {"listen": "127.0.0.1:9470"}},
                     workdir=self.workdir / "enf-b")
        geneve_config(sw, tag, self.arm_if, [f"{self.ARM4}/24"],
                      dict({"health_check": {"tcp_port": self.HEALTH_PORT}}, **(geneve or {})))
        self.enforcers.append(sw)
        return sw.start()

    def start_c(self, policy_file, geneve=None):
        """The second GENEVE appliance (GeneveBed(appliances=2)), 10.63.9.3 on the arm segment.
        The policy must say which PUs enf-c hosts (the server's PU is enf-b's in
        geneve_lab_policy)."""
        tag = f"{self.tag}c"
        sw = Segwire(self.enf_c, tag, self.arm_c_if, self.arm_c_if,
                     extra={"identity": self.identity("c", policy_file)},
                     workdir=self.workdir / "enf-c")
        geneve_config(sw, tag, self.arm_c_if, [f"{self.ARM4_C}/24"],
                      dict({"health_check": {"tcp_port": self.HEALTH_PORT}}, **(geneve or {})))
        self.enforcers.append(sw)
        return sw.start()

    def write_policy(self, policy, name="policy.json"):
        p = self.workdir / name
        p.write_text(json.dumps(policy, indent=1))
        return p

    def lb_counters(self):
        return json.loads(self.lb_stats.read_text())

    def close(self):
        # gwlb.py runs in the LB namespace: Bed.close kills its processes.
        super().close()


def geneve_config(sw, tag, arm_if, addresses, geneve=None):
    sw.config["mode"] = "geneve"
    sw.config["ports"] = {"arm": {"device": f"net_af_packet_{tag}_arm,iface={arm_if}",
                                  "addresses": addresses}}
    if geneve is not None:
        sw.config["geneve"] = geneve


def geneve_counters(sw):
    return sw.telemetry.query("/segwire/geneve")


def geneve_lab_policy(client_out=(), server_in=()):
    """lab_policy renumbered for GeneveBed."""
    from testbed import lab_policy
    pol = lab_policy(client_out=client_out, server_in=server_in)
    nets = ["10.63.1.0/24", "10.63.2.0/24", "10.63.3.0/24"]
    pol["enforcerprofiles"][0]["targetNetworks"] = nets
    pol["enforcerprofiles"][0]["targetUDPNetworks"] = nets
    pus = {p["ID"]: p for p in pol["processingunits"]}
    pus["pu-client"]["addresses"] = ["10.63.1.2/32"]
    pus["pu-server"]["addresses"] = ["10.63.2.2/32"]
    pol["externalnetworks"] = [{"ID": "net-ext", "name": "ext-host", "associatedTags": ["net=ext"],
                                "entries": ["10.63.3.3/32"]}]
    return pol


def wait_lb(bed, timeout=30, **at_least):
    """Waits until gwlb.py's counters reach `at_least`."""
    def ok():
        c = bed.lb_counters()
        return c if all(c.get(k, 0) >= v for k, v in at_least.items()) else None
    return wait_for(ok, timeout=timeout, what=f"gwlb counters {at_least}")


def settle(seconds):
    """For negative checks only (nothing must come back): a bounded wait, not a condition."""
    time.sleep(seconds)
