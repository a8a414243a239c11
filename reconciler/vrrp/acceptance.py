"""Which adverts reach the election: RFC 5798 §7.1's checks, memoized, and their counts.

The driver hands the same :class:`ReceivedAdvert` object again for byte-identical adverts
(a master repeats itself), and the checks are a pure function of the advert and the
params, so :class:`Acceptance` remembers the last advert that passed them and skips them
for that advert until the params change (``forget``).
"""

from __future__ import annotations

from reconciler.vrrp.counters import InstanceCounters
from reconciler.vrrp.packet import ChecksumVerdict, ReceivedAdvert
from reconciler.vrrp.params import PRIORITY_STOP, InstanceParams
from reconciler.vrrp.receive import addresses_differ, validate_advert


class Acceptance:
    """The §7.1 verdict on the last valid advert of one virtual router."""

    __slots__ = ("_last_valid", "mismatch", "special")

    def __init__(self) -> None:
        self._last_valid: ReceivedAdvert | None = None
        self.mismatch = False  # the last valid advert's address list differs from ours
        # It is counted by more than adverts_received (old checksum, address mismatch).
        self.special = False

    def forget(self) -> None:
        """The params changed: the checks must run again."""
        self._last_valid = None

    def accept(
        self, params: InstanceParams, received: ReceivedAdvert, counters: InstanceCounters
    ) -> bool:
        """Count and validate; whether the advert may be processed."""
        counters.adverts_received += 1
        if received is not self._last_valid:
            refusal = validate_advert(params, received)
            if refusal is not None:
                counters.refused[refusal] += 1
                return False
            self._last_valid = received
            self.mismatch = addresses_differ(params, received)
            self.special = self.mismatch or received.checksum is ChecksumVerdict.VALID_OLD_UNICAST
        if self.special:
            self.count_special(received, counters, 1)
        if received.advert.priority == PRIORITY_STOP:
            counters.priority_zero_received += 1
        return True

    def count_special(
        self, received: ReceivedAdvert, counters: InstanceCounters, count: int
    ) -> None:
        """Count ``count`` copies of the last valid advert beyond adverts_received."""
        if received.checksum is ChecksumVerdict.VALID_OLD_UNICAST:
            counters.old_unicast_checksum_received += count
        if self.mismatch:
            counters.address_mismatch_received += count
