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
  ~ update vrrp_instance frontend
      priority: 150 -> 160
  ~ update vrrp_instance gateway
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
    assert update["changes"] == [{"field": "weight", "before": 2, "after": 3}]
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
    assert rows[0] == "| 1 | ~ update | vrrp_instance | `frontend` | priority: `150` → `160` |"


def test_same_revision_plans_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", OLD, "--from", OLD]) == 0
    out = capsys.readouterr().out
    assert out.count("No changes.") == 2


def test_fresh_node_creates_everything(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "examples/nginx-active-passive.yaml", "--node", "lb2", "-o", "json"]) == 1
    steps = json.loads(capsys.readouterr().out)["plans"][0]["steps"]
    assert [(s["action"], s["kind"], s["key"]) for s in steps] == [
        ("create", "check", ["nginx"]),
        ("create", "vrrp_instance", ["web"]),
    ]
    assert steps[1]["after"]["priority"] == 100


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


def test_a_vrid_change_is_marked_disruptive_in_every_format(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Only an identity change (model.vrrp.restart_reasons) restarts an instance; the
    plan says so before anyone merges it. A priority change is an in-place update."""
    text = (ROOT / OLD).read_text()
    assert "vrid: 61" in text
    new = tmp_path / "new.yaml"
    new.write_text(text.replace("vrid: 61", "vrid: 71"))
    assert main(["plan", str(new), "--from", OLD, "--node", "director1"]) == 1
    out = capsys.readouterr().out
    assert (
        "      DISRUPTIVE: vrid changed: the instance restarts (priority-0 advert, VIPs "
        "released, then taken again by the election)\n      vrid: 61 -> 71\n"
    ) in out
    assert "1 to update, 0 to delete, 1 disruptive (instance restart)." in out
    assert main(["plan", str(new), "--from", OLD, "--node", "director1", "-o", "json"]) == 1
    (step,) = json.loads(capsys.readouterr().out)["plans"][0]["steps"]
    assert (step["disruptive"], step["restart_reasons"]) == (True, ["vrid"])
    assert main(["plan", str(new), "--from", OLD, "--node", "director1", "-o", "markdown"]) == 1
    assert "**DISRUPTIVE: vrid changed" in capsys.readouterr().out
    # in place: not disruptive
    assert main(["plan", NEW, "--from", OLD, "--node", "director1", "-o", "json"]) == 1
    steps = json.loads(capsys.readouterr().out)["plans"][0]["steps"]
    assert not any(s["disruptive"] for s in steps)
