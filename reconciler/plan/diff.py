"""The pure diff: desired resources against observed ones, scoped to what we own.

`diff(desired, observed, owned)` compares resources by identity key (`kind`,
`key`). A desired resource missing from observed is created; one that differs
is updated in place with the list of changed fields; an observed resource that
is no longer desired is deleted only when its key is in `owned`. Something
observed that we do not own is never changed: when the desired state wants the
same key with other values, the step is a conflict that apply skips and status
reports.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, cast

from reconciler.model.common import Key, Resource
from reconciler.model.vrrp import VrrpInstance, restart_reasons


class Action(enum.Enum):
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"
    CONFLICT = "conflict"


@dataclass(frozen=True)
class FieldChange:
    field: str
    before: Any
    after: Any


@dataclass(frozen=True)
class Step:
    action: Action
    kind: str
    key: Key
    before: Resource | None
    after: Resource | None
    changes: tuple[FieldChange, ...] = ()

    @property
    def resource(self) -> Resource:
        r = self.after if self.after is not None else self.before
        assert r is not None
        return r

    @property
    def restarts(self) -> tuple[str, ...]:
        """For an update of a VRRP instance, the identity fields whose change restarts it
        (a priority-0 advert, its VIPs released and taken again: disruptive); empty when
        the update is applied in place (model.vrrp.restart_reasons)."""
        before, after = self.before, self.after
        if (
            self.action is Action.UPDATE
            and isinstance(before, VrrpInstance)
            and isinstance(after, VrrpInstance)
        ):
            return restart_reasons(before, after)
        return ()


# Order of a plan. Deletes of VRRP objects come first so a VRID or VIP can move
# between instance names within one plan; IPVS is make-before-break: new
# services and real servers are in place before old ones are drained and
# removed; checks outlive everything that uses them.
_PHASES: tuple[tuple[Action, str], ...] = (
    (Action.DELETE, "sync_group"),
    (Action.DELETE, "vrrp_instance"),
    (Action.DELETE, "address"),
    (Action.CREATE, "check"),
    (Action.UPDATE, "check"),
    (Action.CREATE, "vrrp_instance"),
    (Action.UPDATE, "vrrp_instance"),
    (Action.CREATE, "address"),
    (Action.UPDATE, "address"),
    (Action.CREATE, "sync_group"),
    (Action.UPDATE, "sync_group"),
    (Action.CREATE, "ipvs_service"),
    (Action.UPDATE, "ipvs_service"),
    (Action.CREATE, "ipvs_dest"),
    (Action.UPDATE, "ipvs_dest"),
    (Action.DELETE, "ipvs_dest"),
    (Action.DELETE, "ipvs_service"),
    (Action.DELETE, "check"),
)
_PHASE_INDEX = {p: i for i, p in enumerate(_PHASES)}


def _phase(step: Step) -> int:
    if step.action is Action.CONFLICT:
        return -1  # conflicts first: the reader must see them
    return _PHASE_INDEX.get((step.action, step.kind), len(_PHASES))


def field_changes(before: Resource, after: Resource) -> tuple[FieldChange, ...]:
    # Every Resource is a frozen dataclass; the Protocol cannot say so.
    return tuple(
        FieldChange(f.name, getattr(before, f.name), getattr(after, f.name))
        for f in dataclasses.fields(cast(Any, after))
        if getattr(before, f.name) != getattr(after, f.name)
    )


def _index(resources: Iterable[Resource]) -> dict[tuple[str, Key], Resource]:
    out: dict[tuple[str, Key], Resource] = {}
    for r in resources:
        out[(r.kind, r.key)] = r
    return out


def diff(
    desired: Iterable[Resource],
    observed: Iterable[Resource],
    owned: Iterable[tuple[str, Key]] | Mapping[tuple[str, Key], object],
) -> list[Step]:
    """Ordered steps that turn `observed` into `desired`, touching only what is `owned`."""
    want = _index(desired)
    have = _index(observed)
    ours = set(owned)
    steps: list[Step] = []
    for ident, after in want.items():
        kind, key = ident
        before = have.get(ident)
        if before is None:
            steps.append(Step(Action.CREATE, kind, key, None, after))
        elif before != after:
            changes = field_changes(before, after)
            action = Action.UPDATE if ident in ours else Action.CONFLICT
            steps.append(Step(action, kind, key, before, after, changes))
        elif ident not in ours:
            # Equal but someone else's: never claimed, never removed; reported.
            steps.append(Step(Action.CONFLICT, kind, key, before, after))
    for ident, before in have.items():
        if ident not in want and ident in ours:
            steps.append(Step(Action.DELETE, ident[0], ident[1], before, None))
    steps.sort(key=lambda s: (_phase(s), s.kind, s.key))
    return steps
