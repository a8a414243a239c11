"""VRRP instances as one node runs them: every per-node value already resolved."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import timedelta
from typing import ClassVar, Final

from reconciler.model.common import Family, IPAddress, IPInterface, Key


@dataclass(frozen=True)
class Vip:
    address: IPInterface
    dev: str  # interface the address goes on
    label: str | None = None
    scope: str = "global"

    def __str__(self) -> str:
        extra = "".join(
            f" {k} {v}"
            for k, v in (("label", self.label), ("scope", self.scope))
            if v and v != "global"
        )
        return f"{self.address} dev {self.dev}{extra}"


DEFAULT_HOOK_USER = "nobody"  # keepalived's default script_user when it exists


@dataclass(frozen=True)
class Hook:
    command: tuple[str, ...]
    timeout: timedelta
    before_release: bool = False
    user: str = DEFAULT_HOOK_USER  # the account the command runs as; "root" is opt-in


@dataclass(frozen=True)
class Notify:
    master: tuple[Hook, ...] = ()
    backup: tuple[Hook, ...] = ()
    fault: tuple[Hook, ...] = ()
    stop: tuple[Hook, ...] = ()


@dataclass(frozen=True)
class TrackCheck:
    check: str
    weight: int = 0  # 0: FAULT while the check is down


@dataclass(frozen=True)
class TrackInterface:
    interface: str
    weight: int = 0  # 0: FAULT while the link is down


Track = TrackCheck | TrackInterface


@dataclass(frozen=True)
class Garp:
    """Gratuitous ARP / unsolicited NA on becoming master; keepalived's defaults."""

    master_repeat: int = 5
    master_delay: timedelta = timedelta(seconds=5)
    master_refresh: timedelta = timedelta(0)
    master_refresh_repeat: int = 1
    interval: timedelta = timedelta(0)


class UnicastChecksum(enum.Enum):
    """VRRPv3 unicast checksum modes, as keepalived's ``old_unicast_checksum``."""

    AUTO = "auto"  # send RFC checksums; accept RFC and old ones (keepalived's default)
    RFC = "rfc"  # send and accept RFC checksums only
    OLD = "old"  # send old checksums (multicast group in the pseudo-header); accept only old


@dataclass(frozen=True)
class VrrpInstance:
    kind: ClassVar[str] = "vrrp_instance"

    name: str
    vrid: int
    version: int
    family: Family
    interface: str
    priority: int  # configured; trackers move the effective priority at run time
    advert_interval: timedelta
    vips: tuple[Vip, ...]
    primary_address: IPAddress | None  # source for IPv4; None for IPv6 (link-local)
    preempt: bool = True
    preempt_delay: timedelta = timedelta(0)
    unicast_peers: tuple[IPAddress, ...] = ()  # empty: multicast
    unicast_checksum: UnicastChecksum = UnicastChecksum.AUTO
    unicast_source_check: bool = True  # unicast adverts only from the peers
    unicast_min_ttl: int | None = None  # unicast adverts below this TTL are refused
    auth_password: str | None = None  # VRRPv2 simple password
    accept: bool = True
    answer_lower_priority: bool = True
    garp: Garp = Garp()
    track: tuple[Track, ...] = ()
    notify: Notify = Notify()
    sync_group: str | None = None

    @property
    def key(self) -> Key:
        return (self.name,)

    @property
    def address_owner(self) -> bool:
        return self.priority == 255

    @property
    def accepts_vip_traffic(self) -> bool:
        """RFC 5798 §6.4.2/§6.4.3: packets addressed to the VIPs are accepted by the
        address owner always, by any other node only with Accept_Mode."""
        return self.accept or self.address_owner

    @property
    def advert_interval_cs(self) -> int:
        """Advertisement_Interval in centiseconds, the unit of the VRRPv3 field (RFC 5798 5.2.7)."""
        return self.advert_interval // timedelta(milliseconds=10)


# A change of any of these is a change of the instance's identity on the wire (another
# VRID, socket or advert format): it cannot be applied to the running instance, which
# must stop (priority-0 advert, VIPs released) and start again. Every other field is
# applied in place. The runtime and the plan both ask `restart_reasons`.
IDENTITY_FIELDS: Final = ("vrid", "interface", "family", "version")


def restart_reasons(old: VrrpInstance, new: VrrpInstance) -> tuple[str, ...]:
    """The identity fields that differ between two revisions of one instance; empty
    when the change can be applied in place."""
    return tuple(f for f in IDENTITY_FIELDS if getattr(old, f) != getattr(new, f))


@dataclass(frozen=True)
class SyncGroup:
    kind: ClassVar[str] = "sync_group"

    name: str
    members: tuple[str, ...]
    notify: Notify = Notify()

    @property
    def key(self) -> Key:
        return (self.name,)
