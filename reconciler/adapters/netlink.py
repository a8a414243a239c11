"""Addresses and links through pyroute2's asyncio rtnetlink API.

The only module that speaks rtnetlink for addresses. Messages become
`LiveAddress` / `Link` values here and never leak further. Writes are
idempotent: adding an address that is there, or deleting one that is gone,
is success, so a reconcile pass can be retried blindly.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import errno
import ipaddress
import os
import socket
import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from pyroute2.iproute.linux import AsyncIPRoute
from pyroute2.netlink import NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REQUEST, NLMSG_ERROR
from pyroute2.netlink.exceptions import NetlinkError
from pyroute2.netlink.rtnl import (
    RTM_NEWADDR,
    RTMGRP_IPV4_IFADDR,
    RTMGRP_IPV6_IFADDR,
    RTMGRP_LINK,
)
from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg

from reconciler.adapters.outcome import WriteOutcome
from reconciler.model.kernel import LiveAddress

_SCOPES = {"global": 0, "site": 200, "link": 253, "host": 254}
_SCOPE_NAMES = {v: k for k, v in _SCOPES.items()}
IFF_UP = 0x1
IFF_RUNNING = 0x40
IFA_F_NODAD = 0x02


class InterfaceMissing(LookupError):
    """The interface named by the desired state does not exist (a permanent error until
    the link appears or the input changes)."""


# What an address write raises when the kernel or the link refuses it (rather than a bug).
ADDRESS_ERRORS: tuple[type[Exception], ...] = (OSError, NetlinkError, InterfaceMissing)


@dataclass(frozen=True)
class Link:
    index: int
    name: str
    up: bool  # administratively up (IFF_UP)
    running: bool  # carrier (IFF_RUNNING): what VRRP's link tracking needs


class HintKind(enum.Enum):
    LINK = "link"  # RTM_NEWLINK / RTM_DELLINK
    ADDRESS = "address"  # RTM_NEWADDR / RTM_DELADDR


@dataclass(frozen=True)
class NetlinkHint:
    """Something changed on links or addresses; the loop re-reads, it never trusts deltas."""

    kind: HintKind
    interface_index: int


_NLMSGHDR = struct.Struct("=IHHII")  # length, type, flags, sequence, port
_NLMSGERR_CODE = struct.Struct("=i")
_SEQ_OFFSET = 8


class AddressAdder:
    """Adds addresses in the takeover's own call: one RTM_NEWADDR each, encoded once
    (by pyroute2's ``ifaddrmsg``, as ``addr("add")`` builds it) and sent at once with
    ``send``; the kernel's answer resolves a future on the loop.

    A takeover is measured to the moment its VIPs exist. Building and sending the request
    through the async client costs about half a millisecond of Python after the worker
    gets to it; this sends it right after the takeover's advert.

    At most ``MAX_IN_FLIGHT`` requests wait for their answer (``add`` returns None beyond,
    and the caller uses the async client): a mass takeover must not overflow the socket's
    receive buffer with answers. If the kernel still drops answers (ENOBUFS), every
    waiting request fails with ENOBUFS and ``Netlink.finish_add`` checks the address.
    """

    MAX_IN_FLIGHT = 64

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._sock = socket.socket(
            socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_NONBLOCK, socket.NETLINK_ROUTE
        )
        self._sock.bind((0, 0))
        self._buffer = bytearray(65536)  # answers are read into it (no allocation per read)
        self._seq = 0
        self._waiting: dict[int, asyncio.Future[WriteOutcome]] = {}
        self._messages: dict[tuple[LiveAddress, int], bytearray] = {}
        loop.add_reader(self._sock.fileno(), self._read)

    def close(self) -> None:
        self._loop.remove_reader(self._sock.fileno())
        self._sock.close()
        for fut in self._waiting.values():
            if not fut.done():
                fut.cancel()
        self._waiting.clear()

    def prepare(self, a: LiveAddress, index: int) -> None:
        """Encode the request for ``a`` now, so that a takeover only sends it (the first
        encoding in a process costs about 0.3 ms, a fresh node's first takeover's)."""
        if (a, index) not in self._messages:
            self._messages[(a, index)] = _encode_newaddr(a, index)

    def add(self, a: LiveAddress, index: int) -> asyncio.Future[WriteOutcome] | None:
        """Send the request now; the future gives CREATED, UNCHANGED (it existed) or
        raises ``NetlinkError``. None: too many in flight, nothing sent."""
        if len(self._waiting) >= self.MAX_IN_FLIGHT:
            return None
        message = self._messages.get((a, index))
        if message is None:
            message = self._messages[(a, index)] = _encode_newaddr(a, index)
        self._seq = self._seq % 0x7FFFFFFF + 1
        _NLMSGHDR.pack_into(message, 0, len(message), RTM_NEWADDR, _ADD_FLAGS, self._seq, 0)
        fut: asyncio.Future[WriteOutcome] = self._loop.create_future()
        self._waiting[self._seq] = fut
        try:
            self._sock.send(message)
        except OSError as exc:
            del self._waiting[self._seq]
            fut.set_exception(NetlinkError(exc.errno or 0, str(exc)))
        return fut

    def _read(self) -> None:
        data = self._buffer
        while True:
            try:
                size = self._sock.recv_into(data)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # ENOBUFS: answers were dropped; which, is unknown
                waiting, self._waiting = self._waiting, {}
                for lost in waiting.values():
                    if not lost.done():
                        lost.set_exception(NetlinkError(exc.errno or 0, str(exc)))
                continue
            offset = 0
            while offset + _NLMSGHDR.size <= size:
                length, kind, _flags, seq, _port = _NLMSGHDR.unpack_from(data, offset)
                if length < _NLMSGHDR.size:
                    break
                fut = self._waiting.pop(seq, None)
                if kind == NLMSG_ERROR and fut is not None and not fut.done():
                    code = -_NLMSGERR_CODE.unpack_from(data, offset + _NLMSGHDR.size)[0]
                    if code == 0:
                        fut.set_result(WriteOutcome.CREATED)
                    elif code == errno.EEXIST:
                        fut.set_result(WriteOutcome.UNCHANGED)
                    else:
                        fut.set_exception(NetlinkError(code, os.strerror(code)))
                offset += (length + 3) & ~3


_ADD_FLAGS = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL


def _encode_newaddr(a: LiveAddress, index: int) -> bytearray:
    """RTM_NEWADDR for ``a`` with the attributes ``Netlink.add_address`` sends."""
    msg = ifaddrmsg()
    ip = str(a.address.ip)
    msg["index"] = index
    msg["prefixlen"] = a.address.network.prefixlen
    msg["scope"] = _SCOPES[a.scope]
    if a.address.version == 4:
        msg["family"] = socket.AF_INET
        attrs: list[tuple[str, Any]] = [("IFA_LOCAL", ip), ("IFA_ADDRESS", ip)]
        if a.label:
            attrs.append(("IFA_LABEL", a.label))
    else:
        msg["family"] = socket.AF_INET6
        attrs = [("IFA_ADDRESS", ip), ("IFA_FLAGS", IFA_F_NODAD)]
    msg["attrs"] = attrs
    msg["header"]["type"] = RTM_NEWADDR
    msg["header"]["flags"] = _ADD_FLAGS
    msg.encode()
    return bytearray(msg.data)


class Netlink:
    """Async rtnetlink for one network namespace (None: the current one)."""

    def __init__(self, netns: str | None = None) -> None:
        self._netns = netns
        self._ipr: Any = None
        # Interface indexes by name: a VIP is added in one netlink round trip instead of
        # two, which is on the failover's critical path. Dropped when a write says the
        # device is gone (interfaces can be re-created under the same name).
        self._indexes: dict[str, int] = {}
        self._adder: AddressAdder | None = None  # this namespace only (netns None)

    async def __aenter__(self) -> Netlink:
        self._ipr = AsyncIPRoute(netns=self._netns) if self._netns else AsyncIPRoute()
        await self._ipr.__aenter__()
        if self._netns is None:
            self._adder = AddressAdder(asyncio.get_running_loop())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._adder is not None:
            self._adder.close()
            self._adder = None
        if self._ipr is not None:
            await self._ipr.__aexit__(None, None, None)
            self._ipr = None

    async def warm(self, interface: str) -> None:
        """Look up ``interface``'s index now, so that ``begin_add`` can send at once."""
        with contextlib.suppress(InterfaceMissing):
            await self._index(interface)

    def prepare_add(self, a: LiveAddress) -> None:
        """Have ``begin_add(a)`` find its request encoded (after ``warm``)."""
        index = self._indexes.get(a.interface)
        if index is not None and self._adder is not None:
            self._adder.prepare(a, index)

    def begin_add(self, a: LiveAddress) -> asyncio.Future[WriteOutcome] | None:
        """Add ``a`` now, without awaiting: the request is sent before this returns.
        None when that cannot be done here (index not known yet, another namespace):
        use ``add_address``."""
        index = self._indexes.get(a.interface)
        if index is None or self._adder is None:
            return None
        return self._adder.add(a, index)

    async def finish_add(
        self, a: LiveAddress, started: asyncio.Future[WriteOutcome]
    ) -> WriteOutcome:
        """The outcome of a ``begin_add``, as ``add_address`` would give it."""
        try:
            return await started
        except NetlinkError as exc:
            if exc.code == errno.ENODEV and self._indexes.pop(a.interface, None) is not None:
                return await self.add_address(a)  # the cached index was stale
            if exc.code == errno.ENOBUFS:
                # The answer was lost, not the request: it exists now if we made it (an
                # address someone else had added first is taken as ours here).
                outcome = await self.add_address(a)
                return WriteOutcome.CREATED if outcome is WriteOutcome.UNCHANGED else outcome
            raise

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
                    yield NetlinkHint(HintKind.LINK, m["index"])
                elif event in ("RTM_NEWADDR", "RTM_DELADDR"):
                    yield NetlinkHint(HintKind.ADDRESS, m["index"])
            await asyncio.sleep(0)
