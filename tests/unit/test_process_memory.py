"""Process memory housekeeping: the lean pyroute2 import and settling the heap."""

from __future__ import annotations

import gc
import subprocess
import sys

from reconciler.adapters import process_memory


def _run(code: str) -> str:
    return subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True, timeout=60
    ).stdout


def test_daemon_loads_only_the_pyroute2_modules_it_uses() -> None:
    out = _run(
        "import sys, reconciler.daemon\n"
        "print(sorted(m for m in ('pyroute2.ndb.main', 'pyroute2.ipdb', 'pyroute2.nslink.nspopen',"
        " 'pyroute2.iproute.linux', 'pyroute2.ipvs') if m in sys.modules))"
    )
    assert out.strip() == "['pyroute2.iproute.linux', 'pyroute2.ipvs']"


def test_names_of_the_full_pyroute2_package_still_import() -> None:
    out = _run(
        "import reconciler.adapters\n"
        "from pyroute2 import IPRoute, NetlinkError, config\n"
        "import pyroute2\n"
        "print(IPRoute.__name__, NetlinkError.__name__, config.__name__, 'NDB' in vars(pyroute2))\n"
        "try:\n"
        "    pyroute2.no_such_name\n"
        "except AttributeError as exc:\n"
        "    print('AttributeError', exc)\n"
    )
    lines = out.splitlines()
    assert lines[0] == "IPRoute NetlinkError pyroute2.config True"
    assert lines[1].startswith("AttributeError") and "no_such_name" in lines[1]


def test_settle_freezes_the_survivors_and_reads_rss() -> None:
    kept = [object() for _ in range(1000)]
    try:
        process_memory.settle()
        assert gc.get_freeze_count() >= len(kept)
        rss = process_memory.resident_kib()
        assert rss is not None and rss > 1000
    finally:
        gc.unfreeze()
