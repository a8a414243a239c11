"""Our VRRP speaker in the namespace lab: elections, failover and return, as RFC 5798 says.

Adverts are every 100 ms so that each scenario takes seconds. Bounds are the RFC
instants (Master_Down_Interval, Skew_Time) plus a margin for Python and the lab.
"""

from __future__ import annotations

import ipaddress
import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.testing.netlab import Host, Lab, LabProcess
from reconciler.testing.vrrp_nodes import (
    Instance,
    cluster_yaml,
    node_status,
    repeat_filter_unavailable_reason,
    start_ours,
    wait_following,
)
from reconciler.vrrp.timers import master_down_interval, skew_time

pytestmark = pytest.mark.root

VIP4 = ipaddress.ip_interface("192.0.2.100/24")
VIP6 = ipaddress.ip_interface("2001:db8::100/64")
ADV_CS = 10
MARGIN_S = 0.060  # scheduling, Python and netlink latency on a loaded 2-core machine


def mdi(priority: int) -> float:
    return float(master_down_interval(priority, ADV_CS))


def skew(priority: int) -> float:
    return float(skew_time(priority, ADV_CS))


class Cluster:
    """Our daemon on some lab hosts, all from one desired-state file."""

    def __init__(
        self,
        lab: Lab,
        *instances: Instance,
        sync_groups: dict[str, tuple[str, ...]] | None = None,
    ) -> None:
        self.lab = lab
        self.config = lab.tmpdir / "cluster.yaml"
        self.config.write_text(cluster_yaml(lab.hosts, instances, sync_groups))
        self.procs: dict[str, LabProcess] = {}

    def start(self, host: Host) -> float:
        t0 = time.monotonic()
        self.procs[host.name] = start_ours(host, self.config, self.state_dir(host))
        return t0

    def state_dir(self, host: Host) -> Path:
        return self.lab.tmpdir / f"state-{host.name}"

    def log(self, host: Host) -> str:
        return self.procs[host.name].output()


@pytest.fixture
def lab2(make_lab) -> Iterator[Lab]:  # type: ignore[no-untyped-def]
    yield make_lab(2)


def _settle(host: Host, vip: ipaddress.IPv4Interface | ipaddress.IPv6Interface) -> float:
    return host.watcher.wait_for(vip, timeout=10)


def test_two_nodes_crash_restart_and_graceful_stop(lab2: Lab) -> None:
    h1, h2 = lab2.host(1), lab2.host(2)
    c = Cluster(lab2, Instance("web", 51, (VIP4,), {"h1": 150, "h2": 100}))
    c.start(h2)
    c.start(h1)
    _settle(h1, VIP4)
    wait_following(h2)
    assert not h2.watcher.is_present(VIP4), "both nodes hold the VIP"

    # Crash: SIGKILL the master. The backup takes over within Master_Down_Interval
    # of the master's last advert, i.e. between MDI - Advertisement_Interval and MDI.
    t0 = time.monotonic()
    c.procs["h1"].kill()
    took = h2.watcher.wait_for(VIP4, timeout=5, after=t0) - t0
    assert mdi(100) - 0.1 - 0.005 <= took <= mdi(100) + MARGIN_S, took
    assert h1.watcher.is_present(VIP4), "a SIGKILLed daemon cannot remove its VIP"

    # Restart: the stale VIP is removed before anything else, then preempt brings it back.
    t0 = c.start(h1)
    h1.watcher.wait_for(VIP4, present=False, timeout=5, after=t0)
    back = h1.watcher.wait_for(VIP4, timeout=5, after=t0)
    released = h2.watcher.wait_for(VIP4, present=False, timeout=5, after=t0)
    assert back - t0 >= mdi(150)  # it waited its own Master_Down_Interval
    assert abs(released - back) < 0.05
    time.sleep(0.3)

    # Graceful stop: a priority-0 advert; the backup takes over after Skew_Time.
    t0 = time.monotonic()
    c.procs["h1"].signal(signal.SIGTERM)
    took = h2.watcher.wait_for(VIP4, timeout=5, after=t0) - t0
    assert skew(100) - 0.005 <= took <= skew(100) + MARGIN_S, took
    assert c.procs["h1"].wait(5) == 0
    assert not h1.watcher.is_present(VIP4)
    assert "MASTER -> INITIALIZE (shutdown)" in c.log(h1)


def test_nopreempt_keeps_the_current_master(lab2: Lab) -> None:
    h1, h2 = lab2.host(1), lab2.host(2)
    c = Cluster(lab2, Instance("web", 52, (VIP4,), {"h1": 150, "h2": 100}, preempt=False))
    c.start(h2)
    _settle(h2, VIP4)
    t0 = c.start(h1)
    time.sleep(mdi(150) + 1.0)
    assert h2.watcher.is_present(VIP4)
    assert not h1.watcher.is_present(VIP4)
    added = [e for e in h1.watcher.events(VIP4) if e.timestamp > t0 and e.kind == "new"]
    assert added == []


def test_preempt_delay_postpones_the_return(lab2: Lab) -> None:
    h1, h2 = lab2.host(1), lab2.host(2)
    delay = 1.0
    c = Cluster(lab2, Instance("web", 53, (VIP4,), {"h1": 150, "h2": 100}, preempt_delay_s=delay))
    c.start(h2)
    _settle(h2, VIP4)
    t0 = c.start(h1)
    back = h1.watcher.wait_for(VIP4, timeout=10, after=t0) - t0
    assert back >= delay, back
    h2.watcher.wait_for(VIP4, present=False, timeout=2)


def test_link_down_is_fault_and_link_up_returns(lab2: Lab) -> None:
    h1, h2 = lab2.host(1), lab2.host(2)
    c = Cluster(lab2, Instance("web", 54, (VIP4,), {"h1": 150, "h2": 100}))
    c.start(h1)
    c.start(h2)
    _settle(h1, VIP4)
    time.sleep(0.3)
    t0 = time.monotonic()
    h1.link_down("eth0", side="bridge")  # cable cut: carrier lost
    gone = h1.watcher.wait_for(VIP4, present=False, timeout=5, after=t0) - t0
    took = h2.watcher.wait_for(VIP4, timeout=5, after=t0) - t0
    assert gone < 0.1, gone
    assert took <= mdi(100) + MARGIN_S, took
    assert "-> FAULT (link_down)" in c.log(h1)
    t1 = time.monotonic()
    h1.link_up("eth0", side="bridge")
    back = h1.watcher.wait_for(VIP4, timeout=5, after=t1) - t1
    assert back >= mdi(150) - 0.01, back
    h2.watcher.wait_for(VIP4, present=False, timeout=2, after=t1)


def test_equal_priority_goes_to_the_higher_address(lab2: Lab) -> None:
    """RFC 5798 6.4.3: two masters of equal priority: the lower primary address yields.

    (A backup of equal priority follows an existing master, so the two must first
    become masters without hearing each other: the lab drops h1's frames.)"""
    h1, h2 = lab2.host(1), lab2.host(2)
    c = Cluster(lab2, Instance("web", 55, (VIP4,), {"h1": 100, "h2": 100}))
    h1.set_loss(100)
    c.start(h1)
    c.start(h2)
    _settle(h1, VIP4)
    _settle(h2, VIP4)
    t0 = time.monotonic()
    h1.set_loss(0)
    h1.watcher.wait_for(VIP4, present=False, timeout=3, after=t0)
    time.sleep(0.5)
    assert h2.watcher.is_present(VIP4)  # 192.0.2.12 > 192.0.2.11
    assert "MASTER -> BACKUP (higher_address)" in c.log(h1)


def test_ipv6_multicast_failover(lab2: Lab) -> None:
    h1, h2 = lab2.host(1), lab2.host(2)
    c = Cluster(lab2, Instance("web6", 56, (VIP6,), {"h1": 150, "h2": 100}))
    c.start(h1)
    c.start(h2)
    _settle(h1, VIP6)
    wait_following(h2)
    assert not h2.watcher.is_present(VIP6)
    t0 = time.monotonic()
    c.procs["h1"].kill()
    took = h2.watcher.wait_for(VIP6, timeout=5, after=t0) - t0
    assert took <= mdi(100) + MARGIN_S, took


@pytest.mark.parametrize("vip", [VIP4, VIP6], ids=["ipv4", "ipv6"])
def test_three_nodes_unicast_elect_in_priority_order(make_lab, vip) -> None:  # type: ignore[no-untyped-def]
    lab = make_lab(3)
    h1, h2, h3 = lab.host(1), lab.host(2), lab.host(3)
    c = Cluster(lab, Instance("uni", 57, (vip,), {"h1": 150, "h2": 120, "h3": 100}, unicast=True))
    for h in (h3, h2, h1):
        c.start(h)
    _settle(h1, vip)
    wait_following(h2)
    wait_following(h3)
    assert not h2.watcher.is_present(vip) and not h3.watcher.is_present(vip)
    t0 = time.monotonic()
    c.procs["h1"].kill()
    took = h2.watcher.wait_for(vip, timeout=5, after=t0) - t0
    assert took <= mdi(120) + MARGIN_S, took
    time.sleep(0.5)
    assert not h3.watcher.is_present(vip)


def test_invalid_file_does_not_start(lab2: Lab) -> None:
    h1 = lab2.host(1)
    bad = lab2.tmpdir / "bad.yaml"
    bad.write_text("apiVersion: reconciler/v1\nkind: Cluster\nname: x\nnodes: {}\n")
    proc = start_ours(h1, bad, lab2.tmpdir / "s")
    assert proc.wait(10) == 2
    assert "bad.yaml:4:8: nodes: needs at least 1 entr(y/ies)" in proc.output()


def test_sync_group_moves_together_when_one_member_faults(make_lab) -> None:  # type: ignore[no-untyped-def]
    lab = make_lab(2, segments=2)
    h1, h2 = lab.host(1), lab.host(2)
    outside = ipaddress.ip_interface("192.0.2.100/24")
    inside = lab.segments[1].free_ipv4(0)
    prio = {"h1": 150, "h2": 100}
    c = Cluster(
        lab,
        Instance("outside", 71, (outside,), prio),
        Instance("inside", 72, (inside,), prio, interface="eth1"),
        sync_groups={"director": ("outside", "inside")},
    )
    c.start(h1)
    c.start(h2)
    _settle(h1, outside)
    _settle(h1, inside)
    time.sleep(0.3)
    # Only the inside link fails; the outside instance follows it to the other node.
    t0 = time.monotonic()
    h1.link_down("eth1", side="bridge")
    h1.watcher.wait_for(outside, present=False, timeout=2, after=t0)
    h2.watcher.wait_for(outside, timeout=2, after=t0)
    h2.watcher.wait_for(inside, timeout=2, after=t0)
    assert "outside: MASTER -> FAULT (tracker_fault)" in c.log(h1)
    # When the link returns the group comes back together.
    t1 = time.monotonic()
    h1.link_up("eth1", side="bridge")
    h1.watcher.wait_for(outside, timeout=5, after=t1)
    h1.watcher.wait_for(inside, timeout=5, after=t1)
    h2.watcher.wait_for(outside, present=False, timeout=2, after=t1)
    h2.watcher.wait_for(inside, present=False, timeout=2, after=t1)


def test_a_vip_removed_by_hand_on_the_master_comes_back(lab2: Lab) -> None:
    h1 = lab2.host(1)
    c = Cluster(lab2, Instance("web", 58, (VIP4,), {"h1": 150, "h2": 100}))
    c.start(h1)
    _settle(h1, VIP4)
    t0 = time.monotonic()
    h1.ip("addr", "del", str(VIP4), "dev", "eth0")
    back = h1.watcher.wait_for(VIP4, timeout=5, after=t0) - t0
    assert back < 1.0, back
    c.procs["h1"].wait_for_output("create address eth0/192.0.2.100/24: created", timeout=2)


@pytest.mark.parametrize("family", ["ipv4", "ipv6"])
@pytest.mark.parametrize("kernel_filter", [True, False], ids=["repeat-filter", "no-filter"])
def test_backup_follows_repeats_with_and_without_the_kernel_filter(
    lab2: Lab, kernel_filter: bool, family: str
) -> None:
    """With the repeat filter the backup reads almost none of its master's adverts and
    still counts them all, and still takes over on time when they stop."""
    if kernel_filter and (reason := repeat_filter_unavailable_reason()):
        pytest.skip(reason)
    h1, h2 = lab2.host(1), lab2.host(2)
    vip = VIP4 if family == "ipv4" else VIP6
    c = Cluster(lab2, Instance("web", 57, (vip,), {"h1": 150, "h2": 100}))
    extra = () if kernel_filter else ("--no-repeat-filter",)
    c.procs["h1"] = start_ours(h1, c.config, c.state_dir(h1), extra_args=extra)
    _settle(h1, vip)
    c.procs["h2"] = start_ours(h2, c.config, c.state_dir(h2), extra_args=extra)
    wait_following(h2)
    t_before = time.monotonic()
    before = node_status(h2)
    time.sleep(2.0)
    after = node_status(h2)
    window = time.monotonic() - t_before
    (sock,) = after["sockets"]
    assert sock["repeat_filter"] is kernel_filter
    (i0,), (i1,) = before["instances"], after["instances"]
    assert i1["state"] == "BACKUP"
    received = i1["adverts_received"] - i0["adverts_received"]
    read = sock["read"] - before["sockets"][0]["read"]
    assert 18 <= received <= window / 0.1 + 1, received  # adverts every 100 ms, all counted
    assert not h2.watcher.events(vip), "the backup took over while its master was up"
    assert "-> MASTER" not in c.log(h2)
    if kernel_filter:
        assert read == 0, read  # all of them dropped in the kernel
    else:
        assert read == received

    t0 = time.monotonic()
    c.procs["h1"].kill()
    took = h2.watcher.wait_for(vip, timeout=5, after=t0) - t0
    assert mdi(100) - 0.1 - 0.005 <= took <= mdi(100) + MARGIN_S, took


def test_a_vip_added_just_before_a_crash_is_still_cleaned_up(lab2: Lab) -> None:
    """A takeover adds its VIPs before it writes them down; SIGKILL in between leaves a
    VIP on the link that the record does not list as owned. It lists it as pending
    (written before any instance ran), so the next start still removes it."""
    h1 = lab2.host(1)
    c = Cluster(lab2, Instance("web", 58, (VIP4,), {"h1": 150, "h2": 100}))
    c.start(h1)
    _settle(h1, VIP4)
    c.procs["h1"].kill()
    record = c.state_dir(h1) / "owned.json"
    doc = json.loads(record.read_text())
    ident = ["address", ["eth0", str(VIP4)]]
    assert ident in doc["pending"]
    if ident in doc["owned"]:  # killed as the VIP appeared: usually not written yet
        doc["owned"].remove(ident)
        record.write_text(json.dumps(doc))

    t0 = c.start(h1)
    h1.watcher.wait_for(VIP4, present=False, timeout=5, after=t0)  # removed as ours
    back = h1.watcher.wait_for(VIP4, timeout=5, after=t0)  # then master again
    assert back - t0 >= mdi(150)
    assert "left by a takeover" in c.log(h1)
    assert "not ours" not in c.log(h1)


def test_a_vip_someone_else_added_is_left_alone_across_restarts(lab2: Lab) -> None:
    """An address that is neither owned nor a VIP of ours stays, whatever we do."""
    h1 = lab2.host(1)
    other = ipaddress.ip_interface("192.0.2.77/24")
    h1.ip("addr", "add", str(other), "dev", "eth0")
    c = Cluster(lab2, Instance("web", 59, (VIP4,), {"h1": 150, "h2": 100}))
    c.start(h1)
    _settle(h1, VIP4)
    c.procs["h1"].kill()
    c.start(h1)
    h1.watcher.wait_for(VIP4, present=False, timeout=5)
    _settle(h1, VIP4)
    assert h1.watcher.is_present(other)
