"""The level-based reconcile loop: observe, diff, apply, record what is ours.

Each pass re-reads live state (netlink events and file changes are only hints
that wake the loop; a periodic resync catches missed ones), diffs it against
the node's desired state with the pure `plan.diff`, and applies the steps
idempotently. Rules that make it safe to run forever:

- Only what is owned changes: objects this node created (the ownership record
  survives restarts), and the real servers inside an IPVS service it owns (so
  one added by hand to our service is removed). A foreign service is never
  touched, nor is anything in it; a clash is reported as a conflict.
- A real server leaving a TCP or SCTP service drains: first weight 0, then
  deleted once its active and inactive connections are gone or the drain
  timeout passed. UDP servers go at once. A service goes after its servers.
- A transient failure backs off per object (doubling, capped); a permanent one
  (the kernel refuses the object as described) is recorded and not retried
  until the desired object changes.
- Each pass ends in one outcome: converged, changed, or error.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import errno
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from ipaddress import ip_interface
from typing import Protocol

from reconciler.adapters.outcome import WriteOutcome
from reconciler.model.cluster import NodeConfig
from reconciler.model.common import IPAddress, Key
from reconciler.model.ipvs import ServiceKey
from reconciler.model.kernel import LiveAddress, LiveDest, LiveService
from reconciler.plan.diff import Action, Step, diff
from reconciler.plan.live import Overlay, own_addresses, project, vip_addresses
from reconciler.reconcile.drain import DEFAULT_DRAIN_TIMEOUT_S, Drains
from reconciler.reconcile.ownership import Ident, OwnershipStore

log = logging.getLogger("reconciler.reconcile")

# Errors that mean "the kernel will never accept this object as described".
PERMANENT_ERRNOS = frozenset(
    {errno.EINVAL, errno.EPERM, errno.EOPNOTSUPP, errno.EAFNOSUPPORT, errno.ENOENT}
)
CONCURRENT_WRITES = 256  # requests in flight at once on the netlink socket
BACKOFF_START_S = 1.0
BACKOFF_MAX_S = 60.0


class IpvsPort(Protocol):
    """What the loop needs of the IPVS adapter (`adapters.ipvs.Ipvs`)."""

    async def dump(self) -> tuple[list[LiveService], list[LiveDest]]: ...
    async def add_service(self, svc: LiveService) -> WriteOutcome: ...
    async def edit_service(self, svc: LiveService) -> WriteOutcome: ...
    async def delete_service(self, service: ServiceKey) -> WriteOutcome: ...
    async def add_dest(self, dest: LiveDest) -> WriteOutcome: ...
    async def edit_dest(self, dest: LiveDest) -> WriteOutcome: ...
    async def delete_dest(
        self, service: ServiceKey, address: IPAddress, port: int
    ) -> WriteOutcome: ...


class AddressPort(Protocol):
    """What the loop needs of the address adapter (`adapters.netlink.Netlink`)."""

    async def addresses(self) -> list[LiveAddress]: ...
    async def add_address(self, a: LiveAddress) -> WriteOutcome: ...
    async def delete_address(self, a: LiveAddress) -> WriteOutcome: ...


def _address(ident: Ident) -> IPAddress:
    """The IP of an address ident ((interface, address/prefix))."""
    return ip_interface(ident[1][1]).ip


class Outcome(enum.Enum):
    CONVERGED = "converged"  # nothing to do
    CHANGED = "changed"  # steps applied, all succeeded
    ERROR = "error"  # at least one step failed


@dataclass(frozen=True)
class StepResult:
    step: Step
    outcome: WriteOutcome | None  # None: failed or skipped
    error: str | None = None
    permanent: bool = False


@dataclass(frozen=True)
class PassResult:
    outcome: Outcome
    steps: tuple[StepResult, ...]
    conflicts: tuple[Step, ...]
    draining: tuple[Key, ...]
    duration_s: float
    writes: int


@dataclass
class LoopCounters:
    passes: dict[str, int] = field(default_factory=lambda: {o.value: 0 for o in Outcome})
    writes: int = 0
    last_duration_s: float = 0.0
    last_outcome: str | None = None
    last_error: str | None = None


class ReconcileLoop:
    """Keeps one node's kernel objects equal to its share of the desired state."""

    def __init__(
        self,
        desired: Callable[[], NodeConfig],
        ownership: OwnershipStore,
        *,
        ipvs: IpvsPort | None = None,
        addresses: AddressPort | None = None,
        masters: Callable[[], frozenset[str]] = frozenset,
        protected: Callable[[], frozenset[IPAddress]] = frozenset,
        health: Callable[[], Overlay] | None = None,
        drain_timeout_s: float = DEFAULT_DRAIN_TIMEOUT_S,
        resync_interval_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.desired = desired
        self.ownership = ownership
        self.ipvs = ipvs
        self.addresses = addresses
        self.masters = masters
        self.protected = protected  # advert sources in use, beyond the configured ones
        self.health = health
        self.resync_interval_s = resync_interval_s
        self.clock = clock
        self.counters = LoopCounters()
        self.conflicts: tuple[Step, ...] = ()
        self.permanent: dict[tuple[str, Key], tuple[object, str]] = {}  # ident -> (wanted, why)
        self._backoff: dict[tuple[str, Key], tuple[float, float]] = {}  # ident -> (at, delay)
        self._drains = Drains(drain_timeout_s)
        self._wake = asyncio.Event()
        self.last_dests: tuple[LiveDest, ...] = ()  # as last observed, with counters
        self._warned_own: set[Ident] = set()

    @property
    def draining(self) -> tuple[Key, ...]:
        return self._drains.keys()

    # ------------------------------------------------------------ scope
    @property
    def kinds(self) -> frozenset[str]:
        kinds: set[str] = set()
        if self.ipvs is not None:
            kinds |= {LiveService.kind, LiveDest.kind}
        if self.addresses is not None:
            kinds.add(LiveAddress.kind)
        return frozenset(kinds)

    async def observe(self) -> list[LiveAddress | LiveService | LiveDest]:
        observed: list[LiveAddress | LiveService | LiveDest] = []
        if self.ipvs is not None:
            services, dests = await self.ipvs.dump()
            observed += services
            observed += dests
        if self.addresses is not None:
            observed += await self.addresses.addresses()
        return observed

    def wanted(self) -> list[LiveAddress | LiveService | LiveDest]:
        overlay = self.health() if self.health is not None else Overlay()
        return [
            r
            for r in project(self.desired(), self.masters(), overlay.weights, overlay.sorry_active)
            if r.kind in self.kinds
        ]

    def owned(self, observed: Iterable[LiveAddress | LiveService | LiveDest]) -> set[Ident]:
        """Recorded objects, plus every real server inside a service we own; never the
        node's own addresses (its configured ones, the advert sources the runtime uses,
        link-local ones), whatever the record says."""
        recorded = {i for i in self.ownership.owned if i[0] in self.kinds} - self._own_listed()
        our_services = {key for kind, key in recorded if kind == LiveService.kind}
        for r in observed:
            if isinstance(r, LiveDest) and r.service.parts() in our_services:
                recorded.add((r.kind, r.key))
        return recorded

    def _own_listed(self) -> set[Ident]:
        """Address idents in the record that are the node's own addresses (logged once)."""
        own = own_addresses(self.desired()) | self.protected()
        listed = {
            i
            for i in self.ownership.owned
            if i[0] == LiveAddress.kind and (_address(i) in own or _address(i).is_link_local)
        }
        for ident in sorted(listed - self._warned_own):
            log.warning(
                "the ownership record lists %s, this node's own address: never removed",
                "/".join(ident[1]),
            )
        self._warned_own |= listed
        return listed

    def plan(
        self,
        observed: list[LiveAddress | LiveService | LiveDest],
        wanted: list[LiveAddress | LiveService | LiveDest] | None = None,
    ) -> list[Step]:
        return diff(self.wanted() if wanted is None else wanted, observed, self.owned(observed))

    # ------------------------------------------------------------ one pass
    async def run_once(self) -> PassResult:
        t0 = self.clock()
        observed = await self.observe()
        wanted = self.wanted()
        steps = self.plan(observed, wanted)
        live_dests = {r.key: r for r in observed if isinstance(r, LiveDest)}
        self.last_dests = tuple(live_dests.values())
        conflicts = tuple(s for s in steps if s.action is Action.CONFLICT)
        for c in conflicts:
            if c not in self.conflicts:
                log.warning(
                    "conflict: %s %s exists and is not ours; left alone", c.kind, "/".join(c.key)
                )
        self.conflicts = conflicts
        wanted_keys = {s.key for s in steps if s.action is not Action.DELETE}
        todo = [
            step
            for step in self._drains.steps(steps, live_dests, wanted_keys, self.clock())
            if not (
                # VRRP moved on while this pass was reading: a VIP is only ever added
                # for an instance that is master right now.
                isinstance(step.after, LiveAddress)
                and step.action is not Action.DELETE
                and step.after not in set(vip_addresses(self.desired(), self.masters()))
            )
        ]
        # Claim what we are about to create before creating it (one write of the
        # record per pass, not per object): after a crash mid-pass nothing we made
        # is left unowned. Claims that did not create anything are dropped after.
        claims = {(s.kind, s.key) for s in todo if s.action is Action.CREATE}
        # Only this pass's own claims are dropped: a VIP claimed meanwhile by a VRRP
        # driver that added it first (a takeover, a VIP added in place) stays ours.
        claims -= self.ownership.owned
        self.ownership.update(add=claims)
        results = await self._apply_all(todo)
        released = {
            (r.step.kind, r.step.key)
            for r in results
            if (
                r.step.action is Action.CREATE
                and r.outcome is not WriteOutcome.CREATED
                and (r.step.kind, r.step.key) in claims
            )
            or (r.step.action is Action.DELETE and r.outcome is not None)
        }
        self.ownership.update(remove=released)
        writes = sum(1 for r in results if r.outcome is not None)
        self._drains.forget(observed, wanted)
        failed = [r for r in results if r.error is not None]
        outcome = Outcome.ERROR if failed else Outcome.CHANGED if results else Outcome.CONVERGED
        duration = self.clock() - t0
        counters = self.counters
        counters.passes[outcome.value] += 1
        counters.writes += writes
        counters.last_duration_s = duration
        counters.last_outcome = outcome.value
        counters.last_error = failed[0].error if failed else None
        return PassResult(outcome, tuple(results), conflicts, self._drains.keys(), duration, writes)

    async def _apply_all(self, steps: list[Step]) -> list[StepResult]:
        """Apply in plan order; consecutive IPVS steps of one phase (same action and kind)
        are independent of each other and go to the kernel concurrently."""
        results: list[StepResult] = []
        i = 0
        while i < len(steps):
            j = i + 1
            phase = (steps[i].action, steps[i].kind)
            if steps[i].kind != LiveAddress.kind:
                while (
                    j < len(steps)
                    and (steps[j].action, steps[j].kind) == phase
                    and j - i < CONCURRENT_WRITES
                ):
                    j += 1
            results += await asyncio.gather(*(self._apply(s) for s in steps[i:j]))
            i = j
        return results

    async def _apply(self, step: Step) -> StepResult:
        ident = (step.kind, step.key)
        now = self.clock()
        wanted = step.after
        if ident in self.permanent and self.permanent[ident][0] == wanted:
            return StepResult(step, None, self.permanent[ident][1], permanent=True)
        self.permanent.pop(ident, None)
        at, delay = self._backoff.get(ident, (0.0, 0.0))
        if now < at:
            return StepResult(step, None, f"backing off for {at - now:.1f}s")
        try:
            outcome = await self._write(step)
        except Exception as exc:  # adapters raise IpvsError / OSError / InterfaceMissing
            code = getattr(exc, "code", None) or getattr(exc, "errno", None)
            message = str(exc) or type(exc).__name__
            permanent = code in PERMANENT_ERRNOS
            if permanent:
                self.permanent[ident] = (wanted, message)
                log.error(
                    "%s %s: %s (not retried until it changes)",
                    step.action.value,
                    "/".join(step.key),
                    message,
                )
            else:
                delay = min(max(delay * 2, BACKOFF_START_S), BACKOFF_MAX_S)
                self._backoff[ident] = (now + delay, delay)
                log.warning(
                    "%s %s: %s (retry in %.0fs)",
                    step.action.value,
                    "/".join(step.key),
                    message,
                    delay,
                )
            return StepResult(step, None, message, permanent)
        self._backoff.pop(ident, None)
        if step.action is Action.DELETE:
            self._drains.done(step.key)
        log.info("%s %s %s: %s", step.action.value, step.kind, "/".join(step.key), outcome.value)
        return StepResult(step, outcome)

    async def _write(self, step: Step) -> WriteOutcome:
        r = step.after if step.after is not None else step.before
        a = step.action
        if isinstance(r, LiveService):
            assert self.ipvs is not None
            if a is Action.CREATE:
                return await self.ipvs.add_service(r)
            if a is Action.UPDATE:
                return await self.ipvs.edit_service(r)
            return await self.ipvs.delete_service(r.service)
        if isinstance(r, LiveDest):
            assert self.ipvs is not None
            if a is Action.CREATE:
                return await self.ipvs.add_dest(r)
            if a is Action.UPDATE:
                return await self.ipvs.edit_dest(r)
            return await self.ipvs.delete_dest(r.service, r.address, r.port)
        if isinstance(r, LiveAddress):
            assert self.addresses is not None
            if a is Action.DELETE:
                return await self.addresses.delete_address(r)
            if a is Action.UPDATE:
                # label or scope differ: the kernel has no in-place edit of those
                await self.addresses.delete_address(r)
            return await self.addresses.add_address(r)
        raise TypeError(f"cannot apply {step.kind}")

    # ------------------------------------------------------------ settings
    def use_ipvs(self, ipvs: IpvsPort) -> None:
        """Manage IPVS from the next pass on (once the kernel's has been opened)."""
        self.ipvs = ipvs

    def retime(self, drain_timeout_s: float, resync_interval_s: float) -> None:
        """A new revision's timings, from the next pass on."""
        self._drains.set_timeout(drain_timeout_s)
        self.resync_interval_s = resync_interval_s

    # ------------------------------------------------------------ forever
    def wake(self) -> None:
        """Something may have changed (netlink event, new revision, VRRP state)."""
        self._wake.set()

    async def run(
        self, on_pass: Callable[[PassResult], Awaitable[None] | None] | None = None
    ) -> None:
        while True:
            self._wake.clear()
            try:
                result = await self.run_once()
            except Exception as exc:  # observing failed: record, retry at the next wake
                log.exception("reconcile pass failed")
                self.counters.passes[Outcome.ERROR.value] += 1
                self.counters.last_outcome = Outcome.ERROR.value
                self.counters.last_error = str(exc)
            else:
                if on_pass is not None:
                    maybe = on_pass(result)
                    if maybe is not None:
                        await maybe
            timeout = self.resync_interval_s
            if self._backoff or self._drains:
                timeout = min(timeout, BACKOFF_START_S)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)
