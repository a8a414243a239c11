"""Probes of this machine: ``file`` (keepalived's track_file), ``interface`` (track_interface)."""

from __future__ import annotations

import asyncio
import errno
import fcntl
import os
import socket
import struct

from reconciler.adapters.probes.details import describe
from reconciler.health.policy import ProbeResult
from reconciler.health.priority import parse_track_file
from reconciler.model.checks import FileProbe, InterfaceProbe

_FILE_READ_BYTES = 127  # keepalived reads into a 128-byte buffer
_SIOCGIFFLAGS = 0x8913
_IFF_UP = 0x1
_IFF_RUNNING = 0x40


async def file_probe(probe: FileProbe) -> ProbeResult:
    try:
        # A thread: a file on a hung network filesystem must not block the loop.
        content = await asyncio.to_thread(_read_head, probe.path)
    except FileNotFoundError:
        return ProbeResult(ok=True, detail=f"{probe.path}: missing, counts as 0", weight=0)
    except OSError as exc:
        return ProbeResult(ok=False, detail=f"{probe.path}: {describe(exc)}")
    value = parse_track_file(content)
    if value is None:
        return ProbeResult(ok=False, detail=f"{probe.path}: number out of range, ignored")
    return ProbeResult(ok=True, detail=f"{probe.path}: {value}", weight=value)


def _read_head(path: str) -> bytes:
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        return os.read(fd, _FILE_READ_BYTES)
    finally:
        os.close(fd)


def interface_flags(name: str) -> int:
    """The interface's flags (SIOCGIFFLAGS) in this process's network namespace."""
    request = struct.pack("16sH22x", name.encode(), 0)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
        reply = fcntl.ioctl(sock.fileno(), _SIOCGIFFLAGS, request)
    (flags,) = struct.unpack_from("H", reply, 16)
    return int(flags)


def interface_probe(probe: InterfaceProbe) -> ProbeResult:
    if not 1 <= len(probe.name.encode()) <= 15:
        return ProbeResult(ok=False, detail=f"{probe.name}: not an interface name")
    try:
        flags = interface_flags(probe.name)
    except OSError as exc:
        if exc.errno == errno.ENODEV:
            return ProbeResult(ok=False, detail=f"{probe.name}: no such interface")
        return ProbeResult(ok=False, detail=f"{probe.name}: {describe(exc)}")
    if not flags & _IFF_UP:
        return ProbeResult(ok=False, detail=f"{probe.name}: down")
    if not flags & _IFF_RUNNING:
        return ProbeResult(ok=False, detail=f"{probe.name}: up, not running (no carrier)")
    return ProbeResult(ok=True, detail=f"{probe.name}: up, running")
