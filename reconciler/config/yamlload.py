"""Load YAML keeping the line and column of every key and value.

The loader resolves plain scalars the YAML 1.2 way: only `true`/`false` are
booleans (not `yes`, `no`, `on`, `off`), `010` is not octal, `1:30` is not a
base-60 number and dates stay strings. Operators write VRIDs, ports and
interface names; YAML 1.1's guesses turn those into the wrong types silently.
Duplicate keys are errors instead of "last one wins".

Whatever the input, loading either returns a Document or raises InvalidConfig
with located diagnostics: syntax errors are reworded for operators
(`yamlerrors.py`), explicit tags are limited to the plain JSON types, and
nesting depth and alias expansion are bounded.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import yaml

from reconciler.config.diagnostics import Diagnostic, InvalidConfig, Location
from reconciler.config.yamlerrors import locate_offset, reader_error, syntax_error

Path = tuple[str | int, ...]

MAX_DEPTH = 64
"""Nesting deeper than this is refused: the schema's deepest value is about ten levels down,
and the YAML composer and the JSON Schema validator recurse once per level."""

MAX_ALIASED = 10_000
"""Values reached again through aliases and merge keys: a few aliases of aliases ("billion
laughs") would otherwise expand to more values than memory holds. Real files alias a few
defaults; a large file without aliases is not limited."""


class _Loader(yaml.SafeLoader):
    pass


# YAML 1.2 core schema resolvers (https://yaml.org/spec/1.2.2/#1032-tag-resolution).
_Loader.yaml_implicit_resolvers = {}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:int",
    re.compile(r"^(?:[-+]?(?:0|[1-9][0-9]*)|0x[0-9a-fA-F]+)$"),
    list("-+0123456789"),
)
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+\.[0-9]*)(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?[0-9]+[eE][-+]?[0-9]+|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
    ),
    list("-+.0123456789"),
)
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:null", re.compile(r"^(?:~|null|Null|NULL|)$"), ["~", "n", "N", ""]
)
_Loader.add_implicit_resolver("tag:yaml.org,2002:merge", re.compile(r"^(?:<<)$"), ["<"])

_TAG = "tag:yaml.org,2002:"
# The JSON types are all a desired-state file can hold; other tags (!!binary, !!timestamp,
# !!set, !!python/..., local !tags) would hand the schema values it cannot describe.
_SCALAR_TAGS = {f"{_TAG}{t}": t for t in ("str", "int", "float", "bool", "null")}
_SCALAR_WORDS = {
    "str": "a string",
    "int": "an integer",
    "float": "a number",
    "bool": "true or false",
    "null": "null",
}


@dataclass(frozen=True)
class Marks:
    """Where a value sits: its key (when it is a mapping value) and the value itself."""

    key: Location | None
    value: Location


@dataclass
class Document:
    """A loaded YAML document with the source position of every node, by path."""

    file: str
    data: Any
    marks: dict[Path, Marks] = field(default_factory=dict)

    def value_at(self, path: Path) -> Location:
        return self._nearest(path).value

    def key_at(self, path: Path) -> Location:
        """The key of the value at `path` when it has one, else the value."""
        m = self._nearest(path)
        return m.key or m.value

    def _nearest(self, path: Path) -> Marks:
        p = tuple(path)
        while p not in self.marks and p:
            p = p[:-1]
        return self.marks.get(p, Marks(None, Location(self.file, 1, 1)))

    def get(self, path: Path) -> Any:
        node = self.data
        for part in path:
            node = node[part]
        return node

    def paths(self) -> Iterator[Path]:
        return iter(self.marks)


def dotted(path: Path) -> str:
    """`vrrp.instances.web.vips[0]`: a path as the messages name it."""
    parts: list[str] = []
    for p in path:
        parts.append(f"[{p}]" if isinstance(p, int) else ("." if parts else "") + p)
    return "".join(parts) or "document"


def _loc(file: str, mark: yaml.Mark | yaml._yaml.Mark) -> Location:
    return Location(file, mark.line + 1, mark.column + 1)


def load_yaml(text: str, file: str) -> Document:
    """Parse one YAML document; raise InvalidConfig with located errors."""
    try:
        loader = _Loader(text)
    except yaml.reader.ReaderError as exc:
        # A character YAML does not allow (NUL, other C0 controls, DEL, surrogates).
        raise InvalidConfig([reader_error(text, file, exc)]) from None
    try:
        try:
            node = loader.get_single_node()
        except yaml.MarkedYAMLError as exc:
            raise InvalidConfig([syntax_error(text, file, exc)]) from None
        except yaml.YAMLError as exc:  # pragma: no cover - every parser error is marked
            raise InvalidConfig([Diagnostic(Location(file, 1, 1), f"YAML error: {exc}")]) from None
        except RecursionError:
            raise InvalidConfig([_too_deep(text, file)]) from None
        if node is None:
            raise InvalidConfig([Diagnostic(Location(file, 1, 1), "the file is empty")])
        converter = _Converter(loader, Document(file, None))
        converter.doc.data = converter.convert(node, (), None, 1)
        if converter.errors:
            raise InvalidConfig(converter.errors)
        return converter.doc
    finally:
        loader.dispose()


def _too_deep(text: str, file: str) -> Diagnostic:
    """Where nesting first goes deeper than MAX_DEPTH (the parser does not recurse)."""
    depth = 0
    for event in yaml.parse(text, Loader=_Loader):
        if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            depth += 1
            if depth > MAX_DEPTH and event.start_mark is not None:
                return Diagnostic(_loc(file, event.start_mark), _deep_message())
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            depth -= 1
    return Diagnostic(locate_offset(text, file, 0), _deep_message())  # pragma: no cover


def _deep_message() -> str:
    return f"lists and mappings are nested more than {MAX_DEPTH} levels deep"


class _Converter:
    """Builds plain Python values from the composed node graph, recording marks."""

    def __init__(self, loader: _Loader, doc: Document) -> None:
        self.loader = loader
        self.doc = doc
        self.errors: list[Diagnostic] = []
        self.converted: set[int] = set()  # ids of the nodes converted once already
        self.aliased = 0  # values converted again, through an alias
        self.inside_alias = 0  # > 0 while converting a node the second time or more
        self.too_many = False
        self.active: set[int] = set()  # ids of the collections being converted (cycles)
        self.merged: dict[int, int] = {}  # mapping node id -> pairs that came from `<<`

    def error(self, mark: yaml.Mark | Location, message: str) -> None:
        loc = mark if isinstance(mark, Location) else _loc(self.doc.file, mark)
        self.errors.append(Diagnostic(loc, message))

    def convert(self, node: yaml.Node, path: Path, key_loc: Location | None, depth: int) -> Any:
        again = id(node) in self.converted  # reached through an alias or a merge key
        self.converted.add(id(node))
        self.inside_alias += again
        try:
            return self._convert(node, path, key_loc, depth)
        finally:
            self.inside_alias -= again

    def _convert(self, node: yaml.Node, path: Path, key_loc: Location | None, depth: int) -> Any:
        self.doc.marks[path] = Marks(key_loc, _loc(self.doc.file, node.start_mark))
        if self.inside_alias:
            self.aliased += 1
            if self.aliased > MAX_ALIASED:
                if not self.too_many:
                    self.too_many = True
                    self.error(
                        key_loc or node.start_mark,
                        f"aliases expand to more than {MAX_ALIASED} values "
                        "(aliases of aliases multiply)",
                    )
                return None
        if isinstance(node, yaml.ScalarNode):
            ok, value = self.scalar(node)
            return value if ok else None
        if depth > MAX_DEPTH:
            self.error(node.start_mark, _deep_message())
            return None
        if id(node) in self.active:
            self.error(
                key_loc or node.start_mark,
                "this alias refers to a list or mapping that contains it (a cycle)",
            )
            return None
        self.active.add(id(node))
        try:
            if isinstance(node, yaml.MappingNode):
                return self.mapping(node, path, depth)
            assert isinstance(node, yaml.SequenceNode)
            return self.sequence(node, path, depth)
        finally:
            self.active.discard(id(node))

    def mapping(self, node: yaml.MappingNode, path: Path, depth: int) -> dict[str, Any] | None:
        if node.tag != f"{_TAG}map":
            self.error(node.start_mark, f"tag {_show_tag(node.tag)} does not apply to a mapping")
            return None
        if id(node) not in self.merged:
            explicit = sum(1 for k, _ in node.value if k.tag != f"{_TAG}merge")
            try:
                # Resolves `<<` merge keys in place; merged pairs come first.
                self.loader.flatten_mapping(node)
            except yaml.MarkedYAMLError as exc:
                mark = exc.problem_mark or node.start_mark
                self.error(mark, "'<<' merges a mapping (an alias such as *base) or a list of them")
                return None
            self.merged[id(node)] = len(node.value) - explicit
        merged = self.merged[id(node)]
        result: dict[str, Any] = {}
        from_merge: set[str] = set()
        for index, (key_node, value_node) in enumerate(node.value):
            kloc = _loc(self.doc.file, key_node.start_mark)
            key = self.key(key_node)
            if key is None:
                continue
            if index < merged:
                from_merge.add(key)
            elif key in from_merge:
                from_merge.discard(key)  # an explicit key overrides a merged one
                del result[key]
            if key in result and index >= merged:
                first = self.doc.marks[(*path, key)].key
                self.error(
                    kloc,
                    f"duplicate key {key!r} (first defined at line {first.line if first else '?'})",
                )
                continue
            result[key] = self.convert(value_node, (*path, key), kloc, depth + 1)
        return result

    def key(self, node: yaml.Node) -> str | None:
        if not isinstance(node, yaml.ScalarNode):
            kind = "a mapping" if isinstance(node, yaml.MappingNode) else "a list"
            self.error(node.start_mark, f"keys must be strings, not {kind}")
            return None
        ok, key = self.scalar(node)
        if not ok:
            return None  # reported
        if isinstance(key, str):
            return key
        if isinstance(key, int) and not isinstance(key, bool):
            return str(key)
        self.error(node.start_mark, f"keys must be strings, not {_show_scalar(key)}")
        return None

    def sequence(self, node: yaml.SequenceNode, path: Path, depth: int) -> list[Any] | None:
        if node.tag != f"{_TAG}seq":
            self.error(node.start_mark, f"tag {_show_tag(node.tag)} does not apply to a list")
            return None
        return [
            self.convert(item, (*path, i), None, depth + 1) for i, item in enumerate(node.value)
        ]

    def scalar(self, node: yaml.ScalarNode) -> tuple[bool, Any]:
        """(True, value), or (False, None) with the error recorded."""
        kind = _SCALAR_TAGS.get(node.tag)
        if kind is None:
            if node.tag == f"{_TAG}merge":
                self.error(node.start_mark, "'<<' (a merge key) is only allowed as a mapping key")
            else:
                self.error(
                    node.start_mark,
                    f"tag {_show_tag(node.tag)} is not supported: values are strings, "
                    "numbers, true/false, null, lists and mappings",
                )
            return False, None
        try:
            return True, self.loader.construct_object(node, deep=True)
        except (yaml.YAMLError, ValueError, LookupError, AttributeError, TypeError, OverflowError):
            # An explicit tag on text it does not fit (`!!int abc`, `!!bool maybe`), or an
            # integer too long to convert (Python refuses more than 4300 digits).
            text = node.value if len(node.value) <= 40 else node.value[:37] + "..."
            self.error(node.start_mark, f"{text!r} is not {_SCALAR_WORDS[kind]}")
            return False, None


def _show_tag(tag: str) -> str:
    return "!!" + tag.removeprefix(_TAG) if tag.startswith(_TAG) else tag


def _show_scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value)
