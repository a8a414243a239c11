"""The director sysctls in a real kernel (a fresh namespace: its defaults, then ours)."""

from __future__ import annotations

import pytest

from reconciler.adapters.outcome import WriteOutcome
from reconciler.adapters.sysctl import SYSCTL_KEYS, apply_sysctls, read_sysctl, read_sysctls
from reconciler.model.cluster import Sysctls

pytestmark = pytest.mark.ipvs

ALL_ON = Sysctls(
    ip_forward=True, conntrack=True, expire_nodest_conn=True, expire_quiescent_template=True
)
ALL_OFF = Sysctls(False, False, False, False)


def test_director_sysctls_are_written_and_read_back() -> None:
    before = read_sysctls()
    assert before == ALL_OFF  # a new namespace's defaults
    try:
        assert apply_sysctls(ALL_ON) == dict.fromkeys(SYSCTL_KEYS.values(), WriteOutcome.UPDATED)
        assert {key: read_sysctl(key) for key in SYSCTL_KEYS.values()} == dict.fromkeys(
            SYSCTL_KEYS.values(), "1"
        )
        assert apply_sysctls(ALL_ON) == dict.fromkeys(SYSCTL_KEYS.values(), WriteOutcome.UNCHANGED)
        assert apply_sysctls(Sysctls(conntrack=False)) == {
            "net.ipv4.vs.conntrack": WriteOutcome.UPDATED
        }
        assert read_sysctls() == Sysctls(True, False, True, True)
    finally:
        apply_sysctls(before)
    assert read_sysctls() == before
