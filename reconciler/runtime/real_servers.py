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
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from reconciler.health.policy import CheckTransition, target_label
from reconciler.health.priority import quorum_up, real_server_weight
from reconciler.model.cluster import NodeConfig
from reconciler.model.common import CheckState, Key
from reconciler.model.ipvs import RealServer, VirtualService
from reconciler.plan.live import Overlay
from reconciler.runtime.checks import CheckJob

log = logging.getLogger("reconciler.real_servers")


@dataclass
class _Server:
    rs: RealServer
    state: CheckState
    weight: int | None = None  # dynamic weight reported by the check


Listener = Callable[[str, RealServer, CheckState], None]  # (event, server, state)


class RealServerHealth:
    def __init__(self, on_change: Callable[[], None], on_server: Listener | None = None) -> None:
        self.on_change = on_change  # wake the reconcile loop
        self.on_server = on_server  # notify hooks, traces
        self.services: dict[Key, VirtualService] = {}
        self.servers: dict[tuple[str, str], _Server] = {}  # (check, target) -> server
        self.by_key: dict[Key, _Server] = {}
        self.all_servers: dict[Key, list[RealServer]] = {}  # service key -> every server
        self.quorum: dict[Key, bool] = {}

    def set_config(self, cfg: NodeConfig) -> None:
        """A new revision: keep the state of servers whose check did not change."""
        old = self.by_key
        self.services = {s.key: s for s in cfg.services}
        self.servers, self.by_key, self.all_servers = {}, {}, {}
        for rs in cfg.real_servers:
            self.all_servers.setdefault(rs.service.parts(), []).append(rs)
            if rs.check is None:
                continue
            svc = self.services[rs.service.parts()]
            prev = old.get(rs.key)
            if prev is not None and prev.rs.check == rs.check:
                entry = _Server(rs, prev.state, prev.weight)
            else:
                entry = _Server(rs, CheckState.DOWN if svc.alpha else rs.check.initial)
            self.servers[(rs.check.name, target_label(rs.address, rs.port))] = entry
            self.by_key[rs.key] = entry
        self.quorum = {k: v for k, v in self.quorum.items() if k in self.services}
        self._update_quorum()

    def jobs(self) -> list[CheckJob]:
        out = []
        for entry in self.by_key.values():
            assert entry.rs.check is not None
            out.append(CheckJob(entry.rs.check, entry.rs.address, entry.rs.port))
        return out

    def on_check(self, t: CheckTransition) -> bool:
        """Apply a check result; False when it is not about a real server."""
        entry = self.servers.get((t.check, t.target))
        if entry is None:
            return False
        before = self._weight(entry)
        entry.state = t.new
        entry.weight = t.weight
        if t.state_changed:
            log.info(
                "real server %s of %s: %s -> %s (%s)",
                entry.rs.endpoint,
                entry.rs.service,
                t.old.value,
                t.new.value,
                t.reason,
            )
            if self.on_server is not None and t.new is not CheckState.UNKNOWN:
                self.on_server(t.new.value, entry.rs, t.new)
        weight_changed = self._weight(entry) != before
        quorum_changed = self._update_quorum()
        if weight_changed or quorum_changed:
            self.on_change()
        return True

    # ------------------------------------------------------------ the overlay
    def _weight(self, entry: _Server) -> int | None:
        weight = real_server_weight(entry.rs.weight, entry.state, entry.weight)
        if weight is None and entry.rs.inhibit_on_failure:
            return 0
        return weight

    def _live_weights(self, service: Key, cfg_servers: list[RealServer]) -> list[int]:
        out = []
        for rs in cfg_servers:
            entry = self.by_key.get(rs.key)
            w = rs.weight if entry is None else self._weight(entry)
            if w:
                out.append(w)
        return out

    def _servers_of(self, service: Key) -> list[RealServer]:
        return self.all_servers.get(service, [])

    def _update_quorum(self) -> bool:
        changed = False
        for key, svc in self.services.items():
            if svc.sorry_server is None:
                continue
            servers = self._servers_of(key)
            if not servers:
                continue
            up = quorum_up(
                self._live_weights(key, servers),
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
        weights: dict[Key, int | None] = {}
        for key, entry in self.by_key.items():
            weights[key] = self._weight(entry)
        sorry = frozenset(k for k, up in self.quorum.items() if not up)
        for key in sorry:
            for rs in self._servers_of(key):
                weights[rs.key] = None  # traffic goes to the sorry server only
        return Overlay(weights, sorry)
