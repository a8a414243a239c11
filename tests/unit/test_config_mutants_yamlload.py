"""The YAML loader's contract, pinned exactly: YAML 1.2 core-schema scalars
(https://yaml.org/spec/1.2.2/#1032-tag-resolution), only the JSON types, merge keys,
and the bounds on nesting and alias expansion, each error at its exact location."""

from __future__ import annotations

import math

import pytest

from reconciler.config.diagnostics import InvalidConfig, Location
from reconciler.config.yamlload import MAX_ALIASED, MAX_DEPTH, Document, Marks, dotted, load_yaml


def _errors(text: str) -> list[str]:
    with pytest.raises(InvalidConfig) as exc:
        load_yaml(text, "f.yaml")
    return [str(d) for d in exc.value.diagnostics]


def test_yaml_12_core_schema_resolves_exactly_these_plain_scalars() -> None:
    doc = load_yaml(
        "a: 0x1F\nb: -0\nc: +5\nd: .5\ne: 1.\nf: 1e3\ng: .inf\nh: -.Inf\nj: Null\nk: NULL\n"
        "l: ~\nm: TRUE\nn: False\no: 1_000\np: 0o7\nq: 0b1\nr: +.5e-3\ns: -7\nt: +.INF\n"
        "u: 2E-2\nv: 0\nw: null\nx: 0xg\ny: 1e\nz: 07\n",
        "f.yaml",
    )
    assert doc.data == {
        "a": 31,
        "b": 0,
        "c": 5,
        "d": 0.5,
        "e": 1.0,
        "f": 1000.0,
        "g": float("inf"),
        "h": float("-inf"),
        "j": None,
        "k": None,
        "l": None,
        "m": True,
        "n": False,
        # YAML 1.1 forms that 1.2 leaves as strings.
        "o": "1_000",
        "p": "0o7",
        "q": "0b1",
        "r": 0.0005,
        "s": -7,
        "t": float("inf"),
        "u": 0.02,
        "v": 0,
        "w": None,
        "x": "0xg",
        "y": "1e",
        "z": "07",
    }
    for key in ("a", "b", "c", "s", "v"):
        assert type(doc.data[key]) is int, key
    nan = load_yaml("a: .NaN\nb: .nan\nc: .NAN\n", "f").data
    assert all(math.isnan(v) for v in nan.values())
    empty = load_yaml("a:\nb: ''\n", "f").data
    assert empty == {"a": None, "b": ""}


def test_every_key_and_value_is_marked_with_its_line_and_column() -> None:
    doc = load_yaml("top:\n  k: v\n  l:\n    - x\n", "f.yaml")
    assert doc.marks == {
        (): Marks(None, Location("f.yaml", 1, 1)),
        ("top",): Marks(Location("f.yaml", 1, 1), Location("f.yaml", 2, 3)),
        ("top", "k"): Marks(Location("f.yaml", 2, 3), Location("f.yaml", 2, 6)),
        ("top", "l"): Marks(Location("f.yaml", 3, 3), Location("f.yaml", 4, 5)),
        ("top", "l", 0): Marks(None, Location("f.yaml", 4, 7)),
    }
    assert list(doc.paths()) == list(doc.marks)
    assert doc.get(("top", "l", 0)) == "x"
    # A list item has no key: key_at falls back to the value.
    assert doc.key_at(("top", "l", 0)) == Location("f.yaml", 4, 7)
    assert doc.key_at(("top", "nothing", 3)) == Location("f.yaml", 1, 1)
    # Nothing marked at all: the start of the file.
    assert doc.value_at(("elsewhere",)) == Location("f.yaml", 1, 1)


def test_dotted_paths_name_keys_with_dots_and_indexes_in_brackets() -> None:
    assert dotted(()) == "document"
    assert dotted(("vrrp", "instances", "web", "vips", 0)) == "vrrp.instances.web.vips[0]"
    assert dotted(("a", 0, "b", 1, 2)) == "a[0].b[1][2]"
    assert dotted((0, "a")) == "[0].a"


def test_cycles_and_merge_mistakes_are_located() -> None:
    assert _errors("a: &a [1, *a]\n") == [
        "f.yaml:1:4: this alias refers to a list or mapping that contains it (a cycle)"
    ]
    # A cycle through a mapping value is reported at its key.
    assert _errors("a: &a {x: *a}\n") == [
        "f.yaml:1:8: this alias refers to a list or mapping that contains it (a cycle)"
    ]
    assert _errors("a: {<<: [1]}\n") == [
        "f.yaml:1:10: '<<' merges a mapping (an alias such as *base) or a list of them"
    ]
    assert _errors("a: <<\n") == ["f.yaml:1:4: '<<' (a merge key) is only allowed as a mapping key"]
    assert _errors("a: [<<]\n") == [
        "f.yaml:1:5: '<<' (a merge key) is only allowed as a mapping key"
    ]
    assert _errors("a: !!map [1]\n") == ["f.yaml:1:4: tag !!map does not apply to a list"]
    assert _errors("a: !!seq {b: 1}\n") == ["f.yaml:1:4: tag !!seq does not apply to a mapping"]
    assert _errors("a: !<tag:example.org,2000:x> 1\n") == [
        "f.yaml:1:4: tag tag:example.org,2000:x is not supported: values are strings, numbers, "
        "true/false, null, lists and mappings"
    ]


def test_merged_keys_come_first_and_explicit_keys_override_them() -> None:
    doc = load_yaml("b: &b {x: 1, y: 2}\nc: &c {y: 3, z: 4}\na: {<<: [*b, *c], z: 5}\n", "f")
    assert doc.data["a"] == {"x": 1, "y": 2, "z": 5}
    assert list(doc.data["a"]) == ["x", "y", "z"]
    # An explicit key before the merge wins too, and is not a duplicate of the merged one.
    assert load_yaml("a: {x: 1, <<: {x: 2, w: 0}}\n", "f").data == {"a": {"x": 1, "w": 0}}
    # Two explicit keys stay a duplicate even when a merged key has the name.
    assert _errors("b: &b {x: 1}\na: {<<: *b, x: 2, x: 3}\n") == [
        "f.yaml:2:19: duplicate key 'x' (first defined at line 2)"
    ]
    # The overriding key is marked where it is written, not where the merged one was.
    doc = load_yaml("b: &b {x: 1}\na:\n  <<: *b\n  x: 2\n", "f")
    assert doc.key_at(("a", "x")) == Location("f", 4, 3)


def test_keys_are_strings_or_integers_written_as_keys() -> None:
    assert load_yaml("1: x\n-2: y\n", "f").data == {"1": "x", "-2": "y"}
    assert _errors("a: 1\n? {b: 1}\n: 2\n") == ["f.yaml:2:3: keys must be strings, not a mapping"]
    assert _errors("? !!int x\n: 1\nb: 2\n") == ["f.yaml:1:3: 'x' is not an integer"]
    assert _errors("false: 1\n") == ["f.yaml:1:1: keys must be strings, not false"]


def test_a_value_that_does_not_fit_its_tag_is_shown_up_to_40_characters() -> None:
    assert _errors("a: !!int " + "x" * 40 + "\n") == [f"f.yaml:1:4: '{'x' * 40}' is not an integer"]
    assert _errors("a: !!int " + "x" * 41 + "\n") == [
        f"f.yaml:1:4: '{'x' * 37}...' is not an integer"
    ]
    assert _errors("a: !!float abc\n") == ["f.yaml:1:4: 'abc' is not a number"]


def test_nesting_is_refused_just_past_max_depth() -> None:
    assert MAX_DEPTH == 64
    ok = load_yaml("[" * MAX_DEPTH + "]" * MAX_DEPTH + "\n", "f")
    assert ok.data is not None
    # One level more: reported at the first collection too deep.
    deeper = MAX_DEPTH + 1
    assert _errors("[" * deeper + "]" * deeper + "\n") == [
        "f.yaml:1:65: lists and mappings are nested more than 64 levels deep"
    ]
    # So deep that the composer's recursion gives up first: the same error.
    assert _errors("{a: " * 400 + "1" + "}" * 400 + "\n") == [
        "f.yaml:1:257: lists and mappings are nested more than 64 levels deep"
    ]


def _aliased(values: int) -> str:
    """A file whose aliases reach exactly `values` values again."""
    # One list of `values - 1` items, aliased once: the list and its items are reached again.
    items = ", ".join("x" for _ in range(values - 1))
    return f"a: &a [{items}]\nb: *a\n"


def test_alias_expansion_is_refused_just_past_max_aliased() -> None:
    assert MAX_ALIASED == 10_000
    assert load_yaml(_aliased(MAX_ALIASED), "f").data["b"][-1] == "x"
    # Reported at the first value past the limit, where it is written: the last item
    # (column 8 + 3 * 9999) of the aliased list.
    assert _errors(_aliased(MAX_ALIASED + 1)) == [
        "f.yaml:1:30005: aliases expand to more than 10000 values (aliases of aliases multiply)"
    ]
    # A large file without aliases is not limited.
    big = "a: [" + ", ".join("x" for _ in range(MAX_ALIASED + 5)) + "]\n"
    assert len(load_yaml(big, "f").data["a"]) == MAX_ALIASED + 5


def test_an_alias_bomb_is_reported_once() -> None:
    bomb = "a: &a [x,x,x,x,x,x,x,x,x,x]\n" + "".join(
        f"{n}: &{n} [{', '.join([f'*{p}'] * 10)}]\n" for p, n in zip("abcde", "bcdef", strict=True)
    )
    assert _errors(bomb) == [
        "f.yaml:1:10: aliases expand to more than 10000 values (aliases of aliases multiply)"
    ]


def test_too_deep_for_the_composer_counts_only_open_collections() -> None:
    # Seventy closed lists before the deep one: each closes what it opened, so the error
    # is at the 64th '[' of `y`, as without them.
    text = "x: [" + "[], " * 70 + "]\ny: " + "[" * 600 + "]" * 600 + "\n"
    assert _errors(text) == ["f.yaml:2:67: lists and mappings are nested more than 64 levels deep"]
    # A list closed inside a mapping that is still open: the mapping still counts.
    inner = "a:\n  x: []\n  y: " + "[" * 600 + "]" * 600 + "\n"
    assert _errors(inner) == ["f.yaml:3:68: lists and mappings are nested more than 64 levels deep"]


def test_a_document_without_marks_locates_everything_at_the_start_of_its_file() -> None:
    doc = Document("g.yaml", {"a": 1})
    assert doc.value_at(("a",)) == Location("g.yaml", 1, 1)
    assert doc.key_at(("a", 0)) == Location("g.yaml", 1, 1)


def test_every_mistake_after_a_duplicate_key_is_still_reported() -> None:
    assert _errors("a: 1\na: 2\nb: !!binary x\nc:\n  d: 1\n  d: 2\n") == [
        "f.yaml:2:1: duplicate key 'a' (first defined at line 1)",
        "f.yaml:3:4: tag !!binary is not supported: values are strings, numbers, true/false, "
        "null, lists and mappings",
        "f.yaml:6:3: duplicate key 'd' (first defined at line 5)",
    ]


def test_a_key_that_does_not_fit_its_tag_is_reported_once() -> None:
    # Not also as a key that is not a string: the tag's error says it all.
    assert _errors("!!binary aGk=: 1\n") == [
        "f.yaml:1:1: tag !!binary is not supported: values are strings, numbers, true/false, "
        "null, lists and mappings"
    ]
    assert _errors("!!int abc: 1\n") == ["f.yaml:1:1: 'abc' is not an integer"]


def test_a_value_after_an_alias_is_not_counted_as_expanded_through_it() -> None:
    # Only the aliases count: 6000 of them, each followed by a value of its own.
    pairs = 6000
    text = "a: &x 1\nc: [" + ", ".join(["*x, 0"] * pairs) + "]\n"
    assert len(load_yaml(text, "f.yaml").data["c"]) == 2 * pairs
    assert pairs <= MAX_ALIASED < 2 * pairs
