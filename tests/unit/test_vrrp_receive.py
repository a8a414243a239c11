"""RFC 5798 §7.1 receive checks, called directly (the pure function the machine uses)."""

from __future__ import annotations

import json
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path

from reconciler.vrrp.packet import VRRP_MULTICAST_IPV4, decode_ipv4, decode_ipv6
from reconciler.vrrp.params import InstanceParams, UnicastChecksum
from reconciler.vrrp.receive import Refusal, addresses_differ, validate_advert

DATA = Path(__file__).resolve().parents[1] / "data" / "vrrp"


def _first(name: str) -> dict[str, object]:
    packet: dict[str, object] = json.loads((DATA / f"{name}.json").read_text())["packets"][0]
    return packet


def test_keepalived_v3_multicast_advert_passes_for_a_matching_instance() -> None:
    received = decode_ipv4(bytes.fromhex(str(_first("v3_ipv4_multicast_1s_1vip")["ip_packet_hex"])))
    me = InstanceParams(
        "web", 51, 150, 100, (IPv4Address("192.0.2.100"),), IPv4Address("192.0.2.12")
    )
    assert validate_advert(me, received) is None
    other_vrid = InstanceParams("x", 52, 150, 100, me.vips, me.primary_address)
    assert validate_advert(other_vrid, received) is Refusal.VRID_MISMATCH
    assert (
        validate_advert(
            InstanceParams("x", 51, 150, 100, (IPv4Address("192.0.2.101"),), me.primary_address),
            received,
        )
        is Refusal.ADDRESS_MISMATCH
    )
    # RFC 5798 §7.1 MAY: a list sharing an address (a peer mid-change) passes, and differs
    sharing = InstanceParams(
        "x", 51, 150, 100, (*me.vips, IPv4Address("192.0.2.101")), me.primary_address
    )
    assert validate_advert(sharing, received) is None
    assert addresses_differ(sharing, received) and not addresses_differ(me, received)


def test_keepalived_ipv6_unicast_advert_has_hop_limit_64_and_is_accepted() -> None:
    packet = _first("v3_ipv6_unicast_1s_1vip")
    received = decode_ipv6(
        bytes.fromhex(str(packet["vrrp_hex"])),
        IPv6Address("2001:db8::11"),
        IPv6Address("2001:db8::12"),
        64,
    )
    unicast = InstanceParams(
        "web6",
        51,
        150,
        100,
        (IPv6Address("2001:db8::100"),),
        IPv6Address("2001:db8::12"),
        unicast_peers=(IPv6Address("2001:db8::11"),),
    )
    assert validate_advert(unicast, received) is None
    multicast = InstanceParams("web6", 51, 150, 100, unicast.vips, IPv6Address("fe80::12"))
    assert validate_advert(multicast, received) is Refusal.BAD_TTL


def test_keepalived_old_checksum_advert_per_mode() -> None:
    received = decode_ipv4(
        bytes.fromhex(str(_first("v3_ipv4_unicast_1s_1vip_old_checksum")["ip_packet_hex"]))
    )

    def instance(mode: UnicastChecksum) -> InstanceParams:
        return InstanceParams(
            "web",
            51,
            150,
            100,
            (IPv4Address("192.0.2.100"),),
            IPv4Address("192.0.2.12"),
            unicast_peers=(IPv4Address("192.0.2.11"),),
            unicast_checksum=mode,
        )

    assert validate_advert(instance(UnicastChecksum.AUTO), received) is None
    assert validate_advert(instance(UnicastChecksum.OLD), received) is None
    assert validate_advert(instance(UnicastChecksum.NEVER), received) is Refusal.CHECKSUM_MODE
    assert received.destination != VRRP_MULTICAST_IPV4
