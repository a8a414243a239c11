"""The JSON Schema itself: valid draft 2020-12, every property described, closed objects."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import jsonschema

from reconciler.config.schema import load_schema


def _walk(node: Any, path: str = "#") -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(node, dict):
        yield path, node
        for k, v in node.items():
            yield from _walk(v, f"{path}/{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _walk(v, f"{path}/{i}")


def test_schema_is_valid_draft_2020_12() -> None:
    schema = load_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)


def test_every_property_has_a_description() -> None:
    schema = load_schema()
    missing = []
    for path, node in _walk(schema):
        for name, prop in node.get("properties", {}).items():
            sub = prop
            if not isinstance(sub, dict):
                continue
            while "description" not in sub and "$ref" in sub:
                ref: Any = schema
                for part in sub["$ref"].removeprefix("#/").split("/"):
                    ref = ref[part]
                sub = ref
            if "description" not in sub:
                missing.append(f"{path}/properties/{name}")
    assert missing == []


def test_objects_are_closed() -> None:
    """Unknown keys are errors: every object schema with properties forbids others."""
    open_objects = [
        path
        for path, node in _walk(load_schema())
        if "properties" in node and node.get("additionalProperties") is not False
    ]
    assert open_objects == []


def test_scheduler_and_forwarding_cover_ipvs() -> None:
    defs = load_schema()["$defs"]
    assert set(defs["virtualService"]["properties"]["scheduler"]["enum"]) == {
        "rr",
        "wrr",
        "lc",
        "wlc",
        "lblc",
        "lblcr",
        "dh",
        "sh",
        "sed",
        "nq",
        "mh",
        "fo",
        "ovf",
    }
    assert set(defs["forwarding"]["enum"]) == {"nat", "dr", "tunnel"}
