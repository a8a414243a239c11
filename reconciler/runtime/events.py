"""Where the node's events go.

- A check's transition: traced, then to real-server health when it checks a real
  server, else to VRRP tracking.
- An instance's VRRP transition: traced (with the failover as the backup saw it), to
  the memory settler, to the instance's sync group (its other members follow), to the
  reconcile loop (VIP presence follows mastership), and to the group's hooks.
- An interface's carrier change: to the instances on it (LinkUp/LinkDown) and to
  tracking.
- A reconcile pass: traced.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping

from reconciler.health.policy import CheckTransition
from reconciler.observability.tracing import Tracing
from reconciler.reconcile.loop import PassResult
from reconciler.runtime.hooks import NodeHooks
from reconciler.runtime.real_servers import RealServerHealth
from reconciler.runtime.settle import MemorySettler
from reconciler.runtime.sync_groups import SyncGroups
from reconciler.runtime.tracking import Tracking
from reconciler.runtime.vrrp_driver import InstanceDriver
from reconciler.vrrp.actions import Transitioned
from reconciler.vrrp.events import LinkDown, LinkUp
from reconciler.vrrp.states import State

# These lines were the daemon's before they moved here; log filters key on the name.
log = logging.getLogger("reconciler.daemon")


class NodeEvents:
    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        tracing: Tracing,
        drivers: Mapping[str, InstanceDriver],
        tracking: Tracking,
        real_servers: RealServerHealth,
        sync_groups: SyncGroups,
        settler: MemorySettler,
        hooks: NodeHooks,
        wake_reconcile: Callable[[], None],
    ) -> None:
        self._loop = loop
        self._tracing = tracing
        self._drivers = drivers  # live view: instance name -> driver
        self._tracking = tracking
        self._real_servers = real_servers
        self._sync_groups = sync_groups
        self._settler = settler
        self._hooks = hooks
        self._wake_reconcile = wake_reconcile

    def on_check(self, t: CheckTransition) -> None:
        if t.state_changed:
            self._tracing.check_transition(
                t.check, t.target, t.old.value, t.new.value, t.reason, time.time()
            )
        if not self._real_servers.on_check(t):
            self._tracking.on_check(t)

    def on_transition(self, driver: InstanceDriver, t: Transitioned) -> None:
        self._trace_transition(driver, t)
        self._settler.on_transition()
        self._sync_groups.on_transition(driver.name, t)
        self._wake_reconcile()  # VIP presence follows mastership
        self._hooks.on_group_member(driver.spec.sync_group)

    def on_link(self, interface: str, running: bool) -> None:
        log.info("link %s is %s", interface, "up" if running else "down")
        for driver in [d for d in self._drivers.values() if d.spec.interface == interface]:
            driver.feed(LinkUp() if running else LinkDown())
        self._tracking.on_link(interface, running)

    def on_pass(self, result: PassResult) -> None:
        if not self._tracing.enabled:
            return
        self._tracing.reconcile_pass(
            result.outcome.value,
            time.time() - result.duration_s,
            result.duration_s,
            result.writes,
            [
                (r.step.action.value, r.step.kind, "/".join(r.step.key), r.error)
                for r in result.steps
            ],
        )

    def _trace_transition(self, driver: InstanceDriver, t: Transitioned) -> None:
        if not self._tracing.enabled:
            return
        now = time.time()
        spec = driver.spec
        self._tracing.vrrp_transition(
            spec.name,
            spec.vrid,
            spec.interface,
            t.from_state.name.lower(),
            t.to_state.name.lower(),
            t.reason.value,
            driver.effective_priority,
            now,
        )
        heard = driver.last_advert_mono
        if t.to_state is State.MASTER and t.from_state is State.BACKUP and heard is not None:
            # The failover as the backup saw it: from the last advert it heard (the
            # master's last sign of life, or its priority-0 goodbye) to taking over. A
            # backup that never heard a master (the first node up) fails over from nobody.
            started = now - (self._loop.time() - heard)
            self._tracing.failover(spec.name, spec.vrid, started, now, t.reason.value)
