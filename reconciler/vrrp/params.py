"""Per-instance VRRP configuration, as the state machine needs it."""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address

from reconciler.model.vrrp import UnicastChecksum
from reconciler.vrrp.packet import (
    V2_AUTH_DATA_LEN,
    V2_MAX_ADVERT_INTERVAL_S,
    V3_MAX_ADVERT_INTERVAL_CS,
    Advert,
    AuthType,
    VrrpVersion,
)

PRIORITY_OWNER = 255  # RFC 5798 §6.1: the address owner
PRIORITY_STOP = 0  # RFC 5798 §6.1: "stop participating", sent on graceful shutdown


@dataclass(frozen=True, slots=True)
class InstanceParams:
    """One VRRP instance on one interface.

    ``priority`` is the priority at start; the running effective priority changes through
    ``PriorityChanged``. ``advert_interval_cs`` is RFC 5798's Advertisement_Interval in
    centiseconds (v2: whole seconds, so a multiple of 100). ``primary_address`` is the
    source of our adverts (IPv6: the link-local address) and decides equal-priority
    elections (RFC 5798 §6.4.3). ``unicast_peers`` empty means multicast.
    """

    name: str
    vrid: int
    priority: int
    advert_interval_cs: int
    vips: tuple[IPv4Address, ...] | tuple[IPv6Address, ...]
    primary_address: IPv4Address | IPv6Address
    version: VrrpVersion = VrrpVersion.V3
    preempt: bool = True
    # keepalived preempt_delay: a backup that would preempt a lower-priority master keeps
    # accepting its adverts for this long after first seeing it, then stops (RFC: 0).
    preempt_delay_s: float = 0.0
    # RFC 5798 §6.1 Accept_Mode: whether a non-owner master accepts packets for the VIPs.
    # Carried for the driver; the election does not depend on it.
    accept_mode: bool = False
    # keepalived (default on): a master answers a lower-priority advert at once with its
    # own and restarts its Adver_Timer; RFC 5798 §6.4.3 says discard it.
    answer_lower_priority: bool = True
    # RFC 5798 §6.4.2: a v3 backup adopts the master's advertised interval.
    learn_master_adver_interval: bool = True
    auth_type: AuthType = AuthType.NONE  # v2 only
    auth_data: bytes = b""  # v2 simple-text password, at most 8 bytes
    unicast_peers: tuple[IPv4Address, ...] | tuple[IPv6Address, ...] = ()
    unicast_checksum: UnicastChecksum = UnicastChecksum.AUTO
    # keepalived vrrp_check_unicast_src: refuse unicast adverts from non-peers.
    check_unicast_source: bool = False
    # Refuse unicast adverts whose IPv4 TTL / IPv6 hop limit is below this (0: no check;
    # RFC 5798 7.1's TTL 255 rule is not applied to unicast, see vrrp/receive.py).
    unicast_min_ttl: int = 0

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("instance name is empty")
        if not 1 <= self.vrid <= 255:
            raise ValueError(f"vrid {self.vrid} outside 1..255")
        if not 1 <= self.priority <= PRIORITY_OWNER:
            raise ValueError(f"priority {self.priority} outside 1..255")
        if self.version is VrrpVersion.V3:
            if not 1 <= self.advert_interval_cs <= V3_MAX_ADVERT_INTERVAL_CS:
                raise ValueError(f"v3 advert interval {self.advert_interval_cs} cs out of range")
            if self.auth_type is not AuthType.NONE or self.auth_data:
                raise ValueError("VRRPv3 has no authentication")
        else:
            seconds, rest = divmod(self.advert_interval_cs, 100)
            if rest or not 1 <= seconds <= V2_MAX_ADVERT_INTERVAL_S:
                raise ValueError("v2 advert interval must be 1..255 whole seconds")
            if self.primary_address.version != 4:
                raise ValueError("VRRPv2 is IPv4 only")
            if len(self.auth_data) > V2_AUTH_DATA_LEN:
                raise ValueError("v2 password longer than 8 bytes")
            if len(self.auth_data) < V2_AUTH_DATA_LEN:
                object.__setattr__(self, "auth_data", self.auth_data.ljust(V2_AUTH_DATA_LEN, b"\0"))
        family = self.primary_address.version
        if any(a.version != family for a in (*self.vips, *self.unicast_peers)):
            raise ValueError("VIPs, unicast peers and primary address differ in family")
        if len(set(self.vips)) != len(self.vips) or len(self.vips) > 255:
            raise ValueError("VIPs must be distinct and at most 255")
        if self.preempt_delay_s < 0:
            raise ValueError("preempt_delay_s is negative")

    @property
    def family(self) -> int:
        """4 or 6, from the primary address."""
        return self.primary_address.version

    @property
    def is_owner(self) -> bool:
        return self.priority == PRIORITY_OWNER

    @property
    def unicast(self) -> bool:
        return bool(self.unicast_peers)

    @property
    def sends_old_unicast_checksum(self) -> bool:
        """Whether our adverts carry keepalived's old v3 unicast checksum."""
        return (
            self.unicast
            and self.version is VrrpVersion.V3
            and self.unicast_checksum is UnicastChecksum.OLD
        )

    def advert(self, priority: int) -> Advert:
        """The advert this instance sends at ``priority`` (interval: the configured one)."""
        return Advert(
            version=self.version,
            vrid=self.vrid,
            priority=priority,
            advert_interval_cs=self.advert_interval_cs,
            addresses=self.vips,
            auth_type=self.auth_type,
            auth_data=self.auth_data,
        )


def check_effective_priority(priority: int) -> None:
    """A running priority (``PriorityChanged``, ``Reconfigure``) must be 1..255."""
    if not 1 <= priority <= PRIORITY_OWNER:
        raise ValueError(f"effective priority {priority} outside 1..255")
