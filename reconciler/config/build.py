"""Semantic and cross-node checks, then the normalized model.

Runs on a document that passed the JSON Schema, so types and ranges are known
good here; what is checked is what a schema cannot say: references between
parts of the file, uniqueness across instances and nodes, and rules that depend
on the VRRP version or the address family. Every error points at the key or
value it is about. Defaults are filled the way keepalived and the kernel fill
them, so that a model built from a file equals the state a converged node
reports.

This module puts the cluster together; each part is built by its own module:
`build_checks` (health checks), `build_vrrp` (VRRP instances), `build_sync` (sync
groups, VRIDs across instances), `build_services` (IPVS), `build_hooks` (hooks), on the
shared `build_context` (the document, located errors and warnings).
"""

from __future__ import annotations

import ipaddress
from datetime import timedelta

from reconciler.config.build_checks import check
from reconciler.config.build_context import Context
from reconciler.config.build_hooks import DEFAULT_HOOK_TIMEOUT
from reconciler.config.build_services import services, services_on_dropped_vips
from reconciler.config.build_sync import check_unique_sync_membership, cross_node_vrid, sync_groups
from reconciler.config.build_vrrp import (
    MAX_PREEMPT_DELAY,
    V2_MAX_ADVERT,
    V3_MAX_ADVERT,
    V3_MIN_ADVERT,
    instances,
)
from reconciler.config.diagnostics import Diagnostic, InvalidConfig
from reconciler.config.yamlload import Document
from reconciler.model.cluster import Cluster, Node, NodeConfig, Sysctls
from reconciler.model.vrrp import TrackCheck

__all__ = [
    "DEFAULT_HOOK_TIMEOUT",
    "MAX_PREEMPT_DELAY",
    "V2_MAX_ADVERT",
    "V3_MAX_ADVERT",
    "V3_MIN_ADVERT",
    "build",
]


def build(doc: Document) -> tuple[Cluster, list[Diagnostic]]:
    """The model for a schema-valid document and its warnings (valid, but likely not what
    was meant); InvalidConfig with every semantic error."""
    ctx = Context(doc)
    cluster = _cluster(ctx)
    if ctx.errors:
        raise InvalidConfig(ctx.errors)
    return cluster, sorted(ctx.warnings, key=Diagnostic.sort_key)


def _cluster(ctx: Context) -> Cluster:
    data = ctx.data
    nodes = tuple(_node(ctx, name) for name in ctx.node_names)
    tracked = _tracked_check_names(ctx)
    checks = {
        name: check(ctx, ("checks", name), name, tracking=name in tracked)
        for name in ctx.check_names
    }
    check_unique_sync_membership(ctx)
    per_node_instances = instances(ctx, nodes)
    per_node_services = services(ctx, checks)
    node_configs = []
    for node in nodes:
        local = per_node_instances.get(node.name, [])
        tracked = {t.check for i in local for t in i.track if isinstance(t, TrackCheck)}
        groups = sync_groups(ctx, {i.name for i in local})
        svcs, servers = per_node_services.get(node.name, ([], []))
        node_configs.append(
            NodeConfig(
                node=node,
                checks=tuple(checks[c] for c in sorted(tracked) if c in checks),
                instances=tuple(sorted(local, key=lambda i: i.name)),
                sync_groups=tuple(groups),
                services=tuple(sorted(svcs, key=lambda s: s.key)),
                real_servers=tuple(sorted(servers, key=lambda r: r.key)),
            )
        )
    cross_node_vrid(ctx, per_node_instances)
    services_on_dropped_vips(ctx, node_configs)
    sysctls = data.get("director", {}).get("sysctls", {})
    return Cluster(
        name=data["name"],
        nodes=nodes,
        node_configs=tuple(node_configs),
        sysctls=Sysctls(**sysctls),
        resync_interval=ctx.duration_or(("reconcile", "resync_interval"), timedelta(seconds=30)),
        drain_timeout=ctx.duration_or(("reconcile", "drain_timeout"), timedelta(minutes=5)),
    )


def _tracked_check_names(ctx: Context) -> set[str]:
    vrrp = ctx.data.get("vrrp", {})
    sources = [vrrp.get("defaults", {}), *vrrp.get("instances", {}).values()]
    return {t["check"] for src in sources for t in src.get("track", ()) if "check" in t}


def _node(ctx: Context, name: str) -> Node:
    raw = ctx.data["nodes"][name]
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
