"""A new revision is applied to running VRRP instances in place: no VIP flaps.

Two nodes run our daemon from one file; each change is rolled out the way git-sync rolls
it out, one node after the other, so that for a while the nodes run different revisions.
Every netlink address event in both namespaces is watched for the whole test, and the
assertions are on those events: the VIPs that should stay are never deleted or added
again, on either node, for a priority change, a VIP added, a VIP removed and an advert
interval change; only the VIPs that change move. A master reconfigured below a
preempting backup hands over once, as RFC 5798 says; a VRID change restarts.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import shutil
import signal
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from reconciler.testing.clusters import (
    H1_MASTER,
    Track,
    Vrrp,
    cluster_text,
    healthz_dir,
    http_check,
    lab_nodes,
)
from reconciler.testing.hooks import hook_dirs, write_program
from reconciler.testing.netlab import CommandError, Host, Lab, LabProcess
from reconciler.testing.vrrp_nodes import Instance, cluster_yaml, node_status, start_ours
from reconciler.vrrp.timers import master_down_interval

pytestmark = pytest.mark.root

A, B, C, D = (ipaddress.ip_interface(f"192.0.2.{n}/24") for n in (100, 101, 102, 103))
APPLIED = "reload: revision "
MARGIN_S = 0.5  # a reload (parse in a thread, apply) on a loaded 2-core machine


# Each test rolls a revision out one node after the other with SIGHUP, as a slow sync
# would: the nodes read one file, so they must not also watch it.
NO_WATCH = ("--no-watch",)


class Nodes:
    """Our daemon on h1 and h2, one desired-state file, staggered reloads."""

    def __init__(self, lab: Lab, *instances: Instance) -> None:
        self.lab = lab
        self.h1, self.h2 = lab.host(1), lab.host(2)
        self.config = lab.tmpdir / "cluster.yaml"
        self.instances = instances
        self.config.write_text(cluster_yaml(lab.hosts, instances))
        self.procs: dict[str, LabProcess] = {}
        self.reloads: dict[str, int] = {}

    def start(self, host: Host) -> None:
        self.procs[host.name] = start_ours(
            host, self.config, self.lab.tmpdir / host.name, extra_args=NO_WATCH
        )
        self.reloads[host.name] = 0

    def write(self, *instances: Instance) -> None:
        self.instances = instances
        self.config.write_text(cluster_yaml(self.lab.hosts, instances))

    def reload(self, host: Host) -> str:
        """SIGHUP ``host`` and wait until it applied the file; its log line."""
        proc = self.procs[host.name]
        self.reloads[host.name] += 1
        want = self.reloads[host.name]
        proc.signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while proc.output().count(APPLIED) < want:
            assert proc.alive, proc.output()[-2000:]
            assert time.monotonic() < deadline, proc.output()[-2000:]
            time.sleep(0.02)
        return [line for line in proc.output().splitlines() if APPLIED in line][want - 1]

    def roll_out(self, first: Host, second: Host, apart_s: float = 0.5) -> tuple[str, str]:
        """Reload ``first``, let the nodes run different revisions, reload ``second``."""
        line = self.reload(first)
        time.sleep(apart_s)
        return line, self.reload(second)

    def instance(self, host: Host, name: str) -> dict[str, object]:
        (inst,) = (i for i in node_status(host)["instances"] if i["name"] == name)
        assert isinstance(inst, dict)
        return inst

    def stop(self) -> None:
        for proc in self.procs.values():
            proc.stop()


def sighup_until_applied(proc: LabProcess) -> None:
    """SIGHUP `proc` and wait until it logged one more applied revision."""
    applied = proc.output().count(APPLIED)
    proc.signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while proc.output().count(APPLIED) == applied:
        assert time.monotonic() < deadline, proc.output()[-2000:]
        time.sleep(0.02)


def moved(
    host: Host, vip: ipaddress.IPv4Interface | ipaddress.IPv6Interface, since: float
) -> list[str]:
    """Every add ("new") and delete ("del") of ``vip`` on ``host`` since ``since``."""
    return [
        e.kind
        for e in host.watcher.events(vip)
        if not e.synthetic and e.timestamp >= since and e.prefixlen == vip.network.prefixlen
    ]


@pytest.fixture
def nodes(make_lab) -> Iterator[Nodes]:  # type: ignore[no-untyped-def]
    lab: Lab = make_lab(2)
    web = Instance("web", 81, (A, B), {"h1": 150, "h2": 100})
    # Master on h2, never changed: it must not notice any of the reloads.
    other = Instance("other", 82, (C,), {"h1": 100, "h2": 150})
    n = Nodes(lab, web, other)
    n.start(n.h1)
    n.h1.watcher.wait_for(A, timeout=10)
    n.start(n.h2)
    n.h2.watcher.wait_for(C, timeout=10)
    n.h1.watcher.wait_for(C, present=False, timeout=10)
    deadline = time.monotonic() + 10
    while int(n.instance(n.h2, "web")["adverts_received"]) < 3:  # type: ignore[call-overload]
        assert time.monotonic() < deadline, "h2 does not follow h1"
        time.sleep(0.05)
    try:
        yield n
    finally:
        n.stop()


def test_priority_vips_and_interval_change_in_place_without_a_flap(nodes: Nodes) -> None:
    h1, h2 = nodes.h1, nodes.h2
    web, other = nodes.instances
    t_start = time.monotonic()
    before = {h.name: nodes.instance(h, "web")["transitions"] for h in (h1, h2)}

    def no_flap(step: str) -> None:
        time.sleep(0.5)  # a restart would have released A by now, and taken it back
        for host in (h1, h2):
            for vip in (A, C):
                assert moved(host, vip, t_start) == [], f"{step}: {vip} moved on {host.name}"

    # 1. priorities and preempt delay, backup first.
    web = replace(web, priorities={"h1": 160, "h2": 120}, preempt_delay_s=0.3)
    nodes.write(web, other)
    first, second = nodes.roll_out(h2, h1)
    no_flap("priority")
    assert "in place: web" in first and "in place: web" in second, (first, second)
    assert nodes.instance(h1, "web")["effective_priority"] == 160

    # 2. a VIP added, backup first: for a while h2 expects [A, B, D] and hears [A, B].
    web = replace(web, vips=(A, B, D))
    nodes.write(web, other)
    t_add = time.monotonic()
    nodes.roll_out(h2, h1)
    h1.watcher.wait_for(D, timeout=5, after=t_add)
    no_flap("VIP added")
    assert int(nodes.instance(h2, "web")["address_mismatch"]) >= 1  # type: ignore[call-overload]

    # 3. a VIP removed, master first: h2 expects [A, B, D] and hears [A, D].
    web = replace(web, vips=(A, D))
    nodes.write(web, other)
    t_remove = time.monotonic()
    nodes.roll_out(h1, h2)
    h1.watcher.wait_for(B, present=False, timeout=5, after=t_remove)
    no_flap("VIP removed")

    # 4. the advert interval, master first: h2 learns it from h1's adverts (RFC 5798
    # §6.4.2 Master_Adver_Interval), and follows at the new pace.
    web = replace(web, advert_interval_s=0.2)
    nodes.write(web, other)
    nodes.roll_out(h1, h2)
    no_flap("advert interval")
    r0 = int(nodes.instance(h2, "web")["adverts_received"])  # type: ignore[call-overload]
    time.sleep(2.0)
    r1 = int(nodes.instance(h2, "web")["adverts_received"])  # type: ignore[call-overload]
    assert 6 <= r1 - r0 <= 14, f"{r1 - r0} adverts in 2 s at 200 ms"
    time.sleep(4 * 0.2)  # longer than h2's Master_Down_Interval at the old interval

    # Observed: the VIPs that stayed never moved, on either node; D came and B went once.
    assert moved(h1, A, t_start) == [] and moved(h2, A, t_start) == []
    assert moved(h1, D, t_start) == ["new"] and moved(h2, D, t_start) == []
    assert moved(h1, B, t_start) == ["del"] and moved(h2, B, t_start) == []
    assert moved(h1, C, t_start) == [] and moved(h2, C, t_start) == []
    assert h1.watcher.is_present(A) and h1.watcher.is_present(D) and h2.watcher.is_present(C)
    for host in (h1, h2):
        inst = nodes.instance(host, "web")
        assert inst["transitions"] == before[host.name], host.name
        assert inst["reconfigured"] == 4, host.name
        assert inst["vips"] == ["192.0.2.100/24", "192.0.2.103/24"]
    assert nodes.instance(h1, "web")["state"] == "MASTER"
    assert nodes.instance(h2, "web")["state"] == "BACKUP"


def test_a_master_reconfigured_below_a_preempting_backup_hands_over_once(
    nodes: Nodes,
) -> None:
    h1, h2 = nodes.h1, nodes.h2
    web, other = nodes.instances
    t0 = time.monotonic()
    nodes.write(replace(web, priorities={"h1": 90, "h2": 100}), other)
    nodes.roll_out(h2, h1, apart_s=0.2)
    t_h1 = time.monotonic()
    # RFC 5798 §6.4.2: h2 discards h1's lower adverts and takes over when its
    # Master_Down_Timer runs out (no priority 0 from h1: it was not stopped).
    took = h2.watcher.wait_for(A, timeout=5, after=t0)
    mdi = float(master_down_interval(100, 10))
    assert took - t_h1 <= mdi + MARGIN_S
    h1.watcher.wait_for(A, present=False, timeout=5, after=t0)
    time.sleep(0.5)
    for vip in (A, B):
        assert moved(h1, vip, t0) == ["del"] and moved(h2, vip, t0) == ["new"], vip
    assert moved(h1, C, t0) == [] and moved(h2, C, t0) == []
    transitions = nodes.instance(h1, "web")["transitions"]
    assert isinstance(transitions, list)
    assert {"from": "MASTER", "to": "BACKUP", "reason": "higher_priority", "count": 1} in (
        transitions
    )


def test_an_identity_change_restarts_only_that_instance(nodes: Nodes) -> None:
    h1, h2 = nodes.h1, nodes.h2
    web, other = nodes.instances
    t0 = time.monotonic()
    nodes.write(replace(web, vrid=83), other)
    first, second = nodes.roll_out(h2, h1)
    assert "restarted: web" in first and "restarted: web" in second, (first, second)
    assert "web: restarting: vrid changed" in nodes.procs[h1.name].output()
    h1.watcher.wait_for(A, timeout=10, after=t0)  # released by the stop, back as master
    assert moved(h1, A, t0)[:1] == ["del"]
    assert moved(h1, C, t0) == [] and moved(h2, C, t0) == []


def test_a_revision_that_cannot_run_here_changes_nothing(nodes: Nodes) -> None:
    """Prepare before apply: a revision with an instance on an interface this node does
    not have is refused before anything runs it, also the in-place change it carries."""
    h1, h2 = nodes.h1, nodes.h2
    web, other = nodes.instances
    t0 = time.monotonic()
    proc = nodes.procs[h1.name]
    broken = Instance("far", 90, (D,), {"h1": 100, "h2": 100}, interface="eth9")
    nodes.write(replace(web, priorities={"h1": 200, "h2": 100}, vips=(A,)), other, broken)
    proc.signal(signal.SIGHUP)
    proc.wait_for_output("far: interface eth9 does not exist", timeout=10)
    time.sleep(0.5)
    status = node_status(h1)
    assert status["reloads_failed"] == 1 and status["reloads_ok"] == 0
    inst = nodes.instance(h1, "web")
    assert (inst["effective_priority"], inst["reconfigured"]) == (150, 0)
    assert inst["vips"] == ["192.0.2.100/24", "192.0.2.101/24"]
    for host in (h1, h2):
        for vip in (A, B, C, D):
            assert moved(host, vip, t0) == [], (host.name, vip)


ROLLBACK_SCRIPT = """
import asyncio, json, sys
from pathlib import Path
import hashlib
from reconciler.daemon import NodeRuntime, RunOptions, StartupError, _revision_from
from reconciler.model.revision import Artifact, Provenance
from reconciler.observability.tracing import Tracing

good, bad, state = map(Path, sys.argv[1:4])

def _load_node(path, node):
    data = path.read_bytes()
    artifact = Artifact(data, hashlib.sha256(data).hexdigest(), Provenance(f"file:{path}"))
    return _revision_from(artifact, node, lambda: None, frozenset())

async def main():
    options = RunOptions(good, "h1", state, http_addr=None)
    runtime = NodeRuntime(options, _load_node(good, "h1"), Tracing(None))
    await runtime.start()
    await asyncio.sleep(1.5)  # master of web by now
    good_specs = {n: d.spec for n, d in runtime.drivers.items()}
    keeper = runtime.sysctls
    def fail_once(sysctls):  # the step after the instances changed fails
        del keeper.apply
        raise RuntimeError("injected failure")
    keeper.apply = fail_once
    error = None
    try:
        await runtime.applier.replace(_load_node(bad, "h1"))
    except StartupError as exc:
        error = str(exc)
    await asyncio.sleep(1.0)
    out = {
        "error": error,
        "same_specs": {n: d.spec for n, d in runtime.drivers.items()} == good_specs,
        "instances": sorted(runtime.drivers),
        "priority": runtime.drivers["web"].effective_priority,
        "state": runtime.drivers["web"].state.name,
        "revision_is_good": runtime.running.config == _load_node(good, "h1").config,
    }
    await runtime.stop()
    print(json.dumps(out))

asyncio.run(main())
"""


def test_a_failure_while_applying_rolls_back_to_the_last_good_revision(make_lab) -> None:  # type: ignore[no-untyped-def]
    """A revision that fails after it changed the running instances (a failure injected
    in the sysctls, the step after them) is rolled back completely: the instance
    changed in place gets its old values again without a VIP flap, the VIP it added is
    removed, the instance it started is stopped."""
    lab: Lab = make_lab(1)
    h1 = lab.host(1)
    web = Instance("web", 81, (A,), {"h1": 150})
    good = lab.tmpdir / "good.yaml"
    good.write_text(cluster_yaml(lab.hosts, (web,)))
    bad = lab.tmpdir / "bad.yaml"
    new = Instance("new", 82, (C,), {"h1": 150})
    bad.write_text(
        cluster_yaml(lab.hosts, (replace(web, priorities={"h1": 200}, vips=(A, B)), new))
    )
    script = lab.tmpdir / "rollback.py"
    script.write_text(ROLLBACK_SCRIPT)
    t0 = time.monotonic()
    run = h1.run(
        [sys.executable, str(script), str(good), str(bad), str(lab.tmpdir / "state")],
        timeout=60,
    )
    out = json.loads(run.stdout.strip().splitlines()[-1])
    assert out["error"] and "rolled back to" in out["error"], out
    assert out["same_specs"] and out["revision_is_good"], out
    assert (out["instances"], out["priority"], out["state"]) == (["web"], 150, "MASTER")
    # Observed: A came once (start) and went once (the clean stop at the end); B and C
    # came with the failed revision and went with its rollback.
    assert moved(h1, A, t0) == ["new", "del"]
    assert moved(h1, B, t0) == ["new", "del"]
    assert moved(h1, C, t0) in (["new", "del"], [])


def test_a_revision_needing_nftables_where_there_is_none_changes_nothing(make_lab) -> None:  # type: ignore[no-untyped-def]
    """accept: false needs the nftables table; a node without nft refuses the revision
    before it touches anything, also the priority change it carries."""
    lab: Lab = make_lab(1)
    h1 = lab.host(1)
    web = Instance("web", 81, (A,), {"h1": 150})
    config = lab.tmpdir / "cluster.yaml"
    config.write_text(cluster_yaml(lab.hosts, (web,)))
    path = lab.tmpdir / "no-nft"  # a PATH with the lab's own tool only
    path.mkdir()
    ip = shutil.which("ip")
    assert ip is not None
    (path / "ip").symlink_to(ip)
    proc = start_ours(
        h1, config, lab.tmpdir / "state", env={"PATH": str(path)}, extra_args=NO_WATCH
    )
    h1.watcher.wait_for(A, timeout=10)
    proc.wait_for_output("metrics and status on", timeout=10)
    t0 = time.monotonic()
    config.write_text(
        cluster_yaml(lab.hosts, (replace(web, priorities={"h1": 200}, accept=False),))
    )
    proc.signal(signal.SIGHUP)
    proc.wait_for_output("accept: false needs nftables", timeout=10)
    time.sleep(0.3)
    status = node_status(h1)
    assert (status["reloads_failed"], status["reloads_ok"]) == (1, 0)
    (inst,) = status["instances"]
    assert (inst["effective_priority"], inst["reconfigured"], inst["accept_mode"]) == (
        150,
        0,
        True,
    )
    assert moved(h1, A, t0) == []
    proc.stop()


def _tracked(lab: Lab, weight: int) -> str:
    web = http_check(
        "web", "http://127.0.0.1:9/healthz", interval="200ms", timeout="100ms", rise=1, fall=1
    )
    inst = Vrrp("web", 81, [A], H1_MASTER, "100ms", track=[Track("web", weight)])
    return cluster_text(lab_nodes(lab.hosts), [inst], checks=[web])


def test_a_tracker_weight_changes_the_effective_priority_in_place(make_lab) -> None:  # type: ignore[no-untyped-def]
    """The tracked check is down on h1 (nothing listens there) and up on h2. A new weight
    moves h1's effective priority at once, in place; only when it drops below h2's does
    the VIP move, once, by the RFC 5798 election (h2 preempts)."""
    lab: Lab = make_lab(2)
    h1, h2 = lab.host(1), lab.host(2)
    www = healthz_dir(lab.tmpdir)
    h2.spawn([sys.executable, "-m", "http.server", "9", "--bind", "127.0.0.1"], cwd=www)
    config = lab.tmpdir / "c.yaml"

    def write(weight: int) -> None:
        config.write_text(_tracked(lab, weight))

    def effective(host: Host, want: int) -> dict[str, object]:
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(CommandError):
                (inst,) = node_status(host)["instances"]
                if inst["effective_priority"] == want:
                    assert isinstance(inst, dict)
                    return inst
            assert time.monotonic() < deadline, f"{host.name} not at priority {want}"
            time.sleep(0.1)

    write(-20)  # h1 130 (check down), h2 100 (check up)
    procs = [start_ours(h, config, lab.tmpdir / h.name, extra_args=NO_WATCH) for h in (h1, h2)]
    h1.watcher.wait_for(A, timeout=10)
    effective(h1, 130)
    effective(h2, 100)
    t0 = time.monotonic()

    def reload(weight: int) -> None:
        write(weight)
        for proc in procs:
            sighup_until_applied(proc)

    reload(-40)  # h1 110 > 100: in place, nothing moves
    inst = effective(h1, 110)
    time.sleep(1.0)
    assert (inst["state"], inst["reconfigured"]) == ("MASTER", 1)
    assert moved(h1, A, t0) == [] and moved(h2, A, t0) == []

    t1 = time.monotonic()
    reload(-60)  # h1 90 < 100: h2 preempts after its Master_Down_Interval
    h2.watcher.wait_for(A, timeout=5, after=t1)
    h1.watcher.wait_for(A, present=False, timeout=5, after=t1)
    time.sleep(0.5)
    assert moved(h1, A, t0) == ["del"] and moved(h2, A, t0) == ["new"]
    (inst,) = node_status(h1)["instances"]
    assert (inst["state"], inst["effective_priority"]) == ("BACKUP", 90)
    for proc in procs:
        proc.stop()


def test_an_ipv6_vip_added_and_removed_in_place(make_lab) -> None:  # type: ignore[no-untyped-def]
    """The same for IPv6, where adverts come from the link-local address (kept across
    the change) and new VIPs are announced by unsolicited neighbour advertisements."""
    lab: Lab = make_lab(2)
    v6a, v6b = (ipaddress.ip_interface(f"2001:db8::{n}/64") for n in (100, 101))
    web = Instance("web6", 86, (v6a,), {"h1": 150, "h2": 100})
    n = Nodes(lab, web)
    n.start(n.h1)
    n.h1.watcher.wait_for(v6a, timeout=15)
    n.start(n.h2)
    deadline = time.monotonic() + 10
    while True:
        with contextlib.suppress(CommandError):
            if int(n.instance(n.h2, "web6")["adverts_received"]) >= 3:  # type: ignore[call-overload]
                break
        assert time.monotonic() < deadline, "h2 does not follow h1"
        time.sleep(0.05)
    t0 = time.monotonic()
    try:
        n.write(replace(web, vips=(v6a, v6b)))
        n.roll_out(n.h2, n.h1)
        n.h1.watcher.wait_for(v6b, timeout=5, after=t0)
        n.write(web)
        n.roll_out(n.h1, n.h2)
        n.h1.watcher.wait_for(v6b, present=False, timeout=5, after=t0)
        time.sleep(0.5)
        assert moved(n.h1, v6a, t0) == [] and moved(n.h2, v6a, t0) == []
        assert moved(n.h1, v6b, t0) == ["new", "del"] and moved(n.h2, v6b, t0) == []
        assert n.instance(n.h1, "web6")["state"] == "MASTER"
        assert int(n.instance(n.h2, "web6")["address_mismatch"]) >= 1  # type: ignore[call-overload]
    finally:
        n.stop()


def _hooked(lab: Lab, hook: Path, word: str, preempt: bool, repeat: int) -> str:
    options = {
        "preempt": preempt,
        "garp": {"master_repeat": repeat},
        "notify": {"master": [[str(hook), word]]},
    }
    inst = Vrrp("web", 81, [A], H1_MASTER, "100ms", options=options)
    return cluster_text(lab_nodes(lab.hosts), [inst])


def test_hooks_preempt_and_garp_change_in_place_and_the_new_hook_runs(make_lab) -> None:  # type: ignore[no-untyped-def]
    """keepalived moves no VIP on a reload that changes a notify hook; neither do we. The
    next transition runs the new hook."""
    lab: Lab = make_lab(2)
    h1, h2 = lab.host(1), lab.host(2)
    programs, outdir = hook_dirs(lab.tmpdir)  # the hook runs as nobody
    out = outdir / "hooks.log"
    hook = write_program(
        programs / "hook.sh", f'#!/bin/sh\necho "$1 $RECONCILER_NODE" >> "{out}"\n'
    )
    config = lab.tmpdir / "c.yaml"

    def write(word: str, preempt: bool, repeat: int) -> None:
        config.write_text(_hooked(lab, hook, word, preempt, repeat))

    write("old", True, 5)
    procs = {
        h.name: start_ours(h, config, lab.tmpdir / h.name, extra_args=NO_WATCH) for h in (h1, h2)
    }
    h1.watcher.wait_for(A, timeout=10)
    deadline = time.monotonic() + 10
    while not (out.exists() and "old h1" in out.read_text()):
        assert time.monotonic() < deadline, "the master hook did not run"
        time.sleep(0.05)
    time.sleep(1.0)
    t0 = time.monotonic()
    ran_before = len(out.read_text().splitlines())
    write("new", False, 2)
    for proc in procs.values():
        sighup_until_applied(proc)
        assert "applied: in place: web" in proc.output()
    time.sleep(1.0)
    assert moved(h1, A, t0) == [] and moved(h2, A, t0) == []
    procs[h1.name].signal(signal.SIGTERM)  # h2 takes over and runs the new hook
    h2.watcher.wait_for(A, timeout=5, after=t0)
    deadline = time.monotonic() + 5
    while "new h2" not in out.read_text():
        assert time.monotonic() < deadline, out.read_text()
        time.sleep(0.05)
    assert out.read_text().splitlines()[ran_before:] == ["new h2"]
    for proc in procs.values():
        proc.stop()
