"""Load YAML keeping the line and column of every key and value.

The loader resolves plain scalars the YAML 1.2 way: only `true`/`false` are
booleans (not `yes`, `no`, `on`, `off`), `010` is not octal, `1:30` is not a
base-60 number and dates stay strings. Operators write VRIDs, ports and
interface names; YAML 1.1's guesses turn those into the wrong types silently.
Duplicate keys are errors instead of "last one wins".
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import yaml

from reconciler.config.diagnostics import Diagnostic, InvalidConfig, Location

Path = tuple[str | int, ...]


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


def _loc(file: str, mark: yaml.Mark) -> Location:
    return Location(file, mark.line + 1, mark.column + 1)


def load_yaml(text: str, file: str) -> Document:
    """Parse one YAML document; raise InvalidConfig with located errors."""
    loader = _Loader(text)
    try:
        try:
            node = loader.get_single_node()
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            where = _loc(file, mark) if mark else Location(file, 1, 1)
            problem = exc.problem or exc.context or "invalid YAML"
            raise InvalidConfig([Diagnostic(where, f"YAML syntax error: {problem}")]) from exc
        except yaml.YAMLError as exc:
            raise InvalidConfig([Diagnostic(Location(file, 1, 1), f"YAML error: {exc}")]) from exc
        doc = Document(file, None)
        if node is None:
            raise InvalidConfig([Diagnostic(Location(file, 1, 1), "the file is empty")])
        errors: list[Diagnostic] = []
        doc.data = _convert(loader, node, (), None, doc, errors)
        if errors:
            raise InvalidConfig(errors)
        return doc
    finally:
        loader.dispose()


def _convert(
    loader: _Loader,
    node: yaml.Node,
    path: Path,
    key_loc: Location | None,
    doc: Document,
    errors: list[Diagnostic],
) -> Any:
    doc.marks[path] = Marks(key_loc, _loc(doc.file, node.start_mark))
    if isinstance(node, yaml.MappingNode):
        explicit = sum(1 for k, _ in node.value if k.tag != "tag:yaml.org,2002:merge")
        loader.flatten_mapping(node)  # resolves `<<` merge keys; merged pairs come first
        merged = len(node.value) - explicit
        result: dict[Any, Any] = {}
        from_merge: set[str] = set()
        for index, (key_node, value_node) in enumerate(node.value):
            try:
                key = loader.construct_object(key_node, deep=True)
            except yaml.YAMLError as exc:
                errors.append(Diagnostic(_loc(doc.file, key_node.start_mark), f"bad key: {exc}"))
                continue
            kloc = _loc(doc.file, key_node.start_mark)
            if not isinstance(key, (str, int, bool)) or isinstance(key, bool):
                errors.append(Diagnostic(kloc, f"keys must be strings, not {key!r}"))
                continue
            key = str(key)
            if index < merged:
                from_merge.add(key)
            elif key in from_merge:
                from_merge.discard(key)  # an explicit key overrides a merged one
                del result[key]
            if key in result and index >= merged:
                first = doc.marks[(*path, key)].key
                errors.append(
                    Diagnostic(
                        kloc,
                        f"duplicate key {key!r} "
                        f"(first defined at line {first.line if first else '?'})",
                    )
                )
                continue
            result[key] = _convert(loader, value_node, (*path, key), kloc, doc, errors)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [
            _convert(loader, item, (*path, i), None, doc, errors)
            for i, item in enumerate(node.value)
        ]
    try:
        return loader.construct_object(node, deep=True)
    except yaml.YAMLError as exc:
        errors.append(Diagnostic(_loc(doc.file, node.start_mark), f"bad value: {exc}"))
        return None
