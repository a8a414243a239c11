"""Facts about this machine that `validate --node` checks a file against.

Read-only: whether a program can be run, and which addresses (with prefixes) each
interface has. The config core turns them into warnings
(`reconciler.config.node_checks`); here they are only gathered.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path

from reconciler.adapters.netlink import Netlink
from reconciler.config.node_checks import InterfaceAddress

__all__ = ["interface_addresses", "program_problem"]


def program_problem(program: str) -> str | None:
    """Why `program` (argv[0] of a hook or script) cannot be run here, or None.

    A name without '/' is looked up in PATH, as the exec of a hook does."""
    if "/" not in program:
        return None if shutil.which(program) else "is not found in PATH"
    p = Path(program)
    if not p.exists():
        return "does not exist"
    if p.is_dir() or not os.access(p, os.X_OK):
        return "is not executable"
    return None


def interface_addresses() -> list[InterfaceAddress] | None:
    """Every interface address of this network namespace; None when netlink cannot be
    read here (then subnets are unknown, and nothing is said about them)."""

    async def read() -> list[InterfaceAddress]:
        async with Netlink() as nl:
            return [InterfaceAddress(a.interface, a.address) for a in await nl.addresses()]

    try:
        return asyncio.run(read())
    except Exception:  # not Linux, no netlink socket allowed, pyroute2's own errors
        return None
