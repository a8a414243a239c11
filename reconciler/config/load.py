"""The one entry point from a file (or text) to a validated Cluster model."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from reconciler.config.build import build
from reconciler.config.diagnostics import Diagnostic, InvalidConfig, Location
from reconciler.config.schema import validate_schema
from reconciler.config.yamlerrors import position
from reconciler.config.yamlload import Document, load_yaml
from reconciler.model.cluster import Cluster


@dataclass(frozen=True)
class Loaded:
    cluster: Cluster
    document: Document
    # Valid, but likely not what was meant (equal priorities, ...), in file order.
    warnings: tuple[Diagnostic, ...] = ()


def load_text(text: str, file: str) -> Loaded:
    """Parse, schema-check, semantic-check and build; InvalidConfig lists every error."""
    doc = load_yaml(text, file)
    errors = validate_schema(doc)
    if errors:
        raise InvalidConfig(errors)
    cluster, warnings = build(doc)
    return Loaded(cluster, doc, tuple(warnings))


MAX_FILE_BYTES = 16 * 1024 * 1024
"""A desired-state file of 1000 services with 10 real servers each is about 0.5 MB; a path
to /dev/zero or a log file given by mistake is refused instead of read into memory."""


def load_bytes(raw: bytes, file: str) -> Loaded:
    """Like load_text, from the file's bytes exactly as read (a source hands them on with
    their digest: these bytes are the ones validated)."""
    if len(raw) > MAX_FILE_BYTES:
        raise InvalidConfig([Diagnostic(Location(file, 1, 1), "the file is larger than 16 MiB")])
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        # Where the bad byte is, in characters and YAML's lines, like every other error.
        before = raw[: exc.start].decode("utf-8")
        line, col = position(before, len(before))
        raise InvalidConfig([Diagnostic(Location(file, line, col), "not UTF-8 text")]) from exc
    return load_text(text, file)


def load_file(path: str | Path) -> Loaded:
    """Like load_text; OSError when the file cannot be read (a different failure from invalid)."""
    p = Path(path)
    try:
        with p.open("rb") as f:
            raw = f.read(MAX_FILE_BYTES + 1)
    except IsADirectoryError as exc:
        raise OSError(f"{p}: is a directory") from exc
    return load_bytes(raw, str(path))


def validate_file(path: str | Path) -> list[Diagnostic]:
    """Every error in the file ([] when valid). OSError when it cannot be read."""
    try:
        load_file(path)
    except InvalidConfig as exc:
        return exc.diagnostics
    return []
