"""The state machine's parameters refuse what RFC 5798 / RFC 3768 cannot carry, at the
exact boundaries, each with a message that says which rule was broken (the config layer
reports located errors first; these guard the machine against anything that slips by)."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address
from typing import Any

import pytest
from helpers import vrrp_params as _params

from reconciler.vrrp.packet import AuthType, VrrpVersion
from reconciler.vrrp.params import InstanceParams
from reconciler.vrrp.timers import master_down_interval, skew_time

V4 = IPv4Address("192.0.2.11")
VIP = IPv4Address("192.0.2.100")


def _refused(message: str, **kw: Any) -> None:
    with pytest.raises(ValueError) as caught:
        _params(**kw)
    assert str(caught.value) == message


@pytest.mark.parametrize("vrid", [1, 255])
def test_vrid_1_to_255_is_accepted(vrid: int) -> None:
    """RFC 5798 5.2.3: the VRID is 1-255."""
    assert _params(vrid=vrid).vrid == vrid


@pytest.mark.parametrize("vrid", [0, 256])
def test_vrid_outside_1_to_255_is_refused(vrid: int) -> None:
    _refused(f"vrid {vrid} outside 1..255", vrid=vrid)


@pytest.mark.parametrize("priority", [1, 254, 255])
def test_priority_1_to_255_is_accepted(priority: int) -> None:
    """RFC 5798 5.2.4: 255 is the address owner; 0 is only ever sent, never configured."""
    assert _params(priority=priority).priority == priority


@pytest.mark.parametrize("priority", [0, 256])
def test_priority_outside_1_to_255_is_refused(priority: int) -> None:
    _refused(f"priority {priority} outside 1..255", priority=priority)


def test_an_empty_name_is_refused() -> None:
    _refused("instance name is empty", name="")


@pytest.mark.parametrize("cs", [1, 4095])
def test_v3_interval_1_to_4095_centiseconds_is_accepted(cs: int) -> None:
    """RFC 5798 5.2.7: a 12-bit count of centiseconds."""
    assert _params(advert_interval_cs=cs).advert_interval_cs == cs


@pytest.mark.parametrize("cs", [0, 4096])
def test_v3_interval_outside_is_refused(cs: int) -> None:
    _refused(f"v3 advert interval {cs} cs out of range", advert_interval_cs=cs)


def test_v3_has_no_authentication() -> None:
    """RFC 5798 removed VRRPv2's authentication."""
    _refused("VRRPv3 has no authentication", auth_type=AuthType.SIMPLE_TEXT, auth_data=b"x")


def _v2(**kw: Any) -> InstanceParams:
    return _params(version=VrrpVersion.V2, **kw)


@pytest.mark.parametrize("cs", [100, 25500])
def test_v2_interval_is_1_to_255_whole_seconds(cs: int) -> None:
    """RFC 3768 5.3.7: an 8-bit count of seconds."""
    assert _v2(advert_interval_cs=cs).advert_interval_cs == cs


@pytest.mark.parametrize("cs", [0, 150, 25600])
def test_v2_interval_otherwise_is_refused(cs: int) -> None:
    with pytest.raises(ValueError) as caught:
        _v2(advert_interval_cs=cs)
    assert str(caught.value) == "v2 advert interval must be 1..255 whole seconds"


def test_v2_is_ipv4_only() -> None:
    """RFC 3768 carries IPv4 addresses only."""
    with pytest.raises(ValueError) as caught:
        _v2(primary_address=IPv6Address("fe80::1"), vips=(IPv6Address("2001:db8::100"),))
    assert str(caught.value) == "VRRPv2 is IPv4 only"


def test_a_v2_password_is_padded_to_8_bytes_and_longer_is_refused() -> None:
    """RFC 2338 5.3.6.1: the simple-text password fills the 8-byte Authentication Data."""
    assert _v2(auth_type=AuthType.SIMPLE_TEXT, auth_data=b"secret").auth_data == b"secret\0\0"
    eight = _v2(auth_type=AuthType.SIMPLE_TEXT, auth_data=b"12345678")
    assert eight.auth_data == b"12345678"
    with pytest.raises(ValueError) as caught:
        _v2(auth_type=AuthType.SIMPLE_TEXT, auth_data=b"123456789")
    assert str(caught.value) == "v2 password longer than 8 bytes"


def test_a_v2_advert_carries_its_authentication() -> None:
    p = _v2(auth_type=AuthType.SIMPLE_TEXT, auth_data=b"secret")
    advert = p.advert(100)
    assert (advert.auth_type, advert.auth_data) == (AuthType.SIMPLE_TEXT, b"secret\0\0")


def test_addresses_of_another_family_are_refused() -> None:
    with pytest.raises(ValueError) as caught:
        _params(unicast_peers=(IPv6Address("2001:db8::12"),))
    assert str(caught.value) == "VIPs, unicast peers and primary address differ in family"


def test_at_most_255_distinct_vips() -> None:
    """RFC 5798 5.2.5: Count IPvX Addr is 8 bits."""
    many = tuple(IPv4Address(int(VIP) + i) for i in range(256))
    assert len(_params(vips=many[:255]).vips) == 255
    for vips in (many, (VIP, VIP)):
        with pytest.raises(ValueError) as caught:
            _params(vips=vips)
        assert str(caught.value) == "VIPs must be distinct and at most 255"


def test_a_negative_preempt_delay_is_refused() -> None:
    assert _params(preempt_delay_s=0.0).preempt_delay_s == 0.0
    _refused("preempt_delay_s is negative", preempt_delay_s=-0.01)


@pytest.fixture(autouse=True)
def _uncached_timers() -> None:
    """The timers are cached: start each test with the caches empty, so that every call
    reaches the argument checks."""
    skew_time.cache_clear()
    master_down_interval.cache_clear()


@pytest.mark.parametrize("priority", [0, 255])
def test_timers_take_priority_0_to_255(priority: int) -> None:
    """RFC 5798 6.1: Skew_Time is computed for any advertised priority, 0 included."""
    assert skew_time(priority, 4093) >= 0
    assert master_down_interval(priority, 4091) > 0


@pytest.mark.parametrize("priority", [-1, 256])
def test_timers_refuse_a_priority_outside_0_to_255(priority: int) -> None:
    with pytest.raises(ValueError) as caught:
        skew_time(priority, 4093)
    assert str(caught.value) == f"priority {priority} outside 0..255"


def test_timers_take_an_interval_of_one_centisecond_and_refuse_zero() -> None:
    assert master_down_interval(77, 1) > 0
    with pytest.raises(ValueError) as caught:
        master_down_interval(100, 0)
    assert str(caught.value) == "advertisement interval 0 cs is not positive"
