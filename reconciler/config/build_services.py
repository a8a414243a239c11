"""IPVS: virtual services and their real servers, on the nodes that run them.

The values are the ones the kernel stores (a non-NAT real server's port is the service's),
so that the model equals what a converged node reports.
"""

from __future__ import annotations

import ipaddress
from datetime import timedelta
from typing import Any

from reconciler.config.build_checks import check_ref
from reconciler.config.build_context import Context
from reconciler.config.build_hooks import DEFAULT_HOOK_TIMEOUT, hooks
from reconciler.config.yamlload import Path, dotted
from reconciler.model.checks import Check
from reconciler.model.cluster import NodeConfig
from reconciler.model.common import Family, IPAddress
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
from reconciler.model.vrrp import DEFAULT_HOOK_USER, Hook

PerNode = dict[str, tuple[list[VirtualService], list[RealServer]]]


def services(ctx: Context, checks: dict[str, Check]) -> PerNode:
    """Every node's services and real servers; a service with an error is on no node."""
    out: PerNode = {}
    seen: dict[ServiceKey, tuple[str, set[str]]] = {}
    for name, raw in ctx.data.get("virtual_services", {}).items():
        path: Path = ("virtual_services", name)
        n_errors = len(ctx.errors)
        svc_key = _service_key(ctx, path, raw)
        nodes = raw.get("nodes", ctx.node_names)
        if "nodes" in raw:
            ctx.unknown_nodes((*path, "nodes"), raw["nodes"], keys=False)
        if svc_key is None:
            continue
        if svc_key in seen and seen[svc_key][1] & set(nodes):
            ctx.error(
                path,
                f"virtual_services.{name}: the same service ({svc_key}) is already defined as "
                f"{seen[svc_key][0]!r}",
                at_key=True,
            )
        seen.setdefault(svc_key, (name, set(nodes)))
        svc, servers = _Service(ctx, path, name, raw, svc_key, checks).build()
        if len(ctx.errors) > n_errors:
            continue
        for n in nodes:
            if n in ctx.node_names:
                lists = out.setdefault(n, ([], []))
                lists[0].append(svc)
                lists[1].extend(servers)
    return out


def services_on_dropped_vips(ctx: Context, node_configs: list[NodeConfig]) -> None:
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
            ctx.error(
                ("virtual_services", svc.name, "address"),
                f"virtual_services.{svc.name}: {svc.service.address} is a VIP of instance "
                f"{inst_name!r}, which has accept: false: node {nc.node.name} drops every "
                "packet to it, so this service would get no traffic (set accept: true)",
            )


def _service_key(ctx: Context, path: Path, raw: dict[str, Any]) -> ServiceKey | None:
    where = dotted(path)
    if "fwmark" in raw:
        for k in ("port", "protocol"):
            if k in raw:
                ctx.error(
                    (*path, k), f"{where}: {k} does not apply to a fwmark service", at_key=True
                )
        return ServiceKey(
            family=Family.IPV6 if raw.get("family") == "ipv6" else Family.IPV4,
            fwmark=raw["fwmark"],
        )
    if "family" in raw:
        ctx.error(
            (*path, "family"),
            f"{where}: family only applies to a fwmark service (the address says it)",
            at_key=True,
        )
    if "port" not in raw:
        ctx.error(path, f"{where}: port is required with address", at_key=True)
        return None
    addr = ipaddress.ip_address(raw["address"])
    if raw["port"] == 0 and "persistence" not in raw:
        ctx.error((*path, "port"), f"{where}: port 0 (all ports) needs persistence, as in IPVS")
    return ServiceKey(
        family=Family.of(addr),
        protocol=Protocol(raw.get("protocol", "tcp")),
        address=addr,
        port=raw["port"],
    )


class _Service:
    """One entry of virtual_services, whose key is known good."""

    def __init__(
        self,
        ctx: Context,
        path: Path,
        name: str,
        raw: dict[str, Any],
        key: ServiceKey,
        checks: dict[str, Check],
    ) -> None:
        self.ctx = ctx
        self.path = path
        self.name = name
        self.where = dotted(path)
        self.raw = raw
        self.key = key
        self.checks = checks

    def build(self) -> tuple[VirtualService, list[RealServer]]:
        raw = self.raw
        forwarding = Forwarding(raw.get("forwarding", "nat"))
        persistence = self._persistence()
        quorum = self._quorum()
        sorry = self._sorry_server(forwarding)
        svc = VirtualService(
            name=self.name,
            service=self.key,
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
            check_ref(self.ctx, (*self.path, "check"), f"{self.name}", self.checks)
            if "check" in raw
            else None
        )
        seen: dict[tuple[IPAddress, int], int] = {}
        servers = [
            self._real_server(i, rs, forwarding, sorry, default_check, seen)
            for i, rs in enumerate(raw["real_servers"])
        ]
        return svc, servers

    def _persistence(self) -> Persistence | None:
        if "persistence" not in self.raw:
            return None
        p = self.raw["persistence"]
        path, key = self.path, self.key
        full = 32 if key.family is Family.IPV4 else 128
        if isinstance(p, str):
            return Persistence(self.ctx.duration((*path, "persistence")), full)
        netmask = p.get("netmask", full)
        if netmask > full:
            self.ctx.error(
                (*path, "persistence", "netmask"),
                f"{self.where}.persistence.netmask: at most {full} for {key.family}",
            )
        return Persistence(
            self.ctx.duration_or((*path, "persistence", "timeout"), timedelta(seconds=300)),
            netmask,
        )

    def _quorum(self) -> Quorum:
        q = self.raw.get("quorum", {})
        qpath = (*self.path, "quorum")
        quser = self.ctx.user((*qpath, "user"), DEFAULT_HOOK_USER, "these hooks are")

        def on(key: str) -> tuple[Hook, ...]:
            if key not in q:
                return ()
            return hooks(
                self.ctx, (*qpath, key), DEFAULT_HOOK_TIMEOUT, release_ok=False, default_user=quser
            )

        quorum = Quorum(
            min_weight=q.get("min_weight", 1),
            hysteresis=q.get("hysteresis", 0),
            up=on("up"),
            down=on("down"),
        )
        if quorum.hysteresis >= quorum.min_weight and "hysteresis" in q:
            self.ctx.error(
                (*qpath, "hysteresis"),
                f"{self.where}.quorum.hysteresis: must be less than min_weight "
                f"({quorum.min_weight})",
            )
        return quorum

    def _sorry_server(self, forwarding: Forwarding) -> Endpoint | None:
        if "sorry_server" not in self.raw:
            return None
        s = self.raw["sorry_server"]
        sorry = Endpoint(
            ipaddress.ip_address(s["address"]),
            s.get("port", self.key.port),
            Forwarding(s.get("forwarding", forwarding.value)),
        )
        # The kernel checks the family against the destination's own forwarding.
        self._same_family((*self.path, "sorry_server", "address"), sorry.address, sorry.forwarding)
        return sorry

    def _real_server(
        self,
        i: int,
        rs: dict[str, Any],
        forwarding: Forwarding,
        sorry: Endpoint | None,
        default_check: Check | None,
        seen: dict[tuple[IPAddress, int], int],
    ) -> RealServer:
        """Real server [i]; `seen` holds the endpoints of the ones before it."""
        key, rpath = self.key, (*self.path, "real_servers", i)
        addr = ipaddress.ip_address(rs["address"])
        fwd = Forwarding(rs.get("forwarding", forwarding.value))
        self._same_family((*rpath, "address"), addr, fwd)
        port = self._rs_port(i, rs, fwd)
        self._check_endpoint(i, Endpoint(addr, port, fwd), sorry, seen)
        upper = rs.get("upper_threshold", 0)
        if upper and rs.get("lower_threshold", 0) > upper:  # 0: no upper threshold
            self.ctx.error(
                (*rpath, "lower_threshold"),
                f"{self.where}.real_servers[{i}].lower_threshold: must not exceed upper_threshold",
            )
        check = default_check
        if "check" in rs:
            check = check_ref(
                self.ctx, (*rpath, "check"), f"{self.name}/{addr}:{port}", self.checks
            )
        return RealServer(
            service=key,
            address=addr,
            port=port,
            weight=rs.get("weight", 1),
            forwarding=fwd,
            upper_threshold=upper,
            lower_threshold=rs.get("lower_threshold", 0),
            check=check,
            inhibit_on_failure=rs.get(
                "inhibit_on_failure", self.raw.get("inhibit_on_failure", False)
            ),
            notify_up=self._rs_hooks(rpath, rs, "up"),
            notify_down=self._rs_hooks(rpath, rs, "down"),
        )

    def _rs_port(self, i: int, rs: dict[str, Any], fwd: Forwarding) -> int:
        """The port the kernel stores: only NAT (or a fwmark service) remaps ports."""
        key = self.key
        if fwd is Forwarding.NAT or key.fwmark:
            port: int = rs.get("port", key.port)
            return port
        if "port" in rs and rs["port"] != key.port:
            self.ctx.error(
                (*self.path, "real_servers", i, "port"),
                f"{self.where}.real_servers[{i}].port: {fwd.value} forwarding cannot change "
                f"the port; IPVS sends to the service port {key.port} (use nat to remap ports)",
            )
        return key.port  # what the kernel stores for non-NAT destinations

    def _check_endpoint(
        self,
        i: int,
        endpoint: Endpoint,
        sorry: Endpoint | None,
        seen: dict[tuple[IPAddress, int], int],
    ) -> None:
        """A real server is listed once, and is not the sorry server."""
        at: Path = (*self.path, "real_servers", i, "address")
        ap = (endpoint.address, endpoint.port)
        if ap in seen:
            self.ctx.error(
                at,
                f"{self.where}.real_servers[{i}]: {endpoint} is already real server [{seen[ap]}]",
            )
        seen.setdefault(ap, i)
        if sorry and (sorry.address, sorry.port) == ap:
            self.ctx.error(
                (*self.path, "sorry_server", "address"),
                f"{self.where}.sorry_server: {sorry} is also real server [{i}]; the sorry server "
                "only takes traffic when the real servers are down",
            )

    def _rs_hooks(self, rpath: Path, rs: dict[str, Any], key: str) -> tuple[Hook, ...]:
        notify = rs.get("notify", {})
        if key not in notify:
            return ()
        timeout = self.ctx.duration_or((*rpath, "notify", "timeout"), DEFAULT_HOOK_TIMEOUT)
        user = self.ctx.user((*rpath, "notify", "user"), DEFAULT_HOOK_USER, "these hooks are")
        return hooks(
            self.ctx, (*rpath, "notify", key), timeout, release_ok=False, default_user=user
        )

    def _same_family(self, path: Path, addr: IPAddress, fwd: Forwarding) -> None:
        key = self.key
        if Family.of(addr) is not key.family and fwd is not Forwarding.TUNNEL:
            self.ctx.error(
                path,
                f"{dotted(path)}: {addr} is {Family.of(addr)} but the service is {key.family}; "
                "only tunnel forwarding can mix families",
            )
