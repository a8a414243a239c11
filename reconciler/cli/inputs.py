"""The revisions a plan (or `apply`) starts from, read from files, and the nodes it covers."""

from __future__ import annotations

import sys

from reconciler.config.diagnostics import InvalidConfig
from reconciler.config.load import Loaded, load_file


def load_for_plan(path: str, *, strict: bool = False) -> Loaded | None:
    """FILE with its warnings printed to stderr; None with the error printed when it cannot
    be read, is invalid, or (``strict``) has warnings."""
    try:
        loaded = load_file(path)
    except OSError as exc:
        print(f"{path}: cannot read: {exc.strerror or exc}", file=sys.stderr)
        return None
    except InvalidConfig as exc:
        for d in exc.diagnostics:
            print(d, file=sys.stderr)
        print(f"{path}: invalid; nothing planned", file=sys.stderr)
        return None
    for d in loaded.warnings:
        print(d, file=sys.stderr)
    if strict and loaded.warnings:
        print(f"{path}: has warnings and --strict is given; nothing planned", file=sys.stderr)
        return None
    return loaded


def wanted_nodes(old: Loaded | None, new: Loaded, nodes: list[str] | None) -> list[str] | None:
    """The nodes to plan (default: every node in either revision); None after an error."""
    known = list(new.cluster.node_names)
    if old:
        known += [n for n in old.cluster.node_names if n not in known]
    wanted = nodes or known
    unknown = [n for n in wanted if n not in known]
    if unknown:
        print(
            f"unknown node {', '.join(map(repr, unknown))}: the files have {', '.join(known)}",
            file=sys.stderr,
        )
        return None
    return wanted
