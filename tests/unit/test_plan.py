"""Plans between revisions: exact ordered steps, and the diff's ownership rules."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from reconciler.cli import main
from reconciler.config.load import load_file
from reconciler.model.common import Family
from reconciler.model.ipvs import Protocol, RealServer, ServiceKey
from reconciler.plan.diff import Action, diff

ROOT = Path(__file__).resolve().parents[2]
OLD = "examples/lvs-nat.yaml"
NEW = "examples/revisions/lvs-nat-next.yaml"

EXPECTED_DIRECTOR1 = """\
Plan for node director1: examples/lvs-nat.yaml -> examples/revisions/lvs-nat-next.yaml
  ~ update vrrp_instance frontend (in place)
      priority: 150 -> 160
  ~ update vrrp_instance gateway (in place)
      priority: 150 -> 160
  + create ipvs_service tcp/192.0.2.200:443 (web-https) (wrr, nat, persistence 5m)
  ~ update ipvs_service tcp/192.0.2.200:80 (web-http)
      scheduler: wlc -> wrr
  + create ipvs_dest tcp/192.0.2.200:443 -> 198.51.100.10:8443 (weight 3, nat, check web-https)
  + create ipvs_dest tcp/192.0.2.200:443 -> 198.51.100.11:8443 (weight 2, nat, check web-https)
  + create ipvs_dest tcp/192.0.2.200:80 -> 198.51.100.13:8080 (weight 1, nat, check web-health)
  ~ update ipvs_dest tcp/192.0.2.200:80 -> 198.51.100.10:8080
      weight: 2 -> 3
  - delete ipvs_dest tcp/192.0.2.200:80 -> 198.51.100.12:8080 (weight 1, nat, check web-health)
  4 to create, 4 to update, 1 to delete.
"""


@pytest.fixture(autouse=True)
def _at_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)


def test_plan_between_revisions_prints_exact_ordered_steps(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["plan", NEW, "--from", OLD, "--node", "director1"]) == 1
    assert capsys.readouterr().out == EXPECTED_DIRECTOR1


def test_plan_json_for_the_backup_node(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", NEW, "--from", OLD, "--node", "director2", "-o", "json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    (plan,) = doc["plans"]
    assert plan["node"] == "director2"
    assert plan["counts"] == {"create": 4, "update": 2, "delete": 1, "conflict": 0}
    assert [(s["action"], s["kind"], s["key"]) for s in plan["steps"]] == [
        ("create", "ipvs_service", ["tcp", "192.0.2.200", "443"]),
        ("update", "ipvs_service", ["tcp", "192.0.2.200", "80"]),
        ("create", "ipvs_dest", ["tcp", "192.0.2.200", "443", "198.51.100.10", "8443"]),
        ("create", "ipvs_dest", ["tcp", "192.0.2.200", "443", "198.51.100.11", "8443"]),
        ("create", "ipvs_dest", ["tcp", "192.0.2.200", "80", "198.51.100.13", "8080"]),
        ("update", "ipvs_dest", ["tcp", "192.0.2.200", "80", "198.51.100.10", "8080"]),
        ("delete", "ipvs_dest", ["tcp", "192.0.2.200", "80", "198.51.100.12", "8080"]),
    ]
    update = plan["steps"][5]
    assert update["changes"] == [
        {"field": "weight", "before": 2, "after": 3, "text": "weight: 2 -> 3"}
    ]
    assert update["after"]["check"]["probe"] == {
        "http": {
            "url": "/healthz",
            "method": "GET",
            "status": [[200, 200]],
            "digest": None,
            "regex": None,
            "virtualhost": None,
            "headers": [],
            "tls": None,
        }
    }


def test_plan_markdown_is_a_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", NEW, "--from", OLD, "--node", "director1", "-o", "markdown"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "### reconciler plan for node `director1`"
    assert "**4 to create, 4 to update, 1 to delete**" in out[2]
    rows = [line for line in out if line.startswith("| ") and line[2].isdigit()]
    assert len(rows) == 9
    assert rows[0] == (
        "| 1 | ~ update (in place) | vrrp_instance | `frontend` | priority: `150` → `160` |"
    )


def test_same_revision_plans_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", OLD, "--from", OLD]) == 0
    out = capsys.readouterr().out
    assert out.count("No changes.") == 2


def test_fresh_node_creates_everything(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "examples/nginx-active-passive.yaml", "--node", "lb2", "-o", "json"]) == 1
    steps = json.loads(capsys.readouterr().out)["plans"][0]["steps"]
    assert [(s["action"], s["kind"], s["key"]) for s in steps] == [
        ("create", "node", ["lb2"]),
        ("create", "check", ["nginx"]),
        ("create", "vrrp_instance", ["web"]),
    ]
    assert steps[2]["after"]["priority"] == 100


def test_plan_refuses_invalid_input(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "examples/broken/duplicate-vrid.yaml", "--from", OLD]) == 2
    err = capsys.readouterr().err
    assert "examples/broken/duplicate-vrid.yaml:14:13:" in err
    assert "nothing planned" in err


def test_plan_unknown_node_is_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", NEW, "--from", OLD, "--node", "nope"]) == 2
    assert "unknown node 'nope'" in capsys.readouterr().err


def test_node_removed_from_the_new_revision_deletes_its_share(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    text = (ROOT / OLD).read_text()
    smaller = text.replace("  director2: {address: 192.0.2.22, interface: eth0}\n", "").replace(
        "priority: {director1: 150, director2: 100}", "priority: {director1: 150}"
    )
    new = tmp_path / "one-node.yaml"
    new.write_text(smaller)
    assert main(["plan", str(new), "--from", OLD, "--node", "director2", "-o", "json"]) == 1
    steps = json.loads(capsys.readouterr().out)["plans"][0]["steps"]
    assert {s["action"] for s in steps} == {"delete"}
    # Dependents go before what they depend on.
    kinds = [s["kind"] for s in steps]
    assert kinds.index("vrrp_instance") < kinds.index("ipvs_dest") < kinds.index("ipvs_service")


# ---------------------------------------------------------------- the pure diff


def _rs(port: int, weight: int = 1) -> RealServer:
    svc = ServiceKey(Family.IPV4, Protocol.TCP, load_file(ROOT / OLD).cluster.nodes[0].address, 80)
    addr = load_file(ROOT / OLD).cluster.nodes[1].address
    assert addr is not None
    return RealServer(service=svc, address=addr, port=port, weight=weight)


def test_diff_never_deletes_what_is_not_owned() -> None:
    foreign = _rs(9000)
    assert diff([], [foreign], owned=set()) == []
    steps = diff([], [foreign], owned={(foreign.kind, foreign.key)})
    assert [(s.action, s.key) for s in steps] == [(Action.DELETE, foreign.key)]


def test_diff_reports_a_clash_with_a_foreign_object_instead_of_changing_it() -> None:
    theirs = _rs(9000, weight=5)
    ours = replace(theirs, weight=1)
    (step,) = diff([ours], [theirs], owned=set())
    assert step.action is Action.CONFLICT
    assert [(c.field, c.before, c.after) for c in step.changes] == [("weight", 5, 1)]
    (same,) = diff([theirs], [theirs], owned=set())
    assert same.action is Action.CONFLICT and same.changes == ()


def test_diff_of_equal_owned_state_is_empty() -> None:
    rs = _rs(8080)
    assert diff([rs], [rs], owned={(rs.kind, rs.key)}) == []


# ---------------------------------------------------------------- a complete, readable plan


def _edited(tmp_path: Path, *edits: tuple[str, str], base: str = OLD) -> str:
    text = (ROOT / base).read_text()
    for old, new in edits:
        assert old in text, old
        text = text.replace(old, new, 1)
    out = tmp_path / "next.yaml"
    out.write_text(text)
    return str(out)


def _text_plan(capsys: pytest.CaptureFixture[str], new: str, node: str, base: str = OLD) -> str:
    assert main(["plan", new, "--from", base, "--node", node]) == 1
    return capsys.readouterr().out


def test_a_sysctl_change_is_planned_on_every_node(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    new = _edited(tmp_path, ("ip_forward: true ", "ip_forward: false"))
    assert main(["plan", new, "--from", OLD]) == 1
    out = capsys.readouterr().out
    assert out.count("  ~ update node director") == 2
    assert out.count("      sysctls.ip_forward: true -> false\n") == 2


def test_reconcile_settings_are_planned(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    new = _edited(
        tmp_path, ("checks:\n", "reconcile: {drain_timeout: 10m, resync_interval: 1m}\nchecks:\n")
    )
    out = _text_plan(capsys, new, "director2")
    assert out.splitlines()[1:5] == [
        "  ~ update node director2",
        "      resync_interval: 30s -> 1m",
        "      drain_timeout: 5m -> 10m",
        "  0 to create, 1 to update, 0 to delete.",
    ]


def test_a_check_changed_once_is_shown_once_with_the_real_servers_it_affects(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    new = _edited(tmp_path, ("    interval: 2s\n", "    interval: 3s\n"))
    out = _text_plan(capsys, new, "director1")
    assert out.splitlines()[1:] == [
        "  ~ update check web-health",
        "      interval: 2s -> 3s",
        "      used by: ipvs_dest tcp/192.0.2.200:80 -> 198.51.100.10:8080",
        "               ipvs_dest tcp/192.0.2.200:80 -> 198.51.100.11:8080",
        "               ipvs_dest tcp/192.0.2.200:80 -> 198.51.100.12:8080",
        "  0 to create, 1 to update, 0 to delete.",
    ]
    assert main(["plan", new, "--from", OLD, "--node", "director1", "-o", "markdown"]) == 1
    md = capsys.readouterr().out
    assert md.count("interval: `2s` → `3s`") == 1
    assert "{" not in md


def test_a_real_server_keeps_its_own_changes_beside_a_folded_check_change(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    new = _edited(
        tmp_path,
        ("    interval: 2s\n", "    interval: 3s\n"),
        ("port: 8080, weight: 2}", "port: 8080, weight: 5}"),
    )
    out = _text_plan(capsys, new, "director1")
    assert (
        "  ~ update ipvs_dest tcp/192.0.2.200:80 -> 198.51.100.10:8080\n      weight: 2 -> 5\n"
        in out
    )
    assert out.count("interval: 2s -> 3s") == 1
    assert "check." not in out


def test_a_tracked_check_lists_its_instances_and_nested_fields_are_named(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    base = "examples/nginx-active-passive.yaml"
    text = (ROOT / base).read_text()
    assert "track:" in text and "interval: 1s" in text
    new = tmp_path / "next.yaml"
    new.write_text(
        text.replace("    interval: 1s\n", "    interval: 2s\n", 1).replace(
            "vrrp:\n  defaults:\n", "vrrp:\n  defaults:\n    garp: {master_delay: 2s}\n", 1
        )
    )
    out = _text_plan(capsys, str(new), "lb1", base=base)
    assert "      interval: 1s -> 2s\n      used by: vrrp_instance web (track)\n" in out
    assert "      garp.master_delay: 5s -> 2s\n" in out


def test_an_instance_identity_change_is_a_disruptive_restart(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    new = _edited(tmp_path, ("vrid: 61", "vrid: 63"), ("vrid: 62", "vrid: 64"))
    out = _text_plan(capsys, new, "director1")
    assert (
        "  ~ restart vrrp_instance frontend (disruptive: vrid changed; the instance stops "
        "(priority-0 advert, VIPs released) and starts again)\n      vrid: 61 -> 63\n" in out
    )
    assert "2 to update, 0 to delete (2 disruptive restarts)." in out
    assert main(["plan", new, "--from", OLD, "--node", "director1", "-o", "json"]) == 1
    steps = json.loads(capsys.readouterr().out)["plans"][0]["steps"]
    assert [(s["action"], s["restart"], s["restart_reasons"]) for s in steps] == [
        ("update", True, ["vrid"]),
        ("update", True, ["vrid"]),
    ]


def test_secrets_are_never_printed(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    v2 = _edited(
        tmp_path, ("version: 3", "version: 2\n    authentication: {type: pass, password: s3cret}")
    )
    v2b = tmp_path / "other.yaml"
    v2b.write_text(Path(v2).read_text().replace("s3cret", "t0psecr"))
    for fmt in ("text", "json", "markdown"):
        assert main(["plan", str(v2b), "--from", v2, "-o", fmt]) == 1
        out = capsys.readouterr().out
        assert "s3cret" not in out and "t0psecr" not in out
        assert "auth_password" in out
        assert "changed (not shown)" in out or fmt == "json"
