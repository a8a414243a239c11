"""Wire compatibility: our speaker and Debian's keepalived elect and fail over together.

Each case runs one node of ours and one keepalived in the lab, with the higher
priority on either side, and checks the three moves an operator relies on
during a migration: crash takeover, preempt return and graceful handover.
"""

from __future__ import annotations

import contextlib
import dataclasses
import ipaddress
import signal
import time
from collections.abc import Callable
from typing import Any

import pytest

from reconciler.testing.netlab import CommandError, Host, Lab, LabProcess
from reconciler.testing.vrrp_nodes import (
    Instance,
    cluster_yaml,
    keepalived_available,
    keepalived_conf,
    node_status,
    repeat_filter_unavailable_reason,
    start_keepalived,
    start_ours,
    wait_following,
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


def _case(
    version: int,
    interval: float,
    unicast: bool,
    vip: object,
    high: str,
    case_id: str,
    *,
    slow: bool = False,
    **extra: object,
) -> object:
    """version, advert interval (s), unicast, vip, which side has the higher priority,
    and further Instance fields (authentication, unicast checksum mode)."""
    marks = [pytest.mark.slow] if slow else []
    return pytest.param(version, interval, unicast, vip, high, extra, id=case_id, marks=marks)


CASES = [
    _case(3, 0.1, False, VIP4, "ours", "v3-multicast-ours-master"),
    _case(3, 0.1, False, VIP4, "keepalived", "v3-multicast-keepalived-master"),
    _case(3, 0.1, True, VIP4, "ours", "v3-unicast-ours-master"),
    _case(3, 0.1, True, VIP4, "keepalived", "v3-unicast-keepalived-master"),
    _case(3, 0.1, False, VIP6, "ours", "v3-ipv6-ours-master"),
    _case(3, 0.1, False, VIP6, "keepalived", "v3-ipv6-keepalived-master"),
    _case(3, 0.1, True, VIP6, "ours", "v3-ipv6-unicast-ours-master"),
    _case(3, 0.1, True, VIP6, "keepalived", "v3-ipv6-unicast-keepalived-master"),
    # keepalived's old_unicast_checksum sends the pre-1.3.6 checksum (multicast group in
    # the pseudo-header) and refuses RFC ones: ours must send the same ("old").
    _case(
        3, 0.1, True, VIP4, "ours", "v3-unicast-old-checksum-ours-master", unicast_checksum="old"
    ),
    _case(
        3,
        0.1,
        True,
        VIP4,
        "keepalived",
        "v3-unicast-old-checksum-keepalived-master",
        unicast_checksum="old",
    ),
    _case(2, 1.0, False, VIP4, "ours", "v2-multicast-ours-master", slow=True),
    _case(2, 1.0, False, VIP4, "keepalived", "v2-multicast-keepalived-master", slow=True),
    _case(2, 1.0, True, VIP4, "ours", "v2-unicast-ours-master", slow=True),
    _case(2, 1.0, True, VIP4, "keepalived", "v2-unicast-keepalived-master", slow=True),
    _case(2, 1.0, False, VIP4, "ours", "v2-auth-pass-ours-master", slow=True, auth_pass="s3cret"),
    _case(
        2,
        1.0,
        False,
        VIP4,
        "keepalived",
        "v2-auth-pass-keepalived-master",
        slow=True,
        auth_pass="s3cret",
    ),
]


@pytest.mark.parametrize(("version", "interval", "unicast", "vip", "high", "extra"), CASES)
def test_failover_and_return_with_keepalived(
    make_lab: Callable[..., Lab],
    version: int,
    interval: float,
    unicast: bool,
    vip: ipaddress.IPv4Interface | ipaddress.IPv6Interface,
    high: str,
    extra: dict[str, Any],
) -> None:
    lab: Lab = make_lab(2)
    ours_host, ka_host = lab.host(1), lab.host(2)
    prio = {"h1": 150, "h2": 100} if high == "ours" else {"h1": 100, "h2": 150}
    inst = Instance(
        "VI_51",
        51,
        (vip,),
        prio,
        version=version,
        advert_interval_s=interval,
        unicast=unicast,
        **extra,
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
        # Our backup has the kernel drop keepalived's repeats: none read, all counted,
        # once it has followed a repeat (it may still be starting: keepalived starts
        # faster, so it is master before ours is up).
        before = wait_following(ours_host)
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


MISMATCHES = [
    # ours, keepalived, the reason our speaker refuses keepalived's adverts for
    pytest.param(
        {"version": 2, "advert_interval_s": 1.0, "auth_pass": "ours"},
        {"version": 2, "advert_interval_s": 1.0, "auth_pass": "theirs"},
        "auth_mismatch",
        id="v2-auth-password-differs",
        marks=pytest.mark.slow,
    ),
    pytest.param(
        {"unicast": True, "unicast_checksum": "rfc"},
        {"unicast": True, "unicast_checksum": "old"},
        "checksum_mode",
        id="v3-unicast-checksum-mode-differs",
    ),
]


@pytest.mark.parametrize(("ours", "theirs", "reason"), MISMATCHES)
def test_a_mismatched_setting_is_refused_by_both(
    make_lab: Callable[..., Lab],
    ours: dict[str, Any],
    theirs: dict[str, Any],
    reason: str,
) -> None:
    """The settings the interop cases above agree on are really in force: with one that
    differs, each side refuses the other's adverts and both become master."""
    lab: Lab = make_lab(2)
    ours_host, ka_host = lab.host(1), lab.host(2)
    prio = {"h1": 150, "h2": 100}
    config = lab.tmpdir / "cluster.yaml"
    config.write_text(cluster_yaml(lab.hosts, (Instance("VI_51", 51, (VIP4,), prio, **ours),)))
    ka_conf = keepalived_conf(ka_host, lab.hosts, (Instance("VI_51", 51, (VIP4,), prio, **theirs),))
    procs = [
        start_keepalived(ka_host, ka_conf, lab.tmpdir / "keepalived"),
        start_ours(ours_host, config, lab.tmpdir / "state"),
    ]
    ours_host.watcher.wait_for(VIP4, timeout=15)
    ka_host.watcher.wait_for(VIP4, timeout=15)
    interval = float(ours.get("advert_interval_s", 0.1))
    # keepalived as master restarts its own advert timer when it reads an advert it
    # refuses, so its adverts come less often than every interval here.
    deadline = time.monotonic() + 8 * interval
    while True:
        (inst,) = node_status(ours_host)["instances"]
        if inst["refused"].get(reason, 0) >= 1 or time.monotonic() > deadline:
            break
        time.sleep(interval / 2)
    assert inst["refused"].get(reason, 0) >= 1, inst["refused"]
    assert inst["state"] == "MASTER"
    time.sleep(2 * interval)  # both stay master: neither follows the other
    assert ours_host.watcher.is_present(VIP4)
    assert ka_host.watcher.is_present(VIP4)
    for host in (ours_host, ka_host):
        assert [e.kind for e in host.watcher.events(VIP4) if not e.synthetic] == ["new"]
    for p in procs:
        p.stop()


VIP4_D = ipaddress.ip_interface("192.0.2.103/24")


def _vip_moves(
    host: Host, vip: ipaddress.IPv4Interface | ipaddress.IPv6Interface, since: float
) -> list[str]:
    return [e.kind for e in host.watcher.events(vip) if not e.synthetic and e.timestamp >= since]


def test_our_master_changed_in_place_moves_nothing_next_to_keepalived(
    make_lab: Callable[..., Lab],
) -> None:
    """keepalived as the backup of ours, as in a migration: a reload of ours that changes
    its priority and its advert interval sends no priority 0 and releases nothing, so
    keepalived (which learns the new interval as RFC 5798 Master_Adver_Interval) never
    takes over. Asserted from the address events on both nodes."""
    lab: Lab = make_lab(2)
    ours_host, ka_host = lab.host(1), lab.host(2)
    inst = Instance("VI_51", 51, (VIP4,), {"h1": 150, "h2": 100})
    config = lab.tmpdir / "cluster.yaml"
    config.write_text(cluster_yaml(lab.hosts, (inst,)))
    procs = [
        start_keepalived(ka_host, keepalived_conf(ka_host, lab.hosts, (inst,)), lab.tmpdir / "ka"),
        start_ours(ours_host, config, lab.tmpdir / "state"),
    ]
    ours_host.watcher.wait_for(VIP4, timeout=15)
    time.sleep(1.0)
    assert not ka_host.watcher.is_present(VIP4)
    t0 = time.monotonic()
    for change in ({"priorities": {"h1": 170, "h2": 100}}, {"advert_interval_s": 0.2}):
        inst = dataclasses.replace(inst, **change)
        config.write_text(cluster_yaml(lab.hosts, (inst,)))
        applied = procs[1].output().count("applied: in place: VI_51")
        procs[1].signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while procs[1].output().count("applied: in place: VI_51") == applied:
            assert time.monotonic() < deadline, procs[1].output()[-2000:]
            time.sleep(0.02)
        time.sleep(1.5)  # several Master_Down_Intervals of keepalived
    assert _vip_moves(ours_host, VIP4, t0) == []
    assert _vip_moves(ka_host, VIP4, t0) == []
    (status,) = node_status(ours_host)["instances"]
    assert (status["state"], status["effective_priority"]) == ("MASTER", 170)
    for p in procs:
        p.stop()


@pytest.mark.parametrize(
    ("theirs", "elects"),
    [((VIP4, VIP4_D), True), ((VIP4_D,), False)],
    ids=["one-more-vip", "no-vip-in-common"],
)
def test_a_keepalived_master_with_another_vip_list(
    make_lab: Callable[..., Lab],
    theirs: tuple[ipaddress.IPv4Interface, ...],
    elects: bool,
) -> None:
    """RFC 5798 §7.1 makes the address-list check a MAY. A keepalived master whose list
    shares a VIP with ours (a peer mid-change) is elected on and counted as a mismatch:
    our backup never puts the shared VIP on a second node. A list with nothing in common
    is another virtual router on the VRID: refused, as before, and ours serves its own."""
    lab: Lab = make_lab(2)
    ours_host, ka_host = lab.host(1), lab.host(2)
    prio = {"h1": 100, "h2": 150}
    config = lab.tmpdir / "cluster.yaml"
    config.write_text(cluster_yaml(lab.hosts, (Instance("VI_51", 51, (VIP4,), prio),)))
    ka_inst = Instance("VI_51", 51, theirs, prio)
    procs = [
        start_keepalived(
            ka_host, keepalived_conf(ka_host, lab.hosts, (ka_inst,)), lab.tmpdir / "k"
        ),
        start_ours(ours_host, config, lab.tmpdir / "state"),
    ]
    ka_host.watcher.wait_for(theirs[0], timeout=15)
    t0 = time.monotonic()
    deadline = t0 + 10
    while True:
        with contextlib.suppress(CommandError):
            (inst,) = node_status(ours_host)["instances"]
            if inst["adverts_received"] >= 10:
                break
        assert time.monotonic() < deadline, "our node does not hear keepalived"
        time.sleep(0.1)
    time.sleep(1.0)
    (inst,) = node_status(ours_host)["instances"]
    if elects:
        assert inst["state"] == "BACKUP"
        assert inst["address_mismatch"] >= 10 and not inst["refused"]
        assert not ours_host.watcher.is_present(VIP4)
        assert _vip_moves(ours_host, VIP4, 0.0) in ([], ["del"])  # the start-up cleanup only
    else:
        assert inst["state"] == "MASTER"
        assert inst["refused"].get("address_mismatch", 0) >= 1
        assert ours_host.watcher.is_present(VIP4)
    for p in procs:
        p.stop()
