"""JSON Schema validation of the desired-state document, with located, readable errors."""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterable, Iterator
from functools import cache
from importlib import resources
from typing import Any

import jsonschema
from jsonschema.exceptions import ValidationError

from reconciler.config.diagnostics import Diagnostic, did_you_mean
from reconciler.config.yamlload import Document, Path, dotted

SCHEMA_FILE = "cluster.v1.schema.json"

format_checker = jsonschema.FormatChecker(formats=())


@format_checker.checks("ipv4", raises=ValueError)
def _is_ipv4(value: object) -> bool:
    return not isinstance(value, str) or bool(ipaddress.IPv4Address(value))


@format_checker.checks("ipv6", raises=ValueError)
def _is_ipv6(value: object) -> bool:
    return not isinstance(value, str) or bool(ipaddress.IPv6Address(value))


@format_checker.checks("ip-address", raises=ValueError)
def _is_ip(value: object) -> bool:
    return not isinstance(value, str) or bool(ipaddress.ip_address(value))


@format_checker.checks("ip-interface", raises=ValueError)
def _is_ip_interface(value: object) -> bool:
    if isinstance(value, str):
        ipaddress.ip_interface(value)
    return True


_FORMAT_NAMES = {
    "ipv4": "an IPv4 address",
    "ipv6": "an IPv6 address",
    "ip-address": "an IP address",
    "ip-interface": "an IP address with an optional /prefix",
}


@cache
def load_schema() -> dict[str, Any]:
    text = resources.files("reconciler").joinpath("schemas", SCHEMA_FILE).read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def _is_integer(_checker: object, instance: object) -> bool:
    # JSON Schema counts 51.0 as an integer; a VRID, port or priority written `51.0` is a
    # mistake here, and the model's integer fields would carry a float into the kernel.
    return isinstance(instance, int) and not isinstance(instance, bool)


@cache
def _validator() -> jsonschema.protocols.Validator:
    schema = load_schema()
    base = jsonschema.validators.validator_for(schema)
    base.check_schema(schema)
    cls = jsonschema.validators.extend(  # type: ignore[no-untyped-call]
        base, type_checker=base.TYPE_CHECKER.redefine("integer", _is_integer)
    )
    validator: jsonschema.protocols.Validator = cls(schema, format_checker=format_checker)
    return validator


def validate_schema(doc: Document) -> list[Diagnostic]:
    """Every schema error in `doc`, each at the key or value it is about."""
    out: list[Diagnostic] = []
    for error in _validator().iter_errors(doc.data):
        out.extend(_translate(doc, error))
    # One error per location and message, in file order.
    unique = {(str(d.location), d.message): d for d in out}
    return sorted(unique.values(), key=Diagnostic.sort_key)


def _show(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    shown = json.dumps(value)
    # A pasted blob or a 4000-digit number is recognised by its start.
    return shown if len(shown) <= 80 else f"{shown[:60]}... ({len(shown)} characters)"


_TYPE_NAMES = {
    "object": "a mapping",
    "array": "a list",
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "null": "null",
}


def _allowed_keys(schema: dict[str, Any]) -> list[str]:
    return sorted(schema.get("properties", {}))


def _translate(doc: Document, error: ValidationError) -> Iterator[Diagnostic]:
    path: Path = tuple(error.absolute_path)
    where = dotted(path)
    v = str(error.validator)
    vv: Any = error.validator_value
    schema = error.schema if isinstance(error.schema, dict) else {}
    custom = schema.get("x-error")
    inst = error.instance

    if "propertyNames" in error.absolute_schema_path and isinstance(inst, str):
        # jsonschema reports a bad key at the mapping's path with the key as instance.
        msg = custom or _custom_from_context(error) or error.message
        yield Diagnostic(doc.key_at((*path, inst)), f"{where}: bad name {inst!r}: {msg}")
        return
    if v == "additionalProperties" and isinstance(inst, dict):
        allowed = _allowed_keys(schema)
        for key in inst:
            if key not in allowed:
                guess = did_you_mean(key, allowed)
                if guess:
                    hint = f" (did you mean {guess!r}?)"
                else:
                    hint = f" (allowed here: {', '.join(allowed)})" if allowed else ""
                yield Diagnostic(doc.key_at((*path, key)), f"{where}: unknown key {key!r}{hint}")
        return
    if v == "required":
        missing = [k for k in vv if isinstance(inst, dict) and k not in inst]
        for key in missing:
            yield Diagnostic(doc.key_at(path), f"{where}: missing required key {key!r}")
        return
    if v == "oneOf" and _is_required_choice(vv):
        choices = [next(iter(s["required"])) for s in vv]
        present = [c for c in choices if isinstance(inst, dict) and c in inst]
        if present:
            msg = f"{where}: give only one of {', '.join(choices)} (found {', '.join(present)})"
            last = max(present, key=lambda k: doc.key_at((*path, k)))
            yield Diagnostic(doc.key_at((*path, last)), msg)
        else:
            yield Diagnostic(doc.key_at(path), f"{where}: needs one of {', '.join(choices)}")
        return
    # Only anyOf and oneOf report their branches' errors as context (allOf and if/then/else
    # report the failing sub-schema's own error): the branch that fits best says it.
    if v in ("anyOf", "oneOf") and error.context:
        best = jsonschema.exceptions.best_match(error.context)
        if best is not None:
            yield from _translate(doc, best)
            return
    if v == "type":
        # The schema is checked against its metaschema: a type is one of the seven.
        names = [_TYPE_NAMES[t] for t in (vv if isinstance(vv, list) else [vv])]
        msg = (
            f"{_show(inst)}: {custom}"
            if custom
            else f"expected {' or '.join(names)}, got {_show(inst)}"
        )
        yield Diagnostic(doc.value_at(path), f"{where}: {msg}")
        return
    if v == "enum":
        options = ", ".join(str(o) for o in vv)
        yield Diagnostic(doc.value_at(path), f"{where}: {_show(inst)} is not one of: {options}")
        return
    if v == "const":
        msg = custom or f"must be {json.dumps(vv)}, got {_show(inst)}"
        yield Diagnostic(doc.value_at(path), f"{where}: {msg}")
        return
    if v in ("minimum", "maximum"):
        word = "at least" if v == "minimum" else "at most"
        msg = f"{_show(inst)} is out of range: must be {word} {vv}"
        yield Diagnostic(doc.value_at(path), f"{where}: {msg}")
        return
    if v == "pattern":
        msg = custom or f"{_show(inst)} does not match {vv}"
        if custom:
            msg = f"{_show(inst)}: {custom}"
        yield Diagnostic(doc.value_at(path), f"{where}: {msg}")
        return
    if v == "format":
        kind = _FORMAT_NAMES[vv]  # format_checker checks only these formats
        yield Diagnostic(doc.value_at(path), f"{where}: {_show(inst)} is not {kind}")
        return
    if v in ("minItems", "maxItems", "minProperties", "maxProperties", "minLength", "maxLength"):
        what = {
            "minItems": "needs at least {} item(s)",
            "maxItems": "allows at most {} item(s)",
            "minProperties": "needs at least {} entr(y/ies)",
            "maxProperties": "allows at most {} entr(y/ies)",
            "minLength": "must be at least {} character(s) long",
            "maxLength": "must be at most {} character(s) long",
        }[str(v)].format(vv)
        yield Diagnostic(doc.value_at(path), f"{where}: {what}")
        return
    if v == "uniqueItems" and isinstance(inst, list):
        seen: set[str] = set()
        for i, item in enumerate(inst):
            k = json.dumps(item, sort_keys=True)
            if k in seen:
                yield Diagnostic(doc.value_at((*path, i)), f"{where}: duplicate item {_show(item)}")
            seen.add(k)
        return
    yield Diagnostic(doc.value_at(path), f"{where}: {custom or error.message}")


def _custom_from_context(error: ValidationError) -> str | None:
    for sub in error.context or ():
        s = sub.schema if isinstance(sub.schema, dict) else {}
        if "x-error" in s:
            return str(s["x-error"])
    return None


def _is_required_choice(branches: Iterable[Any]) -> bool:
    return all(
        isinstance(b, dict) and set(b) == {"required"} and len(b["required"]) == 1 for b in branches
    )
