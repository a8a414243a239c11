"""A new revision of a running virtual router, applied in place (``Reconfigure``)."""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address

from reconciler.vrrp.params import InstanceParams, check_effective_priority


def check_reconfigure(old: InstanceParams, new: InstanceParams, priority: int) -> None:
    """Only a revision of the same virtual router applies in place."""
    if (new.vrid, new.version, new.family) != (old.vrid, old.version, old.family):
        raise ValueError(f"{old.name}: VRID, version or family changed: restart instead")
    check_effective_priority(priority)


@dataclass(frozen=True, slots=True)
class MasterUpdate:
    """What a master does for a new revision, RFC 5798 §6.4.3: it keeps the VIPs that
    stay. If what it advertises changed (priority, interval, address list, source,
    peers, checksum mode), the new advert goes out at once and the Adver_Timer restarts;
    new VIPs are added and announced, and only the VIPs that went are released."""

    readvertise: bool
    added: tuple[IPv4Address, ...] | tuple[IPv6Address, ...]
    removed: tuple[IPv4Address, ...] | tuple[IPv6Address, ...]

    @classmethod
    def between(
        cls, old: InstanceParams, old_priority: int, new: InstanceParams, new_priority: int
    ) -> MasterUpdate:
        return cls(
            readvertise=(
                new.advert(new_priority) != old.advert(old_priority)
                or new.primary_address != old.primary_address
                or new.unicast_peers != old.unicast_peers
                or new.unicast_checksum is not old.unicast_checksum
            ),
            added=tuple(a for a in new.vips if a not in old.vips),  # type: ignore[arg-type]
            removed=tuple(a for a in old.vips if a not in new.vips),  # type: ignore[arg-type]
        )
