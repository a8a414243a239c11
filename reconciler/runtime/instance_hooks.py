"""One VRRP instance's notify hooks (keepalived's notify_master/backup/fault/stop)."""

from __future__ import annotations

from collections.abc import Callable

from reconciler.model import vrrp as model
from reconciler.model.vrrp import Hook
from reconciler.runtime.notify import Notifier
from reconciler.vrrp.states import State, TransitionReason

_HOOK_STATE = {
    State.MASTER: "master",
    State.BACKUP: "backup",
    State.FAULT: "fault",
    State.INITIALIZE: "stop",
}


class InstanceHooks:
    """Runs an instance's hooks through the node's `Notifier` (None: no hooks run).

    Hooks are read from ``spec`` when they run; ``priority``: the effective priority now
    (the machine's), for the hooks' environment.
    """

    def __init__(
        self, spec: model.VrrpInstance, notifier: Notifier | None, priority: Callable[[], int]
    ) -> None:
        self._spec = spec
        self._notifier = notifier
        self._priority = priority

    def reconfigure(self, spec: model.VrrpInstance) -> None:
        self._spec = spec

    def env(self, state: State, from_state: State | None = None) -> dict[str, str]:
        spec = self._spec
        env = {
            "RECONCILER_INSTANCE": spec.name,
            "RECONCILER_STATE": _HOOK_STATE[state],
            "RECONCILER_PRIORITY": str(self._priority()),
            "RECONCILER_VRID": str(spec.vrid),
            "RECONCILER_INTERFACE": spec.interface,
        }
        if from_state is not None:
            env["RECONCILER_FROM_STATE"] = _HOOK_STATE[from_state]
        return env

    async def before_release(self, to_state: State) -> None:
        """Hooks marked before_release run, and are waited for (each up to its timeout),
        before the VIPs go: e.g. to drain sessions or tell a peer."""
        hooks = tuple(h for h in self._hooks(to_state) if h.before_release)
        if hooks and self._notifier is not None:
            await self._notifier.run_now(hooks, self.env(to_state, State.MASTER))

    def notify(self, from_state: State, to_state: State, reason: TransitionReason) -> None:
        """Queue the hooks of a state entered (a stop's only on shutdown)."""
        if to_state is State.INITIALIZE and reason is not TransitionReason.SHUTDOWN:
            return
        hooks = tuple(h for h in self._hooks(to_state) if not h.before_release)
        if hooks and self._notifier is not None:
            self._notifier.submit(self._spec.name, hooks, self.env(to_state, from_state))

    def _hooks(self, state: State) -> tuple[Hook, ...]:
        if state is State.INITIALIZE:
            return self._spec.notify.stop
        return tuple(getattr(self._spec.notify, _HOOK_STATE[state]))
