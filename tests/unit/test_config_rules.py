"""Semantic rules of the desired state that a mutation could otherwise remove unnoticed:
each test names the rule it protects and checks both sides of its boundary."""

from __future__ import annotations

from datetime import timedelta

import pytest
from helpers import TWO_NODES_HEAD as HEAD

from reconciler.config.diagnostics import InvalidConfig
from reconciler.config.load import load_text
from reconciler.model.checks import TcpProbe
from reconciler.model.cluster import Cluster


def _load(body: str) -> Cluster:
    return load_text(HEAD + body, "t.yaml").cluster


def _errors(body: str) -> list[str]:
    with pytest.raises(InvalidConfig) as caught:
        _load(body)
    return [f"{d.location.line}:{d.location.column}: {d.message}" for d in caught.value.diagnostics]


TRACKED_TCP = """checks:
  web:
    tcp: {%s}
vrrp:
  instances:
    v: {vrid: 1, vips: [192.0.2.100/24], track: [{check: web, weight: -10}]}
"""


def test_a_tracked_tcp_check_with_host_and_port_is_valid() -> None:
    cluster = _load(TRACKED_TCP % "host: 127.0.0.1, port: 80")
    (check,) = cluster.for_node("a").checks
    assert check.probe == TcpProbe(host=check.probe.host, port=80)  # type: ignore[union-attr]
    assert str(check.probe.host) == "127.0.0.1"  # type: ignore[union-attr]


@pytest.mark.parametrize("fields", ["host: 127.0.0.1", "port: 80"])
def test_a_tracked_tcp_check_needs_both_host_and_port(fields: str) -> None:
    """Only a real-server check defaults its target to the server; a tracked one has none."""
    (error,) = _errors(TRACKED_TCP % fields)
    assert error.startswith("9:5: checks.web.tcp: a check used for VRRP tracking needs host and")


def _v2(interval: str) -> str:
    return (
        "vrrp:\n  instances:\n"
        f"    v: {{vrid: 1, version: 2, advert_interval: {interval}, vips: [192.0.2.100/24]}}\n"
    )


@pytest.mark.parametrize("interval", ["1s", "255s"])
def test_vrrp_v2_advert_interval_bounds_are_whole_seconds_1_to_255(interval: str) -> None:
    """RFC 3768 5.3.7: Adver Int is an 8-bit count of seconds."""
    (inst,) = _load(_v2(interval)).for_node("a").instances
    assert inst.advert_interval == timedelta(seconds=int(interval[:-1]))


@pytest.mark.parametrize("interval", ["256s", "1500ms", "500ms"])
def test_vrrp_v2_advert_interval_outside_is_refused(interval: str) -> None:
    (error,) = _errors(_v2(interval))
    assert "VRRPv2 advert_interval must be whole seconds from 1s to 255s" in error
    assert f"(got {interval})" in error


@pytest.mark.parametrize("key", ["interval", "timeout"])
def test_check_interval_and_timeout_must_be_greater_than_zero(key: str) -> None:
    body = f"checks:\n  web:\n    tcp: {{host: 127.0.0.1, port: 80}}\n    {key}: 0s\n"
    (error,) = _errors(body)
    column = len(f"    {key}: ") + 1  # at the value
    assert error == f"10:{column}: checks.web.{key}: must be greater than 0"
    ok = _load(f"checks:\n  web:\n    tcp: {{host: 127.0.0.1, port: 80}}\n    {key}: 10ms\n")
    assert ok.name == "t"


def test_a_node_gets_only_the_checks_its_own_instances_track() -> None:
    """Per-node filtering: b is not a member of the instance that tracks `web`, so it does
    not probe it (a check nobody tracks on a node is wasted work and a confusing status)."""
    cluster = _load(
        """checks:
  web: {tcp: {host: 127.0.0.1, port: 80}}
  db: {tcp: {host: 127.0.0.1, port: 5432}}
vrrp:
  instances:
    v: {vrid: 1, priority: {a: 150}, vips: [192.0.2.100/24], track: [{check: web}]}
    w: {vrid: 2, priority: {a: 100, b: 150}, vips: [192.0.2.101/24], track: [{check: db}]}
"""
    )
    assert [c.name for c in cluster.for_node("a").checks] == ["db", "web"]
    assert [c.name for c in cluster.for_node("b").checks] == ["db"]


def test_reconcile_defaults_are_30s_resync_and_5m_drain() -> None:
    bare = _load("")
    assert bare.resync_interval == timedelta(seconds=30)
    assert bare.drain_timeout == timedelta(minutes=5)
    one = _load("reconcile: {resync_interval: 10s}\n")
    assert one.resync_interval == timedelta(seconds=10)
    assert one.drain_timeout == timedelta(minutes=5)
    other = _load("reconcile: {drain_timeout: 1m}\n")
    assert other.resync_interval == timedelta(seconds=30)
    assert other.drain_timeout == timedelta(minutes=1)
