"""The rule that refuses hook and script programs others could change (keepalived's
enable_script_security), and what a user can execute: real files with real modes."""

from __future__ import annotations

import os
import pwd
from pathlib import Path

import pytest

from reconciler.adapters.machine import program_problem
from reconciler.adapters.programs import (
    Account,
    account,
    execute_problem,
    minimal_environment,
    resolve,
    unsafe_reason,
)

ME = account(pwd.getpwuid(os.geteuid()).pw_name)
# A user that owns none of the files below and is in none of their groups.
STRANGER = Account(uid=54321, gid=54321, groups=(54321,), name="stranger", home="/")


def _program(directory: Path, mode: int = 0o755, name: str = "hook") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(mode)
    return path


def test_a_program_only_its_owner_can_write_may_run(tmp_path: Path) -> None:
    d = tmp_path / "bin"
    prog = _program(d)
    d.chmod(0o755)
    assert unsafe_reason(str(prog), ME) is None


@pytest.mark.parametrize(
    ("mode", "who"), [(0o775, "its group"), (0o757, "others"), (0o777, "others")]
)
def test_a_program_writable_by_group_or_others_is_refused(
    tmp_path: Path, mode: int, who: str
) -> None:
    prog = _program(tmp_path / "bin", mode)
    assert unsafe_reason(str(prog), ME) == (
        f"program {prog} is writable by {who} (mode {mode:04o})"
    )


def test_a_directory_writable_by_others_above_the_program_is_refused(tmp_path: Path) -> None:
    open_dir = tmp_path / "shared"
    prog = _program(open_dir / "deeper" / "bin")
    open_dir.chmod(0o777)
    try:
        assert unsafe_reason(str(prog), ME) == (
            f"directory {open_dir} is writable by others (mode 0777)"
        )
        open_dir.chmod(0o775)
        assert unsafe_reason(str(prog), ME) == (
            f"directory {open_dir} is writable by its group (mode 0775)"
        )
        # Sticky (like /tmp): nobody but an entry's owner may rename or remove it.
        open_dir.chmod(0o1777)
        assert unsafe_reason(str(prog), ME) is None
    finally:
        open_dir.chmod(0o755)


def test_symbolic_links_count_the_directories_of_each_hop(tmp_path: Path) -> None:
    safe = tmp_path / "safe"
    open_dir = tmp_path / "open"
    safe_prog = _program(safe, name="real")
    open_prog = _program(open_dir, name="real")
    # A safe link to a program in an open directory: the target can be swapped.
    (safe / "to-open").symlink_to(open_prog)
    # A link in an open directory to a safe program: the link itself can be swapped.
    (open_dir / "to-safe").symlink_to(safe_prog)
    # Two hops, relative, through the open directory.
    (safe / "via-open").symlink_to("../open/to-safe")
    open_dir.chmod(0o777)
    try:
        why = f"directory {open_dir} is writable by others (mode 0777)"
        assert unsafe_reason(str(safe / "to-open"), ME) == why
        assert unsafe_reason(str(open_dir / "to-safe"), ME) == why
        assert unsafe_reason(str(safe / "via-open"), ME) == why
        (safe / "direct").symlink_to(safe_prog)
        assert unsafe_reason(str(safe / "direct"), ME) is None
    finally:
        open_dir.chmod(0o755)


def test_a_link_loop_or_a_missing_file_is_left_to_exec(tmp_path: Path) -> None:
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    assert unsafe_reason(str(tmp_path / "a"), ME) is None
    assert unsafe_reason(str(tmp_path / "missing"), ME) is None
    assert execute_problem(str(tmp_path / "missing"), ME) == "does not exist"
    assert execute_problem(str(tmp_path / "a"), ME) == (
        "cannot be reached (Too many levels of symbolic links)"
    )


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another user needs root")
def test_a_program_owned_by_another_user_is_refused(tmp_path: Path) -> None:
    prog = _program(tmp_path / "bin")
    os.chown(prog, STRANGER.uid, -1)
    assert unsafe_reason(str(prog), ME) == (
        f"program {prog} is owned by uid {STRANGER.uid}, not root or {ME.name}"
    )
    # The user the program runs as may own it: it could change it anyway.
    assert unsafe_reason(str(prog), STRANGER) is None
    os.chown(tmp_path / "bin", STRANGER.uid, -1)
    assert unsafe_reason(str(prog), ME) == (
        f"directory {tmp_path / 'bin'} is owned by uid {STRANGER.uid}, not root or {ME.name}"
    )


def test_what_a_user_can_execute_follows_the_mode_bits(open_tmp: Path) -> None:
    d = open_tmp / "bin"
    prog = _program(d, 0o755)
    d.chmod(0o755)
    assert execute_problem(str(prog), STRANGER) is None
    prog.chmod(0o754)
    assert execute_problem(str(prog), STRANGER) == "is not executable by stranger"
    prog.chmod(0o755)
    d.chmod(0o700)
    assert execute_problem(str(prog), STRANGER) == (
        f"is not reachable by stranger (no search permission on {d})"
    )
    d.chmod(0o755)
    assert execute_problem(str(d), STRANGER) == "is not a regular file"
    prog.chmod(0o644)
    root = Account(uid=0, gid=0, groups=(0,), name="root", home="/root")
    assert execute_problem(str(prog), root) == "is not executable"
    prog.chmod(0o100)
    assert execute_problem(str(prog), root) is None


def test_resolve_uses_the_hook_search_path_and_slash_as_working_directory(
    tmp_path: Path,
) -> None:
    _program(tmp_path / "one", 0o644, name="tool")  # not executable: skipped
    two = _program(tmp_path / "two", 0o755, name="tool")
    search = f"{tmp_path / 'one'}:{tmp_path / 'two'}"
    assert resolve("tool", search) == str(two)
    assert resolve("no-such-tool", search) is None
    assert resolve("bin/sh") == "/bin/sh"
    assert resolve("/usr/../bin/./sh") == "/bin/sh"
    assert resolve("sh") is not None


def test_the_environment_is_the_login_basics_and_reconciler_variables() -> None:
    env = minimal_environment(
        STRANGER,
        {"RECONCILER_STATE": "master", "LD_PRELOAD": "/x.so", "PATH": "/evil", "HOME": "/x"},
    )
    assert env == {
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": "/",
        "USER": "stranger",
        "LOGNAME": "stranger",
        "LANG": "C.UTF-8",
        "RECONCILER_STATE": "master",
    }


def test_validate_on_a_node_reports_a_program_the_daemon_would_refuse(tmp_path: Path) -> None:
    open_dir = tmp_path / "open"
    prog = _program(open_dir)
    open_dir.chmod(0o777)
    try:
        assert program_problem(str(prog), ME.name) == (
            f"would be refused (directory {open_dir} is writable by others (mode 0777))"
        )
    finally:
        open_dir.chmod(0o755)
    assert program_problem(str(prog), "rcfg-no-such-user") == (
        "is to run as 'rcfg-no-such-user', a user this machine does not have"
    )
    assert program_problem(str(prog), ME.name) is None
