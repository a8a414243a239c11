"""The director's sysctls, written through /proc/sys and read back.

Only the four a load-balancing director needs (`model.cluster.Sysctls`); a field
left at None is never read or written. Each value is read first, written only
when it differs, and read back: procfs accepts some writes it then ignores
(e.g. a value out of range for a clamped integer), and a net.ipv4.vs.* file is
missing altogether while ip_vs is not loaded.

They are per network namespace: /proc/sys/net shows the namespace of the
calling thread. Plain synchronous file I/O: procfs answers from memory, without
blocking.
"""

from __future__ import annotations

import errno
from dataclasses import fields
from pathlib import Path
from typing import Final

from reconciler.adapters.outcome import WriteOutcome
from reconciler.model.cluster import Sysctls

__all__ = [
    "SYSCTL_KEYS",
    "SysctlError",
    "apply_sysctls",
    "read_sysctl",
    "read_sysctls",
    "set_sysctl",
]

PROC_SYS: Final = Path("/proc/sys")

# Field of `Sysctls` -> sysctl key.
SYSCTL_KEYS: Final = {
    "ip_forward": "net.ipv4.ip_forward",
    "conntrack": "net.ipv4.vs.conntrack",
    "expire_nodest_conn": "net.ipv4.vs.expire_nodest_conn",
    "expire_quiescent_template": "net.ipv4.vs.expire_quiescent_template",
}


class SysctlError(OSError):
    """A sysctl could not be read or written, or did not take the value written."""

    def __init__(self, key: str, message: str, code: int = 0) -> None:
        super().__init__(code, f"sysctl {key}: {message}")
        self.key = key


def _path(key: str, root: Path) -> Path:
    return root.joinpath(*key.split("."))


def read_sysctl(key: str, root: Path = PROC_SYS) -> str:
    """The value of `key` ("net.ipv4.ip_forward"), stripped of its newline."""
    try:
        return _path(key, root).read_text().strip()
    except FileNotFoundError as e:
        hint = " (is the ip_vs module loaded?)" if ".vs." in key else ""
        raise SysctlError(key, f"not present in this kernel{hint}", errno.ENOENT) from e
    except OSError as e:
        raise SysctlError(key, f"cannot read: {e.strerror}", e.errno or 0) from e


def _write(key: str, value: str, root: Path) -> None:
    try:
        _path(key, root).write_text(value + "\n")
    except OSError as e:
        raise SysctlError(key, f"cannot write {value}: {e.strerror}", e.errno or 0) from e


def set_sysctl(key: str, value: str, root: Path = PROC_SYS) -> WriteOutcome:
    """Make `key` equal `value`: UNCHANGED when it already is, UPDATED after a verified write."""
    if read_sysctl(key, root) == value:
        return WriteOutcome.UNCHANGED
    _write(key, value, root)
    got = read_sysctl(key, root)
    if got != value:
        raise SysctlError(key, f"wrote {value} but the kernel reports {got}")
    return WriteOutcome.UPDATED


def apply_sysctls(wanted: Sysctls, root: Path = PROC_SYS) -> dict[str, WriteOutcome]:
    """Apply every field of `wanted` that is not None; the outcome of each, by sysctl key."""
    out: dict[str, WriteOutcome] = {}
    for f in fields(wanted):
        value = getattr(wanted, f.name)
        if value is not None:
            key = SYSCTL_KEYS[f.name]
            out[key] = set_sysctl(key, "1" if value else "0", root)
    return out


def read_sysctls(root: Path = PROC_SYS) -> Sysctls:
    """The four values as the kernel has them; None for one that is not present (no ip_vs)."""
    values: dict[str, bool | None] = {}
    for name, key in SYSCTL_KEYS.items():
        try:
            values[name] = read_sysctl(key, root) != "0"
        except SysctlError:
            values[name] = None
    return Sysctls(**values)
