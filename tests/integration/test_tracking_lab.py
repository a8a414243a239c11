"""keepalived + nginx, the classic: a dead web server moves the VIP, its return brings it back."""

from __future__ import annotations

import ipaddress
import re
import signal
import sys
import time
from pathlib import Path

import pytest

from reconciler.testing.clusters import (
    H1_MASTER,
    Check,
    Track,
    Vrrp,
    cluster_text,
    file_check,
    healthz_dir,
    http_check,
    lab_nodes,
)
from reconciler.testing.netlab import Lab
from reconciler.testing.vrrp_nodes import node_status, start_ours, wait_following

pytestmark = pytest.mark.root

VIP = ipaddress.ip_interface("192.0.2.100/24")


def _nginx(timeout: str) -> Check:
    return http_check(
        "nginx",
        "http://127.0.0.1:8080/healthz",
        status="200-299",
        interval="200ms",
        timeout=timeout,
        rise=2,
        fall=2,
    )


def _config(lab: Lab, flag: Path) -> str:
    checks = [_nginx("150ms"), file_check("maintenance", flag, interval="200ms")]
    track = [Track("nginx", -60), Track("maintenance", -1)]
    web = Vrrp("web", 91, [VIP], H1_MASTER, "100ms", track=track)
    return cluster_text(lab_nodes(lab.hosts), [web], name="web-edge", checks=checks)


WEB = [sys.executable, "-m", "http.server", "8080", "--bind", "127.0.0.1"]


def test_dead_nginx_moves_the_vip_and_recovery_brings_it_back(make_lab) -> None:  # type: ignore[no-untyped-def]
    lab: Lab = make_lab(2)
    h1, h2 = lab.host(1), lab.host(2)
    www = healthz_dir(lab.tmpdir)
    flag = lab.tmpdir / "maintenance"
    config = lab.tmpdir / "c.yaml"
    config.write_text(_config(lab, flag))
    webs = {h.name: h.spawn(WEB, cwd=www) for h in (h1, h2)}
    nodes = {h.name: start_ours(h, config, lab.tmpdir / h.name) for h in (h1, h2)}
    h1.watcher.wait_for(VIP, timeout=10)
    time.sleep(0.5)
    assert not h2.watcher.is_present(VIP)

    # nginx dies on the master: 150 - 60 = 90 < 100, and the backup preempts.
    t0 = time.monotonic()
    webs["h1"].kill()
    took = h2.watcher.wait_for(VIP, timeout=5, after=t0) - t0
    h1.watcher.wait_for(VIP, present=False, timeout=2, after=t0)
    # fall (2 probes of 200 ms) + the backup's Master_Down_Interval (361 ms), with slack.
    assert took < 2 * 0.2 + 0.2 + 0.361 + 0.3, took
    assert "web: effective priority 150 -> 90" in nodes["h1"].output()

    # nginx comes back: rise 2, then h1 preempts after its own Master_Down_Interval.
    t0 = time.monotonic()
    webs["h1"] = h1.spawn(WEB, cwd=www)
    h1.watcher.wait_for(VIP, timeout=5, after=t0)
    h2.watcher.wait_for(VIP, present=False, timeout=2, after=t0)
    assert "web: effective priority 90 -> 150" in nodes["h1"].output()
    code = (
        "import sys, urllib.request; sys.stdout.write(urllib.request.urlopen("
        "'http://127.0.0.1:9650/metrics', timeout=5).read().decode())"
    )
    metrics = h1.run([sys.executable, "-c", code], timeout=30).stdout
    assert 'reconciler_check_up{check="nginx",target="-"} 1.0' in metrics
    assert (
        'reconciler_vrrp_effective_priority{interface="eth0",vrid="91",vrrp_instance="web"} 150.0'
        in (metrics)
    )
    failures = [
        line
        for line in metrics.splitlines()
        if line.startswith('reconciler_check_probe_failures_total{check="nginx"')
    ]
    assert failures and float(failures[0].split()[-1]) >= 2

    # A file tracker: the number in the file times the weight (-1) lowers the priority.
    before = nodes["h1"].output().count("web: effective priority 150 -> 90")
    flag.write_text("60\n")  # both nodes read the same path here: 150-60=90, 100-60=40
    nodes["h2"].wait_for_output("web: effective priority 100 -> 40", timeout=3)
    deadline = time.monotonic() + 3
    while nodes["h1"].output().count("web: effective priority 150 -> 90") == before:
        assert time.monotonic() < deadline, "h1 did not apply its file tracker"
        time.sleep(0.05)
    assert h1.watcher.is_present(VIP)  # 90 > 40: no move
    for p in (*nodes.values(), *webs.values()):
        p.stop()


def _reload_config(lab: Lab, timeout: str) -> str:
    web = Vrrp("web", 92, [VIP], H1_MASTER, "100ms", track=[Track("nginx", -60)])
    return cluster_text(lab_nodes(lab.hosts), [web], name="web-edge", checks=[_nginx(timeout)])


def test_a_reload_keeps_a_dead_check_down_and_the_vip_where_it_is(make_lab) -> None:  # type: ignore[no-untyped-def]
    """Issue 11: h1 (150) runs at 90 with its nginx down, so h2 (100) is master. A reload
    that changes only the check's timeout must not reset the check on h1 (150 again, and
    the VIP taken by a node whose web server is dead): no VIP event on either node."""
    lab: Lab = make_lab(2)
    h1, h2 = lab.host(1), lab.host(2)
    www = healthz_dir(lab.tmpdir)
    config = lab.tmpdir / "c.yaml"
    config.write_text(_reload_config(lab, "150ms"))
    web = h2.spawn(WEB, cwd=www)  # nobody listens on h1's port 8080: nginx is down there
    nodes = {h.name: start_ours(h, config, lab.tmpdir / h.name) for h in (h1, h2)}
    h2.watcher.wait_for(VIP, timeout=10)
    nodes["h1"].wait_for_output("web: effective priority 150 -> 90", timeout=10)
    wait_following(h1)
    time.sleep(0.5)  # settled: h2 master, h1 backup at 90
    assert not h1.watcher.is_present(VIP)

    t0 = time.monotonic()
    config.write_text(_reload_config(lab, "180ms"))
    for p in nodes.values():
        p.signal(signal.SIGHUP)
    for p in nodes.values():
        p.wait_for_output("reload: ", timeout=5)
    # Long enough for h1 to take over at 150 (its Master_Down_Interval is 341 ms) and for
    # several probes of the check on its new schedule.
    time.sleep(2.0)

    moved = [
        (h.name, e.kind, round(e.timestamp - t0, 3))
        for h in (h1, h2)
        for e in h.watcher.events(VIP)
        if e.timestamp > t0
    ]
    assert not moved, f"the VIP moved on the reload: {moved}"
    assert "effective priority 90 -> 150" not in nodes["h1"].output()
    doc = node_status(h1)
    (inst,) = doc["instances"]
    assert (inst["state"], inst["effective_priority"]) == ("BACKUP", 90)
    (check,) = doc["checks"]
    assert check["state"] == "down"

    # `reconciler status` says why h1 runs at 90, without JSON.
    text = h1.run([sys.executable, "-m", "reconciler", "status"], timeout=30).stdout
    assert "  priority 90: configured 150, trackers -60\n    check nginx down: -60" in text, text
    assert re.search(r"\n  last transition: \w+ -> BACKUP \(\w+\) at ", text), text
    (row,) = [line for line in text.splitlines() if line.startswith("nginx ")]
    assert row.split()[2] == "down" and "connection refused" in row.lower(), row
    code = (
        "import sys, urllib.request; sys.stdout.write(urllib.request.urlopen("
        "'http://127.0.0.1:9650/metrics', timeout=5).read().decode())"
    )
    metrics = h1.run([sys.executable, "-c", code], timeout=30).stdout
    assert (
        'reconciler_vrrp_tracker_contribution{interface="eth0",tracker="check nginx",'
        'vrid="92",vrrp_instance="web"} -60.0'
    ) in metrics
    for p in (*nodes.values(), web):
        p.stop()
