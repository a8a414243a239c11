#!/usr/bin/env python3
"""Benchmark the IPVS adapter against ipvsadm-restore, in the same kernel and the same run.

Needs a kernel with ip_vs; on a host without one, from the repository root::

    tools/ipvs-kernel/run-in-ipvs-kernel.sh .venv/bin/python bench/ipvs_apply.py

It works in a network namespace of its own (IPVS tables are per namespace), so
it never touches the caller's table. Measured, median of --rounds rounds:

* apply from empty: 1000 NAT services x 10 real servers, as a reconcile pass
  does it (dump, pure diff, one adapter call per step), against
  ``ipvsadm-restore`` of the same rules (process start included: that is what
  a script pays);
* a no-op pass: dump + diff against the desired list, nothing written;
* one real server's weight changed: the kernel writes that pass makes (target 1).

A benchmark, not a test: CI does not run it.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import replace
from ipaddress import IPv4Address
from pathlib import Path

from pyroute2 import IPRoute

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reconciler.adapters.ipvs import Ipvs
from reconciler.model.cluster import Node, NodeConfig
from reconciler.model.common import Family, Key
from reconciler.model.ipvs import Forwarding, Protocol, RealServer, ServiceKey, VirtualService
from reconciler.model.kernel import LiveDest, LiveService
from reconciler.reconcile.loop import ReconcileLoop
from reconciler.reconcile.ownership import OwnershipStore

CLONE_NEWNET = 0x40000000
Desired = list[LiveService | LiveDest]


def desired_state(services: int, dests: int) -> tuple[list[LiveService], list[LiveDest]]:
    """`services` wrr NAT services on 203.0.113.1-250, ports from 80; `dests` real servers
    each on 198.51.100.1.. port 8080, weights 1..`dests`."""
    svcs: list[LiveService] = []
    rss: list[LiveDest] = []
    for i in range(services):
        key = ServiceKey(
            Family.IPV4, Protocol.TCP, IPv4Address(f"203.0.113.{i % 250 + 1}"), 80 + i // 250
        )
        svcs.append(LiveService(key, "wrr"))
        for j in range(dests):
            address = IPv4Address(f"198.51.100.{j + 1}")
            rss.append(LiveDest(key, address, 8080, weight=j + 1, forwarding=Forwarding.NAT))
    return svcs, rss


def restore_rules(services: Sequence[LiveService], dests: Sequence[LiveDest]) -> str:
    lines = [f"-A -t {s.service.address}:{s.service.port} -s {s.scheduler}" for s in services]
    lines += [
        f"-a -t {d.service.address}:{d.service.port} -r {d.address}:{d.port} -m -w {d.weight}"
        for d in dests
    ]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------ one reconcile pass


def node_config(desired: Desired) -> NodeConfig:
    """The same objects as a node's desired state, so the real loop plans them."""
    services = [
        VirtualService(name=f"s{i}", service=r.service, scheduler=r.scheduler)
        for i, r in enumerate(desired)
        if isinstance(r, LiveService)
    ]
    servers = [
        RealServer(r.service, r.address, r.port, r.weight, r.forwarding)
        for r in desired
        if isinstance(r, LiveDest)
    ]
    return NodeConfig(Node("bench"), services=tuple(services), real_servers=tuple(servers))


async def reconcile(ipvs: Ipvs, desired: Desired) -> int:
    """One pass of the daemon's reconcile loop (dump, diff, apply, ownership); its steps."""
    cfg = node_config(desired)
    with tempfile.TemporaryDirectory() as state:
        store = OwnershipStore(Path(state))
        # Everything in the table was made by us: the bench owns its namespace.
        services, dests = await ipvs.dump()
        store.update(add={(r.kind, r.key) for r in [*services, *dests]})
        result = await ReconcileLoop(lambda: cfg, store, ipvs=ipvs).run_once()
    return len(result.steps)


# ------------------------------------------------------------------ measurements


def clear() -> None:
    subprocess.run(["ipvsadm", "-C"], check=True)


def time_restore(rules: str) -> float:
    clear()
    t0 = time.perf_counter()
    subprocess.run(["ipvsadm-restore"], input=rules, text=True, check=True)
    return time.perf_counter() - t0


async def time_apply(desired: Desired) -> tuple[float, int]:
    clear()
    async with Ipvs() as ipvs:
        t0 = time.perf_counter()
        await reconcile(ipvs, desired)
        return time.perf_counter() - t0, ipvs.writes


def identity(r: LiveService | LiveDest) -> tuple[str, Key]:
    return (r.kind, r.key)


async def verify(desired: Desired) -> None:
    async with Ipvs() as ipvs:
        services, dests = await ipvs.dump()
    observed: Desired = [*services, *dests]
    if sorted(observed, key=identity) != sorted(desired, key=identity):
        raise SystemExit("the kernel's table differs from the desired state")


async def time_noop(desired: Desired) -> float:
    async with Ipvs() as ipvs:
        t0 = time.perf_counter()
        steps = await reconcile(ipvs, desired)
        elapsed = time.perf_counter() - t0
        if steps or ipvs.writes:
            raise SystemExit(f"no-op pass made {steps} steps, {ipvs.writes} writes")
        return elapsed


async def weight_change_writes(desired: Desired, target: LiveDest) -> tuple[int, float]:
    changed: Desired = [
        replace(r, weight=r.weight + 1) if isinstance(r, LiveDest) and r == target else r
        for r in desired
    ]
    async with Ipvs() as ipvs:
        t0 = time.perf_counter()
        await reconcile(ipvs, changed)
        elapsed = time.perf_counter() - t0
        writes = ipvs.writes
    await verify(changed)
    return writes, elapsed


def private_namespace() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise SystemExit(f"unshare(CLONE_NEWNET): {os.strerror(err)} (run as root)")
    # With lo down a new namespace has no FIB table at all, and the kernel then
    # refuses every IPv4 dest with EINVAL ("address not unicast").
    with IPRoute() as ipr:
        ipr.link("set", index=ipr.link_lookup(ifname="lo")[0], state="up")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--services", type=int, default=1000)
    ap.add_argument("--dests", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    if not Path("/proc/net/ip_vs").exists():
        raise SystemExit(
            "no IPVS in this kernel: tools/ipvs-kernel/run-in-ipvs-kernel.sh "
            ".venv/bin/python bench/ipvs_apply.py"
        )
    private_namespace()

    services, dests = desired_state(args.services, args.dests)
    desired: Desired = [*services, *dests]
    rules = restore_rules(services, dests)
    n_writes = len(desired)

    restore: list[float] = []
    ours: list[float] = []
    writes: list[int] = []
    for _ in range(args.rounds):  # interleaved, so drift hits both alike
        restore.append(time_restore(rules))
        asyncio.run(verify(desired))
        elapsed, w = asyncio.run(time_apply(desired))
        ours.append(elapsed)
        writes.append(w)
        asyncio.run(verify(desired))
    noop = [asyncio.run(time_noop(desired)) for _ in range(args.rounds)]
    one_writes, one_time = asyncio.run(weight_change_writes(desired, dests[len(dests) // 2]))
    clear()

    t_ours, t_restore = statistics.median(ours), statistics.median(restore)
    rows = [
        ("state", f"{args.services} services x {args.dests} real servers ({n_writes} objects)"),
        ("apply from empty, adapter", f"{t_ours:.3f} s ({writes[0]} writes)"),
        ("apply from empty, ipvsadm-restore", f"{t_restore:.3f} s"),
        ("ratio adapter / ipvsadm-restore", f"{t_ours / t_restore:.2f}"),
        ("no-op pass (dump + diff)", f"{statistics.median(noop):.3f} s, 0 writes"),
        ("one weight change: kernel writes", f"{one_writes} ({one_time:.3f} s for the pass)"),
    ]
    width = max(len(k) for k, _ in rows)
    print(f"IPVS apply benchmark, median of {args.rounds} (kernel {os.uname().release})")
    for k, v in rows:
        print(f"  {k:<{width}}  {v}")


if __name__ == "__main__":
    main()
