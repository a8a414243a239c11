"""Durations as the desired-state file writes them: a number and a unit (`100ms`, `1s`)."""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal

_UNITS_US = {"ms": 1_000, "s": 1_000_000, "m": 60_000_000, "h": 3_600_000_000}
_RE = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)$")


def parse_duration(text: str) -> timedelta:
    """Parse `1.5s` exactly (Decimal, no float rounding); sub-microsecond parts are an error."""
    m = _RE.match(text)
    if not m:
        raise ValueError(f"not a duration: {text!r}")
    micros = Decimal(m.group(1)) * _UNITS_US[m.group(2)]
    if micros != micros.to_integral_value():
        raise ValueError(f"{text!r} is finer than a microsecond")
    return timedelta(microseconds=int(micros))


def format_duration(value: timedelta) -> str:
    """The shortest exact rendering: 1s, 1.5s, 100ms, 5m, 250us."""
    micros = value // timedelta(microseconds=1)
    for unit, size in (("h", 3_600_000_000), ("m", 60_000_000), ("s", 1_000_000)):
        if micros and micros % size == 0:
            return f"{micros // size}{unit}"
    if micros >= 1_000_000:
        return f"{Decimal(micros) / 1_000_000:f}s"
    if micros % 1_000 == 0:
        return f"{micros // 1_000}ms"
    return f"{micros}us"
