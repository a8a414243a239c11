"""The RFC 5798 elections on a received advert, as pure functions of it and our state."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address

from reconciler.vrrp.params import InstanceParams
from reconciler.vrrp.states import TransitionReason


def backup_follows(
    params: InstanceParams,
    advert_priority: int,
    priority: int,
    preempt_deadline_s: float | None,
    now: float,
) -> bool:
    """§6.4.2: whether a backup accepts the sender of a (non-zero priority) advert as its
    master, or discards the advert so that its Master_Down_Timer runs out and it preempts.

    It follows without preempt, a priority not lower than ours, and a lower one while
    keepalived's preempt_delay runs (``preempt_deadline_s``: None until the first lower
    advert is seen).
    """
    waiting = params.preempt_delay_s > 0 and (
        preempt_deadline_s is None or now < preempt_deadline_s
    )
    return not params.preempt or advert_priority >= priority or waiting


def master_yields(
    advert_priority: int,
    source: IPv4Address | IPv6Address,
    priority: int,
    primary_address: IPv4Address | IPv6Address,
) -> TransitionReason | None:
    """§6.4.3: why a master yields to a (non-zero priority) advert, or None: to a higher
    priority, or to an equal one from a higher primary address."""
    if advert_priority > priority:
        return TransitionReason.HIGHER_PRIORITY
    if advert_priority == priority and int(source) > int(primary_address):
        return TransitionReason.HIGHER_ADDRESS
    return None
