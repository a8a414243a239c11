"""`main` hands each subcommand to its handler, and fails loudly on one it has none for."""

from __future__ import annotations

import argparse

import pytest

from reconciler.cli import COMMANDS, main
from reconciler.cli.parser import build_parser


def _subcommands(parser: argparse.ArgumentParser) -> set[str]:
    (sub,) = (a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return set(sub.choices)


def test_every_subcommand_has_a_handler_and_every_handler_a_subcommand() -> None:
    assert _subcommands(build_parser()) == set(COMMANDS)


def test_a_subcommand_without_a_handler_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(COMMANDS, "digest")
    with pytest.raises(LookupError, match="no handler for subcommand 'digest'"):
        main(["digest", "http://192.0.2.1/"])
