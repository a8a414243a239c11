"""The lab's address plan: segments, host interfaces and the address types.

Only documentation prefixes are used: ``192.0.2.0/24``, ``198.51.100.0/24``,
``203.0.113.0/24`` and ``2001:db8:<s>::/64``. Host ``i`` gets ``.<10+i>`` and
``::<10+i>``; ``.100`` and up are never given to hosts (they are for VIPs).
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import (
    IPv4Address,
    IPv4Interface,
    IPv4Network,
    IPv6Address,
    IPv6Interface,
    IPv6Network,
    ip_address,
)
from typing import Final, Literal

__all__ = [
    "HOST_IFINDEX",
    "MAX_HOSTS",
    "SEGMENT_V4",
    "AddressLike",
    "HostInterface",
    "IPAddress",
    "IPInterface",
    "LinkSide",
    "LossDirection",
    "Segment",
    "as_address",
    "host_interfaces",
    "segment",
]

IPAddress = IPv4Address | IPv6Address
IPInterface = IPv4Interface | IPv6Interface
AddressLike = IPAddress | IPInterface | str
LinkSide = Literal["host", "bridge"]
LossDirection = Literal["both", "from_host", "to_host"]

SEGMENT_V4: Final = (
    IPv4Network("192.0.2.0/24"),
    IPv4Network("198.51.100.0/24"),
    IPv4Network("203.0.113.0/24"),
)
_HOST_OFFSET: Final = 10  # host i gets .<10+i>
_FREE_OFFSET: Final = 100  # .100 and up are never given to hosts (for VIPs)
MAX_HOSTS: Final = _FREE_OFFSET - _HOST_OFFSET - 1
HOST_IFINDEX: Final = 1000  # ifindex of eth0 in a host (eth<s>: 1000+s)


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


def segment(s: int) -> Segment:
    """Segment number ``s`` (0-based) of every lab: bridge ``br<s>``."""
    return Segment(s, f"br{s}", SEGMENT_V4[s], IPv6Network(f"2001:db8:{s:x}::/64"))


@dataclass(frozen=True)
class HostInterface:
    """A host's interface on one segment and the bridge port it plugs into."""

    ifname: str
    segment: Segment
    mac: str
    ipv4: IPv4Interface
    ipv6: IPv6Interface
    bridge_port: str


def host_interfaces(i: int, segments: tuple[Segment, ...]) -> tuple[HostInterface, ...]:
    """Host ``i``'s interfaces: ``eth<s>`` on each segment, plugged into ``h<i>e<s>``."""
    return tuple(
        HostInterface(
            ifname=f"eth{seg.index}",
            segment=seg,
            mac=f"02:72:63:{seg.index:02x}:00:{i:02x}",
            ipv4=seg.host_ipv4(i),
            ipv6=seg.host_ipv6(i),
            bridge_port=f"h{i}e{seg.index}",
        )
        for seg in segments
    )


def as_address(value: AddressLike) -> IPAddress:
    if isinstance(value, IPv4Interface | IPv6Interface):
        return value.ip
    if isinstance(value, IPv4Address | IPv6Address):
        return value
    text = value.split("/", 1)[0]
    return ip_address(text)
