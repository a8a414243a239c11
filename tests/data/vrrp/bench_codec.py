#!/usr/bin/env python3
"""Time the VRRP codec: µs per call, median of 15 batches of 20 000 calls.

Run from the repository root:  python3 tests/data/vrrp/bench_codec.py
"""

from __future__ import annotations

import statistics
import sys
import timeit
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from reconciler.vrrp.packet import (
    VRRP_MULTICAST_IPV4,
    VRRP_MULTICAST_IPV6,
    Advert,
    VrrpVersion,
    decode_ipv4,
    decode_ipv6,
    encode_advert,
    encode_ipv4_packet,
)

# keepalived's VRRPv3 advert (reference capture): 192.0.2.11 -> 224.0.0.18, VIP 192.0.2.100
RAW = bytes.fromhex("45c0002000040000ff70188cc000020be00000123133640100640568c0000264")
SRC4, SRC6 = IPv4Address("192.0.2.11"), IPv6Address("fe80::11")
V3 = decode_ipv4(RAW).advert
V3_10 = Advert(
    VrrpVersion.V3, 51, 100, 100, tuple(IPv4Address(f"192.0.2.{i}") for i in range(100, 110))
)
V2 = Advert(VrrpVersion.V2, 51, 100, 100, V3.addresses)
V6 = Advert(VrrpVersion.V3, 51, 100, 100, (IPv6Address("2001:db8::100"),))
RAW_10 = encode_ipv4_packet(V3_10, SRC4, VRRP_MULTICAST_IPV4)
RAW_V2 = encode_ipv4_packet(V2, SRC4, VRRP_MULTICAST_IPV4)
PAYLOAD_V6 = encode_advert(V6, SRC6, VRRP_MULTICAST_IPV6)

CASES = [
    ("decode_ipv4 v3 1 VIP (IP header csum + VRRP csum)", lambda: decode_ipv4(RAW)),
    (
        "decode_ipv4 v3 1 VIP, verify_checksum=False",
        lambda: decode_ipv4(RAW, verify_checksum=False),
    ),
    ("decode_ipv4 v3 10 VIPs", lambda: decode_ipv4(RAW_10)),
    ("decode_ipv4 v2 1 VIP", lambda: decode_ipv4(RAW_V2)),
    ("decode_ipv6 v3 1 VIP", lambda: decode_ipv6(PAYLOAD_V6, SRC6, VRRP_MULTICAST_IPV6, 255)),
    (
        "encode_advert v3 1 VIP (payload + csum)",
        lambda: encode_advert(V3, SRC4, VRRP_MULTICAST_IPV4),
    ),
    ("encode_advert v3 10 VIPs", lambda: encode_advert(V3_10, SRC4, VRRP_MULTICAST_IPV4)),
    ("encode_advert v2 1 VIP", lambda: encode_advert(V2)),
    ("encode_advert v3 IPv6 1 VIP", lambda: encode_advert(V6, SRC6, VRRP_MULTICAST_IPV6)),
    ("encode_ipv4_packet v3 1 VIP", lambda: encode_ipv4_packet(V3, SRC4, VRRP_MULTICAST_IPV4)),
]


def main() -> None:
    number = 20_000
    for name, call in CASES:
        batches = timeit.repeat(call, number=number, repeat=15)
        print(f"{statistics.median(batches) / number * 1e6:7.2f} µs  {name}")


if __name__ == "__main__":
    main()
