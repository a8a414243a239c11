"""Rise/fall policy: one check's state from its stream of probe results (pure).

Events in, decisions out. The driver (``runtime/checks.py``) runs a probe, hands
the :class:`ProbeResult` to :meth:`CheckPolicy.observe` and gets a
:class:`PolicyStep` back: maybe a :class:`CheckTransition` to publish, maybe a
request to retry the probe after a delay. No clocks here: the delay is data.

The counting follows keepalived's ``vrrp_script`` (``vrrp_scheduler.c``):

* ``rise`` consecutive successes take a check from DOWN to UP, ``fall``
  consecutive failures from UP to DOWN; a result of the other kind restarts
  the count.
* From UNKNOWN (keepalived's init state) the first counted result decides
  either way ("one success is enough"), so a fresh daemon knows where it
  stands after one interval instead of ``rise`` or ``fall`` intervals.
* ``initial: down`` (keepalived ``alpha`` / script ``init_fail``) needs
  ``rise`` successes; ``initial: up`` needs ``fall`` failures.

Retries follow keepalived's checkers (``retry`` / ``delay_before_retry``): a
failed attempt with retries left is not counted; the driver tries again after
``retry_delay``. Only when ``retries`` extra attempts have all failed does the
probe count as one failure. A success resets the retry budget.

Values: a probe may carry a number in :attr:`ProbeResult.weight` (the integer
in a tracked file, or the weight a ``dynamic_weight`` script returned). The
policy remembers the last number a successful result carried and publishes a
transition with ``old == new`` when that number changes while the state stays
the same, so consumers recompute priorities and real-server weights.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from reconciler.model.checks import Check
from reconciler.model.common import CheckState, IPAddress

NO_TARGET = "-"
"""Target label of probes that go nowhere on the network (script, file, interface)."""


def target_label(host: IPAddress | None, port: int | None) -> str:
    """``192.0.2.1:80``, ``[2001:db8::1]:80``, ``192.0.2.1`` or ``-``: a stable metric label."""
    if host is None:
        return NO_TARGET if port is None else f":{port}"
    text = f"[{host}]" if host.version == 6 and port is not None else str(host)
    return text if port is None else f"{text}:{port}"


@dataclass(frozen=True)
class ProbeResult:
    """One probe attempt's outcome."""

    ok: bool
    detail: str  # why, for logs and status: "HTTP 200", "connect: Connection refused"
    weight: int | None = None  # a number the probe returned (file value, dynamic weight)


@dataclass(frozen=True)
class CheckTransition:
    """A check's state (or the number it carries) changed for one target."""

    check: str
    target: str
    old: CheckState
    new: CheckState
    reason: str
    weight: int | None = None  # the number in effect after the change (None: none reported)

    @property
    def state_changed(self) -> bool:
        return self.old is not self.new


@dataclass(frozen=True)
class PolicyStep:
    """What the driver does after feeding one result."""

    transition: CheckTransition | None = None
    retry_after: timedelta | None = None  # run the probe again after this delay, not counted yet

    @property
    def counted(self) -> bool:
        """True when the result was counted (not swallowed by a pending retry)."""
        return self.retry_after is None


_NOTHING = PolicyStep()  # the common case, shared: a probe a millisecond allocates enough


class CheckPolicy:
    """Rise/fall/retry state of one check against one target."""

    def __init__(
        self,
        check: Check,
        target: str = NO_TARGET,
        *,
        state: CheckState | None = None,
        weight: int | None = None,
        last_error: str | None = None,
    ) -> None:
        """``state``/``weight``/``last_error`` carry a previous policy's outcome over (a
        check whose schedule changed but whose probe did not); by default the check
        starts in its configured ``initial`` state."""
        if check.rise < 1 or check.fall < 1 or check.retries < 0:
            raise ValueError(f"check {check.name}: rise and fall must be >= 1, retries >= 0")
        self.check = check
        self.target = target
        self._state = check.initial if state is None else state
        self._successes = 0  # consecutive counted successes
        self._failures = 0  # consecutive counted failures
        self._retries_used = 0  # failed attempts swallowed since the last counted result
        self._weight = weight
        self._last_detail = ""
        self._last_error = last_error

    # ------------------------------------------------------------------ read-only views
    @property
    def state(self) -> CheckState:
        return self._state

    @property
    def weight(self) -> int | None:
        """The number the last successful result carried (file value, dynamic weight)."""
        return self._weight

    @property
    def successes(self) -> int:
        return self._successes

    @property
    def failures(self) -> int:
        return self._failures

    @property
    def retries_used(self) -> int:
        return self._retries_used

    @property
    def last_detail(self) -> str:
        return self._last_detail

    @property
    def last_error(self) -> str | None:
        """Why the last failed attempt failed (retried ones included); None before any."""
        return self._last_error

    # ------------------------------------------------------------------ the one input
    def observe(self, result: ProbeResult) -> PolicyStep:
        """Feed one probe attempt's result; returns what to publish and whether to retry."""
        self._last_detail = result.detail
        if not result.ok:
            self._last_error = result.detail
        if not result.ok and self._retries_used < self.check.retries:
            self._retries_used += 1
            return PolicyStep(retry_after=self.check.retry_delay)
        self._retries_used = 0
        transition = self._count_success(result) if result.ok else self._count_failure(result)
        return _NOTHING if transition is None else PolicyStep(transition=transition)

    def _count_success(self, result: ProbeResult) -> CheckTransition | None:
        self._failures = 0
        self._successes = min(self._successes + 1, self.check.rise)
        old_weight, self._weight = (
            self._weight,
            result.weight if result.weight is not None else self._weight,
        )
        if self._state is CheckState.UNKNOWN or (
            self._state is CheckState.DOWN and self._successes >= self.check.rise
        ):
            return self._transition(CheckState.UP, self._why("success", result))
        if self._state is CheckState.UP and self._weight != old_weight:
            return self._transition(
                CheckState.UP, f"value {old_weight} -> {self._weight}: {result.detail}"
            )
        return None

    def _count_failure(self, result: ProbeResult) -> CheckTransition | None:
        self._successes = 0
        self._failures = min(self._failures + 1, self.check.fall)
        if self._state is CheckState.UNKNOWN or (
            self._state is CheckState.UP and self._failures >= self.check.fall
        ):
            return self._transition(CheckState.DOWN, self._why("failure", result))
        return None

    def _why(self, kind: str, result: ProbeResult) -> str:
        if self._state is CheckState.UNKNOWN:
            return f"first result: {result.detail}"
        count = self._successes if kind == "success" else self._failures
        limit = "rise" if kind == "success" else "fall"
        plural = ("es" if kind == "success" else "s") if count != 1 else ""
        retried = (
            f", each after {self.check.retries} retries"
            if kind == "failure" and self.check.retries
            else ""
        )
        return f"{count} consecutive {kind}{plural} ({limit} {count}{retried}): {result.detail}"

    def _transition(self, new: CheckState, reason: str) -> CheckTransition:
        old, self._state = self._state, new
        return CheckTransition(
            check=self.check.name,
            target=self.target,
            old=old,
            new=new,
            reason=reason,
            weight=self._weight,
        )
