"""Property tests for the VRRP codec: round trips, and only MalformedAdvert ever escapes."""

from __future__ import annotations

import contextlib
import json
from ipaddress import IPv4Address, IPv6Address, ip_address
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.utils import checksum as scapy_checksum

from reconciler.vrrp.packet import (
    VRRP_MULTICAST_IPV4,
    VRRP_MULTICAST_IPV6,
    Advert,
    AuthType,
    ChecksumVerdict,
    MalformedAdvert,
    VrrpVersion,
    decode_ipv4,
    decode_ipv6,
    decode_payload,
    encode_advert,
    encode_ipv4_packet,
    internet_checksum,
)

DATA = Path(__file__).resolve().parents[1] / "data" / "vrrp"

ipv4s = st.integers(0, 2**32 - 1).map(IPv4Address)
ipv6s = st.integers(0, 2**128 - 1).map(IPv6Address)
vrids = st.integers(1, 255)
priorities = st.integers(0, 255)


@st.composite
def v3_ipv4(draw: st.DrawFn) -> tuple[Advert, IPv4Address, IPv4Address]:
    advert = Advert(
        VrrpVersion.V3,
        draw(vrids),
        draw(priorities),
        draw(st.integers(1, 4095)),
        tuple(draw(st.lists(ipv4s, max_size=20))),
    )
    return advert, draw(ipv4s), draw(st.one_of(st.just(VRRP_MULTICAST_IPV4), ipv4s))


@st.composite
def v3_ipv6(draw: st.DrawFn) -> tuple[Advert, IPv6Address, IPv6Address]:
    advert = Advert(
        VrrpVersion.V3,
        draw(vrids),
        draw(priorities),
        draw(st.integers(1, 4095)),
        tuple(draw(st.lists(ipv6s, max_size=20))),
    )
    return advert, draw(ipv6s), draw(st.one_of(st.just(VRRP_MULTICAST_IPV6), ipv6s))


@st.composite
def v2_adverts(draw: st.DrawFn) -> Advert:
    auth = draw(st.sampled_from(AuthType))
    return Advert(
        VrrpVersion.V2,
        draw(vrids),
        draw(priorities),
        100 * draw(st.integers(1, 255)),
        tuple(draw(st.lists(ipv4s, max_size=20))),
        auth,
        draw(st.binary(max_size=8)),
    )


@given(v3_ipv4(), st.integers(0, 255), st.booleans())
def test_v3_ipv4_round_trip(
    case: tuple[Advert, IPv4Address, IPv4Address], ttl: int, old: bool
) -> None:
    advert, source, destination = case
    packet = encode_ipv4_packet(advert, source, destination, ttl=ttl, old_unicast_checksum=old)
    received = decode_ipv4(packet)
    assert received.advert == advert
    assert (received.source, received.destination, received.hop_limit) == (
        source,
        destination,
        ttl,
    )
    if old and destination != VRRP_MULTICAST_IPV4:
        assert received.checksum is ChecksumVerdict.VALID_OLD_UNICAST
    else:
        assert received.checksum is ChecksumVerdict.VALID


@given(v3_ipv6(), st.integers(0, 255), st.booleans())
def test_v3_ipv6_round_trip(
    case: tuple[Advert, IPv6Address, IPv6Address], hop_limit: int, old: bool
) -> None:
    advert, source, destination = case
    payload = encode_advert(advert, source, destination, old_unicast_checksum=old)
    received = decode_ipv6(payload, source, destination, hop_limit)
    assert received.advert == advert
    assert received.hop_limit == hop_limit
    expected = (
        ChecksumVerdict.VALID_OLD_UNICAST
        if old and destination != VRRP_MULTICAST_IPV6
        else ChecksumVerdict.VALID
    )
    assert received.checksum is expected


@given(v2_adverts(), ipv4s)
def test_v2_round_trip(advert: Advert, source: IPv4Address) -> None:
    packet = encode_ipv4_packet(advert, source, VRRP_MULTICAST_IPV4)
    received = decode_ipv4(packet)
    assert received.advert == advert
    assert received.checksum is ChecksumVerdict.VALID
    assert decode_payload(encode_advert(advert), source, VRRP_MULTICAST_IPV4, 255) == received


@given(st.binary(max_size=200))
def test_decode_ipv4_arbitrary_bytes(data: bytes) -> None:
    with contextlib.suppress(MalformedAdvert):
        decode_ipv4(data)


@given(st.binary(max_size=200), ipv6s, ipv6s, st.integers(0, 255), st.booleans())
def test_decode_ipv6_arbitrary_bytes(
    data: bytes, source: IPv6Address, destination: IPv6Address, hop: int, verify: bool
) -> None:
    with contextlib.suppress(MalformedAdvert):
        decode_ipv6(data, source, destination, hop, verify_checksum=verify)


@given(st.binary(max_size=200), ipv4s, ipv4s)
def test_decode_payload_arbitrary_bytes_unverified(
    data: bytes, source: IPv4Address, destination: IPv4Address
) -> None:
    with contextlib.suppress(MalformedAdvert):
        decode_payload(data, source, destination, 255, verify_checksum=False)


def _golden() -> list[tuple[int, bytes, str, str, int]]:
    out = []
    for path in sorted(DATA.glob("*.json")):
        for p in json.loads(path.read_text())["packets"]:
            raw = bytes.fromhex(p["ip_packet_hex"] if p["family"] == 4 else p["vrrp_hex"])
            out.append((p["family"], raw, p["source"], p["destination"], p["hop_limit"]))
    return out


GOLDEN = _golden()


@st.composite
def mutated(draw: st.DrawFn) -> tuple[int, bytes, str, str, int]:
    family, raw, source, destination, hop = draw(st.sampled_from(GOLDEN))
    data = bytearray(raw)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "set", "cut", "extend", "insert"]))
        if op in ("flip", "set") and data:
            i = draw(st.integers(0, len(data) - 1))
            data[i] = (
                data[i] ^ (1 << draw(st.integers(0, 7)))
                if op == "flip"
                else draw(st.integers(0, 255))
            )
        elif op == "cut" and data:
            del data[draw(st.integers(0, len(data) - 1)) :]
        elif op == "extend":
            data += draw(st.binary(min_size=1, max_size=40))
        elif op == "insert":
            i = draw(st.integers(0, len(data)))
            data[i:i] = draw(st.binary(min_size=1, max_size=4))
    return family, bytes(data), source, destination, hop


@settings(max_examples=500)
@given(mutated(), st.booleans())
def test_mutated_golden_vectors_raise_only_malformed(
    case: tuple[int, bytes, str, str, int], verify: bool
) -> None:
    family, data, source, destination, hop = case
    with contextlib.suppress(MalformedAdvert):
        if family == 4:
            decode_ipv4(data, verify_checksum=verify)
        else:
            src, dst = ip_address(source), ip_address(destination)
            assert isinstance(src, IPv6Address) and isinstance(dst, IPv6Address)
            decode_ipv6(data, src, dst, hop, verify_checksum=verify)


@given(st.binary(max_size=100))
def test_internet_checksum_matches_scapy(data: bytes) -> None:
    assert internet_checksum(data) == scapy_checksum(data)
