"""What VRRP instances share: sync groups, and the VRIDs on each node's links."""

from __future__ import annotations

from collections.abc import Iterator

from reconciler.config.build_context import Context, Setting, known
from reconciler.config.build_hooks import notify
from reconciler.config.yamlload import Path
from reconciler.model.common import Family
from reconciler.model.vrrp import SyncGroup, VrrpInstance


def group_of(ctx: Context, inst: str) -> str | None:
    for g, raw in ctx.data.get("vrrp", {}).get("sync_groups", {}).items():
        if inst in raw["members"]:
            return str(g)
    return None


def check_unique_sync_membership(ctx: Context) -> None:
    instances = ctx.data.get("vrrp", {}).get("instances", {})
    seen: dict[str, str] = {}
    for g, raw in ctx.data.get("vrrp", {}).get("sync_groups", {}).items():
        for i, m in enumerate(raw["members"]):
            mpath: Path = ("vrrp", "sync_groups", g, "members", i)
            if m not in instances:
                ctx.error(
                    mpath,
                    f"vrrp.sync_groups.{g}.members: unknown instance {m!r} "
                    f"({known(m, instances, 'instances')})",
                )
            elif m in seen:
                ctx.error(
                    mpath,
                    f"vrrp.sync_groups.{g}.members: instance {m!r} is already in sync group "
                    f"{seen[m]!r}; an instance belongs to at most one",
                )
            else:
                seen[m] = g


def sync_groups(ctx: Context, local: set[str]) -> Iterator[SyncGroup]:
    """The sync groups with a member among the `local` instances, with those members only."""
    for g, raw in ctx.data.get("vrrp", {}).get("sync_groups", {}).items():
        members = tuple(m for m in raw["members"] if m in local)
        if members:
            hooks = notify(
                ctx,
                Setting(raw["notify"], ("vrrp", "sync_groups", g, "notify"))
                if "notify" in raw
                else None,
            )
            yield SyncGroup(name=g, members=members, notify=hooks)


def cross_node_vrid(ctx: Context, by_node: dict[str, list[VrrpInstance]]) -> None:
    """RFC 5798 6.1: a VRID names one virtual router per LAN (interface) and family."""
    reported: set[str] = set()
    for node in ctx.node_names:
        seen: dict[tuple[str, Family, int], str] = {}
        for inst in by_node.get(node, []):
            k = (inst.interface, inst.family, inst.vrid)
            if k in seen and inst.name not in reported:
                reported.add(inst.name)
                ctx.error(
                    ("vrrp", "instances", inst.name, "vrid"),
                    f"vrrp.instances.{inst.name}.vrid: VRID {inst.vrid} is already used by "
                    f"instance {seen[k]!r} on node {node!r} interface {inst.interface} "
                    f"({inst.family}); a VRID must be unique per interface and address family",
                )
            seen.setdefault(k, inst.name)
