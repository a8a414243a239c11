"""A socket filter that drops a master's repeated adverts in the kernel.

A backup following its master receives the same advert every Advertisement_Interval,
and handling it changes nothing but the Master_Down_Timer's start (RFC 5798 §6.4.2:
"Reset the Master_Down_Timer"). Reading and handling each one in Python costs more
than everything else a backup does, so once the state machine has followed an advert,
its exact bytes are "armed" for its VRID in a BPF map; an eBPF program on the raw socket
drops later packets with the same bytes, and records when the last one came
(``bpf_ktime_get_ns``: CLOCK_MONOTONIC, the event loop's clock) and how many it
dropped. The driver reads that record, from memory the map shares with it (mmap, no
system call), before it lets a Master_Down_Timer fire, and counts the drops as adverts
received. Any other packet (another priority, another source, a priority-0 advert, a
forged or malformed one) reaches the socket as before.

Compared from the network header on, except what changes per packet or does not
matter to VRRP: IPv4 TOS, identification and header checksum (the kernel has checked
it); the IPv6 traffic class and flow label. So a dropped packet carries the same TTL
(hop limit), source, destination and VRRP bytes as the advert the machine accepted.

Loading needs CAP_BPF (or CAP_SYS_ADMIN) and a kernel with mmap-able array maps
(Linux 5.5+) and ``bpf_skb_load_bytes_relative`` for socket filters (4.18+); where that
fails, ``RepeatFilter.create`` raises ``FilterUnavailable`` and every advert is read in
user space, as without it.

Ordering: arming clears the entry's ``armed`` word before writing the pattern and
sets it last; the program reads ``armed`` first. Stores and loads to distinct words are
seen in program order on x86 (TSO); elsewhere a packet racing a re-arm can, at worst,
be compared with a half-written pattern, which drops nothing that differs from both
the old and the new advert in the same bytes.
"""

from __future__ import annotations

import ctypes
import errno
import mmap
import os
import socket
import struct
from dataclasses import dataclass
from typing import Final

# --- bpf(2) -------------------------------------------------------------------------
_SYS_BPF: Final = {"x86_64": 321, "aarch64": 280}.get(os.uname().machine)
_BPF_MAP_CREATE = 0
_BPF_PROG_LOAD = 5
_BPF_ENABLE_STATS = 32
_BPF_MAP_TYPE_ARRAY = 2
_BPF_PROG_TYPE_SOCKET_FILTER = 1
_BPF_F_MMAPABLE = 1 << 10
_SO_ATTACH_BPF = 50
_ATTR_SIZE = 144  # zero-padded union bpf_attr; the kernel accepts a larger zero tail

# --- the map ------------------------------------------------------------------------
MAX_VRID: Final = 255
PATTERN_MAX: Final = 192  # bytes from the network header compared (IPv6: up to 9 VIPs)
# struct entry { u64 last_seen_ns; u64 dropped; u32 armed; u32 length; u8 pattern[192]; }
_LAST_SEEN = 0
_DROPPED = 8
_ARMED = 16
_LENGTH = 20
_PATTERN = 24
ENTRY_SIZE: Final = _PATTERN + PATTERN_MAX
_U32 = struct.Struct("=I")
_U64 = struct.Struct("=Q")
_TWO_U64 = struct.Struct("=QQ")
# Bytes that may differ between two packets of the same advert (see module docstring).
_IGNORED = {4: (1, 4, 5, 10, 11), 6: (0, 1, 2, 3)}
IPV6_HEADER_LEN: Final = 40
# IPv4 without options: byte 0 (0x45) is compared, so one with options never matches.
_VRID_OFFSET = {4: 20 + 1, 6: IPV6_HEADER_LEN + 1}

# --- eBPF instructions --------------------------------------------------------------
_R0, _R1, _R2, _R3, _R4, _R5, _R6, _R7, _R8, _R9, _R10 = range(11)
_HELPER_MAP_LOOKUP_ELEM = 1
_HELPER_KTIME_GET_NS = 5
_HELPER_SKB_LOAD_BYTES_RELATIVE = 68
_BPF_HDR_START_NET = 1
_BPF_PSEUDO_MAP_FD = 1


class FilterUnavailable(Exception):
    """The kernel (or our privileges) cannot run the filter; adverts are read as before."""


def _insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    return struct.pack("<BBhi", code, (src << 4) | dst, off, imm)


class _Asm:
    """A few eBPF instructions with forward jumps to labels."""

    def __init__(self) -> None:
        self.code: list[bytes | tuple[int, int, int, int, str]] = []
        self.labels: dict[str, int] = {}

    def emit(self, code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> None:
        self.code.append(_insn(code, dst, src, off, imm))

    def mov_imm(self, dst: int, imm: int) -> None:
        self.emit(0xB7, dst, imm=imm)  # ALU64 | MOV | K

    def mov_reg(self, dst: int, src: int) -> None:
        self.emit(0xBF, dst, src)  # ALU64 | MOV | X

    def add_imm(self, dst: int, imm: int) -> None:
        self.emit(0x07, dst, imm=imm)  # ALU64 | ADD | K

    def ldx(self, size: str, dst: int, src: int, off: int) -> None:
        self.emit({"b": 0x71, "h": 0x69, "w": 0x61, "dw": 0x79}[size], dst, src, off)

    def st_imm(self, size: str, dst: int, off: int, imm: int) -> None:
        self.emit({"b": 0x72, "h": 0x6A, "w": 0x62, "dw": 0x7A}[size], dst, off=off, imm=imm)

    def stx(self, size: str, dst: int, src: int, off: int) -> None:
        self.emit({"b": 0x73, "h": 0x6B, "w": 0x63, "dw": 0x7B}[size], dst, src, off)

    def atomic_add64(self, dst: int, src: int, off: int) -> None:
        self.emit(0xDB, dst, src, off, 0x00)  # STX | ATOMIC | DW, imm BPF_ADD

    def call(self, helper: int) -> None:
        self.emit(0x85, imm=helper)

    def exit(self) -> None:
        self.emit(0x95)

    def ld_map_fd(self, dst: int, fd: int) -> None:
        self.emit(0x18, dst, _BPF_PSEUDO_MAP_FD, imm=fd)  # LD | IMM | DW, two slots
        self.emit(0x00)

    def jump(self, code: int, dst: int, imm: int, label: str, src: int = 0) -> None:
        self.code.append((code, dst, src, imm, label))

    def label(self, name: str) -> None:
        self.labels[name] = len(self.code)

    def assemble(self) -> bytes:
        out = []
        for i, item in enumerate(self.code):
            if isinstance(item, bytes):
                out.append(item)
                continue
            code, dst, src, imm, label = item
            out.append(_insn(code, dst, src, self.labels[label] - i - 1, imm))
        return b"".join(out)


def _program(family: int, map_fd: int) -> bytes:
    """The socket filter: drop an armed repeat, record when and count it; pass the rest."""
    a = _Asm()
    buf = -8 - PATTERN_MAX  # stack: [r10-8] key, [buf .. buf+PATTERN_MAX) the packet
    a.mov_reg(_R6, _R1)  # the __sk_buff
    a.ldx("w", _R7, _R6, 0)  # skb->len: what "pass" keeps
    # The VRID, one byte at its offset from the network header.
    a.st_imm("dw", _R10, -8, 0)
    a.mov_reg(_R1, _R6)
    a.mov_imm(_R2, _VRID_OFFSET[family])
    a.mov_reg(_R3, _R10)
    a.add_imm(_R3, -8)
    a.mov_imm(_R4, 1)
    a.mov_imm(_R5, _BPF_HDR_START_NET)
    a.call(_HELPER_SKB_LOAD_BYTES_RELATIVE)
    a.jump(0x55, _R0, 0, "pass")  # JNE K: too short
    a.ld_map_fd(_R1, map_fd)
    a.mov_reg(_R2, _R10)
    a.add_imm(_R2, -8)  # key: the u32 at r10-8 (little or big endian: the byte is 0..255)
    a.call(_HELPER_MAP_LOOKUP_ELEM)
    a.jump(0x15, _R0, 0, "pass")  # JEQ K: no entry
    a.mov_reg(_R8, _R0)
    a.ldx("w", _R1, _R8, _ARMED)
    a.jump(0x15, _R1, 0, "pass")
    a.ldx("w", _R9, _R8, _LENGTH)
    a.jump(0x25, _R9, PATTERN_MAX, "pass")  # JGT K: bounds for the verifier
    a.jump(0xA5, _R9, 8, "pass")  # JLT K
    for i in range(PATTERN_MAX // 8):
        a.st_imm("dw", _R10, buf + 8 * i, 0)
    a.mov_reg(_R1, _R6)
    a.mov_imm(_R2, 0)
    a.mov_reg(_R3, _R10)
    a.add_imm(_R3, buf)
    a.mov_reg(_R4, _R9)
    a.mov_imm(_R5, _BPF_HDR_START_NET)
    a.call(_HELPER_SKB_LOAD_BYTES_RELATIVE)
    a.jump(0x55, _R0, 0, "pass")  # shorter than the armed advert
    for offset in _IGNORED[family]:
        a.st_imm("b", _R10, buf + offset, 0)
    for i in range(PATTERN_MAX // 8):
        if i:
            a.jump(0xB5, _R9, 8 * i, "match")  # JLE K: all of the advert compared
        a.ldx("dw", _R1, _R10, buf + 8 * i)
        a.ldx("dw", _R2, _R8, _PATTERN + 8 * i)
        a.jump(0x5D, _R1, 0, "pass", src=_R2)  # JNE X
    a.label("match")
    a.call(_HELPER_KTIME_GET_NS)
    a.stx("dw", _R8, _R0, _LAST_SEEN)
    a.mov_imm(_R1, 1)
    a.atomic_add64(_R8, _R1, _DROPPED)
    a.mov_imm(_R0, 0)
    a.exit()
    a.label("pass")
    a.mov_reg(_R0, _R7)
    a.exit()
    return a.assemble()


def _bpf(cmd: int, attr: ctypes.Array[ctypes.c_char]) -> int:
    if _SYS_BPF is None:
        raise FilterUnavailable(f"bpf(2) number unknown on {os.uname().machine}")
    ret = _libc.syscall(_SYS_BPF, cmd, attr, len(attr))
    if ret < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return int(ret)


_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


def normalize(family: int, packet: bytes) -> bytes:
    """``packet`` (from its network header) as the filter compares it."""
    out = bytearray(packet)
    for offset in _IGNORED[family]:
        out[offset] = 0
    return bytes(out)


def ipv6_packet(payload: bytes, source: bytes, destination: bytes, hop_limit: int) -> bytes:
    """The IPv6 header and payload as the filter sees them (an IPv6 raw socket hands
    only the payload to user space; the header is rebuilt from ancillary data)."""
    return (
        struct.pack("!IHBB", 6 << 28, len(payload), 112, hop_limit) + source + destination + payload
    )


@dataclass(frozen=True)
class Seen:
    """What the filter recorded for one VRID: repeats dropped in all, the last one's time."""

    dropped: int
    last_seen_s: float  # time.monotonic() of the last drop; 0.0 before the first


class RepeatFilter:
    """The filter and its map for one socket."""

    def __init__(self, family: int, map_fd: int, prog_fd: int, memory: mmap.mmap) -> None:
        self.family = family
        self._map_fd = map_fd
        self._prog_fd = prog_fd
        self._memory = memory
        self._armed: dict[int, bytes] = {}

    @classmethod
    def create(cls, family: int) -> RepeatFilter:
        """Load the program and its map (not yet attached to any socket)."""
        map_fd = prog_fd = -1
        try:
            attr = ctypes.create_string_buffer(_ATTR_SIZE)
            struct.pack_into(
                "=IIIII",
                attr,
                0,
                _BPF_MAP_TYPE_ARRAY,
                4,
                ENTRY_SIZE,
                MAX_VRID + 1,
                _BPF_F_MMAPABLE,
            )
            struct.pack_into("16s", attr, 28, b"vrrp_repeats")
            map_fd = _bpf(_BPF_MAP_CREATE, attr)
            size = (MAX_VRID + 1) * ENTRY_SIZE
            size += -size % mmap.PAGESIZE
            memory = mmap.mmap(map_fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
            insns = _program(family, map_fd)
            code = ctypes.create_string_buffer(insns, len(insns))
            license_ = ctypes.create_string_buffer(b"GPL")
            log = ctypes.create_string_buffer(65536)
            attr = ctypes.create_string_buffer(_ATTR_SIZE)
            struct.pack_into(
                "=IIQQIIQ",
                attr,
                0,
                _BPF_PROG_TYPE_SOCKET_FILTER,
                len(insns) // 8,
                ctypes.addressof(code),
                ctypes.addressof(license_),
                1,
                len(log),
                ctypes.addressof(log),
            )
            struct.pack_into("16s", attr, 48, b"vrrp_repeats")
            try:
                prog_fd = _bpf(_BPF_PROG_LOAD, attr)
            except OSError as exc:
                detail = log.value.decode(errors="replace").strip().splitlines()[-3:]
                raise FilterUnavailable(f"program refused: {exc}: {' | '.join(detail)}") from exc
        except (OSError, ValueError) as exc:
            for fd in (prog_fd, map_fd):
                if fd >= 0:
                    os.close(fd)
            raise FilterUnavailable(str(exc)) from exc
        except BaseException:
            for fd in (prog_fd, map_fd):
                if fd >= 0:
                    os.close(fd)
            raise
        return cls(family, map_fd, prog_fd, memory)

    def attach(self, sock: socket.socket) -> None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, _SO_ATTACH_BPF, self._prog_fd)
        except OSError as exc:
            raise FilterUnavailable(f"SO_ATTACH_BPF: {exc}") from exc

    def close(self) -> None:
        if self._prog_fd >= 0:
            self._memory.close()
            os.close(self._prog_fd)
            os.close(self._map_fd)
            self._prog_fd = self._map_fd = -1

    # --- entries --------------------------------------------------------------------
    def arm(self, vrid: int, packet: bytes) -> bool:
        """Drop later copies of ``packet`` (normalized, from its network header) for
        ``vrid``; False if it is too long to compare (it keeps reaching the socket)."""
        if len(packet) > PATTERN_MAX or len(packet) < 8:
            self.disarm(vrid)
            return False
        if self._armed.get(vrid) == packet:
            return True
        base = vrid * ENTRY_SIZE
        m = self._memory
        _U32.pack_into(m, base + _ARMED, 0)
        m[base + _PATTERN : base + _PATTERN + PATTERN_MAX] = packet.ljust(PATTERN_MAX, b"\0")
        _U32.pack_into(m, base + _LENGTH, len(packet))
        _U32.pack_into(m, base + _ARMED, 1)
        self._armed[vrid] = packet
        return True

    def disarm(self, vrid: int) -> None:
        if self._armed.pop(vrid, None) is not None:
            _U32.pack_into(self._memory, vrid * ENTRY_SIZE + _ARMED, 0)

    def armed(self, vrid: int) -> bool:
        return vrid in self._armed

    def seen(self, vrid: int) -> Seen:
        last_ns, dropped = _TWO_U64.unpack_from(self._memory, vrid * ENTRY_SIZE)
        return Seen(dropped, last_ns / 1e9)

    def dropped(self, vrid: int) -> int:
        return int(_U64.unpack_from(self._memory, vrid * ENTRY_SIZE + _DROPPED)[0])


def enable_stats() -> int:
    """Make the kernel count every BPF program's run time until the returned fd is
    closed (BPF_ENABLE_STATS; used by benchmarks to charge the filter's CPU)."""
    attr = ctypes.create_string_buffer(_ATTR_SIZE)
    struct.pack_into("=I", attr, 0, 0)  # BPF_STATS_RUN_TIME
    try:
        return _bpf(_BPF_ENABLE_STATS, attr)
    except OSError as exc:
        if exc.errno in (errno.EINVAL, errno.EPERM):
            raise FilterUnavailable(f"BPF_ENABLE_STATS: {exc}") from exc
        raise
