"""Semantic and cross-node checks, then the normalized model.

Runs on a document that passed the JSON Schema, so types and ranges are known
good here; what is checked is what a schema cannot say: references between
parts of the file, uniqueness across instances and nodes, and rules that depend
on the VRRP version or the address family. Every error points at the key or
value it is about. Defaults are filled the way keepalived and the kernel fill
them, so that a model built from a file equals the state a converged node
reports.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from reconciler.config.diagnostics import Diagnostic, InvalidConfig, Severity, did_you_mean
from reconciler.config.yamlload import Document, Path, dotted
from reconciler.model.checks import (
    Check,
    DnsProbe,
    FileProbe,
    HttpProbe,
    InterfaceProbe,
    Probe,
    ScriptProbe,
    TcpProbe,
    TlsOptions,
)
from reconciler.model.cluster import Cluster, Node, NodeConfig, Sysctls
from reconciler.model.common import CheckState, Family, IPAddress
from reconciler.model.durations import parse_duration
from reconciler.model.ipvs import (
    Endpoint,
    Forwarding,
    Persistence,
    Protocol,
    Quorum,
    RealServer,
    ServiceKey,
    VirtualService,
)
from reconciler.model.vrrp import (
    DEFAULT_HOOK_USER,
    Garp,
    Hook,
    Notify,
    SyncGroup,
    Track,
    TrackCheck,
    TrackInterface,
    UnicastChecksum,
    Vip,
    VrrpInstance,
)

DEFAULT_HOOK_TIMEOUT = timedelta(seconds=5)
# RFC 5798 5.2.7: Max Adver Int is 12 bits of centiseconds.
V3_MIN_ADVERT = timedelta(milliseconds=10)
V3_MAX_ADVERT = timedelta(milliseconds=40950)
# RFC 3768 5.3.7: Adver Int is 8 bits of seconds.
V2_MAX_ADVERT = timedelta(seconds=255)
MAX_PREEMPT_DELAY = timedelta(seconds=1000)  # keepalived's bound


def build(doc: Document) -> tuple[Cluster, list[Diagnostic]]:
    """The model for a schema-valid document and its warnings (valid, but likely not what
    was meant); InvalidConfig with every semantic error."""
    builder = _Builder(doc)
    cluster = builder.build()
    if builder.errors:
        raise InvalidConfig(builder.errors)
    return cluster, sorted(builder.warnings, key=Diagnostic.sort_key)


@dataclass(frozen=True)
class _Setting:
    value: Any
    path: Path | None  # None: built-in default


class _Builder:
    def __init__(self, doc: Document) -> None:
        self.doc = doc
        self.data: dict[str, Any] = doc.data
        self.errors: list[Diagnostic] = []
        self.warnings: list[Diagnostic] = []
        self.node_names: list[str] = list(self.data["nodes"])
        self.check_names: list[str] = list(self.data.get("checks", {}))

    # ------------------------------------------------------------ reporting
    def error(self, path: Path, message: str, *, at_key: bool = False) -> None:
        loc = self.doc.key_at(path) if at_key else self.doc.value_at(path)
        self.errors.append(Diagnostic(loc, message))

    def warning(self, path: Path, message: str, *, at_key: bool = False) -> None:
        loc = self.doc.key_at(path) if at_key else self.doc.value_at(path)
        diagnostic = Diagnostic(loc, message, Severity.WARNING)
        if diagnostic not in self.warnings:  # a default block is read once per instance
            self.warnings.append(diagnostic)

    def user(self, path: Path, default: str, role: str) -> str:
        """The `user` at `path` (default `default`); root is allowed, with a warning."""
        if not self._has(path):
            return default
        user = str(self.doc.get(path))
        if user == "root":
            self.warning(
                path,
                f"{dotted(path)}: {role} run as root: a mistake or a compromised program "
                "owns the node; prefer an unprivileged user (the default is nobody)",
            )
        return user

    def duration(self, path: Path) -> timedelta:
        try:
            return parse_duration(self.doc.get(path))
        except ValueError as exc:
            self.error(path, f"{dotted(path)}: {exc}")
            return timedelta(0)

    def duration_or(self, path: Path, default: timedelta) -> timedelta:
        return self.duration(path) if self._has(path) else default

    def _has(self, path: Path) -> bool:
        try:
            self.doc.get(path)
        except (KeyError, IndexError, TypeError):
            return False
        return True

    # ------------------------------------------------------------ top level
    def build(self) -> Cluster:
        nodes = tuple(self._node(name) for name in self.node_names)
        tracked = self._tracked_check_names()
        checks = {
            name: self._check(("checks", name), name, tracking=name in tracked)
            for name in self.check_names
        }
        self._check_unique_sync_membership()
        per_node_instances = self._instances(nodes)
        per_node_services = self._services(checks)
        node_configs = []
        for node in nodes:
            instances = per_node_instances.get(node.name, [])
            tracked = {t.check for i in instances for t in i.track if isinstance(t, TrackCheck)}
            groups = self._sync_groups({i.name for i in instances})
            services, servers = per_node_services.get(node.name, ([], []))
            node_configs.append(
                NodeConfig(
                    node=node,
                    checks=tuple(checks[c] for c in sorted(tracked) if c in checks),
                    instances=tuple(sorted(instances, key=lambda i: i.name)),
                    sync_groups=tuple(groups),
                    services=tuple(sorted(services, key=lambda s: s.key)),
                    real_servers=tuple(sorted(servers, key=lambda r: r.key)),
                )
            )
        self._cross_node_vrid(per_node_instances)
        self._services_on_dropped_vips(node_configs)
        reconcile = self.data.get("reconcile", {})
        sysctls = self.data.get("director", {}).get("sysctls", {})
        return Cluster(
            name=self.data["name"],
            nodes=nodes,
            node_configs=tuple(node_configs),
            sysctls=Sysctls(**sysctls),
            resync_interval=self.duration_or(
                ("reconcile", "resync_interval"), timedelta(seconds=30)
            )
            if reconcile
            else timedelta(seconds=30),
            drain_timeout=self.duration_or(("reconcile", "drain_timeout"), timedelta(minutes=5))
            if reconcile
            else timedelta(minutes=5),
        )

    def _tracked_check_names(self) -> set[str]:
        vrrp = self.data.get("vrrp", {})
        sources = [vrrp.get("defaults", {}), *vrrp.get("instances", {}).values()]
        return {t["check"] for src in sources for t in src.get("track", ()) if "check" in t}

    def _node(self, name: str) -> Node:
        raw = self.data["nodes"][name]
        addr = raw.get("address")
        addr6 = raw.get("address6")
        return Node(
            name=name,
            address=ipaddress.IPv4Address(addr) if addr else None,
            address6=ipaddress.IPv6Address(addr6) if addr6 else None,
            interface=raw.get("interface"),
            router_id=raw.get("router_id", name),
            labels=tuple(sorted(raw.get("labels", {}).items())),
        )

    def _unknown_nodes(self, path: Path, names: list[str], *, keys: bool) -> None:
        for i, name in enumerate(names):
            if name not in self.node_names:
                where = (*path, name) if keys else (*path, i)
                self.error(
                    where,
                    f"{dotted(path)}: unknown node {name!r} "
                    f"({_known(name, self.node_names, 'nodes')})",
                    at_key=keys,
                )

    # ------------------------------------------------------------ checks
    def _check(self, path: Path, name: str, *, tracking: bool = True) -> Check:
        raw = self.doc.get(path)
        probe = self._probe(path, raw, tracking=tracking)
        src = raw.get("source", {})
        interval = self.duration_or((*path, "interval"), timedelta(seconds=1))
        timeout = self.duration_or((*path, "timeout"), timedelta(seconds=1))
        for key, value in (("interval", interval), ("timeout", timeout)):
            if key in raw and value <= timedelta(0):
                self.error((*path, key), f"{dotted(path)}.{key}: must be greater than 0")
        return Check(
            name=name,
            probe=probe,
            interval=interval,
            timeout=timeout,
            rise=raw.get("rise", 1),
            fall=raw.get("fall", 1),
            retries=raw.get("retries", 0),
            retry_delay=self.duration_or((*path, "retry_delay"), timedelta(seconds=1)),
            initial=CheckState(raw.get("initial", "unknown")),
            source_address=_ip(src.get("address")),
            source_interface=src.get("interface"),
        )

    def _probe(self, path: Path, raw: dict[str, Any], *, tracking: bool) -> Probe:
        where = dotted(path)
        if "tcp" in raw:
            tcp = raw["tcp"]
            if tracking and ("host" not in tcp or "port" not in tcp):
                self.error(
                    (*path, "tcp"),
                    f"{where}.tcp: a check used for VRRP tracking needs host and port "
                    "(only real-server checks default them to the server)",
                    at_key=True,
                )
            return TcpProbe(host=_ip(tcp.get("host")), port=tcp.get("port"))
        if "http" in raw:
            http = raw["http"]
            url = http.get("url", "/")
            if tracking and not url.startswith(("http://", "https://")):
                self.error(
                    (*path, "http", "url") if "url" in http else (*path, "http"),
                    f"{where}.http.url: a check used for VRRP tracking needs an absolute "
                    "http:// or https:// URL",
                    at_key="url" not in http,
                )
            tls = http.get("tls")
            return HttpProbe(
                url=url,
                method=http.get("method", "GET"),
                status=_status_ranges(http.get("status", "200-299")),
                digest=(http["digest"].lower() if "digest" in http else None),
                regex=http.get("regex"),
                virtualhost=http.get("virtualhost"),
                headers=tuple(sorted(http.get("headers", {}).items())),
                tls=TlsOptions(
                    verify=tls.get("verify", True), ca_file=tls.get("ca_file"), sni=tls.get("sni")
                )
                if tls is not None
                else None,
            )
        if "dns" in raw:
            dns = raw["dns"]
            if tracking and "server" not in dns:
                self.error(
                    (*path, "dns"),
                    f"{where}.dns: a check used for VRRP tracking needs a server",
                    at_key=True,
                )
            return DnsProbe(
                name=dns["name"],
                type=dns.get("type", "A"),
                server=_ip(dns.get("server")),
                port=dns.get("port"),
                protocol=dns.get("protocol", "udp"),
                expect=tuple(dns.get("expect", ())),
            )
        if "script" in raw:
            s = raw["script"]
            return ScriptProbe(
                command=tuple(s["command"]),
                user=self.user(
                    (*path, "script", "user"), DEFAULT_HOOK_USER, "this check script is"
                ),
                shell=s.get("shell", False),
                dynamic_weight=s.get("dynamic_weight", False),
            )
        if "file" in raw:
            return FileProbe(path=raw["file"]["path"])
        return InterfaceProbe(name=raw["interface"]["name"])

    # ------------------------------------------------------------ VRRP
    def _setting(self, inst: str, key: str) -> _Setting | None:
        inst_path: Path = ("vrrp", "instances", inst, key)
        if self._has(inst_path):
            return _Setting(self.doc.get(inst_path), inst_path)
        def_path: Path = ("vrrp", "defaults", key)
        if self._has(def_path):
            return _Setting(self.doc.get(def_path), def_path)
        return None

    def _instances(self, nodes: tuple[Node, ...]) -> dict[str, list[VrrpInstance]]:
        by_node: dict[str, list[VrrpInstance]] = {}
        instances: dict[str, Any] = self.data.get("vrrp", {}).get("instances", {})
        vip_owner: dict[IPAddress, tuple[str, Path]] = {}
        for name in instances:
            for node_name, inst in self._instance(name, nodes, vip_owner):
                by_node.setdefault(node_name, []).append(inst)
        return by_node

    def _instance(
        self,
        name: str,
        nodes: tuple[Node, ...],
        vip_owner: dict[IPAddress, tuple[str, Path]],
    ) -> Iterator[tuple[str, VrrpInstance]]:
        path: Path = ("vrrp", "instances", name)
        where = dotted(path)
        raw = self.doc.get(path)
        n_errors = len(self.errors)

        version_s = self._setting(name, "version")
        version = version_s.value if version_s else 3
        interval_s = self._setting(name, "advert_interval")
        interval = (
            self.duration(interval_s.path)
            if interval_s and interval_s.path
            else timedelta(seconds=1)
        )
        vips_raw: list[Any] = raw["vips"]

        # VIPs: families, uniqueness within and across instances.
        parsed: list[tuple[ipaddress.IPv4Interface | ipaddress.IPv6Interface, dict[str, Any]]] = []
        for v in vips_raw:
            opts = v if isinstance(v, dict) else {"address": v}
            parsed.append((ipaddress.ip_interface(opts["address"]), opts))
        families = [Family.of(a) for a, _ in parsed]
        family = families[0]
        if len(set(families)) > 1:
            for i, f in enumerate(families):
                if f is not family:
                    self.error(
                        _vip_path(path, i, vips_raw),
                        f"{where}.vips: mixes IPv4 and IPv6 VIPs; put {parsed[i][0].ip} in an "
                        "instance of its own (RFC 5798 allows one address family per "
                        "virtual router)",
                    )
        for i, (addr, _) in enumerate(parsed):
            vpath = _vip_path(path, i, vips_raw)
            if addr.ip in vip_owner:
                other, other_path = vip_owner[addr.ip]
                if other == name:
                    self.error(vpath, f"{where}.vips: {addr.ip} is listed twice")
                else:
                    self.error(
                        vpath,
                        f"{where}.vips: {addr.ip} already belongs to instance {other!r} "
                        f"(line {self.doc.value_at(other_path).line}); "
                        "a VIP belongs to one instance only",
                    )
            else:
                vip_owner[addr.ip] = (name, vpath)

        # Version rules.
        if version == 2 and family is Family.IPV6:
            at = version_s.path if version_s and version_s.path else (*path, "vips")
            self.error(
                at, f"{where}: VRRPv2 (RFC 3768) carries only IPv4; use version 3 for IPv6 VIPs"
            )
        if interval_s and interval_s.path:
            ipath = interval_s.path
            if version == 2:
                if (
                    interval % timedelta(seconds=1)
                    or not timedelta(seconds=1) <= interval <= V2_MAX_ADVERT
                ):
                    self.error(
                        ipath,
                        f"{where}: VRRPv2 advert_interval must be whole seconds from 1s to 255s "
                        f"(got {self.doc.get(ipath)}); keepalived would silently round it",
                    )
            elif interval % V3_MIN_ADVERT or not V3_MIN_ADVERT <= interval <= V3_MAX_ADVERT:
                self.error(
                    ipath,
                    f"{where}: VRRPv3 advert_interval must be 10ms to 40.95s in steps of 10ms "
                    f"(got {self.doc.get(ipath)})",
                )
        auth_s = self._setting(name, "authentication")
        if auth_s and version == 3 and auth_s.path:
            self.error(
                auth_s.path,
                f"{where}: authentication needs VRRPv2; VRRPv3 has none (RFC 5798 9)",
                at_key=True,
            )

        delay_s = self._setting(name, "preempt_delay")
        preempt_delay = self.duration(delay_s.path) if delay_s and delay_s.path else timedelta(0)
        if preempt_delay > MAX_PREEMPT_DELAY and delay_s and delay_s.path:
            self.error(delay_s.path, f"{where}: preempt_delay must be at most 1000s")

        # Participating nodes and per-node values.
        prio_s = self._setting(name, "priority")
        iface_s = self._setting(name, "interface")
        if prio_s and isinstance(prio_s.value, dict) and prio_s.path:
            self._unknown_nodes(prio_s.path, list(prio_s.value), keys=True)
            members = [n for n in prio_s.value if n in self.node_names]
        else:
            members = list(self.node_names)
        if iface_s and isinstance(iface_s.value, dict) and iface_s.path:
            self._unknown_nodes(iface_s.path, list(iface_s.value), keys=True)

        unicast_s = self._setting(name, "unicast")
        unicast = bool(unicast_s and unicast_s.value)
        node_by_name = {n.name: n for n in nodes}

        def node_addr(n: Node) -> IPAddress | None:
            return n.address if family is Family.IPV4 else n.address6

        if unicast and unicast_s and unicast_s.path:
            for m in members:
                if node_addr(node_by_name[m]) is None:
                    key = "address" if family is Family.IPV4 else "address6"
                    self.error(
                        unicast_s.path,
                        f"{where}: unicast needs every member's {key}: nodes.{m}.{key} is not set",
                    )

        tracks = self._tracks(name)
        notify = self._notify(self._setting(name, "notify"))
        garp = self._garp(self._setting(name, "garp"))
        sync_group = self._group_of(name)

        if len(self.errors) > n_errors:
            return
        self._equal_priorities(path, prio_s, members)
        for m in members:
            node = node_by_name[m]
            if iface_s is None:
                iface = node.interface
            elif isinstance(iface_s.value, dict):
                iface = iface_s.value.get(m, node.interface)
            else:
                iface = iface_s.value
            if iface is None:
                self.error(
                    path,
                    f"{where}: node {m!r} runs this instance but has no interface: "
                    f"set nodes.{m}.interface or the instance's interface",
                    at_key=True,
                )
                continue
            if prio_s is None:
                priority = 100
            elif isinstance(prio_s.value, dict):
                priority = prio_s.value[m]
            else:
                priority = prio_s.value
            if priority == 255 and not any(node_addr(node) == a.ip for a, _ in parsed):
                assert prio_s is not None and prio_s.path is not None
                at = (*prio_s.path, m) if isinstance(prio_s.value, dict) else prio_s.path
                self.error(
                    at,
                    f"{where}: priority 255 is only for the address owner, and node {m!r} does not "
                    "have a VIP as its address; use 1-254",
                )
                continue
            peers = (
                tuple(
                    a for o in members if o != m and (a := node_addr(node_by_name[o])) is not None
                )
                if unicast
                else ()
            )
            yield (
                m,
                VrrpInstance(
                    name=name,
                    vrid=raw["vrid"],
                    version=version,
                    family=family,
                    interface=iface,
                    priority=priority,
                    advert_interval=interval,
                    vips=tuple(
                        Vip(
                            address=a,
                            dev=opts.get("dev", iface),
                            label=opts.get("label"),
                            scope=opts.get("scope", "global"),
                        )
                        for a, opts in parsed
                    ),
                    primary_address=node_addr(node) if family is Family.IPV4 else node.address6,
                    preempt=bool(s.value) if (s := self._setting(name, "preempt")) else True,
                    preempt_delay=preempt_delay,
                    unicast_peers=peers,
                    unicast_checksum=UnicastChecksum(
                        s.value if (s := self._setting(name, "unicast_checksum")) else "auto"
                    ),
                    unicast_source_check=bool(s.value)
                    if (s := self._setting(name, "unicast_source_check"))
                    else True,
                    unicast_min_ttl=s.value
                    if (s := self._setting(name, "unicast_min_ttl"))
                    else None,
                    auth_password=auth_s.value["password"] if auth_s else None,
                    accept=bool(s.value) if (s := self._setting(name, "accept")) else True,
                    answer_lower_priority=bool(s.value)
                    if (s := self._setting(name, "answer_lower_priority"))
                    else True,
                    garp=garp,
                    track=tracks,
                    notify=notify,
                    sync_group=sync_group,
                ),
            )

    def _equal_priorities(self, path: Path, prio_s: _Setting | None, members: list[str]) -> None:
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
            self.warning(
                path,
                f"{where}: no priority is set, so every node ({', '.join(members)}) runs it "
                f"with priority 100: {why}",
                at_key=True,
            )
            return
        if not isinstance(prio_s.value, dict):
            self.warning(
                prio_s.path,
                f"{where}: every node ({', '.join(members)}) runs it with priority "
                f"{prio_s.value}: {why}",
            )
            return
        first: dict[int, str] = {}
        for m in members:
            value = prio_s.value[m]
            if value in first:
                self.warning(
                    (*prio_s.path, m),
                    f"{where}.priority: {first[value]} and {m} both have priority {value}: {why}",
                )
            first.setdefault(value, m)

    def _tracks(self, inst: str) -> tuple[Track, ...]:
        s = self._setting(inst, "track")
        if not s or not s.path:
            return ()
        out: list[Track] = []
        for i, t in enumerate(s.value):
            weight = t.get("weight", 0)
            if "check" in t:
                if t["check"] not in self.check_names:
                    self.error(
                        (*s.path, i, "check"),
                        f"{dotted(s.path)}[{i}].check: unknown check {t['check']!r} "
                        f"({_known(t['check'], self.check_names, 'checks')})",
                    )
                out.append(TrackCheck(t["check"], weight))
            else:
                out.append(TrackInterface(t["interface"], weight))
        return tuple(out)

    def _hooks(
        self, path: Path, default_timeout: timedelta, *, release_ok: bool, default_user: str
    ) -> tuple[Hook, ...]:
        hooks: list[Hook] = []
        for i, h in enumerate(self.doc.get(path)):
            if isinstance(h, list):
                hooks.append(Hook(tuple(h), default_timeout, user=default_user))
                continue
            before = h.get("before_release", False)
            if before and not release_ok:
                self.error(
                    (*path, i, "before_release"),
                    f"{dotted(path)}[{i}].before_release: only backup, fault and stop hooks run "
                    "before the VIPs are released",
                )
            hooks.append(
                Hook(
                    tuple(h["command"]),
                    self.duration_or((*path, i, "timeout"), default_timeout),
                    before,
                    self.user((*path, i, "user"), default_user, "this hook is"),
                )
            )
        return tuple(hooks)

    def _notify(self, s: _Setting | None) -> Notify:
        if not s or not s.path:
            return Notify()
        p = s.path
        timeout = self.duration_or((*p, "timeout"), DEFAULT_HOOK_TIMEOUT)
        user = self.user((*p, "user"), DEFAULT_HOOK_USER, "these hooks are")

        def hooks(key: str) -> tuple[Hook, ...]:
            if key not in s.value:
                return ()
            return self._hooks((*p, key), timeout, release_ok=key != "master", default_user=user)

        return Notify(
            master=hooks("master"), backup=hooks("backup"), fault=hooks("fault"), stop=hooks("stop")
        )

    def _garp(self, s: _Setting | None) -> Garp:
        if not s or not s.path:
            return Garp()
        p, v, d = s.path, s.value, Garp()
        return Garp(
            master_repeat=v.get("master_repeat", d.master_repeat),
            master_delay=self.duration_or((*p, "master_delay"), d.master_delay),
            master_refresh=self.duration_or((*p, "master_refresh"), d.master_refresh),
            master_refresh_repeat=v.get("master_refresh_repeat", d.master_refresh_repeat),
            interval=self.duration_or((*p, "interval"), d.interval),
        )

    def _group_of(self, inst: str) -> str | None:
        for g, raw in self.data.get("vrrp", {}).get("sync_groups", {}).items():
            if inst in raw["members"]:
                return str(g)
        return None

    def _check_unique_sync_membership(self) -> None:
        instances = self.data.get("vrrp", {}).get("instances", {})
        seen: dict[str, str] = {}
        for g, raw in self.data.get("vrrp", {}).get("sync_groups", {}).items():
            for i, m in enumerate(raw["members"]):
                mpath: Path = ("vrrp", "sync_groups", g, "members", i)
                if m not in instances:
                    self.error(
                        mpath,
                        f"vrrp.sync_groups.{g}.members: unknown instance {m!r} "
                        f"({_known(m, instances, 'instances')})",
                    )
                elif m in seen:
                    self.error(
                        mpath,
                        f"vrrp.sync_groups.{g}.members: instance {m!r} is already in sync group "
                        f"{seen[m]!r}; an instance belongs to at most one",
                    )
                else:
                    seen[m] = g

    def _sync_groups(self, local: set[str]) -> Iterator[SyncGroup]:
        for g, raw in self.data.get("vrrp", {}).get("sync_groups", {}).items():
            members = tuple(m for m in raw["members"] if m in local)
            if members:
                notify = self._notify(
                    _Setting(raw["notify"], ("vrrp", "sync_groups", g, "notify"))
                    if "notify" in raw
                    else None
                )
                yield SyncGroup(name=g, members=members, notify=notify)

    def _cross_node_vrid(self, by_node: dict[str, list[VrrpInstance]]) -> None:
        """RFC 5798 6.1: a VRID names one virtual router per LAN (interface) and family."""
        reported: set[str] = set()
        for node in self.node_names:
            seen: dict[tuple[str, Family, int], str] = {}
            for inst in by_node.get(node, []):
                k = (inst.interface, inst.family, inst.vrid)
                if k in seen and inst.name not in reported:
                    reported.add(inst.name)
                    self.error(
                        ("vrrp", "instances", inst.name, "vrid"),
                        f"vrrp.instances.{inst.name}.vrid: VRID {inst.vrid} is already used by "
                        f"instance {seen[k]!r} on node {node!r} interface {inst.interface} "
                        f"({inst.family}); a VRID must be unique per interface and address family",
                    )
                seen.setdefault(k, inst.name)

    # ------------------------------------------------------------ IPVS
    def _services_on_dropped_vips(self, node_configs: list[NodeConfig]) -> None:
        """A service on a VIP of an ``accept: false`` instance never gets a packet: the
        node drops all traffic to that VIP before IPVS sees it (RFC 5798 §6.4.3 Accept_Mode,
        keepalived's no_accept / vrrp_strict)."""
        reported: set[str] = set()
        for nc in node_configs:
            dropped = {
                vip.address.ip: inst.name
                for inst in nc.instances
                if not inst.accepts_vip_traffic
                for vip in inst.vips
            }
            for svc in nc.services:
                inst_name = dropped.get(svc.service.address) if svc.service.address else None
                if inst_name is None or svc.name in reported:
                    continue
                reported.add(svc.name)
                self.error(
                    ("virtual_services", svc.name, "address"),
                    f"virtual_services.{svc.name}: {svc.service.address} is a VIP of instance "
                    f"{inst_name!r}, which has accept: false: node {nc.node.name} drops every "
                    "packet to it, so this service would get no traffic (set accept: true)",
                )

    def _services(
        self, checks: dict[str, Check]
    ) -> dict[str, tuple[list[VirtualService], list[RealServer]]]:
        out: dict[str, tuple[list[VirtualService], list[RealServer]]] = {}
        seen: dict[ServiceKey, tuple[str, set[str]]] = {}
        for name, raw in self.data.get("virtual_services", {}).items():
            path: Path = ("virtual_services", name)
            n_errors = len(self.errors)
            svc_key = self._service_key(path, raw)
            nodes = raw.get("nodes", self.node_names)
            if "nodes" in raw:
                self._unknown_nodes((*path, "nodes"), raw["nodes"], keys=False)
            if svc_key is None:
                continue
            if svc_key in seen and seen[svc_key][1] & set(nodes):
                self.error(
                    path,
                    f"virtual_services.{name}: the same service ({svc_key}) is already defined as "
                    f"{seen[svc_key][0]!r}",
                    at_key=True,
                )
            seen.setdefault(svc_key, (name, set(nodes)))
            svc, servers = self._service(path, name, raw, svc_key, checks)
            if len(self.errors) > n_errors:
                continue
            for n in nodes:
                if n in self.node_names:
                    lists = out.setdefault(n, ([], []))
                    lists[0].append(svc)
                    lists[1].extend(servers)
        return out

    def _service_key(self, path: Path, raw: dict[str, Any]) -> ServiceKey | None:
        where = dotted(path)
        if "fwmark" in raw:
            for k in ("port", "protocol"):
                if k in raw:
                    self.error(
                        (*path, k), f"{where}: {k} does not apply to a fwmark service", at_key=True
                    )
            return ServiceKey(
                family=Family.IPV6 if raw.get("family") == "ipv6" else Family.IPV4,
                fwmark=raw["fwmark"],
            )
        if "family" in raw:
            self.error(
                (*path, "family"),
                f"{where}: family only applies to a fwmark service (the address says it)",
                at_key=True,
            )
        if "port" not in raw:
            self.error(path, f"{where}: port is required with address", at_key=True)
            return None
        addr = ipaddress.ip_address(raw["address"])
        if raw["port"] == 0 and "persistence" not in raw:
            self.error(
                (*path, "port"), f"{where}: port 0 (all ports) needs persistence, as in IPVS"
            )
        return ServiceKey(
            family=Family.of(addr),
            protocol=Protocol(raw.get("protocol", "tcp")),
            address=addr,
            port=raw["port"],
        )

    def _service(
        self,
        path: Path,
        name: str,
        raw: dict[str, Any],
        key: ServiceKey,
        checks: dict[str, Check],
    ) -> tuple[VirtualService, list[RealServer]]:
        where = dotted(path)
        forwarding = Forwarding(raw.get("forwarding", "nat"))
        persistence = None
        if "persistence" in raw:
            p = raw["persistence"]
            full = 32 if key.family is Family.IPV4 else 128
            if isinstance(p, str):
                persistence = Persistence(self.duration((*path, "persistence")), full)
            else:
                netmask = p.get("netmask", full)
                if netmask > full:
                    self.error(
                        (*path, "persistence", "netmask"),
                        f"{where}.persistence.netmask: at most {full} for {key.family}",
                    )
                persistence = Persistence(
                    self.duration_or((*path, "persistence", "timeout"), timedelta(seconds=300)),
                    netmask,
                )
        q = raw.get("quorum", {})
        qpath = (*path, "quorum")
        quser = self.user((*qpath, "user"), DEFAULT_HOOK_USER, "these hooks are")
        quorum = Quorum(
            min_weight=q.get("min_weight", 1),
            hysteresis=q.get("hysteresis", 0),
            up=self._hooks(
                (*qpath, "up"), DEFAULT_HOOK_TIMEOUT, release_ok=False, default_user=quser
            )
            if "up" in q
            else (),
            down=self._hooks(
                (*qpath, "down"), DEFAULT_HOOK_TIMEOUT, release_ok=False, default_user=quser
            )
            if "down" in q
            else (),
        )
        if quorum.hysteresis >= quorum.min_weight and "hysteresis" in q:
            self.error(
                (*qpath, "hysteresis"),
                f"{where}.quorum.hysteresis: must be less than min_weight ({quorum.min_weight})",
            )
        sorry = None
        if "sorry_server" in raw:
            s = raw["sorry_server"]
            sorry = Endpoint(
                ipaddress.ip_address(s["address"]),
                s.get("port", key.port),
                Forwarding(s.get("forwarding", forwarding.value)),
            )
            self._same_family((*path, "sorry_server", "address"), key, sorry.address, forwarding)
        svc = VirtualService(
            name=name,
            service=key,
            scheduler=raw.get("scheduler", "wlc"),
            scheduler_flags=tuple(sorted(raw.get("scheduler_flags", ()))),
            forwarding=forwarding,
            persistence=persistence,
            quorum=quorum,
            sorry_server=sorry,
            sorry_server_inhibit=raw.get("sorry_server_inhibit", False),
            alpha=raw.get("alpha", False),
        )
        default_check = (
            self._check_ref((*path, "check"), f"{name}", checks) if "check" in raw else None
        )
        servers: list[RealServer] = []
        seen: dict[tuple[IPAddress, int], int] = {}
        for i, rs in enumerate(raw["real_servers"]):
            rpath: Path = (*path, "real_servers", i)
            addr = ipaddress.ip_address(rs["address"])
            port = rs.get("port", key.port)
            fwd = Forwarding(rs.get("forwarding", forwarding.value))
            self._same_family((*rpath, "address"), key, addr, fwd)
            if (
                fwd is not Forwarding.NAT
                and not key.fwmark
                and "port" in rs
                and rs["port"] != key.port
            ):
                self.error(
                    (*rpath, "port"),
                    f"{where}.real_servers[{i}].port: {fwd.value} forwarding cannot change the "
                    f"port; IPVS sends to the service port {key.port} (use nat to remap ports)",
                )
            if fwd is not Forwarding.NAT and not key.fwmark:
                port = key.port  # what the kernel stores for non-NAT destinations
            if (addr, port) in seen:
                self.error(
                    (*rpath, "address"),
                    f"{where}.real_servers[{i}]: {Endpoint(addr, port, fwd)} is already "
                    "real server "
                    f"[{seen[(addr, port)]}]",
                )
            seen.setdefault((addr, port), i)
            if sorry and (sorry.address, sorry.port) == (addr, port):
                self.error(
                    (*path, "sorry_server", "address"),
                    f"{where}.sorry_server: {sorry} is also real server [{i}]; the sorry server "
                    "only takes traffic when the real servers are down",
                )
            if rs.get("lower_threshold", 0) > rs.get("upper_threshold", 0) and rs.get(
                "upper_threshold", 0
            ):
                self.error(
                    (*rpath, "lower_threshold"),
                    f"{where}.real_servers[{i}].lower_threshold: must not exceed upper_threshold",
                )
            check = default_check
            if "check" in rs:
                check = self._check_ref((*rpath, "check"), f"{name}/{addr}:{port}", checks)
            servers.append(
                RealServer(
                    service=key,
                    address=addr,
                    port=port,
                    weight=rs.get("weight", 1),
                    forwarding=fwd,
                    upper_threshold=rs.get("upper_threshold", 0),
                    lower_threshold=rs.get("lower_threshold", 0),
                    check=check,
                    inhibit_on_failure=rs.get(
                        "inhibit_on_failure", raw.get("inhibit_on_failure", False)
                    ),
                    notify_up=self._rs_hooks(rpath, rs, "up"),
                    notify_down=self._rs_hooks(rpath, rs, "down"),
                )
            )
        return svc, servers

    def _rs_hooks(self, rpath: Path, rs: dict[str, Any], key: str) -> tuple[Hook, ...]:
        notify = rs.get("notify", {})
        if key not in notify:
            return ()
        timeout = self.duration_or((*rpath, "notify", "timeout"), DEFAULT_HOOK_TIMEOUT)
        user = self.user((*rpath, "notify", "user"), DEFAULT_HOOK_USER, "these hooks are")
        return self._hooks((*rpath, "notify", key), timeout, release_ok=False, default_user=user)

    def _same_family(self, path: Path, key: ServiceKey, addr: IPAddress, fwd: Forwarding) -> None:
        if Family.of(addr) is not key.family and fwd is not Forwarding.TUNNEL:
            self.error(
                path,
                f"{dotted(path)}: {addr} is {Family.of(addr)} but the service is {key.family}; "
                "only tunnel forwarding can mix families",
            )

    def _check_ref(self, path: Path, inline_name: str, checks: dict[str, Check]) -> Check | None:
        ref = self.doc.get(path)
        if ref is False:
            return None
        if isinstance(ref, str):
            if ref not in checks:
                self.error(
                    path,
                    f"{dotted(path)}: unknown check {ref!r} ({_known(ref, checks, 'checks')})",
                )
                return None
            named = checks[ref]
            # A named check used for real servers was validated as a tracking check
            # only if something tracks it; real servers may leave host/port unset.
            return named
        return self._check(path, inline_name, tracking=False)


def _known(name: str, names: Iterable[str], what: str) -> str:
    """`did you mean 'x'? checks: x, y`: the closest name first, then every name there is."""
    names = list(names)
    listed = f"{what}: {', '.join(names) or 'none defined'}"
    guess = did_you_mean(name, names)
    return f"did you mean {guess!r}? {listed}" if guess else listed


def _vip_path(path: Path, i: int, vips: list[Any]) -> Path:
    return (*path, "vips", i, "address") if isinstance(vips[i], dict) else (*path, "vips", i)


def _ip(value: str | None) -> IPAddress | None:
    return ipaddress.ip_address(value) if value else None


def _status_ranges(text: str) -> tuple[tuple[int, int], ...]:
    out = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        out.append((int(lo), int(hi or lo)))
    return tuple(out)
