"""What one virtual router counts; ``observability/`` reads it at scrape time."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from reconciler.vrrp.receive import AdvertRefusal
from reconciler.vrrp.states import State, TransitionReason


@dataclass(slots=True)
class InstanceCounters:
    """Plain counters; ``observability/`` reads them at scrape time."""

    adverts_received: int = 0  # every advert handed to the machine while running
    adverts_sent: int = 0
    priority_zero_received: int = 0
    priority_zero_sent: int = 0
    old_unicast_checksum_received: int = 0  # accepted adverts with keepalived's old checksum
    # Accepted adverts whose address list differs from ours but shares an address: a peer
    # that has not (or has already) taken a VIP change (receive.py, RFC 5798 §7.1 MAY).
    address_mismatch_received: int = 0
    reconfigured: int = 0  # Reconfigure events applied in place
    stale_timer_events: int = 0  # TimerExpired for a timer not running (a race; ignored)
    refused: Counter[AdvertRefusal] = field(default_factory=Counter)
    transitions: Counter[tuple[State, State, TransitionReason]] = field(default_factory=Counter)

    def received_counts(self) -> tuple[int, int, int]:
        """The counts an accepted advert adds to (see ``restore_received``)."""
        return (
            self.adverts_received,
            self.old_unicast_checksum_received,
            self.address_mismatch_received,
        )

    def restore_received(self, counts: tuple[int, int, int]) -> None:
        """Undo the counting of adverts handled since ``received_counts``."""
        (
            self.adverts_received,
            self.old_unicast_checksum_received,
            self.address_mismatch_received,
        ) = counts
