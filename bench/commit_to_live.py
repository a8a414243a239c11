#!/usr/bin/env python3
"""Commit to live: how long from a new revision on disk to the change in the node's kernel.

As root, from the repository root::

    .venv/bin/python bench/commit_to_live.py [--repeats 30] [--mode write|git-sync|both]

One lab host runs ``reconciler run FILE`` (one VRRP instance, master). Each round
publishes a revision that flips the director sysctl ``net.ipv4.ip_forward`` of the
node's network namespace, so that nothing but the revision path is measured (no
election): the watched-file source sees it, the gate attempts it, the consumer
validates its bytes in a thread and the node applies it. Two ways to publish:

* write: the file rewritten in place (open, truncate, write), as an editor or a
  configuration tool without atomic rename does;
* git-sync: git-sync v4's atomic publish (a new worktree directory named by the
  commit, a new symlink renamed over the link), with the daemon reading
  LINK/cluster.yaml.

t0 is ``time.monotonic()`` just before the publish; the end is when a poller inside
the namespace (reading /proc/sys/net/ipv4/ip_forward every 0.5 ms, stamping with
the same CLOCK_MONOTONIC) sees the new value. Percentiles are nearest-rank. Targets
(issue 12): p50 < 0.3 s, p95 < 0.5 s. Progress goes to stderr, the table to stdout.

A benchmark, not a test: CI does not run it.
"""

from __future__ import annotations

import argparse
import ipaddress
import math
import os
import sys
import time
from pathlib import Path

from reconciler.testing.netlab import Lab, LabProcess
from reconciler.testing.vrrp_nodes import Instance, cluster_yaml, node_status, start_ours

ROOT = Path(__file__).resolve().parents[1]
TARGET_P50_S = 0.3
TARGET_P95_S = 0.5
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


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def revision(lab: Lab, forward: bool) -> str:
    instances = (Instance("web", 81, (ipaddress.ip_interface("192.0.2.100/24"),), {"h1": 150}),)
    text = cluster_yaml(lab.hosts, instances)
    return text + f"director:\n  sysctls: {{ip_forward: {str(forward).lower()}}}\n"


def seen_after(poller: LabProcess, value: str, after: float, timeout: float = 5.0) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in poller.output().splitlines():
            stamp, _, v = line.partition(" ")
            if v == value and float(stamp) >= after:
                return float(stamp)
        time.sleep(0.002)
    raise TimeoutError(f"ip_forward never became {value}")


def publish_git_sync(root: Path, n: int, text: str) -> None:
    commit = f"{n:040x}"
    worktree = root / ".worktrees" / commit
    worktree.mkdir(parents=True)
    (worktree / "cluster.yaml").write_text(text)
    tmp = root / f".tmp-link-{n}"
    tmp.symlink_to(Path(".worktrees") / commit)
    os.rename(tmp, root / "current")


def run_mode(mode: str, repeats: int) -> list[float]:
    with Lab(1) as lab:
        host = lab.host(1)
        host.sysctl("net.ipv4.ip_forward", 0)
        if mode == "git-sync":
            root = lab.tmpdir / "git"
            publish_git_sync(root, 0, revision(lab, False))
            config = root / "current" / "cluster.yaml"
        else:
            config = lab.tmpdir / "cluster.yaml"
            config.write_text(revision(lab, False))
        daemon = start_ours(host, config, lab.tmpdir / "state", log_level="warning")
        deadline = time.monotonic() + 15
        while True:  # up, and its first revision applied
            try:
                if node_status(host)["revisions"]["applied"] is not None:
                    break
            except Exception:
                if time.monotonic() > deadline:
                    raise
            time.sleep(0.1)
        poller = host.spawn([sys.executable, "-u", "-c", POLLER], name="poller")
        poller.wait_for_output(" 0", timeout=5)
        took: list[float] = []
        for n in range(1, repeats + 1):
            forward = n % 2 == 1
            text = revision(lab, forward)
            time.sleep(0.3)  # apart: each round is one revision, not a burst
            t0 = time.monotonic()
            if mode == "git-sync":
                publish_git_sync(lab.tmpdir / "git", n, text)
            else:
                with open(config, "w") as f:
                    f.write(text)
            took.append(seen_after(poller, "1" if forward else "0", t0) - t0)
            print(f"{mode} {n}/{repeats}: {took[-1] * 1000:.0f} ms", file=sys.stderr)
        poller.stop()
        daemon.stop()
    return took


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=30, help="rounds per mode")
    parser.add_argument("--mode", choices=("write", "git-sync", "both"), default="both")
    args = parser.parse_args()
    modes = ("write", "git-sync") if args.mode == "both" else (args.mode,)
    rows = []
    for mode in modes:
        took = run_mode(mode, args.repeats)
        p50, p95 = percentile(took, 50), percentile(took, 95)
        met = "met" if p50 < TARGET_P50_S and p95 < TARGET_P95_S else "MISSED"
        rows.append(
            f"| {mode:<8} | {len(took):>3} | {p50 * 1000:6.0f} ms | {p95 * 1000:6.0f} ms "
            f"| {max(took) * 1000:6.0f} ms | {met} |"
        )
    print("| publish  |   n |      p50 |      p95 |      max | p50 < 300 ms, p95 < 500 ms |")
    print("|---|---|---|---|---|---|")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
