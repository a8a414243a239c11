"""Long-lived processes in lab namespaces, each in its own process group.

Only groups the lab started are ever signalled: a :class:`LabProcess` leads the
group it was started in (``start_new_session``), and its pgid is its own pid.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from reconciler.testing.netlab.plumbing import merged_env

__all__ = ["LabProcess", "log_label", "start_process", "stop_all"]


def _signal_group(pgid: int, sig: int) -> bool:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    return True


def stop_all(procs: Sequence[LabProcess], timeout: float) -> None:
    """SIGTERM every group at once, then SIGKILL whatever outlives ``timeout``."""
    live = [p for p in procs if p.poll() is None]
    for proc in live:
        _signal_group(proc.pgid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for proc in procs:
        try:
            proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            _signal_group(proc.pgid, signal.SIGKILL)
            proc.wait()
        _signal_group(proc.pgid, signal.SIGKILL)  # leftovers of the group


def start_process(
    exec_prefix: Sequence[str],
    argv: Sequence[str],
    *,
    netns: str,
    log_path: Path,
    env: Mapping[str, str] | None,
    cwd: str | os.PathLike[str] | None,
) -> LabProcess:
    """Start ``argv`` behind ``exec_prefix`` in a new session, output to ``log_path``."""
    with log_path.open("wb") as log:
        popen = subprocess.Popen(
            [*exec_prefix, *argv],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=merged_env(env),
            cwd=cwd,
            start_new_session=True,
        )
    return LabProcess(popen, argv, netns, log_path)


def log_label(name: str | None, argv: Sequence[str]) -> str:
    """The file-name-safe label of a process's log: ``name`` or the program's name."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name or Path(argv[0]).name)


class LabProcess:
    """A long-lived process started in a lab namespace, in its own process group.

    Its stdout and stderr go to :attr:`log_path` in the lab's temp dir.
    """

    def __init__(
        self, popen: subprocess.Popen[bytes], argv: Sequence[str], netns: str, log_path: Path
    ) -> None:
        self._popen = popen
        self.argv: tuple[str, ...] = tuple(argv)
        self.netns = netns
        self.log_path = log_path
        self.pid: int = popen.pid
        self.pgid: int = popen.pid  # start_new_session: the process leads its own group
        self.started_at = time.monotonic()

    def __repr__(self) -> str:
        return f"LabProcess(pid={self.pid}, netns={self.netns!r}, argv={list(self.argv)!r})"

    @property
    def returncode(self) -> int | None:
        return self._popen.returncode

    def poll(self) -> int | None:
        """The exit status if the process has exited (and is reaped), else None."""
        return self._popen.poll()

    @property
    def alive(self) -> bool:
        return self._popen.poll() is None

    def wait(self, timeout: float | None = None) -> int:
        """Wait for exit; raises :class:`subprocess.TimeoutExpired`."""
        return self._popen.wait(timeout)

    def signal(self, sig: int) -> None:
        """Send ``sig`` to the whole process group (e.g. SIGSTOP to simulate a hang)."""
        if self._popen.poll() is None:
            _signal_group(self.pgid, sig)

    def kill(self) -> int:
        """SIGKILL the process group (a crash) and reap the process; return its status."""
        _signal_group(self.pgid, signal.SIGKILL)
        return self._popen.wait()

    def stop(self, timeout: float = 3.0) -> int:
        """SIGTERM the group, wait up to ``timeout``, then SIGKILL it; return the status.

        Whatever is left of the group once the leader exited is killed as well.
        """
        try:
            if self._popen.poll() is None:
                _signal_group(self.pgid, signal.SIGTERM)
                try:
                    return self._popen.wait(timeout)
                except subprocess.TimeoutExpired:
                    _signal_group(self.pgid, signal.SIGKILL)
                    return self._popen.wait()
            return self._popen.wait()
        finally:
            _signal_group(self.pgid, signal.SIGKILL)

    def output(self) -> str:
        """Everything the process wrote so far."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def wait_for_output(self, text: str, timeout: float = 5.0) -> None:
        """Wait until the output contains ``text``; raises TimeoutError (or if it exits)."""
        deadline = time.monotonic() + timeout
        while text not in self.output():
            if self._popen.poll() is not None and text not in self.output():
                raise TimeoutError(
                    f"{self!r} exited ({self._popen.returncode}) before printing {text!r}:"
                    f" {self.output()[-2000:]}"
                )
            if time.monotonic() >= deadline:
                raise TimeoutError(f"{self!r} did not print {text!r} within {timeout}s")
            time.sleep(0.01)
