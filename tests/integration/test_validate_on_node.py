"""`validate --node` on the node's machine: VIPs are checked against the subnets its
interfaces really have, read by netlink inside a lab namespace (nothing in the root one)."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from reconciler.testing.netlab import Lab

pytestmark = pytest.mark.root

ROOT = Path(__file__).resolve().parents[2]

CONFIG = textwrap.dedent("""\
    apiVersion: reconciler/v1
    kind: Cluster
    name: subnets
    nodes:
      lb1: {address: 192.0.2.11, interface: eth0}
      lb2: {address: 192.0.2.12, interface: eth0}
    vrrp:
      instances:
        v4:
          vrid: 51
          priority: {lb1: 150, lb2: 100}
          vips: [192.0.2.100/24, 203.0.113.7/24, 198.51.100.9/24]
        v6:
          vrid: 51
          priority: {lb1: 150, lb2: 100}
          vips: [2001:db8::100/64, 2001:db8:1::5/64]
    """)


def test_vips_outside_every_subnet_of_their_interface_are_warned_about(
    make_lab: Callable[..., Lab], tmp_path: Path
) -> None:
    lab = make_lab(n_hosts=1)
    host = lab.host(1)
    # A second subnet on eth0, and a VIP of the file already held (as a running node would
    # hold it): the first makes 198.51.100.9 local, the second is no subnet of its own.
    host.ip("addr", "add", "198.51.100.1/24", "dev", "eth0")
    host.ip("addr", "add", "203.0.113.7/24", "dev", "eth0")
    f = tmp_path / "subnets.yaml"
    f.write_text(CONFIG)
    argv = [sys.executable, "-m", "reconciler", "validate", "--node", "lb1", str(f)]
    env = {"PYTHONPATH": str(ROOT)}

    done = host.run(argv, check=False, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        f"{f}:12:30: warning: vrrp.instances.v4.vips[1]: 203.0.113.7 is outside every subnet "
        "of eth0 on this machine (192.0.2.0/24, 198.51.100.0/24): hosts on that link will "
        "not reach it directly",
        f"{f}:16:32: warning: vrrp.instances.v6.vips[1]: 2001:db8:1::5 is outside every "
        "subnet of eth0 on this machine (2001:db8::/64): hosts on that link will not reach "
        "it directly",
        f"{f}: OK (2 warnings)",
    ]
    assert "Traceback" not in done.stderr

    strict = host.run([*argv, "--strict"], check=False, env=env)
    assert strict.returncode == 1
    assert strict.stderr.endswith(f"{f}: invalid under --strict (2 warnings)\n")

    # Without --node nothing about this machine is said.
    plain = host.run([*argv[:4], str(f)], check=False, env=env)
    assert (plain.returncode, plain.stdout) == (0, f"{f}: OK\n")
