"""The node's VRRP instances across revisions: started, changed in place, restarted, stopped.

A new revision is prepared, then applied (DESIGN.md rule 11). ``prepare`` checks and
acquires, for every instance that starts or changes, what can fail on this node: the
interface, an address to send adverts from, parameters the state machine accepts, a raw
socket for an interface and family not open yet, and the VIP add requests encoded. It
touches nothing running; a revision that fails there changes nothing (``discard`` gives
back what it acquired). ``apply`` then moves the running drivers to the prepared
revision, where little can fail. It works from what runs, not from the revision before,
so a rollback is preparing and applying the last good revision again.

Which change restarts an instance is ``model.vrrp.restart_reasons`` (VRID, interface,
family, version: its identity on the wire, which a running socket and state machine
cannot take on). Every other change is applied in place by ``InstanceDriver.reconfigure``:
no priority-0 advert, and no VIP that stays is removed.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address

from reconciler.adapters.arp import Announcer
from reconciler.adapters.netlink import Link, Netlink
from reconciler.adapters.repeat_filter import FilterUnavailable, RepeatFilter
from reconciler.adapters.vrrp_socket import VrrpSocket
from reconciler.model.cluster import NodeConfig
from reconciler.model.common import Family, IPAddress
from reconciler.model.vrrp import VrrpInstance, restart_reasons
from reconciler.plan.live import live_vip
from reconciler.reconcile.ownership import OwnershipStore
from reconciler.runtime.notify import Notifier
from reconciler.runtime.vrrp_driver import (
    InstanceDriver,
    SocketMux,
    Tallies,
    TransitionListener,
    instance_params,
)
from reconciler.vrrp.events import LinkDown
from reconciler.vrrp.params import InstanceParams

log = logging.getLogger("reconciler.instances")

SocketKey = tuple[str, Family]  # interface, address family: one raw socket each
LINK_LOCAL_WAIT_S = 5.0  # DAD may still be running on a fresh link
LINK_LOCAL_POLL_S = 0.1


class PrepareError(Exception):
    """This node cannot run the revision (missing interface, no address to send from...);
    nothing running was touched."""


class ChangeKind(enum.Enum):
    START = "start"  # a new instance
    STOP = "stop"  # an instance the revision no longer has
    RESTART = "restart"  # an identity change (restart_reasons): stop, then start
    RECONFIGURE = "reconfigure"  # any other change: in place


@dataclass(frozen=True)
class InstanceChange:
    """What one instance does to reach the prepared revision."""

    name: str
    kind: ChangeKind
    spec: VrrpInstance | None = None  # the new revision's (None: STOP)
    params: InstanceParams | None = None  # the state machine's, resolved (None: STOP)
    reasons: tuple[str, ...] = ()  # RESTART: the identity fields that changed


@dataclass(frozen=True)
class Prepared:
    """A revision of the instances, checked and ready to apply."""

    changes: tuple[InstanceChange, ...]
    # Raw sockets opened for interfaces and families that had none.
    sockets: tuple[tuple[SocketKey, VrrpSocket], ...] = ()

    def names(self, kind: ChangeKind) -> tuple[str, ...]:
        return tuple(c.name for c in self.changes if c.kind is kind)


@dataclass(frozen=True)
class InstancesApplied:
    """What applying a revision did to the instances, by name."""

    started: tuple[str, ...] = ()
    stopped: tuple[str, ...] = ()
    restarted: tuple[str, ...] = ()
    reconfigured: tuple[str, ...] = ()  # changed in place

    @property
    def changed(self) -> list[str]:
        """Every instance the revision changed, sorted."""
        return sorted({*self.started, *self.stopped, *self.restarted, *self.reconfigured})

    def summary(self) -> str:
        parts = [
            f"{label}: {', '.join(names)}"
            for label, names in (
                ("in place", self.reconfigured),
                ("restarted", self.restarted),
                ("started", self.started),
                ("stopped", self.stopped),
            )
            if names
        ]
        return "; ".join(parts) or "no instance changed"


class InstanceSet:
    """The drivers of one node's instances, the sockets they share (one per interface and
    family) and the announcers (one per interface)."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        netlink: Netlink,
        ownership: OwnershipStore,
        notifier: Notifier,
        *,
        links: Callable[[], Mapping[str, Link]],
        on_transition: TransitionListener,
        effective_priority: Callable[[VrrpInstance], int],
        repeat_filter: bool = True,
    ) -> None:
        self.loop = loop
        self.netlink = netlink
        self.ownership = ownership
        self.notifier = notifier
        self._links = links
        self._on_transition = on_transition
        self._effective_priority = effective_priority  # trackers applied to a spec
        self._use_repeat_filter = repeat_filter
        self.drivers: dict[str, InstanceDriver] = {}
        self.muxes: dict[SocketKey, SocketMux] = {}
        self.announcers: dict[str, Announcer] = {}
        self.tallies = Tallies.fresh()  # takeover failures, across sockets and reloads

    # ------------------------------------------------------------ views
    def masters(self) -> frozenset[str]:
        """The instances that hold their VIPs now (what the reconcile loop keeps)."""
        return frozenset(n for n, d in self.drivers.items() if d.holds_vips)

    def advert_sources(self) -> frozenset[IPAddress]:
        """The addresses the instances send adverts from (never removed as drift)."""
        return frozenset(d.params.primary_address for d in self.drivers.values())

    # ------------------------------------------------------------ prepare
    async def prepare(self, config: NodeConfig) -> Prepared:
        """Check and acquire what ``config``'s instances need; nothing running changes.
        Raises PrepareError with every instance's problem."""
        links = self._links()
        changes: list[InstanceChange] = []
        errors: list[str] = []
        for spec in config.instances:
            running = self.drivers.get(spec.name)
            if running is not None and running.spec == spec:
                continue
            reasons = restart_reasons(running.spec, spec) if running is not None else ()
            if running is None:
                kind = ChangeKind.START
            elif reasons:
                kind = ChangeKind.RESTART
            else:
                kind = ChangeKind.RECONFIGURE
            missing = sorted({spec.interface, *(v.dev for v in spec.vips)} - links.keys())
            if missing:
                errors += [f"{spec.name}: interface {name} does not exist" for name in missing]
                continue
            try:
                if (
                    kind is ChangeKind.RECONFIGURE
                    and running is not None
                    and running.spec.primary_address == spec.primary_address
                ):
                    # Keep the address it sends from: a new lookup could pick another
                    # address of the interface, a change of source its peers would see.
                    primary = running.params.primary_address
                else:
                    primary = await self._primary(spec)
                params = instance_params(spec, primary)
            except (PrepareError, ValueError) as exc:
                errors.append(str(exc) if isinstance(exc, PrepareError) else f"{spec.name}: {exc}")
                continue
            changes.append(InstanceChange(spec.name, kind, spec, params, reasons))
        wanted = {i.name for i in config.instances}
        changes += [
            InstanceChange(name, ChangeKind.STOP) for name in sorted(self.drivers.keys() - wanted)
        ]
        if errors:
            raise PrepareError("; ".join(errors))
        prepared = Prepared(tuple(changes), await self._open_sockets(changes))
        try:
            for change in changes:
                if change.spec is None:
                    continue
                for dev in {vip.dev for vip in change.spec.vips}:
                    await self.netlink.warm(dev)  # a takeover then adds its VIPs in one call
                for vip in change.spec.vips:  # ... with requests encoded already
                    self.netlink.prepare_add(live_vip(vip))
        except BaseException:
            self.discard(prepared)
            raise
        return prepared

    async def _open_sockets(
        self, changes: list[InstanceChange]
    ) -> tuple[tuple[SocketKey, VrrpSocket], ...]:
        # An identity change may leave a socket unused and need another; a socket whose
        # instances all go is closed by apply, not here.
        opened: dict[SocketKey, VrrpSocket] = {}
        try:
            for change in changes:
                spec = change.spec
                if spec is None:
                    continue
                key = (spec.interface, spec.family)
                if key not in self.muxes and key not in opened:
                    opened[key] = VrrpSocket(spec.interface, spec.family.value)
        except OSError as exc:
            for sock in opened.values():
                sock.close()
            raise PrepareError(f"VRRP socket on {exc}") from exc
        return tuple(opened.items())

    def discard(self, prepared: Prepared) -> None:
        """Give back what ``prepare`` acquired, for a revision that will not be applied."""
        for _key, sock in prepared.sockets:
            sock.close()

    async def _primary(self, spec: VrrpInstance) -> IPv4Address | IPv6Address:
        if spec.family is Family.IPV4:
            if spec.primary_address is not None:
                return spec.primary_address
            for a in await self.netlink.addresses():
                if a.interface == spec.interface and a.address.version == 4:
                    return a.address.ip
            raise PrepareError(
                f"{spec.name}: {spec.interface} has no IPv4 address to send adverts from"
            )
        # RFC 5798 5.1.2.1: IPv6 adverts come from the interface's link-local address.
        for _ in range(round(LINK_LOCAL_WAIT_S / LINK_LOCAL_POLL_S)):
            for a in await self.netlink.addresses():
                ip = a.address.ip
                if a.interface == spec.interface and ip.version == 6 and ip.is_link_local:
                    return ip
            await asyncio.sleep(LINK_LOCAL_POLL_S)
        raise PrepareError(f"{spec.name}: {spec.interface} has no IPv6 link-local address")

    # ------------------------------------------------------------ apply
    async def apply(self, prepared: Prepared, switch: Callable[[], None]) -> InstancesApplied:
        """Move the running instances to ``prepared``. Instances that stop (removed, or
        restarted for an identity change) stop first, so a VRID can pass from one
        instance name to another; then ``switch`` (the caller makes the revision
        current: trackers, desired state), then the in-place changes and the starts,
        with no await between them and ``switch``."""
        sockets = dict(prepared.sockets)
        try:
            for change in prepared.changes:
                if change.kind is ChangeKind.RESTART:
                    log.info(
                        "%s: restarting: %s changed (cannot change in place)",
                        change.name,
                        ", ".join(change.reasons),
                    )
                if change.kind in (ChangeKind.STOP, ChangeKind.RESTART):
                    await self._stop(change.name)
            switch()
            for change in prepared.changes:
                if change.kind is ChangeKind.RECONFIGURE:
                    assert change.spec is not None and change.params is not None
                    self.drivers[change.name].reconfigure(
                        change.spec, change.params, self._effective_priority(change.spec)
                    )
            for change in prepared.changes:
                if change.kind in (ChangeKind.START, ChangeKind.RESTART):
                    assert change.spec is not None and change.params is not None
                    self._start(change.spec, change.params, sockets)
        finally:
            for sock in sockets.values():  # not needed after all (an earlier failure)
                sock.close()
        self._close_unused()
        return InstancesApplied(
            started=prepared.names(ChangeKind.START),
            stopped=prepared.names(ChangeKind.STOP),
            restarted=prepared.names(ChangeKind.RESTART),
            reconfigured=prepared.names(ChangeKind.RECONFIGURE),
        )

    def _start(
        self, spec: VrrpInstance, params: InstanceParams, sockets: dict[SocketKey, VrrpSocket]
    ) -> None:
        key = (spec.interface, spec.family)
        mux = self.muxes.get(key)
        if mux is None:
            sock = sockets.pop(key, None) or VrrpSocket(spec.interface, spec.family.value)
            mux = self.muxes[key] = SocketMux(sock, self.loop, self._repeat_filter(sock))
        announcer = self.announcers.get(spec.interface)
        if announcer is None:
            announcer = self.announcers[spec.interface] = Announcer(
                spec.interface, self.tallies.announce
            )
        announcer.prepare(spec.family.value)  # its socket and MAC: not on the takeover path
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
            tallies=self.tallies,
        )
        mux.attach(driver)
        self.drivers[spec.name] = driver
        driver.start()
        link = self._links().get(spec.interface)
        if link is not None and not link.running:
            driver.feed(LinkDown())

    async def _stop(self, name: str) -> None:
        driver = self.drivers.pop(name)
        await driver.stop()
        self.muxes[(driver.spec.interface, driver.spec.family)].detach(driver.spec.vrid)

    def _close_unused(self) -> None:
        """Close the sockets and announcers no instance uses any more."""
        used = {(d.spec.interface, d.spec.family) for d in self.drivers.values()}
        for key in [k for k in self.muxes if k not in used]:
            self.muxes.pop(key).close()
        interfaces = {d.spec.interface for d in self.drivers.values()}
        for name in [n for n in self.announcers if n not in interfaces]:
            self.announcers.pop(name).close()

    def _repeat_filter(self, sock: VrrpSocket) -> RepeatFilter | None:
        """The kernel repeat filter for a new socket, attached; None when switched off
        or when the kernel refuses it (then every advert is read here, as before)."""
        if not self._use_repeat_filter:
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

    # ------------------------------------------------------------ stop
    async def stop(self) -> None:
        """Stop every instance gracefully (priority 0, VIPs released), close the sockets."""
        await asyncio.gather(*(d.stop() for d in self.drivers.values()))
        self.drivers.clear()

    def close(self) -> None:
        for mux in self.muxes.values():
            mux.close()
        for ann in self.announcers.values():
            ann.close()
        self.muxes.clear()
        self.announcers.clear()
