"""The revision gate: which revision of the desired state a node attempts, sans-I/O.

``RevisionGate.handle(event, now)`` takes what the sources and the runtime report
(an artifact seen, a refusal, a validation or apply failure, an apply done, a suspend
or resume) and returns the decisions: at most one ``Attempt`` in flight at a time.
``now`` is wall-clock Unix seconds, only recorded for status.

Rules (DESIGN.md 7, 11, 12):
- one attempt at a time; whatever arrives meanwhile is held, and only the newest of it
  is attempted next, so a burst of revisions gives at most one more attempt;
- a revision with the bytes of the one running is not applied again (a commit that did
  not touch the file only updates where the running bytes came from);
- bytes that failed validation fail the same way again: they are not retried until the
  input changes; bytes that failed to apply (an interface missing, say) are retried
  when a source hands them on again (SIGHUP, the HTTP trigger);
- while the node is suspended nothing new is attempted; the newest revision waits and
  is attempted on resume. Suspended instances keep running as they are: the attempt
  names them, and the runtime leaves them out of the change.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from reconciler.model.revision import Artifact, Provenance, Refusal

# Reasons of failed attempts, as bounded metric labels beside the sources' refusal reasons.
INVALID = "invalid"
APPLY_FAILED = "apply-failed"


# ---------------------------------------------------------------- events
@dataclass(frozen=True)
class ArtifactSeen:
    artifact: Artifact


@dataclass(frozen=True)
class RefusalSeen:
    refusal: Refusal


@dataclass(frozen=True)
class Validated:
    """The attempted bytes passed validation (schema, semantics, this node's share)."""

    digest: str


@dataclass(frozen=True)
class ValidationFailed:
    digest: str
    detail: str  # the first located error, FILE:LINE:COL: message


@dataclass(frozen=True)
class ApplyFailed:
    digest: str
    detail: str


@dataclass(frozen=True)
class Applied:
    digest: str
    changed: tuple[str, ...] = ()  # instances the apply touched


@dataclass(frozen=True)
class Suspend:
    instance: str | None = None  # None: the whole node


@dataclass(frozen=True)
class Resume:
    instance: str | None = None


Event = (
    ArtifactSeen
    | RefusalSeen
    | Validated
    | ValidationFailed
    | ApplyFailed
    | Applied
    | Suspend
    | Resume
)


# ---------------------------------------------------------------- decisions
@dataclass(frozen=True)
class Attempt:
    """Validate these bytes and apply them, leaving the suspended instances as they run."""

    artifact: Artifact
    suspended: frozenset[str] = frozenset()


# ---------------------------------------------------------------- status
@dataclass(frozen=True)
class RevisionRecord:
    """One revision as status shows it."""

    digest: str  # sha256 of the bytes, hex
    source: str
    commit: str | None
    author: str | None
    committed_unix_s: float | None
    verification: str  # Verification value
    at_unix_s: float  # when it was applied / attempted / verified
    error: str | None = None  # attempts only: why it failed
    reason: str | None = None  # attempts only: bounded reason (invalid, apply-failed)


@dataclass(frozen=True)
class Condition:
    """Kubernetes-style condition: type, status, a CamelCase reason and a message."""

    type: str  # Ready | Reconciling | Stalled
    status: bool
    reason: str
    message: str


@dataclass(frozen=True)
class GateStatus:
    applied: RevisionRecord | None
    attempted: RevisionRecord | None  # the latest attempt, failed or not
    verified: RevisionRecord | None  # the latest revision that passed validation
    conditions: tuple[Condition, ...]
    suspended: bool  # the whole node takes no new revision
    suspended_instances: tuple[str, ...]
    pending: str | None  # digest of a revision waiting (suspended, or behind an attempt)
    last_refusal: str | None  # "reason: detail" of the newest refusal by a source
    refused: dict[str, int] = field(default_factory=dict)  # by reason, attempts included
    applies: int = 0  # attempts applied, the first revision included
    failures: int = 0  # attempts refused (invalid) or failed to apply


class RevisionGate:
    """Holds last applied / attempted / verified and decides what to attempt next."""

    def __init__(self) -> None:
        self.applied: Artifact | None = None
        self._applied_at = 0.0
        self._applied_held: frozenset[str] = frozenset()  # suspended when it was applied
        self.in_flight: Attempt | None = None
        self._attempted: RevisionRecord | None = None
        self._verified: RevisionRecord | None = None
        self.pending: Artifact | None = None
        self.latest: Artifact | Refusal | None = None
        self.suspended = False
        self.suspended_instances: set[str] = set()
        self.refused: Counter[str] = Counter()
        self.applies = 0
        self.failures = 0
        self._failed: tuple[str, str] | None = None  # (digest, reason) of the last failure

    # ------------------------------------------------------------ events
    def handle(self, event: Event, now: float) -> list[Attempt]:
        match event:
            case ArtifactSeen(artifact):
                self.latest = artifact
                return self._consider(artifact)
            case RefusalSeen(refusal):
                self.latest = refusal
                self.refused[refusal.reason] += 1
                return []
            case Validated(digest):
                if self.in_flight is not None and self.in_flight.artifact.digest == digest:
                    self._verified = _record(self.in_flight.artifact, now)
                return []
            case ValidationFailed(digest, detail):
                return self._failed_attempt(digest, INVALID, detail, now)
            case ApplyFailed(digest, detail):
                return self._failed_attempt(digest, APPLY_FAILED, detail, now)
            case Applied(digest):
                attempt = self._finish(digest)
                if attempt is None:
                    return []
                self.applied = attempt.artifact
                self._applied_at = now
                self._applied_held = attempt.suspended
                self._attempted = _record(attempt.artifact, now)
                self._failed = None
                self.applies += 1
                return self._next()
            case Suspend(None):
                self.suspended = True
                return []
            case Suspend(instance):
                assert instance is not None
                self.suspended_instances.add(instance)
                return []
            case Resume(None):
                self.suspended = False
                return self._after_resume()
            case Resume(instance):
                self.suspended_instances.discard(instance)
                return self._after_resume()
        raise AssertionError(event)

    def _consider(self, artifact: Artifact) -> list[Attempt]:
        if self.in_flight is not None:
            same = self.in_flight.artifact.digest == artifact.digest
            self.pending = None if same else artifact
            return []
        self.pending = None
        if (
            self.applied is not None
            and self.applied.digest == artifact.digest
            and self._applied_held == frozenset(self.suspended_instances)
        ):
            # The same bytes run already (a commit that did not touch the file, a touch,
            # a SIGHUP): where they came from is news, nothing else is.
            self.applied = artifact
            self._failed = None
            return []
        if self._failed == (artifact.digest, INVALID):
            return []  # the same bytes fail validation the same way
        if self.suspended:
            self.pending = artifact
            return []
        self.in_flight = Attempt(artifact, frozenset(self.suspended_instances))
        return [self.in_flight]

    def _failed_attempt(self, digest: str, reason: str, detail: str, now: float) -> list[Attempt]:
        attempt = self._finish(digest)
        if attempt is None:
            return []
        self._attempted = _record(attempt.artifact, now, error=detail, reason=reason)
        self._failed = (digest, reason)
        self.refused[reason] += 1
        self.failures += 1
        return self._next()

    def _finish(self, digest: str) -> Attempt | None:
        """The attempt in flight, done; None when the report is not about it (stale)."""
        attempt = self.in_flight
        if attempt is None or attempt.artifact.digest != digest:
            return None
        self.in_flight = None
        return attempt

    def _next(self) -> list[Attempt]:
        if self.pending is None or self.suspended:
            return []
        return self._consider(self.pending)

    def _after_resume(self) -> list[Attempt]:
        if self.suspended or self.in_flight is not None:
            return []
        if self.pending is not None:
            return self._next()
        # Instances held back when the running revision was applied take it now.
        if self.applied is not None and self._applied_held != frozenset(self.suspended_instances):
            return self._consider(self.applied)
        return []

    # ------------------------------------------------------------ status
    def status(self) -> GateStatus:
        applied = None
        if self.applied is not None:
            applied = _record(self.applied, self._applied_at)
        return GateStatus(
            applied=applied,
            attempted=self._attempted,
            verified=self._verified,
            conditions=self._conditions(),
            suspended=self.suspended,
            suspended_instances=tuple(sorted(self.suspended_instances)),
            pending=self.pending.digest if self.pending is not None else None,
            last_refusal=(
                f"{self.latest.reason}: {self.latest.detail}"
                if isinstance(self.latest, Refusal)
                else None
            ),
            refused=dict(sorted(self.refused.items())),
            applies=self.applies,
            failures=self.failures,
        )

    def _conditions(self) -> tuple[Condition, ...]:
        reconciling = self.in_flight is not None or (
            self.pending is not None and not self.suspended
        )
        stalled: Condition
        if isinstance(self.latest, Refusal) and not reconciling:
            r = self.latest
            stalled = Condition("Stalled", True, "Refused", f"{r.reason}: {r.detail}")
        elif self._failed is not None and self._attempted is not None and not reconciling:
            why = "ValidationFailed" if self._failed[1] == INVALID else "ApplyFailed"
            stalled = Condition("Stalled", True, why, self._attempted.error or "")
        else:
            stalled = Condition("Stalled", False, "NotStalled", "")
        if reconciling:
            what = self.in_flight.artifact if self.in_flight is not None else self.pending
            assert what is not None
            progress = Condition("Reconciling", True, "Progressing", f"attempting {what.digest}")
        elif self.suspended and self.pending is not None:
            progress = Condition(
                "Reconciling", False, "Suspended", f"{self.pending.digest} waits for resume"
            )
        else:
            progress = Condition("Reconciling", False, "Idle", "")
        if self.applied is None:
            ready = Condition("Ready", False, "NotApplied", "no revision applied yet")
        elif stalled.status:
            ready = Condition("Ready", False, stalled.reason, stalled.message)
        elif reconciling:
            ready = Condition("Ready", False, "Progressing", progress.message)
        elif self.suspended or self.suspended_instances:
            parts = ", ".join(sorted(self.suspended_instances)) or "node"
            ready = Condition(
                "Ready", True, "Suspended", f"applied {self.applied.digest}; suspended: {parts}"
            )
        else:
            ready = Condition("Ready", True, "Applied", f"applied {self.applied.digest}")
        return (ready, progress, stalled)


def _record(
    artifact: Artifact, at: float, *, error: str | None = None, reason: str | None = None
) -> RevisionRecord:
    p: Provenance = artifact.provenance
    return RevisionRecord(
        digest=artifact.digest,
        source=p.source,
        commit=p.commit,
        author=p.author,
        committed_unix_s=p.committed_unix_s,
        verification=artifact.verification.value,
        at_unix_s=at,
        error=error,
        reason=reason,
    )
