"""Revisions reach a two-node cluster without SIGHUP: `reconciler run FILE` watches FILE.

Both nodes read the same file (as two machines would read the same git checkout): a
rewrite of it, or a git-sync v4 style publish (new worktree named by the commit, new
symlink renamed over the link), goes live on both; an invalid rewrite changes nothing,
observed on the master's netlink events, and both nodes' status says why; then a good one
applies. The change used is a second instance (a new VRID and VIP): it starts, and the
running instance's VIP sees no event at all.
"""

from __future__ import annotations

import ipaddress
import signal
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from reconciler.testing.clusters import git_sync_publish
from reconciler.testing.netlab import Host, Lab, LabProcess
from reconciler.testing.vrrp_nodes import (
    Instance,
    cluster_yaml,
    node_status,
    start_ours,
    wait_following,
)

pytestmark = pytest.mark.root

VIP = ipaddress.ip_interface("192.0.2.100/24")
VIP_DB = ipaddress.ip_interface("192.0.2.102/24")
LIVE_WITHIN_S = 3.0  # the file watch, not the 10 s backstop


def _instances(with_db: bool, priority: dict[str, int] | None = None) -> tuple[Instance, ...]:
    """web, and db when `with_db`; h1 150 and h2 100 unless `priority` says otherwise."""
    prio = priority or {"h1": 150, "h2": 100}
    web = Instance("web", 81, (VIP,), prio)
    db = Instance("db", 82, (VIP_DB,), prio)
    return (web, db) if with_db else (web,)


def _start(lab: Lab, config: Path) -> list[LabProcess]:
    procs = [start_ours(h, config, lab.tmpdir / f"state-{h.name}") for h in lab.hosts]
    lab.host(1).watcher.wait_for(VIP, timeout=10)
    wait_following(lab.host(2))
    return procs


def _revisions(host: Host) -> dict[str, Any]:
    rev = node_status(host)["revisions"]
    assert isinstance(rev, dict)
    return rev


def _conditions(rev: dict[str, Any]) -> dict[str, tuple[bool, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in rev["conditions"]}


def _wait_status(host: Host, pred: Any, timeout: float = LIVE_WITHIN_S) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        doc = node_status(host)
        if pred(doc):
            return doc
        if time.monotonic() > deadline:
            raise TimeoutError(f"{host.name}: status never matched: {doc['revisions']}")
        time.sleep(0.05)


def _states(doc: dict[str, Any]) -> dict[str, str]:
    return {i["name"]: i["state"] for i in doc["instances"]}


def _stop(procs: list[LabProcess]) -> None:
    for p in procs:
        assert p.stop() == 0 or not p.alive


def test_a_rewritten_file_goes_live_on_both_nodes_and_an_invalid_one_changes_nothing(
    make_lab,  # type: ignore[no-untyped-def]
) -> None:
    lab: Lab = make_lab(2)
    h1, h2 = lab.host(1), lab.host(2)
    config = lab.tmpdir / "cluster.yaml"
    config.write_text(cluster_yaml(lab.hosts, _instances(False)))
    procs = _start(lab, config)
    first = _revisions(h1)["applied"]["digest"]
    assert _revisions(h2)["applied"]["digest"] == first

    # A new instance, by rewriting the file: live on both nodes, no SIGHUP.
    good = cluster_yaml(lab.hosts, _instances(True))
    t0 = time.monotonic()
    config.write_text(good)
    took = h1.watcher.wait_for(VIP_DB, timeout=LIVE_WITHIN_S, after=t0) - t0
    _wait_status(h2, lambda d: _states(d).get("db") == "BACKUP")
    # SIGHUPs on top of the watch: coalesced, the same revision is not applied again.
    for _ in range(5):
        procs[0].signal(signal.SIGHUP)
    time.sleep(0.5)
    for h in (h1, h2):
        assert _revisions(h)["applies"] == 2  # the first revision and this one
    second = _revisions(h1)["applied"]["digest"]
    assert second != first and _revisions(h2)["applied"]["digest"] == second
    assert not [e for e in h1.watcher.events(VIP) if e.timestamp >= t0]  # web untouched
    print(f"file write -> VIP on the master: {took * 1000:.0f} ms")

    # An invalid rewrite: nothing running changes, and both nodes say why.
    t1 = time.monotonic()
    config.write_text(good.replace("vrid: 82", "vrid: 300"))
    for h in (h1, h2):
        doc = _wait_status(
            h, lambda d: _conditions(d["revisions"])["Stalled"] == (True, "ValidationFailed")
        )
        rev = doc["revisions"]
        assert rev["applied"]["digest"] == second
        assert rev["attempted"]["reason"] == "invalid"
        assert rev["attempted"]["error"].startswith(f"{config}:")
        assert "vrid: 300 is out of range" in rev["attempted"]["error"]
        assert doc["revision"] == second[:12]
        assert _states(doc)["web"] == ("MASTER" if h is h1 else "BACKUP")
    time.sleep(0.5)
    assert not [e for e in h1.watcher.events() if e.timestamp >= t1]
    assert h1.watcher.is_present(VIP) and h1.watcher.is_present(VIP_DB)
    text = h1.run([sys.executable, "-m", "reconciler", "status"], timeout=30).stdout
    assert "Stalled=True (ValidationFailed)" in text and "failed (invalid)" in text

    # A good one after it applies: db removed on both nodes.
    t2 = time.monotonic()
    config.write_text(cluster_yaml(lab.hosts, _instances(False)))
    h1.watcher.wait_for(VIP_DB, present=False, timeout=LIVE_WITHIN_S, after=t2)
    for h in (h1, h2):
        doc = _wait_status(h, lambda d: "db" not in _states(d))
        assert _conditions(doc["revisions"])["Ready"] == (True, "Applied")
    assert not [e for e in h1.watcher.events(VIP) if e.timestamp >= t0]
    _stop(procs)


def test_a_git_sync_publish_goes_live_on_both_nodes_with_its_commit(make_lab) -> None:  # type: ignore[no-untyped-def]
    lab: Lab = make_lab(2)
    h1, h2 = lab.host(1), lab.host(2)
    root = lab.tmpdir / "git"
    c1, c2 = "c1" * 20, "c2" * 20
    git_sync_publish(root, c1, cluster_yaml(lab.hosts, _instances(False)))
    procs = _start(lab, root / "current" / "cluster.yaml")
    for h in (h1, h2):
        assert _revisions(h)["applied"]["commit"] == c1

    t0 = time.monotonic()
    git_sync_publish(root, c2, cluster_yaml(lab.hosts, _instances(True)))
    took = h1.watcher.wait_for(VIP_DB, timeout=LIVE_WITHIN_S, after=t0) - t0
    for h in (h1, h2):
        doc = _wait_status(h, lambda d: d["revisions"]["applied"]["commit"] == c2)
        assert "db" in _states(doc)
    assert not [e for e in h1.watcher.events(VIP) if e.timestamp >= t0]
    print(f"git-sync publish -> VIP on the master: {took * 1000:.0f} ms")
    _stop(procs)


def _control(host: Host, state_dir: Path, *args: str, check: bool = True) -> str:
    done = host.run(
        [sys.executable, "-m", "reconciler", *args, "--state-dir", str(state_dir)],
        timeout=30,
        check=check,
    )
    return done.stdout + done.stderr


def test_suspended_parts_keep_running_as_they_are_until_resumed(make_lab) -> None:  # type: ignore[no-untyped-def]
    lab: Lab = make_lab(1)
    h1 = lab.host(1)
    web, db = _instances(True, {"h1": 150})
    config = lab.tmpdir / "cluster.yaml"
    config.write_text(cluster_yaml(lab.hosts, (web,)))
    state = lab.tmpdir / "state-h1"
    proc = start_ours(h1, config, state)
    h1.watcher.wait_for(VIP, timeout=10)
    _wait_status(h1, lambda d: d["revisions"]["applied"] is not None, timeout=10)

    # The whole node: a new revision waits, nothing changes, status says so.
    assert "suspended node; suspended now: node" in _control(h1, state, "suspend")
    t0 = time.monotonic()
    config.write_text(cluster_yaml(lab.hosts, (web, db)))
    doc = _wait_status(h1, lambda d: d["revisions"]["pending"] is not None)
    assert _conditions(doc["revisions"])["Reconciling"] == (False, "Suspended")
    time.sleep(0.5)
    assert not [e for e in h1.watcher.events() if e.timestamp >= t0]
    assert set(_states(node_status(h1))) == {"web"}
    text = h1.run([sys.executable, "-m", "reconciler", "status"], timeout=30).stdout
    assert "suspended: node (no new revision until resumed)" in text
    # A restart keeps the suspension and the revision it ran (not the newer file).
    running = node_status(h1)["revisions"]["applied"]["digest"]
    assert proc.stop() == 0
    proc = start_ours(h1, config, state)
    h1.watcher.wait_for(VIP, timeout=10, after=time.monotonic())
    doc = _wait_status(h1, lambda d: d["revisions"]["pending"] is not None, timeout=10)
    assert doc["revisions"]["applied"]["digest"] == running and doc["revisions"]["suspended"]
    assert set(_states(doc)) == {"web"}
    t1 = time.monotonic()
    assert "resumed node; suspended now: nothing" in _control(h1, state, "resume")
    h1.watcher.wait_for(VIP_DB, timeout=LIVE_WITHIN_S, after=t1)

    # One instance: the rest of the revision applies, the instance stays as it runs.
    assert "suspended now: web" in _control(h1, state, "suspend", "--instance", "web")
    moved = Instance("web", 81, (ipaddress.ip_interface("192.0.2.101/24"),), {"h1": 150})
    db2 = Instance("db", 82, (VIP_DB, ipaddress.ip_interface("192.0.2.103/24")), {"h1": 150})
    before = node_status(h1)["revision"]
    t2 = time.monotonic()
    config.write_text(cluster_yaml(lab.hosts, (moved, db2)))
    h1.watcher.wait_for("192.0.2.103/24", timeout=LIVE_WITHIN_S, after=t2)
    doc = _wait_status(h1, lambda d: d["revision"] != before)
    assert _conditions(doc["revisions"])["Ready"] == (True, "Suspended")
    assert doc["revisions"]["suspended_instances"] == ["web"]
    assert not [e for e in h1.watcher.events(VIP) if e.timestamp >= t2]
    assert not h1.watcher.is_present("192.0.2.101/24")
    t3 = time.monotonic()
    _control(h1, state, "resume", "--instance", "web")
    h1.watcher.wait_for("192.0.2.101/24", timeout=LIVE_WITHIN_S, after=t3)
    h1.watcher.wait_for(VIP, present=False, timeout=LIVE_WITHIN_S, after=t3)

    refused = _control(h1, state, "suspend", "--instance", "nope", check=False)
    assert "no instance 'nope' here" in refused
    assert proc.stop() == 0 or not proc.alive


def test_no_watch_waits_for_the_refresh_hook(make_lab) -> None:  # type: ignore[no-untyped-def]
    """`run --no-watch --refresh-hook`: a rewrite alone changes nothing (until the 10 s
    backstop); POST /hooks/refresh makes the node look at once."""
    lab: Lab = make_lab(1)
    h1 = lab.host(1)
    web, db = _instances(True, {"h1": 150})
    config = lab.tmpdir / "cluster.yaml"
    config.write_text(cluster_yaml(lab.hosts, (web,)))
    proc = start_ours(h1, config, lab.tmpdir / "state", extra_args=("--no-watch", "--refresh-hook"))
    h1.watcher.wait_for(VIP, timeout=10)
    _wait_status(h1, lambda d: d["revisions"]["applied"] is not None, timeout=10)
    config.write_text(cluster_yaml(lab.hosts, (web, db)))
    time.sleep(1.0)
    assert not h1.watcher.is_present(VIP_DB)
    code = (
        "import urllib.request;"
        "r = urllib.request.urlopen(urllib.request.Request("
        "'http://127.0.0.1:9650/hooks/refresh', data=b'', method='POST'), timeout=5);"
        "print(r.status)"
    )
    t1 = time.monotonic()
    assert h1.run([sys.executable, "-c", code], timeout=30).stdout.strip() == "202"
    h1.watcher.wait_for(VIP_DB, timeout=LIVE_WITHIN_S, after=t1)
    assert proc.stop() == 0 or not proc.alive
