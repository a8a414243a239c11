"""Network-namespace test bed: an L2 lab of hosts joined by Linux bridges.

Layout of a lab with ``n_hosts`` hosts and ``segments`` segments::

    namespace <id>b  : bridges br0, br1, ...; bridge ports h<i>e<s>
    namespace <id>h1 : lo, eth0 (segment 0), eth1 (segment 1), ...
    namespace <id>h2 : ...

Host ``i`` (1-based) on segment ``s`` is reached through the veth pair
``eth<s>`` (host side) / ``h<i>e<s>`` (bridge side). Its addresses are
``<segment v4 net>.<10+i>/24`` and ``<segment v6 net>::<10+i>/64`` (the
decimal digits of ``10+i`` written as the last IPv6 group, so host 1 is
``192.0.2.11`` and ``2001:db8::11``). Only documentation prefixes are used, and
nothing is ever created or changed in the root namespace: every veth pair is
made inside a lab namespace.

IPv6 duplicate address detection is disabled in host namespaces, so global
and link-local addresses are usable as soon as they appear, and
``keep_addr_on_down`` is set so that IPv6 addresses survive ``link_down``.
The bridges do no multicast snooping (they flood like a dumb switch), so VRRP
adverts to 224.0.0.18 and ff02::12 reach every host.

Every lab namespace name is ``<prefix><creator pid>x<counter>`` followed by
``b`` (bridge) or ``h<i>`` (host). :func:`sweep_stale` uses the pid to remove
namespaces left behind by a process that was killed before it could clean up.
Namespace names never serve as interface names (those are ``eth<s>``,
``h<i>e<s>`` and ``br<s>``); with pids below 100000 they fit in 15 characters.

Timestamps (:class:`AddrEvent`, :class:`LinkState`, link up/down) are
``time.monotonic()`` values. Each namespace's :class:`NetlinkWatcher` reads its
netlink socket on a dedicated thread and stamps a message the moment ``recv``
returns; while the measuring thread is blocked in a ``wait_*`` call (which
releases the GIL) the stamp is within a few tens of microseconds of the
kernel's notification. A main thread busy in Python code can delay the stamp
by up to the interpreter's switch interval (5 ms by default), so measure by
blocking in ``wait_for``, not by polling.

Usage::

    with Lab(n_hosts=2) as lab:
        h1, h2 = lab.hosts
        vip = lab.segments[0].free_ipv4()          # 192.0.2.100/24
        daemon = h1.spawn([*cmd], name="daemon")   # own process group, log in lab.tmpdir
        h1.watcher.wait_for(vip, timeout=5)        # the daemon took the VIP
        t0 = time.monotonic()
        daemon.kill()                              # crash: SIGKILL to the group
        took_over = h2.watcher.wait_for(vip, after=t0, timeout=5)
        failover = took_over - t0
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import errno
import itertools
import os
import re
import select
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from ipaddress import (
    IPv4Address,
    IPv4Interface,
    IPv4Network,
    IPv6Address,
    IPv6Interface,
    IPv6Network,
    ip_address,
)
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any, Final, Literal, TypeVar

__all__ = [
    "DEFAULT_PREFIX",
    "AddrEvent",
    "AddressLike",
    "CommandError",
    "Host",
    "HostInterface",
    "IPAddress",
    "IPInterface",
    "Lab",
    "LabInterrupted",
    "LabProcess",
    "LabUnavailable",
    "LinkSide",
    "LinkState",
    "LossDirection",
    "Namespace",
    "NetlinkWatcher",
    "Segment",
    "netns_unavailable_reason",
    "sweep_stale",
]

IPAddress = IPv4Address | IPv6Address
IPInterface = IPv4Interface | IPv6Interface
AddressLike = IPAddress | IPInterface | str
LinkSide = Literal["host", "bridge"]
LossDirection = Literal["both", "from_host", "to_host"]

_T = TypeVar("_T")

DEFAULT_PREFIX: Final = "rcl"
NETNS_RUN_DIR: Final = Path("/run/netns")

_SEGMENT_V4: Final = (
    IPv4Network("192.0.2.0/24"),
    IPv4Network("198.51.100.0/24"),
    IPv4Network("203.0.113.0/24"),
)
_HOST_OFFSET: Final = 10  # host i gets .<10+i>
_FREE_OFFSET: Final = 100  # .100 and up are never given to hosts (for VIPs)
_MAX_HOSTS: Final = _FREE_OFFSET - _HOST_OFFSET - 1
_HOST_IFINDEX: Final = 1000  # ifindex of eth0 in a host (eth<s>: 1000+s)
_NFT_TABLE: Final = "netlab"

# --- netlink constants (linux/netlink.h, linux/rtnetlink.h, linux/if_addr.h) ---
_NLMSG_ERROR: Final = 2
_NLMSG_DONE: Final = 3
_NLM_F_REQUEST: Final = 0x1
_NLM_F_ACK: Final = 0x4
_NLM_F_DUMP: Final = 0x300
_RTM_NEWLINK: Final = 16
_RTM_DELLINK: Final = 17
_RTM_GETLINK: Final = 18
_RTM_NEWADDR: Final = 20
_RTM_DELADDR: Final = 21
_RTM_GETADDR: Final = 22
_RTMGRP_LINK: Final = 0x1
_RTMGRP_IPV4_IFADDR: Final = 0x10
_RTMGRP_IPV6_IFADDR: Final = 0x100
_IFA_ADDRESS: Final = 1
_IFA_LOCAL: Final = 2
_IFA_LABEL: Final = 3
_IFA_FLAGS: Final = 8
_IFLA_IFNAME: Final = 3
_IFLA_OPERSTATE: Final = 16
_IFF_UP: Final = 0x1
_IFF_RUNNING: Final = 0x40
_IFA_F_TENTATIVE: Final = 0x40
_IFA_F_DADFAILED: Final = 0x08
_CLONE_NEWNET: Final = 0x40000000
_NLHDR: Final = struct.Struct("=IHHII")
_IFADDRMSG: Final = struct.Struct("=BBBBI")
_IFINFOMSG: Final = struct.Struct("=BxHiII")
_RTATTR: Final = struct.Struct("=HH")

_LIBC: Final = ctypes.CDLL(None, use_errno=True)


# --------------------------------------------------------------------------- errors


class LabUnavailable(RuntimeError):
    """The machine cannot run a lab (not root, no ``ip``, no netns, no ``nft``...)."""


class LabInterrupted(KeyboardInterrupt):
    """Raised in the main thread when the process gets SIGTERM while a lab is open.

    It derives from :class:`KeyboardInterrupt` so that ``except Exception`` does
    not swallow it and pytest treats it like Ctrl-C: ``finally`` blocks and
    fixture teardowns run and every lab is closed.
    """


class CommandError(subprocess.CalledProcessError):
    """A command run in a lab namespace exited non-zero (``check=True``)."""

    def __init__(self, netns: str, returncode: int, cmd: Sequence[str], output: str, stderr: str):
        super().__init__(returncode, list(cmd), output, stderr)
        self.netns = netns

    def __str__(self) -> str:
        err = (self.stderr or "").strip()
        out = (self.output or "").strip()
        detail = err or out
        return f"command {self.cmd!r} in netns {self.netns} exited {self.returncode}" + (
            f": {detail[-2000:]}" if detail else ""
        )


# --------------------------------------------------------------------------- values


@dataclass(frozen=True)
class Segment:
    """One L2 segment: a bridge in the bridge namespace and its subnets."""

    index: int
    bridge: str
    ipv4_network: IPv4Network
    ipv6_network: IPv6Network

    def host_ipv4(self, host_index: int) -> IPv4Interface:
        """The address host ``host_index`` (1-based) has on this segment."""
        addr = self.ipv4_network.network_address + _HOST_OFFSET + host_index
        return IPv4Interface(f"{addr}/{self.ipv4_network.prefixlen}")

    def host_ipv6(self, host_index: int) -> IPv6Interface:
        """The global IPv6 address of host ``host_index`` on this segment."""
        return _v6_in(self.ipv6_network, _HOST_OFFSET + host_index)

    def free_ipv4(self, k: int = 0) -> IPv4Interface:
        """An address of this segment that no host has (``.100+k``): for VIPs."""
        addr = self.ipv4_network.network_address + _FREE_OFFSET + k
        if addr not in self.ipv4_network or addr == self.ipv4_network.broadcast_address:
            raise ValueError(f"no free IPv4 address number {k} in {self.ipv4_network}")
        return IPv4Interface(f"{addr}/{self.ipv4_network.prefixlen}")

    def free_ipv6(self, k: int = 0) -> IPv6Interface:
        """A global IPv6 address (``::<100+k>``) that no host has: for VIPs."""
        return _v6_in(self.ipv6_network, _FREE_OFFSET + k)


def _v6_in(net: IPv6Network, number: int) -> IPv6Interface:
    # The decimal digits of `number` read as the last hex group: ::11 for host 1.
    addr = net.network_address + int(str(number), 16)
    return IPv6Interface(f"{addr}/{net.prefixlen}")


@dataclass(frozen=True)
class HostInterface:
    """A host's interface on one segment and the bridge port it plugs into."""

    ifname: str
    segment: Segment
    mac: str
    ipv4: IPv4Interface
    ipv6: IPv6Interface
    bridge_port: str


@dataclass(frozen=True)
class AddrEvent:
    """An RTM_NEWADDR / RTM_DELADDR notification seen in a namespace.

    ``timestamp`` is ``time.monotonic()`` taken as soon as the message was read.
    ``synthetic`` is true for entries derived from an address dump (at watcher
    start, or to resynchronise after a socket overrun): their timestamp is the
    time of the dump, not of the change.
    """

    kind: Literal["new", "del"]
    address: IPAddress
    prefixlen: int
    ifindex: int
    ifname: str
    flags: int
    timestamp: float
    synthetic: bool = False

    @property
    def present(self) -> bool:
        return self.kind == "new"

    @property
    def interface(self) -> IPInterface:
        if isinstance(self.address, IPv4Address):
            return IPv4Interface(f"{self.address}/{self.prefixlen}")
        return IPv6Interface(f"{self.address}/{self.prefixlen}")

    @property
    def tentative(self) -> bool:
        return bool(self.flags & (_IFA_F_TENTATIVE | _IFA_F_DADFAILED))


@dataclass(frozen=True)
class LinkState:
    """The state of a link after an RTM_NEWLINK (``running`` = up with carrier)."""

    ifindex: int
    ifname: str
    flags: int
    operstate: int
    timestamp: float
    synthetic: bool = False

    @property
    def up(self) -> bool:
        return bool(self.flags & _IFF_UP)

    @property
    def running(self) -> bool:
        return bool(self.flags & _IFF_RUNNING)


@dataclass(frozen=True)
class _NlMsg:
    type: int
    flags: int
    seq: int
    body: bytes


@dataclass(frozen=True)
class _Transition:
    event: AddrEvent
    address_changed: bool  # the address as a whole (on any interface) appeared/vanished


# --------------------------------------------------------------------------- netns plumbing


def _call_in_netns(netns: str, fn: Callable[[], _T]) -> _T:
    """Run ``fn`` on a short-lived thread that has joined network namespace ``netns``.

    Sockets created by ``fn`` belong to ``netns`` and stay usable from any thread;
    ``/proc/sys/net`` opened by ``fn`` shows ``netns``'s sysctls.
    """
    result: list[_T] = []
    failure: list[BaseException] = []

    def target() -> None:
        try:
            fd = os.open(NETNS_RUN_DIR / netns, os.O_RDONLY | os.O_CLOEXEC)
            try:
                if _LIBC.setns(fd, _CLONE_NEWNET) != 0:
                    err = ctypes.get_errno()
                    raise OSError(err, f"setns({netns}): {os.strerror(err)}")
            finally:
                os.close(fd)
            result.append(fn())
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=target, name=f"netns-{netns}", daemon=True)
    thread.start()
    thread.join()
    if failure:
        raise failure[0]
    return result[0]


def _netlink_socket(netns: str, groups: int = 0) -> socket.socket:
    def make() -> socket.socket:
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
            with contextlib.suppress(OSError):  # beyond rmem_max needs SO_RCVBUFFORCE
                sock.setsockopt(socket.SOL_SOCKET, 33, 4 << 20)  # SO_RCVBUFFORCE
            sock.bind((0, groups))
        except BaseException:
            sock.close()
            raise
        return sock

    return _call_in_netns(netns, make)


def _split_messages(data: bytes) -> list[_NlMsg]:
    out: list[_NlMsg] = []
    offset = 0
    while offset + _NLHDR.size <= len(data):
        length, mtype, flags, seq, _pid = _NLHDR.unpack_from(data, offset)
        if length < _NLHDR.size or offset + length > len(data):
            break
        out.append(_NlMsg(mtype, flags, seq, data[offset + _NLHDR.size : offset + length]))
        offset += (length + 3) & ~3
    return out


def _parse_attrs(body: bytes, offset: int) -> dict[int, bytes]:
    attrs: dict[int, bytes] = {}
    while offset + _RTATTR.size <= len(body):
        length, atype = _RTATTR.unpack_from(body, offset)
        if length < _RTATTR.size:
            break
        attrs[atype & 0x3FFF] = body[offset + _RTATTR.size : offset + length]
        offset += (length + 3) & ~3
    return attrs


def _attr(atype: int, payload: bytes) -> bytes:
    raw = _RTATTR.pack(_RTATTR.size + len(payload), atype) + payload
    return raw + b"\0" * (-len(raw) % 4)


@dataclass(frozen=True)
class _ParsedAddr:
    address: IPAddress
    prefixlen: int
    ifindex: int
    flags: int
    label: str | None


def _parse_addr(body: bytes) -> _ParsedAddr | None:
    if len(body) < _IFADDRMSG.size:
        return None
    family, prefixlen, flags, _scope, ifindex = _IFADDRMSG.unpack_from(body)
    attrs = _parse_attrs(body, _IFADDRMSG.size)
    raw = attrs.get(_IFA_LOCAL) or attrs.get(_IFA_ADDRESS)
    if raw is None:
        return None
    address: IPAddress
    if family == socket.AF_INET and len(raw) == 4:
        address = IPv4Address(raw)
    elif family == socket.AF_INET6 and len(raw) == 16:
        address = IPv6Address(raw)
    else:
        return None
    if _IFA_FLAGS in attrs and len(attrs[_IFA_FLAGS]) >= 4:
        flags = struct.unpack_from("=I", attrs[_IFA_FLAGS])[0]
    label_raw = attrs.get(_IFA_LABEL)
    label = label_raw.split(b"\0", 1)[0].decode() if label_raw else None
    return _ParsedAddr(address, prefixlen, ifindex, flags, label)


def _parse_link(body: bytes, timestamp: float, synthetic: bool) -> LinkState | None:
    if len(body) < _IFINFOMSG.size:
        return None
    _family, _type, ifindex, flags, _change = _IFINFOMSG.unpack_from(body)
    attrs = _parse_attrs(body, _IFINFOMSG.size)
    name_raw = attrs.get(_IFLA_IFNAME)
    if name_raw is None:
        return None
    operstate = attrs.get(_IFLA_OPERSTATE, b"\0")[0]
    name = name_raw.split(b"\0", 1)[0].decode()
    return LinkState(ifindex, name, flags, operstate, timestamp, synthetic)


class _RtNetlink:
    """A request/response rtnetlink socket inside one namespace."""

    def __init__(self, netns: str) -> None:
        self._sock = _netlink_socket(netns)
        self._sock.settimeout(10.0)
        self._seq = itertools.count(1)
        self._lock = threading.Lock()

    def close(self) -> None:
        self._sock.close()

    def request(self, msg_type: int, body: bytes, *, dump: bool = False) -> list[_NlMsg]:
        flags = _NLM_F_REQUEST | (_NLM_F_DUMP if dump else _NLM_F_ACK)
        with self._lock:
            seq = next(self._seq)
            self._sock.send(_NLHDR.pack(_NLHDR.size + len(body), msg_type, flags, seq, 0) + body)
            out: list[_NlMsg] = []
            while True:
                for msg in _split_messages(self._sock.recv(1 << 20)):
                    if msg.seq != seq:
                        continue
                    if msg.type == _NLMSG_ERROR:
                        code = struct.unpack_from("=i", msg.body)[0]
                        if code:
                            raise OSError(-code, os.strerror(-code))
                        return out
                    if msg.type == _NLMSG_DONE:
                        return out
                    out.append(msg)

    def dump_links(self, timestamp: float) -> list[LinkState]:
        msgs = self.request(_RTM_GETLINK, _IFINFOMSG.pack(0, 0, 0, 0, 0), dump=True)
        links = (_parse_link(m.body, timestamp, True) for m in msgs if m.type == _RTM_NEWLINK)
        return [link for link in links if link is not None]

    def dump_addrs(self) -> list[_ParsedAddr]:
        msgs = self.request(_RTM_GETADDR, _IFADDRMSG.pack(0, 0, 0, 0, 0), dump=True)
        addrs = (_parse_addr(m.body) for m in msgs if m.type == _RTM_NEWADDR)
        return [a for a in addrs if a is not None]

    def set_link(self, ifname: str, *, up: bool) -> None:
        body = _IFINFOMSG.pack(0, 0, 0, _IFF_UP if up else 0, _IFF_UP)
        self.request(_RTM_NEWLINK, body + _attr(_IFLA_IFNAME, ifname.encode() + b"\0"))


# --------------------------------------------------------------------------- watcher


def _as_address(value: AddressLike) -> IPAddress:
    if isinstance(value, IPv4Interface | IPv6Interface):
        return value.ip
    if isinstance(value, IPv4Address | IPv6Address):
        return value
    text = value.split("/", 1)[0]
    return ip_address(text)


class NetlinkWatcher:
    """Tracks address and link changes in one namespace, with receive timestamps.

    A dedicated thread reads an rtnetlink socket (joined to the link and IPv4/IPv6
    address groups) that was opened inside the namespace, stamps each read with
    ``time.monotonic()`` and updates the state under a condition variable.
    """

    def __init__(self, netns: str) -> None:
        self.netns = netns
        self.overruns = 0
        self._cond = threading.Condition()
        self._events: list[AddrEvent] = []
        self._transitions: list[_Transition] = []
        self._present: dict[tuple[IPAddress, int], AddrEvent] = {}
        self._links: dict[int, LinkState] = {}
        self._link_transitions: list[LinkState] = []
        self._closed = False
        self._busy = False  # the reader is draining its socket
        self._error: BaseException | None = None
        self._wake = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
        self._sock: socket.socket | None = None
        self._ctl: _RtNetlink | None = None
        try:
            self._sock = _netlink_socket(
                netns, _RTMGRP_LINK | _RTMGRP_IPV4_IFADDR | _RTMGRP_IPV6_IFADDR
            )
            self._sock.setblocking(False)
            self._ctl = _RtNetlink(netns)
            self.started_at = time.monotonic()
            self._resync(self.started_at)
        except BaseException:
            self.close()
            raise
        self._thread = threading.Thread(
            target=self._run, name=f"netlink-watch-{netns}", daemon=True
        )
        self._thread.start()

    # -- reader thread -------------------------------------------------------

    def _run(self) -> None:
        sock, wake = self._sock, self._wake
        assert sock is not None
        poller = select.poll()
        poller.register(sock.fileno(), select.POLLIN)
        poller.register(wake, select.POLLIN)
        buf = bytearray(1 << 16)
        try:
            while True:
                ready = poller.poll()
                if any(fd == wake for fd, _ in ready):
                    return
                with self._cond:
                    self._busy = True
                while True:
                    try:
                        size = sock.recv_into(buf)
                        now = time.monotonic()  # first thing after the read
                    except BlockingIOError:
                        with self._cond:
                            self._busy = False
                            self._cond.notify_all()
                        break
                    except OSError as exc:
                        if exc.errno != errno.ENOBUFS:
                            raise
                        now = time.monotonic()
                        with self._cond:
                            self.overruns += 1
                        self._resync(now)
                        continue
                    self._handle(_split_messages(bytes(buf[:size])), now)
        except BaseException as exc:
            with self._cond:
                self._error = exc
                self._cond.notify_all()

    def _ifname(self, ifindex: int, label: str | None) -> str:
        link = self._links.get(ifindex)
        if link is not None:
            return link.ifname
        return label or f"if{ifindex}"

    def _handle(self, msgs: Iterable[_NlMsg], now: float) -> None:
        with self._cond:
            for msg in msgs:
                if msg.type in (_RTM_NEWADDR, _RTM_DELADDR):
                    parsed = _parse_addr(msg.body)
                    if parsed is not None:
                        kind: Literal["new", "del"] = "new" if msg.type == _RTM_NEWADDR else "del"
                        self._apply_addr(kind, parsed, now, synthetic=False)
                elif msg.type in (_RTM_NEWLINK, _RTM_DELLINK):
                    link = _parse_link(msg.body, now, False)
                    if link is not None:
                        if msg.type == _RTM_DELLINK:
                            link = LinkState(link.ifindex, link.ifname, 0, 0, now)
                        self._apply_link(link)
            self._cond.notify_all()

    def _apply_link(self, link: LinkState) -> None:
        old = self._links.get(link.ifindex)
        self._links[link.ifindex] = link
        if old is None or old.running != link.running or old.ifname != link.ifname:
            self._link_transitions.append(link)

    def _apply_addr(
        self, kind: Literal["new", "del"], parsed: _ParsedAddr, now: float, *, synthetic: bool
    ) -> None:
        event = AddrEvent(
            kind,
            parsed.address,
            parsed.prefixlen,
            parsed.ifindex,
            self._ifname(parsed.ifindex, parsed.label),
            parsed.flags,
            now,
            synthetic,
        )
        self._events.append(event)
        key = (parsed.address, parsed.ifindex)
        was_present = self._address_present(parsed.address)
        if kind == "new":
            known = key in self._present
            self._present[key] = event  # keeps the latest flags (e.g. DAD finished)
            if known:
                return  # a flag or lifetime update, not a change of presence
        elif self._present.pop(key, None) is None:
            return
        changed = was_present != self._address_present(parsed.address)
        self._transitions.append(_Transition(event, changed))

    def _address_present(self, address: IPAddress, ifname: str | None = None) -> bool:
        return any(
            addr == address and (ifname is None or ev.ifname == ifname)
            for (addr, _idx), ev in self._present.items()
        )

    def _resync(self, now: float) -> None:
        """Rebuild state from a dump (at start, and after the socket overran)."""
        assert self._ctl is not None
        links = self._ctl.dump_links(now)
        addrs = self._ctl.dump_addrs()
        with self._cond:
            for link in links:
                self._apply_link(link)
            current = {(a.address, a.ifindex): a for a in addrs}
            for key, ev in list(self._present.items()):
                if key not in current:
                    gone = _ParsedAddr(ev.address, ev.prefixlen, ev.ifindex, ev.flags, None)
                    self._apply_addr("del", gone, now, synthetic=True)
            for parsed in addrs:
                if (parsed.address, parsed.ifindex) not in self._present:
                    self._apply_addr("new", parsed, now, synthetic=True)
            self._cond.notify_all()

    # -- queries -------------------------------------------------------------

    def _wait_until(self, predicate: Callable[[], _T | None], timeout: float, what: str) -> _T:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                if self._error is not None:
                    raise RuntimeError(f"watcher of {self.netns} failed") from self._error
                value = predicate()
                if value is not None:
                    return value
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._closed:
                    recent = ", ".join(
                        f"{e.kind} {e.address}/{e.prefixlen} on {e.ifname} @{e.timestamp:.6f}"
                        for e in self._events[-8:]
                    )
                    raise TimeoutError(
                        f"netns {self.netns}: timed out after {timeout}s waiting for {what}"
                        f" (last events: {recent or 'none'})"
                    )
                self._cond.wait(remaining)

    def wait_for(
        self,
        address: AddressLike,
        *,
        present: bool = True,
        timeout: float = 5.0,
        after: float | None = None,
        ifname: str | None = None,
    ) -> float:
        """Wait until ``address`` is present (or absent) and return when that happened.

        With ``after=None`` a state that already holds returns at once, with the
        timestamp of the event that brought it about (for addresses known since
        the watcher started: the start time). With ``after=t`` only a change
        received at or after monotonic time ``t`` counts: take ``t`` just before
        triggering the change you want to time. ``ifname`` restricts the match to
        one interface. Raises :class:`TimeoutError`.
        """
        addr = _as_address(address)

        def matches(tr: _Transition) -> bool:
            ev = tr.event
            if ev.address != addr or ev.present != present:
                return False
            return tr.address_changed if ifname is None else ev.ifname == ifname

        def check() -> float | None:
            if after is not None:
                for tr in self._transitions:
                    if tr.event.timestamp >= after and matches(tr):
                        return tr.event.timestamp
                return None
            if self._address_present(addr, ifname) != present:
                return None
            for tr in reversed(self._transitions):
                if matches(tr):
                    return tr.event.timestamp
            return self.started_at  # absent and never seen

        state = "present" if present else "absent"
        where = f" on {ifname}" if ifname else ""
        return self._wait_until(check, timeout, f"{addr} {state}{where}")

    def sync(self, timeout: float = 5.0) -> None:
        """Wait until every notification already queued on the socket is processed.

        After a netlink request returned, the notifications it caused are queued,
        so ``sync()`` makes the state reflect the request (carrier changes done
        later by the kernel's linkwatch are not covered).
        """
        sock = self._sock
        assert sock is not None
        probe = select.poll()
        probe.register(sock.fileno(), select.POLLIN)

        def drained() -> bool:
            return not self._busy and not probe.poll(0)

        deadline = time.monotonic() + timeout
        with self._cond:
            while not drained():
                if self._error is not None or self._closed:
                    return
                if time.monotonic() > deadline:
                    raise TimeoutError(f"netns {self.netns}: watcher did not catch up")
                self._cond.wait(0.01)

    def is_present(self, address: AddressLike, *, ifname: str | None = None) -> bool:
        """Whether ``address`` is currently assigned (on ``ifname`` if given)."""
        with self._cond:
            return self._address_present(_as_address(address), ifname)

    def addresses(self, ifname: str | None = None) -> frozenset[IPInterface]:
        """The addresses currently assigned (on ``ifname`` if given)."""
        with self._cond:
            return frozenset(
                ev.interface
                for ev in self._present.values()
                if ifname is None or ev.ifname == ifname
            )

    def events(self, address: AddressLike | None = None) -> tuple[AddrEvent, ...]:
        """Every address event seen so far (optionally only for ``address``)."""
        addr = None if address is None else _as_address(address)
        with self._cond:
            return tuple(e for e in self._events if addr is None or e.address == addr)

    def link(self, ifname: str) -> LinkState | None:
        """The latest state of link ``ifname``, or None if unknown."""
        with self._cond:
            return self._link_by_name(ifname)

    def _link_by_name(self, ifname: str) -> LinkState | None:
        found = [s for s in self._links.values() if s.ifname == ifname]
        return max(found, key=lambda s: s.timestamp) if found else None

    def wait_link(
        self,
        ifname: str,
        *,
        running: bool = True,
        timeout: float = 5.0,
        after: float | None = None,
    ) -> float:
        """Wait until ``ifname`` is running (up with carrier) or not; return when.

        ``after`` works as in :meth:`wait_for`.
        """

        def check() -> float | None:
            if after is not None:
                for st in self._link_transitions:
                    if st.timestamp >= after and st.ifname == ifname and st.running == running:
                        return st.timestamp
                return None
            cur = self._link_by_name(ifname)
            if cur is None or cur.running != running:
                return None
            for st in reversed(self._link_transitions):
                if st.ifname == ifname and st.running == running:
                    return st.timestamp
            return cur.timestamp

        state = "running" if running else "not running"
        return self._wait_until(check, timeout, f"link {ifname} {state}")

    def link_local(self, ifname: str) -> IPv6Address | None:
        """The usable (non-tentative) IPv6 link-local address of ``ifname``, if any."""
        with self._cond:
            return self._link_local(ifname)

    def _link_local(self, ifname: str) -> IPv6Address | None:
        for ev in self._present.values():
            if (
                ev.ifname == ifname
                and isinstance(ev.address, IPv6Address)
                and ev.address.is_link_local
                and not ev.tentative
            ):
                return ev.address
        return None

    def wait_ready(self, ifname: str, timeout: float = 5.0) -> IPv6Address:
        """Wait until ``ifname`` is running and has a usable link-local address."""

        def check() -> IPv6Address | None:
            cur = self._link_by_name(ifname)
            if cur is None or not cur.running:
                return None
            return self._link_local(ifname)

        return self._wait_until(check, timeout, f"{ifname} running with a link-local address")

    def close(self) -> None:
        """Stop the reader thread and close the sockets (idempotent)."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._cond.notify_all()
        with contextlib.suppress(OSError):
            os.eventfd_write(self._wake, 1)
        thread = getattr(self, "_thread", None)
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5.0)
        if self._sock is not None:
            self._sock.close()
        if self._ctl is not None:
            self._ctl.close()
        os.close(self._wake)


# --------------------------------------------------------------------------- processes


def _signal_group(pgid: int, sig: int) -> bool:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    return True


def _stop_all(procs: Sequence[LabProcess], timeout: float) -> None:
    """SIGTERM every group at once, then SIGKILL whatever outlives ``timeout``."""
    live = [p for p in procs if p.poll() is None]
    for proc in live:
        _signal_group(proc.pgid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for proc in procs:
        try:
            proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            _signal_group(proc.pgid, signal.SIGKILL)
            proc.wait()
        _signal_group(proc.pgid, signal.SIGKILL)  # leftovers of the group


class LabProcess:
    """A long-lived process started in a lab namespace, in its own process group.

    Its stdout and stderr go to :attr:`log_path` in the lab's temp dir.
    """

    def __init__(
        self, popen: subprocess.Popen[bytes], argv: Sequence[str], netns: str, log_path: Path
    ) -> None:
        self._popen = popen
        self.argv: tuple[str, ...] = tuple(argv)
        self.netns = netns
        self.log_path = log_path
        self.pid: int = popen.pid
        self.pgid: int = popen.pid  # start_new_session: the process leads its own group
        self.started_at = time.monotonic()

    def __repr__(self) -> str:
        return f"LabProcess(pid={self.pid}, netns={self.netns!r}, argv={list(self.argv)!r})"

    @property
    def returncode(self) -> int | None:
        return self._popen.returncode

    def poll(self) -> int | None:
        """The exit status if the process has exited (and is reaped), else None."""
        return self._popen.poll()

    @property
    def alive(self) -> bool:
        return self._popen.poll() is None

    def wait(self, timeout: float | None = None) -> int:
        """Wait for exit; raises :class:`subprocess.TimeoutExpired`."""
        return self._popen.wait(timeout)

    def signal(self, sig: int) -> None:
        """Send ``sig`` to the whole process group (e.g. SIGSTOP to simulate a hang)."""
        if self._popen.poll() is None:
            _signal_group(self.pgid, sig)

    def kill(self) -> int:
        """SIGKILL the process group (a crash) and reap the process; return its status."""
        _signal_group(self.pgid, signal.SIGKILL)
        return self._popen.wait()

    def stop(self, timeout: float = 3.0) -> int:
        """SIGTERM the group, wait up to ``timeout``, then SIGKILL it; return the status.

        Whatever is left of the group once the leader exited is killed as well.
        """
        try:
            if self._popen.poll() is None:
                _signal_group(self.pgid, signal.SIGTERM)
                try:
                    return self._popen.wait(timeout)
                except subprocess.TimeoutExpired:
                    _signal_group(self.pgid, signal.SIGKILL)
                    return self._popen.wait()
            return self._popen.wait()
        finally:
            _signal_group(self.pgid, signal.SIGKILL)

    def output(self) -> str:
        """Everything the process wrote so far."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def wait_for_output(self, text: str, timeout: float = 5.0) -> None:
        """Wait until the output contains ``text``; raises TimeoutError (or if it exits)."""
        deadline = time.monotonic() + timeout
        while text not in self.output():
            if self._popen.poll() is not None and text not in self.output():
                raise TimeoutError(
                    f"{self!r} exited ({self._popen.returncode}) before printing {text!r}:"
                    f" {self.output()[-2000:]}"
                )
            if time.monotonic() >= deadline:
                raise TimeoutError(f"{self!r} did not print {text!r} within {timeout}s")
            time.sleep(0.01)


# --------------------------------------------------------------------------- namespaces


@dataclass(frozen=True, eq=False)
class Namespace:
    """A lab network namespace: run commands and processes in it, flip links."""

    netns: str
    lab: Lab = field(repr=False)

    @property
    def watcher(self) -> NetlinkWatcher:
        """The netlink watcher of this namespace (started with the lab)."""
        return self.lab._watcher(self.netns)

    def exec_prefix(self) -> list[str]:
        """The argv prefix that runs a program in this namespace."""
        return ["ip", "netns", "exec", self.netns]

    def run(
        self,
        argv: Sequence[str],
        *,
        check: bool = True,
        timeout: float = 30.0,
        input: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` here and capture its output (text).

        ``env`` entries are added to the current environment. With ``check`` a
        non-zero exit raises :class:`CommandError`; a timeout kills the command
        and raises :class:`subprocess.TimeoutExpired`.
        """
        self.lab._check_open()
        cmd = [*self.exec_prefix(), *argv]
        proc = subprocess.run(
            cmd,
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=_merged_env(env),
            check=False,
        )
        if check and proc.returncode != 0:
            raise CommandError(self.netns, proc.returncode, argv, proc.stdout, proc.stderr)
        return proc

    def ip(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run ``ip -n <netns> ARGS`` (cheaper than ``run(["ip", ...])``)."""
        self.lab._check_open()
        proc = subprocess.run(
            ["ip", "-n", self.netns, *args],
            capture_output=True,
            text=True,
            timeout=30.0,
            check=False,
        )
        if check and proc.returncode != 0:
            raise CommandError(self.netns, proc.returncode, ["ip", *args], proc.stdout, proc.stderr)
        return proc

    def spawn(
        self,
        argv: Sequence[str],
        *,
        name: str | None = None,
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
    ) -> LabProcess:
        """Start ``argv`` here in a new session/process group; output goes to a log file.

        The lab stops it on close. ``name`` labels the log file.
        """
        return self.lab._spawn(self, argv, name=name, env=env, cwd=cwd)

    def call(self, fn: Callable[[], _T]) -> _T:
        """Run ``fn`` on a short-lived thread that joined this namespace and return what
        it returns: a socket it makes belongs here (and is usable from any thread)."""
        return _call_in_netns(self.netns, fn)

    def sysctl(self, key: str, value: int | str) -> None:
        """Set a sysctl of this namespace (``net.ipv4.ip_forward`` or a /proc/sys path)."""
        path = _sysctl_path(key)
        text = str(value)

        def write() -> None:
            path.write_text(text)

        _call_in_netns(self.netns, write)

    def read_sysctl(self, key: str) -> str:
        path = _sysctl_path(key)
        return _call_in_netns(self.netns, lambda: path.read_text().strip())

    def link_down(self, ifname: str) -> float:
        """Set ``ifname`` administratively down; return the monotonic time it was done."""
        self.lab._netlink(self.netns).set_link(ifname, up=False)
        return time.monotonic()

    def link_up(self, ifname: str) -> float:
        """Set ``ifname`` administratively up; return the monotonic time it was done."""
        self.lab._netlink(self.netns).set_link(ifname, up=True)
        return time.monotonic()


def _sysctl_path(key: str) -> Path:
    rel = key.lstrip("/") if "/" in key else key.replace(".", "/")
    if rel.startswith("proc/sys/"):
        rel = rel.removeprefix("proc/sys/")
    return Path("/proc/sys") / rel


def _merged_env(env: Mapping[str, str] | None) -> dict[str, str] | None:
    if env is None:
        return None
    return {**os.environ, **env}


@dataclass(frozen=True, eq=False)
class Host(Namespace):
    """One lab host: a namespace with ``eth<s>`` on each segment ``s``."""

    index: int = 0
    name: str = ""
    interfaces: tuple[HostInterface, ...] = ()

    def interface(self, ifname: str = "eth0") -> HostInterface:
        for iface in self.interfaces:
            if iface.ifname == ifname:
                return iface
        raise KeyError(f"{self.name} has no interface {ifname!r}")

    @property
    def ipv4(self) -> IPv4Address:
        """The primary IPv4 address (``eth0``)."""
        return self.interfaces[0].ipv4.ip

    @property
    def ipv6(self) -> IPv6Address:
        """The primary global IPv6 address (``eth0``)."""
        return self.interfaces[0].ipv6.ip

    def link_local(self, ifname: str = "eth0", timeout: float = 5.0) -> IPv6Address:
        """The IPv6 link-local address of ``ifname`` (waits for it to be usable)."""
        return self.watcher.wait_ready(ifname, timeout)

    def link_down(self, ifname: str = "eth0", *, side: LinkSide = "host") -> float:
        """Take the link down. ``side="host"`` sets ``ifname`` down in the host (the
        host sees its interface go down); ``side="bridge"`` sets the bridge port
        down instead, like pulling the cable: ``ifname`` stays up without carrier.
        Returns the monotonic time the kernel acknowledged the change.
        """
        if side == "bridge":
            return self.lab.bridge.link_down(self.interface(ifname).bridge_port)
        return Namespace.link_down(self, ifname)

    def link_up(
        self,
        ifname: str = "eth0",
        *,
        side: LinkSide = "host",
        wait: bool = True,
        timeout: float = 5.0,
    ) -> float:
        """Undo :meth:`link_down`; with ``wait`` also wait until ``ifname`` is running.

        Returns the monotonic time the kernel acknowledged the change.
        """
        port = self.interface(ifname).bridge_port
        if side == "bridge":
            done = self.lab.bridge.link_up(port)
        else:
            done = Namespace.link_up(self, ifname)
        if wait:
            bridge_watcher = self.lab.bridge.watcher
            self.watcher.sync(timeout)
            bridge_watcher.sync(timeout)
            bridge_watcher.wait_link(port, running=True, timeout=timeout)
            self.watcher.wait_ready(ifname, timeout)
        return done

    def set_loss(
        self, percent: float, ifname: str = "eth0", *, direction: LossDirection = "both"
    ) -> None:
        """Drop ``percent`` % of the frames through this host's bridge port (nftables)."""
        self.lab.set_loss(self.interface(ifname).bridge_port, percent, direction=direction)


# --------------------------------------------------------------------------- the lab


_SigHandler = Callable[[int, FrameType | None], Any] | int | signal.Handlers | None


class _Registry:
    """Open labs, for atexit and for the SIGTERM handler."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.labs: list[Lab] = []
        self.counter = itertools.count(1)
        self.previous_handler: _SigHandler = signal.SIG_DFL
        self.handler_installed = False
        self.closing = 0
        self.pending_sigterm = False
        self.owner_pid = os.getpid()


_REGISTRY: Final = _Registry()


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    if os.getpid() != _REGISTRY.owner_pid:
        # A forked child (pyroute2 forks one to open a socket inside a namespace)
        # inherits this handler: it must die as it would have, not unwind into
        # the parent's cleanup and delete the parent's lab.
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)
        return
    if _REGISTRY.closing:
        _REGISTRY.pending_sigterm = True  # re-raised once the cleanup is done
        return
    raise LabInterrupted(f"signal {signum} while a network lab was open")


def _register(lab: Lab) -> None:
    with _REGISTRY.lock:
        _REGISTRY.labs.append(lab)
        if (
            not _REGISTRY.handler_installed
            and threading.current_thread() is threading.main_thread()
            and signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None)
        ):
            _REGISTRY.previous_handler = signal.signal(signal.SIGTERM, _on_sigterm)
            _REGISTRY.handler_installed = True
            _REGISTRY.owner_pid = os.getpid()


def _unregister(lab: Lab) -> None:
    with _REGISTRY.lock:
        if lab in _REGISTRY.labs:
            _REGISTRY.labs.remove(lab)
        if (
            not _REGISTRY.labs
            and _REGISTRY.handler_installed
            and threading.current_thread() is threading.main_thread()
        ):
            if signal.getsignal(signal.SIGTERM) is _on_sigterm:
                signal.signal(signal.SIGTERM, _REGISTRY.previous_handler)
            _REGISTRY.handler_installed = False


@atexit.register
def _close_all_labs() -> None:
    for lab in list(_REGISTRY.labs):
        with contextlib.suppress(Exception):
            lab.close()


def _batch_argv(netns: str | None = None, *, force: bool = False) -> list[str]:
    argv = ["ip"]
    if netns is not None:
        argv += ["-n", netns]
    if force:
        argv.append("-force")
    return [*argv, "-batch", "-"]


def _ip_batch(commands: Sequence[str], *, netns: str | None = None, force: bool = False) -> None:
    argv = _batch_argv(netns, force=force)
    proc = subprocess.run(
        argv,
        input="\n".join(commands) + "\n",
        capture_output=True,
        text=True,
        timeout=60.0,
        check=False,
    )
    if proc.returncode != 0 and not force:
        raise CommandError(netns or "-", proc.returncode, argv, proc.stdout, proc.stderr)


class Lab:
    """An L2 lab: ``n_hosts`` host namespaces bridged on ``segments`` segments.

    Building happens in the constructor; use it as a context manager (or call
    :meth:`close`) so that processes, namespaces and the temp dir go away even on
    failure. Open labs are also closed at interpreter exit, and while one is open
    SIGTERM raises :class:`LabInterrupted` in the main thread (unless another
    SIGTERM handler was installed first).
    """

    def __init__(
        self,
        n_hosts: int = 2,
        *,
        segments: int = 1,
        prefix: str = DEFAULT_PREFIX,
        stop_timeout: float = 3.0,
        ready_timeout: float = 10.0,
        keep_tmpdir: bool = False,
    ) -> None:
        if not 1 <= n_hosts <= _MAX_HOSTS:
            raise ValueError(f"n_hosts must be within 1..{_MAX_HOSTS}")
        if not 1 <= segments <= len(_SEGMENT_V4):
            raise ValueError(f"segments must be within 1..{len(_SEGMENT_V4)}")
        if not re.fullmatch(r"[a-z]{1,6}", prefix):
            raise ValueError("prefix must be 1-6 lowercase letters")
        self.prefix = prefix
        self._owner_pid = os.getpid()
        self.id = f"{prefix}{os.getpid()}x{next(_REGISTRY.counter)}"
        self.stop_timeout = stop_timeout
        self.keep_tmpdir = keep_tmpdir
        self.segments: tuple[Segment, ...] = tuple(
            Segment(s, f"br{s}", _SEGMENT_V4[s], IPv6Network(f"2001:db8:{s:x}::/64"))
            for s in range(segments)
        )
        self.bridge = Namespace(f"{self.id}b", self)
        self.hosts: tuple[Host, ...] = tuple(self._make_host(i) for i in range(1, n_hosts + 1))
        self._lock = threading.RLock()
        self._closed = False
        self._created: list[str] = []
        self._processes: list[LabProcess] = []
        self._watchers: dict[str, NetlinkWatcher] = {}
        self._controls: dict[str, _RtNetlink] = {}
        self._loss: dict[tuple[str, str], float] = {}  # (port, iifname|oifname) -> %
        self._log_seq = itertools.count(1)
        self.setup_seconds: float | None = None  # how long building took
        self.teardown_seconds: float | None = None  # how long close() took
        self.tmpdir = Path(tempfile.mkdtemp(prefix=f"{self.id}-"))
        _register(self)
        t0 = time.monotonic()
        try:
            self._build(ready_timeout)
        except BaseException:
            self.close()
            raise
        self.setup_seconds = time.monotonic() - t0

    def _make_host(self, i: int) -> Host:
        ifaces = tuple(
            HostInterface(
                ifname=f"eth{seg.index}",
                segment=seg,
                mac=f"02:72:63:{seg.index:02x}:00:{i:02x}",
                ipv4=seg.host_ipv4(i),
                ipv6=seg.host_ipv6(i),
                bridge_port=f"h{i}e{seg.index}",
            )
            for seg in self.segments
        )
        return Host(f"{self.id}h{i}", self, index=i, name=f"h{i}", interfaces=ifaces)

    def __repr__(self) -> str:
        return f"Lab({self.id!r}, hosts={len(self.hosts)}, segments={len(self.segments)})"

    def __enter__(self) -> Lab:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- building ----------------------------------------------------------------

    @property
    def namespaces(self) -> tuple[str, ...]:
        """Every namespace name of this lab (bridge first)."""
        return (self.bridge.netns, *(h.netns for h in self.hosts))

    def _build(self, ready_timeout: float) -> None:
        names = self.namespaces
        # Such a name can only exist if a dead process that had our pid left it.
        leftovers = [n for n in names if (NETNS_RUN_DIR / n).exists()]
        if leftovers:
            _ip_batch([f"netns del {n}" for n in leftovers], force=True)
        self._created = list(names)  # so that a failed add is still cleaned up
        _ip_batch([f"netns add {n}" for n in names])
        self._configure_sysctls()
        for ns in (self.bridge, *self.hosts):
            self._watchers[ns.netns] = NetlinkWatcher(ns.netns)
        self._run_parallel([(host.netns, self._host_commands(host)) for host in self.hosts])
        _ip_batch(self._bridge_commands(), netns=self.bridge.netns)
        for host in self.hosts:
            for iface in host.interfaces:
                self.bridge.watcher.wait_link(iface.bridge_port, timeout=ready_timeout)
                host.watcher.wait_ready(iface.ifname, ready_timeout)

    def _configure_sysctls(self) -> None:
        # The bridge namespace is a dumb switch: no IPv6 of its own, and bridged
        # frames are not passed to ip/ip6/arptables (br_netfilter, when loaded,
        # does that by default, adding conntrack and firewall paths to the lab).
        bridge_settings = {
            "net/ipv6/conf/all/disable_ipv6": "1",
            "net/ipv6/conf/default/disable_ipv6": "1",
            "net/bridge/bridge-nf-call-iptables": "0",
            "net/bridge/bridge-nf-call-ip6tables": "0",
            "net/bridge/bridge-nf-call-arptables": "0",
        }
        host_settings = {
            f"net/ipv6/conf/{scope}/{key}": value
            for scope in ("all", "default")
            for key, value in (
                ("accept_dad", "0"),
                ("keep_addr_on_down", "1"),
                # Kept addresses get their prefix route back only after a DAD run
                # delayed by up to router_solicitation_delay (1 s): make it immediate.
                ("router_solicitation_delay", "0"),
            )
        }

        def writer(settings: Mapping[str, str]) -> Callable[[], None]:
            def write() -> None:
                for key, value in settings.items():
                    path = Path("/proc/sys") / key
                    if key.startswith("net/bridge/") and not path.exists():
                        continue  # br_netfilter is not loaded
                    path.write_text(value)

            return write

        _call_in_netns(self.bridge.netns, writer(bridge_settings))
        for host in self.hosts:
            _call_in_netns(host.netns, writer(host_settings))

    def _host_commands(self, host: Host) -> list[str]:
        cmds = ["link set lo up"]
        for iface in host.interfaces:
            cmds += [
                # An ifindex that differs from the peer's keeps both ends' carrier
                # events "urgent" for the kernel's linkwatch: with equal indexes
                # they are batched and a port can stay blocked for up to a second.
                f"link add {iface.ifname} index {_HOST_IFINDEX + iface.segment.index}"
                f" address {iface.mac} type veth"
                f" peer name {iface.bridge_port} netns {self.bridge.netns}",
                f"addr add {iface.ipv4} dev {iface.ifname}",
                f"addr add {iface.ipv6} dev {iface.ifname} nodad",
                f"link set {iface.ifname} up",
            ]
        return cmds

    def _bridge_commands(self) -> list[str]:
        cmds = ["link set lo up"]
        for seg in self.segments:
            cmds += [
                f"link add {seg.bridge} type bridge stp_state 0 mcast_snooping 0",
                f"link set {seg.bridge} up",
            ]
        for host in self.hosts:
            for iface in host.interfaces:
                cmds += [
                    f"link set {iface.bridge_port} master {iface.segment.bridge}",
                    f"link set {iface.bridge_port} up",
                ]
        return cmds

    @staticmethod
    def _run_parallel(batches: Sequence[tuple[str, list[str]]]) -> None:
        procs = [
            (
                netns,
                subprocess.Popen(
                    _batch_argv(netns),
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                ),
                "\n".join(cmds) + "\n",
            )
            for netns, cmds in batches
        ]
        failures: list[CommandError] = []
        for netns, proc, text in procs:
            out, err = proc.communicate(text, timeout=60.0)
            if proc.returncode != 0:
                failures.append(CommandError(netns, proc.returncode, _batch_argv(netns), out, err))
        if failures:
            raise failures[0]

    # -- accessors -----------------------------------------------------------------

    def host(self, which: int | str) -> Host:
        """Host by 1-based index or by name (``"h1"``)."""
        for host in self.hosts:
            if which in (host.index, host.name, host.netns):
                return host
        raise KeyError(f"no host {which!r} in {self!r}")

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def processes(self) -> tuple[LabProcess, ...]:
        with self._lock:
            return tuple(self._processes)

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"{self!r} is closed")

    def _watcher(self, netns: str) -> NetlinkWatcher:
        with self._lock:
            self._check_open()
            watcher = self._watchers.get(netns)
            if watcher is None:
                watcher = self._watchers[netns] = NetlinkWatcher(netns)
            return watcher

    def _netlink(self, netns: str) -> _RtNetlink:
        with self._lock:
            self._check_open()
            ctl = self._controls.get(netns)
            if ctl is None:
                ctl = self._controls[netns] = _RtNetlink(netns)
            return ctl

    def _spawn(
        self,
        ns: Namespace,
        argv: Sequence[str],
        *,
        name: str | None,
        env: Mapping[str, str] | None,
        cwd: str | os.PathLike[str] | None,
    ) -> LabProcess:
        if not argv:
            raise ValueError("empty argv")
        with self._lock:
            self._check_open()
            label = re.sub(r"[^A-Za-z0-9_.-]", "_", name or Path(argv[0]).name)
            owner = ns.name if isinstance(ns, Host) else "bridge"
            log_path = self.tmpdir / f"{owner}-{label}-{next(self._log_seq)}.log"
            with log_path.open("wb") as log:
                popen = subprocess.Popen(
                    [*ns.exec_prefix(), *argv],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=_merged_env(env),
                    cwd=cwd,
                    start_new_session=True,
                )
            proc = LabProcess(popen, argv, ns.netns, log_path)
            self._processes.append(proc)
            return proc

    # -- packet loss ---------------------------------------------------------------

    def set_loss(self, port: str, percent: float, *, direction: LossDirection = "both") -> None:
        """Drop ``percent`` % of frames through bridge port ``port`` (0 removes it).

        ``from_host`` applies to frames the host sends, ``to_host`` to frames sent
        to it (each flooded copy is dropped independently), ``both`` to both; the
        two directions are set independently. Needs ``nft`` and nf_tables bridge
        support; raises :class:`LabUnavailable` otherwise.
        """
        if not 0 <= percent <= 100:
            raise ValueError("percent must be within 0..100")
        if shutil.which("nft") is None:
            raise LabUnavailable("packet loss needs nftables (`nft`), which is not installed")
        with self._lock:
            self._check_open()
            matches = {
                "both": ("iifname", "oifname"),
                "from_host": ("iifname",),
                "to_host": ("oifname",),
            }[direction]
            for match in matches:
                if percent == 0:
                    self._loss.pop((port, match), None)
                else:
                    self._loss[(port, match)] = percent
            rules = []
            for (name, match), pct in sorted(self._loss.items()):
                threshold = round(pct * 100)
                sample = "" if threshold >= 10000 else f" numgen random mod 10000 < {threshold}"
                rules.append(f'    {match} "{name}"{sample} drop')
            script = "\n".join(
                [
                    f"table bridge {_NFT_TABLE}",
                    f"delete table bridge {_NFT_TABLE}",
                    f"table bridge {_NFT_TABLE} {{",
                    "  chain forward {",
                    "    type filter hook forward priority 0; policy accept;",
                    *rules,
                    "  }",
                    "}",
                ]
            )
            proc = self.bridge.run(["nft", "-f", "-"], input=script + "\n", check=False)
            if proc.returncode != 0:
                raise LabUnavailable(f"nft failed in {self.bridge.netns}: {proc.stderr.strip()}")

    # -- cleanup -----------------------------------------------------------------

    def close(self) -> None:
        """Stop the lab's processes and watchers, delete its namespaces and temp dir.

        Idempotent; each step runs even if an earlier one failed. A SIGTERM that
        arrives meanwhile is held back and raised when the cleanup is complete.
        """
        if os.getpid() != self._owner_pid:
            return  # a forked child never tears down its parent's lab
        with self._lock:
            if self._closed:
                return
            self._closed = True
        t0 = time.monotonic()
        with _REGISTRY.lock:
            _REGISTRY.closing += 1
        errors: list[BaseException] = []
        try:
            try:
                _stop_all(self._processes, self.stop_timeout)
            except BaseException as exc:
                errors.append(exc)
            closables: list[NetlinkWatcher | _RtNetlink] = [
                *self._watchers.values(),
                *self._controls.values(),
            ]
            for closable in closables:
                try:
                    closable.close()
                except BaseException as exc:
                    errors.append(exc)
            if self._created:
                try:
                    _ip_batch([f"netns del {n}" for n in self._created], force=True)
                except BaseException as exc:
                    errors.append(exc)
            if not self.keep_tmpdir:
                shutil.rmtree(self.tmpdir, ignore_errors=True)
        finally:
            _unregister(self)
            self.teardown_seconds = time.monotonic() - t0
            with _REGISTRY.lock:
                _REGISTRY.closing -= 1
                raise_pending = _REGISTRY.closing == 0 and _REGISTRY.pending_sigterm
                if raise_pending:
                    _REGISTRY.pending_sigterm = False
        if raise_pending:
            raise LabInterrupted("SIGTERM during lab cleanup")
        for error in errors:
            if not isinstance(error, Exception):
                raise error  # KeyboardInterrupt and the like keep their meaning
        if errors:
            raise RuntimeError(f"errors while closing {self!r}: {errors!r}") from errors[0]


# --------------------------------------------------------------------------- utilities


def netns_unavailable_reason() -> str | None:
    """Why labs cannot run here (None if they can). Creates one probe namespace."""
    if os.geteuid() != 0:
        return "needs root for network namespaces"
    if shutil.which("ip") is None:
        return "needs iproute2 (`ip`) for network namespaces"
    probe = f"{DEFAULT_PREFIX}{os.getpid()}x0p"
    proc = subprocess.run(
        ["ip", "netns", "add", probe], capture_output=True, text=True, timeout=30.0, check=False
    )
    if proc.returncode != 0:
        return f"cannot create network namespaces: {proc.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True, timeout=30.0, check=False)
    return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _sweep_stale_tmpdirs(prefix: str) -> None:
    """A lab's temp dir outlives it only when its process was killed outright."""
    pattern = re.compile(rf"{re.escape(prefix)}(\d+)x\d+-\w+")
    tmp = Path(tempfile.gettempdir())
    for entry in tmp.iterdir():
        m = pattern.fullmatch(entry.name)
        if m and int(m.group(1)) != os.getpid() and not _pid_alive(int(m.group(1))):
            shutil.rmtree(entry, ignore_errors=True)


def sweep_stale(prefix: str = DEFAULT_PREFIX) -> tuple[str, ...]:
    """Remove namespaces and temp dirs of labs whose creating process no longer exists.

    Only names of the exact lab form ``<prefix><pid>x<n>{b,h<i>,p}`` (namespaces) and
    ``<prefix><pid>x<n>-*`` (temp dirs) whose pid is dead are touched. Processes still
    living in such a namespace (lab processes orphaned by the killed run) are SIGKILLed
    first. Returns the removed namespace names.
    """
    _sweep_stale_tmpdirs(prefix)
    pattern = re.compile(rf"{re.escape(prefix)}(\d+)x\d+(?:b|h\d+|p)")
    try:
        names = sorted(os.listdir(NETNS_RUN_DIR))
    except FileNotFoundError:
        return ()
    stale = []
    for name in names:
        m = pattern.fullmatch(name)
        if m and int(m.group(1)) != os.getpid() and not _pid_alive(int(m.group(1))):
            stale.append(name)
    if not stale:
        return ()
    inodes = set()
    for name in stale:
        with contextlib.suppress(OSError):
            st = os.stat(NETNS_RUN_DIR / name)
            inodes.add((st.st_dev, st.st_ino))
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            st = os.stat(f"/proc/{entry}/ns/net")
        except OSError:
            continue
        if (st.st_dev, st.st_ino) in inodes:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(entry), signal.SIGKILL)
    _ip_batch([f"netns del {n}" for n in stale], force=True)
    return tuple(stale)
