"""Corrupted adverts are refused, not decoded: every single-bit error in every golden
vector (adverts keepalived really sent) is caught by the IPv4 header checksum or the VRRP
checksum (RFC 5798 5.2.8, RFC 3768 5.3.8), unicast ones included.

The decode fuzz tests elsewhere only show that nothing but MalformedAdvert escapes; these
show that a corrupted advert never reaches the state machine as a valid one. In
particular the old-unicast-checksum fallback (keepalived before 1.3.6) must accept only
an advert whose checksum verifies against the multicast group, not any unicast advert.
"""

from __future__ import annotations

import json
from ipaddress import IPv4Address, IPv6Address, ip_address
from pathlib import Path

import pytest

from reconciler.vrrp.packet import (
    VRRP_MULTICAST_IPV4,
    Advert,
    ChecksumVerdict,
    MalformedAdvert,
    MalformedReason,
    VrrpVersion,
    decode_ipv4,
    decode_ipv6,
    encode_advert,
)

DATA = Path(__file__).resolve().parents[1] / "data" / "vrrp"
VECTORS = sorted(DATA.glob("*.json"))


def _packets(path: Path) -> list[dict[str, object]]:
    packets: list[dict[str, object]] = json.loads(path.read_text())["packets"]
    return packets[:2]


def _decode(packet: dict[str, object], data: bytes) -> object:
    if packet["family"] == 4:
        return decode_ipv4(data)
    return decode_ipv6(
        data,
        IPv6Address(str(packet["source"])),
        IPv6Address(str(packet["destination"])),
        int(str(packet["hop_limit"])),
    )


def _wire(packet: dict[str, object]) -> bytes:
    key = "ip_packet_hex" if packet["family"] == 4 else "vrrp_hex"
    return bytes.fromhex(str(packet[key]))


@pytest.mark.parametrize("path", VECTORS, ids=lambda p: p.stem)
def test_every_single_bit_error_in_a_golden_vector_is_refused(path: Path) -> None:
    for packet in _packets(path):
        good = _wire(packet)
        _decode(packet, good)  # the vector itself decodes
        for bit in range(len(good) * 8):
            bad = bytearray(good)
            bad[bit // 8] ^= 0x80 >> (bit % 8)
            with pytest.raises(MalformedAdvert):
                _decode(packet, bytes(bad))
                pytest.fail(f"bit {bit} flipped in {path.stem} decoded as a valid advert")


def _unicast_v4(*, old: bool) -> tuple[bytes, IPv4Address, IPv4Address]:
    src, dst = IPv4Address("192.0.2.11"), IPv4Address("192.0.2.12")
    advert = Advert(VrrpVersion.V3, 51, 100, 100, (IPv4Address("192.0.2.100"),))
    return encode_advert(advert, src, dst, old_unicast_checksum=old), src, dst


def _ipv4_packet(payload: bytes, src: IPv4Address, dst: IPv4Address) -> bytes:
    import struct  # noqa: PLC0415

    header = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0xC0, 20 + len(payload), 0, 0, 255, 112, 0, src.packed, dst.packed
    )
    total = sum(struct.unpack("!10H", header))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    checksum = (~total) & 0xFFFF
    return header[:10] + struct.pack("!H", checksum) + header[12:] + payload


def test_a_unicast_v3_advert_with_a_wrong_checksum_is_refused_in_auto_mode() -> None:
    """Auto mode accepts the RFC checksum and keepalived's old one, nothing else."""
    payload, src, dst = _unicast_v4(old=False)
    assert decode_ipv4(_ipv4_packet(payload, src, dst)).checksum is ChecksumVerdict.VALID
    old, _, _ = _unicast_v4(old=True)
    assert decode_ipv4(_ipv4_packet(old, src, dst)).checksum is ChecksumVerdict.VALID_OLD_UNICAST
    for wrong in (0x0000, 0x1234, int.from_bytes(payload[6:8], "big") ^ 1):
        bad = payload[:6] + wrong.to_bytes(2, "big") + payload[8:]
        with pytest.raises(MalformedAdvert) as caught:
            decode_ipv4(_ipv4_packet(bad, src, dst))
        assert caught.value.reason is MalformedReason.BAD_CHECKSUM


def test_the_old_checksum_is_not_accepted_for_a_multicast_advert() -> None:
    """Old-style means 'summed as if sent to the group': for an advert that was sent to the
    group that is the RFC checksum, so a different one is simply wrong."""
    src = IPv4Address("192.0.2.11")
    advert = Advert(VrrpVersion.V3, 51, 100, 100, (IPv4Address("192.0.2.100"),))
    payload = encode_advert(advert, src, VRRP_MULTICAST_IPV4)
    ok = decode_ipv4(_ipv4_packet(payload, src, VRRP_MULTICAST_IPV4))
    assert ok.checksum is ChecksumVerdict.VALID
    bad = payload[:6] + bytes([payload[6] ^ 0x10, payload[7]]) + payload[8:]
    with pytest.raises(MalformedAdvert):
        decode_ipv4(_ipv4_packet(bad, src, VRRP_MULTICAST_IPV4))


def test_a_unicast_v3_ipv6_advert_with_a_wrong_checksum_is_refused() -> None:
    src, dst = ip_address("2001:db8::11"), ip_address("2001:db8::12")
    assert isinstance(src, IPv6Address) and isinstance(dst, IPv6Address)
    advert = Advert(VrrpVersion.V3, 51, 100, 100, (IPv6Address("2001:db8::100"),))
    payload = encode_advert(advert, src, dst)
    assert decode_ipv6(payload, src, dst, 255).checksum is ChecksumVerdict.VALID
    old = encode_advert(advert, src, dst, old_unicast_checksum=True)
    assert decode_ipv6(old, src, dst, 255).checksum is ChecksumVerdict.VALID_OLD_UNICAST
    bad = payload[:6] + bytes([payload[6] ^ 0x01, payload[7]]) + payload[8:]
    with pytest.raises(MalformedAdvert):
        decode_ipv6(bad, src, dst, 255)
