"""`reconciler validate`: check desired-state files, and with --node this machine's facts."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from reconciler.cli.common import EXIT_ERROR, EXIT_INVALID, EXIT_OK
from reconciler.config.diagnostics import Diagnostic, InvalidConfig
from reconciler.config.load import Loaded, load_file
from reconciler.config.node_checks import missing_program, programs_for_node, vip_subnet_warnings


def validate_command(args: argparse.Namespace) -> int:
    return validate_files(args.files, quiet=args.quiet, strict=args.strict, node=args.node)


def validate_files(files: Sequence[str], *, quiet: bool, strict: bool, node: str | None) -> int:
    rc = EXIT_OK
    for f in files:
        try:
            loaded = load_file(f)
        except OSError as exc:
            print(f"{f}: cannot read: {exc.strerror or exc}", file=sys.stderr)
            rc = EXIT_ERROR
            continue
        except InvalidConfig as exc:
            for d in exc.diagnostics:
                print(d)
            n = len(exc.diagnostics)
            print(f"{f}: invalid ({n} error{'s' if n != 1 else ''})", file=sys.stderr)
            rc = max(rc, EXIT_INVALID)
            continue
        warnings = list(loaded.warnings)
        if node is not None:
            if node not in loaded.cluster.node_names:
                names = ", ".join(loaded.cluster.node_names)
                print(f"unknown node {node!r}: {f} has {names}", file=sys.stderr)
                rc = EXIT_ERROR
                continue
            warnings = sorted([*warnings, *_on_this_machine(loaded, node)], key=Diagnostic.sort_key)
        for d in warnings:
            print(d)
        n = len(warnings)
        counted = f" ({n} warning{'s' if n != 1 else ''})" if n else ""
        if strict and warnings:
            print(f"{f}: invalid under --strict{counted}", file=sys.stderr)
            rc = max(rc, EXIT_INVALID)
        elif not quiet:
            print(f"{f}: OK{counted}")
    return rc


def _on_this_machine(loaded: Loaded, node: str) -> list[Diagnostic]:
    """Warnings that need this machine's facts: programs that cannot run here, VIPs outside
    their interface's subnets here (none when the addresses cannot be read)."""
    from reconciler.adapters.machine import interface_addresses, program_problem  # noqa: PLC0415

    out = []
    for use in programs_for_node(loaded, node):
        problem = program_problem(use.program, use.user)
        if problem:
            out.append(missing_program(use, problem))
    addresses = interface_addresses()
    if addresses is not None:
        out += vip_subnet_warnings(loaded, node, addresses)
    return out
