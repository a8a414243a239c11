"""`reconciler plan --git-range A..B` on real git repositories: the pull-request comment."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from reconciler.adapters.git import GitError, read_blob, resolve_commit
from reconciler.cli import main

ROOT = Path(__file__).resolve().parents[2]
NAT = (ROOT / "examples/lvs-nat.yaml").read_text()
NAT_NEXT = (ROOT / "examples/revisions/lvs-nat-next.yaml").read_text()


@pytest.fixture(autouse=True)
def _git_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    # The user's own git configuration (signing, hooks) must not reach the test repositories.
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", os.devnull)
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for key in ("NAME", "EMAIL"):
        monkeypatch.setenv(f"GIT_AUTHOR_{key}", "Test" if key == "NAME" else "t@example.com")
        monkeypatch.setenv(f"GIT_COMMITTER_{key}", "Test" if key == "NAME" else "t@example.com")


def _git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)
    return done.stdout.decode().strip()


@pytest.fixture
def repo(tmp_path: Path) -> Iterator[Path]:
    _git(tmp_path, "init", "-q", "-b", "main")
    yield tmp_path


def commit(repo: Path, text: str | None, path: str = "cluster.yaml") -> str:
    f = repo / path
    if text is None:
        _git(repo, "rm", "-q", path)
    else:
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(text)
        _git(repo, "add", path)
    _git(repo, "commit", "-q", "--allow-empty", "-m", "change")
    return _git(repo, "rev-parse", "HEAD")


def comment(
    repo: Path, capsys: pytest.CaptureFixture[str], *extra: str, rc: int = 1
) -> tuple[list[str], list[str]]:
    """The comment's risk line and summary items, and the whole comment's lines."""
    args = ["plan", "--git-range", "HEAD~1..HEAD", "--repo", str(repo), "-o", "markdown", *extra]
    assert main(args) == rc
    out = capsys.readouterr().out.splitlines()
    head = [line for line in out if line.startswith(("**Risk:**", "- "))]
    return head, out


def edit(text: str, *changes: tuple[str, str]) -> str:
    for old, new in changes:
        assert old in text, old
        text = text.replace(old, new, 1)
    return text


def test_a_priority_change_that_moves_the_vips(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    commit(repo, NAT)
    commit(repo, edit(NAT, ("director1: 150", "director1: 90")))
    head, out = comment(repo, capsys)
    assert out[0].startswith("## reconciler plan: `cluster.yaml` HEAD~1 (")
    assert head == [
        "**Risk:** `vip-move` `election` · changes on 1 of 2 node(s)",
        "- VIP `192.0.2.200/24` (`frontend`) moves director1 → director2",
        "- VIP `198.51.100.1/24` (`gateway`) moves director1 → director2",
        "- election `frontend`: expected master director1 → director2 "
        "(priorities: director2 100, director1 90)",
        "- election `gateway`: expected master director1 → director2 "
        "(priorities: director2 100, director1 90)",
    ]
    assert (
        "| 1 | ~ update (in place) | vrrp_instance | `frontend` | priority: `150` → `90` |" in out
    )


def test_a_vip_added(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    commit(repo, NAT)
    commit(repo, edit(NAT, ("vips: [192.0.2.200/24]", "vips: [192.0.2.200/24, 192.0.2.201/24]")))
    head, out = comment(repo, capsys)
    assert head == [
        "**Risk:** none · changes on 2 of 2 node(s)",
        "- VIP `192.0.2.201/24` (`frontend`) is added on director1",
    ]
    assert (
        "| 1 | ~ update (in place) | vrrp_instance | `frontend` | "
        "vips: `192.0.2.200/24 dev eth0` → `192.0.2.200/24 dev eth0, 192.0.2.201/24 dev eth0` |"
    ) in out


def test_a_vrid_change_restarts_the_instance_on_every_node(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    commit(repo, NAT)
    commit(repo, edit(NAT, ("vrid: 61", "vrid: 63")))
    head, out = comment(repo, capsys)
    assert head == [
        "**Risk:** `vip-move` `restart` · changes on 2 of 2 node(s)",
        "- VIP `192.0.2.200/24` (`frontend`) moves director1 → director2 → director1 "
        "(frontend restarts on director1)",
        "- VIP `198.51.100.1/24` (`gateway`) moves director1 → director2 → director1 "
        "(frontend restarts on director1, and sync group director follows)",
        "- restart (disruptive) `frontend` on director1: vrid changed; priority-0 advert, VIPs "
        "released, then a new start",
        "- restart (disruptive) `frontend` on director2: vrid changed; priority-0 advert, VIPs "
        "released, then a new start",
    ]
    assert (
        "| 1 | ~ restart | vrrp_instance | `frontend` | **disruptive: vrid changed; the "
        "instance stops (priority-0 advert, VIPs released) and starts again**<br>vrid: `61` → "
        "`63` |"
    ) in out


def test_a_real_server_removed_drains(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    commit(repo, NAT)
    commit(repo, edit(NAT, ("      - {address: 198.51.100.12, port: 8080, weight: 1}\n", "")))
    head, _ = comment(repo, capsys)
    assert head == [
        "**Risk:** `drain` · changes on 2 of 2 node(s)",
        "- drain `tcp/192.0.2.200:80 -> 198.51.100.12:8080` on director1, director2: weight 0 "
        "until its connections end or drain_timeout 5m, then removed",
    ]


def test_a_service_removed(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    commit(repo, NAT_NEXT)
    https = NAT_NEXT[NAT_NEXT.index("  web-https:\n") :]
    commit(repo, NAT_NEXT.replace(https, ""))
    head, _ = comment(repo, capsys, "--node", "director2")
    assert head == [
        "**Risk:** `drain` `service-removed` · changes on 1 of 1 node(s)",
        "- drain `tcp/192.0.2.200:443 -> 198.51.100.10:8443` on director2: weight 0 until its "
        "connections end or drain_timeout 5m, then removed",
        "- drain `tcp/192.0.2.200:443 -> 198.51.100.11:8443` on director2: weight 0 until its "
        "connections end or drain_timeout 5m, then removed",
        "- service removed `tcp/192.0.2.200:443 (web-https)` on director2",
    ]


def test_no_change_exits_0(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    commit(repo, NAT)
    commit(repo, NAT, path="README")  # another file changed
    head, out = comment(repo, capsys, rc=0)
    assert head == [
        "**Risk:** none · changes on 0 of 2 node(s)",
        "- no VIP moves, elections, restarts or drains",
    ]
    assert out.count("No changes.") == 2


def test_a_file_missing_at_the_start_is_planned_from_nothing(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    commit(repo, "placeholder\n", path="README")
    commit(repo, NAT, path="lb/cluster.yaml")
    head, out = comment(repo, capsys, "--path", "lb/cluster.yaml")
    assert head[1:] == [
        "- VIP `192.0.2.200/24` (`frontend`) is added on director1",
        "- VIP `198.51.100.1/24` (`gateway`) is added on director1",
    ]
    assert out[0].endswith("(no `lb/cluster.yaml` at HEAD~1: planned from nothing)")


def test_a_file_invalid_at_the_end_is_an_error_located_at_commit_and_path(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    commit(repo, NAT)
    bad = commit(repo, edit(NAT, ("vrid: 62", "vrid: 61"), ("      interface: eth1\n", "")))
    assert main(["plan", "--git-range", "HEAD~1..HEAD", "--repo", str(repo)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert f"{bad[:12]}:cluster.yaml:41:13: vrrp.instances.gateway.vrid: VRID 61" in captured.err
    assert f"{bad[:12]}:cluster.yaml: invalid; nothing planned" in captured.err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--git-range", "nope..HEAD"], "git: nope: not a commit in"),
        (["--git-range", "HEAD"], "--git-range: expected A..B, got 'HEAD'"),
        (["--git-range", "HEAD~1...HEAD"], "--git-range: expected A..B"),
        (["--git-range", "HEAD~1..HEAD", "--path", "other.yaml"], "no such file at HEAD"),
        (["--git-range", "HEAD~1..HEAD", "cluster.yaml"], "no FILE, --from or --live"),
    ],
)
def test_range_errors_exit_2(
    repo: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    commit(repo, NAT)
    commit(repo, NAT_NEXT)
    assert main(["plan", *args, "--repo", str(repo)]) == 2
    assert message in capsys.readouterr().err


# ---------------------------------------------------------------- the adapter


def test_the_adapter_reads_blobs_and_tells_missing_from_errors(repo: Path) -> None:
    first = commit(repo, NAT)
    second = commit(repo, None)
    assert resolve_commit(repo, "HEAD~1") == first
    assert resolve_commit(repo, "main") == second
    assert read_blob(repo, first, "cluster.yaml") == NAT.encode()
    assert read_blob(repo, second, "cluster.yaml") is None
    with pytest.raises(GitError, match="not a commit"):
        read_blob(repo, "0" * 40, "cluster.yaml")
    with pytest.raises(GitError, match="not a commit"):
        resolve_commit(repo, "no-such-branch")
    with pytest.raises(GitError, match="not a commit"):
        resolve_commit(repo.parent / "not-a-repo", "HEAD")
    nested = commit(repo, NAT, path="dir/cluster.yaml")
    with pytest.raises(GitError):
        read_blob(repo, nested, "dir")  # a directory, not a file


# ---------------------------------------------------------------- the example CI workflow

WORKFLOW = ROOT / "examples/ci/reconciler-plan.yml"


def _steps() -> dict[str, dict[str, object]]:
    doc = yaml.safe_load(WORKFLOW.read_text())
    (job,) = doc["jobs"].values()
    return {s.get("name", s.get("uses")): s for s in job["steps"]}


def test_the_example_workflow_validates_plans_and_comments(
    repo: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The workflow's own shell steps, run against a repository with an origin/main."""
    commit(repo, NAT)
    _git(repo, "update-ref", "refs/remotes/origin/main", "HEAD")
    commit(repo, edit(NAT, ("director1: 150", "director1: 90")))
    bin_dir = tmp_path_factory.mktemp("bin")
    shim = bin_dir / "reconciler"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m reconciler "$@"\n')
    shim.chmod(0o755)
    output = repo.parent / "github-output"
    env = {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "PYTHONPATH": str(ROOT),
        "CLUSTER_FILE": "cluster.yaml",
        "BASE_REF": "main",
        "GITHUB_OUTPUT": str(output),
    }
    steps = _steps()
    for name in ("Validate", "Plan"):
        script = str(steps[name]["run"])
        subprocess.run(
            ["bash", "-e", "-c", script], cwd=repo, env=env, check=True, capture_output=True
        )
    assert output.read_text() == "rc=1\n"
    comment_md = (repo / "plan.md").read_text()
    assert "**Risk:** `vip-move` `election` · changes on 1 of 2 node(s)" in comment_md
    assert "gh pr comment" in str(steps["Post the plan as a comment"]["run"])
    # An invalid file: exit 2, and the comment carries the located errors.
    commit(repo, edit(NAT, ("vrid: 62", "vrid: 61"), ("      interface: eth1\n", "")))
    plan = str(steps["Plan"]["run"])
    subprocess.run(["bash", "-e", "-c", plan], cwd=repo, env=env, check=True, capture_output=True)
    assert output.read_text().splitlines()[-1] == "rc=2"
    failed = (repo / "plan.md").read_text()
    assert failed.startswith("## reconciler plan failed")
    assert ":cluster.yaml:41:13: vrrp.instances.gateway.vrid: VRID 61" in failed


def test_warnings_of_the_new_revision_are_printed_located_in_git(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """validate's warnings (here: equal priorities) reach the reviewer of a git range too,
    located as COMMIT:PATH:LINE:COL; the old revision's are not repeated."""
    equal = edit(NAT, ("director1: 150", "director1: 100"))
    commit(repo, equal)
    new = commit(repo, edit(equal, ("scheduler: wlc", "scheduler: wrr")))
    args = ["plan", "--git-range", "HEAD~1..HEAD", "--repo", str(repo)]
    assert main(args) == 1
    err = capsys.readouterr().err.splitlines()
    warnings = [line for line in err if ": warning: " in line]
    assert warnings and all(line.startswith(f"{new[:12]}:cluster.yaml:") for line in warnings)
    assert len(warnings) == len(set(warnings))
