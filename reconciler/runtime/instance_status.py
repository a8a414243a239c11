"""An instance's status: read on the event loop (`InstanceCapture`), built anywhere.

A scrape of /metrics reads every instance, so only the capture runs on the loop (a few
plain reads and copies); `instance_status` turns it into the status on any thread.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address
from typing import NamedTuple

from reconciler.model import vrrp as model
from reconciler.observability.status import InstanceStatus, TrackerStatus, TransitionStatus
from reconciler.vrrp.receive import AdvertRefusal
from reconciler.vrrp.states import State, TransitionReason

_STATE_NAMES = {s: s.name for s in State}
_TRANSITION_KEYS: dict[tuple[State, State, TransitionReason], tuple[str, str, str]] = {}


def _transition_key(key: tuple[State, State, TransitionReason]) -> tuple[str, str, str]:
    """(from, to, reason) as status names them; the keys are few (enums)."""
    text = _TRANSITION_KEYS.get(key)
    if text is None:
        text = _TRANSITION_KEYS[key] = (key[0].name, key[1].name, key[2].value)
    return text


class InstanceCapture(NamedTuple):
    """An instance's state and counters as `InstanceDriver.capture` read them.

    A NamedTuple rather than a frozen dataclass: one is built per instance per scrape on
    the event loop, and a tuple costs a fraction of a frozen dataclass's ``__init__``.
    """

    spec: model.VrrpInstance
    state: State
    effective_priority: int
    master_address: IPv4Address | IPv6Address | None
    last_transition_unix_s: float | None
    last_transition: TransitionStatus | None
    adverts_received: int
    adverts_sent: int
    refused: dict[AdvertRefusal, int]
    transitions: dict[tuple[State, State, TransitionReason], int]
    faults: tuple[str, ...]
    address_mismatch: int
    reconfigured: int


def instance_status(c: InstanceCapture, trackers: tuple[TrackerStatus, ...] = ()) -> InstanceStatus:
    """The status of a captured instance (pure: runs on any thread)."""
    spec = c.spec
    return InstanceStatus(
        name=spec.name,
        vrid=spec.vrid,
        interface=spec.interface,
        family=str(spec.family),
        state=_STATE_NAMES[c.state],
        state_code=int(c.state),
        priority=spec.priority,
        effective_priority=c.effective_priority,
        master_address=str(c.master_address) if c.master_address else None,
        vips=tuple(str(v.address) for v in spec.vips),
        last_transition_unix_s=c.last_transition_unix_s,
        adverts_received=c.adverts_received,
        adverts_sent=c.adverts_sent,
        refused={r.value: n for r, n in c.refused.items()},
        transitions={_transition_key(k): n for k, n in c.transitions.items()},
        faults=tuple(sorted(c.faults)),
        trackers=trackers,
        sync_group=spec.sync_group,
        accept_mode=spec.accepts_vip_traffic,
        last_transition=c.last_transition,
        address_mismatch=c.address_mismatch,
        reconfigured=c.reconfigured,
    )
