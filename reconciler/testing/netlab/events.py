"""What a netlink watcher reports: address events and link states."""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface, IPv6Interface
from typing import Literal

from reconciler.testing.netlab.addressing import IPAddress, IPInterface
from reconciler.testing.netlab.rtnetlink import (
    IFA_F_DADFAILED,
    IFA_F_TENTATIVE,
    IFF_RUNNING,
    IFF_UP,
)

__all__ = ["AddrEvent", "LinkState"]


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
        return bool(self.flags & (IFA_F_TENTATIVE | IFA_F_DADFAILED))


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
        return bool(self.flags & IFF_UP)

    @property
    def running(self) -> bool:
        return bool(self.flags & IFF_RUNNING)
