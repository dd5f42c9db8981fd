"""Scale-out test bed (issue 20 item 3b, docs/scale-out.md): two routed appliances of enforcer
group `edge` in parallel between two Linux ECMP routers.

    client 10.63.1.2 -- [A: bump in the wire, enf-a] -- R1 =={G1 gw-1 | G2 gw-2}== R2 -- server 10.63.2.2
                                                        |
                                                   attacker 10.63.5.2

R1 (client side) and R2 (server side) are namespaces with forwarding on and a multipath route over
the two appliances (`ip route replace ... nexthop via G1 nexthop via G2`),
net.ipv4.fib_multipath_hash_policy=1 (L4 hash) and one net.ipv4.fib_multipath_hash_seed on both;
connections between the client side and the server are steered by nftables `symhash` marks and
fwmark rules instead, because the multipath hash is not symmetric here (docs/scale-out.md
"Symmetry", and _build).
G1 and G2 are routed segwires (routedbed.routed_config); A is an ordinary bump-in-the-wire one;
all three register with a real segwire-console (ConsoleBed's management network and Console),
G1 and G2 with app credentials bound to group `edge`. The server PU's enforcerID is group:edge.

`health_check(dead)` is the test bed's BFD: it pings the appliances' own addresses from both routers
and, once one stops answering, replaces each multipath route by the survivor alone.
Names come from testbed's unique tags and everything goes in Bed.close (also on failure).
"""
import json
import subprocess

from routedbed import routed_config
from testbed import PROBE, ConsoleBed, Segwire, lab_policy, sh, wait_for

HASH_SEED = 20260312  # any value, the same on both routers


class ScaleoutBed(ConsoleBed):
    CLIENT4, SERVER4, ATTACKER4 = "10.63.1.2", "10.63.2.2", "10.63.5.2"
    R1_CLIENT, R1_ATTACKER, R2_SERVER = "10.63.1.254", "10.63.5.254", "10.63.2.254"
    # Appliance i: outside 10.63.1i.1 (R1 10.63.1i.254), inside 10.63.2i.1 (R2 10.63.2i.254).
    GROUP = "edge"

    def _build(self):
        # Not IdentityBed's topology: everything here, then ConsoleBed's management network for
        # the three enforcer namespaces.
        import tempfile
        from pathlib import Path
        t = self.tag[3:]
        self.workdir = Path(tempfile.mkdtemp(prefix=f"{self.tag}-"))
        self.client, self.enf_a, self.r1 = self.ns("cli"), self.ns("ea"), self.ns("r1")
        self.g = [self.ns("g1"), self.ns("g2")]
        self.r2, self.server, self.attacker = self.ns("r2"), self.ns("srv"), self.ns("atk")
        self.client_if, self.if_a_in, self.if_a_out, self.r1_a = f"c{t}", f"ai{t}", f"ao{t}", f"ra{t}"
        self.server_if, self.r2_s = f"s{t}", f"rs{t}"
        self.atk_if, self.r1_atk = f"k{t}", f"rk{t}"
        self.g_out = [f"go{i}{t}" for i in (1, 2)]
        self.g_in = [f"gi{i}{t}" for i in (1, 2)]
        self.r1_g = [f"r1{i}{t}" for i in (1, 2)]
        self.r2_g = [f"r2{i}{t}" for i in (1, 2)]
        links = [(self.client, self.client_if, self.enf_a, self.if_a_in),
                 (self.enf_a, self.if_a_out, self.r1, self.r1_a),
                 (self.attacker, self.atk_if, self.r1, self.r1_atk),
                 (self.r2, self.r2_s, self.server, self.server_if)]
        for i in (0, 1):
            links += [(self.r1, self.r1_g[i], self.g[i], self.g_out[i]),
                      (self.g[i], self.g_in[i], self.r2, self.r2_g[i])]
        for n1, i1, n2, i2 in links:
            sh(f"ip link add {i1} type veth peer name {i2}")
            sh(f"ip link set {i1} netns {n1.name}")
            sh(f"ip link set {i2} netns {n2.name}")
            for n, i in ((n1, i1), (n2, i2)):
                n.run(f"ethtool -K {i} rx off tx off tso off gso off gro off", check=False)
                n.run(f"ip link set {i} up")
        for n, ifs in ((self.enf_a, (self.if_a_in, self.if_a_out)),
                       (self.g[0], (self.g_in[0], self.g_out[0])),
                       (self.g[1], (self.g_in[1], self.g_out[1]))):
            for i in ifs:  # segwire's ports: the kernel keeps off them
                n.run(f"sysctl -qw net.ipv6.conf.{i}.disable_ipv6=1")
        for host, ifname, addr, gw in ((self.client, self.client_if, self.CLIENT4, self.R1_CLIENT),
                                       (self.server, self.server_if, self.SERVER4, self.R2_SERVER),
                                       (self.attacker, self.atk_if, self.ATTACKER4, self.R1_ATTACKER)):
            host.run(f"ip addr add {addr}/24 dev {ifname}")
            host.run(f"ip route add default via {gw}")
        self.r1.run(f"ip addr add {self.R1_CLIENT}/24 dev {self.r1_a}")
        self.r1.run(f"ip addr add {self.R1_ATTACKER}/24 dev {self.r1_atk}")
        self.r2.run(f"ip addr add {self.R2_SERVER}/24 dev {self.r2_s}")
        for i in (0, 1):
            self.r1.run(f"ip addr add {self.outside(i, router=True)}/24 dev {self.r1_g[i]}")
            self.r2.run(f"ip addr add {self.inside(i, router=True)}/24 dev {self.r2_g[i]}")
        for r in (self.r1, self.r2):
            r.run("sysctl -qw net.ipv4.ip_forward=1")
            r.run("sysctl -qw net.ipv4.conf.all.rp_filter=0")
            r.run("sysctl -qw net.ipv4.fib_multipath_hash_policy=1")
            r.run(f"sysctl -qw net.ipv4.fib_multipath_hash_seed={HASH_SEED}")
            r.run("sysctl -qw net.ipv6.fib_multipath_hash_policy=1")
        # Symmetry (docs/scale-out.md "Symmetry"): the multipath route's L4 hash takes a
        # packet's socket hash as it is when one is set (skb->l4_hash, fib_multipath_hash's
        # short-circuit), and the server's packets reach R2 over a veth still carrying their
        # socket's random sk_txhash: R2 then picks the return path at random. nftables' symhash
        # (skb_get_hash_symmetric: the flow dissector, addresses and ports ordered, always
        # computed) marks each connection alike in both routers, and the mark picks the table.
        for router, prefixes in ((self.r1, "10.63.2.0/24"), (self.r2, "{ 10.63.1.0/24, 10.63.5.0/24 }")):
            router.run("nft add table ip swsym")
            router.run("nft 'add chain ip swsym pre { type filter hook prerouting priority mangle; }'")
            router.run(f"nft 'add rule ip swsym pre ip daddr {prefixes} meta mark set symhash mod 2 offset 1'")
            for k in (1, 2):
                router.run(f"ip rule add fwmark {k} table {100 + k} priority {100 + k}")
        self.routes_over((0, 1))
        # ConsoleBed's management network, for A, G1 and G2.
        self.mgmt = self.ns("mgmt")
        br = f"mb{t}"
        self.mgmt.run(f"ip link add {br} type bridge")
        self.mgmt.run(f"ip addr add {self.MGMT}/24 dev {br}")
        self.mgmt.run(f"ip link set {br} up")
        for n, suffix, addr in ((self.enf_a, "a", "10.99.0.2"), (self.g[0], "1", "10.99.0.3"),
                                (self.g[1], "2", "10.99.0.4")):
            i1, i2 = f"m{t}{suffix}", f"n{t}{suffix}"
            sh(f"ip link add {i1} type veth peer name {i2}")
            sh(f"ip link set {i1} netns {n.name}")
            sh(f"ip link set {i2} netns {self.mgmt.name}")
            n.run(f"ip addr add {addr}/24 dev {i1}")
            n.run(f"ip link set {i1} up")
            self.mgmt.run(f"ip link set {i2} master {br}")
            self.mgmt.run(f"ip link set {i2} up")
        self._init_console()
        self.wireboxes = []

    @staticmethod
    def outside(i, router=False):
        return f"10.63.1{i + 1}.{254 if router else 1}"

    @staticmethod
    def inside(i, router=False):
        return f"10.63.2{i + 1}.{254 if router else 1}"

    def routes_over(self, alive):
        """Both routers' routes across the set over the appliances in `alive`: the multipath route
        (main table), and the symhash tables 101 and 102 (appliance k, or a survivor)."""
        for router, prefixes, via in ((self.r1, ("10.63.2.0/24",), self.outside),
                                      (self.r2, ("10.63.1.0/24", "10.63.5.0/24"), self.inside)):
            hops = " ".join(f"nexthop via {via(i)}" for i in alive)
            for p in prefixes:
                router.run(f"ip route replace {p} {hops}")
                for k in (0, 1):
                    router.run(f"ip route replace {p} via {via(k if k in alive else alive[0])} "
                               f"table {101 + k}")

    def console_enforcer(self, ns, eid, ins, outs, group=None, ask_group=None, extra=None):
        """A Console-registered enforcer (not started): `group` is what its credential binds,
        `ask_group` what its CSR asks for (identity.enforcer_group)."""
        cons = {"appcred": str(self.appcred(eid, "enforcer", eid, group)), "poll_wait_s": 5,
                "heartbeat_s": 1, "report_interval_s": 1, "peer_refresh_s": 1}
        ident = {"enforcer_id": eid, "tags": ["site=lab"]}
        if ask_group:
            ident["enforcer_group"] = ask_group
        cfg = {"identity": ident, "console": cons}
        for k, v in (extra or {}).items():
            cfg[k] = v
        workdir = self.workdir / eid
        sw = Segwire(ns, f"{self.tag}{eid[-1]}", ins, outs, extra=cfg, workdir=workdir)
        sw.config["paths"]["state_dir"] = str(workdir / "state")
        self.enforcers.append(sw)
        return sw

    def appliance(self, i, extra=None, eid=None, group=GROUP):
        """Appliance G1 (i = 0) or G2 (i = 1): routed, a member of `group`, not started."""
        eid = eid or f"gw-{i + 1}"
        sw = self.console_enforcer(self.g[i], eid, self.g_in[i], self.g_out[i], group=group,
                                   ask_group=group, extra=extra)
        routes = [{"prefix": "10.63.2.0/24", "via": self.inside(i, router=True)},
                  {"prefix": "0.0.0.0/0", "via": self.outside(i, router=True)}]
        routed_config(sw, [f"{self.inside(i)}/24"], [f"{self.outside(i)}/24"], {"routes": routes})
        return sw

    def health_check(self, timeout=60):
        """The bed's BFD: pings each appliance's addresses from its router; returns the indexes
        that answer, after replacing both multipath routes by those (once none of a dead one's
        pings come back)."""
        def alive(i):
            a = self.r1.run(f"ping -c 1 -W 1 {self.outside(i)}", check=False).returncode == 0
            b = self.r2.run(f"ping -c 1 -W 1 {self.inside(i)}", check=False).returncode == 0
            return a and b
        up = tuple(i for i in (0, 1) if alive(i))
        if up:
            self.routes_over(up)
        return up


def scaleout_policy(server_enforcer="group:edge"):
    """lab_policy for ScaleoutBed: the client PU behind A, the server PU hosted by group edge;
    10.63.0.0/16 managed (the attacker's 10.63.5.2 is no PU and no external network)."""
    pol = lab_policy(client_out=[("to-server", "Allow", [["app=server"]], ["tcp/8000"])],
                     server_in=[("from-client", "Allow", [["app=client"]], ["tcp/8000"])],
                     ext_nets=[])
    prof = pol["enforcerprofiles"][0]
    prof["targetNetworks"] = ["10.63.0.0/16"]
    prof["targetUDPNetworks"] = ["10.63.0.0/16"]
    pus = {p["ID"]: p for p in pol["processingunits"]}
    pus["pu-client"]["addresses"] = ["10.63.1.2/32"]
    pus["pu-server"]["addresses"] = ["10.63.2.2/32"]
    pus["pu-server"]["enforcerID"] = server_enforcer
    return pol


def flows_on(sw, port=8000):
    """The TCP flows an appliance tracks to `port` (telemetry /segwire/flows)."""
    return [f for f in sw.flows() if f["proto"] == "tcp" and f["dport"] == port]


def wait_enforcing(*sws, peers=1, timeout=90):
    for sw in sws:
        def ready():
            c = sw.telemetry.query("/segwire/control")
            return (c["peer_certificates"] >= peers and c.get("policy_applied", 0) >= 1
                    and c["enforced_version"])
        wait_for(ready, timeout=timeout, what=f"peer certificates and a policy ({sw.prefix})")


class Keepalive:
    """`n` long-lived connections from the bed's client to its server (netprobe.py keepalive):
    each round() sends one request on every connection and says which failed, were reset, and
    reconnected (test_scaleout.py, test_geneve_scaleout.py)."""

    def __init__(self, bed, n, port=8000):
        self.p = bed.client.popen(f"python3 -u {PROBE} keepalive --host {bed.SERVER4} --port {port} "
                                  f"--connections {n} --timeout 10", stdin=subprocess.PIPE)
        self.ports = json.loads(self.p.stdout.readline())["ports"]

    def round(self):
        self.p.stdin.write("\n")
        self.p.stdin.flush()
        line = self.p.stdout.readline()
        assert line, "keepalive client died"
        return json.loads(line)["slots"]

    def close(self):
        self.p.stdin.close()
        self.p.wait(timeout=30)
