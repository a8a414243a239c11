"""Gratuitous ARP (IPv4) and unsolicited neighbour advertisements (IPv6) for VIPs.

RFC 5798 §6.4.1 (ii)/(iii): a new master announces each VIP so that switches
and neighbours move traffic to it at once. The frames are fixed and tiny, so
they are built here with struct rather than with scapy, whose import costs
seconds and tens of megabytes in a daemon that otherwise never needs it
(tests use scapy to parse what is sent).
"""

from __future__ import annotations

import logging
import socket
import struct
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path

from reconciler.adapters.error_tally import ErrorTally

log = logging.getLogger("reconciler.arp")

ETH_P_ARP = 0x0806
ARPOP_REQUEST = 1
BROADCAST = b"\xff" * 6
ALL_NODES = IPv6Address("ff02::1")
ND_NEIGHBOR_ADVERT = 136
NA_FLAG_ROUTER = 0x80000000  # RFC 5798 §6.4.2: the master is a router
NA_FLAG_OVERRIDE = 0x20000000  # replace cached link-layer addresses
ND_OPT_TARGET_LINKADDR = 2


def interface_mac(interface: str) -> bytes:
    text = Path(f"/sys/class/net/{interface}/address").read_text().strip()
    return bytes.fromhex(text.replace(":", ""))


def garp_frame(mac: bytes, vip: IPv4Address) -> bytes:
    """An Ethernet broadcast ARP request whose sender and target are both the VIP."""
    eth = BROADCAST + mac + struct.pack("!H", ETH_P_ARP)
    arp = struct.pack("!HHBBH", 1, 0x0800, 6, 4, ARPOP_REQUEST)
    arp += mac + vip.packed + BROADCAST + vip.packed
    return eth + arp


def na_message(mac: bytes, vip: IPv6Address) -> bytes:
    """ICMPv6 neighbour advertisement for `vip` (checksum filled in by the kernel)."""
    header = struct.pack("!BBHI", ND_NEIGHBOR_ADVERT, 0, 0, NA_FLAG_ROUTER | NA_FLAG_OVERRIDE)
    option = struct.pack("!BB", ND_OPT_TARGET_LINKADDR, 1) + mac
    return header + vip.packed + option


class Announcer:
    """Sends the announcements on one interface.

    Everything a takeover needs (the socket of each family, the interface's MAC address)
    is acquired by `prepare` when an instance starts, never on the takeover path: a
    node short of descriptors at that moment still announces. A send that fails is
    counted by errno in ``failures`` (shared by the node's announcers) and logged once per
    kind and interface, not once per frame.
    """

    def __init__(self, interface: str, failures: ErrorTally | None = None) -> None:
        self.interface = interface
        self._packet: socket.socket | None = None
        self._icmp6: socket.socket | None = None
        self._mac: bytes | None = None
        # The interface index for neighbour advertisements, read by ``prepare``.
        self._ifindex: int | None = None
        self.sent = 0
        self.failures = failures if failures is not None else ErrorTally("announce", log)

    def prepare(self, family: int) -> None:
        """Open the socket for address family 4 or 6 and read the MAC address now.
        OSError when the interface or the socket cannot be had."""
        self._mac = interface_mac(self.interface)
        if family == 4:
            self._packet_socket()
        else:
            self._icmp6_socket()
            self._ifindex = socket.if_nametoindex(self.interface)

    def close(self) -> None:
        for s in (self._packet, self._icmp6):
            if s is not None:
                s.close()
        self._packet = self._icmp6 = None

    def announce(self, vips: tuple[IPv4Address, ...] | tuple[IPv6Address, ...]) -> None:
        for vip in vips:
            try:
                self._send(vip)
            except OSError as exc:
                self.failures.record(exc, self.interface)
            else:
                self.sent += 1

    def _send(self, vip: IPv4Address | IPv6Address) -> None:
        if self._mac is None:
            self._mac = interface_mac(self.interface)
        if isinstance(vip, IPv4Address):
            self._packet_socket().send(garp_frame(self._mac, vip))
        else:
            if self._ifindex is None:
                self._ifindex = socket.if_nametoindex(self.interface)
            try:
                self._icmp6_socket().sendto(
                    na_message(self._mac, vip), (str(ALL_NODES), 0, 0, self._ifindex)
                )
            except OSError:
                self._ifindex = None  # read again next time: the link may have been re-made
                raise

    def _packet_socket(self) -> socket.socket:
        if self._packet is None:
            s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ARP))
            s.bind((self.interface, ETH_P_ARP))
            self._packet = s
        return self._packet

    def _icmp6_socket(self) -> socket.socket:
        if self._icmp6 is None:
            s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
            s.setsockopt(socket.SOL_SOCKET, 25, self.interface.encode())  # SO_BINDTODEVICE
            # RFC 4861 §7.1.2: neighbour discovery messages must have hop limit 255.
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_LOOP, 0)
            self._icmp6 = s
        return self._icmp6
