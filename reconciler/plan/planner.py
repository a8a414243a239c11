"""Plans: the ordered steps for one node, with what they are between."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from reconciler.model.cluster import NodeConfig
from reconciler.plan.diff import Action, Step, diff


@dataclass(frozen=True)
class Plan:
    node: str
    source: str  # what the node is assumed to run now (old file, or "live")
    target: str  # the desired state (new file)
    steps: tuple[Step, ...]

    @property
    def has_changes(self) -> bool:
        return any(s.action is not Action.CONFLICT for s in self.steps)

    @property
    def disruptive(self) -> tuple[Step, ...]:
        """Updates that restart a VRRP instance instead of changing it in place."""
        return tuple(s for s in self.steps if s.restarts)

    def counts(self) -> dict[Action, int]:
        c = Counter(s.action for s in self.steps)
        return {a: c.get(a, 0) for a in Action}


def plan_revision(
    node: str, old: NodeConfig | None, new: NodeConfig | None, *, source: str, target: str
) -> Plan:
    """What `node` would change going from revision `old` to `new` (either may lack the node).

    Everything the old revision describes is taken as ours and in place, so the
    plan is exactly what a converged node would do when the new revision lands.
    """
    observed = list(old.resources()) if old else []
    desired = list(new.resources()) if new else []
    owned = {(r.kind, r.key) for r in observed}
    return Plan(node, source, target, tuple(diff(desired, observed, owned)))
