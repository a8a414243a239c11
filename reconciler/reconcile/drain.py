"""Graceful removal of real servers: weight 0 until their connections are gone.

A real server removed from the desired state is not deleted at once while it still
carries connections: it is set to weight 0, so the scheduler sends it nothing new, and
deleted once it has no active or inactive connection left, or after the drain timeout.
A virtual service is deleted only after its draining servers are. UDP servers have no
connections to wait for and go at once.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from reconciler.model.common import Key
from reconciler.model.ipvs import Protocol as L4Protocol
from reconciler.model.kernel import LiveAddress, LiveDest, LiveService
from reconciler.plan.diff import Action, Step

DEFAULT_DRAIN_TIMEOUT_S = 300.0


class Drains:
    """The real servers being drained, and since when (monotonic seconds)."""

    def __init__(self, timeout_s: float = DEFAULT_DRAIN_TIMEOUT_S) -> None:
        self.timeout_s = timeout_s
        self._since_s: dict[Key, float] = {}

    def keys(self) -> tuple[Key, ...]:
        return tuple(self._since_s)

    def __bool__(self) -> bool:
        return bool(self._since_s)

    def set_timeout(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s

    def done(self, key: Key) -> None:
        """The server was deleted."""
        self._since_s.pop(key, None)

    def steps(
        self, steps: list[Step], live: dict[Key, LiveDest], wanted: set[Key], now_s: float
    ) -> list[Step]:
        """Replace real-server deletes by weight 0 until drained; hold service deletes
        until their servers are gone. Conflicts are left out (nothing is written for
        them)."""
        out: list[Step] = []
        for s in steps:
            if s.action is Action.CONFLICT:
                continue
            if s.action is Action.DELETE and s.kind == LiveDest.kind:
                dest = live.get(s.key)
                if dest is None or dest.service.protocol is L4Protocol.UDP:
                    out.append(s)
                    continue
                since_s = self._since_s.setdefault(s.key, now_s)
                busy = dest.active_connections + dest.inactive_connections
                if busy == 0 or now_s - since_s >= self.timeout_s:
                    out.append(s)
                elif dest.weight != 0:
                    zero = replace(dest, weight=0)
                    out.append(Step(Action.UPDATE, s.kind, s.key, dest, zero, ()))
                continue
            if s.action is Action.DELETE and s.kind == LiveService.kind:
                inside = [k for k in live if k[: len(s.key)] == s.key and k not in wanted]
                if any(k in self._since_s and k in live for k in inside):
                    continue  # its servers are draining; delete it on a later pass
            out.append(s)
        return out

    def forget(
        self,
        observed: Iterable[LiveAddress | LiveService | LiveDest],
        desired: Iterable[LiveAddress | LiveService | LiveDest],
    ) -> None:
        present = {r.key for r in observed if isinstance(r, LiveDest)}
        wanted = {r.key for r in desired if isinstance(r, LiveDest)}
        for key in list(self._since_s):
            if key not in present or key in wanted:
                # Gone (deleted by hand), or wanted again (a revert during the drain).
                del self._since_s[key]
