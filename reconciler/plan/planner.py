"""Plans: the ordered steps for one node between two revisions, with what they are between.

A node's share of a revision is its `NodeConfig` (checks, VRRP instances, sync
groups, IPVS services and real servers) and its `NodeSettings` (who the node is
and the cluster-wide settings it runs with: sysctls, reconcile timers). Both are
planned, so a change to any setting that reaches a node shows in that node's plan.

Two things are read off the diff for the reader:

- a VRRP instance update is either applied in place or needs a restart
  (`model.vrrp.restart_reasons`: VRID, interface, family, version), which sends a
  priority-0 advert and releases the VIPs (RFC 5798 6.4.3): the step says which;
- a real server embeds its check, so a check changed once would show once per
  real server. The check's change is shown once, on a `check` step that lists the
  real servers using it; what else changed on a real server stays on its own step.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import ClassVar

from reconciler.model.checks import Check
from reconciler.model.cluster import Cluster, NodeConfig, Sysctls
from reconciler.model.common import IPAddress, Key, Resource
from reconciler.model.ipvs import RealServer
from reconciler.model.vrrp import TrackCheck, VrrpInstance, restart_reasons
from reconciler.plan.diff import Action, FieldChange, Step, diff, field_changes, order


@dataclass(frozen=True)
class NodeSettings:
    """The node-wide part of a node's share: the node's own entry in `nodes`, the
    cluster name its hooks and status carry, `director.sysctls` and `reconcile`."""

    kind: ClassVar[str] = "node"

    name: str
    cluster_name: str
    router_id: str
    address: IPAddress | None
    address6: IPAddress | None
    interface: str | None
    labels: tuple[tuple[str, str], ...]
    sysctls: Sysctls
    resync_interval: timedelta
    drain_timeout: timedelta

    @property
    def key(self) -> Key:
        return (self.name,)


def node_settings(cluster: Cluster, node: str) -> NodeSettings:
    n = cluster.node(node)
    return NodeSettings(
        name=n.name,
        cluster_name=cluster.name,
        router_id=n.router_id,
        address=n.address,
        address6=n.address6,
        interface=n.interface,
        labels=n.labels,
        sysctls=cluster.sysctls,
        resync_interval=cluster.resync_interval,
        drain_timeout=cluster.drain_timeout,
    )


@dataclass(frozen=True)
class Plan:
    node: str
    source: str  # what the node is assumed to run now (old file, or "live")
    target: str  # the desired state (new file)
    steps: tuple[Step, ...]

    @property
    def has_changes(self) -> bool:
        return any(s.action is not Action.CONFLICT for s in self.steps)

    def counts(self) -> dict[Action, int]:
        c = Counter(s.action for s in self.steps)
        return {a: c.get(a, 0) for a in Action}


def node_resources(cluster: Cluster | None, node: str) -> list[Resource]:
    """Everything `node` runs in `cluster` (nothing when the revision lacks the node)."""
    if cluster is None or node not in cluster.node_names:
        return []
    return [node_settings(cluster, node), *cluster.for_node(node).resources()]


def plan_revision(
    node: str, old: Cluster | None, new: Cluster | None, *, source: str, target: str
) -> Plan:
    """What `node` would change going from revision `old` to `new` (None: no revision;
    either may lack the node).

    Everything the old revision describes is taken as ours and in place, so the
    plan is exactly what a converged node would do when the new revision lands.
    """
    observed = node_resources(old, node)
    desired = node_resources(new, node)
    owned = {(r.kind, r.key) for r in observed}
    steps = diff(desired, observed, owned)
    users = _check_users(new.for_node(node) if new and node in new.node_names else None)
    return Plan(node, source, target, tuple(_annotate(steps, users)))


def _check_users(cfg: NodeConfig | None) -> dict[str, list[str]]:
    """Check name -> the instances tracking it (for a tracked check's step)."""
    out: dict[str, list[str]] = {}
    for inst in cfg.instances if cfg else ():
        for t in inst.track:
            if isinstance(t, TrackCheck):
                out.setdefault(t.check, []).append(f"{VrrpInstance.kind} {inst.name} (track)")
    return out


def _annotate(steps: Iterable[Step], trackers: dict[str, list[str]]) -> list[Step]:
    out: list[Step] = []
    # (check before, check after) -> the real servers whose only change there is it.
    folded: dict[tuple[Check, Check], list[str]] = {}
    for step in steps:
        if step.action is Action.UPDATE and isinstance(step.before, VrrpInstance):
            assert isinstance(step.after, VrrpInstance)
            out.append(
                dataclasses.replace(step, restart_reasons=restart_reasons(step.before, step.after))
            )
            continue
        if (
            step.action is Action.UPDATE
            and isinstance(step.before, RealServer)
            and isinstance(step.after, RealServer)
            and step.before.check is not None
            and step.after.check is not None
            and step.before.check.name == step.after.check.name
            and step.before.check != step.after.check
        ):
            pair = (step.before.check, step.after.check)
            folded.setdefault(pair, []).append(f"{RealServer.kind} {_rs_title(step.after)}")
            rest = tuple(c for c in step.changes if not _under("check", c))
            if rest:
                out.append(dataclasses.replace(step, changes=rest))
            continue
        out.append(step)
    for (before, after), servers in folded.items():
        merged = False
        for i, s in enumerate(out):
            if s.kind == Check.kind and s.before == before and s.after == after:
                out[i] = dataclasses.replace(s, used_by=(*s.used_by, *servers))
                merged = True
        if not merged:
            out.append(
                Step(
                    Action.UPDATE,
                    Check.kind,
                    after.key,
                    before,
                    after,
                    field_changes(before, after),
                    used_by=tuple(servers),
                )
            )
    for i, s in enumerate(out):
        if s.kind == Check.kind and s.action is Action.UPDATE:
            out[i] = dataclasses.replace(s, used_by=(*trackers.get(s.key[0], ()), *s.used_by))
    return order(out)


def _under(field: str, change: FieldChange) -> bool:
    return change.field == field or change.field.startswith((f"{field}.", f"{field}["))


def _rs_title(rs: RealServer) -> str:
    return f"{rs.service} -> {rs.endpoint}"
