from __future__ import annotations

import pytest

from reconciler.config.diagnostics import InvalidConfig, Location
from reconciler.config.yamlload import load_yaml


def test_yaml_12_scalars_do_not_guess() -> None:
    doc = load_yaml(
        "a: yes\nb: no\nc: on\nd: 010\ne: 1:30\nf: 2026-11-25\ng: true\nh: 0x1f\ni: 1.5\nj: ~\n",
        "f.yaml",
    )
    assert doc.data == {
        "a": "yes",
        "b": "no",
        "c": "on",
        "d": "010",
        "e": "1:30",
        "f": "2026-11-25",
        "g": True,
        "h": 31,
        "i": 1.5,
        "j": None,
    }


def test_marks_point_at_keys_and_values() -> None:
    doc = load_yaml("top:\n  list:\n    - {x: 1}\n    - y\n", "f.yaml")
    assert doc.key_at(("top", "list")) == Location("f.yaml", 2, 3)
    assert doc.value_at(("top", "list", 1)) == Location("f.yaml", 4, 7)
    assert doc.key_at(("top", "list", 0, "x")) == Location("f.yaml", 3, 8)
    assert doc.value_at(("top", "list", 0, "x")) == Location("f.yaml", 3, 11)
    # A missing path falls back to its nearest existing parent.
    assert doc.value_at(("top", "list", 0, "missing")) == Location("f.yaml", 3, 7)


def test_duplicate_keys_are_errors_with_both_lines() -> None:
    with pytest.raises(InvalidConfig) as exc:
        load_yaml("a: 1\nb:\n  c: 1\n  c: 2\na: 3\n", "f.yaml")
    assert [str(d) for d in exc.value.diagnostics] == [
        "f.yaml:4:3: duplicate key 'c' (first defined at line 3)",
        "f.yaml:5:1: duplicate key 'a' (first defined at line 1)",
    ]


def test_syntax_error_has_a_location() -> None:
    with pytest.raises(InvalidConfig) as exc:
        load_yaml("a: [1, 2\nb: 3\n", "f.yaml")
    (d,) = exc.value.diagnostics
    assert d.location.line == 2 and d.message.startswith("YAML syntax error")


def test_empty_file_is_an_error() -> None:
    with pytest.raises(InvalidConfig) as exc:
        load_yaml("# nothing\n", "f.yaml")
    assert str(exc.value.diagnostics[0]) == "f.yaml:1:1: the file is empty"


def test_merge_keys_work() -> None:
    doc = load_yaml("base: &b {x: 1, y: 2}\nc:\n  <<: *b\n  y: 3\n", "f.yaml")
    assert doc.data["c"] == {"x": 1, "y": 3}
