"""The git source's node-local settings file and `run --git` options."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from reconciler.cli import main
from reconciler.cli.git_options import git_options
from reconciler.cli.parser import build_parser
from reconciler.cli.status_text import git_lines
from reconciler.config.diagnostics import InvalidConfig
from reconciler.config.source_settings import SourceSettings, load_source_settings
from reconciler.model.revision import Provenance, Refusal, VerifyMode
from reconciler.revision.git_policy import GitOptions, GitSourceStatus


def test_settings_parse_with_paths_relative_to_the_file() -> None:
    s = load_source_settings(
        "verify_commits: range\n"
        "allowed_signers: allowed_signers\n"
        "trusted_keys: /etc/keys.asc\n"
        "allow_non_fast_forward: true\n",
        "/etc/reconciler/source.yaml",
    )
    assert s == SourceSettings(
        VerifyMode.RANGE, Path("/etc/reconciler/allowed_signers"), Path("/etc/keys.asc"), True
    )
    assert str(s.locations["trusted_keys"]) == "/etc/reconciler/source.yaml:3:15"


def test_settings_errors_are_located() -> None:
    with pytest.raises(InvalidConfig) as err:
        load_source_settings(
            "verify_commits: yes\nallowed_signers: 3\nallow_non_fast_forward: 'no'\nverify: head\n",
            "s.yaml",
        )
    assert [str(d) for d in err.value.diagnostics] == [
        "s.yaml:1:17: verify_commits: expected one of off, head, range, got 'yes'",
        "s.yaml:2:18: allowed_signers: expected a file path, got 3",
        "s.yaml:3:25: allow_non_fast_forward: expected true or false, got 'no'",
        "s.yaml:4:1: unknown setting 'verify'; known: verify_commits, allowed_signers, "
        "trusted_keys, allow_non_fast_forward",
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- a\n", "s.yaml:1:1: expected a mapping of settings"),
        ("a: [\n", "s.yaml:1:5: YAML syntax error"),
    ],
)
def test_settings_must_be_a_mapping(text: str, message: str) -> None:
    with pytest.raises(InvalidConfig, match=message):
        load_source_settings(text, "s.yaml")


def parse(*argv: str) -> object:
    return build_parser().parse_args(["run", "--node", "lb1", *argv])


def options(*argv: str) -> GitOptions | None:
    return git_options(parse(*argv))  # type: ignore[arg-type]


def test_git_defaults() -> None:
    assert options("--git", "https://git.example.org/lb.git") == GitOptions(
        url="https://git.example.org/lb.git"
    )


def test_command_line_wins_over_the_settings_file(tmp_path: Path) -> None:
    (tmp_path / "signers").write_text("")
    (tmp_path / "keys.asc").write_text("")
    conf = tmp_path / "source.yaml"
    conf.write_text("verify_commits: range\nallowed_signers: signers\ntrusted_keys: keys.asc\n")
    got = options(
        "--git",
        "/srv/lb.git",
        "--branch",
        "prod",
        "--path",
        "lb/cluster.yaml",
        "--interval",
        "1500ms",
        "--max-backoff",
        "1m",
        "--verify-commits",
        "head",
        "--source-config",
        str(conf),
    )
    assert got == GitOptions(
        url="/srv/lb.git",
        branch="prod",
        path="lb/cluster.yaml",
        interval_s=1.5,
        verify=VerifyMode.HEAD,
        allowed_signers=tmp_path / "signers",
        trusted_keys=tmp_path / "keys.asc",
        max_backoff_s=60.0,
    )


def test_missing_signers_file_is_located_in_the_settings_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    conf = tmp_path / "source.yaml"
    conf.write_text("verify_commits: head\nallowed_signers: nope\n")
    assert options("--git", "/srv/lb.git", "--source-config", str(conf)) is None
    err = capsys.readouterr().err
    assert f"{conf}:2:18: allowed_signers: no such file: {tmp_path / 'nope'}" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--verify-commits", "head"], "run: --verify-commits needs --git"),
        (["--branch", "x"], "run: --branch needs --git"),
        ([], "run: give FILE or --git URL"),
    ],
)
def test_git_only_options_need_git(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert options(*argv) is None
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["cluster.yaml", "--git", "/r"], "give FILE or --git URL, not both"),
        (["--git", "/r", "--verify-commits", "range"], "range needs --allowed-signers or"),
        (["--git", "/r", "--interval", "0s"], "--interval: must be more than 0"),
        (["--git", "/r", "--interval", "soon"], "--interval: not a duration"),
        (["--git", "/r", "--branch=-x"], "--branch: not a branch name"),
        (["--git", "/r", "--path", "../etc/x"], "--path: not a file in the repository"),
        (["--git", "/r", "--trusted-keys", "/nonexistent.asc"], "no such file"),
    ],
)
def test_bad_git_options(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert options(*argv) is None
    assert message in capsys.readouterr().err


def test_run_with_bad_git_options_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--node", "lb1", "--git", "/r", "--interval", "x"]) == 2
    assert "--interval" in capsys.readouterr().err


def test_status_text_of_a_git_source() -> None:
    refusal = Refusal(
        Provenance("git:/r#main:c.yaml", "b" * 40), "unsigned", "commit bbb: unsigned"
    )
    st = GitSourceStatus(
        source="git:/r#main:c.yaml",
        verify="range",
        head="b" * 40,
        accepted="a" * 40,
        last_refusal=refusal,
        last_error="git fetch: fatal: '/r' does not appear to be a git repository",
        consecutive_failures=2,
        fetches_total=9,
        fetch_failures_total=2,
        last_fetch_unix_s=1.0,
        next_poll_delay_s=60.0,
    )
    assert git_lines(dataclasses.asdict(st)) == [
        "git: git:/r#main:c.yaml (verify range): head bbbbbbbbbbbb, accepted aaaaaaaaaaaa",
        "  fetch failing (2 in a row, next try in 60 s): git fetch: fatal: '/r' does not "
        "appear to be a git repository",
        "  refused bbbbbbbbbbbb: unsigned: commit bbb: unsigned",
    ]


def test_an_unknown_setting_does_not_hide_the_ones_after_it() -> None:
    """Every key is judged: an unknown one is reported and the next ones still read."""
    with pytest.raises(InvalidConfig) as err:
        load_source_settings("verify: head\nverify_commits: maybe\n", "s.yaml")
    assert [str(d) for d in err.value.diagnostics] == [
        "s.yaml:1:1: unknown setting 'verify'; known: verify_commits, allowed_signers, "
        "trusted_keys, allow_non_fast_forward",
        "s.yaml:2:17: verify_commits: expected one of off, head, range, got 'maybe'",
    ]
