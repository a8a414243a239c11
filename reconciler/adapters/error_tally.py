"""Failures on the takeover path: counted by kind, logged once per kind.

A resource error there (a link whose sends fail, a full neighbour table, a node out of
descriptors or processes) fails every packet or every event alike: 500 instances
advertising every second would log 500 lines a second that say one thing. Each
operation keeps an `ErrorTally`: every failure is counted by kind (the errno name:
``ENOBUFS``; else the exception's class), exported as
``reconciler_vrrp_errors_total{operation,error}``, and only the first of each kind per
subject (an interface, a hook) is logged.
"""

from __future__ import annotations

import errno
import logging
from collections import Counter

from pyroute2.netlink.exceptions import NetlinkError

# Distinct (kind, subject) pairs logged before the tally stops remembering which it
# logged (subjects come from the desired state, so this is never reached in practice).
LOGGED_MAX = 1024


def error_kind(exc: BaseException) -> str:
    """``ENOBUFS`` for an OSError or a netlink error with that errno, else the class name."""
    code = exc.code if isinstance(exc, NetlinkError) else getattr(exc, "errno", None)
    if isinstance(code, int) and code in errno.errorcode:
        return errno.errorcode[code]
    return type(exc).__name__


class ErrorTally:
    """The failures of one operation (``advert_send``, ``vip_add``, ...), by kind."""

    def __init__(self, operation: str, logger: logging.Logger) -> None:
        self.operation = operation
        self.counts: Counter[str] = Counter()
        self._log = logger
        self._logged: set[tuple[str, str]] = set()

    def record(self, exc: BaseException, subject: str) -> None:
        """Count ``exc``; log it if it is the first of its kind for ``subject``."""
        kind = error_kind(exc)
        self.counts[kind] += 1
        if (kind, subject) in self._logged or len(self._logged) >= LOGGED_MAX:
            return
        self._logged.add((kind, subject))
        self._log.warning(
            "%s: %s failed: %s (further %s failures of %s are counted in "
            'reconciler_vrrp_errors_total{operation="%s"}, not logged)',
            subject,
            self.operation,
            exc,
            kind,
            subject,
            self.operation,
        )
