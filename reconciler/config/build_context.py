"""What every part of the build shares: the document, and the errors and warnings it
collects, each located at the key or value it is about.

The build reads a document that passed the JSON Schema, so a read here never fails on
a type; what can still be wrong is reported with `error` (the document is refused) or
`warning` (valid, but likely not what was meant), and the build goes on so that one
run lists every mistake.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from reconciler.config.diagnostics import Diagnostic, Severity, did_you_mean
from reconciler.config.yamlload import Document, Path, dotted
from reconciler.model.common import IPAddress
from reconciler.model.durations import parse_duration


@dataclass(frozen=True)
class Setting:
    value: Any
    path: Path | None  # None: built-in default


class Context:
    def __init__(self, doc: Document) -> None:
        self.doc = doc
        self.data: dict[str, Any] = doc.data
        self.errors: list[Diagnostic] = []
        self.warnings: list[Diagnostic] = []
        self.node_names: list[str] = list(self.data["nodes"])
        self.check_names: list[str] = list(self.data.get("checks", {}))

    def error(self, path: Path, message: str, *, at_key: bool = False) -> None:
        loc = self.doc.key_at(path) if at_key else self.doc.value_at(path)
        self.errors.append(Diagnostic(loc, message))

    def warning(self, path: Path, message: str, *, at_key: bool = False) -> None:
        loc = self.doc.key_at(path) if at_key else self.doc.value_at(path)
        diagnostic = Diagnostic(loc, message, Severity.WARNING)
        if diagnostic not in self.warnings:  # a default block is read once per instance
            self.warnings.append(diagnostic)

    def user(self, path: Path, default: str, role: str) -> str:
        """The `user` at `path` (default `default`); root is allowed, with a warning."""
        if not self.has(path):
            return default
        user = str(self.doc.get(path))
        if user == "root":
            self.warning(
                path,
                f"{dotted(path)}: {role} run as root: a mistake or a compromised program "
                "owns the node; prefer an unprivileged user (the default is nobody)",
            )
        return user

    def duration(self, path: Path) -> timedelta:
        try:
            return parse_duration(self.doc.get(path))
        except ValueError as exc:
            self.error(path, f"{dotted(path)}: {exc}")
            return timedelta(0)

    def duration_or(self, path: Path, default: timedelta) -> timedelta:
        return self.duration(path) if self.has(path) else default

    def has(self, path: Path) -> bool:
        try:
            self.doc.get(path)
        except (KeyError, IndexError, TypeError):
            return False
        return True

    def unknown_nodes(self, path: Path, names: list[str], *, keys: bool) -> None:
        for i, name in enumerate(names):
            if name not in self.node_names:
                where = (*path, name) if keys else (*path, i)
                self.error(
                    where,
                    f"{dotted(path)}: unknown node {name!r} "
                    f"({known(name, self.node_names, 'nodes')})",
                    at_key=keys,
                )


def known(name: str, names: Iterable[str], what: str) -> str:
    """`did you mean 'x'? checks: x, y`: the closest name first, then every name there is."""
    names = list(names)
    listed = f"{what}: {', '.join(names) or 'none defined'}"
    guess = did_you_mean(name, names)
    return f"did you mean {guess!r}? {listed}" if guess else listed


def ip(value: str | None) -> IPAddress | None:
    return ipaddress.ip_address(value) if value else None
