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

A check's state and the dynamic weight it reported are the check scheduler's
(``CheckScheduler.state_of``); this module keeps no copy of them. It reads them
to decide a server's weight whenever they may have moved: at a transition, and
after a reload once the scheduler has swapped its jobs (``refresh``). So a reload
agrees with the scheduler on what survives it: a check whose probe and target did
not change keeps its state and weight (a dead server stays out of the pool, a
lost quorum stays lost and a dynamic weight stays when only a timeout or interval
changed), and a new or re-aimed check starts from its ``initial`` state. Before
the scheduler runs a check (at start-up), it is in its ``initial`` state. What
it keeps is its own: the weights it decided (so that a transition that moves
nothing, unknown to up, wakes nobody) and each service's quorum decision (its
hysteresis needs the previous one).
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from reconciler.health.policy import CheckTransition, target_label
from reconciler.health.priority import quorum_up, real_server_weight
from reconciler.model.cluster import NodeConfig
from reconciler.model.common import CheckState, Key
from reconciler.model.ipvs import RealServer, VirtualService
from reconciler.plan.live import Overlay
from reconciler.runtime.checks import CheckJob, CheckResults, JobKey

log = logging.getLogger("reconciler.real_servers")


class ServerEvent(enum.Enum):
    """What a real server's hooks are told (RECONCILER_STATE is the value): the server
    itself went up or down, or its service lost or regained the quorum."""

    UP = "up"
    DOWN = "down"
    QUORUM_UP = "quorum_up"
    QUORUM_DOWN = "quorum_down"


# (event, server): for quorum events, the service's first server
Listener = Callable[[ServerEvent, RealServer], None]


@dataclass(frozen=True)
class _Server:
    """A configured server and its keys, formatted once (addresses format slowly)."""

    rs: RealServer
    key: Key
    service: Key
    job: JobKey | None  # None: no check
    alpha: bool  # its service starts checked servers down

    @classmethod
    def of(cls, rs: RealServer, svc: VirtualService) -> _Server:
        job = None if rs.check is None else (rs.check.name, target_label(rs.address, rs.port))
        return cls(rs, rs.key, svc.key, job, svc.alpha)


class RealServerHealth:
    def __init__(
        self,
        on_change: Callable[[], None],
        results: CheckResults,
        on_server: Listener | None = None,
    ) -> None:
        self.on_change = on_change  # wake the reconcile loop
        self.results = results  # the check scheduler
        self.on_server = on_server  # notify hooks, traces
        self.services: dict[Key, VirtualService] = {}
        self.all_servers: dict[Key, list[_Server]] = {}  # service key -> every server
        # A job may decide several servers: one named check, the same address and port,
        # in two services.
        self.checked: dict[JobKey, list[_Server]] = {}
        self.weights: dict[Key, int | None] = {}  # decided, for each checked server
        self.quorum: dict[Key, bool] = {}

    def set_config(self, cfg: NodeConfig) -> None:
        """A new revision's servers. Then swap the scheduler's jobs for the new ``jobs()``
        and call ``refresh``: the states it reads are the ones the scheduler kept."""
        self.services = {s.key: s for s in cfg.services}
        self.all_servers, self.checked = {}, {}
        for rs in cfg.real_servers:
            server = _Server.of(rs, self.services[rs.service.parts()])
            self.all_servers.setdefault(server.service, []).append(server)
            if server.job is not None:
                self.checked.setdefault(server.job, []).append(server)
        # A quorum decision lasts while its service has a sorry server to switch to.
        self.quorum = {
            k: v
            for k, v in self.quorum.items()
            if k in self.services and self.services[k].sorry_server is not None
        }

    def refresh(self) -> None:
        """Decide every weight and quorum from the scheduler's states (at start-up, and
        after a reload swapped the jobs); wakes the reconcile loop when something moved."""
        before = self.weights
        self.weights = {s.key: self._weight(s) for group in self.checked.values() for s in group}
        quorum_changed = self._update_quorum(self.services)
        if quorum_changed or self.weights != before:
            self.on_change()

    def jobs(self) -> list[CheckJob]:
        out = []
        for group in self.checked.values():
            rs = group[0].rs  # the others have the same check, address and port
            assert rs.check is not None
            out.append(CheckJob(rs.check, rs.address, rs.port))
        return out

    def on_check(self, t: CheckTransition) -> bool:
        """A check's result changed; False when it is not about a real server."""
        group = self.checked.get((t.check, t.target))
        if group is None:
            return False
        weight_changed = False
        for server in group:
            weight = self._weight(server)
            weight_changed |= server.key not in self.weights or self.weights[server.key] != weight
            self.weights[server.key] = weight
            if t.state_changed:
                log.info(
                    "real server %s of %s: %s -> %s (%s)",
                    server.rs.endpoint,
                    server.rs.service,
                    t.old.value,
                    t.new.value,
                    t.reason,
                )
                if self.on_server is not None and t.new is not CheckState.UNKNOWN:
                    event = ServerEvent.UP if t.new is CheckState.UP else ServerEvent.DOWN
                    self.on_server(event, server.rs)
        quorum_changed = self._update_quorum({server.service for server in group})
        if weight_changed or quorum_changed:
            self.on_change()
        return True

    # ------------------------------------------------------------ the overlay
    def _weight(self, server: _Server) -> int | None:
        """A checked server's weight from its check's state and dynamic weight, as the
        scheduler has them."""
        assert server.job is not None and server.rs.check is not None
        known = self.results.state_of(server.job)
        if known is None:
            state, dynamic = server.rs.check.initial, None
        else:
            state, dynamic = known.state, known.weight
        if state is CheckState.UNKNOWN and server.alpha:
            state = CheckState.DOWN  # alpha: out of the pool until the first pass
        weight = real_server_weight(server.rs.weight, state, dynamic)
        if weight is None and server.rs.inhibit_on_failure:
            return 0
        return weight

    def _live_weights(self, servers: list[_Server]) -> list[int]:
        out = []
        for server in servers:
            w = server.rs.weight if server.job is None else self.weights.get(server.key)
            if w:
                out.append(w)
        return out

    def _update_quorum(self, services: Iterable[Key]) -> bool:
        changed = False
        for key in services:
            svc = self.services[key]
            servers = self.all_servers.get(key)
            if svc.sorry_server is None or not servers:
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
                        event = ServerEvent.QUORUM_UP if up else ServerEvent.QUORUM_DOWN
                        self.on_server(event, servers[0].rs)
                self.quorum[key] = up
                changed = True
        return changed

    def overlay(self) -> Overlay:
        weights = dict(self.weights)
        sorry = frozenset(k for k, up in self.quorum.items() if not up)
        for key in sorry:
            for server in self.all_servers.get(key, ()):
                weights[server.key] = None  # traffic goes to the sorry server only
        return Overlay(weights, sorry)
