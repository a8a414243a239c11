"""RFC 5798 §7.1 receive checks, called directly (the pure function the machine uses)."""

from __future__ import annotations

import dataclasses
import json
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path

from reconciler.model.vrrp import UnicastChecksum
from reconciler.vrrp.packet import VRRP_MULTICAST_IPV4, decode_ipv4, decode_ipv6
from reconciler.vrrp.params import InstanceParams
from reconciler.vrrp.receive import AdvertRefusal, addresses_differ, validate_advert

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
    assert validate_advert(other_vrid, received) is AdvertRefusal.VRID_MISMATCH
    assert (
        validate_advert(
            InstanceParams("x", 51, 150, 100, (IPv4Address("192.0.2.101"),), me.primary_address),
            received,
        )
        is AdvertRefusal.ADDRESS_MISMATCH
    )
    # RFC 5798 §7.1 MAY: a list sharing an address (a peer mid-change) passes, and differs
    sharing = InstanceParams(
        "x", 51, 150, 100, (*me.vips, IPv4Address("192.0.2.101")), me.primary_address
    )
    assert validate_advert(sharing, received) is None
    assert addresses_differ(sharing, received) and not addresses_differ(me, received)


def test_keepalived_ipv6_unicast_advert_has_hop_limit_64_and_is_accepted() -> None:
    unicast, received = _unicast_ipv6("2001:db8::11", 64)  # keepalived's source, hop limit
    assert validate_advert(unicast, received) is None
    multicast = InstanceParams("web6", 51, 150, 100, unicast.vips, IPv6Address("fe80::12"))
    assert validate_advert(multicast, received) is AdvertRefusal.BAD_TTL


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
    assert validate_advert(instance(UnicastChecksum.RFC), received) is AdvertRefusal.CHECKSUM_MODE
    assert received.destination != VRRP_MULTICAST_IPV4


def _unicast_ipv6(source: str, hop_limit: int, **kw: object) -> tuple[InstanceParams, object]:
    packet = _first("v3_ipv6_unicast_1s_1vip")
    received = decode_ipv6(
        bytes.fromhex(str(packet["vrrp_hex"])),
        IPv6Address("2001:db8::11"),  # the source its checksum was computed with
        IPv6Address("2001:db8::12"),
        hop_limit,
    )
    received = dataclasses.replace(received, source=IPv6Address(source))
    params = InstanceParams(
        "web6",
        51,
        150,
        100,
        (IPv6Address("2001:db8::100"),),
        IPv6Address("2001:db8::12"),
        unicast_peers=(IPv6Address("2001:db8::11"),),
        **kw,  # type: ignore[arg-type]
    )
    return params, received


def test_unicast_source_check_refuses_a_host_that_is_not_a_peer() -> None:
    """keepalived's check_unicast_src: with it, only the configured peers can make a node
    follow them or fail over; without it, any host that reaches the node can."""
    checked, from_stranger = _unicast_ipv6("2001:db8::66", 255, check_unicast_source=True)
    assert validate_advert(checked, from_stranger) is AdvertRefusal.UNKNOWN_UNICAST_SOURCE
    _, from_peer = _unicast_ipv6("2001:db8::11", 255)
    assert validate_advert(checked, from_peer) is None
    unchecked, _ = _unicast_ipv6("2001:db8::66", 255, check_unicast_source=False)
    assert validate_advert(unchecked, from_stranger) is None
    # Our IPv6 nodes send from their link-local address (RFC 5798 5.1.2.1), which the
    # file does not list: on-link by definition, let through.
    _, from_link_local = _unicast_ipv6("fe80::11", 255)
    assert validate_advert(checked, from_link_local) is None


def test_unicast_min_ttl_refuses_adverts_from_further_away() -> None:
    params, one_hop = _unicast_ipv6("2001:db8::11", 254, unicast_min_ttl=255)
    assert validate_advert(params, one_hop) is AdvertRefusal.BAD_TTL
    _, on_link = _unicast_ipv6("2001:db8::11", 255)
    assert validate_advert(params, on_link) is None
    at_limit, keepalived_v6 = _unicast_ipv6("2001:db8::11", 64, unicast_min_ttl=64)
    assert validate_advert(at_limit, keepalived_v6) is None  # its IPv6 unicast hop limit
    unchecked, _ = _unicast_ipv6("2001:db8::11", 1)
    assert validate_advert(unchecked, one_hop) is None


def test_the_model_checks_unicast_sources_by_default() -> None:
    from reconciler.config.load import load_text  # noqa: PLC0415
    from reconciler.runtime.vrrp_driver import instance_params  # noqa: PLC0415
    from reconciler.testing.clusters import cluster_head  # noqa: PLC0415

    text = (
        cluster_head()
        + """\
vrrp:
  instances:
    web: {vrid: 51, vips: [192.0.2.100/24], unicast: true}
    ttl: {vrid: 52, vips: [192.0.2.101/24], unicast: true, unicast_min_ttl: 255,
          unicast_source_check: false}
"""
    )
    cfg = load_text(text, "t.yaml").cluster.for_node("a")
    web = instance_params(cfg.instance("web"), IPv4Address("192.0.2.11"))
    assert web.check_unicast_source and web.unicast_min_ttl == 0
    ttl = instance_params(cfg.instance("ttl"), IPv4Address("192.0.2.11"))
    assert not ttl.check_unicast_source and ttl.unicast_min_ttl == 255
