"""Live kernel objects: what `ip addr` and `ipvsadm -Ln` show, as the reconciler compares them.

These are the kernel's view, normalized so that a converged node compares
equal to the projection of its desired state (`plan.live.project`): kernel
bookkeeping flags are dropped, ports of non-NAT destinations are the service
port, a service without persistence has timeout 0 and a full netmask.
Counters are carried but never compared.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import ClassVar

from reconciler.model.common import IPAddress, IPInterface, Key
from reconciler.model.ipvs import Forwarding, ServiceKey


@dataclass(frozen=True)
class LiveAddress:
    kind: ClassVar[str] = "address"

    interface: str
    address: IPInterface
    label: str | None = None
    scope: str = "global"

    @property
    def key(self) -> Key:
        return (self.interface, str(self.address))


@dataclass(frozen=True)
class LiveService:
    kind: ClassVar[str] = "ipvs_service"

    service: ServiceKey
    scheduler: str = "wlc"
    # Scheduler flags by name: sh-fallback / sh-port (and mh-*), as ipvsadm -b names them.
    scheduler_flags: tuple[str, ...] = ()
    persistent: bool = False
    timeout: timedelta = timedelta(0)  # persistence timeout; 0 when not persistent
    netmask: int = 32  # persistence granularity as a prefix length (128 for IPv6)

    @property
    def key(self) -> Key:
        return self.service.parts()


@dataclass(frozen=True)
class LiveDest:
    kind: ClassVar[str] = "ipvs_dest"

    service: ServiceKey
    address: IPAddress
    port: int
    weight: int = 1
    forwarding: Forwarding = Forwarding.NAT
    upper_threshold: int = 0
    lower_threshold: int = 0
    active_connections: int = field(default=0, compare=False)
    inactive_connections: int = field(default=0, compare=False)

    @property
    def key(self) -> Key:
        return (*self.service.parts(), str(self.address), str(self.port))
