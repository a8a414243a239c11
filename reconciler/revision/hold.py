"""Suspended instances in a new revision: they keep running exactly as they are."""

from __future__ import annotations

from dataclasses import replace

from reconciler.model.cluster import NodeConfig
from reconciler.model.vrrp import TrackCheck


class HoldConflict(ValueError):
    """The new revision clashes with an instance held as it runs (same VRID)."""


def hold_instances(new: NodeConfig, running: NodeConfig, held: frozenset[str]) -> NodeConfig:
    """``new`` with every instance named in ``held`` as it is in ``running``: kept when
    the new revision changes or removes it, not started when it is new. The checks such
    an instance tracks are kept too. HoldConflict when another instance of the new
    revision takes a held instance's VRID on its interface and family."""
    if not held:
        return new
    kept = {i.name: i for i in running.instances if i.name in held}
    instances = [i for i in new.instances if i.name not in held]
    ids = {(i.interface, i.family, i.vrid): i.name for i in instances}
    for inst in kept.values():
        other = ids.get((inst.interface, inst.family, inst.vrid))
        if other is not None:
            raise HoldConflict(
                f"instance {other} takes VRID {inst.vrid} on {inst.interface} from "
                f"suspended instance {inst.name}: resume it first"
            )
        instances.append(inst)
    names = {c.name for c in new.checks}
    tracked = {t.check for i in kept.values() for t in i.track if isinstance(t, TrackCheck)}
    checks = [*new.checks, *(c for c in running.checks if c.name in tracked - names)]
    order = [i.name for i in new.instances] + [i.name for i in running.instances]
    instances.sort(key=lambda i: order.index(i.name))
    return replace(new, instances=tuple(instances), checks=tuple(checks))
