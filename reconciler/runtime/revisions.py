"""The runtime side of revisions: any ``Source`` through the pure gate into the node.

``RevisionConsumer`` reads a source's updates, feeds them to the ``RevisionGate`` and
carries out its decisions: the artifact's bytes are validated in a thread (the event
loop keeps sending adverts meanwhile) and handed to the node's apply function. The
bytes validated are the artifact's bytes: the file is not read a second time.

Coalescing: the gate keeps one attempt in flight and holds only the newest revision that
arrives meanwhile; the source folds a burst of events (a batch of file events, repeated
SIGHUPs) into one look. A burst therefore gives one attempt, or two when it straddles
the start of one.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from typing import Any, Generic, Protocol, TypeVar, assert_never

from reconciler.config.diagnostics import InvalidConfig
from reconciler.model.revision import Artifact, Refusal
from reconciler.observability.tracing import Tracing
from reconciler.revision.gate import (
    Applied,
    ApplyFailed,
    ArtifactSeen,
    Attempt,
    Event,
    GateStatus,
    RefusalSeen,
    Resume,
    RevisionGate,
    Suspend,
    Validated,
    ValidationFailed,
)
from reconciler.runtime.revision_store import RevisionStore, Suspension
from reconciler.source import Source


class ApplyResult(Protocol):
    """What applying a revision changed (runtime.instances.InstancesApplied)."""

    @property
    def changed(self) -> list[str]: ...

    def summary(self) -> str: ...


log = logging.getLogger("reconciler.revisions")

R = TypeVar("R")


class NotStarted(Exception):
    """The first revision cannot run: the source refused it or it is invalid."""


class RevisionConsumer(Generic[R]):
    """Feeds one source through the gate and applies what the gate decides.

    ``prepare(artifact, suspended)`` validates the bytes and builds what ``apply`` takes
    (run in a thread; raises ``InvalidConfig`` or one of ``invalid``); ``apply`` changes
    the running node and returns the names of what it changed (raises one of
    ``unstartable`` when the node cannot run it; nothing is changed then).
    """

    def __init__(
        self,
        source: Source,
        prepare: Callable[[Artifact, frozenset[str]], R],
        *,
        gate: RevisionGate | None = None,
        invalid: tuple[type[Exception], ...] = (),
        unstartable: tuple[type[Exception], ...] = (OSError,),
        store: RevisionStore | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.source = source
        self.gate = gate if gate is not None else RevisionGate()
        self._prepare = prepare
        self._invalid: tuple[type[Exception], ...] = (InvalidConfig, *invalid)
        self._unstartable = unstartable
        self._tracing: Tracing | None = None
        self._clock = clock
        self._updates: AsyncIterator[Artifact | Refusal] = source.updates()
        self._attempts: asyncio.Queue[Attempt] = asyncio.Queue()
        self._apply: Callable[[R], Awaitable[ApplyResult]] | None = None
        self._first: Attempt | None = None
        self._store = store
        self._restore = Suspension()  # suspended parts to put back once started
        self.attempts_done = 0  # finished attempts, for tests and benchmarks

    # ------------------------------------------------------------ start-up
    async def first(self) -> R:
        """The first revision, validated; NotStarted (with every reason logged) when the
        source refuses it or it is invalid. ``started()`` records it once running.

        A node that was suspended when it stopped starts from the revision it ran then
        (kept in the store), and its suspended parts stay suspended: the source's newest
        revision waits for a resume."""
        if self._store is not None:
            kept = await self._kept_revision()
            if kept is not None:
                return kept
        async for item in self._updates:
            if isinstance(item, Refusal):
                self._feed(RefusalSeen(item))
                raise NotStarted(f"{item.reason}: {item.detail}")
            (attempt,) = self._feed(ArtifactSeen(item), queue=False)
            try:
                prepared = await asyncio.to_thread(self._prepare, item, attempt.suspended)
            except self._invalid as exc:
                detail = self._log_invalid(exc, item)
                self._feed(ValidationFailed(item.digest, detail))
                raise NotStarted(f"{self._name(item)}: invalid; not starting") from exc
            self._feed(Validated(item.digest))
            self._first = attempt
            return prepared
        raise NotStarted(f"{self.source!r} ended before its first revision")

    async def _kept_revision(self) -> R | None:
        assert self._store is not None
        self._restore = await asyncio.to_thread(self._store.load_suspension)
        if not self._restore.any:
            return None
        kept = await asyncio.to_thread(self._store.load_applied)
        if kept is None or not self._restore.node:
            # Only instances suspended: the newest revision applies around them (they
            # take their spec from it: there is no running one yet).
            return None
        try:
            prepared = await asyncio.to_thread(self._prepare, kept, frozenset())
        except self._invalid as exc:
            log.warning("the kept revision %s is invalid now (%s)", kept.short_digest, exc)
            return None
        (attempt,) = self._feed(ArtifactSeen(kept), queue=False)
        self._feed(Validated(kept.digest))
        self._first = attempt
        log.warning(
            "node suspended: starting from the revision it ran, %s; newer ones wait for "
            "`reconciler resume`",
            kept.short_digest,
        )
        return prepared

    def started(self) -> None:
        """The first revision runs."""
        assert self._first is not None
        artifact = self._first.artifact
        self._feed(Applied(artifact.digest))
        self._first = None
        self._keep(artifact)
        if self._restore.node:
            self._feed(Suspend())
        for name in self._restore.instances:
            self._feed(Suspend(name))

    # ------------------------------------------------------------ running
    async def run(
        self, apply: Callable[[R], Awaitable[ApplyResult]], tracing: Tracing | None = None
    ) -> None:
        """Until cancelled: read the source, attempt what the gate decides (each attempt
        a ``reconciler.reload`` span when ``tracing`` is given)."""
        self._apply = apply
        self._tracing = tracing
        worker = asyncio.create_task(self._work(), name="revision-attempts")
        try:
            async for item in self._updates:
                if isinstance(item, Refusal):
                    log.error(
                        "revision refused (%s): %s; still running the last good revision",
                        item.reason,
                        item.detail,
                    )
                    self._feed(RefusalSeen(item))
                else:
                    self._feed(ArtifactSeen(item))
        finally:
            worker.cancel()
            await asyncio.wait({worker})
            with contextlib.suppress(Exception):
                await self._updates.aclose()  # type: ignore[attr-defined]

    def refresh(self) -> None:
        """Look now (SIGHUP, POST /hooks/refresh)."""
        self.source.refresh()

    def suspend(self, instance: str | None = None) -> None:
        self._feed(Suspend(instance))
        self._keep_suspension()
        log.info("suspended: %s takes no new revision", instance or "node")

    def resume(self, instance: str | None = None) -> None:
        log.info("resumed: %s", instance or "node")
        self._feed(Resume(instance))
        self._keep_suspension()

    def _keep_suspension(self) -> None:
        """Written at once (an operator's command, rare): a restart right after it
        must find it."""
        if self._store is None:
            return
        st = self.gate.status()
        try:
            self._store.save_suspension(Suspension(st.suspended, st.suspended_instances))
        except OSError as exc:
            log.error("suspension not kept across a restart: %s", exc)

    def _keep(self, artifact: Artifact) -> None:
        if self._store is None:
            return
        try:
            self._store.save_applied(artifact)
        except OSError as exc:
            log.error("applied revision not kept in the state dir: %s", exc)

    def status(self) -> GateStatus:
        return self.gate.status()

    def _feed(self, event: Event, *, queue: bool = True) -> list[Attempt]:
        decisions = self.gate.handle(event, self._clock())
        if queue:
            for attempt in decisions:
                self._attempts.put_nowait(attempt)
        return decisions

    async def _work(self) -> None:
        while True:
            attempt = await self._attempts.get()
            await self._attempt(attempt)
            self.attempts_done += 1

    async def _attempt(self, attempt: Attempt) -> None:
        assert self._apply is not None
        artifact = attempt.artifact
        digest = artifact.digest
        try:
            # Parsed and validated in a thread: a large file takes a good part of a
            # second, and the event loop must keep sending adverts meanwhile (it gets
            # the GIL back at least every sys.getswitchinterval(), 5 ms).
            prepared = await asyncio.to_thread(self._prepare, artifact, attempt.suspended)
        except self._invalid as exc:
            detail = self._log_invalid(exc, artifact)
            log.error(
                "reload: %s is invalid; still running the last good revision",
                self._name(artifact),
            )
            self._feed(ValidationFailed(digest, detail))
            self._trace(artifact, False, detail, ())
            return
        self._feed(Validated(digest))
        try:
            result = await self._apply(prepared)
        except self._unstartable as exc:
            log.error("reload: %s; still running the last good revision", exc)
            self._feed(ApplyFailed(digest, str(exc)))
            self._trace(artifact, False, str(exc), ())
            return
        except Exception as exc:
            # A bug, not a bad revision: say so loudly, but keep taking revisions (a dead
            # worker would silently stop every later one).
            log.exception("reload: unexpected error applying revision %s", artifact.short_digest)
            self._feed(ApplyFailed(digest, f"unexpected error: {exc!r}"))
            self._trace(artifact, False, repr(exc), ())
            return
        changed = result.changed
        self._feed(Applied(digest, tuple(changed)))
        await asyncio.to_thread(self._keep, artifact)
        self._trace(artifact, True, None, changed)
        commit = artifact.provenance.commit
        log.info(
            "reload: revision %s%s applied: %s",
            artifact.short_digest,
            f" (commit {commit[:12]})" if commit else "",
            result.summary(),
        )

    def _log_invalid(self, exc: Exception, artifact: Artifact) -> str:
        if isinstance(exc, InvalidConfig):
            for d in exc.diagnostics:
                log.error("%s", d)
            return str(exc.diagnostics[0]) if exc.diagnostics else "invalid"
        log.error("%s: %s", self._name(artifact), exc)
        return str(exc)

    def _trace(
        self, artifact: Artifact, ok: bool, error: str | None, changed: Sequence[str]
    ) -> None:
        if self._tracing is not None:
            self._tracing.reload(artifact.short_digest, ok, error, list(changed), self._clock())

    @staticmethod
    def _name(artifact: Artifact) -> str:
        return artifact.provenance.location


class ControlCommand(enum.Enum):
    """What the control socket may be asked (the value is the request's "command")."""

    SUSPEND = "suspend"
    RESUME = "resume"


_COMMANDS = {c.value: c for c in ControlCommand}


class SuspendControl:
    """The suspend and resume commands of the control socket, for one consumer.

    A request is ``{"command": "suspend" | "resume", "instance": NAME | null}``; the
    answer says what is suspended afterwards. An instance must be one this node runs.
    """

    def __init__(
        self, consumer: RevisionConsumer[R], instances: Callable[[], Iterable[str]]
    ) -> None:
        self._consumer = consumer
        self._instances = instances

    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        raw = request.get("command")
        instance = request.get("instance")
        command = _COMMANDS.get(raw) if isinstance(raw, str) else None
        if command is None:
            return {"ok": False, "error": f"unknown command {raw!r}"}
        if instance is not None and instance not in set(self._instances()):
            known = ", ".join(sorted(self._instances())) or "none"
            return {"ok": False, "error": f"no instance {instance!r} here (instances: {known})"}
        if command is ControlCommand.SUSPEND:
            self._consumer.suspend(instance)
        elif command is ControlCommand.RESUME:
            self._consumer.resume(instance)
        else:
            assert_never(command)
        st = self._consumer.status()
        return {
            "ok": True,
            "suspended": st.suspended,
            "suspended_instances": list(st.suspended_instances),
            "pending": st.pending,
        }
