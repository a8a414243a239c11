"""VRRP codec against keepalived's golden adverts, with scapy as an independent oracle."""

from __future__ import annotations

import json
from dataclasses import replace
from ipaddress import IPv4Address, IPv6Address, ip_address
from pathlib import Path
from typing import Any

import pytest
from scapy.layers.inet import IP
from scapy.layers.inet6 import IPv6
from scapy.layers.vrrp import VRRP, VRRPv3

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

DATA = Path(__file__).resolve().parents[1] / "data" / "vrrp"

V4_VIPS = tuple(IPv4Address(f"192.0.2.{n}") for n in (100, 101, 102))
V6_VIPS = tuple(IPv6Address(f"2001:db8::{n}") for n in (100, 101, 102))
SECRET = b"secret\0\0"
ZERO8 = bytes(8)

# Expected contents, written from each capture's keepalived.conf (not from our decoder):
# (version, interval cs, addresses, auth type, auth data, checksum verdict).
# Every capture is 3+ adverts at priority 100, then the priority-0 advert sent on SIGTERM.
EXPECTED: dict[str, tuple[int, int, tuple[Any, ...], AuthType, bytes, ChecksumVerdict]] = {
    "v3_ipv4_multicast_1s_1vip": (3, 100, V4_VIPS[:1], AuthType.NONE, b"", ChecksumVerdict.VALID),
    "v3_ipv4_multicast_100ms_1vip": (
        3, 10, V4_VIPS[:1], AuthType.NONE, b"", ChecksumVerdict.VALID
    ),
    "v3_ipv4_multicast_1s_3vip": (3, 100, V4_VIPS, AuthType.NONE, b"", ChecksumVerdict.VALID),
    "v2_ipv4_multicast_1s_1vip_noauth": (
        2, 100, V4_VIPS[:1], AuthType.NONE, ZERO8, ChecksumVerdict.VALID
    ),
    "v2_ipv4_multicast_1s_1vip_pass": (
        2, 100, V4_VIPS[:1], AuthType.SIMPLE_TEXT, SECRET, ChecksumVerdict.VALID
    ),
    "v2_ipv4_multicast_1s_3vip_pass": (
        2, 100, V4_VIPS, AuthType.SIMPLE_TEXT, SECRET, ChecksumVerdict.VALID
    ),
    "v3_ipv4_unicast_1s_1vip": (3, 100, V4_VIPS[:1], AuthType.NONE, b"", ChecksumVerdict.VALID),
    "v3_ipv4_unicast_1s_1vip_old_checksum": (
        3, 100, V4_VIPS[:1], AuthType.NONE, b"", ChecksumVerdict.VALID_OLD_UNICAST
    ),
    "v3_ipv6_multicast_1s_1vip": (3, 100, V6_VIPS[:1], AuthType.NONE, b"", ChecksumVerdict.VALID),
    "v3_ipv6_multicast_1s_3vip": (3, 100, V6_VIPS, AuthType.NONE, b"", ChecksumVerdict.VALID),
    "v3_ipv6_unicast_1s_1vip": (3, 100, V6_VIPS[:1], AuthType.NONE, b"", ChecksumVerdict.VALID),
}  # fmt: skip

# (source, destination, hop limit) keepalived used. Note IPv6 unicast: hop limit 64.
ENDPOINTS: dict[str, tuple[str, str, int]] = {
    "multicast4": ("192.0.2.11", "224.0.0.18", 255),
    "unicast4": ("192.0.2.11", "192.0.2.12", 255),
    "multicast6": ("fe80::11", "ff02::12", 255),
    "unicast6": ("2001:db8::11", "2001:db8::12", 64),
}


def _endpoints(name: str) -> tuple[str, str, int]:
    family = "6" if "ipv6" in name else "4"
    kind = "unicast" if "unicast" in name else "multicast"
    return ENDPOINTS[kind + family]


def load_golden() -> list[tuple[str, dict[str, Any]]]:
    out = []
    for path in sorted(DATA.glob("*.json")):
        doc = json.loads(path.read_text())
        for index, packet in enumerate(doc["packets"]):
            out.append((f"{doc['name']}#{index}", packet))
    return out


GOLDEN = load_golden()
GOLDEN_IDS = [name for name, _ in GOLDEN]


def decode_golden(packet: dict[str, Any]) -> ReceivedAdvert:
    if packet["family"] == 4:
        return decode_ipv4(bytes.fromhex(packet["ip_packet_hex"]))
    source, destination = ip_address(packet["source"]), ip_address(packet["destination"])
    assert isinstance(source, IPv6Address) and isinstance(destination, IPv6Address)
    return decode_ipv6(bytes.fromhex(packet["vrrp_hex"]), source, destination, packet["hop_limit"])


def test_every_scenario_was_captured() -> None:
    captured = {name.split("#")[0] for name in GOLDEN_IDS}
    assert captured == set(EXPECTED)


def test_reference_packet_from_the_measurement_report() -> None:
    raw = bytes.fromhex("45c0002000040000ff70188cc000020be00000123133640100640568c0000264")
    received = decode_ipv4(raw)
    assert received == ReceivedAdvert(
        Advert(VrrpVersion.V3, 51, 100, 100, (IPv4Address("192.0.2.100"),)),
        IPv4Address("192.0.2.11"),
        VRRP_MULTICAST_IPV4,
        255,
        ChecksumVerdict.VALID,
    )
    assert encode_ipv4_packet(received.advert, received.source, VRRP_MULTICAST_IPV4,
                              identification=4) == raw  # fmt: skip


@pytest.mark.parametrize(("name", "packet"), GOLDEN, ids=GOLDEN_IDS)
def test_golden_decodes_exactly(name: str, packet: dict[str, Any]) -> None:
    scenario, index = name.split("#")
    version, interval_cs, addresses, auth_type, auth_data, verdict = EXPECTED[scenario]
    source, destination, hop_limit = _endpoints(scenario)
    received = decode_golden(packet)
    is_last = int(index) == len(json.loads((DATA / f"{scenario}.json").read_text())["packets"]) - 1
    assert received == ReceivedAdvert(
        Advert(
            version=VrrpVersion(version),
            vrid=51,
            priority=0 if is_last else 100,  # SIGTERM: keepalived's priority-0 advert
            advert_interval_cs=interval_cs,
            addresses=addresses,
            auth_type=auth_type,
            auth_data=auth_data,
        ),
        ip_address(source),
        ip_address(destination),
        hop_limit,
        verdict,
    )


@pytest.mark.parametrize(("name", "packet"), GOLDEN, ids=GOLDEN_IDS)
def test_golden_reencodes_to_identical_bytes(name: str, packet: dict[str, Any]) -> None:
    received = decode_golden(packet)
    old = received.checksum is ChecksumVerdict.VALID_OLD_UNICAST
    payload = encode_advert(
        received.advert, received.source, received.destination, old_unicast_checksum=old
    )
    assert payload.hex() == packet["vrrp_hex"]
    if packet["family"] == 4:
        raw = bytes.fromhex(packet["ip_packet_hex"])
        assert isinstance(received.source, IPv4Address)
        assert isinstance(received.destination, IPv4Address)
        rebuilt = encode_ipv4_packet(
            received.advert,
            received.source,
            received.destination,
            identification=int.from_bytes(raw[4:6], "big"),
            old_unicast_checksum=old,
        )
        assert rebuilt == raw


@pytest.mark.parametrize(("name", "packet"), GOLDEN, ids=GOLDEN_IDS)
def test_golden_agrees_with_scapy(name: str, packet: dict[str, Any]) -> None:

    received = decode_golden(packet)
    advert = received.advert
    if packet["family"] == 4:
        ip = IP(bytes.fromhex(packet["ip_packet_hex"]))
        assert ip.ttl == received.hop_limit
        layer = ip[VRRP] if advert.version is VrrpVersion.V2 else ip[VRRPv3]
    else:
        payload = bytes.fromhex(packet["vrrp_hex"])
        header = IPv6(
            src=packet["source"], dst=packet["destination"], hlim=packet["hop_limit"],
            nh=112, plen=len(payload),
        )  # fmt: skip
        ip6 = IPv6(bytes(header) + payload)
        layer = ip6[VRRPv3]
    assert layer.version == advert.version
    assert layer.vrid == advert.vrid
    assert layer.priority == advert.priority
    assert layer.ipcount == len(advert.addresses)
    assert [ip_address(a) for a in layer.addrlist] == list(advert.addresses)
    if advert.version is VrrpVersion.V2:
        assert layer.adv * 100 == advert.advert_interval_cs
        assert layer.authtype == advert.auth_type
        assert layer.auth1.to_bytes(4, "big") + layer.auth2.to_bytes(4, "big") == advert.auth_data
    else:
        assert layer.adv == advert.advert_interval_cs
    # scapy recomputes the RFC checksum (pseudo-header dst = the real destination)
    original = layer.chksum
    layer.chksum = None
    rebuilt = bytes(layer if packet["family"] == 6 or advert.version is VrrpVersion.V2 else ip)
    if packet["family"] == 6:
        rebuilt = bytes(ip6)[40:]
    elif advert.version is VrrpVersion.V3:
        rebuilt = rebuilt[ip.ihl * 4 :]
    rfc = encode_advert(advert, received.source, received.destination)
    assert rebuilt == rfc
    if received.checksum is ChecksumVerdict.VALID:
        assert original == int.from_bytes(rfc[6:8], "big")
    else:
        assert original != int.from_bytes(rfc[6:8], "big")


def test_scapy_builds_what_we_build() -> None:

    src4, src6 = IPv4Address("192.0.2.11"), IPv6Address("fe80::11")
    v3 = Advert(VrrpVersion.V3, 7, 200, 4095, V4_VIPS)
    ours = encode_advert(v3, src4, VRRP_MULTICAST_IPV4)
    theirs = bytes(
        IP(src=str(src4), dst="224.0.0.18", ttl=255)
        / VRRPv3(vrid=7, priority=200, adv=4095, addrlist=[str(a) for a in V4_VIPS])
    )[20:]
    assert ours == theirs
    v3_6 = Advert(VrrpVersion.V3, 9, 1, 1, V6_VIPS[:2])
    ours6 = encode_advert(v3_6, src6, VRRP_MULTICAST_IPV6)
    theirs6 = bytes(
        IPv6(src=str(src6), dst="ff02::12", hlim=255)
        / VRRPv3(vrid=9, priority=1, adv=1, addrlist=[str(a) for a in V6_VIPS[:2]])
    )[40:]
    assert ours6 == theirs6
    v2 = Advert(VrrpVersion.V2, 1, 255, 25500, V4_VIPS[:2], AuthType.SIMPLE_TEXT, b"pw")
    theirs2 = bytes(
        VRRP(vrid=1, priority=255, adv=255, authtype=1, addrlist=[str(a) for a in V4_VIPS[:2]],
             auth1=int.from_bytes(b"pw\0\0", "big"), auth2=0)
    )  # fmt: skip
    assert encode_advert(v2) == theirs2


# --- malformed input ------------------------------------------------------------------

GOOD_V4 = bytes.fromhex("45c0002000040000ff70188cc000020be00000123133640100640568c0000264")
SRC4 = IPv4Address("192.0.2.11")


def _fix_v3(message: bytes) -> bytes:
    """Recompute the v3 checksum of a (mutated) 1-address IPv4 message to 224.0.0.18."""
    zeroed = message[:6] + b"\0\0" + message[8:]
    pseudo = SRC4.packed + VRRP_MULTICAST_IPV4.packed + bytes([0, 112]) + len(zeroed).to_bytes(2)
    return zeroed[:6] + internet_checksum(pseudo + zeroed).to_bytes(2, "big") + zeroed[8:]


def _reason(call: Any) -> MalformedReason:
    with pytest.raises(MalformedAdvert) as info:
        call()
    return info.value.reason


@pytest.mark.parametrize(
    ("packet", "reason"),
    [
        (b"", MalformedReason.TRUNCATED),
        (GOOD_V4[:19], MalformedReason.TRUNCATED),
        (GOOD_V4[:-1], MalformedReason.TRUNCATED),  # total length says 32
        (b"\x65" + GOOD_V4[1:], MalformedReason.BAD_IP_HEADER),  # IP version 6
        (b"\x44" + GOOD_V4[1:], MalformedReason.BAD_IP_HEADER),  # IHL 4 words
        (GOOD_V4[:9] + b"\x11" + GOOD_V4[10:], MalformedReason.BAD_IP_HEADER),  # UDP
        (GOOD_V4[:6] + b"\x20\x00" + GOOD_V4[8:], MalformedReason.BAD_IP_HEADER),  # MF
        (GOOD_V4[:10] + b"\x00\x00" + GOOD_V4[12:], MalformedReason.BAD_IP_HEADER),  # csum
        (GOOD_V4[:2] + b"\x00\x10" + GOOD_V4[4:], MalformedReason.BAD_LENGTH),
        (GOOD_V4[:-1] + b"\x65", MalformedReason.BAD_CHECKSUM),
    ],
)
def test_malformed_ipv4(packet: bytes, reason: MalformedReason) -> None:
    assert _reason(lambda: decode_ipv4(packet)) is reason


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        (bytes.fromhex("31336401006405"), MalformedReason.TRUNCATED),
        (_fix_v3(bytes.fromhex("4133640100640000c0000264")), MalformedReason.BAD_VERSION),
        (_fix_v3(bytes.fromhex("3233640100640000c0000264")), MalformedReason.BAD_TYPE),
        (_fix_v3(bytes.fromhex("3100640100640000c0000264")), MalformedReason.BAD_VRID),
        (_fix_v3(bytes.fromhex("3133640100000000c0000264")), MalformedReason.BAD_INTERVAL),
        (_fix_v3(bytes.fromhex("3133640200640000c0000264")), MalformedReason.BAD_ADDR_COUNT),
        (_fix_v3(bytes.fromhex("3133640100640000c000026400")), MalformedReason.BAD_ADDR_COUNT),
        (bytes.fromhex("3133640100640569c0000264"), MalformedReason.BAD_CHECKSUM),
    ],
)
def test_malformed_v3_message(message: bytes, reason: MalformedReason) -> None:
    assert _reason(lambda: decode_payload(message, SRC4, VRRP_MULTICAST_IPV4, 255)) is reason


def test_malformed_v2_message() -> None:
    good = encode_advert(Advert(VrrpVersion.V2, 51, 100, 100, V4_VIPS[:1]))
    decode_payload(good, SRC4, VRRP_MULTICAST_IPV4, 255)
    bad_auth = good[:4] + b"\x02" + good[5:]
    assert _reason(lambda: decode_payload(bad_auth, SRC4, VRRP_MULTICAST_IPV4, 255)) is (
        MalformedReason.BAD_AUTH_TYPE
    )
    bad_sum = good[:-1] + b"\x01"
    assert _reason(lambda: decode_payload(bad_sum, SRC4, VRRP_MULTICAST_IPV4, 255)) is (
        MalformedReason.BAD_CHECKSUM
    )
    assert _reason(lambda: decode_payload(good[:15], SRC4, VRRP_MULTICAST_IPV4, 255)) is (
        MalformedReason.TRUNCATED
    )
    src6 = IPv6Address("fe80::1")
    assert _reason(lambda: decode_payload(good, src6, VRRP_MULTICAST_IPV6, 255)) is (
        MalformedReason.BAD_ADDRESS_FAMILY
    )
    assert _reason(lambda: decode_payload(good, SRC4, VRRP_MULTICAST_IPV6, 255)) is (
        MalformedReason.BAD_ADDRESS_FAMILY
    )


def test_unverified_decode_reports_it() -> None:
    bad = GOOD_V4[:-1] + b"\x65"
    received = decode_ipv4(bad, verify_checksum=False)
    assert received.checksum is ChecksumVerdict.NOT_VERIFIED
    assert received.advert.addresses == (IPv4Address("192.0.2.101"),)


def test_old_unicast_checksum_is_told_apart() -> None:
    advert = Advert(VrrpVersion.V3, 51, 100, 100, V4_VIPS[:1])
    peer = IPv4Address("192.0.2.12")
    rfc = encode_advert(advert, SRC4, peer)
    old = encode_advert(advert, SRC4, peer, old_unicast_checksum=True)
    assert rfc != old
    assert old == encode_advert(advert, SRC4, VRRP_MULTICAST_IPV4)
    assert decode_payload(rfc, SRC4, peer, 255).checksum is ChecksumVerdict.VALID
    assert decode_payload(old, SRC4, peer, 255).checksum is ChecksumVerdict.VALID_OLD_UNICAST
    # to the group itself the two are the same checksum: it is plainly VALID
    assert decode_payload(old, SRC4, VRRP_MULTICAST_IPV4, 255).checksum is ChecksumVerdict.VALID


@pytest.mark.parametrize(
    "kwargs",
    [
        {"vrid": 0},
        {"vrid": 256},
        {"priority": -1},
        {"priority": 256},
        {"advert_interval_cs": 0},
        {"advert_interval_cs": 4096},
        {"auth_type": AuthType.SIMPLE_TEXT},
        {"auth_data": b"x"},
        {"addresses": (IPv4Address("192.0.2.1"), IPv6Address("2001:db8::1"))},
        {"addresses": tuple(IPv4Address(n) for n in range(256))},
    ],
)
def test_advert_rejects_unencodable_values(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        replace(Advert(VrrpVersion.V3, 1, 100, 100), **kwargs)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"advert_interval_cs": 150},
        {"advert_interval_cs": 25600},
        {"addresses": (IPv6Address("2001:db8::1"),)},
        {"auth_data": b"123456789"},
    ],
)
def test_v2_advert_rejects_unencodable_values(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        replace(Advert(VrrpVersion.V2, 1, 100, 100), **kwargs)


def test_v2_password_is_zero_padded() -> None:
    advert = Advert(VrrpVersion.V2, 1, 100, 100, (), AuthType.SIMPLE_TEXT, b"secret")
    assert advert.auth_data == SECRET


def test_v3_encode_needs_addresses_of_one_family() -> None:
    advert = Advert(VrrpVersion.V3, 1, 100, 100, V4_VIPS[:1])
    with pytest.raises(ValueError):
        encode_advert(advert)
    with pytest.raises(ValueError):
        encode_advert(advert, IPv6Address("fe80::1"), VRRP_MULTICAST_IPV6)


def test_internet_checksum_known_values() -> None:
    # RFC 1071 §3 example words 0001 f203 f4f5 f6f7 -> sum ddf2 -> checksum 220d
    assert internet_checksum(bytes.fromhex("0001f203f4f5f6f7")) == 0x220D
    assert internet_checksum(b"\xff\xff") == 0
    assert internet_checksum(bytes(4)) == 0xFFFF
    assert internet_checksum(b"\x01") == 0xFEFF
