"""The kernel settings of the revision applied last, and how each write went."""

from __future__ import annotations

import logging

from reconciler.adapters.outcome import WriteOutcome
from reconciler.adapters.sysctl import apply_sysctls
from reconciler.model.cluster import Sysctls

# These lines were the daemon's before they moved here; log filters key on the name.
log = logging.getLogger("reconciler.daemon")


class SysctlKeeper:
    """Writes a revision's sysctls; ``results`` is the outcome of each write (by key), or
    ``{"error": ...}`` when they could not be written (for status)."""

    def __init__(self) -> None:
        self.results: dict[str, str] = {}

    def apply(self, sysctls: Sysctls) -> None:
        try:
            done = apply_sysctls(sysctls)
        except OSError as exc:
            log.error("sysctls: %s", exc)
            self.results = {"error": str(exc)}
            return
        self.results = {k: v.value for k, v in done.items()}
        for key, outcome in done.items():
            if outcome is not WriteOutcome.UNCHANGED:
                log.info("sysctl %s: %s", key, outcome.value)
