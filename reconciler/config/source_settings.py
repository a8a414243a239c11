"""The node-local settings of a git source (`reconciler run --source-config FILE`).

How a node verifies the commits it fetches must not come from the repository it
verifies: whoever can push could otherwise turn verification off. So these settings live
in a file of the node's own (or on the command line, which wins):

    verify_commits: range          # off | head | range
    allowed_signers: allowed_signers   # ssh signatures; relative to this file
    trusted_keys: /etc/reconciler/trusted-keys.asc   # armored OpenPGP public keys
    allow_non_fast_forward: false

Parsed here without I/O: the text in, `SourceSettings` or `InvalidConfig` with every
error at FILE:LINE:COL out. Whether the named files exist is checked by the caller,
at the locations kept in `SourceSettings.locations`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Any

from reconciler.config.diagnostics import Diagnostic, InvalidConfig, Location
from reconciler.config.yamlload import load_yaml
from reconciler.model.revision import VerifyMode

KEYS = ("verify_commits", "allowed_signers", "trusted_keys", "allow_non_fast_forward")


@dataclass(frozen=True)
class SourceSettings:
    """Verification options of a git source; None: not set here."""

    verify: VerifyMode | None = None
    allowed_signers: Path | None = None
    trusted_keys: Path | None = None
    allow_non_fast_forward: bool | None = None
    # Where each key was set, for errors found later (a file that does not exist).
    locations: dict[str, Location] = field(default_factory=dict, compare=False)


def load_source_settings(text: str, file: str) -> SourceSettings:
    """Parse a settings file; relative paths are taken from the file's directory."""
    doc = load_yaml(text, file)
    errors: list[Diagnostic] = []
    data: Any = doc.data
    if not isinstance(data, dict):
        raise InvalidConfig([Diagnostic(doc.value_at(()), "expected a mapping of settings")])
    base = PurePath(file).parent
    values: dict[str, Any] = {}
    locations: dict[str, Location] = {}
    for key, value in data.items():
        where = doc.value_at((key,))
        if key not in KEYS:
            errors.append(
                Diagnostic(doc.key_at((key,)), f"unknown setting {key!r}; known: {', '.join(KEYS)}")
            )
            continue
        locations[key] = where
        if key == "verify_commits":
            modes = [m.value for m in VerifyMode]
            if value not in modes:
                errors.append(
                    Diagnostic(where, f"verify_commits: expected one of {', '.join(modes)}, "
                               f"got {value!r}")
                )  # fmt: skip
            else:
                values[key] = VerifyMode(value)
        elif key == "allow_non_fast_forward":
            if not isinstance(value, bool):
                errors.append(Diagnostic(where, f"{key}: expected true or false, got {value!r}"))
            else:
                values[key] = value
        elif not isinstance(value, str) or not value.strip():
            errors.append(Diagnostic(where, f"{key}: expected a file path, got {value!r}"))
        else:
            values[key] = Path(base / value)
    if errors:
        raise InvalidConfig(errors)
    return SourceSettings(
        verify=values.get("verify_commits"),
        allowed_signers=values.get("allowed_signers"),
        trusted_keys=values.get("trusted_keys"),
        allow_non_fast_forward=values.get("allow_non_fast_forward"),
        locations=locations,
    )
