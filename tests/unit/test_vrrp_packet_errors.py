"""Every refusal of the VRRP codec, with its exact reason and text, and the boundaries.

The operator reads ``str(MalformedAdvert)`` in the logs and its ``reason`` as the label of
``reconciler_vrrp_packets_malformed_total``; the encoder's ``ValueError`` messages surface
in configuration and start-up errors. Each table row builds one faulty packet (or one
unencodable advert) by hand, with every other field valid and every checksum that comes
before the fault correct, so that exactly one rule is exercised: the row is named after
that rule (RFC 791 for the IPv4 header, RFC 5798 §5 for VRRPv3, RFC 3768 §5 for VRRPv2).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from ipaddress import IPv4Address, IPv6Address
from typing import Any, cast

import pytest

from reconciler.vrrp import packet
from reconciler.vrrp.packet import (
    VRRP_MULTICAST_IPV4,
    VRRP_MULTICAST_IPV6,
    Advert,
    AuthType,
    ChecksumVerdict,
    MalformedAdvert,
    MalformedReason,
    ReceivedAdvert,
    VrrpVersion,
    decode_ipv4,
    decode_ipv6,
    decode_payload,
    encode_advert,
    encode_ipv4_packet,
    internet_checksum,
)

SRC4 = IPv4Address("192.0.2.11")
PEER4 = IPv4Address("192.0.2.12")
VIP4 = IPv4Address("192.0.2.100")
SRC6 = IPv6Address("fe80::11")
VIP6 = IPv6Address("2001:db8::100")


# --- Packet builders: every field explicit, checksums computed here, not by the codec -----


def v3_message(
    *,
    vers_type: int = 0x31,
    vrid: int = 51,
    priority: int = 100,
    count: int = 1,
    word: int = 100,
    body: bytes = VIP4.packed,
    source: IPv4Address | IPv6Address = SRC4,
    destination: IPv4Address | IPv6Address = VRRP_MULTICAST_IPV4,
) -> bytes:
    """A VRRPv3 message whose checksum (RFC 5798 §5.2.8) is right for source/destination."""
    head = bytes([vers_type, vrid, priority, count]) + word.to_bytes(2, "big")
    message = head + b"\0\0" + body
    if source.version == 4:
        pseudo = source.packed + destination.packed + bytes([0, 112])
        pseudo += len(message).to_bytes(2, "big")
    else:
        pseudo = source.packed + destination.packed + len(message).to_bytes(4, "big")
        pseudo += bytes([0, 0, 0, 112])
    checksum = internet_checksum(pseudo + message)
    return head + checksum.to_bytes(2, "big") + body


def v2_message(
    *,
    vers_type: int = 0x21,
    vrid: int = 51,
    priority: int = 100,
    count: int = 1,
    auth_type: int = 0,
    interval_s: int = 1,
    body: bytes = VIP4.packed + bytes(8),
) -> bytes:
    """A VRRPv2 message with a right RFC 3768 §5.3.8 checksum (no pseudo-header)."""
    head = bytes([vers_type, vrid, priority, count, auth_type, interval_s])
    checksum = internet_checksum(head + b"\0\0" + body)
    return head + checksum.to_bytes(2, "big") + body


def ipv4_packet(
    payload: bytes,
    *,
    version_ihl: int = 0x45,
    total_length: int | None = None,
    flags_fragment: int = 0,
    protocol: int = 112,
    options: bytes = b"",
    header_checksum: int | None = None,
) -> bytes:
    """An IPv4 packet (RFC 791 §3.1) around ``payload``; the header checksum is right
    unless ``header_checksum`` says otherwise."""
    if total_length is None:
        total_length = 20 + len(options) + len(payload)
    header = (
        bytes([version_ihl, 0xC0])
        + total_length.to_bytes(2, "big")
        + bytes([0, 0])
        + flags_fragment.to_bytes(2, "big")
        + bytes([255, protocol, 0, 0])
        + SRC4.packed
        + VRRP_MULTICAST_IPV4.packed
        + options
    )
    if header_checksum is None:
        header_checksum = internet_checksum(header)
    return header[:10] + header_checksum.to_bytes(2, "big") + header[12:] + payload


def _from_group(message: bytes) -> Callable[[], ReceivedAdvert]:
    return lambda: decode_payload(message, SRC4, VRRP_MULTICAST_IPV4, 255)


def _over_ipv6(message: bytes) -> Callable[[], ReceivedAdvert]:
    return lambda: decode_ipv6(message, SRC6, VRRP_MULTICAST_IPV6, 255)


GOOD_V3 = v3_message()

# (rule, decode call, reason, exact str(exc))
DECODE_REFUSALS: list[tuple[str, Callable[[], ReceivedAdvert], MalformedReason, str]] = [
    # RFC 791 §3.1: the IPv4 header an IPv4 raw socket hands over
    ("rfc791_empty_datagram_has_no_header",
     lambda: decode_ipv4(b""), MalformedReason.TRUNCATED,
     "truncated: 0 bytes, no IPv4 header"),
    ("rfc791_header_is_20_bytes_at_least",
     lambda: decode_ipv4(ipv4_packet(GOOD_V3)[:19]), MalformedReason.TRUNCATED,
     "truncated: 19 bytes, no IPv4 header"),
    ("rfc791_bare_20_byte_header_carries_no_vrrp_message",
     lambda: decode_ipv4(ipv4_packet(b"")), MalformedReason.TRUNCATED,
     "truncated: 0 bytes, header is 8"),
    ("rfc791_version_must_be_4",
     lambda: decode_ipv4(ipv4_packet(GOOD_V3, version_ihl=0x65)), MalformedReason.BAD_IP_HEADER,
     "bad_ip_header: IP version 6"),
    ("rfc791_ihl_at_least_5_words",
     lambda: decode_ipv4(ipv4_packet(GOOD_V3, version_ihl=0x44)), MalformedReason.BAD_IP_HEADER,
     "bad_ip_header: IHL 16 bytes"),
    ("rfc791_total_length_below_header",
     lambda: decode_ipv4(ipv4_packet(GOOD_V3, total_length=16)), MalformedReason.BAD_LENGTH,
     "bad_length: total length 16 < header 20"),
    ("rfc791_total_length_one_below_header",
     lambda: decode_ipv4(ipv4_packet(GOOD_V3, total_length=19)), MalformedReason.BAD_LENGTH,
     "bad_length: total length 19 < header 20"),
    ("rfc791_total_length_beyond_datagram",
     lambda: decode_ipv4(ipv4_packet(GOOD_V3, total_length=33)), MalformedReason.TRUNCATED,
     "truncated: total length 33, have 32"),
    ("rfc5798_5_1_1_protocol_must_be_112",
     lambda: decode_ipv4(ipv4_packet(GOOD_V3, protocol=17)), MalformedReason.BAD_IP_HEADER,
     "bad_ip_header: IP protocol 17"),
    ("rfc791_more_fragments_flag",
     lambda: decode_ipv4(ipv4_packet(GOOD_V3, flags_fragment=0x2000)),
     MalformedReason.BAD_IP_HEADER, "bad_ip_header: fragment"),
    ("rfc791_fragment_offset",
     lambda: decode_ipv4(ipv4_packet(GOOD_V3, flags_fragment=0x0001)),
     MalformedReason.BAD_IP_HEADER, "bad_ip_header: fragment"),
    ("rfc791_header_checksum",
     lambda: decode_ipv4(ipv4_packet(GOOD_V3, header_checksum=0x1234)),
     MalformedReason.BAD_IP_HEADER, "bad_ip_header: IPv4 header checksum"),
    # RFC 5798 §5.1 / §7.1: the VRRP message
    ("rfc5798_7_1_source_and_destination_of_one_family",
     lambda: decode_payload(GOOD_V3, SRC4, VRRP_MULTICAST_IPV6, 255),
     MalformedReason.BAD_ADDRESS_FAMILY, "bad_address_family: source/destination family"),
    ("rfc5798_5_1_fixed_header_is_8_bytes",
     _from_group(GOOD_V3[:7]), MalformedReason.TRUNCATED, "truncated: 7 bytes, header is 8"),
    ("rfc5798_5_1_fixed_header_via_ipv4",
     lambda: decode_ipv4(ipv4_packet(GOOD_V3[:5])), MalformedReason.TRUNCATED,
     "truncated: 5 bytes, header is 8"),
    ("rfc3768_vrrpv2_is_ipv4_only",
     _over_ipv6(v2_message()), MalformedReason.BAD_ADDRESS_FAMILY,
     "bad_address_family: VRRPv2 over IPv6"),
    ("rfc5798_5_2_1_version_4_is_unknown",
     _from_group(v3_message(vers_type=0x41)), MalformedReason.BAD_VERSION,
     "bad_version: version 4"),
    ("rfc5798_5_2_1_version_1_is_unknown",
     _from_group(v3_message(vers_type=0x11)), MalformedReason.BAD_VERSION,
     "bad_version: version 1"),
    ("rfc5798_5_2_2_type_2_is_not_advertisement",
     _from_group(v3_message(vers_type=0x32)), MalformedReason.BAD_TYPE, "bad_type: type 2"),
    ("rfc5798_5_2_2_type_0_is_not_advertisement",
     _from_group(v3_message(vers_type=0x30)), MalformedReason.BAD_TYPE, "bad_type: type 0"),
    ("rfc3768_5_3_2_v2_type_7_is_not_advertisement",
     _from_group(v2_message(vers_type=0x27)), MalformedReason.BAD_TYPE, "bad_type: type 7"),
    ("rfc5798_5_2_5_count_beyond_message",
     _from_group(v3_message(count=2)), MalformedReason.BAD_ADDR_COUNT,
     "bad_addr_count: count 2 needs 16 bytes, have 12"),
    ("rfc5798_5_2_5_count_below_message",
     _from_group(v3_message(body=VIP4.packed + b"\0")), MalformedReason.BAD_ADDR_COUNT,
     "bad_addr_count: count 1 needs 12 bytes, have 13"),
    ("rfc5798_5_2_5_count_1_with_bare_fixed_header",
     _from_group(v3_message(body=b"")), MalformedReason.BAD_ADDR_COUNT,
     "bad_addr_count: count 1 needs 12 bytes, have 8"),
    ("rfc5798_5_2_5_ipv6_addresses_are_16_bytes",
     _over_ipv6(v3_message(body=VIP4.packed, source=SRC6, destination=VRRP_MULTICAST_IPV6)),
     MalformedReason.BAD_ADDR_COUNT, "bad_addr_count: count 1 needs 24 bytes, have 12"),
    ("rfc3768_5_3_10_v2_auth_data_missing",
     _from_group(v2_message()[:15]), MalformedReason.TRUNCATED,
     "truncated: count 1 needs 20 bytes, have 15"),
    ("rfc3768_5_3_5_v2_count_beyond_message",
     _from_group(v2_message(count=2)), MalformedReason.BAD_ADDR_COUNT,
     "bad_addr_count: count 2 needs 24 bytes, have 20"),
    ("rfc5798_5_2_3_vrid_0",
     _from_group(v3_message(vrid=0)), MalformedReason.BAD_VRID, "bad_vrid: VRID 0"),
    ("rfc3768_5_3_3_v2_vrid_0",
     _from_group(v2_message(vrid=0)), MalformedReason.BAD_VRID, "bad_vrid: VRID 0"),
    ("rfc5798_5_2_8_checksum",
     _from_group(GOOD_V3[:-1] + b"\x65"), MalformedReason.BAD_CHECKSUM,
     "bad_checksum: VRRPv3 checksum"),
    ("rfc5798_5_2_8_ipv6_checksum",
     _over_ipv6(v3_message(source=SRC6, destination=VRRP_MULTICAST_IPV6, body=VIP6.packed)[:-1]
                + b"\x01"),
     MalformedReason.BAD_CHECKSUM, "bad_checksum: VRRPv3 checksum"),
    ("rfc5798_5_2_7_interval_0",
     _from_group(v3_message(word=0)), MalformedReason.BAD_INTERVAL,
     "bad_interval: advert interval 0"),
    ("rfc5798_5_2_7_reserved_bits_do_not_make_an_interval",
     _from_group(v3_message(word=0xF000)), MalformedReason.BAD_INTERVAL,
     "bad_interval: advert interval 0"),
    ("rfc3768_5_3_6_auth_type_2_ah_is_not_supported",
     _from_group(v2_message(auth_type=2)), MalformedReason.BAD_AUTH_TYPE,
     "bad_auth_type: auth type 2"),
    ("rfc3768_5_3_6_auth_type_255",
     _from_group(v2_message(auth_type=255)), MalformedReason.BAD_AUTH_TYPE,
     "bad_auth_type: auth type 255"),
    ("rfc3768_5_3_8_checksum",
     _from_group(v2_message()[:-1] + b"\x01"), MalformedReason.BAD_CHECKSUM,
     "bad_checksum: VRRPv2 checksum"),
    ("rfc3768_5_3_7_v2_interval_0",
     _from_group(v2_message(interval_s=0)), MalformedReason.BAD_INTERVAL,
     "bad_interval: advert interval 0"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("call", "reason", "text"),
    [row[1:] for row in DECODE_REFUSALS],
    ids=[row[0] for row in DECODE_REFUSALS],
)
def test_decode_refuses_with_exact_reason_and_text(
    call: Callable[[], ReceivedAdvert], reason: MalformedReason, text: str
) -> None:
    with pytest.raises(MalformedAdvert) as info:
        call()
    assert info.value.reason is reason
    assert str(info.value) == text
    assert info.value.detail == text.split(": ", 1)[1]


def test_the_builders_make_packets_the_codec_accepts() -> None:
    """The refusal rows differ from these in the one field each row names."""
    v3 = decode_ipv4(ipv4_packet(GOOD_V3))
    assert v3.advert == Advert(VrrpVersion.V3, 51, 100, 100, (VIP4,))
    assert v3.checksum is ChecksumVerdict.VALID
    v2 = decode_payload(v2_message(), SRC4, VRRP_MULTICAST_IPV4, 255)
    assert v2.advert == Advert(VrrpVersion.V2, 51, 100, 100, (VIP4,))
    v6 = decode_ipv6(
        v3_message(source=SRC6, destination=VRRP_MULTICAST_IPV6, body=VIP6.packed),
        SRC6,
        VRRP_MULTICAST_IPV6,
        255,
    )
    assert v6.advert.addresses == (VIP6,)


def test_malformed_advert_text_is_the_reason_alone_without_detail() -> None:
    bare = MalformedAdvert(MalformedReason.BAD_VRID)
    assert str(bare) == "bad_vrid"
    assert bare.detail == ""
    assert bare.reason is MalformedReason.BAD_VRID
    detailed = MalformedAdvert(MalformedReason.BAD_VRID, "VRID 0")
    assert str(detailed) == "bad_vrid: VRID 0"
    assert detailed.detail == "VRID 0"
    assert isinstance(detailed, ValueError)


# --- Boundaries that must decode ------------------------------------------------------------


def test_rfc791_dont_fragment_flag_is_not_a_fragment() -> None:
    received = decode_ipv4(ipv4_packet(GOOD_V3, flags_fragment=0x4000))
    assert received.advert.vrid == 51


def test_rfc791_header_options_are_skipped() -> None:
    options = bytes([1, 1, 1, 0])  # NOP NOP NOP EOL: IHL 6
    received = decode_ipv4(ipv4_packet(GOOD_V3, version_ihl=0x46, options=options))
    assert received.advert.addresses == (VIP4,)


def test_rfc791_link_layer_padding_past_total_length_is_ignored() -> None:
    padded = ipv4_packet(GOOD_V3) + bytes(14)
    assert decode_ipv4(padded).advert.addresses == (VIP4,)


@pytest.mark.parametrize("vrid", [1, 255])
def test_rfc5798_5_2_3_vrid_range_ends_decode(vrid: int) -> None:
    assert decode_payload(v3_message(vrid=vrid), SRC4, VRRP_MULTICAST_IPV4, 255).advert.vrid == vrid


def test_rfc5798_5_2_5_count_0_decodes_with_no_addresses() -> None:
    received = _from_group(v3_message(count=0, body=b""))()
    assert received.advert.addresses == ()


@pytest.mark.parametrize(("word", "interval_cs"), [(1, 1), (0x0FFF, 4095), (0xF064, 100)])
def test_rfc5798_5_2_7_interval_is_the_low_12_bits(word: int, interval_cs: int) -> None:
    assert _from_group(v3_message(word=word))().advert.advert_interval_cs == interval_cs


def test_rfc3768_5_3_7_v2_interval_255_s_decodes() -> None:
    assert _from_group(v2_message(interval_s=255))().advert.advert_interval_cs == 25500


def test_decode_ipv6_passes_verify_checksum_through() -> None:
    bad = v3_message(source=SRC6, destination=VRRP_MULTICAST_IPV6, body=VIP6.packed)[:-1] + b"\1"
    received = decode_ipv6(bad, SRC6, VRRP_MULTICAST_IPV6, 255, verify_checksum=False)
    assert received.checksum is ChecksumVerdict.NOT_VERIFIED
    assert received.advert.addresses == (IPv6Address("2001:db8::101"),)


def test_decode_reports_the_addresses_it_was_given_scope_included() -> None:
    """A link-local peer is only meaningful with its zone (RFC 4007 §11): the decoder
    returns the caller's addresses, not ones rebuilt from the packed bytes."""
    source = IPv6Address("fe80::11%lab0")
    destination = IPv6Address("ff02::12%lab0")
    message = v3_message(source=SRC6, destination=VRRP_MULTICAST_IPV6, body=VIP6.packed)
    received = decode_ipv6(message, source, destination, 255)
    assert received.source.scope_id == "lab0"  # type: ignore[union-attr]
    assert received.destination.scope_id == "lab0"  # type: ignore[union-attr]
    assert (received.source, received.destination) == (source, destination)


def test_decode_ipv4_takes_the_addresses_from_the_ip_header() -> None:
    received = decode_ipv4(ipv4_packet(GOOD_V3))
    assert received.source == SRC4 and type(received.source) is IPv4Address
    assert received.destination == VRRP_MULTICAST_IPV4
    assert type(received.destination) is IPv4Address


def test_decoded_adverts_are_built_through_the_slot_setters() -> None:
    """decode bypasses the frozen ``__setattr__`` through the slot descriptors."""
    advert = Advert(VrrpVersion.V3, 1, 100, 100)
    set_vrid = packet._setter(Advert, "vrid")
    set_vrid(advert, 200)
    assert advert.vrid == 200


# --- Encoder refusals -----------------------------------------------------------------------

V3 = Advert(VrrpVersion.V3, 1, 100, 100)
V2 = Advert(VrrpVersion.V2, 1, 100, 100)

ADVERT_REFUSALS: list[tuple[str, Advert, dict[str, Any], str]] = [
    ("rfc5798_5_2_3_vrid_0", V3, {"vrid": 0}, "vrid 0 outside 1..255"),
    ("rfc5798_5_2_3_vrid_256", V3, {"vrid": 256}, "vrid 256 outside 1..255"),
    ("rfc5798_5_2_4_priority_negative", V3, {"priority": -1}, "priority -1 outside 0..255"),
    ("rfc5798_5_2_4_priority_256", V3, {"priority": 256}, "priority 256 outside 0..255"),
    ("rfc5798_5_2_5_count_is_8_bits", V3,
     {"addresses": tuple(IPv4Address(n) for n in range(256))}, "256 addresses, at most 255"),
    ("rfc5798_5_2_9_one_address_family", V3,
     {"addresses": (VIP4, VIP6)}, "addresses must all be IPv4Address or all IPv6Address"),
    ("rfc5798_5_2_9_addresses_are_ip_addresses", V3,
     {"addresses": ("192.0.2.1",)}, "addresses must all be IPv4Address or all IPv6Address"),
    ("rfc5798_5_2_7_interval_0", V3, {"advert_interval_cs": 0},
     "v3 advert interval 0 cs outside 1..4095"),
    ("rfc5798_5_2_7_interval_is_12_bits", V3, {"advert_interval_cs": 4096},
     "v3 advert interval 4096 cs outside 1..4095"),
    ("rfc5798_9_no_auth_type", V3, {"auth_type": AuthType.SIMPLE_TEXT},
     "VRRPv3 has no authentication (RFC 5798 §9)"),
    ("rfc5798_9_no_auth_data", V3, {"auth_data": b"x"},
     "VRRPv3 has no authentication (RFC 5798 §9)"),
    ("rfc3768_5_3_7_whole_seconds", V2, {"advert_interval_cs": 150},
     "v2 advert interval 150 cs is not 1..255 whole seconds"),
    ("rfc3768_5_3_7_interval_0", V2, {"advert_interval_cs": 0},
     "v2 advert interval 0 cs is not 1..255 whole seconds"),
    ("rfc3768_5_3_7_interval_is_8_bits", V2, {"advert_interval_cs": 25600},
     "v2 advert interval 25600 cs is not 1..255 whole seconds"),
    ("rfc3768_ipv4_only", V2, {"addresses": (VIP6,)},
     "VRRPv2 carries IPv4 addresses only (RFC 3768)"),
    ("rfc3768_5_3_10_auth_data_is_8_bytes", V2, {"auth_data": b"123456789"},
     "v2 auth data longer than 8 bytes"),
    ("version_is_a_vrrp_version", V3, {"version": cast(VrrpVersion, 4)},
     "unknown VRRP version 4"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("base", "changes", "text"),
    [row[1:] for row in ADVERT_REFUSALS],
    ids=[row[0] for row in ADVERT_REFUSALS],
)
def test_advert_refuses_unencodable_values_with_exact_text(
    base: Advert, changes: dict[str, Any], text: str
) -> None:
    with pytest.raises(ValueError) as info:
        replace(base, **changes)
    assert type(info.value) is ValueError
    assert str(info.value) == text


@pytest.mark.parametrize(
    ("base", "changes"),
    [
        (V3, {"vrid": 1}),
        (V3, {"vrid": 255}),
        (V3, {"priority": 0}),
        (V3, {"priority": 255}),
        (V3, {"addresses": tuple(IPv4Address(n) for n in range(255))}),
        (V3, {"advert_interval_cs": 1}),
        (V3, {"advert_interval_cs": 4095}),
        (V2, {"advert_interval_cs": 100}),
        (V2, {"advert_interval_cs": 25500}),
        (V2, {"auth_data": b"12345678"}),
    ],
    ids=[
        "rfc5798_5_2_3_vrid_1",
        "rfc5798_5_2_3_vrid_255",
        "rfc5798_5_2_4_priority_0",
        "rfc5798_5_2_4_priority_255",
        "rfc5798_5_2_5_255_addresses",
        "rfc5798_5_2_7_interval_1_cs",
        "rfc5798_5_2_7_interval_4095_cs",
        "rfc3768_5_3_7_interval_1_s",
        "rfc3768_5_3_7_interval_255_s",
        "rfc3768_5_3_10_8_byte_password",
    ],
)
def test_advert_range_ends_are_encodable(base: Advert, changes: dict[str, Any]) -> None:
    advert = replace(base, **changes)
    source, destination = SRC4, VRRP_MULTICAST_IPV4
    decoded = decode_payload(encode_advert(advert, source, destination), source, destination, 1)
    assert decoded.advert == advert


ENCODE_REFUSALS: list[tuple[str, IPv4Address | IPv6Address | None,
                            IPv4Address | IPv6Address | None, Advert, str]] = [
    ("rfc5798_5_2_8_pseudo_header_needs_both", None, None, V3,
     "a VRRPv3 checksum needs the source and destination addresses"),
    ("rfc5798_5_2_8_pseudo_header_needs_destination", SRC4, None, V3,
     "a VRRPv3 checksum needs the source and destination addresses"),
    ("rfc5798_5_2_8_pseudo_header_needs_source", None, VRRP_MULTICAST_IPV4, V3,
     "a VRRPv3 checksum needs the source and destination addresses"),
    ("rfc5798_5_2_8_source_destination_one_family", SRC4, VRRP_MULTICAST_IPV6, V3,
     "source, destination and advertised addresses differ in family"),
    ("rfc5798_5_2_9_addresses_of_the_sender_family", SRC6, VRRP_MULTICAST_IPV6,
     replace(V3, addresses=(VIP4,)),
     "source, destination and advertised addresses differ in family"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("source", "destination", "advert", "text"),
    [row[1:] for row in ENCODE_REFUSALS],
    ids=[row[0] for row in ENCODE_REFUSALS],
)
def test_encode_refuses_with_exact_text(
    source: IPv4Address | IPv6Address | None,
    destination: IPv4Address | IPv6Address | None,
    advert: Advert,
    text: str,
) -> None:
    with pytest.raises(ValueError) as info:
        encode_advert(advert, source, destination)
    assert type(info.value) is ValueError
    assert str(info.value) == text


def test_encode_ipv4_packet_defaults_identification_0_and_the_rfc_checksum() -> None:
    """keepalived's defaults: IP identification 0, the RFC 5798 §5.2.8 unicast checksum
    (the peer in the pseudo-header, not the group)."""
    advert = Advert(VrrpVersion.V3, 51, 100, 100, (VIP4,))
    raw = encode_ipv4_packet(advert, SRC4, PEER4)
    assert raw[4:6] == b"\0\0"
    assert raw == encode_ipv4_packet(
        advert, SRC4, PEER4, identification=0, old_unicast_checksum=False
    )
    assert raw[20:] == v3_message(destination=PEER4)
    assert decode_ipv4(raw).checksum is ChecksumVerdict.VALID
