"""Normalization: defaults filled the way keepalived and the kernel fill them."""

from __future__ import annotations

from datetime import timedelta
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path

from reconciler.config.load import load_file, load_text
from reconciler.model.ipvs import Forwarding, Persistence
from reconciler.model.vrrp import Garp, UnicastChecksum
from reconciler.testing.clusters import cluster_head

ROOT = Path(__file__).resolve().parents[2]

MINIMAL = (
    cluster_head()
    + """\
vrrp:
  instances:
    web: {vrid: 1, vips: [192.0.2.100], unicast: true}
virtual_services:
  s:
    address: 192.0.2.100
    port: 443
    persistence: {}
    real_servers: [{address: 198.51.100.2}]
"""
)


def test_vrrp_defaults_are_keepalived_defaults() -> None:
    inst = load_text(MINIMAL, "m.yaml").cluster.for_node("a").instance("web")
    assert inst.version == 3
    assert inst.priority == 100
    assert inst.advert_interval == timedelta(seconds=1)
    assert inst.advert_interval_cs == 100
    assert inst.preempt is True and inst.preempt_delay == timedelta(0)
    assert inst.garp == Garp(5, timedelta(seconds=5), timedelta(0), 1, timedelta(0))
    assert inst.accept is True and inst.answer_lower_priority is True
    assert inst.unicast_checksum is UnicastChecksum.AUTO
    assert str(inst.vips[0].address) == "192.0.2.100/32"
    assert inst.vips[0].dev == "eth0"
    assert inst.primary_address == IPv4Address("192.0.2.11")
    assert inst.unicast_peers == (IPv4Address("192.0.2.12"),)


def test_ipvs_defaults_are_kernel_defaults() -> None:
    cfg = load_text(MINIMAL, "m.yaml").cluster.for_node("b")
    (svc,) = cfg.services
    assert svc.scheduler == "wlc"
    assert svc.forwarding is Forwarding.NAT
    assert svc.persistence == Persistence(timedelta(seconds=300), 32)
    (rs,) = cfg.real_servers
    assert (rs.port, rs.weight, rs.forwarding) == (443, 1, Forwarding.NAT)
    assert rs.check is None


def test_dr_real_servers_take_the_service_port() -> None:
    cfg = load_file(ROOT / "examples/lvs-dr.yaml").cluster.for_node("lb-a")
    www = [r for r in cfg.real_servers if r.service.port == 80 and r.service.address]
    assert {r.port for r in www} == {80}
    fwmark = [r for r in cfg.real_servers if r.service.fwmark == 42]
    assert {r.port for r in fwmark} == {0}
    v6 = next(s for s in cfg.services if s.name == "www-v6")
    assert v6.service.address == IPv6Address("2001:db8:0:1::10")


def test_per_node_priority_and_membership() -> None:
    cluster = load_file(ROOT / "examples/lvs-dr.yaml").cluster
    a = cluster.for_node("lb-a").instance("public-v6")
    b = cluster.for_node("lb-b").instance("public-v6")
    assert (a.priority, b.priority) == (200, 100)
    assert a.primary_address == IPv6Address("2001:db8::31")
    hook = cluster.for_node("lb-a").instance("public-v4").notify.fault[0]
    assert hook.before_release and hook.timeout == timedelta(seconds=2)


def test_sync_group_membership_is_resolved() -> None:
    cfg = load_file(ROOT / "examples/lvs-nat.yaml").cluster.for_node("director2")
    assert [g.members for g in cfg.sync_groups] == [("frontend", "gateway")]
    assert cfg.instance("gateway").interface == "eth1"
    assert cfg.instance("gateway").sync_group == "director"
