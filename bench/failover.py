#!/usr/bin/env python3
"""Failover timing and resource use of our VRRP speaker against keepalived, same lab, same run.

As root, from the repository root::

    .venv/bin/python bench/failover.py [--only timing|resources] [--intervals 1,0.1,0.01]
        [--repeats 20] [--repeats-1s 3] [--idle 60] [--instances 1,100,500]
        [--window 30] [--json FILE]

One netlab (2 hosts, 2 segments) serves the whole run. h1 has priority 150,
h2 priority 100, VRRPv3, one VIP, preempt on; both speakers are started the
same way (``reconciler.testing.vrrp_nodes``) and run one pair at a time. Ours
runs from a copy of ``reconciler/`` taken when the run starts, so that edits to
the checkout during the run do not mix versions (the table names the commit;
the JSON has the copy's SHA-256).

What is measured (all times are ``time.monotonic()``; VIP events are the
netlink RTM_NEWADDR/RTM_DELADDR stamps of the lab's watchers, adverts are
kernel receive stamps (SO_TIMESTAMPNS) of an AF_PACKET socket on each host's
bridge port, i.e. the moment the frame left the host):

* crash: SIGKILL of h1's process group -> VIP on h2, minus its RFC instant,
  Master_Down_Interval(100) after h1's LAST advert on the wire;
* graceful: SIGTERM to h1 -> VIP on h2, minus Skew_Time(100) after h1's
  priority-0 advert;
* preempt: restart of h1 -> VIP back on h1. Its RFC instant is start-up (to
  BACKUP) + Master_Down_Interval(150), and start-up cannot be observed the
  same way for both speakers, so the main row is start -> VIP minus MDI(150)
  (start-up included), from both restarts (after the graceful stop and after
  the crash). After the crash h1 restarts with the VIP still configured and
  both speakers remove it: keepalived just before entering BACKUP, so for it
  the RTM_DELADDR of that stale VIP marks start-up and VIP - (removal +
  MDI(150)) is the timer's lateness; a speaker that removes it only after
  starting its timer (wire row < 0) gets "n/a" there (see NOTES);
* wire rows: the backup's first advert instead of its VIP (timer accuracy
  without the address write);
* idle: VIP additions on h2 during ``--idle`` seconds of steady state
  (spurious takeovers), and the spacing of h1's adverts (timer lateness);
* resources (1 s adverts, 1/100/500 instances; 500 = VRIDs 1..250 on eth0 and
  on eth1): CPU from /proc/PID/task/*/schedstat (ns on CPU) summed over every
  thread of every process in the speaker's process group, plus the run time of
  the BPF programs those processes hold (our backup's repeat filter runs in the
  receiving softirq, outside any of its threads; counted with BPF stats enabled
  for the run, from /proc/PID/fdinfo), over ``--window``
  seconds that start ``--settle`` seconds after all VIPs are on the master;
  VmRSS and PSS (smaps_rollup) summed over the group at the end of the window.

Percentiles are nearest-rank (p95 of 3 samples is the max). The table shows
ours, keepalived, ours/keepalived (of p95 for timing rows, of the value for
resource rows) and the targets of issue 4: within +2 ms of the RFC instants at
p95, no spurious takeover, CPU at most 1.5x keepalived at 500 instances, RSS at
most 60 MB. Progress goes to stderr, the table to stdout.

A benchmark, not a test: CI does not run it.
"""

from __future__ import annotations

import argparse
import compileall
import contextlib
import hashlib
import itertools
import json
import math
import os
import platform
import random
import re
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Interface
from pathlib import Path
from typing import Any, TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reconciler.adapters.repeat_filter import FilterUnavailable, enable_stats
from reconciler.testing.clusters import many_instances
from reconciler.testing.netlab import Host, Lab, LabProcess, netns_unavailable_reason
from reconciler.testing.netlab.plumbing import call_in_netns
from reconciler.testing.vrrp_nodes import (
    KEEPALIVED,
    Instance,
    cluster_yaml,
    keepalived_available,
    keepalived_conf,
    start_keepalived,
    start_ours,
)
from reconciler.vrrp.timers import master_down_interval, skew_time

SPEAKERS = ("ours", "keepalived")
HI_PRIO, LO_PRIO = 150, 100
TIMING_TARGET_MS = 2.0
CPU_RATIO_TARGET = 1.5
RSS_TARGET_MB = 60.0

_T = TypeVar("_T")
_T0 = time.monotonic()


def progress(msg: str) -> None:
    print(f"[{time.monotonic() - _T0:7.1f}s] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- statistics


@dataclass(frozen=True)
class Stats:
    n: int
    p50: float
    p95: float
    max: float
    min: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Stats | None:
        if not values:
            return None
        v = sorted(values)
        return cls(len(v), _rank(v, 0.50), _rank(v, 0.95), v[-1], v[0])


def _rank(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile."""
    k = max(1, math.ceil(q * len(sorted_values)))
    return sorted_values[k - 1]


# --------------------------------------------------------------------------- advert capture

ETH_P_ALL = 0x0003
ETH_P_IP = 0x0800
PACKET_OUTGOING = 4
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)


@dataclass(frozen=True)
class Advert:
    t: float  # monotonic time of the kernel receive stamp on the bridge port
    port: str
    src: IPv4Address
    vrid: int
    priority: int
    interval_cs: int


class AdvertCapture:
    """VRRP adverts as they leave each host: AF_PACKET sockets on the bridge ports.

    Only frames the bridge receives from the host on that port are kept (not the
    ones it floods to the host), so each advert is seen once, stamped by the
    kernel when the host's veth handed it over.
    """

    def __init__(self, lab: Lab, ports: Sequence[str]) -> None:
        self._cond = threading.Condition()
        self.adverts: list[Advert] = []
        self._socks: list[socket.socket] = []
        self._wake = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
        try:
            for port in ports:
                self._socks.append(call_in_netns(lab.bridge.netns, lambda p=port: self._open(p)))
        except BaseException:
            self.close()
            raise
        self._thread = threading.Thread(target=self._run, name="advert-capture", daemon=True)
        self._thread.start()

    @staticmethod
    def _open(port: str) -> socket.socket:
        # ETH_P_ALL: a bridge port's rx_handler consumes every frame before the
        # protocol-specific (ETH_P_IP) packet handlers would see it; only the
        # taps run first.
        s = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_ALL))
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
            s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            s.bind((port, ETH_P_ALL))
            s.setblocking(False)
        except BaseException:
            s.close()
            raise
        return s

    def _run(self) -> None:
        poller = select.poll()
        for s in self._socks:
            poller.register(s.fileno(), select.POLLIN)
        poller.register(self._wake, select.POLLIN)
        by_fd = {s.fileno(): s for s in self._socks}
        while True:
            for fd, _ev in poller.poll():
                if fd == self._wake:
                    return
                sock = by_fd[fd]
                while True:
                    try:
                        data, anc, _fl, addr = sock.recvmsg(2048, 64)
                    except BlockingIOError:
                        break
                    except OSError:
                        return
                    self._take(data, anc, addr)

    def _take(self, data: bytes, anc: list[tuple[int, int, bytes]], addr: Any) -> None:
        if addr[1] != ETH_P_IP or addr[2] == PACKET_OUTGOING or len(data) < 20 or data[9] != 112:
            return
        ihl = (data[0] & 0x0F) * 4
        vrrp = data[ihl:]
        if len(vrrp) < 8:
            return
        stamp = None
        for level, kind, payload in anc:
            if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(payload) >= 16:
                sec, nsec = struct.unpack("@qq", payload[:16])
                stamp = time.monotonic() - (time.time() - (sec + nsec * 1e-9))
        if stamp is None:
            stamp = time.monotonic()
        version = vrrp[0] >> 4
        interval = ((vrrp[4] & 0x0F) << 8 | vrrp[5]) if version == 3 else vrrp[5] * 100
        adv = Advert(stamp, addr[0], IPv4Address(data[12:16]), vrrp[1], vrrp[2], interval)
        with self._cond:
            self.adverts.append(adv)
            self._cond.notify_all()

    def find(
        self,
        vrid: int,
        src: IPv4Address,
        *,
        after: float = -math.inf,
        before: float = math.inf,
        priority: Callable[[int], bool] = lambda p: True,
        last: bool = False,
        timeout: float = 1.0,
    ) -> Advert | None:
        """The first (or last) matching advert in (after, before); waits up to ``timeout``
        for a first one to arrive (the capture thread may be a little behind)."""

        def match(a: Advert) -> bool:
            return a.vrid == vrid and a.src == src and after < a.t < before and priority(a.priority)

        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                hits = [a for a in self.adverts if match(a)]
                if hits:
                    return hits[-1] if last else hits[0]
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._cond.wait(remaining)

    def between(self, vrid: int, src: IPv4Address, t_a: float, t_b: float) -> list[Advert]:
        with self._cond:
            return [
                a for a in self.adverts if a.vrid == vrid and a.src == src and t_a <= a.t <= t_b
            ]

    def trim(self, older_than: float) -> None:
        with self._cond:
            self.adverts = [a for a in self.adverts if a.t >= older_than]

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.eventfd_write(self._wake, 1)
        thread = getattr(self, "_thread", None)
        if thread is not None:
            thread.join(5)
        for s in self._socks:
            s.close()
        with contextlib.suppress(OSError):
            os.close(self._wake)


# --------------------------------------------------------------------------- /proc readers


def group_pids(pgid: int) -> list[int]:
    """Live (non-zombie) processes of process group ``pgid``."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] != "Z" and int(fields[2]) == pgid:
            pids.append(int(entry))
    return sorted(pids)


@dataclass(frozen=True)
class CpuSnapshot:
    t: float
    run_ns: dict[int, int]  # tid -> ns on CPU
    ticks: dict[int, tuple[int, int]]  # pid -> (utime, stime) in clock ticks
    bpf_ns: dict[tuple[int, int], int]  # (pid, prog id) -> ns its BPF programs ran


def bpf_run_ns(pid: int) -> dict[tuple[int, int], int]:
    """Run time of the BPF programs process ``pid`` holds (our repeat filter), from
    /proc/PID/fdinfo; counted by the kernel only while stats are enabled (main()).
    The program runs in the receiving softirq, outside any thread's schedstat of the
    receiver, so it is added to the speaker's CPU explicitly."""
    out: dict[tuple[int, int], int] = {}
    with contextlib.suppress(OSError):
        for fd in os.listdir(f"/proc/{pid}/fdinfo"):
            with contextlib.suppress(OSError):
                info = Path(f"/proc/{pid}/fdinfo/{fd}").read_text()
                if "prog_id:" not in info:
                    continue
                fields = dict(line.split(":", 1) for line in info.splitlines() if ":" in line)
                prog = int(fields["prog_id"])
                out[(pid, prog)] = int(fields.get("run_time_ns", "0"))
    return out


def cpu_snapshot(pgid: int) -> CpuSnapshot:
    run: dict[int, int] = {}
    ticks: dict[int, tuple[int, int]] = {}
    bpf: dict[tuple[int, int], int] = {}
    for pid in group_pids(pgid):
        bpf.update(bpf_run_ns(pid))
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            ticks[pid] = (int(fields[11]), int(fields[12]))
            for tid in os.listdir(f"/proc/{pid}/task"):
                with contextlib.suppress(OSError):
                    run[int(tid)] = int(
                        Path(f"/proc/{pid}/task/{tid}/schedstat").read_text().split()[0]
                    )
    return CpuSnapshot(time.monotonic(), run, ticks, bpf)


def cpu_between(a: CpuSnapshot, b: CpuSnapshot) -> dict[str, float]:
    """CPU seconds used between two snapshots of the same group (threads present in b;
    one that started after a counts from zero)."""
    run_s = sum(ns - a.run_ns.get(tid, 0) for tid, ns in b.run_ns.items()) / 1e9
    filter_s = sum(ns - a.bpf_ns.get(key, 0) for key, ns in b.bpf_ns.items()) / 1e9
    hz = os.sysconf("SC_CLK_TCK")
    user = sum(u - a.ticks.get(p, (0, 0))[0] for p, (u, _s) in b.ticks.items()) / hz
    system = sum(s - a.ticks.get(p, (0, 0))[1] for p, (_u, s) in b.ticks.items()) / hz
    return {
        "cpu_s": run_s + filter_s,  # threads on CPU, plus the kernel filter's runs
        "filter_s": filter_s,
        "window_s": b.t - a.t,
        "user_s": user,
        "system_s": system,
    }


def _field(text: str, key: str) -> int:
    """The number after ``key:`` in a /proc status-like file (kB for sizes)."""
    m = re.search(rf"^{key}:\s+(\d+)", text, re.MULTILINE)
    return int(m.group(1)) if m else 0


def memory(pgid: int) -> dict[str, Any]:
    procs = []
    for pid in group_pids(pgid):
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        try:
            rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
            pss: int | None = _field(rollup, "Pss")
        except OSError:
            pss = None
        name = re.search(r"^Name:\s+(\S+)", status, re.MULTILINE)
        procs.append(
            {
                "pid": pid,
                "name": name.group(1) if name else "?",
                "rss_kb": _field(status, "VmRSS"),
                "rss_anon_kb": _field(status, "RssAnon"),
                "rss_file_kb": _field(status, "RssFile"),
                "pss_kb": pss,
                "threads": _field(status, "Threads"),
            }
        )
    return {
        "rss_kb": sum(p["rss_kb"] for p in procs),
        "pss_kb": sum(p["pss_kb"] or 0 for p in procs)
        if all(p["pss_kb"] is not None for p in procs)
        else None,
        "processes": procs,
    }


def port_tx_packets(lab: Lab, ports: Sequence[str]) -> int:
    """Frames the hosts sent through these bridge ports (the bridge's rx counters)."""
    total = 0
    for port in ports:
        out = lab.bridge.ip("-s", "-j", "link", "show", port).stdout
        total += int(json.loads(out)[0]["stats64"]["rx"]["packets"])
    return total


# --------------------------------------------------------------------------- a pair of speakers


TRANSITION_RE = re.compile(r": (INITIALIZE|BACKUP|MASTER|FAULT) -> (\w+) \(([^)]*)\)")
PROBLEM_RE = re.compile(r" (WARNING|ERROR|CRITICAL) |Traceback|Exception")


class Pair:
    """One speaker kind on h1 (priority 150) and h2 (priority 100)."""

    def __init__(self, lab: Lab, speaker: str, instances: tuple[Instance, ...], tag: str) -> None:
        self.lab = lab
        self.speaker = speaker
        self.instances = instances
        self.hi, self.lo = lab.host(1), lab.host(2)
        self.workdir = lab.tmpdir / tag
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.procs: dict[str, LabProcess] = {}
        self.history: list[tuple[str, LabProcess]] = []  # every process started, for logs
        if speaker == "ours":
            self.config = self.workdir / "cluster.yaml"
            self.config.write_text(cluster_yaml(lab.hosts, instances))
        else:
            self.ka_conf = {h.name: keepalived_conf(h, lab.hosts, instances) for h in lab.hosts}

    def start(self, host: Host) -> float:
        t0 = time.monotonic()
        if self.speaker == "ours":
            proc = start_ours(host, self.config, self.workdir / f"state-{host.name}")
        else:
            proc = start_keepalived(host, self.ka_conf[host.name], self.workdir / f"ka-{host.name}")
        self.procs[host.name] = proc
        self.history.append((host.name, proc))
        return t0

    def kill(self, host: Host) -> float:
        t0 = time.monotonic()
        self.procs[host.name].kill()
        return t0

    def term(self, host: Host) -> float:
        t0 = time.monotonic()
        self.procs[host.name].signal(signal.SIGTERM)
        return t0

    def stop(self, host: Host, timeout: float = 10.0) -> None:
        proc = self.procs.get(host.name)
        if proc is not None:
            proc.stop(timeout)

    def stop_all(self, timeout: float = 10.0) -> None:
        for host in (self.lo, self.hi):  # the backup first: no takeover on the way out
            self.stop(host, timeout)

    def vips(self) -> list[IPv4Interface]:
        return [v for i in self.instances for v in i.vips]  # type: ignore[misc]

    def flush_vips(self) -> None:
        """Remove VIPs a killed speaker left behind (as after a reboot)."""
        for host in (self.hi, self.lo):
            host.watcher.sync()
            by_if: list[str] = []
            for inst in self.instances:
                for vip in inst.vips:
                    if host.watcher.is_present(vip, ifname=inst.interface):
                        by_if.append(f"addr del {vip} dev {inst.interface}")
            if by_if:
                subprocess.run(
                    ["ip", "-n", host.netns, "-force", "-batch", "-"],
                    input="\n".join(by_if) + "\n",
                    capture_output=True,
                    text=True,
                    check=False,
                    timeout=60,
                )

    def logs(self) -> dict[str, Any]:
        """What the speakers logged: transitions (ours) and problem lines."""
        out: dict[str, Any] = {}
        for host, proc in self.history:
            text = proc.output()
            entry = out.setdefault(
                host, {"starts": 0, "transitions": Counter(), "problems": [], "exit": []}
            )
            entry["starts"] += 1
            entry["exit"].append(proc.returncode)
            if self.speaker == "ours":
                for m in TRANSITION_RE.finditer(text):
                    entry["transitions"][f"{m.group(1)}->{m.group(2)} ({m.group(3)})"] += 1
                for line in text.splitlines():
                    if PROBLEM_RE.search(line):
                        entry["problems"].append(line[-300:])
            else:
                for line in text.splitlines():
                    if "Entering MASTER STATE" in line:
                        entry["transitions"]["->MASTER"] += 1
                    elif "Entering BACKUP STATE" in line:
                        entry["transitions"]["->BACKUP"] += 1
                    if re.search(r"error|fail|invalid|unknown keyword", line, re.IGNORECASE):
                        entry["problems"].append(line[-300:])
        for entry in out.values():
            entry["transitions"] = dict(entry["transitions"])
            entry["problem_count"] = len(entry["problems"])
            entry["problems"] = entry["problems"][:50]
        return out


# --------------------------------------------------------------------------- timing


@dataclass
class TimingCell:
    speaker: str
    interval_s: float
    samples: dict[str, list[float]] = field(default_factory=dict)  # metric -> ms values
    failures: list[str] = field(default_factory=list)
    idle: dict[str, Any] = field(default_factory=dict)
    logs: dict[str, Any] = field(default_factory=dict)
    unexpected_backup_vip_adds: int = 0

    def add(self, metric: str, value_s: float) -> None:
        self.samples.setdefault(metric, []).append(value_s * 1000.0)


def run_timing_cell(
    lab: Lab,
    cap: AdvertCapture,
    speaker: str,
    interval_s: float,
    repeats: int,
    idle_s: float,
    cell_no: int,
    rng: random.Random,
) -> TimingCell:
    cell = TimingCell(speaker, interval_s)
    cs = round(interval_s * 100)
    mdi_lo = float(master_down_interval(LO_PRIO, cs))
    mdi_hi = float(master_down_interval(HI_PRIO, cs))
    skew_lo = float(skew_time(LO_PRIO, cs))
    vrid = 51 + cell_no
    vip = lab.segments[0].free_ipv4(cell_no)
    inst = Instance(
        f"VI_{vrid}", vrid, (vip,), {"h1": HI_PRIO, "h2": LO_PRIO}, advert_interval_s=interval_s
    )
    pair = Pair(lab, speaker, (inst,), f"timing-{speaker}-{cs}cs")
    hi, lo = pair.hi, pair.lo
    hi_ip, lo_ip = hi.ipv4, lo.ipv4
    label = f"{speaker} adv {interval_s:g}s"

    def pause() -> None:
        time.sleep(3 * interval_s + rng.uniform(0, interval_s))

    def bring_up() -> None:
        t0 = pair.start(hi)
        hi.watcher.wait_for(vip, timeout=mdi_hi + 15, after=t0)
        pair.start(lo)
        time.sleep(1.5 + 3 * interval_s)  # lo started and follows hi
        if lo.watcher.is_present(vip):
            raise RuntimeError(f"{label}: both hosts hold {vip} after start")

    expected_adds = 0
    t_cell = time.monotonic()
    try:
        bring_up()
        for rep in range(repeats):
            try:
                # -- graceful stop of the master: priority 0, takeover after Skew_Time
                pause()
                t0 = pair.term(hi)
                t_vip = lo.watcher.wait_for(vip, after=t0, timeout=mdi_lo + 5)
                expected_adds += 1
                p0 = cap.find(vrid, hi_ip, after=t0, priority=lambda p: p == 0)
                pair.procs["h1"].wait(15)
                pair.stop(hi)
                if p0 is None:
                    cell.failures.append(f"rep {rep}: no priority-0 advert seen")
                else:
                    cell.add("graceful_vip", t_vip - (p0.t + skew_lo))
                    cell.add("sigterm_to_p0", p0.t - t0)
                    first = cap.find(vrid, lo_ip, after=p0.t)
                    if first is not None:
                        cell.add("graceful_wire", first.t - (p0.t + skew_lo))
                cell.add("sigterm_to_vip", t_vip - t0)

                # -- return after the graceful stop (no VIP left on h1)
                t0 = pair.start(hi)
                t_back = hi.watcher.wait_for(vip, after=t0, timeout=mdi_hi + 15)
                lo.watcher.wait_for(vip, present=False, after=t0, timeout=5)
                cell.add("start_to_vip", t_back - t0 - mdi_hi)

                # -- crash of the master: takeover Master_Down_Interval after its last advert
                pause()
                t0 = pair.kill(hi)
                t_vip = lo.watcher.wait_for(vip, after=t0, timeout=mdi_lo + 5)
                expected_adds += 1
                last = cap.find(
                    vrid, hi_ip, before=t_vip, priority=lambda p: p > 0, last=True, timeout=0.2
                )
                if last is None or last.t < t0 - 2 * interval_s - 0.05:
                    cell.failures.append(f"rep {rep}: master's last advert not seen")
                else:
                    cell.add("crash_vip", t_vip - (last.t + mdi_lo))
                    first = cap.find(vrid, lo_ip, after=last.t)
                    if first is not None:
                        cell.add("crash_wire", first.t - (last.t + mdi_lo))
                cell.add("kill_to_vip", t_vip - t0)

                # -- return after the crash: start-up = removal of the stale VIP
                hi.watcher.sync()
                stale = hi.watcher.is_present(vip)
                t0 = pair.start(hi)
                if stale:
                    t_rm = hi.watcher.wait_for(vip, present=False, after=t0, timeout=15)
                    t_back = hi.watcher.wait_for(vip, after=t_rm, timeout=mdi_hi + 5)
                    cell.add("startup", t_rm - t0)
                    cell.add("preempt_vip", t_back - (t_rm + mdi_hi))
                    first = cap.find(vrid, hi_ip, after=t0, priority=lambda p: p > 0)
                    if first is not None:
                        cell.add("preempt_wire", first.t - (t_rm + mdi_hi))
                else:
                    cell.failures.append(f"rep {rep}: no stale VIP on h1 after the crash")
                    t_back = hi.watcher.wait_for(vip, after=t0, timeout=mdi_hi + 15)
                t_rel = lo.watcher.wait_for(vip, present=False, after=t0, timeout=5)
                cell.add("start_to_vip", t_back - t0 - mdi_hi)
                cell.add("release_lag", t_rel - t_back)
                progress(
                    f"{label} rep {rep + 1}/{repeats}:"
                    f" crash {_last(cell, 'crash_vip')} graceful {_last(cell, 'graceful_vip')}"
                    f" preempt {_last(cell, 'preempt_vip')} ms vs RFC;"
                    f" start-up {_last(cell, 'startup')} ms"
                )
            except TimeoutError as exc:
                cell.failures.append(f"rep {rep}: {exc}")
                progress(f"{label} rep {rep + 1}: TIMEOUT {exc}; restarting the pair")
                pair.stop_all()
                pair.flush_vips()
                bring_up()
            cap.trim(time.monotonic() - 60)

        # -- idle: spurious takeovers and advert spacing
        if idle_s > 0:
            time.sleep(max(3 * interval_s, 1.0))
            cpu_a = {h.name: cpu_snapshot(pair.procs[h.name].pgid) for h in (hi, lo)}
            t_a = time.monotonic()
            progress(f"{label}: idle for {idle_s:g}s")
            time.sleep(idle_s)
            t_b = time.monotonic()
            cpu_b = {h.name: cpu_snapshot(pair.procs[h.name].pgid) for h in (hi, lo)}
            adds = [
                e.timestamp
                for e in lo.watcher.events(vip)
                if e.kind == "new" and not e.synthetic and t_a <= e.timestamp <= t_b
            ]
            drops = [
                e.timestamp
                for e in hi.watcher.events(vip)
                if e.kind == "del" and not e.synthetic and t_a <= e.timestamp <= t_b
            ]
            sent = cap.between(vrid, hi_ip, t_a, t_b)
            gaps = [(b.t - a.t) * 1000 for a, b in itertools.pairwise(sent)]
            gap_stats = Stats.of(gaps)
            cell.idle = {
                "seconds": t_b - t_a,
                "backup_vip_additions": len(adds),
                "master_vip_removals": len(drops),
                "master_adverts": len(sent),
                "advert_gap_ms": None
                if gap_stats is None
                else {
                    "p50": gap_stats.p50,
                    "p99": _rank(sorted(gaps), 0.99),
                    "max": gap_stats.max,
                    "min": gap_stats.min,
                },
                "cpu": {h: cpu_between(cpu_a[h], cpu_b[h]) for h in ("h1", "h2")},
            }
            g = cell.idle["advert_gap_ms"] or {}
            progress(
                f"{label}: idle {len(adds)} takeover(s), adverts {len(sent)},"
                f" gap p50 {g.get('p50', 0):.2f} p99 {g.get('p99', 0):.2f}"
                f" max {g.get('max', 0):.2f} ms"
            )
    finally:
        t_end = time.monotonic()
        all_adds = [
            e
            for e in lo.watcher.events(vip)
            if e.kind == "new" and not e.synthetic and t_cell <= e.timestamp <= t_end
        ]
        cell.unexpected_backup_vip_adds = (
            len(all_adds) - expected_adds - cell.idle.get("backup_vip_additions", 0)
        )
        pair.stop_all()
        pair.flush_vips()
        cell.logs = pair.logs()
        cap.trim(time.monotonic())
    return cell


def _last(cell: TimingCell, metric: str) -> str:
    values = cell.samples.get(metric)
    return f"{values[-1]:+.2f}" if values else "-"


# --------------------------------------------------------------------------- resources


def resource_instances(n: int) -> tuple[Instance, ...]:
    return many_instances(n, {"h1": HI_PRIO, "h2": LO_PRIO})


def run_resource_cell(
    lab: Lab, speaker: str, n: int, settle_s: float, window_s: float
) -> dict[str, Any]:
    instances = resource_instances(n)
    segments = sorted({i.interface for i in instances})
    if len(segments) > len(lab.segments):
        raise RuntimeError(f"{n} instances need {len(segments)} segments")
    pair = Pair(lab, speaker, instances, f"res-{speaker}-{n}")
    hi, lo = pair.hi, pair.lo
    vips = pair.vips()
    result: dict[str, Any] = {"speaker": speaker, "instances": n}
    label = f"{speaker} N={n}"
    try:
        t0 = pair.start(hi)
        time.sleep(0.5)  # the backup after the master (reference: start race)
        pair.start(lo)
        stamps = [hi.watcher.wait_for(v, timeout=120, after=t0) for v in vips]
        t_all = max(stamps)
        result["start_to_all_vips_s"] = t_all - t0
        result["first_to_last_vip_s"] = t_all - min(stamps)
        progress(f"{label}: all VIPs on the master {t_all - t0:.2f}s after start")
        time.sleep(settle_s)
        hi_ports = [hi.interface(s).bridge_port for s in segments]
        snap_a = {h.name: cpu_snapshot(pair.procs[h.name].pgid) for h in (hi, lo)}
        pk_a = port_tx_packets(lab, hi_ports)
        time.sleep(window_s)
        snap_b = {h.name: cpu_snapshot(pair.procs[h.name].pgid) for h in (hi, lo)}
        pk_b = port_tx_packets(lab, hi_ports)
        t_b = time.monotonic()
        for role, h in (("master", hi), ("backup", lo)):
            cpu = cpu_between(snap_a[h.name], snap_b[h.name])
            cpu["percent_of_core"] = 100 * cpu["cpu_s"] / cpu["window_s"]
            cpu["us_per_instance_s"] = 1e6 * cpu["cpu_s"] / cpu["window_s"] / n
            result[role] = {"cpu": cpu, "memory": memory(pair.procs[h.name].pgid)}
        result["master_pkts_per_s"] = (pk_b - pk_a) / (snap_b["h1"].t - snap_a["h1"].t)
        vipset = {v.ip for v in vips}
        result["backup_vip_additions"] = sum(
            1
            for e in lo.watcher.events()
            if e.kind == "new" and e.address in vipset and t0 <= e.timestamp <= t_b
        )
        m, b = result["master"], result["backup"]
        progress(
            f"{label}: CPU master {m['cpu']['percent_of_core']:.3f}% backup"
            f" {b['cpu']['percent_of_core']:.3f}% of a core (backup's kernel filter"
            f" {100 * b['cpu']['filter_s'] / b['cpu']['window_s']:.4f}%); RSS master"
            f" {m['memory']['rss_kb'] / 1024:.1f} MB; {result['master_pkts_per_s']:.1f} pkt/s;"
            f" backup VIP additions {result['backup_vip_additions']}"
        )
    finally:
        pair.stop_all(timeout=30)
        pair.flush_vips()
        result["logs"] = pair.logs()
    return result


# --------------------------------------------------------------------------- the table

TIMING_ROWS = [
    # metric, label, target: "p95" (p95 <= +2 ms), "marker" (the same, where the start-up
    # marker is valid: see NOTES), "startup" (RFC instant includes start-up), or None
    ("crash_vip", "crash: VIP on backup - (last master advert + MDI(100))", "p95"),
    ("crash_wire", "  wire: backup's 1st advert - (last advert + MDI(100))", None),
    ("kill_to_vip", "  raw: SIGKILL -> VIP on backup", None),
    ("graceful_vip", "graceful: VIP on backup - (prio-0 advert + Skew(100))", "p95"),
    ("graceful_wire", "  wire: backup's 1st advert - (prio-0 advert + Skew)", None),
    ("sigterm_to_p0", "  SIGTERM -> prio-0 advert on the wire", None),
    ("sigterm_to_vip", "  raw: SIGTERM -> VIP on backup", None),
    ("start_to_vip", "preempt: start of h1 -> VIP back on h1, minus MDI(150)", "startup"),
    ("startup", "  start-up marker: start -> stale VIP removed", None),
    ("preempt_vip", "  VIP back on h1 - (stale VIP removed + MDI(150))", "marker"),
    ("preempt_wire", "  wire: h1's 1st advert - (stale VIP removed + MDI(150))", None),
    ("release_lag", "  VIP gone from h2 - VIP on h1 (< 0: h2 first)", None),
]

NOTES = """Notes:
- crash/graceful: the RFC instant is taken from h1's adverts as captured on its bridge port
  (kernel stamps); "wire" rows end at the backup's first advert instead of its VIP.
- preempt: the RFC instant is start-up (process start -> BACKUP) + MDI(150). Start-up is
  not observable the same way for both speakers, so the first preempt row reports
  start -> VIP minus MDI(150), which includes start-up. The stale-VIP removal (h1 restarts
  after the crash with the VIP still configured) marks BACKUP entry for keepalived (it
  removes VIPs just before entering BACKUP; its wire row is ~+0.2 ms). A speaker whose
  wire row is negative removes the stale VIP only after its Master_Down_Timer started, so
  for it the marker row is only a lower bound: met = "n/a".
- targets (issue 4): within +2 ms of the RFC instants at p95; no spurious takeover; CPU at
  most 1.5x keepalived at 500 instances; RSS at most 60 MB."""


@dataclass
class Row:
    what: str
    adv: str
    ours: Stats | float | None
    ka: Stats | float | None
    unit: str
    target: str = ""
    met: str = ""
    ratio: float | None = None
    compare: bool = True  # whether ours/keepalived means anything for this row


def _p95(v: Stats | float | None) -> float | None:
    if isinstance(v, Stats):
        return v.p95
    return v


def build_rows(
    timing: list[TimingCell], resources: list[dict[str, Any]], idle_s: float
) -> list[Row]:
    rows: list[Row] = []
    intervals = sorted({c.interval_s for c in timing}, reverse=True)
    cells = {(c.speaker, c.interval_s): c for c in timing}
    for metric, label, target in TIMING_ROWS:
        for iv in intervals:
            o, k = cells.get(("ours", iv)), cells.get(("keepalived", iv))
            so = Stats.of(o.samples.get(metric, [])) if o else None
            sk = Stats.of(k.samples.get(metric, [])) if k else None
            if so is None and sk is None:
                continue
            row = Row(label, f"{iv:g}s", so, sk, "ms")
            if target in ("p95", "marker"):
                row.target = f"p95 <= +{TIMING_TARGET_MS:g}"
                row.met = "" if so is None else ("yes" if so.p95 <= TIMING_TARGET_MS else "NO")
                wire = Stats.of(o.samples.get("preempt_wire", [])) if o else None
                if target == "marker" and wire is not None and wire.p50 < 0:
                    row.met = "n/a"  # the marker comes after ours' timer start (NOTES)
            elif target == "startup":
                row.target = "start-up + 2"
                row.met = "-"
            rows.append(row)
    if idle_s > 0:
        for iv in intervals:
            o, k = cells.get(("ours", iv)), cells.get(("keepalived", iv))

            def idle_value(c: TimingCell | None, key: str) -> float | None:
                return None if c is None or not c.idle else float(c.idle[key])

            oi, ki = idle_value(o, "backup_vip_additions"), idle_value(k, "backup_vip_additions")
            rows.append(
                Row(
                    f"spurious takeovers in {idle_s:g}s idle (VIP added on backup)",
                    f"{iv:g}s",
                    oi,
                    ki,
                    "",
                    "0",
                    "" if oi is None else ("yes" if oi == 0 else "NO"),
                )
            )

            def gap(c: TimingCell | None) -> Stats | None:
                if c is None or not c.idle or not c.idle.get("advert_gap_ms"):
                    return None
                g = c.idle["advert_gap_ms"]
                return Stats(c.idle["master_adverts"] - 1, g["p50"], g["p99"], g["max"], g["min"])

            rows.append(
                Row("  master's advert spacing (p50/p99/max)", f"{iv:g}s", gap(o), gap(k), "ms")
            )

            def idle_cpu(c: TimingCell | None, host: str) -> float | None:
                if c is None or not c.idle:
                    return None
                cpu = c.idle["cpu"][host]
                return 100 * cpu["cpu_s"] / cpu["window_s"]

            for host, role in (("h1", "master"), ("h2", "backup")):
                rows.append(
                    Row(
                        f"  CPU {role}, 1 instance, idle (% of a core)",
                        f"{iv:g}s",
                        idle_cpu(o, host),
                        idle_cpu(k, host),
                        "%",
                    )
                )
    res = {(r["speaker"], r["instances"]): r for r in resources}
    for n in sorted({r["instances"] for r in resources}):
        o, k = res.get(("ours", n)), res.get(("keepalived", n))
        for role in ("master", "backup"):

            def get(
                r: dict[str, Any] | None, fn: Callable[[dict[str, Any]], Any], role: str = role
            ) -> Any:
                return None if r is None or role not in r else fn(r[role])

            oc = get(o, lambda x: x["cpu"]["percent_of_core"])
            kc = get(k, lambda x: x["cpu"]["percent_of_core"])
            row = Row(f"CPU {role}, {n} instance(s) (% of a core)", "1s", oc, kc, "%")
            if n >= 500:
                row.target = f"<= {CPU_RATIO_TARGET:g}x keepalived"
                if oc is not None and kc:
                    row.met = "yes" if oc / kc <= CPU_RATIO_TARGET else "NO"
            rows.append(row)
            ous = get(o, lambda x: x["cpu"]["us_per_instance_s"])
            kus = get(k, lambda x: x["cpu"]["us_per_instance_s"])
            rows.append(Row("  CPU per instance-second", "1s", ous, kus, "us"))

            def sys_share(x: dict[str, Any]) -> float | None:
                total = x["cpu"]["user_s"] + x["cpu"]["system_s"]
                # ticks are sampled (USER_HZ): fewer than ~20 say nothing
                return 100 * x["cpu"]["system_s"] / total if total >= 0.2 else None

            rows.append(
                Row(
                    "  system share of CPU (utime/stime ticks)",
                    "1s",
                    get(o, sys_share),
                    get(k, sys_share),
                    "%",
                    compare=False,
                )
            )
            orss = get(o, lambda x: x["memory"]["rss_kb"] / 1024)
            krss = get(k, lambda x: x["memory"]["rss_kb"] / 1024)
            rows.append(
                Row(
                    f"RSS {role}, {n} instance(s) (sum over processes)",
                    "1s",
                    orss,
                    krss,
                    "MB",
                    f"<= {RSS_TARGET_MB:g} MB",
                    "" if orss is None else ("yes" if orss <= RSS_TARGET_MB else "NO"),
                )
            )
            opss = get(o, lambda x: (x["memory"]["pss_kb"] or 0) / 1024)
            kpss = get(k, lambda x: (x["memory"]["pss_kb"] or 0) / 1024)
            rows.append(Row(f"  PSS {role}", "1s", opss, kpss, "MB"))
        os_ = None if o is None else o.get("start_to_all_vips_s")
        ks_ = None if k is None else k.get("start_to_all_vips_s")
        rows.append(Row(f"start -> all {n} VIPs on master", "1s", os_, ks_, "s"))
        if n > 1:
            of = None if o is None else o.get("first_to_last_vip_s")
            kf = None if k is None else k.get("first_to_last_vip_s")
            rows.append(Row("  first -> last VIP on master", "1s", of, kf, "s"))
        osp = None if o is None else float(o.get("backup_vip_additions", 0))
        ksp = None if k is None else float(k.get("backup_vip_additions", 0))
        rows.append(
            Row(
                "  VIPs added on backup (start-up + window)",
                "1s",
                osp,
                ksp,
                "",
                "0",
                "" if osp is None else ("yes" if osp == 0 else "NO"),
            )
        )
    for row in rows:
        po, pk = _p95(row.ours), _p95(row.ka)
        if row.compare and po is not None and pk is not None and pk > 0 and po >= 0:
            row.ratio = po / pk
    return rows


def _fmt_value(v: Stats | float | None, unit: str) -> str:
    if v is None:
        return "-"
    if isinstance(v, Stats):
        digits = 2 if unit == "ms" and max(abs(v.p50), abs(v.p95), abs(v.max)) < 100 else 1
        sign = "+" if unit == "ms" else ""
        return (
            f"{v.p50:{sign}.{digits}f} / {v.p95:{sign}.{digits}f} / {v.max:{sign}.{digits}f}"
            f"  (n={v.n})"
        )
    if unit == "":
        return f"{v:g}"
    if unit == "%":
        return f"{v:.3f}"
    if unit == "s":
        return f"{v:.3f}"
    return f"{v:.2f}" if abs(v) < 1000 else f"{v:.0f}"


def render_table(rows: list[Row]) -> str:
    header = (
        "what",
        "adv",
        "unit",
        "ours p50 / p95 / max",
        "keepalived p50 / p95 / max",
        "ours/ka",
        "target",
        "met",
    )
    body = [
        (
            r.what,
            r.adv,
            r.unit,
            _fmt_value(r.ours, r.unit),
            _fmt_value(r.ka, r.unit),
            "-" if r.ratio is None else f"{r.ratio:.2f}x",
            r.target,
            r.met,
        )
        for r in rows
    ]
    widths = [max(len(str(x[i])) for x in (header, *body)) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        return " | ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    sep = "-+-".join("-" * w for w in widths)
    return "\n".join([line(header), sep, *(line(b) for b in body)])


# --------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--only", choices=("timing", "resources"), help="run only this part")
    p.add_argument(
        "--intervals",
        default="1,0.1,0.01",
        help="advert intervals in seconds for the timing part (default 1,0.1,0.01)",
    )
    p.add_argument(
        "--repeats", type=int, default=20, help="repetitions per sub-second cell (default 20)"
    )
    p.add_argument(
        "--repeats-1s",
        type=int,
        default=3,
        help="repetitions per cell with adverts of 1 s or more (default 3)",
    )
    p.add_argument(
        "--idle",
        type=float,
        default=60.0,
        help="seconds of idle per timing cell for spurious takeovers (0: skip; default 60)",
    )
    p.add_argument(
        "--instances", default="1,100,500", help="instance counts for resources (default 1,100,500)"
    )
    p.add_argument(
        "--settle", type=float, default=8.0, help="seconds after all VIPs settled (default 8)"
    )
    p.add_argument(
        "--window", type=float, default=30.0, help="resource measuring window, s (default 30)"
    )
    p.add_argument(
        "--speakers", default="ours,keepalived", help="which speakers (default ours,keepalived)"
    )
    p.add_argument("--seed", type=int, default=1, help="seed of the random action phase")
    p.add_argument("--json", type=Path, help="write every sample and summary here")
    p.add_argument(
        "--keep-logs", action="store_true", help="keep the lab's temp dir (speaker logs)"
    )
    return p.parse_args(argv)


REPO = Path(__file__).resolve().parents[1]


def code_stamp() -> float:
    """Newest modification time of the speaker's code (it is imported at each start)."""
    return max(p.stat().st_mtime for p in (REPO / "reconciler").rglob("*.py"))


def snapshot_code(dest: Path) -> Path:
    """A copy of the speaker's package as it is now, to run ours from.

    ``python -m reconciler`` imports from its working directory first, so the
    speakers started from ``dest`` run this copy even if the checkout is edited
    during a long run (each start would otherwise import whatever is on disk).
    """
    shutil.copytree(
        REPO / "reconciler", dest / "reconciler", ignore=shutil.ignore_patterns("__pycache__")
    )
    digest = hashlib.sha256()
    for path in sorted((dest / "reconciler").rglob("*")):
        if path.is_file():
            digest.update(str(path.relative_to(dest)).encode() + b"\0" + path.read_bytes())
    (dest / "SHA256").write_text(digest.hexdigest() + "\n")
    # Byte-compiled as pip compiles an installed package: without it every start of ours
    # compiles each module it imports (more so where PYTHONDONTWRITEBYTECODE is set, as
    # on these machines), and the start-up rows measure the compiler.
    compileall.compile_dir(dest / "reconciler", quiet=1)
    return dest


def git(*args: str) -> str:
    proc = subprocess.run(
        ["git", "-C", str(REPO), *args], capture_output=True, text=True, check=False
    )
    return proc.stdout.strip()


def environment() -> dict[str, Any]:
    ka = subprocess.run([KEEPALIVED, "--version"], capture_output=True, text=True, check=False)
    ka_lines = [x for x in (ka.stderr + ka.stdout).splitlines() if x.strip()]
    return {
        "kernel": platform.release(),
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "keepalived": ka_lines[0] if ka_lines else None,
        "clk_tck": os.sysconf("SC_CLK_TCK"),
        "commit": git("rev-parse", "--short", "HEAD"),
        "reconciler_modified": git("status", "--porcelain", "--", "reconciler") != "",
        "code_stamp": code_stamp(),
        "code_changed_during_run": False,
        "code_snapshot_sha256": None,
    }


@contextlib.contextmanager
def capture(lab: Lab) -> Iterator[AdvertCapture]:
    cap = AdvertCapture(lab, [h.interface("eth0").bridge_port for h in lab.hosts])
    try:
        yield cap
    finally:
        cap.close()


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.json:
        args.json = args.json.resolve()  # the run changes directory
    reason = netns_unavailable_reason()
    if reason:
        print(f"cannot run: {reason}", file=sys.stderr)
        return 2
    speakers = [s for s in args.speakers.split(",") if s]
    if any(s not in SPEAKERS for s in speakers):
        print(f"--speakers: choose from {', '.join(SPEAKERS)}", file=sys.stderr)
        return 2
    if "keepalived" in speakers and not keepalived_available():
        print("keepalived is not installed", file=sys.stderr)
        return 2
    intervals = [float(x) for x in args.intervals.split(",") if x]
    counts = [int(x) for x in args.instances.split(",") if x]
    rng = random.Random(args.seed)
    timing: list[TimingCell] = []
    resources: list[dict[str, Any]] = []
    env = environment()
    started = time.time()
    try:
        # While this fd is open the kernel counts BPF programs' run time (our speaker's
        # repeat filter), which bpf_run_ns() adds to its CPU; closed at exit.
        stats_fd: int | None = enable_stats()
    except (FilterUnavailable, OSError) as exc:
        progress(f"BPF run-time stats unavailable ({exc}); a kernel filter is not counted")
        stats_fd = None
    with (
        contextlib.ExitStack() as cleanup,
        Lab(2, segments=2, keep_tmpdir=args.keep_logs) as lab,
        contextlib.chdir(snapshot_code(lab.tmpdir / "code")),
    ):
        if stats_fd is not None:
            cleanup.callback(os.close, stats_fd)
        env["code_snapshot_sha256"] = Path("SHA256").read_text().strip()
        progress(f"lab {lab.id} up in {lab.setup_seconds:.1f}s; logs in {lab.tmpdir}")
        progress(f"ours runs from a snapshot of reconciler/ in {Path.cwd()}")
        if args.only in (None, "timing"):
            with capture(lab) as cap:
                cell_no = 0
                for iv in intervals:
                    repeats = args.repeats_1s if iv >= 1 else args.repeats
                    for speaker in speakers:
                        progress(f"timing: {speaker}, adverts every {iv:g}s, {repeats} reps")
                        cell = run_timing_cell(
                            lab, cap, speaker, iv, repeats, args.idle, cell_no, rng
                        )
                        cell_no += 1
                        timing.append(cell)
                        report_cell_problems(cell)
        if args.only in (None, "resources"):
            for n in counts:
                for speaker in speakers:
                    progress(f"resources: {speaker}, {n} instance(s), 1 s adverts")
                    res = run_resource_cell(lab, speaker, n, args.settle, args.window)
                    resources.append(res)
                    report_log_problems(f"{speaker} N={n}", res["logs"])
    env["code_changed_during_run"] = code_stamp() != env["code_stamp"]
    rows = build_rows(timing, resources, args.idle if args.only != "resources" else 0)
    table = render_table(rows)
    print(
        f"Failover and resources, ours (commit {env['commit']}"
        f"{', modified' if env['reconciler_modified'] else ''}) vs keepalived "
        f"({env['keepalived']}, kernel {env['kernel']}, {env['cpus']} CPUs). "
        "Timing rows: ms past the RFC 5798 instant, p50 / p95 / max (nearest rank); "
        "ours/ka is the ratio of the p95 (timing) or of the value (resources)."
    )
    print(table)
    print(NOTES)
    if env["code_changed_during_run"]:
        print(
            "- reconciler/ in the checkout changed during the run; ours ran from the snapshot"
            " taken at its start."
        )
    if args.json:
        doc = {
            "environment": env,
            "arguments": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
            "started": started,
            "duration_s": time.time() - started,
            "timing": [
                {
                    "speaker": c.speaker,
                    "interval_s": c.interval_s,
                    "samples_ms": c.samples,
                    "summary": {
                        k: (vars(s) if (s := Stats.of(v)) else None) for k, v in c.samples.items()
                    },
                    "failures": c.failures,
                    "idle": c.idle,
                    "unexpected_backup_vip_additions": c.unexpected_backup_vip_adds,
                    "logs": c.logs,
                }
                for c in timing
            ],
            "resources": resources,
            "table": [
                {
                    "what": r.what,
                    "adv": r.adv,
                    "unit": r.unit,
                    "ours": vars(r.ours) if isinstance(r.ours, Stats) else r.ours,
                    "keepalived": vars(r.ka) if isinstance(r.ka, Stats) else r.ka,
                    "ratio": r.ratio,
                    "target": r.target,
                    "met": r.met,
                }
                for r in rows
            ],
        }
        args.json.write_text(json.dumps(doc, indent=1, default=str) + "\n")
        progress(f"wrote {args.json}")
    return 0


def report_cell_problems(cell: TimingCell) -> None:
    label = f"{cell.speaker} adv {cell.interval_s:g}s"
    for f in cell.failures:
        progress(f"{label}: FAILURE {f}")
    if cell.unexpected_backup_vip_adds:
        progress(
            f"{label}: {cell.unexpected_backup_vip_adds} VIP addition(s) on the backup"
            " outside the provoked failovers"
        )
    report_log_problems(label, cell.logs)


def report_log_problems(label: str, logs: dict[str, Any]) -> None:
    for host, entry in logs.items():
        progress(f"{label} {host}: {entry['starts']} start(s), transitions {entry['transitions']}")
        if entry["problem_count"]:
            progress(f"{label} {host}: {entry['problem_count']} warning/error line(s) in its log")
        for line in entry["problems"][:10]:
            progress(f"{label} {host} log: {line}")


if __name__ == "__main__":
    sys.exit(main())
