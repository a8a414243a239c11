"""The revision the node runs, and how a new one replaces it.

A new revision is prepared: everything that can fail on this node is checked and
acquired before anything running changes (room in the state directory for the
ownership record, the instances' interfaces, addresses and sockets, then the
Accept_Mode rules, in one transaction). A revision that fails there changes nothing.
Then it is applied: the instances change (runtime/instances.py) and, at one point with
no await before the drivers take it, everything that reads the revision switches to it
(tracking, real-server health, sync groups, the check scheduler, the reconcile loop's
timings); the sysctls follow. A failure while applying rolls back: the last good
revision is prepared and applied again, from whatever runs.

The first revision takes the same path (``start``), after the VIPs a crash left behind
are claimed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from reconciler.adapters.netlink import Link, Netlink
from reconciler.config.load import load_bytes
from reconciler.model.cluster import NodeConfig, Sysctls
from reconciler.model.revision import Artifact
from reconciler.plan.live import vip_addresses
from reconciler.reconcile.loop import ReconcileLoop
from reconciler.reconcile.ownership import Ident, OwnershipStore
from reconciler.revision.hold import hold_instances
from reconciler.runtime.accept_mode import AcceptModeKeeper, AcceptModeUnavailable
from reconciler.runtime.checks import CheckJob, CheckScheduler
from reconciler.runtime.instances import InstancesApplied, InstanceSet, Prepared, PrepareError
from reconciler.runtime.real_servers import RealServerHealth
from reconciler.runtime.sync_groups import SyncGroups
from reconciler.runtime.sysctls import SysctlKeeper
from reconciler.runtime.tracking import Tracking

# These lines were the daemon's before they moved here; log filters key on the name.
log = logging.getLogger("reconciler.daemon")


class StartupError(Exception):
    """The node cannot run this configuration (missing interface, no address...)."""


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


def revision_from(
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


def takeover_vips(config: NodeConfig) -> set[Ident]:
    """Every VIP a takeover of this node may add."""
    every = frozenset(i.name for i in config.instances)
    return {(a.kind, a.key) for a in vip_addresses(config, every)}


def group_members(config: NodeConfig) -> dict[str, tuple[str, ...]]:
    return {g.name: g.members for g in config.sync_groups}


class RunningRevision:
    """The revision the node runs, and since when; ``RevisionApplier`` switches it."""

    def __init__(self, revision: Revision, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._revision = revision
        self.started_unix_s = clock()
        self.applied_unix_s = self.started_unix_s

    @property
    def revision(self) -> Revision:
        return self._revision

    @property
    def config(self) -> NodeConfig:
        return self._revision.config

    def switch(self, revision: Revision) -> None:
        self._revision = revision
        self.applied_unix_s = self._clock()


class RevisionApplier:
    """Prepares, applies and rolls back the node's revisions (see the module doc)."""

    def __init__(
        self,
        running: RunningRevision,
        state_dir: Path,
        ownership: OwnershipStore,
        netlink: Netlink,
        instances: InstanceSet,
        accept_mode: AcceptModeKeeper,
        sysctls: SysctlKeeper,
        checks: CheckScheduler,
        tracking: Tracking,
        real_servers: RealServerHealth,
        sync_groups: SyncGroups,
        reconcile: ReconcileLoop,
    ) -> None:
        self._running = running
        self._state_dir = state_dir
        self._ownership = ownership
        self._netlink = netlink
        self._instances = instances
        self._accept_mode = accept_mode
        self._sysctls = sysctls
        self._checks = checks
        self._tracking = tracking
        self._real_servers = real_servers
        self._sync_groups = sync_groups
        self._reconcile = reconcile

    # ------------------------------------------------------------ the first revision
    def load_ownership(self) -> None:
        self._ownership.load()
        damaged = self._ownership.damaged
        if damaged is not None:
            log.error(
                "ownership record %s was damaged (%s): moved to %s; only the VIPs this "
                "configuration names are cleaned up",
                self._ownership.path,
                damaged.reason,
                damaged.moved_to,
            )

    async def start(self, links: Mapping[str, Link]) -> None:
        """Run the first revision: the instances, their trackers, the checks, the
        sysctls. ``links``: the interfaces as they are now."""
        config = self._running.config
        await self._adopt_leftover_vips()
        prepared = await self._prepare(config)
        try:
            await self._apply_accept_mode(config)
        except BaseException:
            self._abandon(prepared)
            raise
        self._tracking.know_links({name: link.running for name, link in links.items()})
        await self._instances.apply(prepared, lambda: None)
        for driver in self._instances.drivers.values():
            self._tracking.apply(driver)
        self._checks.start(self._check_jobs())
        self._sysctls.apply(self._running.revision.sysctls)

    async def _adopt_leftover_vips(self) -> None:
        """Claim the VIPs a takeover added just before a crash, before it could write
        them down (pending in the record and on the link), so that the first reconcile
        pass removes them like any VIP we left behind."""
        ownership = self._ownership
        pending = ownership.pending - ownership.owned
        if ownership.damaged is not None:
            # Nothing of the record is trusted: what this configuration names is ours.
            pending = frozenset(takeover_vips(self._running.config)) - ownership.owned
        if not pending:
            return
        present = {(a.kind, a.key) for a in await self._netlink.addresses()}
        leftover = pending & present
        if leftover:
            log.info(
                "VIP(s) left by a takeover that was not written down before a crash: %s",
                ", ".join(sorted("/".join(key) for _kind, key in leftover)),
            )
            ownership.update(add=leftover)

    # ------------------------------------------------------------ a new revision
    async def replace(self, revision: Revision) -> InstancesApplied:
        """Apply a new revision: prepare, then apply; a failure while applying rolls back
        to the revision running before. Raises StartupError when the revision cannot run
        here (nothing changed, or everything rolled back)."""
        old = self._running.revision
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

    async def _prepare(self, config: NodeConfig) -> Prepared:
        """Everything that can fail on this node for ``config``, checked and acquired
        before anything running changes: the instances' interfaces, addresses, sockets
        and VIP requests; room in the state directory for the largest ownership record
        the switch may write (a full disk refuses the reload here); and, last, every VIP
        a takeover of either revision may add recorded (``ownership.pending``) before
        one can."""
        takeover = takeover_vips(config) | takeover_vips(self._running.config)
        try:
            self._ownership.check_writable(takeover)
        except OSError as exc:
            raise StartupError(f"state directory {self._state_dir}: {exc}") from exc
        try:
            prepared = await self._instances.prepare(config)
        except PrepareError as exc:
            raise StartupError(str(exc)) from exc
        try:
            self._ownership.set_pending(takeover)
        except OSError as exc:
            self._instances.discard(prepared)
            raise StartupError(f"state directory {self._state_dir}: {exc}") from exc
        return prepared

    def _abandon(self, prepared: Prepared) -> None:
        """A prepared revision that will not run: give back what it acquired, and stop
        listing its VIPs as ones a takeover may add (a leftover address someone else
        made must not look like ours at the next start)."""
        self._instances.discard(prepared)
        try:
            self._ownership.set_pending(takeover_vips(self._running.config))
        except OSError as exc:
            log.warning("ownership record not written: %s", exc)

    async def _apply_accept_mode(self, config: NodeConfig) -> None:
        """The Accept_Mode rules of ``config``, before any of its instances can take over;
        a node that needs them and cannot have them does not run those instances."""
        try:
            await self._accept_mode.apply(config)
        except AcceptModeUnavailable as exc:
            raise StartupError(str(exc)) from exc

    async def _apply(self, revision: Revision, prepared: Prepared) -> InstancesApplied:
        config = revision.config

        def switch() -> None:
            # The new revision is current from here: trackers (for the effective
            # priorities of the instances changed in place) and the desired state the
            # reconcile loop reads, with no await before the drivers take it.
            self._running.switch(revision)
            self._reconcile.retime(revision.drain_timeout_s, revision.resync_interval_s)
            self._sync_groups.set_groups(group_members(config))
            self._tracking.set_checks(config.checks)
            self._real_servers.set_config(config)
            # Before any priority, weight or quorum is computed: tracking and real-server
            # health read the checks' states from the scheduler, which decides what a
            # changed check keeps.
            self._checks.replace(self._check_jobs())
            self._real_servers.refresh()

        applied = await self._instances.apply(prepared, switch)
        self._sysctls.apply(revision.sysctls)
        self._ownership.set_pending(takeover_vips(config))
        for driver in self._instances.drivers.values():
            self._tracking.apply(driver)
        self._reconcile.wake()
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

    def _check_jobs(self) -> list[CheckJob]:
        return self._tracking.jobs() + self._real_servers.jobs()
