"""Accept_Mode false (RFC 5798 §6.4.2, §6.4.3): a node drops what is addressed to the VIPs.

The daemon puts the VIPs of its ``accept: false`` instances into our nftables table
(``inet reconciler``) before any instance runs; the master still answers ARP and IPv6
neighbour discovery for them, so neighbours keep sending to it, but nothing addressed
to a VIP is delivered. Another instance's VIP on the same node, with the default
``accept: true``, answers in the same test, so a ping that fails means the rule.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import shutil
import signal
import sys
import textwrap
import time
from typing import Any

import pytest

from reconciler.adapters.accept_mode import FAMILY, TABLE, ruleset
from reconciler.testing.netlab import Host, Lab
from reconciler.testing.vrrp_nodes import Instance, cluster_yaml, node_status, start_ours

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(shutil.which("nft") is None, reason="needs nftables (nft)"),
]

DROPPED4 = ipaddress.ip_interface("192.0.2.100/24")
DROPPED6 = ipaddress.ip_interface("2001:db8::100/64")
ACCEPTED4 = ipaddress.ip_interface("192.0.2.101/24")
PRIO = {"h1": 150, "h2": 100}


def _ping(host: Host, address: object) -> bool:
    proc = host.run(["ping", "-n", "-c", "1", "-W", "1", str(address)], check=False, timeout=5)
    return proc.returncode == 0


def _table(host: Host) -> dict[str, Any] | None:
    proc = host.run(["nft", "-j", "list", "table", FAMILY, TABLE], check=False, timeout=10)
    if proc.returncode != 0:
        return None
    doc = json.loads(proc.stdout)
    assert isinstance(doc, dict)
    return doc


def _elements(doc: dict[str, Any]) -> set[str]:
    return {e for i in doc["nftables"] if "set" in i for e in i["set"].get("elem", [])}


def _dropped_packets(doc: dict[str, Any], chain: str) -> int:
    return sum(
        e["counter"]["packets"]
        for i in doc["nftables"]
        if "rule" in i and i["rule"]["chain"] == chain
        for e in i["rule"]["expr"]
        if "counter" in e
    )


def _neighbour(host: Host, address: object) -> str:
    return host.ip("neigh", "show", str(address), "dev", "eth0").stdout.strip()


def test_the_master_drops_vip_traffic_but_answers_for_its_vips(make_lab) -> None:  # type: ignore[no-untyped-def]
    lab: Lab = make_lab(2)
    h1, h2 = lab.host(1), lab.host(2)
    instances = (
        Instance("strict4", 61, (DROPPED4,), PRIO, accept=False),
        Instance("strict6", 62, (DROPPED6,), PRIO, accept=False),
        Instance("open4", 63, (ACCEPTED4,), PRIO),
    )
    config = lab.tmpdir / "cluster.yaml"

    def write(instances: tuple[Instance, ...]) -> None:
        text = cluster_yaml(lab.hosts, instances) + "reconcile: {resync_interval: 1s}\n"
        config.write_text(text)

    write(instances)
    proc = start_ours(h1, config, lab.tmpdir / "state")
    for vip in (DROPPED4, DROPPED6, ACCEPTED4):
        h1.watcher.wait_for(vip, timeout=15)

    doc = _table(h1)
    assert doc is not None, "no nftables table on the node"
    assert _elements(doc) == {str(DROPPED4.ip), str(DROPPED6.ip)}
    assert _ping(h2, ACCEPTED4.ip), "the accept: true VIP does not answer"
    assert not _ping(h2, DROPPED4.ip), "a VIP of an accept: false instance answered"
    assert not _ping(h2, DROPPED6.ip), "an IPv6 VIP of an accept: false instance answered"
    # ARP and neighbour discovery still work: the neighbour knows where the VIP is.
    assert "lladdr" in _neighbour(h2, DROPPED4.ip)
    assert "lladdr" in _neighbour(h2, DROPPED6.ip), _neighbour(h2, DROPPED6.ip)
    doc = _table(h1)
    assert doc is not None
    assert _dropped_packets(doc, "input") >= 2
    # Pinging from the node itself, out of a VIP, is dropped on output.
    assert (
        h1.run(
            ["ping", "-n", "-c", "1", "-W", "1", "-I", str(DROPPED4.ip), str(h2.ipv4)],
            check=False,
            timeout=5,
        ).returncode
        != 0
    )
    doc = _table(h1)
    assert doc is not None
    assert _dropped_packets(doc, "output") >= 1

    # Removed by hand: back within the resync interval.
    created = "nftables table inet reconciler created"
    assert proc.output().count(created) == 1
    h1.run(["nft", "delete", "table", FAMILY, TABLE])
    deadline = time.monotonic() + 5
    while proc.output().count(created) < 2:
        assert time.monotonic() < deadline, "the table was not put back"
        time.sleep(0.05)
    doc = _table(h1)
    assert doc is not None
    assert _elements(doc) == {str(DROPPED4.ip), str(DROPPED6.ip)}
    assert not _ping(h2, DROPPED4.ip)

    status = {i["name"]: i for i in node_status(h1)["instances"]}
    assert status["strict4"]["accept_mode"] is False
    assert status["open4"]["accept_mode"] is True

    # A reload that turns accept on for strict4 empties the rule for it at once, in
    # place: the VIP is not released for it.
    opened = (dataclasses.replace(instances[0], accept=True), *instances[1:])
    write(opened)
    t_reload = time.monotonic()
    proc.signal(signal.SIGHUP)
    proc.wait_for_output("applied: in place: strict4", timeout=10)
    doc = _table(h1)
    assert doc is not None
    assert _elements(doc) == {str(DROPPED6.ip)}
    h1.watcher.wait_for(DROPPED4, timeout=15)
    assert not [e for e in h1.watcher.events(DROPPED4) if e.timestamp >= t_reload]
    deadline = time.monotonic() + 5
    while not _ping(h2, DROPPED4.ip):
        assert time.monotonic() < deadline, "the VIP does not answer after accept: true"

    proc.signal(signal.SIGTERM)
    assert proc.wait(10) == 0
    assert _table(h1) is None, "the table outlived a clean stop"


def test_the_firewall_adapter_is_idempotent_and_keeps_to_its_table(make_lab) -> None:  # type: ignore[no-untyped-def]
    """Run inside a lab namespace: create, unchanged, update, repair, delete; a table of
    someone else's stays as it was."""
    lab: Lab = make_lab(1)
    h1 = lab.host(1)
    h1.run(
        [
            "nft",
            "add table inet theirs; add chain inet theirs c { type filter hook input "
            "priority 0; policy accept; }",
        ]
    )
    code = textwrap.dedent(
        f"""
        import asyncio, ipaddress, subprocess
        from reconciler.adapters.accept_mode import AcceptModeFirewall
        a, b = ipaddress.ip_address("192.0.2.100"), ipaddress.ip_address("2001:db8::100")
        async def main():
            fw = AcceptModeFirewall()
            out = [(await fw.apply([a, b])).value, (await fw.apply([b, a])).value]
            out.append(sorted(map(str, await fw.observe())))
            out.append((await fw.apply([a])).value)
            subprocess.run(["nft", "flush", "chain", "inet", "{TABLE}", "output"], check=True)
            out.append(await fw.observe())
            out.append((await fw.apply([a])).value)
            out.append(sorted(map(str, await fw.observe())))
            out += [(await fw.remove()).value, (await fw.remove()).value, await fw.observe()]
            print(out)
        asyncio.run(main())
        """
    )
    out = h1.run([sys.executable, "-c", code], timeout=60).stdout.strip()
    assert out == str(
        [
            "created",
            "unchanged",
            ["192.0.2.100", "2001:db8::100"],
            "updated",
            None,  # a chain emptied by hand: not whole, so rewritten
            "created",
            ["192.0.2.100"],
            "deleted",
            "unchanged",
            None,
        ]
    )
    assert "chain c" in h1.run(["nft", "list", "table", "inet", "theirs"]).stdout


def test_the_ruleset_is_valid_nft(make_lab) -> None:  # type: ignore[no-untyped-def]
    lab: Lab = make_lab(1)
    script = ruleset([ipaddress.ip_address("192.0.2.100"), ipaddress.ip_address("2001:db8::1")])
    proc = lab.host(1).run(["nft", "-c", "-f", "-"], input=script, check=False, timeout=10)
    assert proc.returncode == 0, proc.stderr
