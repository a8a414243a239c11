"""The build's shared rules (build_context.py), each pinned at its location: a duration
the schema lets through but the model cannot hold, and a warning about a default block
that every instance inherits, said once."""

from __future__ import annotations

from helpers import TWO_NODES_HEAD as HEAD
from helpers import located_errors as _errors

from reconciler.config.load import load_text


def _warnings(body: str) -> list[str]:
    loaded = load_text(HEAD + body, "t.yaml")
    return [f"{d.location.line}:{d.location.column}: {d.message}" for d in loaded.warnings]


def test_a_duration_finer_than_a_microsecond_is_an_error_at_the_value() -> None:
    # The schema's pattern allows any decimals; timedelta holds microseconds. The
    # duration then counts as 0, which an interval may not be.
    assert _errors(
        "checks:\n  c: {interval: 1.0000001s, retry_delay: 0.0000001s, file: {path: /x}}\n"
    ) == [
        "8:17: checks.c.interval: '1.0000001s' is finer than a microsecond",
        "8:17: checks.c.interval: must be greater than 0",
        "8:42: checks.c.retry_delay: '0.0000001s' is finer than a microsecond",
    ]
    assert _errors("checks:\n  c: {interval: 1.000001s, file: {path: /x}}\n") == []


def test_a_warning_about_vrrp_defaults_is_given_once_for_all_instances() -> None:
    body = (
        "vrrp:\n  defaults:\n    priority: {a: 2, b: 1}\n"
        "    notify: {user: root, master: [[/x]]}\n"
        "  instances:\n"
        "    v: {vrid: 1, vips: [192.0.2.1/24]}\n"
        "    w: {vrid: 2, vips: [192.0.2.2/24]}\n"
    )
    assert _warnings(body) == [
        "10:20: vrrp.defaults.notify.user: these hooks are run as root: a mistake or a "
        "compromised program owns the node; prefer an unprivileged user (the default is nobody)"
    ]
