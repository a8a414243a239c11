"""`reconciler plan --git-range A..B`: every node's plan between two commits, for review."""

from __future__ import annotations

import argparse
import sys

from reconciler.cli.common import EXIT_CHANGES, EXIT_ERROR, EXIT_OK
from reconciler.cli.inputs import wanted_nodes
from reconciler.config.diagnostics import InvalidConfig
from reconciler.config.load import Loaded, load_bytes
from reconciler.plan.forecast import forecast
from reconciler.plan.planner import plan_revision
from reconciler.plan.render import render_review


def _load_blob(data: bytes, name: str, *, warn: bool = True) -> Loaded | None:
    """A revision read from git, errors (and, with ``warn``, warnings) located as
    COMMIT:PATH:LINE:COL."""
    try:
        loaded = load_bytes(data, name)
    except InvalidConfig as exc:
        for d in exc.diagnostics:
            print(d, file=sys.stderr)
        print(f"{name}: invalid; nothing planned", file=sys.stderr)
        return None
    if warn:
        for d in loaded.warnings:
            print(d, file=sys.stderr)
    return loaded


def plan_git_range(args: argparse.Namespace) -> int:
    from reconciler.adapters.git import GitError, read_blob, resolve_commit  # noqa: PLC0415

    if args.file or args.old or args.live:
        print(
            "--git-range reads both revisions from git: no FILE, --from or --live", file=sys.stderr
        )
        return EXIT_ERROR
    start, sep, end = args.git_range.partition("..")
    if not sep or end.startswith("."):
        print(f"--git-range: expected A..B, got {args.git_range!r}", file=sys.stderr)
        return EXIT_ERROR
    path = args.path.removeprefix("./")
    try:
        commits = [resolve_commit(args.repo, rev or "HEAD") for rev in (start, end)]
        blobs = [read_blob(args.repo, c, path) for c in commits]
    except GitError as exc:
        print(f"git: {exc}", file=sys.stderr)
        return EXIT_ERROR
    names = [f"{c[:12]}:{path}" for c in commits]
    if blobs[1] is None:
        print(f"{names[1]}: no such file at {end or 'HEAD'}; nothing planned", file=sys.stderr)
        return EXIT_ERROR
    new = _load_blob(blobs[1], names[1])
    old = _load_blob(blobs[0], names[0], warn=False) if blobs[0] is not None else None
    if new is None or (blobs[0] is not None and old is None):
        return EXIT_ERROR
    wanted = wanted_nodes(old, new, args.node)
    if wanted is None:
        return EXIT_ERROR
    source = names[0] if old else f"{names[0]} (no such file: from nothing)"
    old_cluster = old.cluster if old else None
    plans = [
        plan_revision(n, old_cluster, new.cluster, source=source, target=names[1]) for n in wanted
    ]
    title = f"`{path}` {start or 'HEAD'} ({commits[0][:12]}) → {end or 'HEAD'} ({commits[1][:12]})"
    if old is None:
        title += f" (no `{path}` at {start or 'HEAD'}: planned from nothing)"
    if args.output != "markdown":
        title = title.replace("`", "")
    sys.stdout.write(
        render_review(plans, forecast(old_cluster, new.cluster, plans), title, args.output)
    )
    return EXIT_CHANGES if any(p.has_changes for p in plans) else EXIT_OK
