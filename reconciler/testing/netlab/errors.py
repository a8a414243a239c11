"""The lab's exceptions."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence

__all__ = ["CommandError", "LabInterrupted", "LabUnavailable"]


class LabUnavailable(RuntimeError):
    """The machine cannot run a lab (not root, no ``ip``, no netns, no ``nft``...)."""


class LabInterrupted(KeyboardInterrupt):
    """Raised in the main thread when the process gets SIGTERM while a lab is open.

    It derives from :class:`KeyboardInterrupt` so that ``except Exception`` does
    not swallow it and pytest treats it like Ctrl-C: ``finally`` blocks and
    fixture teardowns run and every lab is closed.
    """


class CommandError(subprocess.CalledProcessError):
    """A command run in a lab namespace exited non-zero (``check=True``)."""

    def __init__(self, netns: str, returncode: int, cmd: Sequence[str], output: str, stderr: str):
        super().__init__(returncode, list(cmd), output, stderr)
        self.netns = netns

    def __str__(self) -> str:
        err = (self.stderr or "").strip()
        out = (self.output or "").strip()
        detail = err or out
        return f"command {self.cmd!r} in netns {self.netns} exited {self.returncode}" + (
            f": {detail[-2000:]}" if detail else ""
        )
