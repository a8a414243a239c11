"""Announcing a master's VIPs: gratuitous ARP (IPv4) or unsolicited NA (IPv6), in bursts."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import timedelta
from ipaddress import IPv4Address, IPv6Address

from reconciler.adapters.arp import Announcer
from reconciler.model import vrrp as model

log = logging.getLogger("reconciler.vrrp")

IPAddr = IPv4Address | IPv6Address


class Announcements:
    """One instance's announcements, on keepalived's policy: a burst on becoming master,
    a second burst after ``master_delay``, then a refresh every ``master_refresh`` while
    master (``is_master``). GARP settings are read from ``spec`` when used."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        announcer: Announcer,
        spec: model.VrrpInstance,
        vips: tuple[IPAddr, ...],
        is_master: Callable[[], bool],
    ) -> None:
        self._loop = loop
        self._announcer = announcer
        self._spec = spec
        self._vips = vips
        self._is_master = is_master
        self._handles: list[asyncio.TimerHandle] = []  # later bursts and refreshes

    def reconfigure(self, spec: model.VrrpInstance, vips: tuple[IPAddr, ...]) -> None:
        """A new revision: later bursts and refreshes announce only the VIPs still in it."""
        self._spec = spec
        self._vips = vips

    def cancel(self) -> None:
        """No longer master (or stopping): the later bursts and refreshes are off."""
        for handle in self._handles:
            handle.cancel()
        self._handles.clear()

    def schedule(self, addresses: tuple[IPAddr, ...]) -> None:
        """keepalived's policy: a burst now, a second burst after master_delay, then
        a refresh every master_refresh while master."""
        garp = self._spec.garp
        self._burst(addresses, garp.master_repeat)
        if garp.master_delay > timedelta(0) and garp.master_repeat:
            self._handles.append(
                self._loop.call_later(
                    garp.master_delay.total_seconds(),
                    self._burst_if_master,
                    addresses,
                    garp.master_repeat,
                )
            )
        if garp.master_refresh > timedelta(0):
            self._schedule_refresh(addresses)

    def _schedule_refresh(self, addresses: tuple[IPAddr, ...]) -> None:
        garp = self._spec.garp

        def refresh() -> None:
            if self._is_master():
                self._burst(addresses, garp.master_refresh_repeat)
                self._schedule_refresh(addresses)

        self._handles.append(self._loop.call_later(garp.master_refresh.total_seconds(), refresh))

    def _burst_if_master(self, addresses: tuple[IPAddr, ...], count: int) -> None:
        if self._is_master():
            self._burst(addresses, count)

    def _burst(self, addresses: tuple[IPAddr, ...], count: int) -> None:
        gap = self._spec.garp.interval.total_seconds()
        for i in range(count):
            if gap and i:
                self._handles.append(self._loop.call_later(gap * i, self._announce_now, addresses))
            else:
                self._announce_now(addresses)

    def _announce_now(self, addresses: tuple[IPAddr, ...]) -> None:
        if not self._is_master():
            return
        vips = self._vips
        if any(a not in vips for a in addresses):  # a later burst or refresh, after a reload
            addresses = tuple(a for a in addresses if a in vips)
            if not addresses:
                return
        try:
            self._announcer.announce(addresses)  # type: ignore[arg-type]
        except OSError as exc:
            log.warning("%s: announcement failed: %s", self._spec.name, exc)
