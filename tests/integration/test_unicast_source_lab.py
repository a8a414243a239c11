"""Unicast VRRP and a host that is not a member: its adverts are refused by default
(keepalived's check_unicast_src), so it cannot force a failover; with the check off, the
same adverts do move the VIP, which proves they reach the node."""

from __future__ import annotations

import ipaddress
import sys
import textwrap
import time
from pathlib import Path

import pytest

from reconciler.testing.netlab import Lab
from reconciler.testing.vrrp_nodes import Instance, cluster_yaml, node_status, start_ours

pytestmark = pytest.mark.root

VIP = ipaddress.ip_interface("192.0.2.100/24")

FORGER = textwrap.dedent(
    """
    import ipaddress, socket, sys, time
    from reconciler.vrrp.packet import Advert, VrrpVersion, encode_advert
    src, dst = ipaddress.ip_address(sys.argv[1]), ipaddress.ip_address(sys.argv[2])
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, 112)
    s.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, 255)
    advert = Advert(version=VrrpVersion.V3, vrid=64, priority=254, advert_interval_cs=10,
                    addresses=(ipaddress.ip_address("192.0.2.100"),))
    for _ in range(20):  # two seconds of a higher-priority "master"
        s.sendto(encode_advert(advert, src, dst), (str(dst), 0))
        time.sleep(0.1)
    print("sent", flush=True)
    """
)


@pytest.mark.parametrize("check", [True, False], ids=["checked", "unchecked"])
def test_a_non_member_cannot_force_a_unicast_failover(make_lab, check: bool) -> None:  # type: ignore[no-untyped-def]
    lab: Lab = make_lab(3)
    h1, h3 = lab.host(1), lab.host(3)  # h2 is a member that is not running
    text = cluster_yaml(
        lab.hosts, (Instance("web", 64, (VIP,), {"h1": 150, "h2": 100}, unicast=True),)
    )
    if not check:
        text = text.replace("unicast: true", "unicast: true\n      unicast_source_check: false")
    config = lab.tmpdir / "c.yaml"
    config.write_text(text)
    proc = start_ours(h1, config, lab.tmpdir / "s1")
    h1.watcher.wait_for(VIP, timeout=10)
    proc.wait_for_output("metrics and status on")

    env = {"PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    t0 = time.monotonic()
    h3.run([sys.executable, "-c", FORGER, str(h3.ipv4), str(h1.ipv4)], env=env, timeout=30)
    lost = [e for e in h1.watcher.events(VIP) if e.timestamp > t0 and not e.present]
    (inst,) = node_status(h1)["instances"]
    if check:
        assert not lost, "a host that is not a member took the VIP away"
        assert inst["state"] == "MASTER"
        assert inst["refused"].get("unknown_unicast_source", 0) >= 15
    else:
        assert lost, "the forged adverts never reached the node: the test proves nothing"
    proc.stop()
