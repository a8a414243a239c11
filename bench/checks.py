#!/usr/bin/env python3
"""Benchmark the check scheduler: 1000 TCP checks on loopback, every second.

From the repository root::

    .venv/bin/python bench/checks.py [--targets 1000] [--duration 20]

A few listening sockets (``--listeners``, on 127.0.0.1, 127.0.0.2, ...) are
served by a separate process that accepts and closes, so its CPU is not
counted. ``--targets`` checks (distinct names, spread over the listeners)
connect to them every ``--interval`` through the real scheduler and prober.
After a warm-up of one interval, it prints:

* the CPU the scheduler process used (user + system, ``getrusage``) as a
  share of one core over the measured wall time (target: at most 10 %);
* the same for bare connects (a minimal callback loop doing the same connects
  at the same rate, no scheduler, no policy), measured right after in the same
  run, and the ratio: on loopback the kernel charges both ends of every TCP
  handshake to the connecting process, so this floor is large, and the ratio
  is steadier than the absolute share on a shared machine;
* the lateness of probe starts against their grid slot: p50, p99, max;
* probes run, failures and skipped slots (a skipped slot is a probe that
  overran its interval).

A benchmark, not a test: CI does not run it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from ipaddress import IPv4Address
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reconciler.adapters.probes import Prober
from reconciler.health.policy import CheckTransition
from reconciler.model.checks import Check, TcpProbe
from reconciler.model.common import CheckState
from reconciler.runtime.checks import CheckJob, CheckScheduler, ProbeRecord

SERVER = r"""
import selectors, socket, sys
sel = selectors.DefaultSelector()
ports = []
for i in range(int(sys.argv[1])):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((f"127.0.0.{i + 1}", 0))
    s.listen(4096)
    s.setblocking(False)
    sel.register(s, selectors.EVENT_READ)
    ports.append(f"127.0.0.{i + 1}:{s.getsockname()[1]}")
print(" ".join(ports), flush=True)
while True:
    for key, _ in sel.select():
        while True:
            try:
                conn, _ = key.fileobj.accept()
            except BlockingIOError:
                break
            conn.close()
"""


def cpu_seconds() -> tuple[float, float]:
    """(user, system) CPU seconds of this process, all threads."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime, usage.ru_stime


def percentile(sorted_values: list[float], fraction: float) -> float:
    index = min(len(sorted_values) - 1, max(0, round(fraction * (len(sorted_values) - 1))))
    return sorted_values[index]


@dataclass
class Measured:
    wall_s: float
    user_s: float
    system_s: float
    probes: int

    @property
    def cpu_s(self) -> float:
        return self.user_s + self.system_s

    @property
    def share_pct(self) -> float:
        return 100 * self.cpu_s / self.wall_s

    def line(self) -> str:
        return (
            f"{self.cpu_s:.2f} s CPU (user {self.user_s:.2f} s, system {self.system_s:.2f} s)"
            f" in {self.wall_s:.1f} s = {self.share_pct:.1f} % of one core,"
            f" {1e6 * self.cpu_s / max(1, self.probes):.0f} us per probe"
        )


async def measure(duration_s: float, probes: Callable[[], int]) -> Measured:
    n0, wall0, (user0, sys0) = probes(), time.monotonic(), cpu_seconds()
    await asyncio.sleep(duration_s)
    n1, wall1, (user1, sys1) = probes(), time.monotonic(), cpu_seconds()
    return Measured(wall1 - wall0, user1 - user0, sys1 - sys0, n1 - n0)


async def bare_connects(
    targets: list[tuple[IPv4Address, int]], count: int, interval_s: float, duration_s: float
) -> Measured:
    """The floor: the same connects at the same rate, from a minimal callback loop."""
    loop = asyncio.get_running_loop()
    done = 0
    stopping = False

    def connect(target: tuple[IPv4Address, int]) -> None:
        nonlocal done
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM | socket.SOCK_NONBLOCK)
        sock.connect_ex((str(target[0]), target[1]))
        fd = sock.fileno()

        def writable() -> None:
            nonlocal done
            loop.remove_writer(fd)
            sock.close()
            done += 1

        loop.add_writer(fd, writable)

    def tick(batch: int, when: float) -> None:
        if stopping:
            return
        for i in range(batch, count, 100):
            connect(targets[i % len(targets)])
        loop.call_at(when + interval_s, tick, batch, when + interval_s)

    start = loop.time()
    for batch in range(100):  # 100 phases, like the scheduler's 10 ms quanta
        when = start + batch * interval_s / 100
        loop.call_at(when, tick, batch, when)
    await asyncio.sleep(interval_s)
    result = await measure(duration_s, lambda: done)
    stopping = True
    await asyncio.sleep(0.1)
    return result


async def run(args: argparse.Namespace) -> int:
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(args.listeners)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        endpoints = [e.rpartition(":") for e in server.stdout.readline().split()]
        targets = [(IPv4Address(host), int(port)) for host, _, port in endpoints]
        interval = timedelta(seconds=args.interval)
        jobs = [
            CheckJob(
                Check(
                    name=f"tcp-{i:04d}",
                    probe=TcpProbe(None, None),
                    interval=interval,
                    timeout=timedelta(seconds=1),
                ),
                *targets[i % len(targets)],
            )
            for i in range(args.targets)
        ]
        lateness_s: list[float] = []  # floats, not records: nothing for the GC to walk
        failures = 0
        transitions: list[CheckTransition] = []
        measuring = False

        def on_probe(record: ProbeRecord) -> None:
            nonlocal failures
            if measuring:
                lateness_s.append(record.lateness_s)
                failures += not record.result.ok

        scheduler = CheckScheduler(
            transitions.append,
            prober=Prober(max_concurrent=args.max_concurrent),
            on_probe=on_probe,
        )
        scheduler.start(jobs)
        await asyncio.sleep(args.interval + 0.5)  # every check has run once
        up = sum(1 for t in transitions if t.new is CheckState.UP)
        measuring = True
        skipped_before = scheduler.skipped_slots
        ours = await measure(args.duration, lambda: len(lateness_s))
        measuring = False
        skipped = scheduler.skipped_slots - skipped_before
        await scheduler.stop()
        floor = await bare_connects(targets, args.targets, args.interval, args.duration)
    finally:
        server.terminate()
        server.wait(5)

    lateness_ms = sorted(x * 1000 for x in lateness_s)
    expected = args.targets * args.duration / args.interval
    print(f"checks: {args.targets} TCP targets on {args.listeners} loopback listeners,")
    print(f"        every {args.interval:g} s, measured for {ours.wall_s:.1f} s after warm-up")
    print(f"up after warm-up: {up}/{args.targets}")
    print(f"probes: {len(lateness_s)} (expected ~{expected:.0f}), failures: {failures}")
    print(f"skipped slots: {skipped}")
    verdict = "ok" if ours.share_pct <= 10 else "OVER TARGET"
    print(f"scheduler + prober: {ours.line()}  (target <= 10 %: {verdict})")
    print(f"bare connects:      {floor.line()}")
    print(f"ratio to bare connects: {ours.cpu_s / floor.cpu_s:.2f}")
    if lateness_ms:
        print(
            "lateness of probe starts: "
            f"p50 {statistics.median(lateness_ms):.2f} ms, "
            f"p99 {percentile(lateness_ms, 0.99):.2f} ms, "
            f"max {lateness_ms[-1]:.2f} ms"
        )
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}")
    return 0 if ours.share_pct <= 10 and failures == 0 else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--targets", type=int, default=1000)
    parser.add_argument("--listeners", type=int, default=8)
    parser.add_argument("--interval", type=float, default=1.0, help="seconds")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds measured")
    parser.add_argument("--max-concurrent", type=int, default=256)
    return asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
