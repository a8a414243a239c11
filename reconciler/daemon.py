"""The composition root: the only place that builds and wires the runtime objects.

`run_node` runs every VRRP instance of one node until SIGTERM or SIGINT, then
stops gracefully (priority-0 adverts, VIPs released). Revisions come from a source
(`_make_source`: the watched file) through the revision gate and its consumer
(runtime/revisions.py); SIGHUP asks the source to look now. An invalid revision
changes nothing and is logged with its locations; a valid one is prepared
(everything that can fail on this node checked first), then applied: instances
change in place, and only a change of identity (VRID, interface, family, version)
restarts one. A failure while applying rolls back to the last good revision.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import signal
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from reconciler.adapters import process_memory
from reconciler.adapters.accept_mode import AcceptModeFirewall
from reconciler.adapters.control_socket import ControlSocket, socket_path
from reconciler.adapters.git import GitError
from reconciler.adapters.ipvs import Ipvs, IpvsError
from reconciler.adapters.netlink import Link, Netlink, watch
from reconciler.adapters.sysctl import apply_sysctls
from reconciler.config.load import load_bytes
from reconciler.health.policy import CheckTransition
from reconciler.model.cluster import NodeConfig, Sysctls
from reconciler.model.common import IPAddress
from reconciler.model.ipvs import Endpoint, RealServer
from reconciler.model.revision import Artifact
from reconciler.model.vrrp import VrrpInstance
from reconciler.observability.http import StatusServer
from reconciler.observability.metrics import registry_for
from reconciler.observability.status import (
    CheckStatus,
    ErrorCount,
    NodeStatus,
    RealServerStatus,
    ReconcileStatus,
)
from reconciler.observability.tracing import Tracing, tracer_provider_from_env
from reconciler.plan.live import vip_addresses
from reconciler.reconcile.loop import PassResult, ReconcileLoop
from reconciler.reconcile.ownership import Ident, OwnershipStore
from reconciler.revision.gate import GateStatus
from reconciler.revision.git_policy import GitOptions, GitSourceStatus
from reconciler.revision.hold import HoldConflict, hold_instances
from reconciler.runtime.accept_mode import AcceptModeKeeper, AcceptModeUnavailable
from reconciler.runtime.checks import CheckJob, CheckScheduler, ProbeRecord
from reconciler.runtime.instances import Applied, InstanceSet, Prepared, PrepareError
from reconciler.runtime.notify import Notifier
from reconciler.runtime.real_servers import RealServerHealth, ServerEvent
from reconciler.runtime.revision_store import RevisionStore
from reconciler.runtime.revisions import NotStarted, RevisionConsumer, SuspendControl
from reconciler.runtime.sync_groups import SyncGroups
from reconciler.runtime.tracking import Tracking
from reconciler.runtime.vrrp_driver import InstanceDriver, instance_status
from reconciler.source import Source
from reconciler.source.file import FileSource
from reconciler.source.git import GitSource
from reconciler.vrrp.actions import Transitioned
from reconciler.vrrp.events import LinkDown, LinkUp
from reconciler.vrrp.states import State

log = logging.getLogger("reconciler.daemon")

DEFAULT_STATE_DIR = Path("/var/lib/reconciler")
SETTLE_AFTER_S = 10.0  # quiet time after the last transition before memory is settled
# Transitions since the last settle that make one worth it: a mass takeover leaves
# megabytes behind, a single failover does not, and a settle (a collection, ~ms) should
# not land in the middle of a node's next election for nothing.
SETTLE_MIN_TRANSITIONS = 50
# A stop waits this long for the source and an attempt in flight to end; the instances
# stop (and release their VIPs) after it whatever happens.
STOP_REVISIONS_TIMEOUT_S = 2.0
# Instance statuses built between two chances for the event loop to take the interpreter
# lock, when a status is built beside it (observability/metrics.py: YIELD_EVERY_ROWS).
STATUS_YIELD_EVERY = 32


@dataclass(frozen=True)
class RunOptions:
    file: Path | None  # the watched file; None with `git`
    node: str
    state_dir: Path = DEFAULT_STATE_DIR
    # /metrics and /status; None: no endpoint. Port 0 picks a free port.
    http_addr: tuple[str, int] | None = ("127.0.0.1", 9650)
    # Let the kernel drop a master's repeated adverts (adapters/repeat_filter.py) where
    # it can; False reads every advert in user space.
    repeat_filter: bool = True
    # Watch FILE for new revisions (git-sync's link swap included); False: only SIGHUP
    # (and the periodic backstop re-read) look at it.
    watch: bool = True
    # Accept POST /hooks/refresh on the status listener as "look now".
    refresh_hook: bool = False
    # Poll this repository instead of watching `file` (source/git.py).
    git: GitOptions | None = None

    @property
    def source_label(self) -> str:
        """What the node reads: the file's path, or git:URL#BRANCH:PATH."""
        return self.git.source if self.git is not None else str(self.file)


@dataclass(frozen=True)
class Revision:
    """The running desired state: the node's share of it, and where it came from."""

    config: NodeConfig
    cluster: str
    digest: str  # sha256 of the file's bytes, shortened: what changed, at a glance
    commit: str | None = None  # the commit those bytes came from, when known
    sysctls: Sysctls = field(default_factory=Sysctls)
    resync_interval_s: float = 30.0
    drain_timeout_s: float = 300.0


class StartupError(Exception):
    """The node cannot run this configuration (missing interface, no address...)."""


class NodeRuntime:
    """Everything running on one node, and the wiring between the parts."""

    def __init__(
        self,
        options: RunOptions,
        revision: Revision,
        tracing: Tracing,
        revisions: Callable[[], GateStatus] | None = None,
        git: Callable[[], GitSourceStatus] | None = None,
    ) -> None:
        self.options = options
        self.tracing = tracing
        self.revision = revision
        self.config = revision.config
        self.started_unix_s = time.time()
        self.applied_unix_s = self.started_unix_s
        self._revisions = revisions  # the gate's status: applied, attempted, conditions
        self._git = git  # the git source's fetches and last error, when polling one
        self._settle_handle: asyncio.TimerHandle | None = None
        self._transitions_unsettled = 0
        self.loop = asyncio.get_running_loop()
        self.ownership = OwnershipStore(options.state_dir)
        self.netlink = Netlink()
        self.links: dict[str, Link] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.stopping = asyncio.Event()
        self.notifier = Notifier(self._hook_env)
        self.instances = InstanceSet(
            self.loop,
            self.netlink,
            self.ownership,
            self.notifier,
            links=lambda: self.links,
            on_transition=self._on_transition,
            effective_priority=self._effective_priority,
            repeat_filter=options.repeat_filter,
        )
        self.drivers = self.instances.drivers  # live view: instance name -> driver
        self.muxes = self.instances.muxes
        self.sync_groups = SyncGroups(self._group_members(self.config), self.drivers)
        self.checks = CheckScheduler(self._on_check, on_probe=self._on_probe)
        self.tracking = Tracking(self.drivers, self.checks, self.config.checks)
        self.ipvs: Ipvs | None = None
        self.ipvs_error: str | None = None
        self.sysctl_results: dict[str, str] = {}
        self.accept_mode = AcceptModeKeeper(
            AcceptModeFirewall(), self.config, lambda: self.revision.resync_interval_s
        )
        self.reconcile = ReconcileLoop(
            lambda: self.config,
            self.ownership,
            addresses=self.netlink,
            masters=self._masters,
            protected=self._advert_sources,
            drain_timeout_s=revision.drain_timeout_s,
            resync_interval_s=revision.resync_interval_s,
        )
        self.group_states: dict[str, State] = {}
        self.real_servers = RealServerHealth(self.reconcile.wake, self.checks, self._on_server)
        self.real_servers.set_config(self.config)
        self.real_servers.refresh()
        self.reconcile.health = self.real_servers.overlay
        # per check and target: probes, failures, seconds in probes, worst lateness
        self.probe_stats: dict[tuple[str, str], list[float]] = {}

    def _effective_priority(self, spec: VrrpInstance) -> int:
        return self.tracking.effective(spec)

    def _on_check(self, t: CheckTransition) -> None:
        if t.state_changed:
            self.tracing.check_transition(
                t.check, t.target, t.old.value, t.new.value, t.reason, time.time()
            )
        if not self.real_servers.on_check(t):
            self.tracking.on_check(t)

    def _trace_pass(self, result: PassResult) -> None:
        if not self.tracing.enabled:
            return
        self.tracing.reconcile_pass(
            result.outcome.value,
            time.time() - result.duration_s,
            result.duration_s,
            result.writes,
            [
                (r.step.action.value, r.step.kind, "/".join(r.step.key), r.error)
                for r in result.steps
            ],
        )

    def _check_jobs(self) -> list[CheckJob]:
        return self.tracking.jobs() + self.real_servers.jobs()

    def _on_probe(self, record: ProbeRecord) -> None:
        stats = self.probe_stats.setdefault(record.key, [0, 0, 0.0, 0.0])
        stats[0] += 1
        stats[1] += 0 if record.result.ok else 1
        stats[2] += record.duration_s
        stats[3] = max(stats[3], record.lateness_s)

    def _check_status(self) -> tuple[CheckStatus, ...]:
        out = []
        for key, cs in sorted(self.checks.states().items()):
            n, bad, secs, late = self.probe_stats.get(key, [0, 0, 0.0, 0.0])
            out.append(
                CheckStatus(
                    check=cs.check,
                    target=cs.target,
                    state=cs.state.value,
                    detail=cs.detail,
                    probes=int(n),
                    probe_failures=int(bad),
                    probe_seconds_sum=secs,
                    probe_lateness_seconds_max=late,
                    last_error=cs.last_error,
                )
            )
        return tuple(out)

    def status(self) -> NodeStatus:
        return self.status_later()()

    def status_later(self) -> Callable[[], NodeStatus]:
        """Everything the status says, read now (on the event loop); the function returned
        builds the snapshot from what was read, on any thread (the status listener runs it
        off the loop: at 500 instances, building their status objects is most of the cost
        of a scrape)."""
        gate = self._revisions() if self._revisions is not None else None
        stalled = next((c for c in gate.conditions if c.type == "Stalled"), None) if gate else None
        captured = [
            (d.capture(), self.tracking.status(d.spec) if d.spec.track else ())
            for d in (self.drivers[n] for n in sorted(self.drivers))
        ]
        node = NodeStatus(
            node=self.options.node,
            cluster=self.revision.cluster,
            file=self.options.source_label,
            revision=self.revision.digest,
            started_unix_s=self.started_unix_s,
            applied_unix_s=self.applied_unix_s,
            # Reloads: every applied attempt after the first revision; failures: every
            # attempt refused as invalid or that failed to apply.
            reloads_ok=max(gate.applies - 1, 0) if gate else 0,
            reloads_failed=gate.failures if gate else 0,
            last_reload_error=stalled.message if stalled and stalled.status else None,
            commit=self.revision.commit,
            revisions=gate,
            git=self._git() if self._git is not None else None,
            instances=(),
            sockets=tuple(
                self.muxes[k].status() for k in sorted(self.muxes, key=lambda k: (k[0], k[1].value))
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

    def _error_counts(self) -> tuple[ErrorCount, ...]:
        tallies = (*self.instances.tallies.all(), self.notifier.start_failures)
        return tuple(
            ErrorCount(t.operation, kind, n)
            for t in tallies
            for kind, n in sorted(t.counts.items())
        )

    def _reconcile_status(self) -> ReconcileStatus:
        loop = self.reconcile
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
            ipvs_error=self.ipvs_error,
            ipvs_required=bool(self.config.services),
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
            sysctls=dict(self.sysctl_results),
        )

    @staticmethod
    def _group_members(config: NodeConfig) -> dict[str, tuple[str, ...]]:
        return {g.name: g.members for g in config.sync_groups}

    def _hook_env(self) -> dict[str, str]:
        return {
            "RECONCILER_NODE": self.options.node,
            "RECONCILER_CLUSTER": self.revision.cluster,
            "RECONCILER_REVISION": self.revision.digest,
            "RECONCILER_COMMIT": self.revision.commit or "",
        }

    def _on_transition(self, driver: InstanceDriver, t: Transitioned) -> None:
        self._trace_transition(driver, t)
        self._settle_when_quiet()
        self.sync_groups.on_transition(driver.name, t)
        self.reconcile.wake()  # VIP presence follows mastership
        self._group_notify(driver.spec.sync_group)

    def _settle_when_quiet(self) -> None:
        """Settle memory once transitions have stopped for a while: a mass takeover
        leaves megabytes of freed heap behind (netlink requests, announcements)."""
        self._transitions_unsettled += 1
        if self._transitions_unsettled < SETTLE_MIN_TRANSITIONS:
            return
        if self._settle_handle is not None:
            self._settle_handle.cancel()
        self._settle_handle = self.loop.call_later(SETTLE_AFTER_S, self._settle)

    def _settle(self) -> None:
        self._settle_handle = None
        self._transitions_unsettled = 0
        process_memory.settle()

    def _trace_transition(self, driver: InstanceDriver, t: Transitioned) -> None:
        if not self.tracing.enabled:
            return
        now = time.time()
        spec = driver.spec
        self.tracing.vrrp_transition(
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
            started = now - (self.loop.time() - heard)
            self.tracing.failover(spec.name, spec.vrid, started, now, t.reason.value)

    def _group_notify(self, group: str | None) -> None:
        """A sync group's hooks run once the whole group is in a new state."""
        spec = next((g for g in self.config.sync_groups if g.name == group), None)
        if spec is None:
            return
        states = {self.drivers[m].state for m in spec.members if m in self.drivers}
        if len(states) != 1:
            return
        (state,) = states
        if self.group_states.get(spec.name) is state:
            return
        self.group_states[spec.name] = state
        hooks = {
            State.MASTER: spec.notify.master,
            State.BACKUP: spec.notify.backup,
            State.FAULT: spec.notify.fault,
            State.INITIALIZE: spec.notify.stop,
        }[state]
        name = {State.MASTER: "master", State.BACKUP: "backup", State.FAULT: "fault"}
        env = {"RECONCILER_GROUP": spec.name, "RECONCILER_STATE": name.get(state, "stop")}
        self.notifier.submit(f"group:{spec.name}", hooks, env)

    def _on_server(self, event: ServerEvent, rs: RealServer) -> None:
        """Real-server up/down and quorum hooks."""
        env = {
            "RECONCILER_SERVICE": str(rs.service),
            "RECONCILER_SERVER": str(rs.endpoint),
            "RECONCILER_STATE": event.value,
        }
        if event in (ServerEvent.UP, ServerEvent.DOWN):
            hooks = rs.notify_up if event is ServerEvent.UP else rs.notify_down
            self.notifier.submit(f"server:{rs.service}:{rs.endpoint}", hooks, env)
            return
        svc = next((v for v in self.config.services if v.service == rs.service), None)
        if svc is not None:
            hooks = svc.quorum.up if event is ServerEvent.QUORUM_UP else svc.quorum.down
            self.notifier.submit(f"service:{rs.service}", hooks, env)

    def _advert_sources(self) -> frozenset[IPAddress]:
        return frozenset(d.params.primary_address for d in self.drivers.values())

    def _masters(self) -> frozenset[str]:
        return frozenset(n for n, d in self.drivers.items() if d.holds_vips)

    async def _open_ipvs(self) -> None:
        """IPVS is managed when the kernel has it; without it VRRP still runs, and the
        reason is in status and metrics (and an error when services are configured)."""
        ipvs = Ipvs()
        try:
            await ipvs.open()
        except IpvsError as exc:
            self.ipvs_error = str(exc)
            level = logging.ERROR if self.config.services else logging.DEBUG
            log.log(level, "IPVS not managed: %s", exc)
            return
        self.ipvs = ipvs
        self.ipvs_error = None
        self.reconcile.ipvs = ipvs

    def _apply_sysctls(self) -> None:
        try:
            done = apply_sysctls(self.revision.sysctls)
        except OSError as exc:
            log.error("sysctls: %s", exc)
            self.sysctl_results = {"error": str(exc)}
            return
        self.sysctl_results = {k: v.value for k, v in done.items()}
        for key, outcome in done.items():
            if outcome.value != "unchanged":
                log.info("sysctl %s: %s", key, outcome.value)

    async def _apply_accept_mode(self, config: NodeConfig) -> None:
        """The Accept_Mode rules of ``config``, before any of its instances can take over;
        a node that needs them and cannot have them does not run those instances."""
        try:
            await self.accept_mode.apply(config)
        except AcceptModeUnavailable as exc:
            raise StartupError(str(exc)) from exc

    # ------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        self.ownership.load()
        damaged = self.ownership.damaged
        if damaged is not None:
            log.error(
                "ownership record %s was damaged (%s): moved to %s; only the VIPs this "
                "configuration names are cleaned up",
                self.ownership.path,
                damaged.reason,
                damaged.moved_to,
            )
        await self.netlink.__aenter__()
        self.links = await self.netlink.links()
        await self._adopt_leftover_vips()
        prepared = await self._prepare(self.config)
        try:
            await self._apply_accept_mode(self.config)
        except BaseException:
            self._abandon(prepared)
            raise
        for name, link in self.links.items():
            self.tracking.links[name] = link.running
        await self.instances.apply(prepared, lambda: None)
        for driver in self.drivers.values():
            self.tracking.apply(driver)
        self.checks.start(self._check_jobs())
        self._apply_sysctls()
        await self._open_ipvs()
        self._spawn(self._watch_links(), "netlink-watch")
        self._spawn(self.reconcile.run(self._trace_pass), "reconcile")
        self._spawn(self.accept_mode.keep(), "accept-mode")

    async def stop(self) -> None:
        if self._settle_handle is not None:
            self._settle_handle.cancel()
        for task in self._tasks:
            if task.get_name() == "reconcile":
                task.cancel()  # no pass may re-add a VIP while the instances stop
        await self.checks.stop()
        await self.instances.stop()
        for task in self._tasks:
            if task.get_name() == "accept-mode":
                task.cancel()
        await self.accept_mode.remove()
        await self.notifier.stop()
        for task in list(self._tasks):
            task.cancel()
        if self.ipvs is not None:
            await self.ipvs.close()
        self.instances.close()
        await self.netlink.__aexit__()

    def _spawn(self, coro: object, name: str) -> None:
        task: asyncio.Task[None] = self.loop.create_task(coro, name=name)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ------------------------------------------------------------ instances
    async def _adopt_leftover_vips(self) -> None:
        """Claim the VIPs a takeover added just before a crash, before it could write
        them down (pending in the record and on the link), so that the first reconcile
        pass removes them like any VIP we left behind."""
        pending = self.ownership.pending - self.ownership.owned
        if self.ownership.damaged is not None:
            # Nothing of the record is trusted: what this configuration names is ours.
            pending = frozenset(_takeover_vips(self.config)) - self.ownership.owned
        if not pending:
            return
        present = {(a.kind, a.key) for a in await self.netlink.addresses()}
        leftover = pending & present
        if leftover:
            log.info(
                "VIP(s) left by a takeover that was not written down before a crash: %s",
                ", ".join(sorted("/".join(key) for _kind, key in leftover)),
            )
            self.ownership.update(add=leftover)

    async def _prepare(self, config: NodeConfig) -> Prepared:
        """Everything that can fail on this node for ``config``, checked and acquired
        before anything running changes: the instances' interfaces, addresses, sockets
        and VIP requests; room in the state directory for the largest ownership record
        the switch may write (a full disk refuses the reload here); and, last, every VIP
        a takeover of either revision may add recorded (``ownership.pending``) before
        one can."""
        takeover = _takeover_vips(config) | _takeover_vips(self.config)
        try:
            self.ownership.check_writable(takeover)
        except OSError as exc:
            raise StartupError(f"state directory {self.options.state_dir}: {exc}") from exc
        try:
            prepared = await self.instances.prepare(config)
        except PrepareError as exc:
            raise StartupError(str(exc)) from exc
        try:
            self.ownership.set_pending(takeover)
        except OSError as exc:
            self.instances.discard(prepared)
            raise StartupError(f"state directory {self.options.state_dir}: {exc}") from exc
        return prepared

    def _abandon(self, prepared: Prepared) -> None:
        """A prepared revision that will not run: give back what it acquired, and stop
        listing its VIPs as ones a takeover may add (a leftover address someone else
        made must not look like ours at the next start)."""
        self.instances.discard(prepared)
        try:
            self.ownership.set_pending(_takeover_vips(self.config))
        except OSError as exc:
            log.warning("ownership record not written: %s", exc)

    async def replace_config(self, revision: Revision) -> Applied:
        """Apply a new revision: prepare, then apply; a failure while applying rolls back
        to the revision running before. Raises StartupError when the revision cannot run
        here (nothing changed, or everything rolled back)."""
        old = self.revision
        try:
            prepared = await self._prepare(revision.config)
        except StartupError:
            raise
        except Exception as exc:  # a netlink read failed, say: nothing was changed
            raise StartupError(f"preparing revision {revision.digest}: {exc}") from exc
        try:
            # The firewall first, in one transaction, so that a node that cannot have the
            # rules refuses the reload with nothing changed.
            await self._apply_accept_mode(revision.config)
        except BaseException:
            self._abandon(prepared)
            raise
        try:
            return await self._apply(revision, prepared)
        except Exception as exc:
            log.exception("reload: applying revision %s failed", revision.digest)
            await self._roll_back(old)
            raise StartupError(
                f"applying revision {revision.digest} failed ({exc}); rolled back to {old.digest}"
            ) from exc

    async def _apply(self, revision: Revision, prepared: Prepared) -> Applied:
        config = revision.config

        def switch() -> None:
            # The new revision is current from here: trackers (for the effective
            # priorities of the instances changed in place) and the desired state the
            # reconcile loop reads, with no await before the drivers take it.
            self.config = config
            self.revision = revision
            self.applied_unix_s = time.time()
            self.reconcile.drain_timeout_s = revision.drain_timeout_s
            self.reconcile.resync_interval_s = revision.resync_interval_s
            self.sync_groups.groups = self._group_members(config)
            self.tracking.set_checks(config.checks)
            self.real_servers.set_config(config)
            # Before any priority, weight or quorum is computed: tracking and real-server
            # health read the checks' states from the scheduler, which decides what a
            # changed check keeps.
            self.checks.replace(self._check_jobs())
            self.real_servers.refresh()

        applied = await self.instances.apply(prepared, switch)
        self._apply_sysctls()
        self.ownership.set_pending(_takeover_vips(config))
        for driver in self.drivers.values():
            self.tracking.apply(driver)
        self.reconcile.wake()
        return applied

    async def _roll_back(self, revision: Revision) -> None:
        """Run ``revision`` (the last good one) again, from whatever state a failed apply
        left: the same prepare and apply, which work from what runs."""
        try:
            prepared = await self._prepare(revision.config)
            await self._apply_accept_mode(revision.config)
            await self._apply(revision, prepared)
        except Exception:
            log.exception("reload: rolling back to revision %s failed", revision.digest)
            return
        log.warning("reload: rolled back to revision %s", revision.digest)

    # ------------------------------------------------------------ links
    async def _watch_links(self) -> None:
        async for hint in watch():
            self.reconcile.wake()  # an address or link changed: re-check for drift
            if hint.kind != "link":
                continue
            links = await self.netlink.links()
            for name, link in links.items():
                before = self.links.get(name)
                if before is not None and before.running != link.running:
                    self._link_changed(name, link.running)
            self.links = links

    def _link_changed(self, interface: str, running: bool) -> None:
        log.info("link %s is %s", interface, "up" if running else "down")
        for driver in self._on_interface(interface):
            driver.feed(LinkUp() if running else LinkDown())
        self.tracking.on_link(interface, running)

    def _on_interface(self, interface: str) -> Iterable[InstanceDriver]:
        return [d for d in self.drivers.values() if d.spec.interface == interface]


def _revision_from(
    artifact: Artifact,
    node: str,
    running: Callable[[], NodeConfig | None],
    suspended: frozenset[str],
) -> Revision:
    """Validate an artifact's bytes (exactly those: the file is not read again) and build
    the node's share; suspended instances stay as they run. Runs in a thread."""
    loaded = load_bytes(artifact.data, artifact.provenance.location)
    where = artifact.provenance.location
    for warning in loaded.warnings:
        log.warning("%s", warning)
    if node not in loaded.cluster.node_names:
        raise StartupError(
            f"node {node!r} is not in {where} (nodes: {', '.join(loaded.cluster.node_names)})"
        )
    c = loaded.cluster
    config = c.for_node(node)
    now_running = running()
    if now_running is not None:
        config = hold_instances(config, now_running, suspended)
    return Revision(
        config,
        c.name,
        artifact.short_digest,
        artifact.provenance.commit,
        c.sysctls,
        c.resync_interval.total_seconds(),
        c.drain_timeout.total_seconds(),
    )


def _make_source(options: RunOptions) -> Source:
    """Where this node's revisions come from: the one place that chooses the source."""
    if options.git is not None:
        return GitSource(options.git, options.state_dir)
    assert options.file is not None
    return FileSource(options.file, watch=options.watch)


def _takeover_vips(config: NodeConfig) -> set[Ident]:
    """Every VIP a takeover of this node may add."""
    every = frozenset(i.name for i in config.instances)
    return {(a.kind, a.key) for a in vip_addresses(config, every)}


async def run_node(options: RunOptions) -> int:
    """Run until SIGTERM/SIGINT; 0 on a clean stop, 2 when the input cannot run."""
    runtime: NodeRuntime | None = None  # built once the first revision is valid
    source = _make_source(options)
    git_status = source.status_now if isinstance(source, GitSource) else None
    consumer: RevisionConsumer[Revision] = RevisionConsumer(
        source,
        lambda artifact, held: _revision_from(
            artifact, options.node, lambda: runtime.config if runtime else None, held
        ),
        invalid=(StartupError, HoldConflict),
        unstartable=(StartupError, OSError),
        store=RevisionStore(options.state_dir),
    )
    try:
        revision = await consumer.first()
    except NotStarted as exc:
        log.error("%s", exc)
        return 2
    except GitError as exc:  # the git source cannot verify as told (no key in the file...)
        log.error("git source: %s", exc)
        return 2

    tracing = Tracing(tracer_provider_from_env("reconciler", options.node, revision.cluster))
    runtime = node = NodeRuntime(options, revision, tracing, consumer.status, git_status)
    server = StatusServer(
        runtime,
        registry_for(runtime),
        on_refresh=consumer.refresh if options.refresh_hook else None,
    )
    control = ControlSocket(
        socket_path(options.state_dir),
        SuspendControl(consumer, lambda: list(node.drivers)).handle,
    )
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, runtime.stopping.set)
    loop.add_signal_handler(signal.SIGINT, runtime.stopping.set)
    loop.add_signal_handler(signal.SIGHUP, consumer.refresh)

    async def apply(new: Revision) -> Applied:
        applied = await node.replace_config(new)
        process_memory.settle()
        return applied

    try:
        try:
            await runtime.start()
            if options.http_addr is not None:
                port = await server.start(*options.http_addr)
                log.info("metrics and status on http://%s:%d/", options.http_addr[0], port)
            await control.start()
            process_memory.settle()
        except (StartupError, OSError) as exc:
            log.error("cannot start: %s", exc)
            await control.close()
            await runtime.stop()
            return 2
        consumer.started()
        log.info(
            "node %s running %d instance(s) from %s",
            options.node,
            len(runtime.drivers),
            options.source_label,
        )
        revisions = asyncio.create_task(consumer.run(apply, tracing), name="revisions")
        await runtime.stopping.wait()
        revisions.cancel()
        await asyncio.wait({revisions}, timeout=STOP_REVISIONS_TIMEOUT_S)
        log.info("stopping: releasing VIPs")
        await control.close()
        await runtime.stop()
        await server.close()
        await asyncio.to_thread(tracing.shutdown)
        return 0
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            with contextlib.suppress(Exception):
                loop.remove_signal_handler(sig)
