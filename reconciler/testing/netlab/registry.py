"""Open labs, closed at interpreter exit and unwound by SIGTERM.

While a lab is open in the process that created it, SIGTERM raises
:class:`LabInterrupted` in the main thread, so that ``finally`` blocks and
fixture teardowns close every lab. A SIGTERM that arrives while a lab is being
closed is held back and raised once the last cleanup is complete.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import os
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import TYPE_CHECKING, Any, Final

from reconciler.testing.netlab.errors import LabInterrupted

if TYPE_CHECKING:
    from reconciler.testing.netlab.lab import Lab

__all__ = ["REGISTRY", "finish_closing", "register", "start_closing", "unregister"]

_SigHandler = Callable[[int, FrameType | None], Any] | int | signal.Handlers | None


class _Registry:
    """Open labs, for atexit and for the SIGTERM handler."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.labs: list[Lab] = []
        self.counter = itertools.count(1)
        self.previous_handler: _SigHandler = signal.SIG_DFL
        self.handler_installed = False
        self.closing = 0
        self.pending_sigterm = False
        self.owner_pid = os.getpid()


REGISTRY: Final = _Registry()


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    if os.getpid() != REGISTRY.owner_pid:
        # A forked child (pyroute2 forks one to open a socket inside a namespace)
        # inherits this handler: it must die as it would have, not unwind into
        # the parent's cleanup and delete the parent's lab.
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)
        return
    if REGISTRY.closing:
        REGISTRY.pending_sigterm = True  # re-raised once the cleanup is done
        return
    raise LabInterrupted(f"signal {signum} while a network lab was open")


def register(lab: Lab) -> None:
    with REGISTRY.lock:
        REGISTRY.labs.append(lab)
        if (
            not REGISTRY.handler_installed
            and threading.current_thread() is threading.main_thread()
            and signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None)
        ):
            REGISTRY.previous_handler = signal.signal(signal.SIGTERM, _on_sigterm)
            REGISTRY.handler_installed = True
            REGISTRY.owner_pid = os.getpid()


def unregister(lab: Lab) -> None:
    with REGISTRY.lock:
        if lab in REGISTRY.labs:
            REGISTRY.labs.remove(lab)
        if (
            not REGISTRY.labs
            and REGISTRY.handler_installed
            and threading.current_thread() is threading.main_thread()
        ):
            if signal.getsignal(signal.SIGTERM) is _on_sigterm:
                signal.signal(signal.SIGTERM, REGISTRY.previous_handler)
            REGISTRY.handler_installed = False


def start_closing() -> None:
    """A lab's cleanup begins: SIGTERM is held back until every cleanup is done."""
    with REGISTRY.lock:
        REGISTRY.closing += 1


def finish_closing() -> bool:
    """A lab's cleanup ended; whether a SIGTERM held back meanwhile must be raised now."""
    with REGISTRY.lock:
        REGISTRY.closing -= 1
        raise_pending = REGISTRY.closing == 0 and REGISTRY.pending_sigterm
        if raise_pending:
            REGISTRY.pending_sigterm = False
    return raise_pending


@atexit.register
def _close_all_labs() -> None:
    for lab in list(REGISTRY.labs):
        with contextlib.suppress(Exception):
            lab.close()
