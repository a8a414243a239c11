"""Adapter behaviour that needs no IPVS kernel: the error without ip_vs, sysctls on a fake
/proc/sys. These run everywhere, the host's plain `pytest` included."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from reconciler.adapters.ipvs import Ipvs, IpvsUnavailable
from reconciler.adapters.outcome import WriteOutcome
from reconciler.adapters.sysctl import SysctlError, apply_sysctls, read_sysctls
from reconciler.model.cluster import Sysctls


@pytest.mark.skipif(Path("/proc/net/ip_vs").exists(), reason="this kernel has IPVS")
def test_open_without_ipvs_raises_unavailable() -> None:
    async def scenario() -> None:
        async with Ipvs():
            pass

    with pytest.raises(IpvsUnavailable, match=r'no generic-netlink family "IPVS" \(load the ip_vs'):
        asyncio.run(scenario())


def test_using_a_closed_adapter_is_a_clear_error() -> None:
    with pytest.raises(RuntimeError, match="not open"):
        asyncio.run(Ipvs().services())


def fake_proc_sys(root: Path, values: dict[str, str]) -> Path:
    for key, value in values.items():
        path = root.joinpath(*key.split("."))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(value + "\n")
    return root


def test_sysctls_written_only_when_different_and_none_left_alone(tmp_path: Path) -> None:
    root = fake_proc_sys(
        tmp_path,
        {
            "net.ipv4.ip_forward": "0",
            "net.ipv4.vs.conntrack": "1",
            "net.ipv4.vs.expire_nodest_conn": "0",
            "net.ipv4.vs.expire_quiescent_template": "0",
        },
    )
    wanted = Sysctls(ip_forward=True, conntrack=True, expire_nodest_conn=None)
    assert apply_sysctls(wanted, root) == {
        "net.ipv4.ip_forward": WriteOutcome.UPDATED,
        "net.ipv4.vs.conntrack": WriteOutcome.UNCHANGED,
    }
    assert (root / "net/ipv4/ip_forward").read_text() == "1\n"
    assert read_sysctls(root) == Sysctls(True, True, False, False)
    assert apply_sysctls(wanted, root) == {
        "net.ipv4.ip_forward": WriteOutcome.UNCHANGED,
        "net.ipv4.vs.conntrack": WriteOutcome.UNCHANGED,
    }


def test_missing_ipvs_sysctl_says_why(tmp_path: Path) -> None:
    root = fake_proc_sys(tmp_path, {"net.ipv4.ip_forward": "1"})
    with pytest.raises(SysctlError, match=r"net\.ipv4\.vs\.conntrack: .*ip_vs module loaded"):
        apply_sysctls(Sysctls(conntrack=True), root)
    assert read_sysctls(root) == Sysctls(ip_forward=True)
