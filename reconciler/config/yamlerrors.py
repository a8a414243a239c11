"""YAML syntax errors in an operator's words, at the line of the mistake.

PyYAML reports where its parser stopped, in the grammar's words ("expected
<block end>, but found '<block mapping start>'"). That is often a line after
the mistake: an unclosed `{` is noticed on the next line, a key without its
`:` when the following line's `:` arrives. Each rule below recognizes one
such report and says what is wrong and where it was written; anything not
recognized keeps the parser's wording, located as well.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import yaml

from reconciler.config.diagnostics import Diagnostic, Location

# YAML 1.2 line breaks (spec 5.4); a mark's line counts these, and so does locate_offset.
_BREAK = re.compile(r"\r\n|[\r\n\x85\u2028\u2029]")


def source_lines(text: str) -> list[str]:
    """The lines of `text` as YAML counts them (a final line break ends the last line)."""
    lines = _BREAK.split(text)
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def inside(text: str, file: str, line: int, column: int) -> Location:
    """(line, column), moved onto the last character of the file when past its end
    (the parser reports the end of the stream one line below a final line break)."""
    lines = source_lines(text)
    if not lines:
        return Location(file, 1, 1)
    if line > len(lines):
        return Location(file, len(lines), len(lines[-1]) + 1)
    line = max(line, 1)
    return Location(file, line, min(max(column, 1), len(lines[line - 1]) + 1))


def position(text: str, offset: int) -> tuple[int, int]:
    """The 1-based line and column of character `offset` of `text`."""
    breaks = list(_BREAK.finditer(text, 0, offset))
    return len(breaks) + 1, offset - (breaks[-1].end() if breaks else 0) + 1


def locate_offset(text: str, file: str, offset: int) -> Location:
    """Where character `offset` of `text` is, kept inside the file."""
    return inside(text, file, *position(text, offset))


def reader_error(text: str, file: str, exc: yaml.reader.ReaderError) -> Diagnostic:
    """A character YAML does not allow anywhere (YAML 1.2 5.1: printable characters only)."""
    code = exc.character if isinstance(exc.character, int) else 0
    return Diagnostic(
        locate_offset(text, file, exc.position),
        f"the control character U+{code:04X} is not allowed in YAML (remove it; inside a "
        'double-quoted string it can be written as an escape such as "\\x00")',
    )


@dataclass(frozen=True)
class _Report:
    context: str
    problem: str
    context_mark: yaml.Mark | None
    problem_mark: yaml.Mark | None


def syntax_error(text: str, file: str, exc: yaml.MarkedYAMLError) -> Diagnostic:
    """The parser's report as an operator would say it, at the mistake, inside the file."""
    r = _Report(exc.context or "", exc.problem or "", exc.context_mark, exc.problem_mark)
    mark, message = _explain(text, r)
    if mark is None:
        where = Location(file, 1, 1)
    else:
        where = inside(text, file, mark.line + 1, mark.column + 1)
    return Diagnostic(where, f"YAML syntax error: {message}")


def _line(mark: yaml.Mark | None) -> int:
    return mark.line + 1 if mark else 0


def _found(problem: str) -> str:
    m = re.search(r"(?:found|got) '(.*)'$", problem)
    return m.group(1) if m else ""


def _closer(context: str) -> tuple[str, str]:
    return ("{", "}") if "mapping" in context else ("[", "]")


def _explain(text: str, r: _Report) -> tuple[yaml.Mark | None, str]:
    p, c = r.problem, r.context
    pm, cm = r.problem_mark, r.context_mark
    found = _found(p)

    if p == "mapping values are not allowed here":
        return _misplaced_colon(text, pm)

    if c.startswith(("while parsing a flow sequence", "while parsing a flow mapping")) and cm:
        opener, closer = _closer(c)
        if found == "<stream end>" or (pm is not None and pm.line > cm.line):
            return cm, (
                f"this '{opener}' is never closed: add '{closer}' after its last entry"
                + (
                    f" (or a ',' is missing between entries; the parser gave up at line "
                    f"{_line(pm)})"
                    if found != "<stream end>"
                    else ""
                )
            )
        if found == ":":
            return pm, (
                f"unexpected ':' inside '{opener} {closer}': put a value that contains ': ' "
                "in quotes, or add the missing ','"
            )
        return (
            pm,
            f"did not expect {_token_words(found)} inside '{opener} {closer}': "
            f"expected ',' or '{closer}'",
        )

    if p.startswith("expected <block end>") and pm is not None:
        what = "mapping" if "mapping" in c else "list"
        if found in {"<block mapping start>", "<block sequence start>"}:
            return pm, (
                f"bad indentation: this line starts at column {pm.column + 1}, where no {what} "
                f"above it has its entries (the enclosing one, from line {_line(cm)}, has them "
                f"at column {cm.column + 1 if cm else 1}); indent it exactly like the entries "
                "it belongs with"
            )
        if found == "-":
            # Only a mapping: a block list takes every '-' in its column as its next item.
            return pm, (
                f"a list item ('- ') where the mapping started at line {_line(cm)} expects "
                "a 'key: value': indent list items under a key that has no value of its own"
            )
        if found == "<scalar>":
            return pm, (
                "unexpected text after a complete value: quote the whole value, or check "
                "the indentation of this line"
            )
        if found in ("}", "]"):
            opener = "{" if found == "}" else "["
            return pm, f"a '{found}' without a matching '{opener}'"
        return pm, (
            f"did not expect {_token_words(found)} here: check this line's indentation against "
            f"the {what} that started at line {_line(cm)}"
        )

    if p == "found unexpected end of stream" and "quoted scalar" in c and cm is not None:
        quote = text_at(text, cm)
        return cm, f"this {quote or 'quote'} is never closed: add the closing {quote or 'quote'}"

    m = re.match(r"found character '(.*)' that cannot start any token", p)
    if m:
        ch = m.group(1)
        if ch == "\\t":
            return pm, "a tab character: YAML indents with spaces only"
        return pm, f"'{ch}' cannot start a value: put the value in quotes"

    m = re.match(r"found unknown escape character '?(.*?)'?$", p)
    if m:
        return pm, (
            f"unknown escape '\\{m.group(1)}' in a double-quoted string: write '\\\\' for a "
            "backslash, or use single quotes"
        )

    m = re.match(r"found undefined alias '(.*)'", p)
    if m:
        return pm, f"alias *{m.group(1)} refers to no anchor &{m.group(1)} above it"

    if c.startswith("found duplicate anchor"):
        return pm, f"this anchor name is already defined at line {_line(cm)}"

    if c.startswith("while scanning an anchor") or c.startswith("while scanning an alias"):
        return cm, "an anchor (&) or alias (*) needs a name of letters, digits, '-' or '_'"

    if c == "expected a single document in the stream":
        return (
            pm,
            "a second document: a desired-state file holds one "
            "(remove this '---' and what follows)",
        )

    if p.startswith("expected '<document start>'"):
        lines = source_lines(text)[: pm.line + 1] if pm else []
        directive = next((i for i, line in enumerate(lines) if line.startswith("%")), None)
        if directive is not None and pm is not None:
            at = yaml.Mark(pm.name, 0, directive, 0, "", 0)
            return at, (
                "a line starting with '%' is a YAML directive (%YAML or %TAG) and needs '---' "
                "after it: put a value that starts with '%' in quotes"
            )
        ended = next((i + 1 for i, line in enumerate(lines) if line.rstrip() == "..."), None)
        if ended is not None:
            return pm, f"text after the end of the document ('...' on line {ended} ends it)"
        return pm, (
            "this line is outside the document: top-level keys must all start in the same "
            "column as the first one"
        )

    if c.startswith("while scanning a block scalar"):
        return pm, "after '|' or '>' only '+', '-' or an indentation digit may follow on that line"

    if p.startswith("found undefined tag handle"):
        return pm, f"{p.removeprefix('found ')}: tags are not used in desired-state files"

    if c.startswith("while scanning a simple key") and cm is not None:
        return cm, "a key without ':': write 'key: value'"

    if p.startswith("expected the node content"):
        if found == "<stream end>" and cm is not None:
            return cm, "the file ends where a value is expected"
        if found == ",":
            return pm, "an empty entry: remove the extra ','"
        return pm, (
            f"a value is expected here, not {_token_words(found)}: put a value that starts "
            "with it in quotes"
        )

    if p == "sequence entries are not allowed here":
        return (
            pm,
            "a list item ('- ') after a key on the same line: start the list on the next "
            "line, indented",
        )

    if p == "mapping keys are not allowed here":
        return (
            pm,
            "'?' (a complex-key marker) is not allowed here: put a value that starts with '?' "
            "in quotes",
        )

    if c.startswith("while scanning a directive"):
        return cm or pm, (
            "a line starting with '%' is a YAML directive (%YAML or %TAG): put a value that "
            "starts with '%' in quotes"
        )

    if c.startswith(("while scanning a tag", "while parsing a tag")):
        return cm or pm, (
            "a malformed tag ('!...'): tags are not used in desired-state files; put a value "
            "that starts with '!' in quotes"
        )

    if p.startswith("found incompatible YAML document"):
        return pm, "only YAML 1.x documents are supported"

    # Not recognized: the parser's own words, without its grammar symbols' angle brackets.
    words = " ".join(s for s in (c, p) if s)
    return pm or cm, _plain(words)


def _misplaced_colon(text: str, pm: yaml.Mark | None) -> tuple[yaml.Mark | None, str]:
    """`': '` where a simple key cannot be: the scalar before it decides what is wrong."""
    before = _last_scalar_before(text, pm)
    if before is None or pm is None:
        return pm, "': ' inside a value: put the value in quotes"
    scalar = before
    if scalar.start_mark.line == pm.line:
        return pm, "': ' inside a value: put the value in quotes"
    line = source_lines(text)[scalar.start_mark.line]
    if scalar.start_mark.column > len(line) - len(line.lstrip(" ")):
        here = source_lines(text)[pm.line]
        key = yaml.Mark(pm.name, 0, pm.line, len(here) - len(here.lstrip(" ")), "", 0)
        return key, (
            f"this line is indented under line {scalar.start_mark.line + 1}, whose key already "
            "has a value: indent it like the keys above, or move that value onto its own "
            "lines below its key"
        )
    first = scalar.value.split()[0] if scalar.value.split() else ""
    glued = re.fullmatch(r"([A-Za-z_][\w-]*):([^:]+)", first)
    if glued:
        return scalar.start_mark, (f"a space is missing after ':' (write '{glued[1]}: {glued[2]}')")
    return scalar.start_mark, (
        "a ':' is missing after this key (or the next line is indented too far)"
    )


def _last_scalar_before(text: str, pm: yaml.Mark | None) -> yaml.ScalarToken | None:
    """The last scalar token scanned before the error."""
    last: yaml.ScalarToken | None = None
    try:
        for tok in yaml.scan(text, Loader=yaml.SafeLoader):
            if pm is not None and (tok.start_mark.line, tok.start_mark.column) >= (
                pm.line,
                pm.column,
            ):
                break
            if isinstance(tok, yaml.ScalarToken):
                last = tok
    except yaml.YAMLError:
        pass
    return last


def text_at(text: str, mark: yaml.Mark) -> str:
    lines = source_lines(text)
    if 0 <= mark.line < len(lines) and 0 <= mark.column < len(lines[mark.line]):
        ch = lines[mark.line][mark.column]
        return {"'": "single quote (')", '"': 'double quote (")'}.get(ch, "")
    return ""


_TOKEN_WORDS = {
    "<block mapping start>": "a new 'key: value'",
    "<block sequence start>": "a new list",
    "<block end>": "the end of an indented block",
    "<stream end>": "the end of the file",
    "<document start>": "'---' (a document start)",
    "<document end>": "'...' (a document end)",
    "<scalar>": "text",
    "<tag>": "a tag ('!')",
    "<anchor>": "an anchor ('&')",
    "<alias>": "an alias ('*')",
    "?": "'?' (a complex-key marker)",
    "-": "a list item ('- ')",
}
_SYMBOL = re.compile(r"'(<[a-z ]+>|[?-])'|(<[a-z ]+>)")


def _token_words(token: str) -> str:
    return _TOKEN_WORDS.get(token, f"'{token}'")


def _plain(words: str) -> str:
    """The parser's grammar symbols (`'<block end>'`) in words, each replaced once."""

    def word(m: re.Match[str]) -> str:
        symbol = m.group(1) or m.group(2)
        return _TOKEN_WORDS.get(symbol, symbol)

    return _SYMBOL.sub(word, words)
