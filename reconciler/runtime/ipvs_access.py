"""The kernel's IPVS, when it has one: opened once at start, closed at stop."""

from __future__ import annotations

import logging

from reconciler.adapters.ipvs import Ipvs, IpvsError

# These lines were the daemon's before they moved here; log filters key on the name.
log = logging.getLogger("reconciler.daemon")


class IpvsAccess:
    """IPVS is managed when the kernel has it; without it VRRP still runs, and the
    reason (``error``) is in status and metrics."""

    def __init__(self) -> None:
        self.ipvs: Ipvs | None = None
        self.error: str | None = None  # why IPVS is not managed

    async def open(self, required: bool) -> Ipvs | None:
        """The opened IPVS, or None; ``required`` (the node has virtual services) makes
        its absence an error in the log, not a debug line."""
        ipvs = Ipvs()
        try:
            await ipvs.open()
        except IpvsError as exc:
            self.error = str(exc)
            log.log(logging.ERROR if required else logging.DEBUG, "IPVS not managed: %s", exc)
            return None
        self.ipvs = ipvs
        self.error = None
        return ipvs

    async def close(self) -> None:
        if self.ipvs is not None:
            await self.ipvs.close()
