"""RFC 5798 §6.1 timers, exact, against the values keepalived was measured at."""

from __future__ import annotations

from fractions import Fraction

import pytest

from reconciler.vrrp.packet import VrrpVersion
from reconciler.vrrp.timers import interval_seconds, master_down_interval, skew_time


@pytest.mark.parametrize(
    ("priority", "interval_cs", "skew_ms", "mdi_ms"),
    [
        (100, 100, Fraction("609.375"), Fraction("3609.375")),
        (150, 100, Fraction("414.0625"), Fraction("3414.0625")),
        (100, 10, Fraction("60.9375"), Fraction("360.9375")),
        (150, 10, Fraction("41.40625"), Fraction("341.40625")),
        (100, 200, Fraction("1218.75"), Fraction("7218.75")),  # learned 2 s interval
        (255, 1, Fraction(10, 256), Fraction(30) + Fraction(10, 256)),
        (1, 4095, Fraction(255 * 40950, 256), Fraction(3 * 40950) + Fraction(255 * 40950, 256)),
    ],
)
def test_v3_formulas(priority: int, interval_cs: int, skew_ms: Fraction, mdi_ms: Fraction) -> None:
    assert skew_time(priority, interval_cs) * 1000 == skew_ms
    assert master_down_interval(priority, interval_cs) * 1000 == mdi_ms


def test_v2_skew_does_not_scale_with_the_interval() -> None:
    assert skew_time(100, 100, VrrpVersion.V2) == Fraction(156, 256)
    assert skew_time(100, 300, VrrpVersion.V2) == Fraction(156, 256)
    assert master_down_interval(100, 300, VrrpVersion.V2) == 9 + Fraction(156, 256)


def test_results_are_exact_fractions_of_seconds() -> None:
    value = skew_time(150, 100)
    assert isinstance(value, Fraction)
    assert value == Fraction(106, 256)
    assert float(value) == 0.4140625
    assert interval_seconds(10) == Fraction(1, 10)


@pytest.mark.parametrize(("priority", "interval_cs"), [(-1, 100), (256, 100), (100, 0)])
def test_rejects_out_of_range(priority: int, interval_cs: int) -> None:
    with pytest.raises(ValueError):
        skew_time(priority, interval_cs)
