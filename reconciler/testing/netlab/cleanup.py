"""Tearing a lab down, and sweeping what labs of killed processes left behind.

Only lab names are ever touched: namespaces ``<prefix><pid>x<n>{b,h<i>,p}`` and
temp dirs ``<prefix><pid>x<n>-*``, and for sweeping only those whose pid is dead.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from reconciler.testing.netlab.plumbing import DEFAULT_PREFIX, NETNS_RUN_DIR, ip_batch
from reconciler.testing.netlab.processes import LabProcess, stop_all

__all__ = ["sweep_stale", "teardown"]


class _Closable(Protocol):
    def close(self) -> None: ...


def teardown(
    processes: Sequence[LabProcess],
    stop_timeout: float,
    closables: Sequence[_Closable],
    namespaces: Sequence[str],
    tmpdir: Path | None,
) -> list[BaseException]:
    """Stop ``processes``, close ``closables``, delete ``namespaces`` and ``tmpdir``.

    Each step runs even if an earlier one failed; returns the errors.
    """
    errors: list[BaseException] = []
    try:
        stop_all(processes, stop_timeout)
    except BaseException as exc:
        errors.append(exc)
    for closable in closables:
        try:
            closable.close()
        except BaseException as exc:
            errors.append(exc)
    if namespaces:
        try:
            ip_batch([f"netns del {n}" for n in namespaces], force=True)
        except BaseException as exc:
            errors.append(exc)
    if tmpdir is not None:
        shutil.rmtree(tmpdir, ignore_errors=True)
    return errors


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _sweep_stale_tmpdirs(prefix: str) -> None:
    """A lab's temp dir outlives it only when its process was killed outright."""
    pattern = re.compile(rf"{re.escape(prefix)}(\d+)x\d+-\w+")
    tmp = Path(tempfile.gettempdir())
    for entry in tmp.iterdir():
        m = pattern.fullmatch(entry.name)
        if m and int(m.group(1)) != os.getpid() and not _pid_alive(int(m.group(1))):
            shutil.rmtree(entry, ignore_errors=True)


def sweep_stale(prefix: str = DEFAULT_PREFIX) -> tuple[str, ...]:
    """Remove namespaces and temp dirs of labs whose creating process no longer exists.

    Only names of the exact lab form ``<prefix><pid>x<n>{b,h<i>,p}`` (namespaces) and
    ``<prefix><pid>x<n>-*`` (temp dirs) whose pid is dead are touched. Processes still
    living in such a namespace (lab processes orphaned by the killed run) are SIGKILLed
    first. Returns the removed namespace names.
    """
    _sweep_stale_tmpdirs(prefix)
    pattern = re.compile(rf"{re.escape(prefix)}(\d+)x\d+(?:b|h\d+|p)")
    try:
        names = sorted(os.listdir(NETNS_RUN_DIR))
    except FileNotFoundError:
        return ()
    stale = []
    for name in names:
        m = pattern.fullmatch(name)
        if m and int(m.group(1)) != os.getpid() and not _pid_alive(int(m.group(1))):
            stale.append(name)
    if not stale:
        return ()
    inodes = set()
    for name in stale:
        with contextlib.suppress(OSError):
            st = os.stat(NETNS_RUN_DIR / name)
            inodes.add((st.st_dev, st.st_ino))
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            st = os.stat(f"/proc/{entry}/ns/net")
        except OSError:
            continue
        if (st.st_dev, st.st_ino) in inodes:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(entry), signal.SIGKILL)
    ip_batch([f"netns del {n}" for n in stale], force=True)
    return tuple(stale)
