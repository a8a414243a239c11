"""VRRP tracking: checks and interface links move each instance's priority.

Every change of a tracked check or link recomputes the effective priority of
the instances that track it with keepalived's arithmetic
(`health.priority.effective_priority`) and feeds the state machine: a new
priority (advertised at once by a master, so a preempting backup takes over
within one advert) and FAULT for weight-0 trackers that are down.

A check's state is the check scheduler's (`runtime.checks`), read when a
priority is computed; tracking keeps no copy of it. So a reload agrees with
the scheduler on what survives it: a check whose probe did not change keeps
its state (a dead web server stays down when only its timeout changed), and a
new or re-aimed one starts from its ``initial`` state. Before the scheduler
runs a check (at start-up), it is in its ``initial`` state.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Protocol

from reconciler.health.policy import NO_TARGET, CheckTransition
from reconciler.health.priority import TrackerKind, TrackerReading, effective_priority
from reconciler.model.checks import Check, FileProbe
from reconciler.model.common import CheckState
from reconciler.model.vrrp import TrackCheck, TrackInterface, VrrpInstance
from reconciler.observability import status as report
from reconciler.runtime.checks import CheckJob, CheckResults
from reconciler.vrrp.events import Event, FaultCleared, FaultSet, PriorityChanged

log = logging.getLogger("reconciler.tracking")

FAULT_PREFIX = "track:"


class Tracked(Protocol):
    """What tracking needs of an instance driver."""

    @property
    def spec(self) -> VrrpInstance: ...

    @property
    def effective_priority(self) -> int: ...

    @property
    def faults(self) -> frozenset[str]: ...

    def feed(self, event: Event, now: float | None = None) -> None: ...


class Tracking:
    def __init__(
        self, drivers: Mapping[str, Tracked], results: CheckResults, checks: Iterable[Check] = ()
    ) -> None:
        self.drivers = drivers  # live view: instance name -> driver
        self.results = results
        self.checks: dict[str, Check] = {}
        self.links: dict[str, bool] = {}
        self.set_checks(checks)

    def set_checks(self, checks: Iterable[Check]) -> None:
        """A new revision's checks; their states stay the scheduler's (see the module doc)."""
        self.checks = {c.name: c for c in checks}

    def jobs(self) -> list[CheckJob]:
        """The probes to schedule: one per tracked check (tracking checks name their target)."""
        return [CheckJob(c) for _, c in sorted(self.checks.items())]

    # ------------------------------------------------------------ inputs
    def on_check(self, t: CheckTransition) -> None:
        if t.check not in self.checks:
            return
        log.info("check %s: %s -> %s (%s)", t.check, t.old.value, t.new.value, t.reason)
        for d in self.drivers.values():
            if any(isinstance(x, TrackCheck) and x.check == t.check for x in d.spec.track):
                self.apply(d)

    def know_links(self, links: Mapping[str, bool]) -> None:
        """The links as they are before any instance runs (start-up): known, applied to
        no instance yet."""
        self.links.update(links)

    def on_link(self, interface: str, running: bool) -> None:
        self.links[interface] = running
        for d in self.drivers.values():
            if any(
                isinstance(x, TrackInterface) and x.interface == interface for x in d.spec.track
            ):
                self.apply(d)

    # ------------------------------------------------------------ output
    def trackers(self, spec: VrrpInstance) -> list[TrackerReading]:
        out = []
        for t in spec.track:
            if isinstance(t, TrackCheck):
                check = self.checks.get(t.check)
                state, value = self._result(t.check, check)
                is_file = check is not None and isinstance(check.probe, FileProbe)
                out.append(
                    TrackerReading(
                        f"check {t.check}",
                        t.weight,
                        state,
                        value=value if is_file else None,
                        kind=TrackerKind.VALUE if is_file else TrackerKind.STATE,
                    )
                )
            else:
                running = self.links.get(t.interface)
                state = (
                    CheckState.UNKNOWN
                    if running is None
                    else (CheckState.UP if running else CheckState.DOWN)
                )
                out.append(TrackerReading(f"interface {t.interface}", t.weight, state))
        return out

    def _result(self, name: str, check: Check | None) -> tuple[CheckState, int | None]:
        """A tracked check's state and the number it carries (a file's value)."""
        known = self.results.state_of((name, NO_TARGET))
        if known is not None:
            return known.state, known.weight
        return (CheckState.UNKNOWN if check is None else check.initial), None

    def status(self, spec: VrrpInstance) -> tuple[report.TrackerStatus, ...]:
        """Each tracker of ``spec`` and its term of the effective priority, for status."""
        result = effective_priority(spec.priority, self.trackers(spec))
        return tuple(
            report.TrackerStatus(
                name=c.tracker.name,
                weight=c.tracker.weight,
                state=c.tracker.state.value,
                value=c.tracker.value,
                contribution=c.points,
                fault=c.fault,
            )
            for c in result.contributions
        )

    def effective(self, spec: VrrpInstance) -> int:
        """The effective priority of ``spec`` with its trackers as they are now (for a
        revision applied in place: its new priority and weights at once)."""
        if not spec.track:
            return spec.priority
        return effective_priority(spec.priority, self.trackers(spec)).priority

    def apply(self, driver: Tracked) -> None:
        spec = driver.spec
        if not spec.track:
            return
        result = effective_priority(spec.priority, self.trackers(spec))
        if result.priority != driver.effective_priority:
            log.info(
                "%s: effective priority %d -> %d",
                spec.name,
                driver.effective_priority,
                result.priority,
            )
            driver.feed(PriorityChanged(result.priority))
        wanted = {FAULT_PREFIX + f for f in result.faults}
        held = {f for f in driver.faults if f.startswith(FAULT_PREFIX)}
        for f in sorted(wanted - held):
            driver.feed(FaultSet(f))
        for f in sorted(held - wanted):
            driver.feed(FaultCleared(f))
