"""VRRP instances: the rules of one `vrrp.instances` entry, then its copy on each node that
runs it, with the per-node values (interface, priority, unicast peers) resolved.

An instance's setting is its own if it has one, else the one in `vrrp.defaults`, else the
default keepalived and RFC 5798 give it.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from reconciler.config.build_context import Context, Setting, known
from reconciler.config.build_hooks import notify
from reconciler.config.build_sync import group_of
from reconciler.config.yamlload import Path, dotted
from reconciler.model.cluster import Node
from reconciler.model.common import Family, IPAddress
from reconciler.model.vrrp import (
    Garp,
    Notify,
    Track,
    TrackCheck,
    TrackInterface,
    UnicastChecksum,
    Vip,
    VrrpInstance,
)

# RFC 5798 5.2.7: Max Adver Int is 12 bits of centiseconds.
V3_MIN_ADVERT = timedelta(milliseconds=10)
V3_MAX_ADVERT = timedelta(milliseconds=40950)
# RFC 3768 5.3.7: Adver Int is 8 bits of seconds.
V2_MAX_ADVERT = timedelta(seconds=255)
MAX_PREEMPT_DELAY = timedelta(seconds=1000)  # keepalived's bound

_Interface = ipaddress.IPv4Interface | ipaddress.IPv6Interface


def setting(ctx: Context, inst: str, key: str) -> Setting | None:
    """The instance's own `key`, else the one in vrrp.defaults, else None."""
    inst_path: Path = ("vrrp", "instances", inst, key)
    if ctx.has(inst_path):
        return Setting(ctx.doc.get(inst_path), inst_path)
    def_path: Path = ("vrrp", "defaults", key)
    if ctx.has(def_path):
        return Setting(ctx.doc.get(def_path), def_path)
    return None


def instances(ctx: Context, nodes: tuple[Node, ...]) -> dict[str, list[VrrpInstance]]:
    """Every node's instances; an instance with an error is on no node."""
    by_node: dict[str, list[VrrpInstance]] = {}
    names: dict[str, Any] = ctx.data.get("vrrp", {}).get("instances", {})
    vip_owner: dict[IPAddress, tuple[str, Path]] = {}
    for name in names:
        for node_name, inst in _Instance(ctx, name, nodes).build(vip_owner):
            by_node.setdefault(node_name, []).append(inst)
    return by_node


@dataclass(frozen=True)
class _Shared:
    """The values an instance has on every node that runs it."""

    interval: timedelta
    preempt_delay: timedelta
    prio: Setting | None
    iface: Setting | None
    members: list[str]
    unicast: bool
    auth: Setting | None
    track: tuple[Track, ...]
    notify: Notify
    garp: Garp
    sync_group: str | None


class _Instance:
    """One entry of vrrp.instances."""

    def __init__(self, ctx: Context, name: str, nodes: tuple[Node, ...]) -> None:
        self.ctx = ctx
        self.name = name
        self.path: Path = ("vrrp", "instances", name)
        self.where = dotted(self.path)
        self.raw: dict[str, Any] = ctx.doc.get(self.path)
        self.node_by_name = {n.name: n for n in nodes}
        self.version_s = self.setting("version")
        self.version: int = self.version_s.value if self.version_s else 3
        self.vips_raw: list[Any] = self.raw["vips"]
        self.parsed: list[tuple[_Interface, dict[str, Any]]] = []
        for v in self.vips_raw:
            opts = v if isinstance(v, dict) else {"address": v}
            self.parsed.append((ipaddress.ip_interface(opts["address"]), opts))
        self.family = Family.of(self.parsed[0][0])

    def setting(self, key: str) -> Setting | None:
        return setting(self.ctx, self.name, key)

    def node_addr(self, n: Node) -> IPAddress | None:
        return n.address if self.family is Family.IPV4 else n.address6

    def build(self, vip_owner: dict[IPAddress, tuple[str, Path]]) -> list[tuple[str, VrrpInstance]]:
        """(node, instance) for each node that runs it; none if the instance has an error."""
        ctx = self.ctx
        n_errors = len(ctx.errors)
        interval_s = self.setting("advert_interval")
        interval = (
            ctx.duration(interval_s.path)
            if interval_s and interval_s.path
            else timedelta(seconds=1)
        )
        self._check_families()
        self._check_vip_owners(vip_owner)
        self._check_version(interval_s, interval)
        auth_s = self.setting("authentication")
        if auth_s and self.version == 3 and auth_s.path:
            ctx.error(
                auth_s.path,
                f"{self.where}: authentication needs VRRPv2; VRRPv3 has none (RFC 5798 9)",
                at_key=True,
            )
        delay_s = self.setting("preempt_delay")
        preempt_delay = ctx.duration(delay_s.path) if delay_s and delay_s.path else timedelta(0)
        if preempt_delay > MAX_PREEMPT_DELAY and delay_s and delay_s.path:
            ctx.error(delay_s.path, f"{self.where}: preempt_delay must be at most 1000s")
        prio_s, iface_s, members = self._members()
        unicast = self._unicast(members)
        shared = _Shared(
            interval=interval,
            preempt_delay=preempt_delay,
            prio=prio_s,
            iface=iface_s,
            members=members,
            unicast=unicast,
            auth=auth_s,
            track=tracks(ctx, self.name),
            notify=notify(ctx, self.setting("notify")),
            garp=garp(ctx, self.setting("garp")),
            sync_group=group_of(ctx, self.name),
        )
        if len(ctx.errors) > n_errors:
            return []
        equal_priorities(ctx, self.path, prio_s, members)
        out = []
        for m in members:
            inst = self._on_node(m, shared)
            if inst is not None:
                out.append((m, inst))
        return out

    def _check_families(self) -> None:
        """RFC 5798: one address family per virtual router."""
        for i, (addr, _) in enumerate(self.parsed):
            if Family.of(addr) is not self.family:
                self.ctx.error(
                    _vip_path(self.path, i, self.vips_raw),
                    f"{self.where}.vips: mixes IPv4 and IPv6 VIPs; put {self.parsed[i][0].ip} "
                    "in an instance of its own (RFC 5798 allows one address family per "
                    "virtual router)",
                )

    def _check_vip_owners(self, vip_owner: dict[IPAddress, tuple[str, Path]]) -> None:
        """A VIP is listed once, in one instance."""
        for i, (addr, _) in enumerate(self.parsed):
            vpath = _vip_path(self.path, i, self.vips_raw)
            if addr.ip not in vip_owner:
                vip_owner[addr.ip] = (self.name, vpath)
            elif (owner := vip_owner[addr.ip])[0] == self.name:
                self.ctx.error(vpath, f"{self.where}.vips: {addr.ip} is listed twice")
            else:
                self.ctx.error(
                    vpath,
                    f"{self.where}.vips: {addr.ip} already belongs to instance {owner[0]!r} "
                    f"(line {self.ctx.doc.value_at(owner[1]).line}); "
                    "a VIP belongs to one instance only",
                )

    def _check_version(self, interval_s: Setting | None, interval: timedelta) -> None:
        """What the VRRP version allows: the family, and the advert interval's range and step."""
        where, version_s = self.where, self.version_s
        # Version 2 is never the default: it is set, where the error points.
        if self.version == 2 and self.family is Family.IPV6 and version_s and version_s.path:
            self.ctx.error(
                version_s.path,
                f"{where}: VRRPv2 (RFC 3768) carries only IPv4; use version 3 for IPv6 VIPs",
            )
        if not interval_s or not interval_s.path:
            return
        ipath = interval_s.path
        if self.version == 2:
            if (
                interval % timedelta(seconds=1)
                or not timedelta(seconds=1) <= interval <= V2_MAX_ADVERT
            ):
                self.ctx.error(
                    ipath,
                    f"{where}: VRRPv2 advert_interval must be whole seconds from 1s to 255s "
                    f"(got {self.ctx.doc.get(ipath)}); keepalived would silently round it",
                )
        elif interval % V3_MIN_ADVERT or not V3_MIN_ADVERT <= interval <= V3_MAX_ADVERT:
            self.ctx.error(
                ipath,
                f"{where}: VRRPv3 advert_interval must be 10ms to 40.95s in steps of 10ms "
                f"(got {self.ctx.doc.get(ipath)})",
            )

    def _members(self) -> tuple[Setting | None, Setting | None, list[str]]:
        """The priority and interface settings, and the nodes that run the instance: those
        given a priority, or every node."""
        prio_s = self.setting("priority")
        iface_s = self.setting("interface")
        if prio_s and isinstance(prio_s.value, dict) and prio_s.path:
            self.ctx.unknown_nodes(prio_s.path, list(prio_s.value), keys=True)
            members = [n for n in prio_s.value if n in self.ctx.node_names]
        else:
            members = list(self.ctx.node_names)
        if iface_s and isinstance(iface_s.value, dict) and iface_s.path:
            self.ctx.unknown_nodes(iface_s.path, list(iface_s.value), keys=True)
        return prio_s, iface_s, members

    def _unicast(self, members: list[str]) -> bool:
        """Whether adverts are unicast; each member then needs an address of the family."""
        unicast_s = self.setting("unicast")
        unicast = bool(unicast_s and unicast_s.value)
        if unicast and unicast_s and unicast_s.path:
            for m in members:
                if self.node_addr(self.node_by_name[m]) is None:
                    key = "address" if self.family is Family.IPV4 else "address6"
                    self.ctx.error(
                        unicast_s.path,
                        f"{self.where}: unicast needs every member's {key}: "
                        f"nodes.{m}.{key} is not set",
                    )
        return unicast

    def _on_node(self, m: str, shared: _Shared) -> VrrpInstance | None:
        """The instance as node `m` runs it; None (with an error) if it cannot."""
        node = self.node_by_name[m]
        iface = self._interface(m, node, shared.iface)
        if iface is None:
            return None
        priority = self._priority(m, node, shared.prio)
        if priority is None:
            return None
        peers = (
            tuple(
                a
                for o in shared.members
                if o != m and (a := self.node_addr(self.node_by_name[o])) is not None
            )
            if shared.unicast
            else ()
        )
        s = self.setting
        return VrrpInstance(
            name=self.name,
            vrid=self.raw["vrid"],
            version=self.version,
            family=self.family,
            interface=iface,
            priority=priority,
            advert_interval=shared.interval,
            vips=tuple(
                Vip(
                    address=a,
                    dev=opts.get("dev", iface),
                    label=opts.get("label"),
                    scope=opts.get("scope", "global"),
                )
                for a, opts in self.parsed
            ),
            primary_address=self.node_addr(node),
            preempt=bool(v.value) if (v := s("preempt")) else True,
            preempt_delay=shared.preempt_delay,
            unicast_peers=peers,
            unicast_checksum=UnicastChecksum(v.value if (v := s("unicast_checksum")) else "auto"),
            unicast_source_check=bool(v.value) if (v := s("unicast_source_check")) else True,
            unicast_min_ttl=v.value if (v := s("unicast_min_ttl")) else None,
            auth_password=shared.auth.value["password"] if shared.auth else None,
            accept=bool(v.value) if (v := s("accept")) else True,
            answer_lower_priority=bool(v.value) if (v := s("answer_lower_priority")) else True,
            garp=shared.garp,
            track=shared.track,
            notify=shared.notify,
            sync_group=shared.sync_group,
        )

    def _interface(self, m: str, node: Node, iface_s: Setting | None) -> str | None:
        if iface_s is None:
            iface: str | None = node.interface
        elif isinstance(iface_s.value, dict):
            iface = iface_s.value.get(m, node.interface)
        else:
            iface = iface_s.value
        if iface is None:
            self.ctx.error(
                self.path,
                f"{self.where}: node {m!r} runs this instance but has no interface: "
                f"set nodes.{m}.interface or the instance's interface",
                at_key=True,
            )
        return iface

    def _priority(self, m: str, node: Node, prio_s: Setting | None) -> int | None:
        if prio_s is None:
            priority: int = 100
        elif isinstance(prio_s.value, dict):
            priority = prio_s.value[m]
        else:
            priority = prio_s.value
        if priority == 255 and not any(self.node_addr(node) == a.ip for a, _ in self.parsed):
            assert prio_s is not None and prio_s.path is not None
            at = (*prio_s.path, m) if isinstance(prio_s.value, dict) else prio_s.path
            self.ctx.error(
                at,
                f"{self.where}: priority 255 is only for the address owner, and node {m!r} "
                "does not have a VIP as its address; use 1-254",
            )
            return None
        return priority


def equal_priorities(ctx: Context, path: Path, prio_s: Setting | None, members: list[str]) -> None:
    """RFC 5798 6.4.3: between equal priorities the higher primary IP address wins, so
    which node is master follows the addressing, not this file."""
    if len(members) < 2:
        return
    where = dotted(path)
    why = (
        "between equal priorities the node with the higher primary address becomes "
        "master (RFC 5798 6.4.3); give the preferred node a higher priority"
    )
    if prio_s is None or prio_s.path is None:
        ctx.warning(
            path,
            f"{where}: no priority is set, so every node ({', '.join(members)}) runs it "
            f"with priority 100: {why}",
            at_key=True,
        )
        return
    if not isinstance(prio_s.value, dict):
        ctx.warning(
            prio_s.path,
            f"{where}: every node ({', '.join(members)}) runs it with priority "
            f"{prio_s.value}: {why}",
        )
        return
    first: dict[int, str] = {}
    for m in members:
        value = prio_s.value[m]
        if value in first:
            ctx.warning(
                (*prio_s.path, m),
                f"{where}.priority: {first[value]} and {m} both have priority {value}: {why}",
            )
        first.setdefault(value, m)


def tracks(ctx: Context, inst: str) -> tuple[Track, ...]:
    s = setting(ctx, inst, "track")
    if not s or not s.path:
        return ()
    out: list[Track] = []
    for i, t in enumerate(s.value):
        weight = t.get("weight", 0)
        if "check" in t:
            if t["check"] not in ctx.check_names:
                ctx.error(
                    (*s.path, i, "check"),
                    f"{dotted(s.path)}[{i}].check: unknown check {t['check']!r} "
                    f"({known(t['check'], ctx.check_names, 'checks')})",
                )
            out.append(TrackCheck(t["check"], weight))
        else:
            out.append(TrackInterface(t["interface"], weight))
    return tuple(out)


def garp(ctx: Context, s: Setting | None) -> Garp:
    if not s or not s.path:
        return Garp()
    p, v, d = s.path, s.value, Garp()
    return Garp(
        master_repeat=v.get("master_repeat", d.master_repeat),
        master_delay=ctx.duration_or((*p, "master_delay"), d.master_delay),
        master_refresh=ctx.duration_or((*p, "master_refresh"), d.master_refresh),
        master_refresh_repeat=v.get("master_refresh_repeat", d.master_refresh_repeat),
        interval=ctx.duration_or((*p, "interval"), d.interval),
    )


def _vip_path(path: Path, i: int, vips: list[Any]) -> Path:
    return (*path, "vips", i, "address") if isinstance(vips[i], dict) else (*path, "vips", i)
