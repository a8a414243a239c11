"""Command line: `reconciler validate|plan ...` (see `reconciler --help`).

Each subcommand lives in its own module; `main` parses the arguments and hands them to the
subcommand's handler in COMMANDS."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence

from reconciler.cli.control import control_command
from reconciler.cli.digest import digest_command
from reconciler.cli.live import apply_command
from reconciler.cli.parser import build_parser
from reconciler.cli.plan import plan_command
from reconciler.cli.run import run_command
from reconciler.cli.status import status_command
from reconciler.cli.validate import validate_command

__all__ = ["COMMANDS", "main"]

# Every subcommand the parser knows, to its handler (which returns the exit code).
COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "validate": validate_command,
    "plan": plan_command,
    "apply": apply_command,
    "run": run_command,
    "status": status_command,
    "suspend": control_command,
    "resume": control_command,
    "digest": digest_command,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler = COMMANDS.get(args.command)
    if handler is None:
        # The parser accepted a subcommand nothing handles: a bug here, not a user error.
        raise LookupError(f"no handler for subcommand {args.command!r}")
    return handler(args)
