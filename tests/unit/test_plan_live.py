"""The live projection: a node's desired state as the kernel objects it implies.

`project` is what the reconcile loop diffs against `ip addr` and the IPVS table, so
every attribute it carries is one the kernel must end up with: a wrong one is a rule
churned on every pass or a table that never converges.
"""

from __future__ import annotations

import textwrap
from datetime import timedelta
from ipaddress import IPv4Address, IPv4Interface, IPv6Address

from reconciler.config.load import load_text
from reconciler.model.cluster import NodeConfig
from reconciler.model.common import Family
from reconciler.model.ipvs import Forwarding, Protocol, ServiceKey
from reconciler.model.kernel import LiveAddress, LiveDest, LiveService
from reconciler.plan.live import project
from reconciler.testing.clusters import cluster_head, nodes

NODE = (
    cluster_head(nodes(("a", "192.0.2.1"), ("b", "192.0.2.2")))
    + """\
vrrp:
  instances:
    front:
      vrid: 51
      priority: {a: 150, b: 100}
      vips:
        - {address: 192.0.2.100/24, dev: eth1, label: "eth1:vip", scope: site}
        - 192.0.2.101/24
    back:
      vrid: 52
      priority: {a: 150, b: 100}
      vips: [192.0.2.102/24]
virtual_services:
  web4:
    address: 192.0.2.100
    port: 80
    scheduler: sh
    scheduler_flags: [sh-port]
    forwarding: dr
    sorry_server: {address: 198.51.100.250, forwarding: tunnel}
    sorry_server_inhibit: true
    real_servers:
      - {address: 198.51.100.10}
      - {address: 198.51.100.11, upper_threshold: 100, lower_threshold: 10}
      - {address: 198.51.100.12}
  web6:
    address: 2001:db8::100
    port: 443
    real_servers: [{address: 2001:db8::10, port: 8443}]
  sticky:
    address: 192.0.2.100
    port: 8443
    persistence: {timeout: 10m, netmask: 24}
    sorry_server: {address: 198.51.100.251, port: 8080}
    real_servers: [{address: 198.51.100.13, port: 8443}]
"""
)

WEB4 = ServiceKey(Family.IPV4, Protocol.TCP, IPv4Address("192.0.2.100"), 80)
WEB6 = ServiceKey(Family.IPV6, Protocol.TCP, IPv6Address("2001:db8::100"), 443)
STICKY = ServiceKey(Family.IPV4, Protocol.TCP, IPv4Address("192.0.2.100"), 8443)


def _node_a() -> NodeConfig:
    return load_text(textwrap.dedent(NODE), "t.yaml").cluster.for_node("a")


def test_the_master_of_an_instance_holds_its_vips_as_configured() -> None:
    """Only the instances this node is master of put addresses on it, each on its own
    device with its label and scope (RFC 5798 6.4.3: the master owns the VIPs)."""
    objects = list(project(_node_a(), masters=frozenset({"front"})))
    assert [o for o in objects if isinstance(o, LiveAddress)] == [
        LiveAddress("eth1", IPv4Interface("192.0.2.100/24"), "eth1:vip", "site"),
        LiveAddress("eth0", IPv4Interface("192.0.2.101/24"), None, "global"),
    ]
    assert not [o for o in project(_node_a()) if isinstance(o, LiveAddress)]


def test_services_carry_flags_persistence_and_the_family_s_full_netmask() -> None:
    """A service without persistence has timeout 0 and the full prefix of its family
    (32 or 128), as `ipvsadm -Ln` reads it back; a persistent one its own."""
    services = [o for o in project(_node_a()) if isinstance(o, LiveService)]
    assert services == [
        LiveService(WEB4, "sh", ("sh-port",), persistent=False, timeout=timedelta(0), netmask=32),
        LiveService(STICKY, "wlc", (), persistent=True, timeout=timedelta(minutes=10), netmask=24),
        LiveService(WEB6, "wlc", (), persistent=False, timeout=timedelta(0), netmask=128),
    ]


def test_real_servers_at_their_health_weight_and_the_sorry_servers() -> None:
    """Health overrides a weight by key (None: out of the table, and the servers after
    it stay); a service whose quorum is lost gets its sorry server at weight 1, an
    inhibited sorry server waits at weight 0; forwarding and thresholds are kept."""
    cfg = _node_a()
    out_key = cfg.real_servers[0].key
    weighted_key = cfg.real_servers[1].key
    objects = project(
        cfg,
        weights={out_key: None, weighted_key: 7},
        sorry_active=frozenset({STICKY.parts()}),
    )
    dests = [o for o in objects if isinstance(o, LiveDest)]
    dr, nat, tun = Forwarding.DR, Forwarding.NAT, Forwarding.TUNNEL
    assert dests == [
        LiveDest(WEB4, IPv4Address("198.51.100.250"), 80, weight=0, forwarding=tun),
        LiveDest(STICKY, IPv4Address("198.51.100.251"), 8080, weight=1, forwarding=nat),
        LiveDest(WEB4, IPv4Address("198.51.100.11"), 80, 7, dr, 100, 10),
        LiveDest(WEB4, IPv4Address("198.51.100.12"), 80, 1, dr),
        LiveDest(STICKY, IPv4Address("198.51.100.13"), 8443, 1, nat),
        LiveDest(WEB6, IPv6Address("2001:db8::10"), 8443, 1, nat),
    ]
