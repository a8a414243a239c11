"""A probe in flight: the handle :meth:`Prober.start` returns and its one report."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from reconciler.health.policy import ProbeResult

# The package's logger, not this module's: operators filter on the package name.
log = logging.getLogger("reconciler.adapters.probes")

OnDone = Callable[[ProbeResult], None]


class ProbeAttempt:
    """A probe in flight, from :meth:`Prober.start`.

    ``on_done`` is called exactly once, from the event loop, with the result, unless
    :meth:`cancel` came first; then it is never called.
    """

    __slots__ = ("_on_done", "_task")

    def __init__(self, on_done: OnDone) -> None:
        self._on_done: OnDone | None = on_done
        self._task: asyncio.Task[ProbeResult] | None = None

    @classmethod
    def of_coroutine(
        cls, coro: Coroutine[Any, Any, ProbeResult], on_done: OnDone, *, name: str | None
    ) -> ProbeAttempt:
        """Run ``coro`` as a task (named ``name``, referenced here) and report its result."""
        attempt = cls(on_done)
        task = asyncio.get_running_loop().create_task(coro, name=name)
        attempt._task = task
        task.add_done_callback(attempt._task_done)
        return attempt

    @classmethod
    def settled(cls, result: ProbeResult, on_done: OnDone) -> ProbeAttempt:
        """An attempt decided before it began; reported from the loop, never from here."""
        attempt = cls(on_done)
        asyncio.get_running_loop().call_soon(attempt._finish, result)
        return attempt

    @property
    def task(self) -> asyncio.Task[ProbeResult] | None:
        """The task running the probe (None on the callback-driven TCP path)."""
        return self._task

    @property
    def done(self) -> bool:
        return self._on_done is None

    def cancel(self) -> None:
        """Stop the probe; a script's process group is killed by its task's cleanup."""
        self._on_done = None
        if self._task is not None:
            self._task.cancel()

    def _finish(self, result: ProbeResult) -> None:
        on_done, self._on_done = self._on_done, None
        if on_done is not None:
            on_done(result)

    def _task_done(self, task: asyncio.Task[ProbeResult]) -> None:
        if task.cancelled():
            self._finish(ProbeResult(ok=False, detail="probe cancelled"))
            return
        exc = task.exception()
        if exc is not None:  # a bug in a probe must not silence its check
            log.error("probe %s failed", task.get_name(), exc_info=exc)
            self._finish(ProbeResult(ok=False, detail=f"probe error: {exc!r}"))
            return
        self._finish(task.result())
