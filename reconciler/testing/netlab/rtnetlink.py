"""A minimal rtnetlink codec and request socket: links and addresses only.

Decoding yields :class:`ParsedAddr` / :class:`ParsedLink` without timestamps;
the watcher stamps them with the time it read them.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import socket
import struct
import threading
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address
from typing import Final

from reconciler.testing.netlab.addressing import IPAddress
from reconciler.testing.netlab.plumbing import call_in_netns

__all__ = [
    "IFA_F_DADFAILED",
    "IFA_F_TENTATIVE",
    "IFF_RUNNING",
    "IFF_UP",
    "RTMGRP_IPV4_IFADDR",
    "RTMGRP_IPV6_IFADDR",
    "RTMGRP_LINK",
    "RTM_DELADDR",
    "RTM_DELLINK",
    "RTM_NEWADDR",
    "RTM_NEWLINK",
    "NlMsg",
    "ParsedAddr",
    "ParsedLink",
    "RtNetlink",
    "netlink_socket",
    "parse_addr",
    "parse_link",
    "split_messages",
]

# --- constants (linux/netlink.h, linux/rtnetlink.h, linux/if_addr.h) ---
_NLMSG_ERROR: Final = 2
_NLMSG_DONE: Final = 3
_NLM_F_REQUEST: Final = 0x1
_NLM_F_ACK: Final = 0x4
_NLM_F_DUMP: Final = 0x300
RTM_NEWLINK: Final = 16
RTM_DELLINK: Final = 17
_RTM_GETLINK: Final = 18
RTM_NEWADDR: Final = 20
RTM_DELADDR: Final = 21
_RTM_GETADDR: Final = 22
RTMGRP_LINK: Final = 0x1
RTMGRP_IPV4_IFADDR: Final = 0x10
RTMGRP_IPV6_IFADDR: Final = 0x100
_IFA_ADDRESS: Final = 1
_IFA_LOCAL: Final = 2
_IFA_LABEL: Final = 3
_IFA_FLAGS: Final = 8
_IFLA_IFNAME: Final = 3
_IFLA_OPERSTATE: Final = 16
IFF_UP: Final = 0x1
IFF_RUNNING: Final = 0x40
IFA_F_TENTATIVE: Final = 0x40
IFA_F_DADFAILED: Final = 0x08
_NLHDR: Final = struct.Struct("=IHHII")
_IFADDRMSG: Final = struct.Struct("=BBBBI")
_IFINFOMSG: Final = struct.Struct("=BxHiII")
_RTATTR: Final = struct.Struct("=HH")


@dataclass(frozen=True)
class NlMsg:
    type: int
    flags: int
    seq: int
    body: bytes


@dataclass(frozen=True)
class ParsedAddr:
    address: IPAddress
    prefixlen: int
    ifindex: int
    flags: int
    label: str | None


@dataclass(frozen=True)
class ParsedLink:
    ifindex: int
    ifname: str
    flags: int
    operstate: int


def split_messages(data: bytes) -> list[NlMsg]:
    out: list[NlMsg] = []
    offset = 0
    while offset + _NLHDR.size <= len(data):
        length, mtype, flags, seq, _pid = _NLHDR.unpack_from(data, offset)
        if length < _NLHDR.size or offset + length > len(data):
            break
        out.append(NlMsg(mtype, flags, seq, data[offset + _NLHDR.size : offset + length]))
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


def parse_addr(body: bytes) -> ParsedAddr | None:
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
    return ParsedAddr(address, prefixlen, ifindex, flags, label)


def parse_link(body: bytes) -> ParsedLink | None:
    if len(body) < _IFINFOMSG.size:
        return None
    _family, _type, ifindex, flags, _change = _IFINFOMSG.unpack_from(body)
    attrs = _parse_attrs(body, _IFINFOMSG.size)
    name_raw = attrs.get(_IFLA_IFNAME)
    if name_raw is None:
        return None
    operstate = attrs.get(_IFLA_OPERSTATE, b"\0")[0]
    name = name_raw.split(b"\0", 1)[0].decode()
    return ParsedLink(ifindex, name, flags, operstate)


def netlink_socket(netns: str, groups: int = 0) -> socket.socket:
    """An rtnetlink socket opened inside ``netns``, joined to ``groups``."""

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

    return call_in_netns(netns, make)


class RtNetlink:
    """A request/response rtnetlink socket inside one namespace."""

    def __init__(self, netns: str) -> None:
        self._sock = netlink_socket(netns)
        self._sock.settimeout(10.0)
        self._seq = itertools.count(1)
        self._lock = threading.Lock()

    def close(self) -> None:
        self._sock.close()

    def request(self, msg_type: int, body: bytes, *, dump: bool = False) -> list[NlMsg]:
        flags = _NLM_F_REQUEST | (_NLM_F_DUMP if dump else _NLM_F_ACK)
        with self._lock:
            seq = next(self._seq)
            self._sock.send(_NLHDR.pack(_NLHDR.size + len(body), msg_type, flags, seq, 0) + body)
            out: list[NlMsg] = []
            while True:
                for msg in split_messages(self._sock.recv(1 << 20)):
                    if msg.seq != seq:
                        continue  # a late answer to an earlier, timed-out request
                    if msg.type == _NLMSG_ERROR:
                        code = struct.unpack_from("=i", msg.body)[0]
                        if code:
                            raise OSError(-code, os.strerror(-code))
                        return out
                    if msg.type == _NLMSG_DONE:
                        return out
                    out.append(msg)

    def dump_links(self) -> list[ParsedLink]:
        msgs = self.request(_RTM_GETLINK, _IFINFOMSG.pack(0, 0, 0, 0, 0), dump=True)
        links = (parse_link(m.body) for m in msgs if m.type == RTM_NEWLINK)
        return [link for link in links if link is not None]

    def dump_addrs(self) -> list[ParsedAddr]:
        msgs = self.request(_RTM_GETADDR, _IFADDRMSG.pack(0, 0, 0, 0, 0), dump=True)
        addrs = (parse_addr(m.body) for m in msgs if m.type == RTM_NEWADDR)
        return [a for a in addrs if a is not None]

    def set_link(self, ifname: str, *, up: bool) -> None:
        body = _IFINFOMSG.pack(0, 0, 0, IFF_UP if up else 0, IFF_UP)
        self.request(RTM_NEWLINK, body + _attr(_IFLA_IFNAME, ifname.encode() + b"\0"))
