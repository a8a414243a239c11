"""Suite-wide pytest fixtures and hooks.

Network labs: tests marked ``@pytest.mark.root`` are skipped (with the reason)
where network namespaces cannot be made; ``make_lab`` builds labs that are
closed after the test, ``lab`` is a ready two-host lab (parametrize it
indirectly with a dict of :class:`~reconciler.testing.netlab.Lab` arguments).
``clean_env`` is ``monkeypatch`` with no OTEL_* variable of the caller's environment;
``open_tmp`` a directory other users (the nobody a hook runs as) may search.
"""

from __future__ import annotations

import functools
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from reconciler.testing.netlab import Lab, netns_unavailable_reason, sweep_stale


@functools.cache
def _netns_skip_reason() -> str | None:
    reason = netns_unavailable_reason()
    if reason is None:
        sweep_stale()  # namespaces left by an earlier run that was SIGKILLed
    return reason


def require_netns() -> None:
    """Skip the calling test unless this machine can make network namespaces."""
    reason = _netns_skip_reason()
    if reason is not None:
        pytest.skip(reason)


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("root") is not None:
        require_netns()


@pytest.fixture
def make_lab() -> Iterator[Callable[..., Lab]]:
    """Factory: ``make_lab(n_hosts=2, segments=1, ...)``; every lab is closed afterwards."""
    require_netns()
    labs: list[Lab] = []

    def factory(n_hosts: int = 2, **kwargs: Any) -> Lab:
        made = Lab(n_hosts, **kwargs)
        labs.append(made)
        return made

    try:
        yield factory
    finally:
        for made in reversed(labs):
            made.close()


@pytest.fixture
def lab(request: pytest.FixtureRequest, make_lab: Callable[..., Lab]) -> Lab:
    """A two-host lab, or ``Lab(**request.param)`` when parametrized indirectly."""
    params: dict[str, Any] = getattr(request, "param", None) or {}
    return make_lab(**params)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """``monkeypatch``, with every OTEL_* variable of this process's environment removed."""
    for name in list(os.environ):
        if name.startswith("OTEL_"):
            monkeypatch.delenv(name)
    return monkeypatch


@pytest.fixture
def open_tmp() -> Iterator[Path]:
    """A directory others may search (pytest's tmp_path is below a 0700 directory)."""
    path = Path(tempfile.mkdtemp(prefix="rcfg-test-", dir="/tmp"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path)
