"""Facts about this machine that `validate --node` checks a file against.

Read-only: whether a program can be run (by the user it is to run as), and which
addresses (with prefixes) each interface has. The config core turns them into warnings
(`reconciler.config.node_checks`); here they are only gathered.
"""

from __future__ import annotations

import asyncio

from reconciler.adapters import programs
from reconciler.adapters.netlink import Netlink
from reconciler.config.node_checks import InterfaceAddress
from reconciler.model.vrrp import DEFAULT_HOOK_USER

__all__ = ["interface_addresses", "program_problem"]


def program_problem(program: str, user: str = DEFAULT_HOOK_USER) -> str | None:
    """Why `program` (argv[0] of a hook or script) cannot be run here as `user`, or None.

    A name without '/' is looked up in the hooks' PATH, as the exec of a hook does; the
    file must be executable by `user` (modes of the file and of every directory on the
    way) and pass the rule that the daemon refuses programs by
    (:func:`reconciler.adapters.programs.unsafe_reason`)."""
    path = programs.resolve(program)
    if path is None:
        return "is not found in PATH"
    try:
        account = programs.account(user)
    except KeyError:
        return f"is to run as {user!r}, a user this machine does not have"
    problem = programs.execute_problem(path, account)
    if problem is not None:
        return problem
    unsafe = programs.unsafe_reason(path, account)
    if unsafe is not None:
        return f"would be refused ({unsafe})"
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
