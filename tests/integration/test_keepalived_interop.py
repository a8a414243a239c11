"""Wire compatibility: our speaker and Debian's keepalived elect and fail over together.

Each case runs one node of ours and one keepalived in the lab, with the higher
priority on either side, and checks the three moves an operator relies on
during a migration: crash takeover, preempt return and graceful handover.
"""

from __future__ import annotations

import ipaddress
import signal
import time

import pytest

from reconciler.testing.netlab import Host, Lab, LabProcess
from reconciler.testing.vrrp_nodes import (
    Instance,
    cluster_yaml,
    keepalived_available,
    keepalived_conf,
    node_status,
    repeat_filter_unavailable_reason,
    start_keepalived,
    start_ours,
)
from reconciler.vrrp.packet import VrrpVersion
from reconciler.vrrp.timers import master_down_interval, skew_time

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(not keepalived_available(), reason="needs Debian's keepalived package"),
]

VIP4 = ipaddress.ip_interface("192.0.2.100/24")
VIP6 = ipaddress.ip_interface("2001:db8::100/64")
MARGIN_S = 0.080


CASES = [
    # version, advert interval (s), unicast, vip, which side has the higher priority
    pytest.param(3, 0.1, False, VIP4, "ours", id="v3-multicast-ours-master"),
    pytest.param(3, 0.1, False, VIP4, "keepalived", id="v3-multicast-keepalived-master"),
    pytest.param(3, 0.1, True, VIP4, "ours", id="v3-unicast-ours-master"),
    pytest.param(3, 0.1, True, VIP4, "keepalived", id="v3-unicast-keepalived-master"),
    pytest.param(3, 0.1, False, VIP6, "ours", id="v3-ipv6-ours-master"),
    pytest.param(3, 0.1, False, VIP6, "keepalived", id="v3-ipv6-keepalived-master"),
    pytest.param(
        2, 1.0, False, VIP4, "ours", id="v2-multicast-ours-master", marks=pytest.mark.slow
    ),
    pytest.param(
        2,
        1.0,
        False,
        VIP4,
        "keepalived",
        id="v2-multicast-keepalived-master",
        marks=pytest.mark.slow,
    ),
]


@pytest.mark.parametrize(("version", "interval", "unicast", "vip", "high"), CASES)
def test_failover_and_return_with_keepalived(
    make_lab,
    version: int,
    interval: float,
    unicast: bool,
    vip,
    high: str,  # type: ignore[no-untyped-def]
) -> None:
    lab: Lab = make_lab(2)
    ours_host, ka_host = lab.host(1), lab.host(2)
    prio = {"h1": 150, "h2": 100} if high == "ours" else {"h1": 100, "h2": 150}
    inst = Instance(
        "VI_51", 51, (vip,), prio, version=version, advert_interval_s=interval, unicast=unicast
    )
    config = lab.tmpdir / "cluster.yaml"
    config.write_text(cluster_yaml(lab.hosts, (inst,)))
    ka_conf = keepalived_conf(ka_host, lab.hosts, (inst,))
    cs = round(interval * 100)

    def start(host: Host) -> LabProcess:
        if host is ours_host:
            return start_ours(host, config, lab.tmpdir / "state")
        return start_keepalived(host, ka_conf, lab.tmpdir / "keepalived")

    hi, lo = (ours_host, ka_host) if high == "ours" else (ka_host, ours_host)
    procs = {lo.name: start(lo), hi.name: start(hi)}
    hi.watcher.wait_for(vip, timeout=15)
    time.sleep(2 * interval + 0.2)
    assert not lo.watcher.is_present(vip), "both hold the VIP: they do not hear each other"
    if high == "keepalived" and not repeat_filter_unavailable_reason():
        # Our backup has the kernel drop keepalived's repeats: none read, all counted.
        before = node_status(ours_host)
        time.sleep(3 * interval)
        after = node_status(ours_host)
        (sock,) = after["sockets"]
        assert sock["repeat_filter"]
        assert sock["read"] == before["sockets"][0]["read"]
        (i0,), (i1,) = before["instances"], after["instances"]
        assert i1["adverts_received"] - i0["adverts_received"] >= 2

    mdi_lo = float(master_down_interval(100, cs, version_of(version)))
    t0 = time.monotonic()
    procs[hi.name].kill()
    took = lo.watcher.wait_for(vip, timeout=3 * mdi_lo, after=t0) - t0
    assert took <= mdi_lo + MARGIN_S, f"crash takeover {took:.3f}s > MDI {mdi_lo:.3f}s"

    t0 = time.monotonic()
    procs[hi.name] = start(hi)
    back = hi.watcher.wait_for(vip, timeout=3 * mdi_lo + 2, after=t0) - t0
    lo.watcher.wait_for(vip, present=False, timeout=2, after=t0)
    assert back >= float(master_down_interval(150, cs, version_of(version))) - 0.01
    time.sleep(interval + 0.2)

    t0 = time.monotonic()
    procs[hi.name].signal(signal.SIGTERM)
    took = lo.watcher.wait_for(vip, timeout=5, after=t0) - t0
    sk = float(skew_time(100, cs, version_of(version)))
    assert took <= sk + MARGIN_S, f"graceful handover {took:.3f}s > Skew_Time {sk:.3f}s"
    procs[hi.name].wait(5)
    for p in procs.values():
        p.stop()


def version_of(v: int) -> VrrpVersion:
    return VrrpVersion(v)
