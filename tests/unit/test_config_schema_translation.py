"""Schema errors the shipped schema cannot raise today, translated all the same.

`_translate` turns any JSON Schema error into an operator's sentence, not only the ones
cluster.v1's keywords produce: a schema that grows an anyOf, a list of types, a closed
mapping without properties, a bound on items or a check on key names must keep reading
well. Each rule is pinned here on a small schema of its own."""

from __future__ import annotations

from typing import Any

import jsonschema

from reconciler.config.schema import _translate
from reconciler.config.yamlload import load_yaml


def _translated(schema: Any, text: str) -> list[str]:
    doc = load_yaml(text, "s.yaml")
    validator = jsonschema.Draft202012Validator(schema)
    return [str(d) for e in validator.iter_errors(doc.data) for d in _translate(doc, e)]


def test_an_anyof_says_what_its_closest_branch_wants() -> None:
    schema = {"properties": {"a": {"anyOf": [{"type": "integer"}, {"minLength": 3}]}}}
    # jsonschema's own words would be "'ab' is not valid under any of the given schemas".
    assert _translated(schema, "a: ab\n") == ['s.yaml:1:4: a: expected an integer, got "ab"']


def test_a_oneof_of_schemas_says_what_its_closest_branch_wants() -> None:
    schema = {"properties": {"a": {"oneOf": [{"type": "integer"}, {"maxLength": 1}]}}}
    assert _translated(schema, "a: ab\n") == ['s.yaml:1:4: a: expected an integer, got "ab"']


def test_a_oneof_matched_twice_keeps_the_validator_words() -> None:
    # No branch failed, so there is no branch to quote.
    schema = {"properties": {"a": {"oneOf": [{"type": "integer"}, {"type": "number"}]}}}
    assert _translated(schema, "a: 1\n") == [
        "s.yaml:1:4: a: 1 is valid under each of {'type': 'number'}, {'type': 'integer'}"
    ]


def test_a_list_of_types_names_each_one() -> None:
    schema = {"properties": {"a": {"type": ["integer", "string", "null"]}}}
    assert _translated(schema, "a: true\n") == [
        "s.yaml:1:4: a: expected an integer or a string or null, got true"
    ]


def test_a_closed_mapping_without_properties_lists_no_allowed_keys() -> None:
    schema = {"properties": {"a": {"type": "object", "additionalProperties": False}}}
    assert _translated(schema, "a: {x: 1, y: 2}\n") == [
        "s.yaml:1:5: a: unknown key 'x'",
        "s.yaml:1:11: a: unknown key 'y'",
    ]


def test_a_false_schema_keeps_the_validator_words() -> None:
    # A boolean schema has no x-error to read.
    assert _translated(False, "a: 1\n") == [
        "s.yaml:1:1: document: False schema does not allow {'a': 1}"
    ]


def test_upper_bounds_on_items_and_entries() -> None:
    schema = {"properties": {"a": {"maxItems": 1}, "b": {"maxProperties": 1}}}
    assert _translated(schema, "a: [1, 2]\nb: {x: 1, y: 2}\n") == [
        "s.yaml:1:4: a: allows at most 1 item(s)",
        "s.yaml:2:4: b: allows at most 1 entr(y/ies)",
    ]


def test_a_bad_key_name_is_explained_by_the_branch_that_refused_it() -> None:
    # A branch that is a boolean schema has no x-error of its own.
    named = {"pattern": "^a", "x-error": "names start with a"}
    schema = {"propertyNames": {"anyOf": [False, named]}}
    assert _translated(schema, "a1: 1\nb: 2\n") == [
        "s.yaml:2:1: document: bad name 'b': names start with a"
    ]


def test_a_bad_key_name_without_an_x_error_keeps_the_validator_words() -> None:
    assert _translated({"propertyNames": {"pattern": "^a"}}, "a1: 1\nb: 2\n") == [
        "s.yaml:2:1: document: bad name 'b': 'b' does not match '^a'"
    ]
    schema = {"propertyNames": {"anyOf": [{"pattern": "^a"}]}}
    assert _translated(schema, "b: 2\n") == [
        "s.yaml:1:1: document: bad name 'b': 'b' is not valid under any of the given schemas"
    ]


def test_a_list_refused_by_another_keyword_keeps_the_validator_words() -> None:
    # Only uniqueItems reports per item; any other error about a list is said once.
    schema = {"properties": {"a": {"not": {"type": "array"}}}}
    assert _translated(schema, "a: [1]\n") == [
        "s.yaml:1:4: a: [1] should not be valid under {'type': 'array'}"
    ]


def test_mappings_with_the_same_entries_in_another_order_are_duplicate_items() -> None:
    schema = {"properties": {"a": {"uniqueItems": True}}}
    assert _translated(schema, "a: [{x: 1, y: 2}, {y: 2, x: 1}]\n") == [
        "s.yaml:1:19: a: duplicate item a mapping"
    ]
