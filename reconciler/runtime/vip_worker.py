"""One VRRP instance's serial worker: VIP adds and removals, hooks, announcements.

The state machine's address work runs here, one item at a time in the order queued, so
a VIP is configured before it is announced and released after the hooks that must run
first, without holding up adverts (the driver only queues).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address
from typing import Never, NoReturn

from reconciler.adapters.error_tally import ErrorTally
from reconciler.adapters.netlink import ADDRESS_ERRORS, Netlink
from reconciler.adapters.outcome import WriteOutcome
from reconciler.model import vrrp as model
from reconciler.model.kernel import LiveAddress
from reconciler.plan.live import live_vip
from reconciler.reconcile.ownership import OwnershipStore
from reconciler.runtime.announce import Announcements
from reconciler.runtime.instance_hooks import InstanceHooks
from reconciler.vrrp import actions as act
from reconciler.vrrp.states import State, TransitionReason

log = logging.getLogger("reconciler.vrrp")

IPAddr = IPv4Address | IPv6Address


@dataclass(frozen=True)
class _Release:
    """Remove VIPs on leaving MASTER for `to_state`, after its before-release hooks."""

    addresses: tuple[IPAddr, ...]
    to_state: State


@dataclass(frozen=True)
class _Adding:
    """VIP adds under way: the requests went out (``Netlink.begin_add``) when the
    instance became master, or when the worker got to them; None: to be sent by
    ``Netlink.add_address``. ``before``: what was ours before they were claimed."""

    lives: tuple[LiveAddress, ...]
    started: tuple[asyncio.Future[WriteOutcome] | None, ...]
    before: frozenset[tuple[str, tuple[str, ...]]]


@dataclass(frozen=True)
class _Notify:
    """Run the notify hooks of a state entered (after the address work queued before)."""

    from_state: State
    to_state: State
    reason: TransitionReason


_Work = act.AddVips | _Adding | _Release | act.RemoveVips | _Notify | act.SendGratuitous


def _unknown(work: Never) -> NoReturn:
    raise TypeError(f"unknown VIP work item: {work!r}")


class VipWorker:
    """Queues one instance's address work and runs it on its own task.

    VIPs are claimed in ``ownership`` before they are added, and only the VIPs that are
    ours are removed. The kernel's refusals are
    tallied by kind (``add_tally``, ``remove_tally``), anything else logged as a bug.
    """

    def __init__(
        self,
        spec: model.VrrpInstance,
        netlink: Netlink,
        ownership: OwnershipStore,
        hooks: InstanceHooks,
        announcements: Announcements,
        add_tally: ErrorTally,
        remove_tally: ErrorTally,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self._spec = spec
        self._netlink = netlink
        self._ownership = ownership
        self._hooks = hooks
        self._announcements = announcements
        self._add_tally = add_tally
        self._remove_tally = remove_tally
        self._vips = {v.address.ip: v for v in spec.vips}
        self._queue: asyncio.Queue[_Work | None] = asyncio.Queue()
        self._busy = False
        self._releasing = 0  # releases queued or running (before_release hooks first)
        self._task = loop.create_task(self._run(), name=f"vrrp-{spec.name}-worker")

    @property
    def releasing(self) -> bool:
        """VIPs are still being released (their hooks, then their removal)."""
        return self._releasing > 0

    def reconfigure(self, spec: model.VrrpInstance) -> None:
        # A VIP that went is released later: keep how to find it.
        self._vips = {**self._vips, **{v.address.ip: v for v in spec.vips}}
        self._spec = spec

    # ------------------------------------------------------------ queueing
    def add(self, a: act.AddVips) -> None:
        if self._idle():
            # Nothing queued before it (no release of these VIPs in flight): the add
            # requests go out now, not when the worker runs.
            self._queue.put_nowait(self._begin_add(a.addresses))
        else:
            self._queue.put_nowait(a)

    def remove(self, a: act.RemoveVips) -> None:
        self._queue.put_nowait(a)

    def release(self, addresses: tuple[IPAddr, ...], to_state: State) -> None:
        """Remove ``addresses`` on leaving MASTER for ``to_state``, after the hooks that
        run before a release."""
        self._releasing += 1
        self._queue.put_nowait(_Release(addresses, to_state))

    def announce(self, a: act.SendGratuitous) -> None:
        self._queue.put_nowait(a)

    def notify(self, t: act.Transitioned) -> None:
        self._queue.put_nowait(_Notify(t.from_state, t.to_state, t.reason))

    async def stop(self, timeout_s: float) -> None:
        """Run what is queued, then end (cancelled after ``timeout_s``)."""
        self._queue.put_nowait(None)
        try:
            await asyncio.wait_for(asyncio.shield(self._task), timeout_s)
        except TimeoutError:
            self._task.cancel()
            log.error("%s: address work did not finish in %.1fs", self._spec.name, timeout_s)

    def _idle(self) -> bool:
        return not self._busy and self._queue.empty() and self._releasing == 0

    # ------------------------------------------------------------ running
    async def _run(self) -> None:
        while (work := await self._queue.get()) is not None:
            self._busy = True
            try:
                await self._do(work)
            except Exception as exc:
                tally = self._tally(work) if isinstance(exc, ADDRESS_ERRORS) else None
                if tally is not None:
                    # The kernel or the link refused: for every instance alike, so counted
                    # by kind and logged once per kind.
                    tally.record(exc, self._spec.interface)
                else:  # a bug: its traceback
                    log.exception("%s: %s failed", self._spec.name, type(work).__name__)
            finally:
                self._busy = False

    async def _do(self, work: _Work) -> None:
        if isinstance(work, act.AddVips):
            await self._finish_add(self._begin_add(work.addresses))
        elif isinstance(work, _Adding):
            await self._finish_add(work)
        elif isinstance(work, _Release):
            try:
                await self._hooks.before_release(work.to_state)
                await self._remove(work.addresses)
            finally:
                self._releasing -= 1
        elif isinstance(work, act.RemoveVips):
            await self._remove(work.addresses)
        elif isinstance(work, _Notify):
            self._hooks.notify(work.from_state, work.to_state, work.reason)
        elif isinstance(work, act.SendGratuitous):
            self._announcements.schedule(work.addresses)
        else:
            _unknown(work)

    def _tally(self, work: _Work) -> ErrorTally | None:
        if isinstance(work, act.AddVips | _Adding):
            return self._add_tally
        if isinstance(work, act.RemoveVips | _Release):
            return self._remove_tally
        return None

    def _live(self, ip: IPAddr) -> LiveAddress:
        return live_vip(self._vips[ip])

    def _begin_add(self, addresses: tuple[IPAddr, ...]) -> _Adding:
        lives = tuple(self._live(ip) for ip in addresses)
        before = self._ownership.owned
        # Claimed before the add (in memory: an fsync here would delay the takeover) so a
        # reconcile pass running meanwhile sees them as ours; written down right after
        # (and listed as pending in the record since start, for a crash in between).
        self._ownership.claim({(live.kind, live.key) for live in lives})
        return _Adding(lives, tuple(self._netlink.begin_add(live) for live in lives), before)

    async def _finish_add(self, adding: _Adding) -> None:
        before = adding.before
        foreign = set()
        for live, started in zip(adding.lives, adding.started, strict=True):
            if started is None:
                outcome = await self._netlink.add_address(live)
            else:
                outcome = await self._netlink.finish_add(live, started)
            ident = (live.kind, live.key)
            if outcome is not WriteOutcome.CREATED and ident not in before:
                foreign.add(ident)
                log.warning(
                    "%s: VIP %s is already on %s and was not added by us; leaving it alone",
                    self._spec.name,
                    live.address,
                    live.interface,
                )
        self._ownership.update(remove=foreign)

    async def _remove(self, addresses: tuple[IPAddr, ...]) -> None:
        removed = set()
        for ip in addresses:
            live = self._live(ip)
            ident = (live.kind, live.key)
            if ident not in self._ownership.owned:
                continue  # never remove an address someone else configured
            await self._netlink.delete_address(live)
            removed.add(ident)
        self._ownership.update(remove=removed)
