"""Types shared by every resource of the desired state."""

from __future__ import annotations

import enum
from ipaddress import IPv4Address, IPv4Interface, IPv6Address, IPv6Interface
from typing import ClassVar, Protocol

IPAddress = IPv4Address | IPv6Address
IPInterface = IPv4Interface | IPv6Interface
Key = tuple[str, ...]


class Family(enum.Enum):
    IPV4 = 4
    IPV6 = 6

    @classmethod
    def of(cls, address: IPAddress | IPInterface) -> Family:
        return cls.IPV4 if address.version == 4 else cls.IPV6

    def __str__(self) -> str:
        return "ipv4" if self is Family.IPV4 else "ipv6"


class Resource(Protocol):
    """Anything the planner can create, update or delete: a kind and a stable identity."""

    kind: ClassVar[str]

    @property
    def key(self) -> Key: ...


@enum.unique
class CheckState(enum.Enum):
    UP = "up"
    DOWN = "down"
    UNKNOWN = "unknown"
