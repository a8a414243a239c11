"""The hook runner's refusals, without a lab: a refused run counts as a failure every
time, its reason is logged once until it changes or the hook runs again."""

from __future__ import annotations

import asyncio
import logging
import os
from datetime import timedelta
from pathlib import Path

import pytest

from reconciler.model.vrrp import Hook
from reconciler.runtime.notify import Notifier
from reconciler.testing.hooks import write_program

pytestmark = pytest.mark.root

SECOND = timedelta(seconds=1)


@pytest.fixture
def top(open_tmp: Path) -> Path:
    if os.geteuid() != 0:
        pytest.skip("running hooks as nobody needs root")
    return open_tmp


def _run(notifier: Notifier, *hooks: Hook) -> None:
    async def go() -> None:
        await notifier.run_now(hooks, {"RECONCILER_STATE": "master", "SECRET": "x"})

    asyncio.run(go())


def test_a_refused_hook_fails_every_run_and_is_logged_once(
    top: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bin_dir = top / "bin"
    bin_dir.mkdir()
    out = top / "out"
    out.mkdir()
    out.chmod(0o1777)
    hook = Hook(
        (str(write_program(bin_dir / "hook", f"#!/bin/sh\necho ran >> {out}/log\n")),), SECOND
    )
    notifier = Notifier(lambda: {"RECONCILER_NODE": "n1"})
    bin_dir.chmod(0o777)
    caplog.set_level(logging.INFO, logger="reconciler.notify")
    for _ in range(3):
        _run(notifier, hook)
    refused = [r for r in caplog.records if "refused" in r.getMessage()]
    assert [r.getMessage() for r in refused] == [
        f"hook {bin_dir}/hook refused: directory {bin_dir} is writable by others (mode 0777): "
        "someone else could change what runs as nobody"
    ]
    assert (notifier.runs, notifier.failures, notifier.refusals) == (3, 3, 3)
    assert not (out / "log").exists()

    bin_dir.chmod(0o755)  # fixed: it runs, and says so once
    _run(notifier, hook)
    assert (out / "log").read_text() == "ran\n"
    assert (notifier.runs, notifier.failures) == (4, 3)
    assert any(r.getMessage() == f"hook {bin_dir}/hook runs again" for r in caplog.records)

    bin_dir.chmod(0o775)  # broken again, another way: logged again
    _run(notifier, hook, hook)
    refused = [r for r in caplog.records if "refused" in r.getMessage()]
    assert len(refused) == 2 and "writable by its group (mode 0775)" in refused[1].getMessage()
    bin_dir.chmod(0o755)


def test_users_and_names_a_hook_cannot_run_with(
    top: Path, caplog: pytest.LogCaptureFixture
) -> None:
    notifier = Notifier(lambda: {})
    caplog.set_level(logging.INFO, logger="reconciler.notify")
    _run(
        notifier,
        Hook(("true",), SECOND, user="rcfg-no-such-user"),
        Hook(("rcfg-no-such-program",), SECOND),
        Hook(("true",), SECOND),  # a bare name on the hooks' PATH: runs
    )
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == [
        "hook true refused: no user 'rcfg-no-such-user' on this machine",
        "hook rcfg-no-such-program refused: 'rcfg-no-such-program' is not found in PATH",
    ]
    assert (notifier.runs, notifier.failures) == (3, 2)
