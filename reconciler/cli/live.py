"""This machine's IPVS table: `plan --live` (what would change) and `apply --once`."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import TYPE_CHECKING

from reconciler.cli.common import EXIT_CHANGES, EXIT_ERROR, EXIT_OK
from reconciler.cli.inputs import load_for_plan
from reconciler.config.load import Loaded
from reconciler.plan.diff import Step
from reconciler.plan.planner import Plan
from reconciler.plan.render import render

if TYPE_CHECKING:
    from reconciler.reconcile.loop import PassResult


def _live_setup(args: argparse.Namespace) -> tuple[Loaded, str] | None:
    """FILE and the one node this machine is (a list from `plan --node`, which repeats, a
    string from `apply --node`); None with the error printed."""
    if not args.node or len(args.node if isinstance(args.node, list) else [args.node]) != 1:
        print("give exactly one --node: the node this machine is", file=sys.stderr)
        return None
    node = args.node[0] if isinstance(args.node, list) else args.node
    loaded = load_for_plan(args.file, strict=getattr(args, "strict", False))
    if loaded is None:
        return None
    if node not in loaded.cluster.node_names:
        names = ", ".join(loaded.cluster.node_names)
        print(f"unknown node {node!r}: {args.file} has {names}", file=sys.stderr)
        return None
    return loaded, node


def plan_live(args: argparse.Namespace) -> int:
    from reconciler.adapters.ipvs import Ipvs, IpvsError  # noqa: PLC0415
    from reconciler.reconcile.loop import ReconcileLoop  # noqa: PLC0415
    from reconciler.reconcile.ownership import OwnershipStore  # noqa: PLC0415

    setup = _live_setup(args)
    if setup is None:
        return EXIT_ERROR
    loaded, node = setup
    store = OwnershipStore(args.state_dir)
    store.load()

    async def steps() -> list[Step]:
        async with Ipvs() as ipvs:
            loop = ReconcileLoop(lambda: loaded.cluster.for_node(node), store, ipvs=ipvs)
            return loop.plan(await loop.observe())

    try:
        found = asyncio.run(steps())
    except IpvsError as exc:
        print(f"cannot read IPVS: {exc}", file=sys.stderr)
        return EXIT_ERROR
    plan = Plan(node, "live kernel", args.file, tuple(found))
    sys.stdout.write(render([plan], args.output))
    return EXIT_CHANGES if plan.has_changes else EXIT_OK


def apply_command(args: argparse.Namespace) -> int:
    from reconciler.adapters.ipvs import Ipvs, IpvsError  # noqa: PLC0415
    from reconciler.adapters.sysctl import apply_sysctls  # noqa: PLC0415
    from reconciler.reconcile.loop import Outcome, ReconcileLoop  # noqa: PLC0415
    from reconciler.reconcile.ownership import OwnershipStore  # noqa: PLC0415

    setup = _live_setup(args)
    if setup is None:
        return EXIT_ERROR
    loaded, node = setup
    store = OwnershipStore(args.state_dir)
    store.load()
    try:
        for key, outcome in apply_sysctls(loaded.cluster.sysctls).items():
            print(f"sysctl {key}: {outcome.value}")
    except OSError as exc:
        print(f"sysctls: {exc}", file=sys.stderr)

    async def once() -> PassResult:
        async with Ipvs() as ipvs:
            loop = ReconcileLoop(
                lambda: loaded.cluster.for_node(node),
                store,
                ipvs=ipvs,
                drain_timeout_s=loaded.cluster.drain_timeout.total_seconds(),
            )
            return await loop.run_once()

    try:
        result = asyncio.run(once())
    except IpvsError as exc:
        print(f"cannot use IPVS: {exc}", file=sys.stderr)
        return EXIT_ERROR
    for r in result.steps:
        what = f"{r.step.action.value} {r.step.kind} {'/'.join(r.step.key)}"
        print(f"{what}: {r.outcome.value if r.outcome else 'FAILED: ' + str(r.error)}")
    for c in result.conflicts:
        print(f"conflict: {c.kind} {'/'.join(c.key)} exists and is not ours; left alone")
    for drained in result.draining:
        print(f"draining: {'/'.join(drained)} (weight 0 until its connections end)")
    print(
        f"{result.outcome.value}: {result.writes} kernel write(s) in "
        f"{result.duration_s * 1000:.0f} ms"
    )
    return 1 if result.outcome is Outcome.ERROR else EXIT_OK
