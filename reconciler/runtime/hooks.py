"""Which notify hooks run for what, beyond an instance's own (runtime/vrrp_driver.py).

A sync group's hooks run once the whole group is in a new state; a real server's at its
up and down; a service's when it loses or regains its quorum. Every hook also gets the
node and the revision it runs (``revision_env``). The hooks run in the Notifier
(runtime/notify.py), one subject at a time.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from reconciler.model.ipvs import RealServer
from reconciler.runtime.notify import Notifier
from reconciler.runtime.real_servers import ServerEvent
from reconciler.runtime.revision_apply import RunningRevision
from reconciler.runtime.vrrp_driver import InstanceDriver
from reconciler.vrrp.states import State

_STATE_NAMES = {State.MASTER: "master", State.BACKUP: "backup", State.FAULT: "fault"}


def revision_env(node: str, running: RunningRevision) -> Callable[[], dict[str, str]]:
    """The environment every hook gets, read when the hook starts."""

    def env() -> dict[str, str]:
        revision = running.revision
        return {
            "RECONCILER_NODE": node,
            "RECONCILER_CLUSTER": revision.cluster,
            "RECONCILER_REVISION": revision.digest,
            "RECONCILER_COMMIT": revision.commit or "",
        }

    return env


class NodeHooks:
    def __init__(
        self,
        notifier: Notifier,
        running: RunningRevision,
        drivers: Mapping[str, InstanceDriver],
    ) -> None:
        self._notifier = notifier
        self._running = running
        self._drivers = drivers  # live view: instance name -> driver
        self._group_states: dict[str, State] = {}  # the state each group's hooks last saw

    def on_group_member(self, group: str | None) -> None:
        """A member of ``group`` changed state: the group's hooks run once the whole
        group is in a new state."""
        spec = next((g for g in self._running.config.sync_groups if g.name == group), None)
        if spec is None:
            return
        states = {self._drivers[m].state for m in spec.members if m in self._drivers}
        if len(states) != 1:
            return
        (state,) = states
        if self._group_states.get(spec.name) is state:
            return
        self._group_states[spec.name] = state
        hooks = {
            State.MASTER: spec.notify.master,
            State.BACKUP: spec.notify.backup,
            State.FAULT: spec.notify.fault,
            State.INITIALIZE: spec.notify.stop,
        }[state]
        env = {"RECONCILER_GROUP": spec.name, "RECONCILER_STATE": _STATE_NAMES.get(state, "stop")}
        self._notifier.submit(f"group:{spec.name}", hooks, env)

    def on_server(self, event: ServerEvent, rs: RealServer) -> None:
        """Real-server up/down and quorum hooks."""
        env = {
            "RECONCILER_SERVICE": str(rs.service),
            "RECONCILER_SERVER": str(rs.endpoint),
            "RECONCILER_STATE": event.value,
        }
        if event in (ServerEvent.UP, ServerEvent.DOWN):
            hooks = rs.notify_up if event is ServerEvent.UP else rs.notify_down
            self._notifier.submit(f"server:{rs.service}:{rs.endpoint}", hooks, env)
            return
        svc = next((v for v in self._running.config.services if v.service == rs.service), None)
        if svc is not None:
            hooks = svc.quorum.up if event is ServerEvent.QUORUM_UP else svc.quorum.down
            self._notifier.submit(f"service:{rs.service}", hooks, env)
