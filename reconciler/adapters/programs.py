"""Which program a hook or script check runs, as whom, and whether it is safe to run.

Hooks (notify) and script checks run as a configured user, ``nobody`` unless the file
says otherwise, like keepalived's ``script_user``. Before each run the program is
resolved (a name without '/' on :data:`SCRIPT_PATH`, a relative path from ``/``, the
working directory of every run) and refused when someone other than root or the run-as
user could change what runs: this is keepalived's ``enable_script_security`` rule
(lib/notify.c, ``check_security``), always on. Every directory whose entry is read on
the way to the file (symbolic links followed one hop at a time, so the directories of
each link's target count too) and the file itself must be

* owned by root or by the run-as user, and
* not writable by group or others, except a directory with the sticky bit (``/tmp``):
  there the kernel lets only an entry's owner, the directory's owner or root rename or
  remove it, and the next component's own check covers that entry.

The environment of a run is :func:`minimal_environment`: PATH, HOME, USER, LOGNAME,
LANG and the caller's ``RECONCILER_*`` variables, nothing of the daemon's.
"""

from __future__ import annotations

import os
import pwd
import stat
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = [
    "SCRIPT_PATH",
    "Account",
    "account",
    "execute_problem",
    "minimal_environment",
    "resolve",
    "unsafe_reason",
]

# The search path of every hook and script: fixed, never the daemon's own PATH.
SCRIPT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_MAX_SYMLINKS = 40  # as the kernel's path walk (ELOOP after 40 links)


@dataclass(frozen=True)
class Account:
    """A local user a program runs as, from the password and group databases."""

    uid: int
    gid: int
    groups: tuple[int, ...]  # supplementary groups, the primary one included
    name: str
    home: str


def account(user: str) -> Account:
    """The account of `user` (a name); KeyError when there is none."""
    entry = pwd.getpwnam(user)
    return Account(
        uid=entry.pw_uid,
        gid=entry.pw_gid,
        groups=tuple(os.getgrouplist(entry.pw_name, entry.pw_gid)),
        name=entry.pw_name,
        home=entry.pw_dir,
    )


def resolve(program: str, search_path: str = SCRIPT_PATH) -> str | None:
    """The absolute path exec would run for `program`, or None when a bare name is on no
    directory of `search_path` (as an executable regular file)."""
    if "/" in program:
        return os.path.normpath(os.path.join("/", program))
    for directory in search_path.split(":"):
        candidate = os.path.join(directory or ".", program)
        try:
            st = os.stat(candidate)
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode) and st.st_mode & 0o111:
            return candidate
    return None


def unsafe_reason(path: str, user: Account) -> str | None:
    """Why running the file at absolute `path` as `user` is refused, or None when it may
    run (the rule in the module docstring). A file that cannot be reached is None here:
    exec then fails with its own error."""
    try:
        walked = _walk(path)
    except OSError:
        return None
    allowed = {0, user.uid}
    for name, st, is_last in walked:
        kind = "program" if is_last else "directory"
        if st.st_uid not in allowed:
            return f"{kind} {name} is owned by uid {st.st_uid}, not root or {user.name}"
        writable = st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
        sticky_dir = stat.S_ISDIR(st.st_mode) and st.st_mode & stat.S_ISVTX
        if writable and not sticky_dir:
            who = "others" if st.st_mode & stat.S_IWOTH else "its group"
            return f"{kind} {name} is writable by {who} (mode {stat.S_IMODE(st.st_mode):04o})"
    return None


def execute_problem(path: str, user: Account) -> str | None:
    """Why `user` could not execute the file at absolute `path`, or None. Decided from
    the mode bits, owner and group of the file and of every directory searched on the
    way (root: any execute bit on the file), not from the calling process's rights."""
    try:
        walked = _walk(path)
    except OSError as exc:
        if isinstance(exc, FileNotFoundError):
            return "does not exist"
        return f"cannot be reached ({exc.strerror})"
    for name, st, is_last in walked:
        if not is_last:
            if not _permits(st, user, 0o1):
                return f"is not reachable by {user.name} (no search permission on {name})"
            continue
        if not stat.S_ISREG(st.st_mode):
            return "is not a regular file"
        if user.uid == 0:
            return None if st.st_mode & 0o111 else "is not executable"
        if not _permits(st, user, 0o1):
            return f"is not executable by {user.name}"
    return None


def minimal_environment(user: Account, extra: Mapping[str, str]) -> dict[str, str]:
    """The whole environment of a hook or script run as `user`: the login basics and the
    ``RECONCILER_*`` variables of `extra`; anything else in `extra` is dropped."""
    env = {
        "PATH": SCRIPT_PATH,
        "HOME": user.home,
        "USER": user.name,
        "LOGNAME": user.name,
        "LANG": "C.UTF-8",
    }
    env.update((k, v) for k, v in extra.items() if k.startswith("RECONCILER_"))
    return env


def _permits(st: os.stat_result, user: Account, bits: int) -> bool:
    if user.uid == 0:
        return True  # root searches any directory
    if st.st_uid == user.uid:
        return bool(st.st_mode & (bits << 6))
    if st.st_gid in user.groups or st.st_gid == user.gid:
        return bool(st.st_mode & (bits << 3))
    return bool(st.st_mode & bits)


def _walk(path: str) -> list[tuple[str, os.stat_result, bool]]:
    """Every directory read on the way to `path` (absolute) and the file itself, with
    their lstat, in walk order; the last element is the file (is_last True). Symbolic
    links are followed one at a time, so the directories on the way to each target are
    walked too. OSError (ENOENT, ELOOP, ...) as the kernel would raise it."""
    out: list[tuple[str, os.stat_result, bool]] = [("/", os.lstat("/"), False)]
    pending = [c for c in path.split("/") if c]
    current = "/"
    links = 0
    seen: set[str] = {"/"}
    while pending:
        component = pending.pop(0)
        if component == ".":
            continue
        if component == "..":
            current = os.path.dirname(current) or "/"
            continue
        entry = os.path.join(current, component)
        st = os.lstat(entry)
        if stat.S_ISLNK(st.st_mode):
            links += 1
            if links > _MAX_SYMLINKS:
                raise OSError(40, os.strerror(40), path)  # ELOOP
            target = os.readlink(entry)
            if target.startswith("/"):
                current = "/"
            pending = [c for c in target.split("/") if c] + pending
            continue
        current = entry
        if pending and current not in seen:
            seen.add(current)
            out.append((current, st, False))
        elif not pending:
            out.append((current, st, True))
    if not out[-1][2]:
        raise IsADirectoryError(21, os.strerror(21), path)
    return out
