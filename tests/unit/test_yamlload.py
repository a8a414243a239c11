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
    # At the '[' that is not closed, not on the next line where the parser gave up.
    assert (d.location.line, d.location.column) == (1, 4)
    assert d.message.startswith("YAML syntax error: this '[' is never closed")


def test_empty_file_is_an_error() -> None:
    with pytest.raises(InvalidConfig) as exc:
        load_yaml("# nothing\n", "f.yaml")
    assert str(exc.value.diagnostics[0]) == "f.yaml:1:1: the file is empty"


def test_merge_keys_work() -> None:
    doc = load_yaml("base: &b {x: 1, y: 2}\nc:\n  <<: *b\n  y: 3\n", "f.yaml")
    assert doc.data["c"] == {"x": 1, "y": 3}


def _errors(text: str) -> list[str]:
    with pytest.raises(InvalidConfig) as exc:
        load_yaml(text, "f.yaml")
    return [str(d) for d in exc.value.diagnostics]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # The reproducer: a NUL byte, located at the byte.
        (
            "apiVersion: reconciler/v1\nkind: Cluster\nname: x\x00\n",
            "f.yaml:3:8: the control character U+0000 is not allowed in YAML",
        ),
        ("a: 1\rb: \x1b\n", "f.yaml:2:4: the control character U+001B"),
        # An unclosed '{' is reported where it was opened, not where the parser gave up.
        ("nodes:\n  lb1: {a: 1, b: 2\nvrrp: {}\n", "f.yaml:2:8: YAML syntax error: this '{' is "),
        ("nodes:\n  lb1: {a: 1, b: 2\n", "f.yaml:2:8: YAML syntax error: this '{' is never closed"),
        # A key without ':' is reported on its own line, not on the next one.
        ("nodes:\n  lb1\n  lb2: x\n", "f.yaml:2:3: YAML syntax error: a ':' is missing after"),
        ("a:\n  vrid:51\n  b: 1\n", "f.yaml:2:3: YAML syntax error: a space is missing after ':'"),
        ("a:\n  b: 1\n c: 2\n", "f.yaml:3:2: YAML syntax error: bad indentation: this line starts"),
        ("a: 1\n  b: 2\n", "f.yaml:2:3: YAML syntax error: this line is indented under line 1"),
        ("a: b: c\n", "f.yaml:1:5: YAML syntax error: ': ' inside a value: put the value in"),
        ("a:\n  b: 1\n  - c\n", "f.yaml:3:3: YAML syntax error: a list item ('- ') where the"),
        ("a:\n\tb: 1\n", "f.yaml:2:1: YAML syntax error: a tab character: YAML indents with"),
        ('name: "abc\nx: 1\n', 'f.yaml:1:7: YAML syntax error: this double quote (") is never'),
        ("a: @x\n", "f.yaml:1:4: YAML syntax error: '@' cannot start a value: put the value"),
        ("a: *x\n", "f.yaml:1:4: YAML syntax error: alias *x refers to no anchor &x above it"),
        ("a: 1\n---\nb: 2\n", "f.yaml:2:1: YAML syntax error: a second document: a desired"),
        ("a: {b: 1}}\n", "f.yaml:1:10: YAML syntax error: a '}' without a matching '{'"),
        ("a: -?\n- b\n", "f.yaml:2:1: YAML syntax error: a list item ('- ') where the"),
        ("a: [x, , y]\n", "f.yaml:1:8: YAML syntax error: an empty entry: remove the extra ','"),
        ("a: [x}\n", "f.yaml:1:6: YAML syntax error: did not expect '}' inside '[ ]'"),
        ("a: ]\n", "f.yaml:1:4: YAML syntax error: a value is expected here, not ']'"),
        ("a: - b\n", "f.yaml:1:4: YAML syntax error: a list item ('- ') after a key on the"),
        ("a: ? b\n", "f.yaml:1:4: YAML syntax error: '?' (a complex-key marker) is not"),
        ("a: !<\n", "f.yaml:1:4: YAML syntax error: a malformed tag ('!...'): tags are not"),
        ("%x\n", "f.yaml:1:1: YAML syntax error: a line starting with '%' is a YAML directive"),
        ("  a: 1\nb: 2\n", "f.yaml:2:1: YAML syntax error: this line is outside the document"),
        ("a: 1\n...\nb\n", "f.yaml:3:1: YAML syntax error: text after the end of the document"),
    ],
)
def test_syntax_errors_say_what_is_wrong_at_the_mistake(text: str, expected: str) -> None:
    (error,) = _errors(text)
    assert error.startswith(expected)
    assert "<block" not in error and "<stream" not in error  # no parser grammar words


def test_only_json_types_are_accepted() -> None:
    text = (
        "a: !!binary aGVsbG8=\nb: !!timestamp 2001-12-14\nc: !!set {x}\nd: !foo bar\n"
        "e: !!int abc\nf: !!bool maybe\ng: !!python/object:os.system x\nh: !!str [1]\n"
        "i: !!int\n"
    )
    tag = "is not supported: values are strings, numbers, true/false, null, lists and mappings"
    assert _errors(text) == [
        f"f.yaml:1:4: tag !!binary {tag}",
        f"f.yaml:2:4: tag !!timestamp {tag}",
        "f.yaml:3:4: tag !!set does not apply to a mapping",
        f"f.yaml:4:4: tag !foo {tag}",
        "f.yaml:5:4: 'abc' is not an integer",
        "f.yaml:6:4: 'maybe' is not true or false",
        f"f.yaml:7:4: tag !!python/object:os.system {tag}",
        "f.yaml:8:4: tag !!str does not apply to a list",
        "f.yaml:9:4: '' is not an integer",
    ]
    # The plain types with explicit tags still work.
    doc = load_yaml("a: !!str 1\nb: !!int '2'\nc: !!float 1\nd: !!bool true\ne: !!null ''\n", "f")
    assert doc.data == {"a": "1", "b": 2, "c": 1.0, "d": True, "e": None}


def test_keys_are_strings() -> None:
    assert _errors("? [a]\n: 1\n1.5: x\n~: y\ntrue: z\n") == [
        "f.yaml:1:3: keys must be strings, not a list",
        "f.yaml:3:1: keys must be strings, not 1.5",
        "f.yaml:4:1: keys must be strings, not null",
        "f.yaml:5:1: keys must be strings, not true",
    ]


def test_a_number_too_long_for_python_is_an_error() -> None:
    (error,) = _errors("a: " + "9" * 5000 + "\n")
    assert error.startswith("f.yaml:1:4: '99999") and error.endswith("...' is not an integer")


def test_nesting_cycles_and_alias_bombs_are_bounded() -> None:
    # Deeper than the YAML composer can recurse, and deeper than MAX_DEPTH.
    for levels in (600, 100):
        deep = _errors("a: " + "[" * levels + "]" * levels + "\n")
        assert deep == ["f.yaml:1:67: lists and mappings are nested more than 64 levels deep"]
    assert _errors("a: &x [*x]\n") == [
        "f.yaml:1:4: this alias refers to a list or mapping that contains it (a cycle)"
    ]
    bomb = "a: &a [x,x,x,x,x,x,x,x,x,x]\n" + "".join(
        f"{n}: &{n} [{', '.join([f'*{p}'] * 10)}]\n" for p, n in zip("abcde", "bcdef", strict=True)
    )
    (error,) = _errors(bomb)
    assert "aliases expand to more than 10000 values" in error


def test_a_bad_merge_is_located() -> None:
    assert _errors("a:\n  <<: 5\n") == [
        "f.yaml:2:7: '<<' merges a mapping (an alias such as *base) or a list of them"
    ]


def test_a_merged_mapping_used_twice_is_not_a_duplicate() -> None:
    doc = load_yaml("b: &b {x: 1}\nc: &c {<<: *b, x: 2}\nd: *c\ne: *c\n", "f.yaml")
    assert doc.data["d"] == doc.data["e"] == {"x": 2}
