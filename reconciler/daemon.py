"""The composition root: the only place that builds and wires the runtime objects.

`run_node` runs every VRRP instance of one node until SIGTERM or SIGINT, then
stops gracefully (priority-0 adverts, VIPs released). Revisions come from a source
(`_make_source`: the watched file or the polled repository) through the revision gate
and its consumer (runtime/revisions.py); SIGHUP asks the source to look now. An
invalid revision changes nothing and is logged with its locations; a valid one is
prepared, then applied, and rolled back when applying fails (runtime/revision_apply.py).

`NodeRuntime` builds the parts of one node and connects them; what each does is in its
own module: the instances (runtime/instances.py), where events go (runtime/events.py),
the hooks (runtime/hooks.py), the status (runtime/status_view.py), the sysctls, IPVS,
the Accept_Mode firewall, memory settling and the links (runtime/*).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from reconciler.adapters import process_memory
from reconciler.adapters.accept_mode import AcceptModeFirewall
from reconciler.adapters.control_socket import ControlSocket, socket_path
from reconciler.adapters.git import GitError
from reconciler.adapters.netlink import Netlink
from reconciler.observability.http import StatusServer
from reconciler.observability.metrics import registry_for
from reconciler.observability.tracing import Tracing, tracer_provider_from_env
from reconciler.reconcile.loop import ReconcileLoop
from reconciler.reconcile.ownership import OwnershipStore
from reconciler.revision.gate import GateStatus
from reconciler.revision.git_policy import GitOptions, GitSourceStatus
from reconciler.revision.hold import HoldConflict
from reconciler.runtime.accept_mode import AcceptModeKeeper
from reconciler.runtime.checks import CheckScheduler
from reconciler.runtime.events import NodeEvents
from reconciler.runtime.hooks import NodeHooks, revision_env
from reconciler.runtime.instances import InstancesApplied, InstanceSet
from reconciler.runtime.ipvs_access import IpvsAccess
from reconciler.runtime.links import LinkWatcher
from reconciler.runtime.notify import Notifier
from reconciler.runtime.real_servers import RealServerHealth
from reconciler.runtime.revision_apply import (
    Revision,
    RevisionApplier,
    RunningRevision,
    StartupError,
    group_members,
    revision_from,
)
from reconciler.runtime.revision_store import RevisionStore
from reconciler.runtime.revisions import NotStarted, RevisionConsumer, SuspendControl
from reconciler.runtime.settle import MemorySettler
from reconciler.runtime.status_view import ProbeStats, StatusView
from reconciler.runtime.sync_groups import SyncGroups
from reconciler.runtime.sysctls import SysctlKeeper
from reconciler.runtime.tracking import Tracking
from reconciler.runtime.vrrp_driver import InstanceDriver
from reconciler.source import Source
from reconciler.source.file import FileSource
from reconciler.source.git import GitSource

log = logging.getLogger("reconciler.daemon")
_revision_from = revision_from  # the name tests import from here

DEFAULT_STATE_DIR = Path("/var/lib/reconciler")
# A stop waits this long for the source and an attempt in flight to end; the instances
# stop (and release their VIPs) after it whatever happens.
STOP_REVISIONS_TIMEOUT_S = 2.0


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


class NodeRuntime:
    """Every part running on one node, built and connected; started and stopped in order."""

    # Parts that others call back before they exist: the lambdas in __init__ that close
    # those cycles read them when they are called, once everything is built.
    tracking: Tracking
    real_servers: RealServerHealth
    events: NodeEvents

    def __init__(
        self,
        options: RunOptions,
        revision: Revision,
        tracing: Tracing,
        revisions: Callable[[], GateStatus] | None = None,
        git: Callable[[], GitSourceStatus] | None = None,
    ) -> None:
        loop = asyncio.get_running_loop()
        config = revision.config
        self.running = running = RunningRevision(revision)
        self.stopping = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self.ownership = ownership = OwnershipStore(options.state_dir)
        self.netlink = netlink = Netlink()
        self.links = LinkWatcher(netlink)
        self.notifier = notifier = Notifier(revision_env(options.node, running))
        self.instances = instances = InstanceSet(
            loop,
            netlink,
            ownership,
            notifier,
            links=self.links.current,
            on_transition=lambda driver, t: self.events.on_transition(driver, t),  # noqa: PLW0108
            effective_priority=lambda spec: self.tracking.effective(spec),  # noqa: PLW0108
            repeat_filter=options.repeat_filter,
        )
        drivers = instances.drivers  # live view: instance name -> driver
        self.sync_groups = SyncGroups(group_members(config), drivers)
        probes = ProbeStats()
        self.checks = checks = CheckScheduler(
            lambda t: self.events.on_check(t),  # noqa: PLW0108
            on_probe=probes.record,
        )
        self.tracking = tracking = Tracking(drivers, checks, config.checks)
        self.sysctls = sysctls = SysctlKeeper()
        self.ipvs = IpvsAccess()
        self.accept_mode = AcceptModeKeeper(
            AcceptModeFirewall(), config, lambda: running.revision.resync_interval_s
        )
        self.reconcile = reconcile = ReconcileLoop(
            lambda: running.config,
            ownership,
            addresses=netlink,
            masters=instances.masters,
            protected=instances.advert_sources,
            health=lambda: self.real_servers.overlay(),  # noqa: PLW0108
            drain_timeout_s=revision.drain_timeout_s,
            resync_interval_s=revision.resync_interval_s,
        )
        hooks = NodeHooks(notifier, running, drivers)
        self.real_servers = servers = RealServerHealth(reconcile.wake, checks, hooks.on_server)
        servers.set_config(config)
        servers.refresh()
        self.settler = MemorySettler(loop)
        self.events = NodeEvents(
            loop,
            tracing,
            drivers,
            tracking,
            servers,
            self.sync_groups,
            self.settler,
            hooks,
            reconcile.wake,
        )
        self.applier = RevisionApplier(
            running,
            options.state_dir,
            ownership,
            netlink,
            instances,
            self.accept_mode,
            sysctls,
            checks,
            tracking,
            servers,
            self.sync_groups,
            reconcile,
        )
        self.status_view = StatusView(
            options.node,
            options.source_label,
            running,
            instances,
            tracking,
            checks,
            probes,
            reconcile,
            self.ipvs,
            sysctls,
            notifier,
            revisions,
            git,
        )

    @property
    def drivers(self) -> dict[str, InstanceDriver]:
        return self.instances.drivers

    async def start(self) -> None:
        self.applier.load_ownership()
        await self.netlink.__aenter__()
        await self.links.load()
        # The start-up heap (imports, the parsed revision) is settled before any instance
        # runs: a full collection of it takes 20-30 ms, as long as a 10 ms instance's
        # Master_Down_Interval, and would make its first advert that late.
        process_memory.settle()
        await self.applier.start(self.links.current())
        ipvs = await self.ipvs.open(required=bool(self.running.config.services))
        if ipvs is not None:
            self.reconcile.use_ipvs(ipvs)
        # An address or link changed: the reconcile loop looks for drift.
        self._spawn(self.links.run(self.events.on_link, self.reconcile.wake), "netlink-watch")
        self._spawn(self.reconcile.run(self.events.on_pass), "reconcile")
        self._spawn(self.accept_mode.keep(), "accept-mode")

    async def stop(self) -> None:
        self.settler.cancel()
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
        await self.ipvs.close()
        self.instances.close()
        await self.netlink.__aexit__()

    def _spawn(self, coro: object, name: str) -> None:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coro, name=name)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _make_source(options: RunOptions) -> Source:
    """Where this node's revisions come from: the one place that chooses the source."""
    if options.git is not None:
        return GitSource(options.git, options.state_dir)
    assert options.file is not None
    return FileSource(options.file, watch=options.watch)


async def run_node(options: RunOptions) -> int:
    """Run until SIGTERM/SIGINT; 0 on a clean stop, 2 when the input cannot run."""
    runtime: NodeRuntime | None = None  # built once the first revision is valid
    source = _make_source(options)
    git_status = source.status_now if isinstance(source, GitSource) else None
    consumer: RevisionConsumer[Revision] = RevisionConsumer(
        source,
        lambda artifact, held: revision_from(
            artifact, options.node, lambda: runtime.running.config if runtime else None, held
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
        runtime.status_view,
        registry_for(runtime.status_view),
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

    async def apply(new: Revision) -> InstancesApplied:
        applied = await node.applier.replace(new)
        process_memory.settle()
        return applied

    try:
        try:
            await runtime.start()
            if options.http_addr is not None:
                port = await server.start(*options.http_addr)
                log.info("metrics and status on http://%s:%d/", options.http_addr[0], port)
            await control.start()
            # What the start made since (instances, checks, listeners) is frozen too, so
            # that the collector's later full passes stay short; ~1 ms, the rest is frozen.
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
