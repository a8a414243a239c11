#!/usr/bin/env python3
"""Event-loop time of a /metrics scrape and a /status request at 500 instances.

As root, from the repository root::

    .venv/bin/python bench/scrape.py [--instances 500] [--scrapes 60] [--interval 1]
        [--code DIR] [--json FILE]

One lab host (two segments: VRIDs 1..250 on eth0, then on eth1, one /32 VIP each from
the documentation ranges, adverts every second) runs ``reconciler run`` alone, so it is
master of every instance and sends 500 adverts a second. Once every instance is master,
a client inside the host's namespace asks for /metrics and then /status once per
``--interval``, ``--scrapes`` times.

What is measured: the daemon's own account of each answer, from counters of
observability/http.py: ``reconciler_http_response_loop_seconds_total{path}``, the time the
answer held the event loop (the status snapshot taken on it, and the write; the loop runs
nothing else meanwhile, so a VRRP timer due then fires late by up to that much);
``..._response_loop_cpu_seconds_total``, the loop thread's CPU time of the same stretches
(the wall time includes waits for a CPU on a busy machine); and
``reconciler_http_render_loop_lag_seconds_total``, the worst lateness of a 1 ms timer on the
loop while the text is rendered on another thread (that thread holds the interpreter lock
for up to its switch interval at a time; epoll's millisecond rounding puts up to about
1 ms into it even on an idle loop). The client reads the counters from each /metrics
answer; requests are sequential, so the difference between two consecutive /metrics
answers is the first one's cost, and the /status difference is the cost of the /status
request in between. A scrape's own cost is not yet in its own
answer, which is why the last round only reads. Percentiles are nearest-rank. Target
(issue 13, item 7): a /metrics scrape under 5 ms of event-loop time at 500 instances.

``--code DIR`` runs the daemon from ``DIR/reconciler`` instead of this checkout's (an
older revision, for a before/after comparison; it must export the counter above).
Progress goes to stderr, the table to stdout. A benchmark, not a test: CI does not run it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reconciler.testing.clusters import VRIDS_PER_SEGMENT, many_instances
from reconciler.testing.netlab import Lab, LabProcess, netns_unavailable_reason
from reconciler.testing.vrrp_nodes import Instance, cluster_yaml, node_status, start_ours

TARGET_MS = 5.0
PORT = 9650
# Runs inside the host's namespace: one /metrics and one /status per round, prints one
# JSON line per round with the daemon's loop-seconds counters and what it got.
CLIENT = r"""
import json, re, sys, time, urllib.request
n, interval, port = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
pattern = re.compile(
    r'^reconciler_http_(response_loop_cpu|response_loop|render_loop_lag)_seconds_total'
    r'\{path="([^"]+)"\} (\S+)$', re.M)
def get(path):
    t0 = time.monotonic()
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
        body = r.read()
    return body, time.monotonic() - t0
start = time.monotonic()
for k in range(n + 1):
    metrics, wall_m = get("/metrics")
    row = {"round": k, "response_loop": {}, "response_loop_cpu": {}, "render_loop_lag": {}}
    for what, p, v in pattern.findall(metrics.decode()):
        row[what][p] = float(v)
    row.update(metrics_bytes=len(metrics), metrics_wall_s=wall_m)
    if k < n:
        status, wall_s = get("/status")
        row.update(status_bytes=len(status), status_wall_s=wall_s)
    print(json.dumps(row), flush=True)
    time.sleep(max(0.0, start + (k + 1) * interval - time.monotonic()))
"""


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def instances(n: int) -> tuple[Instance, ...]:
    return many_instances(n, {"h1": 150})


def wait_all_master(lab: Lab, daemon: LabProcess, n: int, timeout: float) -> float:
    host = lab.host(1)
    t0 = time.monotonic()
    while True:
        if daemon.poll() is not None:
            raise RuntimeError(f"the daemon exited:\n{daemon.output()[-3000:]}")
        with contextlib.suppress(Exception):  # not up yet
            doc = node_status(host, PORT)
            masters = sum(1 for i in doc["instances"] if i["state"] == "MASTER")
            if masters == n:
                return time.monotonic() - t0
        if time.monotonic() - t0 > timeout:
            raise TimeoutError(f"not every instance is master after {timeout:g}s")
        time.sleep(0.5)


def rss_kib(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    found = re.search(r"^VmRSS:\s+(\d+)", status, re.MULTILINE)
    return int(found.group(1)) if found else 0


def costs(rows: list[dict[str, Any]], path: str, key: str = "response_loop") -> list[float]:
    """Each request's seconds: differences of the counter between rounds (none when the
    daemon does not export it)."""
    if not any(path in row[key] for row in rows):
        return []
    return [
        rows[k + 1][key].get(path, 0.0) - rows[k][key].get(path, 0.0) for k in range(len(rows) - 1)
    ]


def run(args: argparse.Namespace) -> dict[str, Any]:
    segments = math.ceil(args.instances / VRIDS_PER_SEGMENT)
    with Lab(1, segments=segments) as lab, contextlib.chdir(args.code):
        host = lab.host(1)
        config = lab.tmpdir / "cluster.yaml"
        config.write_text(cluster_yaml(lab.hosts, instances(args.instances)))
        print(f"lab {lab.id}: {args.instances} instances; code from {Path.cwd()}", file=sys.stderr)
        daemon = start_ours(host, config, lab.tmpdir / "state", log_level="warning")
        try:
            took = wait_all_master(lab, daemon, args.instances, timeout=180)
            print(f"every instance master {took:.1f}s after start", file=sys.stderr)
            time.sleep(args.settle)
            rss_before = rss_kib(daemon.pid)
            client = host.spawn(
                [
                    sys.executable,
                    "-u",
                    "-c",
                    CLIENT,
                    str(args.scrapes),
                    str(args.interval),
                    str(PORT),
                ],
                name="scrape-client",
            )
            rc = client.wait(timeout=args.scrapes * (args.interval + 10) + 30)
            rows = [
                json.loads(line) for line in client.output().splitlines() if line.startswith("{")
            ]
            if rc != 0 or len(rows) != args.scrapes + 1:
                raise RuntimeError(f"client failed (exit {rc}):\n{client.output()[-2000:]}")
            alive = daemon.poll() is None
            rss_after = rss_kib(daemon.pid)
        finally:
            daemon.stop(timeout=30)
        problems = [
            line
            for line in daemon.output().splitlines()
            if " ERROR " in line or "Traceback" in line
        ]
    return {
        "instances": args.instances,
        "scrapes": args.scrapes,
        "interval_s": args.interval,
        "metrics_loop_s": costs(rows, "/metrics"),
        "status_loop_s": costs(rows, "/status"),
        # Empty when the daemon does not export these counters (an older one).
        "metrics_cpu_s": costs(rows, "/metrics", "response_loop_cpu"),
        "status_cpu_s": costs(rows, "/status", "response_loop_cpu"),
        "metrics_lag_s": costs(rows, "/metrics", "render_loop_lag"),
        "status_lag_s": costs(rows, "/status", "render_loop_lag"),
        "load_average": os.getloadavg(),
        "metrics_bytes": rows[-1]["metrics_bytes"],
        "status_bytes": rows[0]["status_bytes"],
        "metrics_wall_s": [r["metrics_wall_s"] for r in rows[:-1]],
        "status_wall_s": [r["status_wall_s"] for r in rows[:-1]],
        "daemon_alive": alive,
        "rss_kib": [rss_before, rss_after],
        "daemon_problems": problems[:20],
    }


def _ms(values: list[float]) -> str:
    """p50 / p95 / max in ms, or '-'."""
    if not values:
        return "-"
    ms = [1000 * v for v in values]
    return f"{percentile(ms, 50):.2f} / {percentile(ms, 95):.2f} / {max(ms):.2f}"


def table(result: dict[str, Any]) -> str:
    load = ", ".join(f"{x:.1f}" for x in result["load_average"])
    lines = [
        f"{result['instances']} instances, {result['scrapes']} rounds every "
        f"{result['interval_s']:g} s, load average {load}. Per answer, p50 / p95 / max in ms, "
        "from the daemon's own counters: event-loop time (wall), the loop thread's CPU "
        "time of it, and the worst lateness of a 1 ms loop timer while the answer rendered "
        "off the loop.",
        "| endpoint | n | loop | loop CPU | lag while rendering | bytes | client p50 ms "
        "| loop p95 < 5 ms |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, key in (("/metrics", "metrics"), ("/status", "status")):
        loop = result[f"{key}_loop_s"]
        p95 = 1000 * percentile(loop, 95)
        verdict = ("met" if p95 < TARGET_MS else "MISSED") if key == "metrics" else "-"
        lines.append(
            f"| {name} | {len(loop)} | {_ms(loop)} | {_ms(result[f'{key}_cpu_s'])} "
            f"| {_ms(result[f'{key}_lag_s'])} | {result[f'{key}_bytes']} "
            f"| {1000 * percentile(result[f'{key}_wall_s'], 50):.1f} | {verdict} |"
        )
    before, after = result["rss_kib"]
    lines.append(
        f"Daemon RSS {before / 1024:.1f} MB before the first round, {after / 1024:.1f} MB "
        "after the last."
    )
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--instances", type=int, default=500, help="VRRP instances (<= 500)")
    parser.add_argument("--scrapes", type=int, default=60, help="rounds of /metrics + /status")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between rounds")
    parser.add_argument(
        "--settle", type=float, default=5.0, help="seconds to wait once every instance is master"
    )
    parser.add_argument(
        "--code",
        type=Path,
        default=Path(__file__).resolve().parents[1],
        help="a directory holding the reconciler/ package to run (default: this checkout)",
    )
    parser.add_argument("--json", type=Path, help="also write the raw numbers here")
    args = parser.parse_args(argv)
    args.code = args.code.resolve()
    if args.json is not None:
        args.json = args.json.resolve()
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    reason = netns_unavailable_reason()
    if reason:
        print(f"cannot run: {reason}", file=sys.stderr)
        return 2
    result = run(args)
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(table(result))
    for line in result["daemon_problems"]:
        print(f"daemon: {line}", file=sys.stderr)
    return 0 if result["daemon_alive"] else 1


if __name__ == "__main__":
    sys.exit(main())
