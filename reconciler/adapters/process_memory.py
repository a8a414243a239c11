"""Process memory housekeeping for a long-running daemon.

Loading a desired-state file builds a large transient object graph (the YAML tree with
the line and column of every node, the JSON Schema validator, every node's model) and
keeps a small part of it; a burst of takeovers (hundreds of VIPs added at once) does
the same. ``settle()`` runs once the node is running, after each reload and when
transitions have gone quiet:

- a garbage collection, then ``gc.freeze()``: what survived is long-lived, so later
  collections skip it instead of walking it again (shorter pauses on the advert path,
  fewer pages touched). Frozen objects are never unfrozen: that would make the next
  collection walk everything, a pause a running master cannot afford; acyclic garbage
  (nearly all of it) is freed by reference counting, frozen or not;
- glibc's ``malloc_trim(0)``: hand the freed heap back to the kernel, which Python's
  allocator and glibc otherwise keep as resident memory for good (about 1 ms).
"""

from __future__ import annotations

import ctypes
import gc
import logging

log = logging.getLogger("reconciler.memory")


def _malloc_trim() -> bool:
    """glibc's malloc_trim(0); False where the C library has none (e.g. musl)."""
    try:
        # The symbols already loaded into this process (libc among them): no search
        # (ctypes.util.find_library would run ldconfig in a subprocess).
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return False
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    trim(0)
    return True


def resident_kib() -> int | None:
    """This process's resident set size in KiB (VmRSS), or None if unreadable."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def settle() -> None:
    """Collect, freeze the survivors and return freed heap to the kernel."""
    before = resident_kib()
    gc.collect()
    gc.freeze()
    trimmed = _malloc_trim()
    after = resident_kib()
    if before is not None and after is not None:
        log.debug(
            "memory settled: RSS %.1f -> %.1f MiB%s",
            before / 1024,
            after / 1024,
            "" if trimmed else " (no malloc_trim)",
        )
