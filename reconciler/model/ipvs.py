"""IPVS virtual services and real servers, normalized the way the kernel reports them."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import timedelta
from typing import ClassVar

from reconciler.model.checks import Check
from reconciler.model.common import Family, IPAddress, Key
from reconciler.model.vrrp import Hook


class Protocol(enum.Enum):
    TCP = "tcp"
    UDP = "udp"
    SCTP = "sctp"


class Forwarding(enum.Enum):
    NAT = "nat"  # IP_VS_CONN_F_MASQ
    TUNNEL = "tunnel"  # IP_VS_CONN_F_TUNNEL
    DR = "dr"  # IP_VS_CONN_F_DROUTE


@dataclass(frozen=True)
class ServiceKey:
    """What identifies a virtual service in the kernel: address+port+protocol, or a fwmark."""

    family: Family
    protocol: Protocol | None = None
    address: IPAddress | None = None
    port: int = 0
    fwmark: int = 0

    def __str__(self) -> str:
        if self.fwmark:
            return f"fwmark {self.fwmark}/{self.family}"
        host = f"[{self.address}]" if self.family is Family.IPV6 else str(self.address)
        assert self.protocol is not None
        return f"{self.protocol.value}/{host}:{self.port}"

    def parts(self) -> Key:
        if self.fwmark:
            return ("fwmark", str(self.family), str(self.fwmark))
        assert self.protocol is not None
        return (self.protocol.value, str(self.address), str(self.port))


@dataclass(frozen=True)
class Persistence:
    timeout: timedelta = timedelta(seconds=300)
    netmask: int = 32  # prefix length; 128 for IPv6


@dataclass(frozen=True)
class Quorum:
    min_weight: int = 1
    hysteresis: int = 0
    up: tuple[Hook, ...] = ()
    down: tuple[Hook, ...] = ()


@dataclass(frozen=True)
class Endpoint:
    address: IPAddress
    port: int
    forwarding: Forwarding

    def __str__(self) -> str:
        host = f"[{self.address}]" if self.address.version == 6 else str(self.address)
        return f"{host}:{self.port}"


@dataclass(frozen=True)
class VirtualService:
    """One IPVS service without its real servers (they are resources of their own)."""

    kind: ClassVar[str] = "ipvs_service"

    name: str
    service: ServiceKey
    scheduler: str = "wlc"
    scheduler_flags: tuple[str, ...] = ()
    forwarding: Forwarding = Forwarding.NAT
    persistence: Persistence | None = None
    quorum: Quorum = Quorum()
    sorry_server: Endpoint | None = None
    sorry_server_inhibit: bool = False
    alpha: bool = False

    @property
    def key(self) -> Key:
        return self.service.parts()


@dataclass(frozen=True)
class RealServer:
    kind: ClassVar[str] = "ipvs_dest"

    service: ServiceKey
    address: IPAddress
    port: int
    weight: int = 1
    forwarding: Forwarding = Forwarding.NAT
    upper_threshold: int = 0
    lower_threshold: int = 0
    check: Check | None = None
    inhibit_on_failure: bool = False
    notify_up: tuple[Hook, ...] = ()
    notify_down: tuple[Hook, ...] = ()

    @property
    def key(self) -> Key:
        return (*self.service.parts(), str(self.address), str(self.port))

    @property
    def endpoint(self) -> Endpoint:
        return Endpoint(self.address, self.port, self.forwarding)
