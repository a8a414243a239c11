"""Entering a lab namespace and running ``ip`` there: the lab's only ways in.

Nothing here creates or changes anything in the root namespace by itself: code
run through :func:`call_in_netns` runs in the named namespace, and ``ip -batch``
commands carry ``-n <netns>`` unless they manage namespaces (``netns add/del``).
"""

from __future__ import annotations

import ctypes
import os
import subprocess
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Final, TypeVar

from reconciler.testing.netlab.errors import CommandError

__all__ = [
    "DEFAULT_PREFIX",
    "NETNS_RUN_DIR",
    "batch_argv",
    "call_in_netns",
    "ip_batch",
    "merged_env",
    "sysctl_path",
]

_T = TypeVar("_T")

DEFAULT_PREFIX: Final = "rcl"  # lab namespaces are <prefix><pid>x<n>{b,h<i>}
NETNS_RUN_DIR: Final = Path("/run/netns")
_CLONE_NEWNET: Final = 0x40000000
_LIBC: Final = ctypes.CDLL(None, use_errno=True)


def call_in_netns(netns: str, fn: Callable[[], _T]) -> _T:
    """Run ``fn`` on a short-lived thread that has joined network namespace ``netns``.

    Sockets created by ``fn`` belong to ``netns`` and stay usable from any thread;
    ``/proc/sys/net`` opened by ``fn`` shows ``netns``'s sysctls.
    """
    result: list[_T] = []
    failure: list[BaseException] = []

    def target() -> None:
        try:
            fd = os.open(NETNS_RUN_DIR / netns, os.O_RDONLY | os.O_CLOEXEC)
            try:
                if _LIBC.setns(fd, _CLONE_NEWNET) != 0:
                    err = ctypes.get_errno()
                    raise OSError(err, f"setns({netns}): {os.strerror(err)}")
            finally:
                os.close(fd)
            result.append(fn())
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=target, name=f"netns-{netns}", daemon=True)
    thread.start()
    thread.join()
    if failure:
        raise failure[0]
    return result[0]


def batch_argv(netns: str | None = None, *, force: bool = False) -> list[str]:
    argv = ["ip"]
    if netns is not None:
        argv += ["-n", netns]
    if force:
        argv.append("-force")
    return [*argv, "-batch", "-"]


def ip_batch(commands: Sequence[str], *, netns: str | None = None, force: bool = False) -> None:
    argv = batch_argv(netns, force=force)
    proc = subprocess.run(
        argv,
        input="\n".join(commands) + "\n",
        capture_output=True,
        text=True,
        timeout=60.0,
        check=False,
    )
    if proc.returncode != 0 and not force:
        raise CommandError(netns or "-", proc.returncode, argv, proc.stdout, proc.stderr)


def sysctl_path(key: str) -> Path:
    rel = key.lstrip("/") if "/" in key else key.replace(".", "/")
    if rel.startswith("proc/sys/"):
        rel = rel.removeprefix("proc/sys/")
    return Path("/proc/sys") / rel


def merged_env(env: Mapping[str, str] | None) -> dict[str, str] | None:
    if env is None:
        return None
    return {**os.environ, **env}
