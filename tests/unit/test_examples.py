"""Every example validates; every broken file yields exactly its expected errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.cli import main

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml")) + sorted(
    (ROOT / "examples" / "revisions").glob("*.yaml")
)
BROKEN = sorted((ROOT / "examples" / "broken").glob("*.yaml"))


def test_there_are_examples() -> None:
    names = {p.name for p in EXAMPLES}
    assert {"nginx-active-passive.yaml", "lvs-nat.yaml", "lvs-dr.yaml"} <= names
    assert len(BROKEN) >= 15


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_is_valid(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(path)]) == 0
    assert capsys.readouterr().out == f"{path}: OK\n"


@pytest.mark.parametrize("path", BROKEN, ids=lambda p: p.name)
def test_broken_file_gives_exactly_its_errors(
    path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)
    rel = path.relative_to(ROOT)
    expected = path.with_suffix(".expected").read_text()
    assert expected.strip(), f"{path.name} has no expected errors"
    assert main(["validate", str(rel)]) == 1
    out = capsys.readouterr()
    assert out.out == expected
    n = len(expected.splitlines())
    assert f"invalid ({n} error{'s' if n != 1 else ''})" in out.err


@pytest.mark.parametrize("path", BROKEN, ids=lambda p: p.name)
def test_expected_errors_point_inside_the_file(path: Path) -> None:
    lines = path.read_text().splitlines()
    for err in path.with_suffix(".expected").read_text().splitlines():
        _, line, col, _ = err.split(":", 3)
        assert 1 <= int(line) <= len(lines), err
        assert 1 <= int(col) <= len(lines[int(line) - 1]) + 1, err
