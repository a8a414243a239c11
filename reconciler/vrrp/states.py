"""The small vocabularies the VRRP state machine speaks: states, timers, transition reasons.

All are bounded enums, safe to use as metric labels.
"""

from __future__ import annotations

import enum


class State(enum.IntEnum):
    """RFC 5798 §6.4 states, plus keepalived's FAULT. Values are the ``vrrp_state`` gauge."""

    INITIALIZE = 0  # §6.4.1: not running (before Startup, after Shutdown)
    BACKUP = 1  # §6.4.2
    MASTER = 2  # §6.4.3
    FAULT = 3  # link down or a tracker at weight 0: neither elects nor holds VIPs


class TimerKind(enum.Enum):
    """RFC 5798 §6.2 timers. The driver keeps at most one running timer per kind."""

    MASTER_DOWN = "master_down"  # Master_Down_Timer, runs in BACKUP
    ADVER = "adver"  # Adver_Timer, runs in MASTER

    # Members are singletons compared by identity, so identity hashing is exact; Enum's
    # own __hash__ is Python code, and timers are dictionary keys on every advert.
    __hash__ = object.__hash__


class TransitionReason(enum.Enum):
    """Why a transition happened (bounded, for ``vrrp_transitions_total{reason}``)."""

    STARTUP = "startup"  # §6.4.1 Initialize -> Backup
    ADDRESS_OWNER = "address_owner"  # §6.4.1 priority 255 -> Master at once
    MASTER_NO_RESPONSE = "master_no_response"  # Master_Down_Timer: the master went silent
    MASTER_RELEASED = "master_released"  # Master_Down_Timer after a priority-0 advert
    PREEMPTED = "preempted"  # Master_Down_Timer after discarding lower-priority adverts
    HIGHER_PRIORITY = "higher_priority"  # §6.4.3: a higher-priority advert seen as master
    HIGHER_ADDRESS = "higher_address"  # §6.4.3: equal priority, higher primary address
    SHUTDOWN = "shutdown"
    LINK_DOWN = "link_down"
    TRACKER_FAULT = "tracker_fault"
    FAULT_CLEARED = "fault_cleared"
    SYNC_GROUP = "sync_group"  # followed another member of the instance's sync group
