"""The composition root: the only place that builds and wires the runtime objects.

`run_node` runs every VRRP instance of one node until SIGTERM or SIGINT, then
stops gracefully (priority-0 adverts, VIPs released). SIGHUP re-reads the
file: an invalid file changes nothing and is logged with its locations; a
valid one restarts only the instances whose configuration changed.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import logging
import signal
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path

from reconciler.adapters import process_memory
from reconciler.adapters.accept_mode import AcceptModeFirewall, FirewallError
from reconciler.adapters.arp import Announcer
from reconciler.adapters.ipvs import Ipvs, IpvsError
from reconciler.adapters.netlink import Link, Netlink, watch
from reconciler.adapters.repeat_filter import FilterUnavailable, RepeatFilter
from reconciler.adapters.sysctl import apply_sysctls
from reconciler.adapters.vrrp_socket import VrrpSocket
from reconciler.config.diagnostics import InvalidConfig
from reconciler.config.load import load_file
from reconciler.health.policy import CheckTransition
from reconciler.model.cluster import NodeConfig, Sysctls
from reconciler.model.common import CheckState, Family
from reconciler.model.ipvs import Endpoint, RealServer
from reconciler.model.vrrp import VrrpInstance
from reconciler.observability.http import StatusServer
from reconciler.observability.metrics import registry_for
from reconciler.observability.status import (
    CheckStatus,
    InstanceStatus,
    NodeStatus,
    RealServerStatus,
    ReconcileStatus,
)
from reconciler.observability.tracing import Tracing, tracer_provider_from_env
from reconciler.plan.live import live_vip, no_accept_vips, vip_addresses
from reconciler.reconcile.loop import PassResult, ReconcileLoop
from reconciler.reconcile.ownership import Ident, OwnershipStore
from reconciler.runtime.checks import CheckJob, CheckScheduler, ProbeRecord
from reconciler.runtime.notify import Notifier
from reconciler.runtime.real_servers import RealServerHealth
from reconciler.runtime.sync_groups import SyncGroups
from reconciler.runtime.tracking import Tracking
from reconciler.runtime.vrrp_driver import InstanceDriver, SocketMux, instance_params
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


@dataclass(frozen=True)
class RunOptions:
    file: Path
    node: str
    state_dir: Path = DEFAULT_STATE_DIR
    # /metrics and /status; None: no endpoint. Port 0 picks a free port.
    http_addr: tuple[str, int] | None = ("127.0.0.1", 9650)
    # Let the kernel drop a master's repeated adverts (adapters/repeat_filter.py) where
    # it can; False reads every advert in user space.
    repeat_filter: bool = True


@dataclass(frozen=True)
class Revision:
    """The running desired state: the node's share of it, and where it came from."""

    config: NodeConfig
    cluster: str
    digest: str  # sha256 of the file's bytes, shortened: what changed, at a glance
    sysctls: Sysctls = field(default_factory=Sysctls)
    resync_interval_s: float = 30.0
    drain_timeout_s: float = 300.0


class StartupError(Exception):
    """The node cannot run this configuration (missing interface, no address...)."""


class NodeRuntime:
    """Everything running on one node, and the wiring between the parts."""

    def __init__(self, options: RunOptions, revision: Revision, tracing: Tracing) -> None:
        self.options = options
        self.tracing = tracing
        self.revision = revision
        self.config = revision.config
        self.started_unix_s = time.time()
        self.applied_unix_s = self.started_unix_s
        self.reloads_ok = 0
        self._settle_handle: asyncio.TimerHandle | None = None
        self._transitions_unsettled = 0
        self.reloads_failed = 0
        self.last_reload_error: str | None = None
        self.loop = asyncio.get_running_loop()
        self.ownership = OwnershipStore(options.state_dir)
        self.netlink = Netlink()
        self.muxes: dict[tuple[str, Family], SocketMux] = {}
        self.announcers: dict[str, Announcer] = {}
        self.drivers: dict[str, InstanceDriver] = {}
        self.links: dict[str, Link] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.stopping = asyncio.Event()
        self.sync_groups = SyncGroups(self._group_members(self.config), self.drivers)
        self.checks = CheckScheduler(self._on_check, on_probe=self._on_probe)
        self.tracking = Tracking(self.drivers, self.checks, self.config.checks)
        self.ipvs: Ipvs | None = None
        self.ipvs_error: str | None = None
        self.sysctl_results: dict[str, str] = {}
        self.firewall = AcceptModeFirewall()
        # The revision whose VIPs the firewall holds; one writer at a time (a reload and
        # the periodic check must not interleave, or the older one could win).
        self._firewall_config = self.config
        self._firewall_lock = asyncio.Lock()
        self.reconcile = ReconcileLoop(
            lambda: self.config,
            self.ownership,
            addresses=self.netlink,
            masters=self._masters,
            protected=self._advert_sources,
            drain_timeout_s=revision.drain_timeout_s,
            resync_interval_s=revision.resync_interval_s,
        )
        self.notifier = Notifier(self._hook_env)
        self.group_states: dict[str, State] = {}
        self.real_servers = RealServerHealth(self.reconcile.wake, self.checks, self._on_server)
        self.real_servers.set_config(self.config)
        self.real_servers.refresh()
        self.reconcile.health = self.real_servers.overlay
        # per check and target: probes, failures, seconds in probes, worst lateness
        self.probe_stats: dict[tuple[str, str], list[float]] = {}

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
        for key, cs in sorted(self.checks.status().items()):
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
        return NodeStatus(
            node=self.options.node,
            cluster=self.revision.cluster,
            file=str(self.options.file),
            revision=self.revision.digest,
            started_unix_s=self.started_unix_s,
            applied_unix_s=self.applied_unix_s,
            reloads_ok=self.reloads_ok,
            reloads_failed=self.reloads_failed,
            last_reload_error=self.last_reload_error,
            instances=tuple(self._instance_status(self.drivers[n]) for n in sorted(self.drivers)),
            sockets=tuple(
                self.muxes[k].status() for k in sorted(self.muxes, key=lambda k: (k[0], k[1].value))
            ),
            checks=self._check_status(),
            reconcile=self._reconcile_status(),
        )

    def _instance_status(self, driver: InstanceDriver) -> InstanceStatus:
        """The driver's view, with what each tracker does to its priority."""
        return dataclasses.replace(driver.status(), trackers=self.tracking.status(driver.spec))

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

    def _on_server(self, event: str, rs: RealServer, state: CheckState) -> None:
        """Real-server up/down and quorum hooks."""
        del state
        env = {
            "RECONCILER_SERVICE": str(rs.service),
            "RECONCILER_SERVER": str(rs.endpoint),
            "RECONCILER_STATE": event,
        }
        if event in ("up", "down"):
            hooks = rs.notify_up if event == "up" else rs.notify_down
            self.notifier.submit(f"server:{rs.service}:{rs.endpoint}", hooks, env)
            return
        svc = next((v for v in self.config.services if v.service == rs.service), None)
        if svc is not None:
            hooks = svc.quorum.up if event == "quorum_up" else svc.quorum.down
            self.notifier.submit(f"service:{rs.service}", hooks, env)

    def _advert_sources(self) -> frozenset[IPv4Address | IPv6Address]:
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

    async def _apply_accept_mode(self, config: NodeConfig | None = None) -> None:
        """Drop traffic to the VIPs of Accept_Mode-false instances of ``config`` (None:
        the revision applied last) before any of them can take over
        (adapters/accept_mode.py); a node that needs it and cannot have it does not run
        those instances."""
        async with self._firewall_lock:
            config = self._firewall_config if config is None else config
            vips = no_accept_vips(config)
            try:
                outcome = await self.firewall.apply(vips)
            except FirewallError as exc:
                if vips:
                    raise StartupError(f"accept: false needs nftables: {exc}") from exc
                log.warning("accept mode: leftover table not removed: %s", exc)
                return
            self._firewall_config = config
        if outcome.value != "unchanged":
            log.info(
                "accept mode: nftables table inet reconciler %s (%d VIP(s) dropped)",
                outcome.value,
                len(vips),
            )

    async def _keep_accept_mode(self) -> None:
        """Put the table back if someone removed or edited it, at the resync interval."""
        while True:
            await asyncio.sleep(self.revision.resync_interval_s)
            if not self.firewall.vips:
                continue
            try:
                await self._apply_accept_mode()
            except StartupError as exc:
                log.error("%s", exc)

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
        self.ownership.set_pending(_takeover_vips(self.config))
        await self._apply_accept_mode(self.config)
        for name, link in self.links.items():
            self.tracking.links[name] = link.running
        for spec in self.config.instances:
            await self._start_instance(spec)
        self.checks.start(self._check_jobs())
        self._apply_sysctls()
        await self._open_ipvs()
        self._spawn(self._watch_links(), "netlink-watch")
        self._spawn(self.reconcile.run(self._trace_pass), "reconcile")
        self._spawn(self._keep_accept_mode(), "accept-mode")

    async def stop(self) -> None:
        if self._settle_handle is not None:
            self._settle_handle.cancel()
        for task in self._tasks:
            if task.get_name() == "reconcile":
                task.cancel()  # no pass may re-add a VIP while the instances stop
        await self.checks.stop()
        await asyncio.gather(*(d.stop() for d in self.drivers.values()))
        self.drivers.clear()
        for task in self._tasks:
            if task.get_name() == "accept-mode":
                task.cancel()
        if self.firewall.vips:
            async with self._firewall_lock:
                try:
                    await self.firewall.remove()  # the VIPs are gone: so is what guarded them
                except FirewallError as exc:
                    log.warning("accept mode: table not removed: %s", exc)
        await self.notifier.stop()
        for task in list(self._tasks):
            task.cancel()
        if self.ipvs is not None:
            await self.ipvs.close()
        for mux in self.muxes.values():
            mux.close()
        for ann in self.announcers.values():
            ann.close()
        self.muxes.clear()
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

    def _repeat_filter(self, sock: VrrpSocket) -> RepeatFilter | None:
        """The kernel repeat filter for a new socket, attached; None when switched off
        or when the kernel refuses it (then every advert is read here, as before)."""
        if not self.options.repeat_filter:
            return None
        try:
            filt = RepeatFilter.create(sock.family)
        except FilterUnavailable as exc:
            log.info("%s: repeated adverts are read in user space: %s", sock.interface, exc)
            return None
        try:
            filt.attach(sock.sock)
        except FilterUnavailable as exc:
            filt.close()
            log.info("%s: repeated adverts are read in user space: %s", sock.interface, exc)
            return None
        return filt

    async def _primary(self, spec: VrrpInstance) -> IPv4Address | IPv6Address:
        if spec.family is Family.IPV4:
            if spec.primary_address is not None:
                return spec.primary_address
            for a in await self.netlink.addresses():
                if a.interface == spec.interface and a.address.version == 4:
                    return a.address.ip
            raise StartupError(
                f"{spec.name}: {spec.interface} has no IPv4 address to send adverts from"
            )
        # RFC 5798 5.1.2.1: IPv6 adverts come from the interface's link-local address.
        for _ in range(50):
            for a in await self.netlink.addresses():
                ip = a.address.ip
                if a.interface == spec.interface and ip.version == 6 and ip.is_link_local:
                    return ip
            await asyncio.sleep(0.1)  # DAD may still be running on a fresh link
        raise StartupError(f"{spec.name}: {spec.interface} has no IPv6 link-local address")

    async def _start_instance(self, spec: VrrpInstance) -> None:
        if spec.interface not in self.links:
            raise StartupError(f"{spec.name}: interface {spec.interface} does not exist")
        params = instance_params(spec, await self._primary(spec))
        for dev in {vip.dev for vip in spec.vips}:
            await self.netlink.warm(dev)  # a takeover then adds its VIPs in its own call
        for vip in spec.vips:  # ... with requests encoded already
            self.netlink.prepare_add(live_vip(vip))
        key = (spec.interface, spec.family)
        mux = self.muxes.get(key)
        if mux is None:
            sock = VrrpSocket(spec.interface, spec.family.value)
            mux = self.muxes[key] = SocketMux(sock, self.loop, self._repeat_filter(sock))
        announcer = self.announcers.setdefault(spec.interface, Announcer(spec.interface))
        announcer.prepare(spec.family.value)  # not on the takeover path
        driver = InstanceDriver(
            spec,
            params,
            mux,
            self.netlink,
            announcer,
            self.ownership,
            self.loop,
            on_transition=self._on_transition,
            notifier=self.notifier,
        )
        mux.attach(driver)
        self.drivers[spec.name] = driver
        driver.start()
        if not self.links[spec.interface].running:
            driver.feed(LinkDown())
        self.tracking.apply(driver)

    async def _stop_instance(self, name: str) -> None:
        driver = self.drivers.pop(name)
        await driver.stop()
        mux = self.muxes[(driver.spec.interface, driver.spec.family)]
        mux.detach(driver.spec.vrid)

    async def replace_config(self, revision: Revision) -> list[str]:
        """Apply a new revision: restart exactly the instances whose spec changed."""
        config = revision.config
        old = {i.name: i for i in self.config.instances}
        new = {i.name: i for i in config.instances}
        changed = sorted(n for n in old.keys() | new.keys() if old.get(n) != new.get(n))
        # First, so that a node that cannot have the rules refuses the reload with nothing
        # changed; one transaction, so an instance keeping accept: false keeps its rules.
        await self._apply_accept_mode(config)
        for name in changed:
            if name in self.drivers:
                await self._stop_instance(name)
        self.config = config
        self.revision = revision
        self.applied_unix_s = time.time()
        self.reconcile.drain_timeout_s = revision.drain_timeout_s
        self.reconcile.resync_interval_s = revision.resync_interval_s
        self._apply_sysctls()
        self.sync_groups.groups = self._group_members(config)
        self.tracking.set_checks(config.checks)
        self.real_servers.set_config(config)
        # Before any priority, weight or quorum is computed: tracking and real-server
        # health read the checks' states from the scheduler, which decides what a
        # changed check keeps.
        self.checks.replace(self._check_jobs())
        self.real_servers.refresh()
        self.ownership.set_pending(_takeover_vips(config))
        for name in changed:
            if name in new:
                await self._start_instance(new[name])
        for driver in self.drivers.values():
            self.tracking.apply(driver)
        self.reconcile.wake()
        return changed

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


def _load_node(file: Path, node: str) -> Revision:
    loaded = load_file(file)
    if node not in loaded.cluster.node_names:
        raise StartupError(
            f"node {node!r} is not in {file} (nodes: {', '.join(loaded.cluster.node_names)})"
        )
    digest = hashlib.sha256(file.read_bytes()).hexdigest()[:12]
    c = loaded.cluster
    return Revision(
        c.for_node(node),
        c.name,
        digest,
        c.sysctls,
        c.resync_interval.total_seconds(),
        c.drain_timeout.total_seconds(),
    )


def _takeover_vips(config: NodeConfig) -> set[Ident]:
    """Every VIP a takeover of this node may add."""
    every = frozenset(i.name for i in config.instances)
    return {(a.kind, a.key) for a in vip_addresses(config, every)}


async def run_node(options: RunOptions) -> int:
    """Run until SIGTERM/SIGINT; 0 on a clean stop, 2 when the input cannot run."""
    try:
        revision = _load_node(options.file, options.node)
    except InvalidConfig as exc:
        for d in exc.diagnostics:
            log.error("%s", d)
        log.error("%s: invalid; not starting", options.file)
        return 2
    except (OSError, StartupError) as exc:
        log.error("%s", exc)
        return 2

    tracing = Tracing(tracer_provider_from_env("reconciler", options.node, revision.cluster))
    runtime = NodeRuntime(options, revision, tracing)
    server = StatusServer(runtime, registry_for(runtime))
    loop = asyncio.get_running_loop()
    reloads: asyncio.Queue[None] = asyncio.Queue()
    loop.add_signal_handler(signal.SIGTERM, runtime.stopping.set)
    loop.add_signal_handler(signal.SIGINT, runtime.stopping.set)
    loop.add_signal_handler(signal.SIGHUP, reloads.put_nowait, None)
    try:
        try:
            await runtime.start()
            if options.http_addr is not None:
                port = await server.start(*options.http_addr)
                log.info("metrics and status on http://%s:%d/", options.http_addr[0], port)
            process_memory.settle()
        except (StartupError, OSError) as exc:
            log.error("cannot start: %s", exc)
            await runtime.stop()
            return 2
        log.info(
            "node %s running %d instance(s) from %s",
            options.node,
            len(runtime.drivers),
            options.file,
        )
        while not runtime.stopping.is_set():
            stop = asyncio.ensure_future(runtime.stopping.wait())
            reload = asyncio.ensure_future(reloads.get())
            await asyncio.wait({stop, reload}, return_when=asyncio.FIRST_COMPLETED)
            for f in (stop, reload):
                if not f.done():
                    f.cancel()
            if reload.done() and not reload.cancelled():
                await _reload(runtime, options)
        log.info("stopping: releasing VIPs")
        await runtime.stop()
        await server.close()
        await asyncio.to_thread(tracing.shutdown)
        return 0
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            with contextlib.suppress(Exception):
                loop.remove_signal_handler(sig)


async def _reload(runtime: NodeRuntime, options: RunOptions) -> None:
    try:
        # Parsed and validated in a thread: a large file takes a good part of a second,
        # and the event loop must keep sending adverts meanwhile (it gets the GIL back
        # at least every sys.getswitchinterval(), 5 ms).
        revision = await asyncio.to_thread(_load_node, options.file, options.node)
    except InvalidConfig as exc:
        for d in exc.diagnostics:
            log.error("%s", d)
        log.error("reload: %s is invalid; still running the last good revision", options.file)
        runtime.reloads_failed += 1
        runtime.last_reload_error = str(exc.diagnostics[0]) if exc.diagnostics else "invalid"
        runtime.tracing.reload(
            runtime.revision.digest, False, runtime.last_reload_error, [], time.time()
        )
        return
    except (OSError, StartupError) as exc:
        log.error("reload: %s; still running the last good revision", exc)
        runtime.reloads_failed += 1
        runtime.last_reload_error = str(exc)
        return
    try:
        changed = await runtime.replace_config(revision)
        process_memory.settle()
    except (StartupError, OSError) as exc:
        log.error("reload: %s", exc)
        runtime.reloads_failed += 1
        runtime.last_reload_error = str(exc)
        return
    runtime.reloads_ok += 1
    runtime.last_reload_error = None
    runtime.tracing.reload(revision.digest, True, None, changed, time.time())
    log.info("reload: %d instance(s) restarted: %s", len(changed), ", ".join(changed) or "none")
