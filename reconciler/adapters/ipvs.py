"""IPVS virtual services and real servers through pyroute2's asyncio generic-netlink API.

The only module that speaks the kernel's "IPVS" generic-netlink family. Netlink
messages become `LiveService` / `LiveDest` values here and never leak further.

Every write is one request and is idempotent: adding what exists (EEXIST) or
deleting what is gone (ENOENT/ESRCH) is success, reported as
`WriteOutcome.UNCHANGED`. Edits use IPVS_CMD_SET_* and change the object in
place, so established connections, counters and statistics survive them.

Messages are built here attribute by attribute instead of through pyroute2's
`IPVSService`/`IPVSDest` helpers, because those helpers fill in values nobody
asked for (`fwd_method=3`, i.e. DR, on every dest; scheduler `wlc`; a flags
mask) and their "update" verb sends a DELETE. Building the attribute list
ourselves puts every field that reaches the kernel in this file.

One piece on purpose: the encoding, the decoding and the requests are the two
directions of one wire format, checked against each other field by field (a dump
right after a write must compare equal to what was written); split, a reader would
hold both halves open to check one field.

What the kernel reports is normalized so that a dump right after applying a
`LiveService`/`LiveDest` compares equal to it: the HASHED flag is dropped, a
service without persistence reports timeout 0 and a full netmask, scheduler
flags get ipvsadm's names, sorted.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import struct
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from ipaddress import IPv4Network, IPv6Address, ip_address
from types import TracebackType
from typing import Any, Final, TypeVar

from pyroute2.ipvs import AsyncIPVS
from pyroute2.netlink import NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST
from pyroute2.netlink.exceptions import NetlinkError
from pyroute2.netlink.generic import ipvs as genl

from reconciler.adapters.outcome import WriteOutcome
from reconciler.model.common import Family, IPAddress
from reconciler.model.ipvs import Forwarding, Protocol, ServiceKey
from reconciler.model.kernel import LiveDest, LiveService

__all__ = [
    "Ipvs",
    "IpvsError",
    "IpvsNotFound",
    "IpvsRequestError",
    "IpvsUnavailable",
]

log = logging.getLogger(__name__)

# ---------------------------------------------------------------- kernel constants

_AF: Final = {Family.IPV4: socket.AF_INET, Family.IPV6: socket.AF_INET6}
_FAMILY: Final = {v: k for k, v in _AF.items()}
_PROTO: Final = {Protocol.TCP: 6, Protocol.UDP: 17, Protocol.SCTP: 132}
_PROTOCOL: Final = {v: k for k, v in _PROTO.items()}
# IP_VS_CONN_F_MASQ / _TUNNEL / _DROUTE (include/uapi/linux/ip_vs.h).
_FWD: Final = {Forwarding.NAT: 0, Forwarding.TUNNEL: 2, Forwarding.DR: 3}
_FORWARDING: Final = {v: k for k, v in _FWD.items()}

# IP_VS_SVC_F_*: service flags. HASHED is the kernel's own bookkeeping (set on
# every service in its table), never something we ask for.
F_PERSISTENT: Final = 0x1
F_HASHED: Final = 0x2
F_ONEPACKET: Final = 0x4
F_SCHED1: Final = 0x8
F_SCHED2: Final = 0x10
F_SCHED3: Final = 0x20
_ALL_FLAGS: Final = 0xFFFFFFFF  # mask: the flags we send replace all of the service's

# Scheduler flags by ipvsadm's names. SCHED1/2 mean "fallback"/"port" to the sh
# and mh schedulers; for other schedulers ipvsadm calls them flag-1/2/3.
_FLAG_BITS: Final = {
    "sh-fallback": F_SCHED1,
    "sh-port": F_SCHED2,
    "mh-fallback": F_SCHED1,
    "mh-port": F_SCHED2,
    "flag-1": F_SCHED1,
    "flag-2": F_SCHED2,
    "flag-3": F_SCHED3,
    "ops": F_ONEPACKET,
}
_NAMED_SCHEDULERS: Final = ("sh", "mh")

# The dump reply carries service and dest attributes as pyroute2 nla objects.
_SVC: Final = "IPVS_CMD_ATTR_SERVICE"
_DEST: Final = "IPVS_CMD_ATTR_DEST"

_GONE: Final = frozenset({errno.ENOENT, errno.ESRCH})

Attrs = list[tuple[str, Any]]
T = TypeVar("T")


# ---------------------------------------------------------------- errors


class IpvsError(Exception):
    """An IPVS operation failed; `code` is the errno behind it."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


class IpvsUnavailable(IpvsError):
    """The kernel has no IPVS: the generic-netlink family "IPVS" is missing (ip_vs not loaded
    or not built), or netlink itself is unusable here."""


class IpvsRequestError(IpvsError):
    """The kernel refused one request (`action` on `target`)."""

    def __init__(self, action: str, target: str, code: int) -> None:
        name = errno.errorcode.get(code, f"errno {code}")
        super().__init__(f"ipvs {action} {target}: {name} ({os.strerror(code)})", code)
        self.action = action
        self.target = target


class IpvsNotFound(IpvsRequestError):
    """An edit, or a dest write, named a service or dest the kernel does not have."""


# ---------------------------------------------------------------- encoding


def _netmask_to_wire(family: Family, prefix: int) -> str:
    # The kernel reads IPVS_SVC_ATTR_NETMASK as a raw u32: a big-endian mask for
    # IPv4, but a host-order prefix length for IPv6. pyroute2 types the attribute
    # as an IPv4 address, so an IPv6 prefix travels as the dotted form of its
    # host-order bytes (128 on x86 is "128.0.0.0").
    if family is Family.IPV4:
        return str(IPv4Network(f"0.0.0.0/{prefix}").netmask)
    return socket.inet_ntoa(struct.pack("=I", prefix))


def _netmask_from_wire(family: Family, dotted: str) -> int:
    raw = socket.inet_aton(dotted)
    if family is Family.IPV6:
        return int(struct.unpack("=I", raw)[0])
    # A non-contiguous IPv4 mask cannot come from ipvsadm; count its bits rather
    # than fail a whole dump over someone else's odd service.
    return bin(int.from_bytes(raw, "big")).count("1")


def _flag_bits(svc: LiveService) -> int:
    bits = F_PERSISTENT if svc.persistent else 0
    for name in svc.scheduler_flags:
        try:
            bits |= _FLAG_BITS[name]
        except KeyError:
            raise ValueError(f"{svc.service}: unknown scheduler flag {name!r}") from None
    return bits


def _flag_names(scheduler: str, bits: int) -> tuple[str, ...]:
    named = scheduler in _NAMED_SCHEDULERS
    names = []
    if bits & F_SCHED1:
        names.append(f"{scheduler}-fallback" if named else "flag-1")
    if bits & F_SCHED2:
        names.append(f"{scheduler}-port" if named else "flag-2")
    if bits & F_SCHED3:
        names.append("flag-3")
    if bits & F_ONEPACKET:
        names.append("ops")
    # The config layer sorts the names; sorting here makes both sides agree.
    return tuple(sorted(names))


def _full_prefix(family: Family) -> int:
    return 32 if family is Family.IPV4 else 128


def _service_key_attrs(key: ServiceKey) -> Attrs:
    # The family goes first: pyroute2 picks the address codec from it.
    attrs: Attrs = [("IPVS_SVC_ATTR_AF", _AF[key.family])]
    if key.fwmark:
        attrs.append(("IPVS_SVC_ATTR_FWMARK", key.fwmark))
        return attrs
    if key.protocol is None or key.address is None:
        raise ValueError(f"{key}: a service needs a fwmark or a protocol and an address")
    attrs += [
        ("IPVS_SVC_ATTR_PROTOCOL", _PROTO[key.protocol]),
        ("IPVS_SVC_ATTR_ADDR", str(key.address)),
        ("IPVS_SVC_ATTR_PORT", key.port),
    ]
    return attrs


def _service_attrs(svc: LiveService) -> Attrs:
    family = svc.service.family
    # Without persistence the kernel ignores timeout and netmask, but reports
    # back whatever it was given: send the values a dump normalizes to.
    timeout = round(svc.timeout.total_seconds()) if svc.persistent else 0
    prefix = svc.netmask if svc.persistent else _full_prefix(family)
    return [
        *_service_key_attrs(svc.service),
        ("IPVS_SVC_ATTR_SCHED_NAME", svc.scheduler),
        ("IPVS_SVC_ATTR_FLAGS", {"flags": _flag_bits(svc), "mask": _ALL_FLAGS}),
        ("IPVS_SVC_ATTR_TIMEOUT", timeout),
        # The kernel rejects (EINVAL) a new service without a netmask, fwmark and
        # IPv6 ones included.
        ("IPVS_SVC_ATTR_NETMASK", _netmask_to_wire(family, prefix)),
    ]


def _dest_key_attrs(address: IPAddress, port: int) -> Attrs:
    return [
        ("IPVS_DEST_ATTR_ADDR_FAMILY", _AF[Family.of(address)]),
        ("IPVS_DEST_ATTR_ADDR", str(address)),
        ("IPVS_DEST_ATTR_PORT", port),
    ]


def _dest_attrs(dest: LiveDest) -> Attrs:
    # SET_DEST replaces every field: forwarding and thresholds are always sent,
    # or the kernel would take the zero (NAT, no threshold) for them.
    return [
        *_dest_key_attrs(dest.address, dest.port),
        ("IPVS_DEST_ATTR_FWD_METHOD", _FWD[dest.forwarding]),
        ("IPVS_DEST_ATTR_WEIGHT", dest.weight),
        ("IPVS_DEST_ATTR_U_THRESH", dest.upper_threshold),
        ("IPVS_DEST_ATTR_L_THRESH", dest.lower_threshold),
    ]


# ---------------------------------------------------------------- decoding


def _without_stats(nla_map: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
    return tuple((name, "none") if "_STATS" in name else (name, kind) for name, kind in nla_map)


class _DumpMsg(genl.ipvsmsg):  # type: ignore[misc]
    """The IPVS reply format with the statistics left undecoded.

    Every service and dest in a dump carries two nests of counters (about 30
    attributes, kernel padding included) that the model does not hold; decoding
    them lazily in pyroute2 cost most of a no-op reconcile pass.
    """

    class service(genl.ipvsmsg.service):  # type: ignore[misc]
        nla_map = _without_stats(genl.ipvsmsg.service.nla_map)

    class dest(genl.ipvsmsg.dest):  # type: ignore[misc]
        nla_map = _without_stats(genl.ipvsmsg.dest.nla_map)


class _Skip(Exception):
    """A kernel object the model cannot express (e.g. an AH/ESP service); left out."""


def _nla(msg: Any, name: str) -> Any:
    nla = msg.get(name)
    if nla is None:
        raise _Skip(f"reply without {name}")
    return nla


def _decode_key(nla: Any) -> ServiceKey:
    af = nla.get("IPVS_SVC_ATTR_AF")
    family = _FAMILY.get(af)
    if family is None:
        raise _Skip(f"address family {af}")
    fwmark = nla.get("IPVS_SVC_ATTR_FWMARK") or 0
    if fwmark:
        return ServiceKey(family=family, fwmark=int(fwmark))
    proto = nla.get("IPVS_SVC_ATTR_PROTOCOL")
    protocol = _PROTOCOL.get(proto)
    if protocol is None:
        raise _Skip(f"protocol {proto}")
    return ServiceKey(
        family=family,
        protocol=protocol,
        address=ip_address(nla.get("IPVS_SVC_ATTR_ADDR")),
        port=int(nla.get("IPVS_SVC_ATTR_PORT")),
    )


def _decode_service(msg: Any) -> LiveService:
    nla = _nla(msg, _SVC)
    key = _decode_key(nla)
    scheduler = str(nla.get("IPVS_SVC_ATTR_SCHED_NAME"))
    flags = nla.get("IPVS_SVC_ATTR_FLAGS") or {}
    bits = int(flags.get("flags", 0)) & ~F_HASHED
    persistent = bool(bits & F_PERSISTENT)
    full = _full_prefix(key.family)
    netmask = full
    if persistent and nla.get("IPVS_SVC_ATTR_NETMASK") is not None:
        netmask = _netmask_from_wire(key.family, nla.get("IPVS_SVC_ATTR_NETMASK"))
    timeout = int(nla.get("IPVS_SVC_ATTR_TIMEOUT") or 0) if persistent else 0
    return LiveService(
        service=key,
        scheduler=scheduler,
        scheduler_flags=_flag_names(scheduler, bits),
        persistent=persistent,
        timeout=timedelta(seconds=timeout),
        netmask=netmask,
    )


def _decode_dest(key: ServiceKey, msg: Any) -> LiveDest:
    nla = _nla(msg, _DEST)
    fwd = int(nla.get("IPVS_DEST_ATTR_FWD_METHOD") or 0) & 0x7  # IP_VS_CONN_F_FWD_MASK
    forwarding = _FORWARDING.get(fwd)
    if forwarding is None:
        raise _Skip(f"forwarding method {fwd}")  # LOCALNODE / BYPASS: not ours
    return LiveDest(
        service=key,
        address=ip_address(nla.get("IPVS_DEST_ATTR_ADDR")),
        port=int(nla.get("IPVS_DEST_ATTR_PORT")),
        weight=int(nla.get("IPVS_DEST_ATTR_WEIGHT")),
        forwarding=forwarding,
        upper_threshold=int(nla.get("IPVS_DEST_ATTR_U_THRESH") or 0),
        lower_threshold=int(nla.get("IPVS_DEST_ATTR_L_THRESH") or 0),
        active_connections=int(nla.get("IPVS_DEST_ATTR_ACTIVE_CONNS") or 0),
        inactive_connections=int(nla.get("IPVS_DEST_ATTR_INACT_CONNS") or 0),
    )


@contextmanager
def _scheduler_hint(svc: LiveService) -> Iterator[None]:
    # A missing service is ESRCH; ENOENT on a service write means the kernel has
    # no scheduler module of that name, which is not "not found" for the caller.
    try:
        yield
    except IpvsNotFound as e:
        if e.code != errno.ENOENT:
            raise
        target = f"{e.target} (no scheduler {svc.scheduler!r} in this kernel)"
        raise IpvsRequestError(e.action, target, e.code) from e


def _dest_target(service: ServiceKey, address: IPAddress, port: int) -> str:
    host = f"[{address}]" if isinstance(address, IPv6Address) else str(address)
    return f"{service} -> {host}:{port}"


# ---------------------------------------------------------------- the adapter


class Ipvs:
    """Async IPVS for one network namespace (None: the current one).

    Use as ``async with Ipvs() as ipvs: ...``, within one event loop. Requests
    may be awaited concurrently (replies are matched by sequence number).
    `writes` counts the write requests sent to the kernel (adds, edits,
    deletes, successful or not): one per call.
    """

    def __init__(self, netns: str | None = None) -> None:
        self._netns = netns
        self._sock: Any = None
        self.writes = 0

    # ------------------------------------------------------------ lifecycle
    async def open(self) -> None:
        if self._sock is not None:
            return
        try:
            sock = AsyncIPVS(netns=self._netns) if self._netns else AsyncIPVS()
        except OSError as e:
            raise IpvsUnavailable(f"IPVS: cannot open a netlink socket: {e}", e.errno or 0) from e
        # pyroute2 logs a missing family at ERROR level; we raise a clear error instead.
        sock.module_err_level = "debug"
        try:
            await sock.setup_endpoint()
        except NetlinkError as e:
            sock.close()
            if e.code == errno.ENOENT:
                raise IpvsUnavailable(
                    'IPVS is not available in this kernel: no generic-netlink family "IPVS"'
                    " (load the ip_vs module)",
                    e.code,
                ) from e
            raise IpvsUnavailable(f"IPVS: generic-netlink lookup failed: {e}", e.code) from e
        sock.marshal.msg_map[sock.prid] = _DumpMsg
        self._sock = sock

    async def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    async def __aenter__(self) -> Ipvs:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # ------------------------------------------------------------ reads
    async def dump(self) -> tuple[list[LiveService], list[LiveDest]]:
        """Every service and every dest of this namespace, sorted by key.

        Objects the model cannot express (AH/ESP services, LOCALNODE dests)
        are left out and logged. Not atomic: a service removed between the two
        dumps just has no dests, which the next pass sees.
        """
        services = await self.services()
        dests: list[LiveDest] = []
        for svc in services:
            dests += await self.dests(svc.service)
        return services, dests

    async def services(self) -> list[LiveService]:
        replies = await self._dump(genl.IPVS_CMD_GET_SERVICE, [], "dump services")
        out = _decode_all(_decode_service, replies)
        return sorted(out, key=lambda s: s.key)

    async def dests(self, service: ServiceKey) -> list[LiveDest]:
        """The dests of `service`; [] if the service is gone."""
        attrs = [(_SVC, {"attrs": _service_key_attrs(service)})]
        try:
            replies = await self._dump(genl.IPVS_CMD_GET_DEST, attrs, f"dump {service}")
        except IpvsNotFound:
            return []
        out = _decode_all(lambda m: _decode_dest(service, m), replies)
        return sorted(out, key=lambda d: d.key)

    # ------------------------------------------------------------ service writes
    async def add_service(self, svc: LiveService) -> WriteOutcome:
        """Create `svc`. If a service with its key exists (whatever its settings), UNCHANGED."""
        attrs = [(_SVC, {"attrs": _service_attrs(svc)})]
        with _scheduler_hint(svc):
            return await self._add(genl.IPVS_CMD_NEW_SERVICE, attrs, f"add {svc.service}")

    async def edit_service(self, svc: LiveService) -> WriteOutcome:
        """Set scheduler, flags, persistence timeout and netmask in place (IPVS_CMD_SET_SERVICE):
        the service keeps its dests, connections and statistics. Raises IpvsNotFound."""
        attrs = [(_SVC, {"attrs": _service_attrs(svc)})]
        with _scheduler_hint(svc):
            await self._write(genl.IPVS_CMD_SET_SERVICE, attrs, f"edit {svc.service}")
        return WriteOutcome.UPDATED

    async def delete_service(self, service: ServiceKey) -> WriteOutcome:
        """Delete `service` and its dests; UNCHANGED if it is already gone."""
        attrs = [(_SVC, {"attrs": _service_key_attrs(service)})]
        return await self._delete(genl.IPVS_CMD_DEL_SERVICE, attrs, f"delete {service}")

    # ------------------------------------------------------------ dest writes
    async def add_dest(self, dest: LiveDest) -> WriteOutcome:
        """Add `dest` to its service. UNCHANGED if it is there; IpvsNotFound if the service
        is not."""
        attrs = [
            (_SVC, {"attrs": _service_key_attrs(dest.service)}),
            (_DEST, {"attrs": _dest_attrs(dest)}),
        ]
        target = _dest_target(dest.service, dest.address, dest.port)
        return await self._add(genl.IPVS_CMD_NEW_DEST, attrs, f"add {target}")

    async def edit_dest(self, dest: LiveDest) -> WriteOutcome:
        """Set weight, forwarding and thresholds in place (IPVS_CMD_SET_DEST): the dest keeps
        its connections and statistics. Raises IpvsNotFound."""
        attrs = [
            (_SVC, {"attrs": _service_key_attrs(dest.service)}),
            (_DEST, {"attrs": _dest_attrs(dest)}),
        ]
        target = _dest_target(dest.service, dest.address, dest.port)
        await self._write(genl.IPVS_CMD_SET_DEST, attrs, f"edit {target}")
        return WriteOutcome.UPDATED

    async def delete_dest(self, service: ServiceKey, address: IPAddress, port: int) -> WriteOutcome:
        """Remove a dest; UNCHANGED if it, or its whole service, is already gone."""
        attrs = [
            (_SVC, {"attrs": _service_key_attrs(service)}),
            (_DEST, {"attrs": _dest_key_attrs(address, port)}),
        ]
        target = _dest_target(service, address, port)
        return await self._delete(genl.IPVS_CMD_DEL_DEST, attrs, f"delete {target}")

    # ------------------------------------------------------------ requests
    async def _add(self, cmd: int, attrs: Attrs, what: str) -> WriteOutcome:
        try:
            await self._write(cmd, attrs, what)
        except IpvsRequestError as e:
            if e.code == errno.EEXIST:
                return WriteOutcome.UNCHANGED
            raise
        return WriteOutcome.CREATED

    async def _delete(self, cmd: int, attrs: Attrs, what: str) -> WriteOutcome:
        try:
            await self._write(cmd, attrs, what)
        except IpvsNotFound:
            return WriteOutcome.UNCHANGED
        return WriteOutcome.DELETED

    async def _write(self, cmd: int, attrs: Attrs, what: str) -> None:
        self.writes += 1
        # NLM_F_ACK: the kernel answers every write, so failures surface here.
        await self._request(cmd, attrs, what, NLM_F_REQUEST | NLM_F_ACK)

    async def _dump(self, cmd: int, attrs: Attrs, what: str) -> list[Any]:
        return await self._request(cmd, attrs, what, NLM_F_REQUEST | NLM_F_DUMP)

    async def _request(self, cmd: int, attrs: Attrs, what: str, flags: int) -> list[Any]:
        if self._sock is None:
            raise RuntimeError("Ipvs is not open (use `async with Ipvs() as ipvs`)")
        msg = genl.ipvsmsg()
        msg["cmd"] = cmd
        msg["version"] = genl.GENL_VERSION
        msg["attrs"] = attrs
        action, _, target = what.partition(" ")
        try:
            replies = await self._sock.nlm_request(msg, msg_type=self._sock.prid, msg_flags=flags)
            return [m async for m in replies]
        except NetlinkError as e:
            kind = IpvsNotFound if e.code in _GONE else IpvsRequestError
            raise kind(action, target, e.code) from e


def _decode_all(decode: Callable[[Any], T], replies: Iterable[Any]) -> list[T]:
    out: list[T] = []
    for m in replies:
        try:
            out.append(decode(m))
        except _Skip as e:
            log.info("ipvs: skipping a kernel object the model cannot express: %s", e)
    return out
