"""The node's status, assembled from the parts that run (observability/status.py types).

What the status says is read on the event loop (``status_later``); building the
snapshot from it may run on another thread: the status listener does so off the loop,
since at 500 instances building their status objects is most of the cost of a scrape.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

from reconciler.model.ipvs import Endpoint
from reconciler.observability.status import (
    CheckStatus,
    ErrorCount,
    NodeStatus,
    RealServerStatus,
    ReconcileStatus,
)
from reconciler.reconcile.loop import ReconcileLoop
from reconciler.revision.gate import GateStatus
from reconciler.revision.git_policy import GitSourceStatus
from reconciler.runtime.checks import CheckScheduler, JobKey, ProbeRecord
from reconciler.runtime.instances import InstanceSet
from reconciler.runtime.ipvs_access import IpvsAccess
from reconciler.runtime.notify import Notifier
from reconciler.runtime.revision_apply import RunningRevision
from reconciler.runtime.sysctls import SysctlKeeper
from reconciler.runtime.tracking import Tracking
from reconciler.runtime.vrrp_driver import instance_status

# Instance statuses built between two chances for the event loop to take the interpreter
# lock, when a status is built beside it (observability/metrics.py: YIELD_EVERY_ROWS).
STATUS_YIELD_EVERY = 32


class ProbeStats:
    """Per check and target: probes finished, failures, seconds in probes, worst lateness."""

    def __init__(self) -> None:
        self._stats: dict[JobKey, list[float]] = {}

    def record(self, record: ProbeRecord) -> None:
        stats = self._stats.setdefault(record.key, [0, 0, 0.0, 0.0])
        stats[0] += 1
        stats[1] += 0 if record.result.ok else 1
        stats[2] += record.duration_s
        stats[3] = max(stats[3], record.lateness_s)

    def of(self, key: JobKey) -> tuple[int, int, float, float]:
        n, bad, secs, late = self._stats.get(key, [0, 0, 0.0, 0.0])
        return int(n), int(bad), secs, late


class StatusView:
    def __init__(
        self,
        node: str,
        source_label: str,
        running: RunningRevision,
        instances: InstanceSet,
        tracking: Tracking,
        checks: CheckScheduler,
        probe_stats: ProbeStats,
        reconcile: ReconcileLoop,
        ipvs: IpvsAccess,
        sysctls: SysctlKeeper,
        notifier: Notifier,
        revisions: Callable[[], GateStatus] | None = None,
        git: Callable[[], GitSourceStatus] | None = None,
    ) -> None:
        self._node = node
        self._source_label = source_label
        self._running = running
        self._instances = instances
        self._tracking = tracking
        self._checks = checks
        self._probe_stats = probe_stats
        self._reconcile = reconcile
        self._ipvs = ipvs
        self._sysctls = sysctls
        self._notifier = notifier
        self._revisions = revisions  # the gate's status: applied, attempted, conditions
        self._git = git  # the git source's fetches and last error, when polling one

    def status(self) -> NodeStatus:
        return self.status_later()()

    def status_later(self) -> Callable[[], NodeStatus]:
        """Everything the status says, read now (on the event loop); the function returned
        builds the snapshot from what was read, on any thread."""
        gate = self._revisions() if self._revisions is not None else None
        stalled = next((c for c in gate.conditions if c.type == "Stalled"), None) if gate else None
        drivers = self._instances.drivers
        muxes = self._instances.muxes
        captured = [
            (d.capture(), self._tracking.status(d.spec) if d.spec.track else ())
            for d in (drivers[n] for n in sorted(drivers))
        ]
        revision = self._running.revision
        node = NodeStatus(
            node=self._node,
            cluster=revision.cluster,
            file=self._source_label,
            revision=revision.digest,
            started_unix_s=self._running.started_unix_s,
            applied_unix_s=self._running.applied_unix_s,
            # Reloads: every applied attempt after the first revision; failures: every
            # attempt refused as invalid or that failed to apply.
            reloads_ok=max(gate.applies - 1, 0) if gate else 0,
            reloads_failed=gate.failures if gate else 0,
            last_reload_error=stalled.message if stalled and stalled.status else None,
            commit=revision.commit,
            revisions=gate,
            git=self._git() if self._git is not None else None,
            instances=(),
            sockets=tuple(
                muxes[k].status() for k in sorted(muxes, key=lambda k: (k[0], k[1].value))
            ),
            checks=self._check_status(),
            reconcile=self._reconcile_status(),
            errors=self._error_counts(),
        )

        def build() -> NodeStatus:
            instances = []
            for k, (c, trackers) in enumerate(captured):
                if not k % STATUS_YIELD_EVERY:
                    time.sleep(0)  # beside the loop: a chance for it to take the lock
                instances.append(instance_status(c, trackers))
            return dataclasses.replace(node, instances=tuple(instances))

        return build

    def _check_status(self) -> tuple[CheckStatus, ...]:
        out = []
        for key, js in sorted(self._checks.states().items()):
            n, bad, secs, late = self._probe_stats.of(key)
            out.append(
                CheckStatus(
                    check=js.check,
                    target=js.target,
                    state=js.state.value,
                    detail=js.detail,
                    probes=n,
                    probe_failures=bad,
                    probe_seconds_sum=secs,
                    probe_lateness_seconds_max=late,
                    last_error=js.last_error,
                )
            )
        return tuple(out)

    def _error_counts(self) -> tuple[ErrorCount, ...]:
        tallies = (*self._instances.tallies.all(), self._notifier.start_failures)
        return tuple(
            ErrorCount(t.operation, kind, n)
            for t in tallies
            for kind, n in sorted(t.counts.items())
        )

    def _reconcile_status(self) -> ReconcileStatus:
        loop = self._reconcile
        c = loop.counters
        return ReconcileStatus(
            enabled=True,
            passes=dict(c.passes),
            writes=c.writes,
            last_outcome=c.last_outcome,
            last_error=c.last_error,
            last_duration_s=c.last_duration_s,
            conflicts=tuple(f"{s.kind} {'/'.join(s.key)}" for s in loop.conflicts),
            draining=tuple("/".join(k) for k in loop.draining),
            ipvs_error=self._ipvs.error,
            ipvs_required=bool(self._running.config.services),
            real_servers=tuple(
                RealServerStatus(
                    service=str(d.service),
                    server=str(Endpoint(d.address, d.port, d.forwarding)),
                    weight=d.weight,
                    active_connections=d.active_connections,
                    inactive_connections=d.inactive_connections,
                )
                for d in loop.last_dests
            ),
            sysctls=dict(self._sysctls.results),
        )
