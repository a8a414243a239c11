"""Real-server health as an overlay on the desired IPVS table: weights, alpha, quorum, sorry."""

from __future__ import annotations

from reconciler.config.load import load_text
from reconciler.health.policy import CheckTransition
from reconciler.model.common import CheckState
from reconciler.model.kernel import LiveDest
from reconciler.plan.live import project
from reconciler.runtime.real_servers import RealServerHealth

CONFIG = """
apiVersion: reconciler/v1
kind: Cluster
name: t
nodes:
  a: {address: 192.0.2.11}
virtual_services:
  web:
    address: 192.0.2.100
    port: 80
    check: {tcp: {}, interval: 1s}
    quorum: {min_weight: 2, hysteresis: 0}
    sorry_server: {address: 198.51.100.250, port: 8080}
    real_servers:
      - {address: 198.51.100.2, port: 8080}
      - {address: 198.51.100.3, port: 8080, inhibit_on_failure: true}
      - {address: 198.51.100.4, port: 8080, check: false}
"""
UP, DOWN, UNKNOWN = CheckState.UP, CheckState.DOWN, CheckState.UNKNOWN


def setup(text: str = CONFIG) -> tuple[RealServerHealth, list[str], object]:
    cfg = load_text(text, "t.yaml").cluster.for_node("a")
    wakes: list[str] = []
    events: list[str] = []
    h = RealServerHealth(
        lambda: wakes.append("wake"), lambda e, rs, s: events.append(f"{e} {rs.address}")
    )
    h.set_config(cfg)
    return h, wakes, (cfg, events)


def table(h: RealServerHealth, cfg: object) -> dict[str, int]:
    o = h.overlay()
    return {
        f"{d.address}:{d.port}": d.weight
        for d in project(cfg, weights=o.weights, sorry_active=o.sorry_active)  # type: ignore[arg-type]
        if isinstance(d, LiveDest)
    }


def change(h: RealServerHealth, ip: str, old: CheckState, new: CheckState) -> None:
    assert h.on_check(CheckTransition("web", f"{ip}:8080", old, new, "test"))


def test_jobs_aim_at_each_checked_server() -> None:
    h, _, _ = setup()
    assert sorted((str(j.host), j.port) for j in h.jobs()) == [
        ("198.51.100.2", 8080),
        ("198.51.100.3", 8080),
    ]


def test_failed_server_leaves_or_is_inhibited_and_comes_back() -> None:
    h, wakes, (cfg, events) = setup()
    assert table(h, cfg) == {"198.51.100.2:8080": 1, "198.51.100.3:8080": 1, "198.51.100.4:8080": 1}
    change(h, "198.51.100.3", UNKNOWN, DOWN)
    assert table(h, cfg) == {"198.51.100.2:8080": 1, "198.51.100.3:8080": 0, "198.51.100.4:8080": 1}
    change(h, "198.51.100.2", UNKNOWN, DOWN)
    # Live weight 1 < quorum 2: traffic goes to the sorry server only.
    assert table(h, cfg) == {"198.51.100.250:8080": 1}
    assert events == ["down 198.51.100.3", "down 198.51.100.2", "quorum_down 198.51.100.2"]
    change(h, "198.51.100.2", DOWN, UP)
    assert table(h, cfg) == {"198.51.100.2:8080": 1, "198.51.100.3:8080": 0, "198.51.100.4:8080": 1}
    assert wakes  # each change woke the reconcile loop
    assert not h.on_check(CheckTransition("nginx", "-", UP, DOWN, "tracking, not ours"))


def test_alpha_starts_servers_out_of_the_pool() -> None:
    h, _, (cfg, _) = setup(CONFIG.replace("    quorum:", "    alpha: true\n    quorum:"))
    # Only the unchecked server is in: quorum lost from the start, sorry server in.
    assert table(h, cfg) == {"198.51.100.250:8080": 1}
    change(h, "198.51.100.2", DOWN, UP)
    assert table(h, cfg) == {"198.51.100.2:8080": 1, "198.51.100.3:8080": 0, "198.51.100.4:8080": 1}


def test_state_survives_a_reload_that_keeps_the_check() -> None:
    h, _, (cfg, _) = setup()
    change(h, "198.51.100.3", UNKNOWN, DOWN)
    h.set_config(
        load_text(CONFIG.replace("weight: 1", "weight: 1"), "t.yaml").cluster.for_node("a")
    )
    assert table(h, cfg)["198.51.100.3:8080"] == 0
