"""Addresses and links through pyroute2's asyncio rtnetlink API.

The only module that speaks rtnetlink for addresses. Messages become
`LiveAddress` / `Link` values here and never leak further. Writes are
idempotent: adding an address that is there, or deleting one that is gone,
is success, so a reconcile pass can be retried blindly.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from pyroute2.iproute.linux import AsyncIPRoute
from pyroute2.netlink.exceptions import NetlinkError
from pyroute2.netlink.rtnl import (
    RTMGRP_IPV4_IFADDR,
    RTMGRP_IPV6_IFADDR,
    RTMGRP_LINK,
)

from reconciler.adapters.outcome import WriteOutcome
from reconciler.model.kernel import LiveAddress

_SCOPES = {"global": 0, "site": 200, "link": 253, "host": 254}
_SCOPE_NAMES = {v: k for k, v in _SCOPES.items()}
IFF_UP = 0x1
IFF_RUNNING = 0x40
IFA_F_NODAD = 0x02
IFA_F_PERMANENT = 0x80


class InterfaceMissing(LookupError):
    """The interface named by the desired state does not exist (a permanent error until
    the link appears or the input changes)."""


@dataclass(frozen=True)
class Link:
    index: int
    name: str
    up: bool  # administratively up (IFF_UP)
    running: bool  # carrier (IFF_RUNNING): what VRRP's link tracking needs


@dataclass(frozen=True)
class NetlinkHint:
    """Something changed on links or addresses; the loop re-reads, it never trusts deltas."""

    kind: str  # "link" or "address"
    interface_index: int


class Netlink:
    """Async rtnetlink for one network namespace (None: the current one)."""

    def __init__(self, netns: str | None = None) -> None:
        self._netns = netns
        self._ipr: Any = None
        # Interface indexes by name: a VIP is added in one netlink round trip instead of
        # two, which is on the failover's critical path. Dropped when a write says the
        # device is gone (interfaces can be re-created under the same name).
        self._indexes: dict[str, int] = {}

    async def __aenter__(self) -> Netlink:
        self._ipr = AsyncIPRoute(netns=self._netns) if self._netns else AsyncIPRoute()
        await self._ipr.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._ipr is not None:
            await self._ipr.__aexit__(None, None, None)
            self._ipr = None

    # ------------------------------------------------------------ reads
    async def links(self) -> dict[str, Link]:
        out: dict[str, Link] = {}
        self._indexes.clear()
        async for m in await self._ipr.link("dump"):
            name = m.get("IFLA_IFNAME")
            flags = m["flags"]
            out[name] = Link(m["index"], name, bool(flags & IFF_UP), bool(flags & IFF_RUNNING))
            self._indexes[name] = m["index"]
        return out

    async def addresses(self) -> list[LiveAddress]:
        names = {link.index: link.name for link in (await self.links()).values()}
        out: list[LiveAddress] = []
        async for m in await self._ipr.addr("dump"):
            addr = m.get("IFA_ADDRESS")
            if m["family"] == socket.AF_INET:
                # For IPv4 IFA_LOCAL is the interface's own address (IFA_ADDRESS is
                # the peer on point-to-point links).
                addr = m.get("IFA_LOCAL") or addr
            if addr is None or m["index"] not in names:
                continue
            iface = ipaddress.ip_interface(f"{addr}/{m['prefixlen']}")
            label = m.get("IFA_LABEL")
            name = names[m["index"]]
            out.append(
                LiveAddress(
                    interface=name,
                    address=iface,
                    # The kernel reports the interface name as the label of unlabelled
                    # IPv4 addresses; normalize to "no label".
                    label=label if label and label != name else None,
                    scope=_SCOPE_NAMES.get(m["scope"], str(m["scope"])),
                )
            )
        return out

    async def _index(self, name: str) -> int:
        cached = self._indexes.get(name)
        if cached is not None:
            return cached
        found = await self._ipr.link_lookup(ifname=name)
        if not found:
            raise InterfaceMissing(name)
        self._indexes[name] = int(found[0])
        return int(found[0])

    # ------------------------------------------------------------ writes
    async def add_address(self, a: LiveAddress) -> WriteOutcome:
        index = await self._index(a.interface)
        kwargs: dict[str, Any] = {
            "index": index,
            "address": str(a.address.ip),
            "prefixlen": a.address.network.prefixlen,
            "scope": _SCOPES[a.scope],
        }
        if a.address.version == 4 and a.label:
            kwargs["label"] = a.label
        if a.address.version == 6:
            # A VIP must answer at once: no duplicate address detection delay
            # (keepalived adds IPv6 VIPs with IFA_F_NODAD too).
            kwargs["IFA_FLAGS"] = IFA_F_NODAD
        try:
            await self._ipr.addr("add", **kwargs)
        except NetlinkError as exc:
            if exc.code == errno.EEXIST:
                return WriteOutcome.UNCHANGED
            if exc.code == errno.ENODEV and self._indexes.pop(a.interface, None) is not None:
                return await self.add_address(a)  # the cached index was stale
            raise
        return WriteOutcome.CREATED

    async def delete_address(self, a: LiveAddress) -> WriteOutcome:
        try:
            index = await self._index(a.interface)
        except InterfaceMissing:
            return WriteOutcome.UNCHANGED  # the link is gone, and its addresses with it
        try:
            await self._ipr.addr(
                "del", index=index, address=str(a.address.ip), prefixlen=a.address.network.prefixlen
            )
        except NetlinkError as exc:
            if exc.code in (errno.EADDRNOTAVAIL, errno.ENOENT, errno.ESRCH):
                return WriteOutcome.UNCHANGED
            if exc.code == errno.ENODEV:
                self._indexes.pop(a.interface, None)
                return WriteOutcome.UNCHANGED  # the device is gone, and its addresses
            raise
        return WriteOutcome.DELETED


async def watch(netns: str | None = None) -> AsyncIterator[NetlinkHint]:
    """Link and address change notifications, as hints. Runs until cancelled."""
    ipr = AsyncIPRoute(netns=netns) if netns else AsyncIPRoute()
    async with ipr:
        await ipr.bind(groups=RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR)
        while True:
            async for m in ipr.get():
                event = m.get("event", "")
                if event in ("RTM_NEWLINK", "RTM_DELLINK"):
                    yield NetlinkHint("link", m["index"])
                elif event in ("RTM_NEWADDR", "RTM_DELADDR"):
                    yield NetlinkHint("address", m["index"])
            await asyncio.sleep(0)
