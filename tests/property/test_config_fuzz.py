"""`validate` (and `plan`, which loads files the same way) never raises, whatever the bytes.

Inputs: arbitrary bytes, text made of YAML's indicator characters, and the examples mutated
(lines deleted, duplicated, swapped and re-indented; every YAML tag and scalar type put in
place of keys and values; control characters inserted; huge and negative numbers; truncation).
Each run asserts exit 0 or 1, no traceback, and that every line printed is either the OK line
or a diagnostic located inside the file as YAML counts lines (YAML 1.2 5.4 line breaks).

Examples per run: 300 byte strings, 400 punctuation texts, 1000 mutated examples for validate
and 150 for plan (about 20 s on a shared 2-core machine). Which stage answered is reported by
`pytest --hypothesis-show-statistics`: of the mutated examples about 56 % stop at YAML syntax,
8 % at YAML values (tags, keys, numbers), 18 % at the schema or semantic checks, 10 % are valid.
"""

from __future__ import annotations

import contextlib
import io
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from reconciler.cli import main

ROOT = Path(__file__).resolve().parents[2]
VALID = [
    p.read_bytes()
    for p in sorted(ROOT.glob("examples/*.yaml"))
    + sorted(ROOT.glob("examples/revisions/*.yaml"))
    + sorted(ROOT.glob("examples/warnings/*.yaml"))
]
SEEDS = VALID + [p.read_bytes() for p in sorted(ROOT.glob("examples/broken/*.yaml"))]
_BREAK = re.compile(r"\r\n|[\r\n\x85\u2028\u2029]")
_DIAGNOSTIC = re.compile(r"^(?P<file>.+?):(?P<line>\d+):(?P<col>\d+): (?P<message>.+)$")

# Every YAML 1.1/1.2 tag and scalar type, plus what operators get wrong: put in place of a
# key or a value anywhere in an example.
TOKENS = [
    "!!str 1", "!!int 1", "!!int x", "!!int 0o17", "!!int 1:30", "!!float 1.5", "!!float x",
    "!!bool true", "!!bool maybe", "!!null", "!!null x", "!!int", "!!float", "!!bool",
    "!!binary aGk=", "!!binary ###",
    "!!timestamp 2001-12-14", "!!timestamp x", "!!set {a}", "!!omap [a: 1]", "!!pairs [a: 1]",
    "!!seq [1]", "!!seq x", "!!map {a: 1}", "!!map x", "!!merge x", "!!value =", "!!yaml !",
    "!local x", "!<tag:example.com,2000:x> y", "!!python/object:os.system x",
    "!!python/name:os.system", "&a x", "*a", "*undefined", "&a [*a]", "<<", "<<: 5",
    "<<: *a", "~", "null", "Null", "true", "false", "yes", "no", "on", "0x1F", "0o17", "010",
    "1_000", "1:30", "0", "-0", "-1", "-9999999999", "9" * 30, "9" * 5000, "-" + "9" * 5000,
    "1e400", "-1e400", ".inf", "-.inf", ".nan", "1.0", "51.0", "1e2", "''", '""', "[]", "{}",
    "[1, [2, [3]]]", "{a: {b: {c: d}}}", "|\n  text", ">-\n  folded", "|x", "'quoted'",
    '"\\x00"', '"\\u2028"', '"\\q"', "'open", '"open', "[open", "{open", "2001-12-14",
    "2001-12-14T21:59:43.10-05:00", "192.0.2.1/33", "198.51.100.1", "2001:db8::1/64", "1s",
    "-1s", "0s", "99999999h", "1.5ms", "eth0", "a" * 300, "? complex", "- item", ": x", "%x",
    "@x", "`x", "\t", "---", "...", "#comment",
]  # fmt: skip
CONTROL = [chr(c) for c in (*range(32), 127, 0x85, 0xA0, 0x2028, 0xFEFF)]


def _lines(text: str) -> list[str]:
    lines = _BREAK.split(text)
    if lines and lines[-1] == "":
        lines.pop()
    return lines


@contextlib.contextmanager
def _captured() -> Iterator[tuple[io.StringIO, io.StringIO]]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        yield out, err


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz") / "desired.yaml"


def _check_validate(target: Path, data: bytes) -> None:
    target.write_bytes(data)
    with _captured() as (out, err):
        try:
            rc = main(["validate", str(target)])
        except SystemExit as exc:  # argparse only; never for a file's content
            pytest.fail(f"validate exited via SystemExit({exc.code}): {err.getvalue()}")
    assert rc in (0, 1), (rc, out.getvalue(), err.getvalue())
    assert "Traceback" not in out.getvalue() + err.getvalue()
    lines = _lines(data.decode("utf-8", errors="replace"))
    printed = out.getvalue().splitlines()
    if rc == 0:
        *warnings, ok = printed
        n = len(warnings)
        assert ok == f"{target}: OK" + (f" ({n} warning{'s' if n != 1 else ''})" if n else "")
    else:
        warnings = printed
        n = len(printed)
        assert err.getvalue() == f"{target}: invalid ({n} error{'s' if n != 1 else ''})\n"
        assert n >= 1
    event(_outcome(rc, printed))
    for line in warnings:
        m = _DIAGNOSTIC.match(line)
        assert m, f"not a located diagnostic: {line!r}"
        assert m["file"] == str(target)
        at, col = int(m["line"]), int(m["col"])
        if not lines:
            assert (at, col) == (1, 1), line
            continue
        assert 1 <= at <= len(lines), (line, len(lines))
        assert 1 <= col <= len(lines[at - 1]) + 1, (line, lines[at - 1])
        if rc == 0:
            assert m["message"].startswith("warning: "), line


def _outcome(rc: int, printed: list[str]) -> str:
    """Which stage answered, for the statistics (pytest --hypothesis-show-statistics)."""
    if rc == 0:
        return "valid, with warnings" if len(printed) > 1 else "valid"
    first = printed[0].split(": ", 1)[1]
    if "YAML syntax error" in first or "control character" in first or "UTF-8" in first:
        return "invalid: YAML syntax or characters"
    if any(w in first for w in ("tag ", "keys must", "is not an integer", "duplicate key")):
        return "invalid: YAML values"
    return "invalid: schema or semantic checks"


@st.composite
def mutated(draw: st.DrawFn, seeds: list[bytes] = SEEDS, most: int = 6) -> bytes:
    """An example with up to `most` mutations applied in turn."""
    text = draw(st.sampled_from(seeds)).decode()
    for _ in range(draw(st.integers(1, most))):
        lines = text.split("\n")
        i = draw(st.integers(0, max(len(lines) - 1, 0)))
        op = draw(
            st.sampled_from(
                ["delete", "duplicate", "swap", "indent", "value", "key", "insert", "control"]
            )
        )
        line = lines[i] if lines else ""
        if op == "delete" and lines:
            del lines[i]
        elif op == "duplicate" and lines:
            lines.insert(i, line)
        elif op == "swap" and lines:
            j = draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
        elif op == "indent":
            delta = draw(st.integers(-4, 4))
            lines[i] = " " * delta + line if delta >= 0 else line[min(-delta, len(line)) :]
        elif op in ("value", "key") and lines:
            token = draw(st.sampled_from(TOKENS))
            head, sep, tail = line.partition(": ")
            if op == "value" and sep:
                lines[i] = head + sep + token
            elif op == "key" and sep:
                indent = len(head) - len(head.lstrip(" -"))
                lines[i] = head[:indent] + token + sep + tail
            else:  # a list item or a plain line: replace its content
                indent = len(line) - len(line.lstrip(" -"))
                lines[i] = line[:indent] + token
        elif op == "insert":
            lines.insert(i, " " * draw(st.integers(0, 8)) + draw(st.sampled_from(TOKENS)))
        elif op == "control":
            col = draw(st.integers(0, len(line)))
            lines[i] = line[:col] + draw(st.sampled_from(CONTROL)) + line[col:]
        text = "\n".join(lines)
    data = text.encode("utf-8")
    if draw(st.booleans()) and draw(st.booleans()):  # truncated: maybe mid UTF-8 sequence
        data = data[: draw(st.integers(0, len(data)))]
    return data


def _settings(max_examples: int) -> settings:
    return settings(
        max_examples=max_examples,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
        database=None,
    )


@_settings(300)
@given(data=st.binary(max_size=600))
def test_validate_arbitrary_bytes(target: Path, data: bytes) -> None:
    _check_validate(target, data)


@_settings(400)
@given(
    text=st.text(alphabet=st.sampled_from(list(":-[]{},'\"&*!|>#?%@<~ \n\tab01.\\")), max_size=300)
)
def test_validate_yaml_punctuation(target: Path, text: str) -> None:
    _check_validate(target, text.encode())


@_settings(1000)
@given(data=st.one_of(mutated(), mutated(VALID, 2)))
def test_validate_mutated_examples(target: Path, data: bytes) -> None:
    _check_validate(target, data)


@_settings(150)
@given(data=st.one_of(mutated(), mutated(VALID, 2)))
def test_plan_mutated_examples(target: Path, data: bytes) -> None:
    target.write_bytes(data)
    with _captured() as (out, err):
        rc = main(["plan", str(target)])
    assert rc in (0, 1, 2), (rc, err.getvalue())
    assert "Traceback" not in out.getvalue() + err.getvalue()


def test_nul_byte_in_a_real_process(tmp_path: Path) -> None:
    """The issue's reproducer, as an operator runs it: no traceback, a located error, exit 1."""
    f = tmp_path / "nul.yaml"
    f.write_bytes(b"apiVersion: reconciler/v1\nkind: Cluster\nname: x\x00\n")
    done = subprocess.run(
        [sys.executable, "-m", "reconciler", "validate", str(f)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=ROOT,
    )
    assert done.returncode == 1, done
    assert "Traceback" not in done.stderr
    assert done.stdout == (
        f"{f}:3:8: the control character U+0000 is not allowed in YAML (remove it; inside a "
        'double-quoted string it can be written as an escape such as "\\x00")\n'
    )
