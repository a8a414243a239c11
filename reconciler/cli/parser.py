"""The argument parser of `reconciler`: one function per subcommand, in `--help` order."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, TypeAlias

from reconciler import __version__
from reconciler.model.revision import VerifyMode
from reconciler.plan.render import FORMATS
from reconciler.revision.git_policy import (
    DEFAULT_BRANCH,
    DEFAULT_INTERVAL_S,
    DEFAULT_MAX_BACKOFF_S,
    DEFAULT_PATH,
)

if TYPE_CHECKING:
    # Generic only in typeshed: subscripting it at runtime fails.
    Subparsers: TypeAlias = argparse._SubParsersAction[argparse.ArgumentParser]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="reconciler",
        description=(
            "Declarative, git-driven high availability for Linux load balancers: one YAML file "
            "describes the cluster's VRRP instances, health checks and IPVS services."
        ),
    )
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add in (
        _add_validate,
        _add_plan,
        _add_apply,
        _add_run,
        _add_status,
        _add_suspend_resume,
        _add_digest,
    ):
        add(sub)
    return p


def _add_validate(sub: Subparsers) -> None:
    v = sub.add_parser(
        "validate",
        help="check desired-state files (schema, semantic and cross-node checks)",
        description=(
            "Validate each FILE against the JSON Schema and the semantic and cross-node rules. "
            "Every error is printed as FILE:LINE:COL: message, every warning (valid, but "
            "likely not what was meant) as FILE:LINE:COL: warning: message. "
            "Exit 0 when all are valid (warnings included), 1 when any is invalid (or has "
            "warnings, with --strict), 2 when a file cannot be read or NODE is not in it."
        ),
    )
    v.add_argument("files", nargs="+", metavar="FILE")
    v.add_argument("-q", "--quiet", action="store_true", help="print errors only, no OK lines")
    v.add_argument("--strict", action="store_true", help="treat warnings as errors (exit 1)")
    v.add_argument(
        "--node",
        metavar="NODE",
        help="validating on node NODE's machine: also warn about hook and check programs "
        "that do not exist or are not executable here, and VIPs outside every subnet of "
        "their interface here",
    )


def _add_plan(sub: Subparsers) -> None:
    pl = sub.add_parser(
        "plan",
        help="show what a node would change between two revisions of the file",
        description=(
            "Show the ordered steps NODE would take going from revision OLD_FILE to FILE, "
            "or, with --git-range A..B, every node's steps between two commits of a git "
            "repository with a summary for review: which VIPs move to which node (every "
            "node up and healthy), which instances restart, which real servers drain, which "
            "services go, and risk labels (vip-move, election, restart, drain, "
            "service-removed); -o markdown prints it as a pull-request comment. "
            "Warnings about the files are printed to stderr as FILE:LINE:COL: warning: message. "
            "Exit 0 when nothing changes, 1 when something does, 2 on error (invalid input "
            "included: nothing is planned from an invalid file; with --strict, from a file "
            "with warnings)."
        ),
    )
    pl.add_argument(
        "file", metavar="FILE", nargs="?", help="the new desired state (not with --git-range)"
    )
    pl.add_argument(
        "--git-range",
        metavar="A..B",
        help="plan from the file at commit A to the file at commit B (any revisions git "
        "knows: origin/main..HEAD); read with git from the repository's objects, never a "
        "work tree. A file missing at A is planned from nothing",
    )
    pl.add_argument(
        "--path",
        default="cluster.yaml",
        metavar="P",
        help="with --git-range: the file's path from the top of the repository "
        "(default %(default)s)",
    )
    pl.add_argument(
        "--repo",
        type=Path,
        default=Path(),
        metavar="DIR",
        help="with --git-range: the git repository (default: the current directory)",
    )
    pl.add_argument(
        "--node",
        action="append",
        metavar="NODE",
        help="node to plan for; repeat for several; default: every node in either revision",
    )
    pl.add_argument(
        "--from",
        dest="old",
        metavar="OLD_FILE",
        help="the revision the node runs now; default: nothing (a fresh node)",
    )
    pl.add_argument(
        "--live",
        action="store_true",
        help="plan against this machine's live IPVS table instead of an old revision "
        "(needs --node and the node's --state-dir; VIPs follow VRRP and are not planned)",
    )
    pl.add_argument(
        "--state-dir",
        type=Path,
        default=Path("/var/lib/reconciler"),
        metavar="DIR",
        help="with --live: where the node records what it created (default %(default)s)",
    )
    pl.add_argument("-o", "--output", choices=FORMATS, default="text", help="output format")
    pl.add_argument(
        "--strict", action="store_true", help="plan nothing from a file with warnings (exit 2)"
    )


def _add_apply(sub: Subparsers) -> None:
    ap = sub.add_parser(
        "apply",
        help="apply a node's IPVS services and sysctls once, and exit",
        description=(
            "Make this machine's IPVS table and director sysctls match NODE's share of FILE, "
            "touching only what this node created (recorded under --state-dir). VIPs follow "
            "VRRP and are left to `reconciler run`. A removed TCP real server is set to weight "
            "0 to drain; run again to delete it once idle. Exit 0 when done, 1 when a step "
            "failed, 2 when FILE is invalid or IPVS is unavailable."
        ),
    )
    ap.add_argument("file", metavar="FILE")
    ap.add_argument("--node", required=True, metavar="NODE")
    ap.add_argument("--once", action="store_true", required=True, help="one pass, then exit")
    ap.add_argument("--state-dir", type=Path, default=Path("/var/lib/reconciler"), metavar="DIR")


def _add_run(sub: Subparsers) -> None:
    r = sub.add_parser(
        "run",
        help="run a node: its VRRP instances, until SIGTERM",
        description=(
            "Run every VRRP instance of NODE from FILE, or from a repository polled with "
            "--git (see 'git source' below). FILE is watched: a new revision "
            "(a rewrite, an editor's rename, git-sync's symlink swap) is applied within a "
            "second, changing only what it changes; an invalid or unreadable revision "
            "changes nothing (`reconciler status` says why). SIGTERM or SIGINT: graceful "
            "stop (priority-0 adverts, VIPs released), exit 0. SIGHUP: look at FILE now. "
            "Exit 2 when FILE is invalid or the node cannot start."
        ),
    )
    r.add_argument(
        "file",
        metavar="FILE",
        nargs="?",
        help="the desired-state file; or --git instead, to poll a repository",
    )
    r.add_argument("--node", required=True, metavar="NODE", help="which node this is")
    _git_arguments(r)
    r.add_argument(
        "--state-dir",
        type=Path,
        default=Path("/var/lib/reconciler"),
        metavar="DIR",
        help="where the record of what this node created is kept (default %(default)s)",
    )
    r.add_argument(
        "--metrics-addr",
        default="127.0.0.1:9650",
        metavar="HOST:PORT",
        help="serve /metrics (Prometheus) and /status (JSON) here; 'off' for none "
        "(default %(default)s)",
    )
    r.add_argument(
        "--no-repeat-filter",
        dest="repeat_filter",
        action="store_false",
        help="read every advert in user space; by default the kernel drops a master's "
        "repeated adverts for a backup (eBPF socket filter, needs CAP_BPF) and the "
        "backup reads when the last one came",
    )
    r.add_argument(
        "--no-watch",
        dest="watch",
        action="store_false",
        help="do not watch FILE; it is still re-read on SIGHUP and every 10 s",
    )
    r.add_argument(
        "--refresh-hook",
        action="store_true",
        help="accept POST /hooks/refresh on --metrics-addr as 'look at FILE (or fetch) now' (for a "
        "webhook after a merge); off by default",
    )
    r.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])


def _add_status(sub: Subparsers) -> None:
    st = sub.add_parser(
        "status",
        help="show the live state of a running node",
        description="Ask a running node (its --metrics-addr) for its state. The text shows "
        "each VRRP instance (state, effective/configured priority, master, VIPs), then why: "
        "what each tracker adds to the priority ('check nginx down: -60'), adverts refused "
        "by reason and the last transition with its reason; then each health check's state "
        "and the error of its last failed probe. -o json gives everything /status has. "
        "Exit 0 when it answered, 2 when it could not be reached.",
    )
    st.add_argument("--addr", default="127.0.0.1:9650", metavar="HOST:PORT")
    st.add_argument("-o", "--output", choices=("text", "json"), default="text")


def _add_suspend_resume(sub: Subparsers) -> None:
    for name, what in (
        ("suspend", "take no new revision: the node (or one instance) keeps running as it is"),
        ("resume", "take new revisions again: the newest one waiting is applied now"),
    ):
        sp = sub.add_parser(
            name,
            help=what,
            description=(
                f"{what[0].upper()}{what[1:]}. Sent to the running node over its control "
                "socket (STATE_DIR/control/control.sock, root only; never over HTTP). "
                "`reconciler status` shows what is suspended. Exit 0 done, 1 refused "
                "(an unknown instance), 2 no node answered."
            ),
        )
        sp.add_argument(
            "--instance", metavar="NAME", help="only this VRRP instance (default: the node)"
        )
        sp.add_argument(
            "--state-dir",
            type=Path,
            default=Path("/var/lib/reconciler"),
            metavar="DIR",
            help="the running node's --state-dir (default %(default)s)",
        )


def _add_digest(sub: Subparsers) -> None:
    dg = sub.add_parser(
        "digest",
        help="print the body digest of a URL, to paste into an http check",
        description="Fetch URL and print the MD5 of its body as keepalived's genhash does "
        "(the value for `digest:` in an http check). Exit 0, or 2 when it cannot be fetched.",
    )
    dg.add_argument("url", metavar="URL")
    dg.add_argument("--virtualhost", help="Host header to send")
    dg.add_argument("--insecure", action="store_true", help="do not verify the TLS certificate")
    dg.add_argument("--ca-file", help="CA bundle to verify the TLS certificate")


def _git_arguments(r: argparse.ArgumentParser) -> None:
    g = r.add_argument_group(
        "git source",
        "Poll a repository instead of reading FILE: the branch is fetched into the state "
        "directory with the git command-line tool and the file read by object at the "
        "fetched commit. A failed fetch changes nothing and is retried, waiting twice as "
        "long each time up to --max-backoff. SIGHUP (and POST /hooks/refresh when "
        "enabled) fetches now. Only fast-forwards are applied unless "
        "--allow-non-fast-forward. The verification options can also be set in a "
        "node-local --source-config file (the command line wins); never in the "
        "repository itself.",
    )
    g.add_argument("--git", metavar="URL", help="repository to poll (https://, ssh://, a path)")
    g.add_argument("--branch", metavar="B", help=f"branch to follow (default {DEFAULT_BRANCH})")
    g.add_argument(
        "--path", metavar="P", help=f"desired-state file in the repository (default {DEFAULT_PATH})"
    )
    g.add_argument(
        "--interval",
        metavar="D",
        help=f"time between polls, e.g. 30s, 1m (default {DEFAULT_INTERVAL_S:g}s)",
    )
    g.add_argument(
        "--max-backoff",
        metavar="D",
        help=f"longest wait between failed fetches (default {DEFAULT_MAX_BACKOFF_S:g}s)",
    )
    g.add_argument(
        "--verify-commits",
        choices=[m.value for m in VerifyMode],
        help="off: no signature check; head: the fetched head must be signed by an allowed "
        "signer; range: every commit since the last applied one must be (default off)",
    )
    g.add_argument(
        "--allowed-signers",
        type=Path,
        metavar="FILE",
        help="ssh signatures: an allowed-signers file (ssh-keygen(1) ALLOWED SIGNERS)",
    )
    g.add_argument(
        "--trusted-keys",
        type=Path,
        metavar="FILE",
        help="OpenPGP signatures: the trusted public keys, ASCII-armored",
    )
    g.add_argument(
        "--allow-non-fast-forward",
        action="store_true",
        default=None,
        help="apply a head that does not descend from the applied commit (a force-push "
        "or rollback); refused by default",
    )
    g.add_argument(
        "--source-config",
        type=Path,
        metavar="FILE",
        help="node-local YAML file with verify_commits, allowed_signers, trusted_keys, "
        "allow_non_fast_forward (paths relative to the file)",
    )
