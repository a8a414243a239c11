"""Keeps the Accept_Mode rules (RFC 5798 6.4.2/6.4.3) of the revision applied last.

The nftables table itself is the adapter's (adapters/accept_mode.py); this object
decides what it holds and when: the VIPs of the Accept_Mode-false instances of a
revision, written before any of them can take over, put back at the resync interval
if someone removed or edited the table, and removed at a clean stop. One writer at a
time: a reload and the periodic check must not interleave, or the older one could win.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from ipaddress import IPv4Address, IPv6Address

from reconciler.adapters.accept_mode import AcceptModeFirewall, FirewallError
from reconciler.adapters.outcome import WriteOutcome
from reconciler.model.cluster import NodeConfig
from reconciler.plan.live import no_accept_vips

log = logging.getLogger("reconciler.accept_mode")


class AcceptModeUnavailable(Exception):
    """The revision needs the rules and this node cannot have them (no nftables)."""


class AcceptModeKeeper:
    def __init__(
        self,
        firewall: AcceptModeFirewall,
        config: NodeConfig,
        resync_interval_s: Callable[[], float],
    ) -> None:
        self.firewall = firewall
        self._config = config  # the revision whose VIPs the table holds
        self._resync_interval_s = resync_interval_s
        self._lock = asyncio.Lock()

    @property
    def vips(self) -> frozenset[IPv4Address | IPv6Address]:
        return self.firewall.vips

    async def apply(self, config: NodeConfig | None = None) -> None:
        """Drop traffic to the VIPs of the Accept_Mode-false instances of ``config``
        (None: the revision applied last), in one transaction. AcceptModeUnavailable when
        it needs rules and nftables cannot have them; nothing changed then."""
        async with self._lock:
            config = self._config if config is None else config
            vips = no_accept_vips(config)
            try:
                outcome = await self.firewall.apply(vips)
            except FirewallError as exc:
                if vips:
                    raise AcceptModeUnavailable(f"accept: false needs nftables: {exc}") from exc
                log.warning("accept mode: leftover table not removed: %s", exc)
                return
            self._config = config
        if outcome is not WriteOutcome.UNCHANGED:
            log.info(
                "accept mode: nftables table inet reconciler %s (%d VIP(s) dropped)",
                outcome.value,
                len(vips),
            )

    async def keep(self) -> None:
        """Put the table back if someone removed or edited it, at the resync interval;
        runs until cancelled."""
        while True:
            await asyncio.sleep(self._resync_interval_s())
            if not self.firewall.vips:
                continue
            try:
                await self.apply()
            except AcceptModeUnavailable as exc:
                log.error("%s", exc)

    async def remove(self) -> None:
        """At a clean stop: the VIPs are gone, so is what guarded them."""
        if not self.firewall.vips:
            return
        async with self._lock:
            try:
                await self.firewall.remove()
            except FirewallError as exc:
                log.warning("accept mode: table not removed: %s", exc)
