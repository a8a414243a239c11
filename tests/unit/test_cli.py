"""Exit codes and messages of the command line, as users and scripts rely on them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from reconciler.cli import main

ROOT = Path(__file__).resolve().parents[2]


def test_validate_exit_codes(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    good = str(ROOT / "examples/lvs-dr.yaml")
    bad = str(ROOT / "examples/broken/services.yaml")
    assert main(["validate", good]) == 0
    assert main(["validate", good, bad]) == 1
    assert main(["validate", good, str(tmp_path / "missing.yaml")]) == 2
    assert main(["validate", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / 'missing.yaml'}: cannot read: No such file or directory" in err


def test_unreadable_yaml_is_invalid_with_a_location(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    f = tmp_path / "bin.yaml"
    f.write_bytes(b"apiVersion: reconciler/v1\nname: \xff\xfe\n")
    assert main(["validate", str(f)]) == 1
    assert capsys.readouterr().out == f"{f}:2:7: not UTF-8 text\n"
    # In characters, not bytes: 'é' is two bytes and one column.
    f.write_bytes(b"a: \xc3\xa9\nb: \xc3\xa9\xff\n")
    assert main(["validate", str(f)]) == 1
    assert capsys.readouterr().out == f"{f}:2:5: not UTF-8 text\n"


def test_quiet_prints_only_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "-q", str(ROOT / "examples/lvs-dr.yaml")]) == 0
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["validate", "--help"],
        ["plan", "--help"],
        ["run", "--help"],
        ["suspend", "--help"],
        ["resume", "--help"],
    ],
)
def test_help_runs_as_a_module(args: list[str]) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "reconciler", *args], capture_output=True, text=True, check=True
    ).stdout
    assert "usage: reconciler" in out


def test_plan_missing_old_file_is_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["plan", str(ROOT / "examples/lvs-dr.yaml"), "--from", "/nonexistent.yaml"])
    assert rc == 2
    assert "/nonexistent.yaml: cannot read" in capsys.readouterr().err


def test_run_help_names_the_watch_options() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "reconciler", "run", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "--no-watch" in out and "--refresh-hook" in out and "git-sync" in out


def test_suspend_without_a_node_is_exit_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert main(["suspend", "--state-dir", str(tmp_path)]) == 2
    assert "cannot reach a node" in capsys.readouterr().err


def test_a_long_value_is_shown_by_its_start(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    f = tmp_path / "long.yaml"
    f.write_text(
        f"apiVersion: reconciler/v1\nkind: Cluster\nname: {'x' * 200}\nnodes: {{a: {{}}}}\n"
    )
    assert main(["validate", str(f)]) == 1
    (line,) = capsys.readouterr().out.splitlines()
    assert line.startswith(f'{f}:3:7: name: "{"x" * 59}... (202 characters): names are')


def test_an_endless_file_is_refused_not_read(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "/dev/zero"]) == 1
    assert capsys.readouterr().out == "/dev/zero:1:1: the file is larger than 16 MiB\n"
