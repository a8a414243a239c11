"""Which VIPs a node drops for Accept_Mode false, and the nft script that does it."""

from __future__ import annotations

import asyncio
from ipaddress import ip_address

import pytest

from reconciler.adapters.accept_mode import AcceptModeFirewall, FirewallError, ruleset
from reconciler.config.load import load_text
from reconciler.plan.live import no_accept_vips
from reconciler.testing.clusters import Node, cluster_head

NODES = (
    Node("lb1", "192.0.2.100", address6="2001:db8::11"),
    Node("lb2", "192.0.2.12", address6="2001:db8::12"),
)
CLUSTER = (
    cluster_head(NODES)
    + """\
vrrp:
  instances:
    owned:
      vrid: 1
      priority: {lb1: 255, lb2: 100}
      accept: false
      vips: [192.0.2.100/24]
    strict:
      vrid: 2
      accept: false
      vips: [192.0.2.101/24, 192.0.2.102/24]
    strict6:
      vrid: 3
      accept: false
      vips: ["2001:db8::100/64"]
    open:
      vrid: 4
      vips: [192.0.2.103/24]
"""
)


def test_the_owner_accepts_and_every_other_node_drops() -> None:
    cluster = load_text(CLUSTER, "t.yaml").cluster
    strict = {ip_address("192.0.2.101"), ip_address("192.0.2.102"), ip_address("2001:db8::100")}
    # lb1 owns 192.0.2.100 (priority 255): RFC 5798 lets the owner accept always.
    assert no_accept_vips(cluster.for_node("lb1")) == strict
    assert no_accept_vips(cluster.for_node("lb2")) == strict | {ip_address("192.0.2.100")}


def test_the_ruleset_drops_both_ways_and_lets_neighbour_discovery_through() -> None:
    text = ruleset([ip_address("192.0.2.101"), ip_address("2001:db8::100")])
    lines = [line.strip() for line in text.splitlines()]
    assert "set no_accept_v4 { type ipv4_addr; elements = { 192.0.2.101 }; }" in lines
    assert "set no_accept_v6 { type ipv6_addr; elements = { 2001:db8::100 }; }" in lines
    for chain, field in (("input", "daddr"), ("output", "saddr")):
        body = lines[lines.index(f"chain {chain} {{") + 1 :]
        body = body[: body.index("}")]
        assert body == [
            f"type filter hook {chain} priority -1; policy accept;",
            "icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } accept",
            f"ip {field} @no_accept_v4 counter drop",
            f"ip6 {field} @no_accept_v6 counter drop",
        ]
    # Replaces the table in one transaction whether or not it exists.
    assert lines[:3] == [
        "table inet reconciler {}",
        "delete table inet reconciler",
        "table inet reconciler {",
    ]


def test_an_empty_family_has_an_empty_set() -> None:
    text = ruleset([ip_address("192.0.2.101")])
    assert "set no_accept_v6 { type ipv6_addr; }" in text


def test_a_missing_nft_is_a_clear_error_and_nothing_to_remove() -> None:
    missing = AcceptModeFirewall(nft="/nonexistent/nft")
    with pytest.raises(FirewallError, match=r"cannot run /nonexistent/nft: No such file"):
        asyncio.run(missing.apply([ip_address("192.0.2.101")]))
    with pytest.raises(FirewallError, match="cannot run"):
        asyncio.run(missing.apply([]))  # a leftover table cannot be checked either
    assert missing.vips == frozenset()
