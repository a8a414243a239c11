"""Reading the desired-state file: its size bound, its encoding, and what is an invalid
file (located diagnostics) as opposed to a file that cannot be read (OSError)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from reconciler.config.diagnostics import InvalidConfig, Location
from reconciler.config.load import MAX_FILE_BYTES, load_bytes, load_file, validate_file

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "lvs-nat.yaml"


def _diagnostics(raw: bytes) -> list[str]:
    with pytest.raises(InvalidConfig) as exc:
        load_bytes(raw, "f.yaml")
    return [str(d) for d in exc.value.diagnostics]


def test_a_file_over_16_mib_is_refused_before_it_is_parsed() -> None:
    assert MAX_FILE_BYTES == 16 * 1024 * 1024
    # Exactly the bound is decoded (and here refused for its first byte, which is quick).
    at_bound = b"\xff" + b"x" * (MAX_FILE_BYTES - 1)
    assert _diagnostics(at_bound) == ["f.yaml:1:1: not UTF-8 text"]
    assert _diagnostics(at_bound + b"x") == ["f.yaml:1:1: the file is larger than 16 MiB"]


def test_a_byte_that_is_not_utf8_is_located_in_characters_and_yaml_lines() -> None:
    assert _diagnostics(b"\xff") == ["f.yaml:1:1: not UTF-8 text"]
    assert _diagnostics(b"ab\xff") == ["f.yaml:1:3: not UTF-8 text"]
    # CRLF is one line break; 'é' is two bytes and one column.
    assert _diagnostics(b"a: 1\r\nb: \xc3\xa9\xfe\n") == ["f.yaml:2:5: not UTF-8 text"]


def test_load_file_reads_the_file_and_names_it_in_diagnostics(tmp_path: Path) -> None:
    loaded = load_file(EXAMPLE)
    assert loaded.document.file == str(EXAMPLE)
    assert loaded.cluster.nodes
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [\n")
    with pytest.raises(InvalidConfig) as exc:
        load_file(bad)
    (d,) = exc.value.diagnostics
    assert d.location == Location(str(bad), 1, 5)
    assert validate_file(bad) == exc.value.diagnostics
    assert validate_file(EXAMPLE) == []
    # A string path names the file as given.
    assert validate_file(str(bad))[0].location.file == str(bad)


def test_a_file_that_cannot_be_read_is_an_oserror_not_an_invalid_file(tmp_path: Path) -> None:
    with pytest.raises(OSError, match=f"^{re.escape(str(tmp_path))}: is a directory$"):
        load_file(tmp_path)
    with pytest.raises(FileNotFoundError):
        validate_file(tmp_path / "missing.yaml")
