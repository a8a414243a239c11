"""What a revision change will do to the cluster as a whole: a pull request's risks.

Pure: from the two revisions' models (and the nodes' plans between them) it
predicts, for every VRRP instance, which node is expected to be master before and
after, assuming every node up and every check healthy, and from that which VIPs
move, which instances restart, which real servers drain and which services go.

The election is RFC 5798's: the highest priority wins (6.4.3: a backup with
Preempt_Mode takes over from a lower-priority master; an address owner, priority
255, always becomes master at once, 6.4.1), and between equal priorities the
higher primary IP address wins (6.4.3). With Preempt_Mode off, a running master
keeps the VIPs while it is up even when a node with a higher priority appears:
then the forecast keeps the old master and says so.

"Healthy" means keepalived's tracker arithmetic with every tracker up: a check or
interface tracked with a positive weight adds it, a negative weight adds nothing,
a file tracker (a value tracker) adds nothing for the value 0; the sum is clamped
to 1..254 and an address owner stays at 255 (the same rules as
`health.priority`, which plan may not import: the pure core's packages are
independent).
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from reconciler.model.checks import FileProbe
from reconciler.model.cluster import Cluster, NodeConfig
from reconciler.model.ipvs import Protocol, RealServer, VirtualService
from reconciler.model.vrrp import TrackCheck, VrrpInstance, restart_reasons
from reconciler.plan.diff import Action
from reconciler.plan.planner import Plan

PRIORITY_OWNER = 255  # RFC 5798 6.1: the address owner
PRIORITY_MIN = 1
PRIORITY_MAX_BACKUP = 254


class Risk(enum.Enum):
    """The labels a pull-request comment carries, so reviewers see the risk at a glance."""

    VIP_MOVE = "vip-move"  # a VIP changes node (or leaves and comes back)
    ELECTION = "election"  # an instance's expected master or failover order changes
    RESTART = "restart"  # an instance stops and starts again on some node (disruptive)
    DRAIN = "drain"  # a TCP/SCTP real server leaves: weight 0 until its connections end
    SERVICE_REMOVED = "service-removed"  # a virtual service is deleted from some node


@dataclass(frozen=True)
class Candidate:
    node: str
    priority: int  # effective priority with every tracker healthy
    primary_address: str | None


@dataclass(frozen=True)
class VipMove:
    """One VIP whose holder changes: from `before` to `after` (None: nobody), passing
    through `via` while the master restarts."""

    vip: str
    instance: str
    before: str | None
    after: str | None
    via: str | None = None
    why: str = ""  # with `via`: what restarts


@dataclass(frozen=True)
class InstanceForecast:
    instance: str
    master_before: str | None  # None: the instance does not exist (or has no member)
    master_after: str | None
    ranking_before: tuple[Candidate, ...]  # highest first: the failover order
    ranking_after: tuple[Candidate, ...]
    restarts: tuple[tuple[str, tuple[str, ...]], ...]  # (node, identity fields changed)
    moves: tuple[VipMove, ...]
    notes: tuple[str, ...] = ()
    vips: tuple[str, ...] = ()  # in the new revision

    @property
    def election_changes(self) -> bool:
        """The expected master or the failover order differs (for an instance in both)."""
        if self.master_before is None or self.master_after is None:
            return False
        return [c.node for c in self.ranking_before] != [c.node for c in self.ranking_after]


@dataclass(frozen=True)
class Drain:
    node: str
    server: str  # "tcp/192.0.2.200:80 -> 198.51.100.12:8080"


@dataclass(frozen=True)
class RemovedService:
    node: str
    service: str  # "tcp/192.0.2.200:443 (web-https)"


@dataclass(frozen=True)
class Forecast:
    instances: tuple[InstanceForecast, ...]
    drains: tuple[Drain, ...]
    removed_services: tuple[RemovedService, ...]
    drain_timeout: timedelta | None = None  # the new revision's reconcile.drain_timeout

    @property
    def moves(self) -> tuple[VipMove, ...]:
        return tuple(m for f in self.instances for m in f.moves)

    @property
    def risks(self) -> tuple[Risk, ...]:
        found = {
            Risk.VIP_MOVE: any(m.before and m.after for m in self.moves),
            Risk.ELECTION: any(f.election_changes for f in self.instances),
            Risk.RESTART: any(f.restarts for f in self.instances),
            Risk.DRAIN: bool(self.drains),
            Risk.SERVICE_REMOVED: bool(self.removed_services),
        }
        return tuple(r for r in Risk if found[r])


def healthy_priority(inst: VrrpInstance, cfg: NodeConfig) -> int:
    """The instance's effective priority on this node with every tracker healthy."""
    if inst.address_owner:
        return PRIORITY_OWNER
    value_trackers = {c.name for c in cfg.checks if isinstance(c.probe, FileProbe)}
    bonus = sum(
        t.weight
        for t in inst.track
        if t.weight > 0 and not (isinstance(t, TrackCheck) and t.check in value_trackers)
    )
    return max(PRIORITY_MIN, min(PRIORITY_MAX_BACKUP, inst.priority + bonus))


def _members(cluster: Cluster | None, name: str) -> dict[str, tuple[VrrpInstance, NodeConfig]]:
    out: dict[str, tuple[VrrpInstance, NodeConfig]] = {}
    for cfg in cluster.node_configs if cluster else ():
        for inst in cfg.instances:
            if inst.name == name:
                out[cfg.node.name] = (inst, cfg)
    return out


def ranking(members: dict[str, tuple[VrrpInstance, NodeConfig]]) -> tuple[Candidate, ...]:
    """Members by election order: priority, then primary address (RFC 5798 6.4.3)."""
    cands = [
        Candidate(
            node,
            healthy_priority(inst, cfg),
            str(inst.primary_address) if inst.primary_address else None,
        )
        for node, (inst, cfg) in members.items()
    ]

    def order(c: Candidate) -> tuple[int, int, str]:
        inst = members[c.node][0]
        addr = int(inst.primary_address) if inst.primary_address is not None else -1
        return (c.priority, addr, c.node)

    return tuple(sorted(cands, key=order, reverse=True))


def forecast_instance(old: Cluster | None, new: Cluster | None, name: str) -> InstanceForecast:
    before, after = _members(old, name), _members(new, name)
    rank_before, rank_after = ranking(before), ranking(after)
    master_before = rank_before[0].node if rank_before else None
    winner = rank_after[0].node if rank_after else None
    restarts = tuple(
        (node, reasons)
        for node in sorted(before.keys() & after.keys())
        if (reasons := restart_reasons(before[node][0], after[node][0]))
    )
    restarted = {node for node, _ in restarts}
    notes: list[str] = []
    if len(rank_after) > 1 and rank_after[0].priority == rank_after[1].priority:
        tied = rank_after[:2]
        if any(c.primary_address is None for c in tied):
            notes.append(
                f"{tied[0].node} and {tied[1].node} have the same priority and the tie is "
                "decided by their primary addresses, which the file does not give (IPv6 "
                "link-local): either may become master"
            )
    master_after, via = winner, None
    if master_before is not None and master_before in restarted and len(rank_after) > 1:
        # The master stops (priority 0, RFC 5798 6.4.3) and the next node takes over
        # until the master is back and preempts it.
        via = next(c.node for c in rank_after if c.node != master_before)
    if (
        master_before is not None
        and winner is not None
        and master_before in after
        and master_before != winner
        and master_before not in restarted
        and rank_after[0].priority != PRIORITY_OWNER
        and not after[winner][0].preempt
    ):
        master_after = master_before
        notes.append(
            f"preempt is off: {master_before} keeps the VIPs while it is up, although "
            f"{winner} has the higher priority ({rank_after[0].priority}); {winner} takes "
            f"over only when {master_before} fails"
        )
    elif (
        via is not None
        and winner is not None
        and winner == master_before
        and rank_after[0].priority != PRIORITY_OWNER
        and not after[winner][0].preempt
    ):
        master_after, via = via, None
        notes.append(
            f"preempt is off: after its restart {winner} does not take the VIPs back from "
            f"{master_after}"
        )
    if via == master_after:
        via = None  # the VIPs go straight to the new master
    if master_before is not None and master_before in restarted and len(rank_after) == 1:
        notes.append(
            f"no other node runs it: the VIPs leave {master_before} during the restart and "
            "come back"
        )
    vips_before = (
        {str(v.address) for v in before[master_before][0].vips} if master_before else set()
    )
    vips_after = {str(v.address) for v in after[winner][0].vips} if winner else set()
    moves = []
    for vip in sorted(vips_before | vips_after):
        held_before = master_before if vip in vips_before else None
        held_after = master_after if vip in vips_after else None
        passing = via if (held_before and held_after and via) else None
        if held_before != held_after or passing:
            why = f"{name} restarts on {master_before}" if passing else ""
            moves.append(VipMove(vip, name, held_before, held_after, passing, why))
    return InstanceForecast(
        instance=name,
        master_before=master_before,
        master_after=master_after,
        ranking_before=rank_before,
        ranking_after=rank_after,
        restarts=restarts,
        moves=tuple(moves),
        notes=tuple(notes),
        vips=tuple(sorted(vips_after)),
    )


def follow_sync_groups(
    instances: tuple[InstanceForecast, ...], new: Cluster | None
) -> tuple[InstanceForecast, ...]:
    """A sync group's instances change state together (keepalived's vrrp_sync_group): when
    one restarts on its master, the others there go to BACKUP with it and come back; when
    they expect different masters, the group follows whichever leaves MASTER first."""
    groups: dict[str, set[str]] = {}
    for cfg in new.node_configs if new else ():
        for g in cfg.sync_groups:
            groups.setdefault(g.name, set()).update(g.members)
    out = {f.instance: f for f in instances}
    for group, members in sorted(groups.items()):
        fs = [out[m] for m in sorted(members) if m in out]
        masters = {f.instance: f.master_after for f in fs if f.master_after}
        if len(set(masters.values())) > 1:
            which = ", ".join(f"{i} on {n}" for i, n in masters.items())
            note = (
                f"sync group {group}: its instances expect different masters ({which}); the "
                "group follows whichever leaves MASTER first, so the VIPs may all end on "
                "either node"
            )
            for f in fs:
                out[f.instance] = dataclasses.replace(f, notes=(*f.notes, note))
        for leader in fs:
            bounce = next((m for m in leader.moves if m.via), None)
            if bounce is None:
                continue
            for name in (f.instance for f in fs if f.instance != leader.instance):
                peer = out[name]
                if peer.moves or peer.master_before != bounce.before:
                    continue
                if peer.master_after != bounce.before:
                    continue
                why = f"{bounce.why}, and sync group {group} follows"
                moves = tuple(
                    VipMove(v, name, bounce.before, bounce.before, bounce.via, why)
                    for v in peer.vips
                )
                out[name] = dataclasses.replace(peer, moves=moves)
    return tuple(out[f.instance] for f in instances)


def forecast(old: Cluster | None, new: Cluster | None, plans: Sequence[Plan]) -> Forecast:
    """The cluster-wide effect of going from `old` to `new`; `plans` are the nodes' plans
    between the two (for the real servers and services they remove)."""
    names = sorted(
        {i.name for c in (old, new) if c for cfg in c.node_configs for i in cfg.instances}
    )
    drains: list[Drain] = []
    removed: list[RemovedService] = []
    for plan in plans:
        for step in plan.steps:
            if step.action is not Action.DELETE:
                continue
            if isinstance(step.before, RealServer) and step.before.service.protocol is not (
                Protocol.UDP
            ):
                rs = step.before
                drains.append(Drain(plan.node, f"{rs.service} -> {rs.endpoint}"))
            if isinstance(step.before, VirtualService):
                svc = step.before
                removed.append(RemovedService(plan.node, f"{svc.service} ({svc.name})"))
    return Forecast(
        instances=follow_sync_groups(tuple(forecast_instance(old, new, n) for n in names), new),
        drains=tuple(drains),
        removed_services=tuple(removed),
        drain_timeout=new.drain_timeout if new else None,
    )
