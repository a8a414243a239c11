#!/usr/bin/env python3
"""Commit to live: how long from a new revision to the change in the node's kernel.

As root, from the repository root::

    .venv/bin/python bench/commit_to_live.py [--repeats 30] [--changes 20]
        [--poll-interval 1s] [--mode write git-sync git-hook git-poll changes]

Latency modes: one lab host runs our daemon (one VRRP instance, master). Each round
publishes a revision that flips the director sysctl ``net.ipv4.ip_forward`` of the
node's network namespace, so that nothing but the revision path is measured (no
election): the source sees it, the gate attempts it, the consumer validates its bytes
in a thread and the node applies it. Ways to publish:

* write: ``run FILE``, the file rewritten in place (open, truncate, write), as an
  editor or a configuration tool without atomic rename does;
* git-sync: ``run LINK/cluster.yaml``, git-sync v4's atomic publish (a new worktree
  directory named by the commit, a new symlink renamed over the link);
* git-hook: ``run --git REPO --refresh-hook`` polling every hour: a signed commit
  (ssh key made by the run, ``--verify-commits range``) to a repository the run
  creates, then ``POST /hooks/refresh``, as a CI webhook after a merge does; timed
  from the commit (the branch updated, ``git commit`` returned) to live;
* git-poll: ``run --git REPO`` polling every ``--poll-interval``, no hook: the same
  commits, at random phases of the poll timer. The poll interval is subtracted by
  timing from the start of the fetch that saw the commit: git is run through a
  wrapper (first on the daemon's PATH) that stamps each ``git fetch`` with
  CLOCK_REALTIME before it starts git; the fetch that saw a commit is the last one
  that started before the change was live (or the commit itself, when that fetch
  started while ``git commit`` was still returning). Also printed: from the commit,
  the poll wait included. The wrapper costs every git command a /bin/sh start
  (about 1 ms; a new commit takes about 8 git commands).

t0 is ``time.monotonic()`` just before the publish (or just after ``git commit``);
the end is when a poller inside the namespace (reading /proc/sys/net/ipv4/ip_forward
every 0.5 ms, stamping with the same CLOCK_MONOTONIC) sees the new value. Percentiles
are nearest-rank. Targets (issue 12): file write and git-sync p50 < 0.3 s and
p95 < 0.5 s; commit to live (via the hook, or poll subtracted) p95 < 1 s.

changes: two lab hosts run ``run --git`` on one repository, each polling every 500 ms
on its own (so the nodes apply each commit at different times, as a fleet does), and
``--changes`` signed commits make non-disruptive changes one after another: h1's
priority up and down (always above h2's), a VIP added and removed, the advert
interval, a notify hook's arguments and a tracked check's timeout. The lab's netlink
watchers count every address event of the VIP that stays, on both nodes (target 0),
and of the VIP added and removed (once up and once down on the master per pair, none
on the backup); /status gives the state transitions (target 0) and the commits applied.

Progress goes to stderr, the tables to stdout. A benchmark, not a test: CI does not
run it.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import ipaddress
import math
import os
import random
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reconciler.model.durations import parse_duration
from reconciler.testing.clusters import (
    Track,
    Vrrp,
    cluster_text,
    git_sync_publish,
    lab_nodes,
    script_check,
)
from reconciler.testing.gitrepo import Signers, SshKey, WorkRepo
from reconciler.testing.netlab import (
    CommandError,
    Host,
    Lab,
    LabProcess,
    netns_unavailable_reason,
)
from reconciler.testing.vrrp_nodes import (
    Instance,
    cluster_yaml,
    node_status,
    start_ours,
    start_ours_git,
)

ROOT = Path(__file__).resolve().parents[1]
MODES = ("write", "git-sync", "git-hook", "git-poll", "changes")
TARGET_P50_S = 0.3  # file write, git-sync
TARGET_P95_S = 0.5
TARGET_COMMIT_P95_S = 1.0  # git commit to live, via the hook or poll subtracted
FILE = "cluster.yaml"
STAYS = ipaddress.ip_interface("192.0.2.100/24")
COMES_AND_GOES = ipaddress.ip_interface("192.0.2.101/24")
CHANGES_POLL = "500ms"
POLLER = """
import sys, time
path = "/proc/sys/net/ipv4/ip_forward"
last = None
while True:
    with open(path) as f:
        v = f.read().strip()
    if v != last:
        print(f"{time.monotonic():.6f} {v}", flush=True)
        last = v
    time.sleep(0.0005)
"""
_T0 = time.monotonic()


def progress(msg: str) -> None:
    print(f"[{time.monotonic() - _T0:7.1f}s] {msg}", file=sys.stderr, flush=True)


def percentile(values: Sequence[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


@dataclass(frozen=True)
class LatencyRow:
    what: str
    samples_s: tuple[float, ...]
    target: str  # "" for a row shown for information
    p50_limit_s: float | None = None
    p95_limit_s: float | None = None

    @property
    def met(self) -> str:
        if not self.target:
            return "-"
        ok = (self.p50_limit_s is None or percentile(self.samples_s, 50) < self.p50_limit_s) and (
            self.p95_limit_s is None or percentile(self.samples_s, 95) < self.p95_limit_s
        )
        return "met" if ok else "**missed**"

    def render(self) -> str:
        s = self.samples_s
        return (
            f"| {self.what} | {len(s)} | {percentile(s, 50) * 1000:.0f} ms "
            f"| {percentile(s, 95) * 1000:.0f} ms | {max(s) * 1000:.0f} ms "
            f"| {self.target or '-'} | {self.met} |"
        )


# --------------------------------------------------------------------------- helpers


def revision(lab: Lab, forward: bool) -> str:
    instances = (Instance("web", 81, (STAYS,), {"h1": 150}),)
    text = cluster_yaml(lab.hosts, instances)
    return text + f"director:\n  sysctls: {{ip_forward: {str(forward).lower()}}}\n"


def wait_applied(host: Host, commit: str | None = None, timeout: float = 20.0) -> dict[str, Any]:
    """/status once the node runs a revision (from ``commit``, when given) and waits
    for no other."""
    deadline = time.monotonic() + timeout
    doc: dict[str, Any] | None = None
    while True:
        with contextlib.suppress(CommandError):  # not serving /status yet
            doc = node_status(host)
            revisions = doc["revisions"]
            if (
                revisions["applied"] is not None
                and not revisions["pending"]
                and (commit is None or doc["commit"] == commit)
            ):
                return doc
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{host.name}: {commit or 'a revision'} not applied: {doc}")
        time.sleep(0.1)


def start_poller(host: Host) -> LabProcess:
    poller = host.spawn([sys.executable, "-u", "-c", POLLER], name="poller")
    poller.wait_for_output(" 0", timeout=5)
    return poller


def seen_after(poller: LabProcess, value: str, after: float, timeout: float = 5.0) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in poller.output().splitlines():
            stamp, _, v = line.partition(" ")
            if v == value and float(stamp) >= after:
                return float(stamp)
        time.sleep(0.002)
    raise TimeoutError(f"ip_forward never became {value}")


def post_refresh(host: Host) -> None:
    """POST /hooks/refresh to the node, over a socket made in its namespace (no process
    start on the way)."""
    sock = host.call(lambda: socket.create_connection(("127.0.0.1", 9650), timeout=5))
    conn = http.client.HTTPConnection("127.0.0.1", 9650, timeout=5)
    conn.sock = sock
    try:
        conn.request("POST", "/hooks/refresh")
        response = conn.getresponse()
        response.read()
        if response.status != 202:
            raise RuntimeError(f"POST /hooks/refresh: {response.status} {response.reason}")
    finally:
        conn.close()


def fetch_stamper(directory: Path, log: Path) -> Path:
    """A directory holding a `git` that appends the CLOCK_REALTIME of each `git fetch`
    to `log` and runs the real git. (The daemon passes PATH on to git, nothing else:
    the log's path is written into the script.)"""
    real = shutil.which("git")
    if real is None:
        raise RuntimeError("git is not installed")
    directory.mkdir(parents=True)
    wrapper = directory / "git"
    wrapper.write_text(
        "#!/bin/sh\n"
        f'case " $* " in *" fetch "*) date +%s.%N >> "{log}" ;; esac\n'
        f'exec "{real}" "$@"\n'
    )
    wrapper.chmod(0o755)
    return directory


def realtime_offset_s() -> float:
    """CLOCK_REALTIME minus CLOCK_MONOTONIC, now."""
    before = time.monotonic()
    real = time.time()
    after = time.monotonic()
    return real - (before + after) / 2


def signing(lab: Lab, signers: Signers) -> tuple[SshKey, tuple[str, ...]]:
    """A signing key made for the run and the node arguments that trust only it."""
    key = signers.ssh("ops")
    allowed = lab.tmpdir / "allowed_signers"
    allowed.write_text(key.allowed_signers_line())
    return key, ("--verify-commits", "range", "--allowed-signers", str(allowed))


# --------------------------------------------------------------------------- latency modes


def run_file(mode: str, repeats: int) -> list[LatencyRow]:
    with Lab(1) as lab:
        host = lab.host(1)
        host.sysctl("net.ipv4.ip_forward", 0)
        if mode == "git-sync":
            root = lab.tmpdir / "git"
            git_sync_publish(root, "0" * 40, revision(lab, False))
            config = root / "current" / "cluster.yaml"
        else:
            config = lab.tmpdir / "cluster.yaml"
            config.write_text(revision(lab, False))
        daemon = start_ours(host, config, lab.tmpdir / "state", log_level="warning")
        wait_applied(host)
        poller = start_poller(host)
        took: list[float] = []
        for n in range(1, repeats + 1):
            forward = n % 2 == 1
            text = revision(lab, forward)
            time.sleep(0.3)  # apart: each round is one revision, not a burst
            t0 = time.monotonic()
            if mode == "git-sync":
                git_sync_publish(lab.tmpdir / "git", f"{n:040x}", text)
            else:
                with open(config, "w") as f:
                    f.write(text)
            took.append(seen_after(poller, "1" if forward else "0", t0) - t0)
            progress(f"{mode} {n}/{repeats}: {took[-1] * 1000:.0f} ms")
        poller.stop()
        daemon.stop()
    what = "file rewritten in place" if mode == "write" else "git-sync style link swap"
    target = "p50 < 300 ms, p95 < 500 ms"
    return [LatencyRow(what, tuple(took), target, TARGET_P50_S, TARGET_P95_S)]


def run_git(
    mode: str, repeats: int, poll_interval_s: float, rng: random.Random
) -> list[LatencyRow]:
    hook = mode == "git-hook"
    with Lab(1) as lab, contextlib.closing(Signers(lab.tmpdir / "keys")) as signers:
        host = lab.host(1)
        host.sysctl("net.ipv4.ip_forward", 0)
        key, verify = signing(lab, signers)
        repo = WorkRepo(lab.tmpdir / "repo", signers)
        first = repo.commit({FILE: revision(lab, False)}, "ip_forward off", sign=key)
        fetch_log = lab.tmpdir / "fetches.log"
        env = None
        if not hook:
            stamper = fetch_stamper(lab.tmpdir / "bin", fetch_log)
            env = {"PATH": f"{stamper}:{os.environ.get('PATH', '/usr/bin:/bin')}"}
        daemon = start_ours_git(
            host,
            repo.url,
            lab.tmpdir / "state",
            path=FILE,
            interval="1h" if hook else f"{round(poll_interval_s * 1000)}ms",
            log_level="warning",
            env=env,
            extra_args=(*verify, "--refresh-hook") if hook else verify,
        )
        wait_applied(host, first)
        poller = start_poller(host)
        offset_s = realtime_offset_s()
        from_commit: list[float] = []
        from_fetch: list[float] = []
        last = first
        for n in range(1, repeats + 1):
            forward = n % 2 == 1
            # Apart, and for polls at a random phase of the poll timer.
            time.sleep(0.3 + (0.0 if hook else rng.uniform(0, poll_interval_s)))
            last = repo.commit({FILE: revision(lab, forward)}, f"round {n}", sign=key)
            t0 = time.monotonic()
            if hook:
                post_refresh(host)
            live = seen_after(poller, "1" if forward else "0", t0, timeout=poll_interval_s + 10)
            from_commit.append(live - t0)
            if hook:
                progress(f"{mode} {n}/{repeats}: {from_commit[-1] * 1000:.0f} ms")
                continue
            starts = [float(s) - offset_s for s in fetch_log.read_text().split()]
            saw = max(s for s in starts if s <= live)
            if saw < t0 - 0.2:
                progress(f"{mode} {n}: no fetch stamped between the commit and live; dropped")
                continue
            from_fetch.append(live - max(saw, t0))
            progress(
                f"{mode} {n}/{repeats}: {from_commit[-1] * 1000:.0f} ms from the commit, "
                f"{from_fetch[-1] * 1000:.0f} ms from the fetch that saw it"
            )
        doc = wait_applied(host, last)
        assert doc["revisions"]["applied"]["verification"] == "verified", doc
        poller.stop()
        daemon.stop()
    target = "p95 < 1 s"
    if hook:
        return [
            LatencyRow(
                "git commit, then POST /hooks/refresh", tuple(from_commit), target,
                p95_limit_s=TARGET_COMMIT_P95_S,
            )
        ]  # fmt: skip
    every = f"{poll_interval_s:g} s"
    return [
        LatencyRow(
            f"git commit, polled every {every}: from the fetch that saw it", tuple(from_fetch),
            target, p95_limit_s=TARGET_COMMIT_P95_S,
        ),
        LatencyRow(f"git commit, polled every {every}: from the commit", tuple(from_commit), ""),
    ]  # fmt: skip


# --------------------------------------------------------------------------- changes


@dataclass(frozen=True)
class Desired:
    priority: int = 150
    vips: tuple[ipaddress.IPv4Interface | ipaddress.IPv6Interface, ...] = (STAYS,)
    interval_ms: int = 100
    word: str = "a"
    timeout_ms: int = 200

    def text(self, lab: Lab) -> str:
        alive = script_check(
            "alive", ["/bin/true"], interval="500ms", timeout=f"{self.timeout_ms}ms", rise=1, fall=1
        )
        web = Vrrp(
            "web",
            81,
            self.vips,
            {"h1": self.priority, "h2": 100},
            f"{self.interval_ms}ms",
            # A check reset to down by a change would take h1 to priority - 60, at or
            # below h2: the VIP would move, and be counted.
            track=[Track("alive", -60)],
            options={"notify": {"master": [["/bin/true", self.word]]}},
        )
        return cluster_text(lab_nodes(lab.hosts), [web], checks=[alive])


# One cycle of ten non-disruptive changes that ends where it started.
CYCLE: tuple[tuple[str, dict[str, Any]], ...] = (
    ("h1 priority 150 -> 160", {"priority": 160}),
    ("VIP 192.0.2.101 added", {"vips": (STAYS, COMES_AND_GOES)}),
    ("advert interval 100 -> 200 ms", {"interval_ms": 200}),
    ("notify hook arguments", {"word": "b"}),
    ("check timeout 200 -> 300 ms", {"timeout_ms": 300}),
    ("h1 priority 160 -> 150", {"priority": 150}),
    ("VIP 192.0.2.101 removed", {"vips": (STAYS,)}),
    ("advert interval 200 -> 100 ms", {"interval_ms": 100}),
    ("notify hook arguments", {"word": "a"}),
    ("check timeout 300 -> 200 ms", {"timeout_ms": 200}),
)


def counts(doc: dict[str, Any]) -> tuple[int, int]:
    """A node's VRRP state transitions so far and the revisions it applied."""
    (inst,) = doc["instances"]
    return sum(t["count"] for t in inst["transitions"]), doc["revisions"]["applies"]


def run_changes(changes: int) -> list[str]:
    with Lab(2) as lab, contextlib.closing(Signers(lab.tmpdir / "keys")) as signers:
        h1, h2 = lab.hosts
        key, verify = signing(lab, signers)
        repo = WorkRepo(lab.tmpdir / "repo", signers)
        desired = Desired()
        first = repo.commit({FILE: desired.text(lab)}, "web", sign=key)
        daemons = [
            start_ours_git(
                h, repo.url, lab.tmpdir / f"state-{h.name}", path=FILE, interval=CHANGES_POLL,
                log_level="warning", extra_args=verify,
            )
            for h in (h1, h2)
        ]  # fmt: skip
        h1.watcher.wait_for(STAYS, timeout=20)
        for h in (h1, h2):
            wait_applied(h, first)
        settled = time.monotonic() + 20
        while True:  # h1 master at its full priority (the check up), h2 following it
            d1, d2 = (node_status(h)["instances"][0] for h in (h1, h2))
            want = ("MASTER", 150, "BACKUP", True)
            if (
                d1["state"],
                d1["effective_priority"],
                d2["state"],
                d2["adverts_received"] >= 3,
            ) == want:
                break
            if time.monotonic() > settled:
                raise TimeoutError(f"the cluster does not settle: {d1}, {d2}")
            time.sleep(0.1)
        before = {h.name: counts(node_status(h)) for h in (h1, h2)}
        t_start = time.monotonic()
        for n in range(changes):
            what, fields = CYCLE[n % len(CYCLE)]
            desired = replace(desired, **fields)
            commit = repo.commit({FILE: desired.text(lab)}, what, sign=key)
            for h in (h1, h2):
                wait_applied(h, commit)
            progress(f"changes {n + 1}/{changes}: {what}: applied on both")
            time.sleep(0.3)
        time.sleep(1.0)  # a late flap (a restart, a check reset) would show by now
        stays = {h.name: [e for e in h.watcher.events(STAYS) if e.timestamp >= t_start]
                 for h in (h1, h2)}  # fmt: skip
        moving = {
            h.name: [e.kind for e in h.watcher.events(COMES_AND_GOES) if e.timestamp >= t_start]
            for h in (h1, h2)
        }
        # What changed on each node, from its /status: (transitions, revisions applied).
        delta = {
            h.name: tuple(
                a - b for a, b in zip(counts(node_status(h)), before[h.name], strict=True)
            )
            for h in (h1, h2)
        }
        transitions = {name: d[0] for name, d in delta.items()}
        applied_on = {name: d[1] for name, d in delta.items()}
        overruns = {h.name: h.watcher.overruns for h in (h1, h2)}
        for d in daemons:
            d.stop()
    expect_h1: list[str] = []  # the master adds what a change adds, removes what it removes
    vips = Desired().vips
    for n in range(changes):
        new = CYCLE[n % len(CYCLE)][1].get("vips", vips)
        expect_h1 += ["new"] * len(set(new) - set(vips)) + ["del"] * len(set(vips) - set(new))
        vips = new
    for name, events in stays.items():
        for e in events:
            progress(f"changes: {STAYS} on {name}: {e}")
    rows = [
        f"| {changes} non-disruptive changes, 2 nodes, signed commits polled every "
        f"{parse_duration(CHANGES_POLL).total_seconds():g} s "
        "| h1 (master) | h2 (backup) | target | met |",
        "|---|---|---|---|---|",
        f"| address events of the VIP that stays ({STAYS.ip}) | {len(stays['h1'])} "
        f"| {len(stays['h2'])} | 0 | {'met' if not any(stays.values()) else '**missed**'} |",
        f"| address events of the VIP added and removed ({COMES_AND_GOES.ip}) "
        f"| {' '.join(moving['h1']) or 'none'} | {' '.join(moving['h2']) or 'none'} "
        f"| h1: {' '.join(expect_h1) or 'none'}; h2: none "
        f"| {'met' if moving == {'h1': expect_h1, 'h2': []} else '**missed**'} |",
        f"| VRRP state transitions | {transitions['h1']} | {transitions['h2']} | 0 "
        f"| {'met' if not any(transitions.values()) else '**missed**'} |",
        f"| commits applied (of {changes}) | {applied_on['h1']} | {applied_on['h2']} "
        f"| {changes} | {'met' if set(applied_on.values()) == {changes} else '**missed**'} |",
    ]
    if any(overruns.values()):
        rows.append(f"(netlink watcher overruns: {overruns}: events may be missing)")
    return rows


# --------------------------------------------------------------------------- main


def checkout_commit() -> str:
    def git(*args: str) -> str:
        out = subprocess.run(
            ["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=False
        )
        return out.stdout.strip()

    modified = git("status", "--porcelain", "--", "reconciler") != ""
    return git("rev-parse", "--short", "HEAD") + (", modified" if modified else "")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=30, help="rounds per latency mode")
    parser.add_argument(
        "--changes", type=int, default=20, help="non-disruptive commits in 'changes' mode"
    )
    parser.add_argument(
        "--poll-interval", default="1s", help="the git-poll node's --interval (default 1s)"
    )
    parser.add_argument(
        "--mode", nargs="+", choices=MODES, default=list(MODES), help="what to run (default all)"
    )
    parser.add_argument("--seed", type=int, default=12, help="for the commits' poll phases")
    args = parser.parse_args(argv)
    reason = netns_unavailable_reason()
    if reason:
        print(f"cannot run: {reason}", file=sys.stderr)
        return 2
    if {"git-hook", "git-poll", "changes"} & set(args.mode) and not shutil.which("git"):
        print("cannot run: git is not installed", file=sys.stderr)
        return 2
    poll_interval_s = parse_duration(args.poll_interval).total_seconds()
    rng = random.Random(args.seed)
    load = os.getloadavg()[0]
    latency: list[LatencyRow] = []
    changes: list[str] = []
    for mode in MODES:
        if mode not in args.mode:
            continue
        progress(f"{mode}")
        if mode in ("write", "git-sync"):
            latency += run_file(mode, args.repeats)
        elif mode in ("git-hook", "git-poll"):
            latency += run_git(mode, args.repeats, poll_interval_s, rng)
        else:
            changes = run_changes(args.changes)
    print(
        f"Commit to live, commit {checkout_commit()}; python {sys.version.split()[0]}, "
        f"{os.cpu_count()} CPUs, load average {load:.1f} at the start, "
        f"{os.getloadavg()[0]:.1f} at the end. Nearest-rank percentiles."
    )
    if latency:
        print()
        print("| publish -> live in the node's kernel | n | p50 | p95 | max | target | met |")
        print("|---|---|---|---|---|---|---|")
        for row in latency:
            print(row.render())
    if changes:
        print()
        print("\n".join(changes))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
