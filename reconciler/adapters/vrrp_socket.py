"""Raw VRRP sockets (IP protocol 112), one per interface and address family.

Options as keepalived sets them (reference §3): bound to the interface, TTL /
hop limit 255, TOS / traffic class 0xC0, multicast loop off, member of
224.0.0.18 / ff02::12, kernel receive timestamps. The socket is never bound
to an address: a raw socket bound to a unicast address does not see packets
sent to the multicast group. The source address of each advert is chosen per
packet with IP(V6)_PKTINFO instead.

IPv4 raw sockets deliver the whole packet (header included); IPv6 raw sockets
deliver only the payload, so the hop limit and destination come from ancillary
data.
"""

from __future__ import annotations

import socket
import struct
import time
from ipaddress import IPv4Address, IPv6Address
from typing import NamedTuple

from reconciler.vrrp.packet import IPPROTO_VRRP, VRRP_MULTICAST_IPV4, VRRP_MULTICAST_IPV6

# Linux values; Python 3.11 does not export all of them.
SO_BINDTODEVICE = getattr(socket, "SO_BINDTODEVICE", 25)
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
IP_PKTINFO = getattr(socket, "IP_PKTINFO", 8)
IP_MULTICAST_ALL = 49  # off: only groups joined on this socket
IPV6_RECVPKTINFO = getattr(socket, "IPV6_RECVPKTINFO", 49)
IPV6_PKTINFO = getattr(socket, "IPV6_PKTINFO", 50)
IPV6_RECVHOPLIMIT = getattr(socket, "IPV6_RECVHOPLIMIT", 51)
IPV6_HOPLIMIT = getattr(socket, "IPV6_HOPLIMIT", 52)
IPV6_TCLASS = getattr(socket, "IPV6_TCLASS", 67)
VRRP_TTL = 255
VRRP_TOS = 0xC0
_CMSG_SPACE = 256
# The largest VRRP packet a socket delivers: IPv4 with a 60-byte header, 8 + 255 x 4 bytes of
# addresses and 8 of authentication (1096); IPv6 payload 8 + 255 x 16 (4088).
_RECV_BUFSIZE = 4096
_ADDRESS_CACHE_MAX = 4096  # distinct peer addresses remembered before the cache restarts
_TIMESPEC = struct.Struct("@qq")
_SOL_SOCKET = socket.SOL_SOCKET
_IPPROTO_IPV6 = socket.IPPROTO_IPV6
_INT = struct.Struct("@i")


class Datagram(NamedTuple):
    """One received packet: bytes and what the kernel said about it.

    A NamedTuple rather than a frozen dataclass: one is built per advert received, and
    building a tuple costs a fraction of a frozen dataclass's ``__init__``.
    """

    data: bytes  # IPv4: the whole IP packet; IPv6: the VRRP payload
    source: IPv6Address | None  # IPv6 only (IPv4 has it in the header)
    destination: IPv4Address | IPv6Address | None  # IPv6 only (IPv4 has it in the header)
    hop_limit: int | None  # IPv6 only
    received_at: float  # time.monotonic() of the kernel receive timestamp


class VrrpSocket:
    """A non-blocking raw VRRP socket on one interface for one family."""

    def __init__(self, interface: str, family: int) -> None:
        self.interface = interface
        self.family = family
        self.ifindex = socket.if_nametoindex(interface)
        af = socket.AF_INET if family == 4 else socket.AF_INET6
        self.sock = socket.socket(af, socket.SOCK_RAW, IPPROTO_VRRP)
        try:
            self._configure()
        except BaseException:
            self.sock.close()
            raise
        self.sock.setblocking(False)
        # Parsed addresses and prepared send arguments, by their raw form: the same few
        # peers send every advert, and parsing an address costs more than the lookup.
        self._sources: dict[str, IPv6Address] = {}
        self._destinations: dict[bytes, IPv6Address] = {}
        self._send_args: dict[
            tuple[IPv4Address | IPv6Address, IPv4Address | IPv6Address],
            tuple[list[tuple[int, int, bytes]], tuple[str, int] | tuple[str, int, int, int]],
        ] = {}

    def _configure(self) -> None:
        s = self.sock
        s.setsockopt(socket.SOL_SOCKET, SO_BINDTODEVICE, self.interface.encode())
        s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        if self.family == 4:
            mreqn = struct.pack("4s4si", VRRP_MULTICAST_IPV4.packed, b"\0" * 4, self.ifindex)
            s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreqn)
            s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, mreqn)
            s.setsockopt(socket.IPPROTO_IP, IP_MULTICAST_ALL, 0)
            s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, VRRP_TTL)
            s.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, VRRP_TTL)
            s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 0)
            s.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, VRRP_TOS)
        else:
            mreq = VRRP_MULTICAST_IPV6.packed + struct.pack("@I", self.ifindex)
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, mreq)
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, self.ifindex)
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, VRRP_TTL)
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, VRRP_TTL)
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_LOOP, 0)
            s.setsockopt(socket.IPPROTO_IPV6, IPV6_TCLASS, VRRP_TOS)
            s.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVHOPLIMIT, 1)
            s.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVPKTINFO, 1)

    def fileno(self) -> int:
        return self.sock.fileno()

    def close(self) -> None:
        self.sock.close()

    def receive(self, limit: int = 256) -> list[Datagram]:
        """The packets waiting in the socket, at most ``limit`` (none: an empty list)."""
        out: list[Datagram] = []
        # SO_TIMESTAMPNS stamps are CLOCK_REALTIME and timers run on the monotonic
        # clock; the offset between the two is read once per batch.
        realtime_to_monotonic = time.monotonic() - time.time()
        recvmsg = self.sock.recvmsg
        ipv6 = self.family == 6
        for _ in range(limit):
            try:
                data, ancdata, _flags, addr = recvmsg(_RECV_BUFSIZE, _CMSG_SPACE)
            except (BlockingIOError, InterruptedError):
                break
            stamp: float | None = None
            hop_limit: int | None = None
            destination: IPv6Address | None = None
            for level, kind, payload in ancdata:
                if kind == SO_TIMESTAMPNS and level == _SOL_SOCKET and len(payload) >= 16:
                    sec, nsec = _TIMESPEC.unpack_from(payload)
                    stamp = sec + nsec / 1e9 + realtime_to_monotonic
                elif level == _IPPROTO_IPV6 and kind == IPV6_HOPLIMIT:
                    hop_limit = _INT.unpack_from(payload)[0]
                elif level == _IPPROTO_IPV6 and kind == IPV6_PKTINFO:
                    destination = self._destination(payload[:16])
            source = self._source(addr[0]) if ipv6 else None
            out.append(
                Datagram(
                    data,
                    source,
                    destination,
                    hop_limit,
                    stamp if stamp is not None else time.monotonic(),
                )
            )
        return out

    def _source(self, text: str) -> IPv6Address:
        address = self._sources.get(text)
        if address is None:
            if len(self._sources) >= _ADDRESS_CACHE_MAX:
                self._sources.clear()  # forged sources cannot grow it without bound
            address = self._sources[text] = IPv6Address(text.split("%", maxsplit=1)[0])
        return address

    def _destination(self, packed: bytes) -> IPv6Address:
        address = self._destinations.get(packed)
        if address is None:
            if len(self._destinations) >= _ADDRESS_CACHE_MAX:
                self._destinations.clear()
            address = self._destinations[packed] = IPv6Address(packed)
        return address

    def send(
        self,
        payload: bytes,
        source: IPv4Address | IPv6Address,
        destination: IPv4Address | IPv6Address,
    ) -> None:
        """Send one VRRP payload; the kernel adds the IP header (TTL, TOS from options)."""
        args = self._send_args.get((source, destination))
        if args is None:
            args = self._send_args[(source, destination)] = self._prepare(source, destination)
        cmsg, address = args
        self.sock.sendmsg([payload], cmsg, 0, address)

    def _prepare(
        self, source: IPv4Address | IPv6Address, destination: IPv4Address | IPv6Address
    ) -> tuple[list[tuple[int, int, bytes]], tuple[str, int] | tuple[str, int, int, int]]:
        """The ancillary data choosing the source address, and the destination sockaddr."""
        if self.family == 4:
            # struct in_pktinfo { int ipi_ifindex; in_addr ipi_spec_dst; in_addr ipi_addr; }
            info = struct.pack("@i4s4s", self.ifindex, source.packed, b"\0" * 4)
            return [(socket.IPPROTO_IP, IP_PKTINFO, info)], (str(destination), 0)
        # struct in6_pktinfo { in6_addr ipi6_addr; int ipi6_ifindex; }
        info = source.packed + struct.pack("@i", self.ifindex)
        return [(socket.IPPROTO_IPV6, IPV6_PKTINFO, info)], (
            str(destination),
            0,
            0,
            self.ifindex,
        )
