"""`run --git`: the git source's options from the command line and --source-config."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from reconciler.config.diagnostics import InvalidConfig
from reconciler.config.source_settings import SourceSettings, load_source_settings
from reconciler.model.durations import parse_duration
from reconciler.model.revision import VerifyMode
from reconciler.revision.git_policy import (
    DEFAULT_BRANCH,
    DEFAULT_INTERVAL_S,
    DEFAULT_MAX_BACKOFF_S,
    DEFAULT_PATH,
    GitOptions,
)

# The `run` options that mean something only with --git (their argparse dests).
GIT_ONLY = (
    "branch",
    "path",
    "interval",
    "max_backoff",
    "verify_commits",
    "allowed_signers",
    "trusted_keys",
    "allow_non_fast_forward",
    "source_config",
)


def git_options(args: argparse.Namespace) -> GitOptions | None:
    """The git source's options from `run`'s arguments and --source-config; None with
    the errors printed (FILE:LINE:COL for those of the settings file)."""
    usage = _usage_errors(args)
    if usage or args.git is None:
        for e in usage:
            print(f"run: {e}", file=sys.stderr)
        return None
    settings = _source_settings(args.source_config)
    if settings is None:
        return None
    errors: list[str] = []
    interval_s = _duration(errors, "--interval", args.interval, DEFAULT_INTERVAL_S)
    max_backoff_s = _duration(errors, "--max-backoff", args.max_backoff, DEFAULT_MAX_BACKOFF_S)
    branch = args.branch or DEFAULT_BRANCH
    if (
        branch.startswith("-")
        or any(c.isspace() or c in "~^:?*[\\" for c in branch)
        or (".." in branch)
    ):
        errors.append(f"--branch: not a branch name: {branch!r}")
    path = args.path or DEFAULT_PATH
    if not path.strip("/") or ".." in Path(path).parts:
        errors.append(f"--path: not a file in the repository: {path!r}")
    verify, signers, keys = _verification(args, settings, errors)
    allow_nff = args.allow_non_fast_forward
    if allow_nff is None:
        allow_nff = bool(settings.allow_non_fast_forward)
    if errors:
        for e in errors:
            print(f"run: {e}" if e.startswith("-") else e, file=sys.stderr)
        return None
    return GitOptions(
        url=args.git,
        branch=branch,
        path=path,
        interval_s=interval_s,
        verify=verify,
        allowed_signers=signers,
        trusted_keys=keys,
        allow_non_fast_forward=allow_nff,
        max_backoff_s=max_backoff_s,
    )


def _usage_errors(args: argparse.Namespace) -> list[str]:
    """FILE or --git, exactly one; the git-only options only with --git."""
    if args.git is None:
        return [
            f"--{name.replace('_', '-')} needs --git"
            for name in GIT_ONLY
            if getattr(args, name) is not None
        ] + ([] if args.file else ["give FILE or --git URL"])
    return ["give FILE or --git URL, not both"] if args.file else []


def _source_settings(path: Path | None) -> SourceSettings | None:
    """The node-local --source-config file (empty settings without one); None with the
    errors printed."""
    if path is None:
        return SourceSettings()
    try:
        return load_source_settings(path.read_text(), str(path))
    except OSError as exc:
        print(f"{path}: cannot read: {exc.strerror or exc}", file=sys.stderr)
    except InvalidConfig as exc:
        for d in exc.diagnostics:
            print(d, file=sys.stderr)
    return None


def _duration(errors: list[str], flag: str, text: str | None, default: float) -> float:
    """Seconds of a duration option, more than 0; ``default`` when not given or invalid
    (the error appended to ``errors``)."""
    if text is None:
        return default
    try:
        seconds = parse_duration(text).total_seconds()
    except ValueError as exc:
        errors.append(f"{flag}: {exc}")
        return default
    if seconds <= 0:
        errors.append(f"{flag}: must be more than 0")
    return seconds


def _verification(
    args: argparse.Namespace, settings: SourceSettings, errors: list[str]
) -> tuple[VerifyMode, Path | None, Path | None]:
    """The signature check and who may sign: the command line over the settings file;
    an error names the flag, or the settings file's FILE:LINE:COL when it came from there."""

    def where(key: str, flag: str, from_cli: bool) -> str:
        loc = settings.locations.get(key)
        return flag if from_cli or loc is None else f"{loc}: {key}"

    verify = VerifyMode(args.verify_commits) if args.verify_commits else settings.verify
    verify = verify or VerifyMode.OFF
    signers = args.allowed_signers or settings.allowed_signers
    keys = args.trusted_keys or settings.trusted_keys
    for key, flag, value, cli in (
        ("allowed_signers", "--allowed-signers", signers, args.allowed_signers is not None),
        ("trusted_keys", "--trusted-keys", keys, args.trusted_keys is not None),
    ):
        if value is not None and not value.is_file():
            errors.append(f"{where(key, flag, cli)}: no such file: {value}")
    if verify is not VerifyMode.OFF and signers is None and keys is None:
        errors.append(
            f"{where('verify_commits', '--verify-commits', args.verify_commits is not None)}: "
            f"{verify.value} needs --allowed-signers or --trusted-keys (who may sign)"
        )
    return verify, signers, keys
