"""Sync groups: the members of a group change state together (keepalived vrrp_sync_group).

When one member becomes master the others follow at once; when one leaves
master for backup the others follow; when one enters FAULT the others are
held in FAULT until it recovers. Typical use: the outside VIP and the inside
gateway VIP of a NAT director must live on the same node.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from reconciler.vrrp.actions import Transitioned
from reconciler.vrrp.events import Event, FaultCleared, FaultSet, SyncGroupBackup, SyncGroupMaster
from reconciler.vrrp.states import State


class Member(Protocol):
    @property
    def name(self) -> str: ...

    def feed(self, event: Event, now: float | None = None) -> None: ...


class SyncGroups:
    def __init__(self, groups: Mapping[str, tuple[str, ...]], members: Mapping[str, Member]):
        self.groups = groups  # group name -> member instance names
        self.members = members  # instance name -> running member (live view)
        self._following = False

    def set_groups(self, groups: Mapping[str, tuple[str, ...]]) -> None:
        """A new revision's groups."""
        self.groups = groups

    def group_of(self, instance: str) -> str | None:
        for g, names in self.groups.items():
            if instance in names:
                return g
        return None

    def on_transition(self, instance: str, t: Transitioned) -> None:
        """Propagate one member's own transition; transitions it causes are not re-propagated."""
        group = self.group_of(instance)
        if group is None or self._following:
            return
        others = [
            self.members[n] for n in self.groups[group] if n != instance and n in self.members
        ]
        source = f"sync:{group}:{instance}"
        events: list[Event] = []
        if t.from_state is State.FAULT:
            events.append(FaultCleared(source))
        if t.to_state is State.MASTER:
            events.append(SyncGroupMaster())
        elif t.to_state is State.BACKUP and t.from_state is State.MASTER:
            events.append(SyncGroupBackup())
        elif t.to_state is State.FAULT:
            events.append(FaultSet(source))
        self._following = True
        try:
            for member in others:
                for event in events:
                    member.feed(event)
        finally:
            self._following = False
