"""The operator's YAML syntax errors, pinned word for word and at their exact location.

tests/unit/test_yamlload.py checks that each rule of yamlerrors.py recognizes its
mistake; these tests pin the whole message and location of every rule (the numbers
in them come from the parser's marks, so an off-by-one shows), and the helpers that
count YAML 1.2 lines (spec 5.4: CR, LF, CRLF, NEL, LS and PS each end a line).
"""

from __future__ import annotations

import pytest
import yaml

from reconciler.config.diagnostics import InvalidConfig, Location
from reconciler.config.yamlerrors import (
    _plain,
    _token_words,
    inside,
    locate_offset,
    position,
    source_lines,
    text_at,
)
from reconciler.config.yamlload import load_yaml

S = "YAML syntax error: "


def _error(text: str) -> str:
    with pytest.raises(InvalidConfig) as exc:
        load_yaml(text, "f.yaml")
    (d,) = exc.value.diagnostics
    return str(d)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # Flow collections: an unclosed opener is reported where it was opened.
        (
            "a: [1, 2\nb: 3\n",
            "1:4: this '[' is never closed: add ']' after its last entry (or a ',' is missing "
            "between entries; the parser gave up at line 2)",
        ),
        (
            "nodes:\n  lb1: {a: 1, b: 2\nvrrp: {}\n",
            "2:8: this '{' is never closed: add '}' after its last entry (or a ',' is missing "
            "between entries; the parser gave up at line 3)",
        ),
        ("a: {x: 1\n", "1:4: this '{' is never closed: add '}' after its last entry"),
        # The file ends on the opener's own line (no final line break): still never closed.
        ("a: [x", "1:4: this '[' is never closed: add ']' after its last entry"),
        ("a: {x: 1", "1:4: this '{' is never closed: add '}' after its last entry"),
        ("[a, b\n", "1:1: this '[' is never closed: add ']' after its last entry"),
        ("a: [b\n\n\n", "1:4: this '[' is never closed: add ']' after its last entry"),
        (
            "a: {x: 1, y: a: b}\n",
            "1:15: unexpected ':' inside '{ }': put a value that contains ': ' in quotes, or "
            "add the missing ','",
        ),
        (
            "a: [x: 1: 2]\n",
            "1:9: unexpected ':' inside '[ ]': put a value that contains ': ' in quotes, or "
            "add the missing ','",
        ),
        ("a: [x}\n", "1:6: did not expect '}' inside '[ ]': expected ',' or ']'"),
        ("a: [b, {c: d]\n", "1:13: did not expect ']' inside '{ }': expected ',' or '}'"),
        # Misplaced ': ' (the scalar before it decides the rule).
        (
            "nodes:\n  lb1\n  lb2: x\n",
            "2:3: a ':' is missing after this key (or the next line is indented too far)",
        ),
        (
            "a\nb: c\n",
            "1:1: a ':' is missing after this key (or the next line is indented too far)",
        ),
        (
            "1a:b\nc: d\n",
            "1:1: a ':' is missing after this key (or the next line is indented too far)",
        ),
        ("a:\n  vrid:51\n  b: 1\n", "2:3: a space is missing after ':' (write 'vrid: 51')"),
        ("a:b\nc: d\n", "1:1: a space is missing after ':' (write 'a: b')"),
        (
            "a: 1\n  b: 2\n",
            "2:3: this line is indented under line 1, whose key already has a value: indent it "
            "like the keys above, or move that value onto its own lines below its key",
        ),
        (
            "- a\n- b\n  c: d\n",
            "3:3: this line is indented under line 2, whose key already has a value: indent it "
            "like the keys above, or move that value onto its own lines below its key",
        ),
        ("a: b: c\n", "1:5: ': ' inside a value: put the value in quotes"),
        # No scalar before the ':' at all (an anchor on an empty key).
        ("&x : : b: c\n", "1:6: ': ' inside a value: put the value in quotes"),
        # A glued key may start with a capital letter.
        ("A:b\nc: d\n", "1:1: a space is missing after ':' (write 'A: b')"),
        ("a: b: c: d\n", "1:5: ': ' inside a value: put the value in quotes"),
        # Block structure.
        (
            "a:\n  b: 1\n c: 2\n",
            "3:2: bad indentation: this line starts at column 2, where no mapping above it has "
            "its entries (the enclosing one, from line 1, has them at column 1); indent it "
            "exactly like the entries it belongs with",
        ),
        (
            "a:\n  b:\n    c: 1\n   d: 2\n",
            "4:4: bad indentation: this line starts at column 4, where no mapping above it has "
            "its entries (the enclosing one, from line 2, has them at column 3); indent it "
            "exactly like the entries it belongs with",
        ),
        (
            "- - a\n  - b\n - c\n",
            "3:2: bad indentation: this line starts at column 2, where no list above it has "
            "its entries (the enclosing one, from line 1, has them at column 1); indent it "
            "exactly like the entries it belongs with",
        ),
        (
            "a:\n  b: 1\n  - c\n",
            "3:3: a list item ('- ') where the mapping started at line 2 expects a 'key: value': "
            "indent list items under a key that has no value of its own",
        ),
        (
            "a: -?\n- b\n",
            "2:1: a list item ('- ') where the mapping started at line 1 expects a 'key: value': "
            "indent list items under a key that has no value of its own",
        ),
        (
            "a: 'x' y\n",
            "1:8: unexpected text after a complete value: quote the whole value, or check the "
            "indentation of this line",
        ),
        (
            'a: "x"\n b\n',
            "2:2: unexpected text after a complete value: quote the whole value, or check the "
            "indentation of this line",
        ),
        ("a: {b: 1}}\n", "1:10: a '}' without a matching '{'"),
        ("a: [b, c]]\n", "1:10: a ']' without a matching '['"),
        ("a: b\n]\n", "2:1: a ']' without a matching '['"),
        (
            "a:\n  - b\n  c: 1\n",
            "3:3: did not expect '?' (a complex-key marker) here: check this line's indentation "
            "against the list that started at line 2",
        ),
        (
            "- a\n- b\nc: 1\n",
            "3:1: did not expect '?' (a complex-key marker) here: check this line's indentation "
            "against the list that started at line 1",
        ),
        # Quotes, characters, escapes.
        (
            'name: "abc\nx: 1\n',
            '1:7: this double quote (") is never closed: add the closing double quote (")',
        ),
        (
            "name: 'abc\nx: 1\n",
            "1:7: this single quote (') is never closed: add the closing single quote (')",
        ),
        ('"a\nb\n', '1:1: this double quote (") is never closed: add the closing double quote (")'),
        ("a:\n\tb: 1\n", "2:1: a tab character: YAML indents with spaces only"),
        ("a: @x\n", "1:4: '@' cannot start a value: put the value in quotes"),
        ("a: `x`\n", "1:4: '`' cannot start a value: put the value in quotes"),
        (
            'a: "\\q"\n',
            "1:6: unknown escape '\\q' in a double-quoted string: write '\\\\' for a "
            "backslash, or use single quotes",
        ),
        # Anchors, aliases, tags.
        ("a: *x\n", "1:4: alias *x refers to no anchor &x above it"),
        ("a: &x 1\nb: &x 2\n", "2:4: this anchor name is already defined at line 1"),
        ("a: & x\n", "1:4: an anchor (&) or alias (*) needs a name of letters, digits, '-' or '_'"),
        ("a: * x\n", "1:4: an anchor (&) or alias (*) needs a name of letters, digits, '-' or '_'"),
        (
            "a: !x!y b\n",
            "1:4: undefined tag handle '!x!': tags are not used in desired-state files",
        ),
        (
            "a: !<\n",
            "1:4: a malformed tag ('!...'): tags are not used in desired-state files; put a "
            "value that starts with '!' in quotes",
        ),
        # A bad %-escape in a tag: the scanner's context says "scanning", not "parsing".
        (
            "a: !x%zz b\n",
            "1:4: a malformed tag ('!...'): tags are not used in desired-state files; put a "
            "value that starts with '!' in quotes",
        ),
        # Documents and directives.
        (
            "a: 1\n---\nb: 2\n",
            "2:1: a second document: a desired-state file holds one (remove this '---' and "
            "what follows)",
        ),
        (
            "%x\n",
            "1:1: a line starting with '%' is a YAML directive (%YAML or %TAG) and needs '---' "
            "after it: put a value that starts with '%' in quotes",
        ),
        (
            "a: 1\n%YAML 1.1\nb: 2\n",
            "2:1: a line starting with '%' is a YAML directive (%YAML or %TAG) and needs '---' "
            "after it: put a value that starts with '%' in quotes",
        ),
        (
            "%TAG !x tag:x\n---\na: 1\n",
            "1:1: a line starting with '%' is a YAML directive (%YAML or %TAG): put a value "
            "that starts with '%' in quotes",
        ),
        ("%YAML 2.0\n---\na: 1\n", "1:1: only YAML 1.x documents are supported"),
        (
            "  a: 1\nb: 2\n",
            "2:1: this line is outside the document: top-level keys must all start in the same "
            "column as the first one",
        ),
        ("a: 1\n...\nb\n", "3:1: text after the end of the document ('...' on line 2 ends it)"),
        ("a: b\n...\nc: d\n", "3:1: text after the end of the document ('...' on line 2 ends it)"),
        # '...' followed by spaces still ends the document.
        ("a: 1\n...  \nb\n", "3:1: text after the end of the document ('...' on line 2 ends it)"),
        # Only lines up to the mistake are searched for a directive: a later '%' line is
        # no reason for this one.
        (
            "  a: 1\nb: 2\n%x\n",
            "2:1: this line is outside the document: top-level keys must all start in the same "
            "column as the first one",
        ),
        # Values.
        (
            "a: |x\n  b\n",
            "1:5: after '|' or '>' only '+', '-' or an indentation digit may follow on that line",
        ),
        ("a:\n  b: 1\n  c\n", "3:3: a key without ':': write 'key: value'"),
        ("a: [\n", "1:5: the file ends where a value is expected"),
        ("a: [b,\n", "1:7: the file ends where a value is expected"),
        ("a: [x, , y]\n", "1:8: an empty entry: remove the extra ','"),
        (
            "a: ]\n",
            "1:4: a value is expected here, not ']': put a value that starts with it in quotes",
        ),
        (
            "a: - b\n",
            "1:4: a list item ('- ') after a key on the same line: start the list on the next "
            "line, indented",
        ),
        (
            "a: ? b\n",
            "1:4: '?' (a complex-key marker) is not allowed here: put a value that starts with "
            "'?' in quotes",
        ),
        # Not recognized: the parser's words, context first.
        (
            'a: 1\nb: "\\u12"\n',
            "2:7: while scanning a double-quoted scalar expected escape sequence of 4 "
            "hexadecimal numbers, but found '\"'",
        ),
        ("%YAML 1.1\n%YAML 1.1\n---\na: 1\n", "2:1: found duplicate YAML directive"),
    ],
)
def test_each_syntax_rule_gives_its_whole_message_at_the_mistake(text: str, expected: str) -> None:
    at, message = expected.split(": ", 1)
    assert _error(text) == f"f.yaml:{at}: {S}{message}"


def test_a_blank_quoted_key_broken_over_lines_is_still_a_located_error() -> None:
    # The scalar before the ':' has no word to show as a glued 'key:value'.
    missing = "a ':' is missing after this key (or the next line is indented too far)"
    assert _error('"\n  ": x\n') == f"f.yaml:1:1: {S}{missing}"
    assert _error("a:\n  '\n\n  ': x\n") == f"f.yaml:2:3: {S}{missing}"


def test_a_control_character_is_named_by_its_code_point_at_its_line_and_column() -> None:
    # YAML 1.2 5.1: only printable characters; the reader reports a character offset.
    rest = (
        " is not allowed in YAML (remove it; inside a double-quoted string it can be written "
        'as an escape such as "\\x00")'
    )
    assert _error("a: 1\nname: x\x00\n") == f"f.yaml:2:8: the control character U+0000{rest}"
    assert _error("a: 1\rb: \x1b\n") == f"f.yaml:2:4: the control character U+001B{rest}"
    assert _error("a: \x7f\n") == f"f.yaml:1:4: the control character U+007F{rest}"


def test_source_lines_count_every_yaml_12_line_break() -> None:
    assert source_lines("a\nb\r\nc\rd\x85e\u2028f\u2029g") == list("abcdefg")
    assert source_lines("a\n") == ["a"]
    assert source_lines("a\n\n") == ["a", ""]
    assert source_lines("") == []


def test_position_is_one_based_and_counts_crlf_as_one_break() -> None:
    assert position("ab\r\ncd", 0) == (1, 1)
    assert position("ab\r\ncd", 1) == (1, 2)
    assert position("ab\r\ncd", 4) == (2, 1)
    assert position("ab\r\ncd", 5) == (2, 2)
    assert position("a\nb\nc", 4) == (3, 1)
    assert locate_offset("ab\ncd", "f", 4) == Location("f", 2, 2)


def test_inside_keeps_a_location_within_the_file() -> None:
    text = "ab\ncde\n"
    assert inside(text, "f", 2, 2) == Location("f", 2, 2)
    # Past the last line (the parser's end of stream): the end of the last line.
    assert inside(text, "f", 3, 1) == Location("f", 2, 4)
    # Past the end of a line: just after its last character.
    assert inside(text, "f", 1, 9) == Location("f", 1, 3)
    # Before the start: line and column 1.
    assert inside(text, "f", 0, 0) == Location("f", 1, 1)
    assert inside(text, "f", 2, 0) == Location("f", 2, 1)
    assert inside("", "f", 5, 5) == Location("f", 1, 1)


def test_text_at_names_only_the_quote_under_the_mark() -> None:
    def mark(line: int, column: int) -> yaml.Mark:
        return yaml.Mark("f", 0, line, column, "", 0)

    text = "a: 'x'\nb: \"y\"\n"
    assert text_at(text, mark(0, 3)) == "single quote (')"
    assert text_at(text, mark(1, 3)) == 'double quote (")'
    assert text_at(text, mark(0, 0)) == ""
    assert text_at(text, mark(0, 6)) == ""  # past the end of the line
    assert text_at(text, mark(2, 0)) == ""  # past the last line
    assert text_at(text, mark(-1, 3)) == ""
    assert text_at(text, mark(0, -1)) == ""


def test_parser_grammar_symbols_are_put_in_words() -> None:
    assert _token_words("<block end>") == "the end of an indented block"
    assert _token_words("x") == "'x'"
    assert (
        _plain("expected '<block end>', but found '<scalar>'")
        == "expected the end of an indented block, but found text"
    )
    assert _plain("found '?' and '-' and <stream end>") == (
        "found '?' (a complex-key marker) and a list item ('- ') and the end of the file"
    )
    assert _plain("'<unknown thing>'") == "<unknown thing>"


def test_a_line_break_at_the_very_start_of_the_file_counts() -> None:
    """A file that starts with an empty line: the error is on line 2, not line 1."""
    assert position("\nab", 1) == (2, 1)
    assert position("\nab", 2) == (2, 2)
    assert _error("\na: \x07\n").startswith("f.yaml:2:4: ")
