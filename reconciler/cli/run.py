"""`reconciler run`: one node, until SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from reconciler.cli.common import EXIT_ERROR, parse_addr
from reconciler.cli.git_options import GIT_ONLY, git_options


def run_command(args: argparse.Namespace) -> int:
    # Imported here: validate and plan must not pay for the runtime's imports.
    from reconciler.daemon import RunOptions, run_node  # noqa: PLC0415

    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        http_addr = None if args.metrics_addr == "off" else parse_addr(args.metrics_addr)
    except ValueError as exc:
        print(f"--metrics-addr: {exc}", file=sys.stderr)
        return EXIT_ERROR
    wants_git = args.file is None or any(getattr(args, n) is not None for n in ("git", *GIT_ONLY))
    git = git_options(args) if wants_git else None
    if wants_git and git is None:
        return EXIT_ERROR
    options = RunOptions(
        file=Path(args.file) if args.file else None,
        node=args.node,
        state_dir=args.state_dir,
        http_addr=http_addr,
        repeat_filter=args.repeat_filter,
        watch=args.watch,
        refresh_hook=args.refresh_hook,
        git=git,
    )
    return asyncio.run(run_node(options))
