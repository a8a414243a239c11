"""RFC 5798 §7.1 receive checks as one pure function.

``validate_advert`` answers "may this advert reach the state machine?" with ``None`` or a
bounded :class:`AdvertRefusal`. A refused advert never changes state; the machine only counts it.

The address-list check is a MAY in RFC 5798 §7.1 ("MAY verify that the IPvX Address(es)
associated with this VRID in the ADVERTISEMENT matches the IPvX Address(es) configured for
the VRID"), and a revision that adds or removes a VIP reaches the nodes of one cluster
seconds apart. Refusing each other's adverts then makes both nodes master, and the VIPs the
two lists share end up on two nodes. So a list that differs but shares an address with ours
is the same virtual router mid-change: the advert is elected on and counted as a mismatch
(``addresses_differ``). A list with no address in common is another router that reuses the
VRID (a misconfiguration): electing with it could leave our VIPs on no node, so it is
refused as before.
"""

from __future__ import annotations

import enum
import hmac

from reconciler.model.vrrp import UnicastChecksum
from reconciler.vrrp.packet import VRRP_TTL, AuthType, ChecksumVerdict, ReceivedAdvert, VrrpVersion
from reconciler.vrrp.params import PRIORITY_OWNER, InstanceParams


class AdvertRefusal(enum.Enum):
    """Why a well-formed advert was not processed (``vrrp_adverts_invalid_total{reason}``)."""

    FAMILY_MISMATCH = "family_mismatch"
    BAD_TTL = "bad_ttl"
    VERSION_MISMATCH = "version_mismatch"
    VRID_MISMATCH = "vrid_mismatch"  # not for us: silently ignored, but counted
    AUTH_MISMATCH = "auth_mismatch"
    INTERVAL_MISMATCH = "interval_mismatch"
    CHECKSUM_MODE = "checksum_mode"  # old vs RFC v3 unicast checksum not accepted here
    UNEXPECTED_DESTINATION = "unexpected_destination"  # multicast to unicast or vice versa
    UNKNOWN_UNICAST_SOURCE = "unknown_unicast_source"
    OWN_ADDRESS = "own_address"  # our own advert reflected back
    ADDRESS_MISMATCH = "address_mismatch"  # no VIP in common: another virtual router


def validate_advert(params: InstanceParams, received: ReceivedAdvert) -> AdvertRefusal | None:
    """RFC 5798 §7.1 (RFC 3768 §7.1 for v2), in the RFC's order where it gives one."""
    advert = received.advert
    source = received.source
    if source.version != params.family:
        return AdvertRefusal.FAMILY_MISMATCH
    # §7.1 "MUST verify that the IPvX TTL/Hop Limit is 255". keepalived skips it for
    # unicast (a routed peer has a lower TTL), and its own IPv6 unicast adverts go out with
    # hop limit 64 (tests/data/vrrp/v3_ipv6_unicast_1s_1vip.json): so do we, to interoperate.
    if not params.unicast and received.hop_limit != VRRP_TTL:
        return AdvertRefusal.BAD_TTL
    if advert.version is not params.version:
        return AdvertRefusal.VERSION_MISMATCH
    if advert.vrid != params.vrid:
        return AdvertRefusal.VRID_MISMATCH
    if params.version is VrrpVersion.V2:
        # RFC 3768 §7.1 (and RFC 2338 §5.3.6 for simple text): the auth type must match and
        # a simple-text password must be equal; compared in constant time.
        if advert.auth_type is not params.auth_type:
            return AdvertRefusal.AUTH_MISMATCH
        if advert.auth_type is AuthType.SIMPLE_TEXT and not hmac.compare_digest(
            advert.auth_data, params.auth_data
        ):
            return AdvertRefusal.AUTH_MISMATCH
        # RFC 3768 §7.1: the Adver Interval must equal the configured one.
        if advert.advert_interval_cs != params.advert_interval_cs:
            return AdvertRefusal.INTERVAL_MISMATCH
    if params.unicast:
        if received.destination.is_multicast:
            return AdvertRefusal.UNEXPECTED_DESTINATION
        old = received.checksum is ChecksumVerdict.VALID_OLD_UNICAST
        if (old and params.unicast_checksum is UnicastChecksum.RFC) or (
            received.checksum is ChecksumVerdict.VALID
            and params.unicast_checksum is UnicastChecksum.OLD
            and advert.version is VrrpVersion.V3
        ):
            return AdvertRefusal.CHECKSUM_MODE
        # keepalived's check_unicast_src. An IPv6 advert comes from the sender's link-local
        # address (RFC 5798 5.1.2.1), which no configuration lists: a link-local source is
        # on this link by definition and is let through; any other must be a peer.
        if (
            params.check_unicast_source
            and source not in params.unicast_peers
            and not (source.version == 6 and source.is_link_local)
        ):
            return AdvertRefusal.UNKNOWN_UNICAST_SOURCE
        if params.unicast_min_ttl and (
            received.hop_limit is None or received.hop_limit < params.unicast_min_ttl
        ):
            return AdvertRefusal.BAD_TTL
    elif not received.destination.is_multicast:
        return AdvertRefusal.UNEXPECTED_DESTINATION
    if source == params.primary_address:
        return AdvertRefusal.OWN_ADDRESS
    # §7.1 (a MAY; see the module docstring): a list that differs is refused only when it
    # has no address in common with ours, and never from the address owner.
    if (
        advert.priority != PRIORITY_OWNER
        and addresses_differ(params, received)
        and set(advert.addresses).isdisjoint(params.vips)
    ):
        return AdvertRefusal.ADDRESS_MISMATCH
    return None


def addresses_differ(params: InstanceParams, received: ReceivedAdvert) -> bool:
    """Whether the advert's address list is not exactly the one configured (§7.1)."""
    addresses = received.advert.addresses
    return len(addresses) != len(params.vips) or set(addresses) != set(params.vips)
