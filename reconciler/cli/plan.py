"""`reconciler plan`: from one file to another, between two git commits, or against the
live kernel."""

from __future__ import annotations

import argparse
import sys

from reconciler.cli.common import EXIT_CHANGES, EXIT_ERROR, EXIT_OK
from reconciler.cli.inputs import load_for_plan, wanted_nodes
from reconciler.cli.live import plan_live
from reconciler.cli.plan_git import plan_git_range
from reconciler.plan.planner import plan_revision
from reconciler.plan.render import render


def plan_command(args: argparse.Namespace) -> int:
    if args.git_range:
        return plan_git_range(args)
    if not args.file:
        print("plan: give FILE, or --git-range A..B", file=sys.stderr)
        return EXIT_ERROR
    if args.live:
        return plan_live(args)
    return plan_files(args.file, args.old, args.node, args.output, strict=args.strict)


def plan_files(
    file: str, old_file: str | None, nodes: list[str] | None, fmt: str, *, strict: bool = False
) -> int:
    new = load_for_plan(file, strict=strict)
    old = load_for_plan(old_file) if old_file else None
    if new is None or (old_file and old is None):
        return EXIT_ERROR
    wanted = wanted_nodes(old, new, nodes)
    if wanted is None:
        return EXIT_ERROR
    plans = [
        plan_revision(
            n,
            old.cluster if old else None,
            new.cluster,
            source=old_file or "(nothing)",
            target=file,
        )
        for n in wanted
    ]
    sys.stdout.write(render(plans, fmt))
    return EXIT_CHANGES if any(p.has_changes for p in plans) else EXIT_OK
