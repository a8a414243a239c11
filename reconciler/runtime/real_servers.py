"""Real-server health: checks decide each server's weight, quorum decides the sorry server.

Checks of real servers run like any other (`runtime.checks`), one job per server
and check, aimed at the server's address and port. Their states become an
overlay on the desired state that the reconcile loop projects (`plan.live`):

- a server whose check is down leaves the table, or stays at weight 0 with
  `inhibit_on_failure`; a script check with `dynamic_weight` sets its weight;
- servers of a service with `alpha` start down until their first pass;
- when the summed weight of a service's live servers loses the quorum
  (keepalived's hysteresis rules, `health.priority.quorum_up`), traffic switches to
  the sorry server: it is added and the real servers leave; when the quorum is
  back, the real servers return and the sorry server goes (or stays at weight 0 with
  `sorry_server_inhibit`). A service with a sorry server and no quorum settings
  switches when no real server is left.

A check's state and the dynamic weight it reported are the check scheduler's,
read whenever a weight is computed; this module keeps no copy of them, only each
service's quorum decision (its hysteresis needs the previous one). So a reload
agrees with the scheduler on what survives it: a check whose probe and target did
not change keeps its state and weight (a dead server stays out of the pool and a
lost quorum stays lost when only a timeout or interval changed), and a new or
re-aimed check starts from its ``initial`` state. Before the scheduler runs a
check (at start-up), it is in its ``initial`` state.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from reconciler.health.policy import CheckTransition, target_label
from reconciler.health.priority import quorum_up, real_server_weight
from reconciler.model.cluster import NodeConfig
from reconciler.model.common import CheckState, Key
from reconciler.model.ipvs import RealServer, VirtualService
from reconciler.plan.live import Overlay
from reconciler.runtime.checks import CheckJob, CheckResults, JobKey

log = logging.getLogger("reconciler.real_servers")

Listener = Callable[[str, RealServer, CheckState], None]  # (event, server, state)


def job_key(rs: RealServer) -> JobKey:
    """The scheduler's key of a checked server's probe job."""
    assert rs.check is not None
    return (rs.check.name, target_label(rs.address, rs.port))


class RealServerHealth:
    def __init__(
        self,
        on_change: Callable[[], None],
        results: CheckResults,
        on_server: Listener | None = None,
    ) -> None:
        self.on_change = on_change  # wake the reconcile loop
        self.results = results
        self.on_server = on_server  # notify hooks, traces
        self.services: dict[Key, VirtualService] = {}
        self.all_servers: dict[Key, list[RealServer]] = {}  # service key -> every server
        # A job may decide several servers: one named check, the same address and port,
        # in two services.
        self.checked: dict[JobKey, list[RealServer]] = {}
        # The weight last decided for each checked server: what tells a transition that
        # moves a weight (or the quorum) from one that does not (unknown -> up).
        self.weights: dict[Key, int | None] = {}
        self.quorum: dict[Key, bool] = {}

    def set_config(self, cfg: NodeConfig) -> None:
        """A new revision's servers. Swap the scheduler's jobs for the new ``jobs()``, then
        call ``refresh``: the states it reads are the ones the scheduler kept."""
        self.services = {s.key: s for s in cfg.services}
        self.all_servers, self.checked = {}, {}
        for rs in cfg.real_servers:
            self.all_servers.setdefault(rs.service.parts(), []).append(rs)
            if rs.check is not None:
                self.checked.setdefault(job_key(rs), []).append(rs)
        self.quorum = {k: v for k, v in self.quorum.items() if k in self.services}

    def refresh(self) -> None:
        """Decide every server's weight and every quorum from the scheduler's states (at
        start-up and after a reload); wakes the reconcile loop when something moved."""
        before = self.weights
        self.weights = {
            rs.key: self._weight(rs) for servers in self.checked.values() for rs in servers
        }
        quorum_changed = self._update_quorum(self.services)
        if quorum_changed or self.weights != before:
            self.on_change()

    def jobs(self) -> list[CheckJob]:
        out = []
        for servers in self.checked.values():
            rs = servers[0]  # the others have the same check, address and port
            assert rs.check is not None
            out.append(CheckJob(rs.check, rs.address, rs.port))
        return out

    def on_check(self, t: CheckTransition) -> bool:
        """A check's result changed; False when it is not about a real server."""
        servers = self.checked.get((t.check, t.target))
        if servers is None:
            return False
        weight_changed = False
        for rs in servers:
            weight = self._weight(rs)
            weight_changed |= rs.key not in self.weights or self.weights[rs.key] != weight
            self.weights[rs.key] = weight
            if t.state_changed:
                log.info(
                    "real server %s of %s: %s -> %s (%s)",
                    rs.endpoint,
                    rs.service,
                    t.old.value,
                    t.new.value,
                    t.reason,
                )
                if self.on_server is not None and t.new is not CheckState.UNKNOWN:
                    self.on_server(t.new.value, rs, t.new)
        quorum_changed = self._update_quorum({rs.service.parts() for rs in servers})
        if weight_changed or quorum_changed:
            self.on_change()
        return True

    # ------------------------------------------------------------ the overlay
    def _state(self, rs: RealServer) -> tuple[CheckState, int | None]:
        """A checked server's state and dynamic weight, as the scheduler has them."""
        assert rs.check is not None
        status = self.results.status_of(job_key(rs))
        state, dynamic = (
            (rs.check.initial, None) if status is None else (status.state, status.weight)
        )
        if state is CheckState.UNKNOWN and self.services[rs.service.parts()].alpha:
            return CheckState.DOWN, dynamic  # alpha: out of the pool until the first pass
        return state, dynamic

    def _weight(self, rs: RealServer) -> int | None:
        if rs.check is None:
            return rs.weight
        weight = real_server_weight(rs.weight, *self._state(rs))
        if weight is None and rs.inhibit_on_failure:
            return 0
        return weight

    def _live_weights(self, servers: list[RealServer]) -> list[int]:
        return [w for w in (self._weight(rs) for rs in servers) if w]

    def _servers_of(self, service: Key) -> list[RealServer]:
        return self.all_servers.get(service, [])

    def _update_quorum(self, services: Iterable[Key]) -> bool:
        changed = False
        for key in services:
            svc = self.services.get(key)
            if svc is None or svc.sorry_server is None:
                continue
            servers = self._servers_of(key)
            if not servers:
                continue
            up = quorum_up(
                self._live_weights(servers),
                svc.quorum.min_weight,
                svc.quorum.hysteresis,
                self.quorum.get(key),
            )
            if self.quorum.get(key) != up:
                if key in self.quorum:
                    log.warning(
                        "service %s: quorum %s; traffic goes to %s",
                        svc.service,
                        "regained" if up else "lost",
                        "the real servers" if up else f"sorry server {svc.sorry_server}",
                    )
                    if self.on_server is not None:
                        state = CheckState.UP if up else CheckState.DOWN
                        self.on_server("quorum_up" if up else "quorum_down", servers[0], state)
                self.quorum[key] = up
                changed = True
        return changed

    def overlay(self) -> Overlay:
        weights: dict[Key, int | None] = {
            rs.key: self._weight(rs) for servers in self.checked.values() for rs in servers
        }
        sorry = frozenset(k for k, up in self.quorum.items() if not up)
        for key in sorry:
            for rs in self._servers_of(key):
                weights[rs.key] = None  # traffic goes to the sorry server only
        return Overlay(weights, sorry)
