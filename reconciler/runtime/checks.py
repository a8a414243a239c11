"""Check scheduler: runs every check on a fixed grid and feeds the rise/fall policy.

Each (check, target) pair is a job. A job's probes are due at
``anchor + k * interval`` on the loop's clock (``loop.time()``), each armed
with ``loop.call_at`` at its exact deadline, so a late or slow probe never
shifts later ones: when a probe (or its retries) overruns slots, those slots
are skipped, not run back to back, and the next probe is on the grid again.

Anchors are ``start + phase``, where the phase is a stable hash of the job's
key in ``[0, min(interval, spread))`` rounded down to 10 ms: a thousand checks
spread over the second instead of firing in the same millisecond, and the
ones that share a 10 ms quantum share one loop timer and one wake-up. There
is no randomness: a job is due at the same offsets in every run.

Probes are started with :meth:`Prober.start`, which reports through a callback:
TCP connects run on loop callbacks alone, other probes in a task named
``check:<name>@<target>`` that the attempt keeps a reference to. Results go to
the pure :class:`~reconciler.health.policy.CheckPolicy`; transitions it
returns are handed to ``on_transition``, and a retry it asks for is armed
``retry_delay`` after the failed attempt ended, off the grid.

``replace`` swaps the set of jobs when the desired state changes: an
identical job keeps its place on the grid, attempt in flight and state; a
job whose probe and target are the same but whose schedule or policy changed
restarts with its current state carried over (no flap back to ``unknown``);
anything else starts fresh from its ``initial`` state. ``stop`` disarms every
job, cancels every attempt and waits for the probe tasks to end (a script's
process group is killed on the way).
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import math
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol

from reconciler.adapters.probes import SCRIPT_KILL_GRACE, ProbeAttempt, Prober
from reconciler.health.policy import CheckPolicy, CheckTransition, ProbeResult, target_label
from reconciler.model.checks import Check
from reconciler.model.common import CheckState, IPAddress

log = logging.getLogger(__name__)

JobKey = tuple[str, str]  # (check name, target label)
DEFAULT_SPREAD = timedelta(seconds=1)
_PHASE_QUANTUM_S = 0.01
# A probe function given to the scheduler (tests) gets its timeout plus this much
# before the scheduler gives up on it; the prober enforces its own timeouts.
_GUARD_SLACK_S = 1.0


@dataclass(frozen=True)
class CheckJob:
    """One check against one target (a real server's address and port, or none)."""

    check: Check
    host: IPAddress | None = None
    port: int | None = None

    @property
    def target(self) -> str:
        return target_label(self.host, self.port)

    @property
    def key(self) -> JobKey:
        return (self.check.name, self.target)

    @property
    def name(self) -> str:
        return f"check:{self.check.name}@{self.target}"


@dataclass(frozen=True)
class ProbeRecord:
    """When one probe attempt was due, ran and ended (``loop.time()`` seconds)."""

    key: JobKey
    due_at_s: float
    started_at_s: float
    finished_at_s: float
    result: ProbeResult
    retry: bool  # an attempt the policy asked to retry, off the grid

    @property
    def lateness_s(self) -> float:
        return self.started_at_s - self.due_at_s

    @property
    def duration_s(self) -> float:
        return self.finished_at_s - self.started_at_s


@dataclass(frozen=True)
class JobState:
    """Where one job's policy stands: what tracking and real-server health read, and
    what the node's status reports (``observability.status.CheckStatus``) start from."""

    check: str
    target: str
    state: CheckState
    weight: int | None
    detail: str
    successes: int
    failures: int
    last_error: str | None = None  # why the last failed attempt failed


class CheckResults(Protocol):
    """Where the checks' states live (the check scheduler), for what reads them."""

    def state_of(self, key: JobKey) -> JobState | None: ...


ProbeFn = Callable[[CheckJob], Awaitable[ProbeResult]]
TransitionCallback = Callable[[CheckTransition], None]
ProbeCallback = Callable[[ProbeRecord], None]


class _Running:
    """Run-time state of one job: where it is on its grid and what is in flight."""

    __slots__ = (
        "anchor",
        "armed",
        "attempt",
        "due",
        "interval_s",
        "job",
        "key",
        "name",
        "on_done",
        "policy",
        "retry",
        "slot",
        "started",
    )

    def __init__(self, job: CheckJob, policy: CheckPolicy, anchor: float, slot: int) -> None:
        self.job = job
        self.key = job.key  # computed once: a probe a millisecond looks it up
        self.policy = policy
        self.anchor = anchor
        self.interval_s = job.check.interval.total_seconds()
        self.slot = slot
        self.due = anchor + slot * self.interval_s
        self.retry = False
        self.started = 0.0
        self.name = job.name
        self.armed = False  # waiting in the scheduler's bucket for ``due``
        self.attempt: ProbeAttempt | None = None
        self.on_done: Callable[[ProbeResult], None] = _unset


def _state(r: _Running) -> JobState:
    return JobState(
        check=r.job.check.name,
        target=r.job.target,
        state=r.policy.state,
        weight=r.policy.weight,
        detail=r.policy.last_detail,
        successes=r.policy.successes,
        failures=r.policy.failures,
        last_error=r.policy.last_error,
    )


def _unset(result: ProbeResult) -> None:
    raise AssertionError("a job's on_done is set when it is launched")


class CheckScheduler:
    """Runs a set of :class:`CheckJob` on a drift-free schedule."""

    def __init__(
        self,
        on_transition: TransitionCallback,
        *,
        prober: Prober | None = None,
        probe: ProbeFn | None = None,
        on_probe: ProbeCallback | None = None,
        spread: timedelta = DEFAULT_SPREAD,
    ) -> None:
        """``probe`` replaces the real probes (tests); else ``prober`` (or a new one) runs them."""
        self._on_transition = on_transition
        self._on_probe = on_probe
        self._prober = prober
        self._probe = probe
        self._spread_s = spread.total_seconds()
        self._running: dict[JobKey, _Running] = {}
        # Jobs waiting for a due time, by due time: one loop timer per distinct time, so
        # the jobs that share a phase quantum share a wake-up (and the timer heap stays
        # small). Values are dicts used as insertion-ordered sets.
        self._due: dict[float, dict[_Running, None]] = {}
        self._retiring: set[asyncio.Task[ProbeResult]] = set()  # cancelled probe tasks
        self._loop: asyncio.AbstractEventLoop | None = None
        self._epoch = 0.0  # loop.time() at start: every grid is anchored to it
        self.skipped_slots = 0  # grid slots not run because a probe overran them
        self.probes = 0

    # ------------------------------------------------------------------ lifecycle
    @property
    def running(self) -> bool:
        return self._loop is not None

    def start(self, jobs: Iterable[CheckJob] = ()) -> None:
        """Start probing ``jobs``; call from within the running loop."""
        if self._loop is not None:
            raise RuntimeError("check scheduler already started")
        self._loop = asyncio.get_running_loop()
        if self._probe is None and self._prober is None:
            self._prober = Prober()
        self._epoch = self._loop.time()
        self._apply(jobs, not_before=self._epoch)

    def replace(self, jobs: Iterable[CheckJob]) -> None:
        """Make the running set equal to ``jobs`` (see the module doc for what is kept)."""
        if self._loop is None:
            raise RuntimeError("check scheduler not started")
        self._apply(jobs, not_before=self._loop.time())

    async def stop(self) -> None:
        """Cancel every timer and probe, and wait until the probe tasks have ended."""
        for key in list(self._running):
            self._retire(key)
        pending = list(self._retiring)
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
        self._loop = None

    async def __aenter__(self) -> CheckScheduler:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ------------------------------------------------------------------ views
    def jobs(self) -> list[CheckJob]:
        return [r.job for r in self._running.values()]

    def states(self) -> dict[JobKey, JobState]:
        return {key: _state(r) for key, r in self._running.items()}

    def state_of(self, key: JobKey) -> JobState | None:
        """One job's state, None when it is not scheduled. Its state is the one the
        last transition reported, or the state carried over by ``replace``."""
        running = self._running.get(key)
        return None if running is None else _state(running)

    def probe_tasks(self) -> list[asyncio.Task[ProbeResult]]:
        """Probe tasks in flight (TCP connects run without one)."""
        return [
            r.attempt.task
            for r in self._running.values()
            if r.attempt is not None and r.attempt.task is not None
        ]

    # ------------------------------------------------------------------ set changes
    def _apply(self, jobs: Iterable[CheckJob], not_before: float) -> None:
        wanted: dict[JobKey, CheckJob] = {}
        for job in jobs:
            if job.key in wanted and wanted[job.key] != job:
                raise ValueError(f"two different jobs for {job.name}")
            wanted[job.key] = job
        for key in [k for k in self._running if k not in wanted]:
            self._retire(key)
        for key, job in wanted.items():
            old = self._running.get(key)
            if old is not None and old.job == job:
                continue
            policy = CheckPolicy(job.check, job.target)
            if old is not None:
                if old.job.check.probe == job.check.probe:
                    policy = CheckPolicy(
                        job.check,
                        job.target,
                        state=old.policy.state,
                        weight=old.policy.weight,
                        last_error=old.policy.last_error,
                    )
                self._retire(key)
            self._launch(job, policy, not_before)

    def _launch(self, job: CheckJob, policy: CheckPolicy, not_before: float) -> None:
        anchor = self._epoch + self._phase_s(job)
        interval_s = job.check.interval.total_seconds()
        first_slot = max(0, math.ceil((not_before - anchor) / interval_s))
        running = _Running(job, policy, anchor, first_slot)
        running.on_done = functools.partial(self._finished, running)
        self._running[job.key] = running
        self._arm(running)

    def _retire(self, key: JobKey) -> None:
        running = self._running.pop(key)
        if running.armed:
            self._due.get(running.due, {}).pop(running, None)
            running.armed = False
        attempt, running.attempt = running.attempt, None
        if attempt is not None:
            attempt.cancel()
            if attempt.task is not None and not attempt.task.done():
                self._retiring.add(attempt.task)
                attempt.task.add_done_callback(self._retiring.discard)

    def _phase_s(self, job: CheckJob) -> float:
        width = min(job.check.interval.total_seconds(), self._spread_s)
        if width <= 0:
            return 0.0
        # blake2b, not crc32: crc32 is linear, so similar names ("web1", "web2") bunch up.
        digest = hashlib.blake2b(f"{job.check.name}\0{job.target}".encode(), digest_size=8)
        fraction = int.from_bytes(digest.digest(), "big") / 2**64
        return math.floor(fraction * width / _PHASE_QUANTUM_S) * _PHASE_QUANTUM_S

    # ------------------------------------------------------------------ one job's cycle
    def _arm(self, running: _Running) -> None:
        assert self._loop is not None
        bucket = self._due.get(running.due)
        if bucket is None:
            bucket = self._due[running.due] = {}
            self._loop.call_at(running.due, self._fire_due, running.due)
        bucket[running] = None
        running.armed = True

    def _fire_due(self, due: float) -> None:
        for running in self._due.pop(due, ()):
            running.armed = False
            self._fire(running)

    def _fire(self, running: _Running) -> None:
        assert self._loop is not None
        running.started = self._loop.time()
        job = running.job
        on_done = running.on_done
        try:
            if self._probe is not None:
                running.attempt = ProbeAttempt.of_coroutine(
                    self._guarded(job), on_done, name=running.name
                )
            else:
                assert self._prober is not None
                check = job.check
                running.attempt = self._prober.start(
                    check.probe,
                    job.host,
                    job.port,
                    check.timeout,
                    check.source_address,
                    check.source_interface,
                    on_done,
                    name=running.name,
                )
        except Exception as exc:  # e.g. out of file descriptors: a failed attempt, not a stall
            log.exception("cannot start probe %s", running.name)
            failed = ProbeAttempt(on_done)
            running.attempt = failed
            self._loop.call_soon(on_done, ProbeResult(ok=False, detail=f"cannot probe: {exc!r}"))

    async def _guarded(self, job: CheckJob) -> ProbeResult:
        assert self._probe is not None
        guard_s = (
            job.check.timeout.total_seconds() + SCRIPT_KILL_GRACE.total_seconds() + _GUARD_SLACK_S
        )
        try:
            async with asyncio.timeout(guard_s):
                return await self._probe(job)
        except TimeoutError:
            return ProbeResult(ok=False, detail=f"probe hung for {guard_s:g}s")

    def _finished(self, running: _Running, result: ProbeResult) -> None:
        if self._running.get(running.key) is not running or running.attempt is None:
            return  # retired meanwhile: its result belongs to nobody
        assert self._loop is not None
        running.attempt = None
        finished = self._loop.time()
        self.probes += 1
        if self._on_probe is not None:
            record = ProbeRecord(
                running.key, running.due, running.started, finished, result, running.retry
            )
            try:
                self._on_probe(record)
            except Exception:
                log.exception("on_probe callback failed for %s", running.name)
        step = running.policy.observe(result)
        if step.transition is not None:
            try:
                self._on_transition(step.transition)
            except Exception:
                log.exception("on_transition callback failed for %s", running.name)
        if step.retry_after is not None:
            running.retry = True
            running.due = finished + step.retry_after.total_seconds()
        else:
            # Next slot strictly in the future, on the grid: overrun slots are skipped.
            running.retry = False
            slot = max(
                running.slot + 1, math.floor((finished - running.anchor) / running.interval_s) + 1
            )
            self.skipped_slots += slot - running.slot - 1
            running.slot = slot
            running.due = running.anchor + slot * running.interval_s
        if self._running.get(running.key) is running:  # a callback may have replaced it
            self._arm(running)
