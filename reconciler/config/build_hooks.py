"""Hooks: the programs run on a VRRP transition, a quorum change or a real server's state
change, with their timeout and user."""

from __future__ import annotations

from datetime import timedelta

from reconciler.config.build_context import Context, Setting
from reconciler.config.yamlload import Path, dotted
from reconciler.model.vrrp import DEFAULT_HOOK_USER, Hook, Notify

DEFAULT_HOOK_TIMEOUT = timedelta(seconds=5)


def hooks(
    ctx: Context, path: Path, default_timeout: timedelta, *, release_ok: bool, default_user: str
) -> tuple[Hook, ...]:
    out: list[Hook] = []
    for i, h in enumerate(ctx.doc.get(path)):
        if isinstance(h, list):
            out.append(Hook(tuple(h), default_timeout, user=default_user))
            continue
        before = h.get("before_release", False)
        if before and not release_ok:
            ctx.error(
                (*path, i, "before_release"),
                f"{dotted(path)}[{i}].before_release: only backup, fault and stop hooks run "
                "before the VIPs are released",
            )
        out.append(
            Hook(
                tuple(h["command"]),
                ctx.duration_or((*path, i, "timeout"), default_timeout),
                before,
                ctx.user((*path, i, "user"), default_user, "this hook is"),
            )
        )
    return tuple(out)


def notify(ctx: Context, s: Setting | None) -> Notify:
    """The VRRP notify block of an instance or a sync group."""
    if not s or not s.path:
        return Notify()
    p = s.path
    timeout = ctx.duration_or((*p, "timeout"), DEFAULT_HOOK_TIMEOUT)
    user = ctx.user((*p, "user"), DEFAULT_HOOK_USER, "these hooks are")

    def on(key: str) -> tuple[Hook, ...]:
        if key not in s.value:
            return ()
        return hooks(ctx, (*p, key), timeout, release_ok=key != "master", default_user=user)

    return Notify(master=on("master"), backup=on("backup"), fault=on("fault"), stop=on("stop"))
