"""Routed-mode test beds (docs/routed.md): segwire as a routed next hop between two subnets.

RoutedBed:          client 10.61.1.2 --- [S: 10.61.1.1 | 10.61.2.1] --- server 10.61.2.2
                    (fd61:1::/64 and fd61:2::/64 the same); the hosts' default routes point at
                    segwire's port addresses, so they reach each other only through it.
RoutedIdentityBed:  client --- [A] --- transit 10.61.9.0/24 (bridge; ext host 10.61.9.3) --- [B]
                    --- server; A and B are routed enforcers with static routes to each other's
                    inside subnet: an identity handshake between them, an ACL flow to ext.

Names come from testbed's unique tags and everything goes in Bed.close (also on failure).
"""
import json

from testbed import Bed, IdentityBed, Segwire, sh, wait_for


class RoutedBed(Bed):
    CLIENT4, SERVER4 = "10.61.1.2", "10.61.2.2"
    CLIENT6, SERVER6 = "fd61:1::2", "fd61:2::2"
    S_IN4, S_OUT4 = "10.61.1.1", "10.61.2.1"
    S_IN6, S_OUT6 = "fd61:1::1", "fd61:2::1"
    FAR4 = "10.62.0.2"  # on the server's loopback, reachable only with a static route

    def _build(self):
        t = self.tag[3:]
        self.client, self.enf, self.server = self.ns("cli"), self.ns("enf"), self.ns("srv")
        self.client_if, self.if_in, self.if_out, self.server_if = f"c{t}", f"i{t}", f"o{t}", f"s{t}"
        for n1, i1, n2, i2 in ((self.client, self.client_if, self.enf, self.if_in),
                               (self.enf, self.if_out, self.server, self.server_if)):
            sh(f"ip link add {i1} type veth peer name {i2}")
            sh(f"ip link set {i1} netns {n1.name}")
            sh(f"ip link set {i2} netns {n2.name}")
            for n, i in ((n1, i1), (n2, i2)):
                n.run(f"ethtool -K {i} rx off tx off tso off gso off gro off", check=False)
        for i in (self.if_in, self.if_out):  # segwire's addresses are its own, not the kernel's
            self.enf.run(f"sysctl -qw net.ipv6.conf.{i}.disable_ipv6=1")
            self.enf.run(f"ip link set {i} up")
        for host, ifname, a4, a6, gw4, gw6 in (
                (self.client, self.client_if, self.CLIENT4, self.CLIENT6, self.S_IN4, self.S_IN6),
                (self.server, self.server_if, self.SERVER4, self.SERVER6, self.S_OUT4, self.S_OUT6)):
            host.run("sysctl -qw net.ipv6.conf.all.accept_dad=0")
            host.run(f"sysctl -qw net.ipv6.conf.{ifname}.accept_dad=0")
            host.run(f"ip addr add {a4}/24 dev {ifname}")
            host.run(f"ip -6 addr add {a6}/64 dev {ifname} nodad")
            host.run(f"ip link set {ifname} up")
            host.run(f"ip route add default via {gw4}")
            host.run(f"ip -6 route add default via {gw6}")
        self.server.run(f"ip addr add {self.FAR4}/32 dev lo")

    def start_segwire(self, extra=None, routing=None, mtu=(None, None), workers=1):
        """A routed segwire: inside 10.61.1.1/24 + fd61:1::1/64, outside 10.61.2.1/24 +
        fd61:2::1/64; `routing` is its routing section, `mtu` the ports' mtu fields."""
        sw = Segwire(self.enf, self.tag, self.if_in, self.if_out, workers=workers, extra=extra)
        routed_config(sw, [f"{self.S_IN4}/24", f"{self.S_IN6}/64"],
                      [f"{self.S_OUT4}/24", f"{self.S_OUT6}/64"], routing, mtu)
        self.enforcers.append(sw)
        return sw.start()


def routed_config(sw, inside, outside, routing=None, mtu=(None, None)):
    sw.config["mode"] = "routed"
    sw.config["ports"]["inside"]["addresses"] = inside
    sw.config["ports"]["outside"]["addresses"] = outside
    for side, m in zip(("inside", "outside"), mtu):
        if m:
            sw.config["ports"][side]["mtu"] = m
    if routing is not None:
        sw.config["routing"] = routing


def neighbours(sw):
    """The neighbour table, every page (/segwire/neighbours)."""
    first = sw.telemetry.query("/segwire/neighbours")
    rows = [v for k, v in first.items() if k.startswith("n")]
    for page in range(1, first["pages"]):
        rows += [v for k, v in sw.telemetry.query(f"/segwire/neighbours,{page}").items() if k.startswith("n")]
    return rows


def neighbour(sw, address):
    return next((n for n in neighbours(sw) if n["address"] == address), None)


def routing(sw):
    return sw.telemetry.query("/segwire/routing")


def mac_of(ns, ifname):
    return json.loads(ns.run(f"ip -j link show dev {ifname}").stdout)[0]["address"]


class RoutedIdentityBed(IdentityBed):
    """client -- [A routed] -- transit bridge (ext host) -- [B routed] -- server."""

    CLIENT4, SERVER4, EXT4 = "10.61.1.2", "10.61.2.2", "10.61.9.3"
    CLIENT6, SERVER6, EXT6 = "fd61:1::2", "fd61:2::2", "fd61:9::3"
    A_IN = ["10.61.1.1/24", "fd61:1::1/64"]
    A_OUT = ["10.61.9.1/24", "fd61:9::1/64"]
    B_OUT = ["10.61.9.2/24", "fd61:9::2/64"]
    B_IN = ["10.61.2.1/24", "fd61:2::1/64"]

    def __init__(self):
        super().__init__(wire=None)

    def _build(self):
        super()._build()
        # IdentityBed's hosts share one subnet: renumber them into routed subnets.
        for host, ifname, addrs, gws in (
                (self.client, self.client_if, [f"{self.CLIENT4}/24", f"{self.CLIENT6}/64"], ("10.61.1.1", "fd61:1::1")),
                (self.server, self.server_if, [f"{self.SERVER4}/24", f"{self.SERVER6}/64"], ("10.61.2.1", "fd61:2::1")),
                (self.ext, self.ext_if, [f"{self.EXT4}/24", f"{self.EXT6}/64"], None)):
            host.run(f"ip -4 addr flush dev {ifname}")
            host.run(f"ip -6 addr flush dev {ifname} scope global")
            for a in addrs:
                host.run(f"ip addr add {a} dev {ifname}" + (" nodad" if ":" in a else ""))
            if gws:
                host.run(f"ip route add default via {gws[0]}")
                host.run(f"ip -6 route add default via {gws[1]}")
        for net4, net6, via4, via6 in (("10.61.1.0/24", "fd61:1::/64", "10.61.9.1", "fd61:9::1"),
                                       ("10.61.2.0/24", "fd61:2::/64", "10.61.9.2", "fd61:9::2")):
            self.ext.run(f"ip route add {net4} via {via4}")
            self.ext.run(f"ip -6 route add {net6} via {via6}")

    def start_routed(self, which, policy_file, extra=None):
        """Enforcer A or B in routed mode with the static route to the other's inside subnet."""
        ns = self.enf_a if which == "a" else self.enf_b
        ins, outs = (self.if_a_in, self.if_a_out) if which == "a" else (self.if_b_in, self.if_b_out)
        eid = f"enf-{which}"
        other = "enf-b" if which == "a" else "enf-a"
        key, cert = self.keys[eid]
        cfg = {"identity": {
            "enforcer_id": eid, "tags": ["site=lab"], "key": str(key), "certificate": str(cert),
            "trusted_cas": str(self.pki.ca), "peer_certificates": [str(self.keys[other][1])],
            "policy_file": str(policy_file)}}
        cfg.update(extra or {})
        sw = Segwire(ns, f"{self.tag}{which}", ins, outs, extra=cfg, workdir=self.workdir / eid)
        if which == "a":
            routes = [{"prefix": "10.61.2.0/24", "via": "10.61.9.2"},
                      {"prefix": "fd61:2::/64", "via": "fd61:9::2"}]
            routed_config(sw, self.A_IN, self.A_OUT, {"routes": routes})
        else:
            routes = [{"prefix": "10.61.1.0/24", "via": "10.61.9.1"},
                      {"prefix": "fd61:1::/64", "via": "fd61:9::1"}]
            routed_config(sw, self.B_IN, self.B_OUT, {"routes": routes})
        self.enforcers.append(sw)
        return sw.start()


def routed_lab_policy(client_out=(), server_in=()):
    """lab_policy renumbered for RoutedIdentityBed: the PUs' addresses and the managed networks
    are the routed subnets; the ext host is an external network."""
    from testbed import lab_policy
    pol = lab_policy(client_out=client_out, server_in=server_in)
    pol["enforcerprofiles"][0]["targetNetworks"] = ["10.61.0.0/16", "fd61::/16"]
    pol["enforcerprofiles"][0]["targetUDPNetworks"] = ["10.61.0.0/16", "fd61::/16"]
    pus = {p["ID"]: p for p in pol["processingunits"]}
    pus["pu-client"]["addresses"] = ["10.61.1.2/32", "fd61:1::2/128"]
    pus["pu-server"]["addresses"] = ["10.61.2.2/32", "fd61:2::2/128"]
    pol["externalnetworks"] = [{"ID": "net-ext", "name": "ext-host", "associatedTags": ["net=ext"],
                                "entries": ["10.61.9.3/32", "fd61:9::3/128"]}]
    return pol


def wait_neighbour(sw, address, timeout=20, **match):
    """Waits until the neighbour table lists `address` with fields equal to `match`."""
    def found():
        n = neighbour(sw, address)
        return n if n and all(n.get(k) == v for k, v in match.items()) else None
    return wait_for(found, timeout=timeout, what=f"neighbour {address} {match}")
