"""Command line: `reconciler validate|plan ...` (see `reconciler --help`)."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import time
import urllib.request
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reconciler import __version__
from reconciler.config.diagnostics import Diagnostic, InvalidConfig
from reconciler.config.load import Loaded, load_bytes, load_file
from reconciler.config.node_checks import missing_program, programs_for_node, vip_subnet_warnings
from reconciler.config.source_settings import SourceSettings, load_source_settings
from reconciler.health.priority import PRIORITY_MAX_BACKUP, PRIORITY_MIN, PRIORITY_OWNER
from reconciler.model.durations import parse_duration
from reconciler.model.revision import VerifyMode
from reconciler.plan.diff import Step
from reconciler.plan.forecast import forecast
from reconciler.plan.planner import Plan, plan_revision
from reconciler.plan.render import FORMATS, render, render_review
from reconciler.revision.git_policy import (
    DEFAULT_BRANCH,
    DEFAULT_INTERVAL_S,
    DEFAULT_MAX_BACKOFF_S,
    DEFAULT_PATH,
    GitOptions,
)

if TYPE_CHECKING:
    from reconciler.reconcile.loop import PassResult

EXIT_OK = 0
EXIT_INVALID = 1  # validate: the file is invalid; plan: there are changes
EXIT_CHANGES = 1
EXIT_ERROR = 2  # cannot run: missing file, bad arguments, invalid input to plan


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="reconciler",
        description=(
            "Declarative, git-driven high availability for Linux load balancers: one YAML file "
            "describes the cluster's VRRP instances, health checks and IPVS services."
        ),
    )
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

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
    return p


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


_GIT_ONLY = (
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
    errors: list[str] = []
    if args.git is None:
        errors += [
            f"--{name.replace('_', '-')} needs --git"
            for name in _GIT_ONLY
            if getattr(args, name) is not None
        ]
        errors += [] if args.file else ["give FILE or --git URL"]
    elif args.file:
        errors.append("give FILE or --git URL, not both")
    if errors or args.git is None:
        for e in errors:
            print(f"run: {e}", file=sys.stderr)
        return None
    settings = SourceSettings()
    if args.source_config is not None:
        try:
            settings = load_source_settings(args.source_config.read_text(), str(args.source_config))
        except OSError as exc:
            print(f"{args.source_config}: cannot read: {exc.strerror or exc}", file=sys.stderr)
            return None
        except InvalidConfig as exc:
            for d in exc.diagnostics:
                print(d, file=sys.stderr)
            return None

    def where(key: str, flag: str, from_cli: bool) -> str:
        loc = settings.locations.get(key)
        return flag if from_cli or loc is None else f"{loc}: {key}"

    def duration(flag: str, text: str | None, default: float) -> float:
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

    interval_s = duration("--interval", args.interval, DEFAULT_INTERVAL_S)
    max_backoff_s = duration("--max-backoff", args.max_backoff, DEFAULT_MAX_BACKOFF_S)
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


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "validate":
        return _validate(args.files, quiet=args.quiet, strict=args.strict, node=args.node)
    if args.command == "plan" and args.git_range:
        return _plan_git_range(args)
    if args.command == "plan" and not args.file:
        print("plan: give FILE, or --git-range A..B", file=sys.stderr)
        return EXIT_ERROR
    if args.command == "plan" and args.live:
        return _plan_live(args)
    if args.command == "plan":
        return _plan(args.file, args.old, args.node, args.output, strict=args.strict)
    if args.command == "apply":
        return _apply(args)
    if args.command == "run":
        return _run(args)
    if args.command == "status":
        return _status(args.addr, args.output)
    if args.command == "digest":
        return _digest(args)
    if args.command in ("suspend", "resume"):
        return _control(args.command, args.instance, args.state_dir)
    raise AssertionError(args.command)


def _run(args: argparse.Namespace) -> int:
    # Imported here: validate and plan must not pay for the runtime's imports.
    from reconciler.daemon import RunOptions, run_node  # noqa: PLC0415

    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        http_addr = None if args.metrics_addr == "off" else parse_addr(args.metrics_addr)
    except ValueError as exc:
        print(f"--metrics-addr: {exc}", file=sys.stderr)
        return EXIT_ERROR
    wants_git = args.file is None or any(getattr(args, n) is not None for n in ("git", *_GIT_ONLY))
    git = git_options(args) if wants_git else None
    if wants_git and git is None:
        return EXIT_ERROR
    options = RunOptions(
        file=Path(args.file) if args.file else None,
        node=args.node,
        state_dir=args.state_dir,
        http_addr=http_addr,
        repeat_filter=args.repeat_filter,
        watch=args.watch,
        refresh_hook=args.refresh_hook,
        git=git,
    )
    return asyncio.run(run_node(options))


def _live_setup(args: argparse.Namespace) -> tuple[Loaded, str] | None:
    if not args.node or len(args.node if isinstance(args.node, list) else [args.node]) != 1:
        print("give exactly one --node: the node this machine is", file=sys.stderr)
        return None
    node = args.node[0] if isinstance(args.node, list) else args.node
    loaded = _load_for_plan(args.file, strict=getattr(args, "strict", False))
    if loaded is None:
        return None
    if node not in loaded.cluster.node_names:
        names = ", ".join(loaded.cluster.node_names)
        print(f"unknown node {node!r}: {args.file} has {names}", file=sys.stderr)
        return None
    return loaded, node


def _plan_live(args: argparse.Namespace) -> int:
    from reconciler.adapters.ipvs import Ipvs, IpvsError  # noqa: PLC0415
    from reconciler.reconcile.loop import ReconcileLoop  # noqa: PLC0415
    from reconciler.reconcile.ownership import OwnershipStore  # noqa: PLC0415

    setup = _live_setup(args)
    if setup is None:
        return EXIT_ERROR
    loaded, node = setup
    store = OwnershipStore(args.state_dir)
    store.load()

    async def steps() -> list[Step]:
        async with Ipvs() as ipvs:
            loop = ReconcileLoop(lambda: loaded.cluster.for_node(node), store, ipvs=ipvs)
            return loop.plan(await loop.observe())

    try:
        found = asyncio.run(steps())
    except IpvsError as exc:
        print(f"cannot read IPVS: {exc}", file=sys.stderr)
        return EXIT_ERROR
    plan = Plan(node, "live kernel", args.file, tuple(found))
    sys.stdout.write(render([plan], args.output))
    return EXIT_CHANGES if plan.has_changes else EXIT_OK


def _apply(args: argparse.Namespace) -> int:
    from reconciler.adapters.ipvs import Ipvs, IpvsError  # noqa: PLC0415
    from reconciler.adapters.sysctl import apply_sysctls  # noqa: PLC0415
    from reconciler.reconcile.loop import Outcome, ReconcileLoop  # noqa: PLC0415
    from reconciler.reconcile.ownership import OwnershipStore  # noqa: PLC0415

    setup = _live_setup(args)
    if setup is None:
        return EXIT_ERROR
    loaded, node = setup
    store = OwnershipStore(args.state_dir)
    store.load()
    try:
        for key, outcome in apply_sysctls(loaded.cluster.sysctls).items():
            print(f"sysctl {key}: {outcome.value}")
    except OSError as exc:
        print(f"sysctls: {exc}", file=sys.stderr)

    async def once() -> PassResult:
        async with Ipvs() as ipvs:
            loop = ReconcileLoop(
                lambda: loaded.cluster.for_node(node),
                store,
                ipvs=ipvs,
                drain_timeout_s=loaded.cluster.drain_timeout.total_seconds(),
            )
            return await loop.run_once()

    try:
        result = asyncio.run(once())
    except IpvsError as exc:
        print(f"cannot use IPVS: {exc}", file=sys.stderr)
        return EXIT_ERROR
    for r in result.steps:
        what = f"{r.step.action.value} {r.step.kind} {'/'.join(r.step.key)}"
        print(f"{what}: {r.outcome.value if r.outcome else 'FAILED: ' + str(r.error)}")
    for c in result.conflicts:
        print(f"conflict: {c.kind} {'/'.join(c.key)} exists and is not ours; left alone")
    for drained in result.draining:
        print(f"draining: {'/'.join(drained)} (weight 0 until its connections end)")
    print(
        f"{result.outcome.value}: {result.writes} kernel write(s) in "
        f"{result.duration_s * 1000:.0f} ms"
    )
    return 1 if result.outcome is Outcome.ERROR else EXIT_OK


def _control(command: str, instance: str | None, state_dir: Path) -> int:
    from reconciler.adapters.control_socket import (  # noqa: PLC0415
        ControlError,
        send_command,
        socket_path,
    )

    try:
        answer = send_command(socket_path(state_dir), {"command": command, "instance": instance})
    except ControlError as exc:
        print(f"cannot reach a node: {exc}", file=sys.stderr)
        return EXIT_ERROR
    if not answer.get("ok"):
        print(f"{command}: {answer.get('error')}", file=sys.stderr)
        return 1
    parts = (["node"] if answer["suspended"] else []) + answer["suspended_instances"]
    done = {"suspend": "suspended", "resume": "resumed"}[command]
    print(f"{done} {instance or 'node'}; suspended now: {', '.join(parts) or 'nothing'}")
    if answer.get("pending"):
        print(f"waiting revision: {answer['pending'][:12]}")
    return EXIT_OK


def _digest(args: argparse.Namespace) -> int:
    from reconciler.adapters.probes import ProbeError, digest_url  # noqa: PLC0415
    from reconciler.model.checks import TlsOptions  # noqa: PLC0415

    https = args.url.startswith("https://")
    tls = TlsOptions(verify=not args.insecure, ca_file=args.ca_file) if https else None
    try:
        print(asyncio.run(digest_url(args.url, virtualhost=args.virtualhost, tls=tls)))
    except (ProbeError, ValueError, OSError) as exc:
        print(f"cannot digest: {exc}", file=sys.stderr)
        return EXIT_ERROR
    return EXIT_OK


def parse_addr(text: str) -> tuple[str, int]:
    """`HOST:PORT` or `[IPV6]:PORT`."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise ValueError(f"expected HOST:PORT, got {text!r}")
    return host.strip("[]"), int(port)


def _status(addr: str, fmt: str) -> int:
    try:
        host, port = parse_addr(addr)
    except ValueError as exc:
        print(f"--addr: {exc}", file=sys.stderr)
        return EXIT_ERROR
    url = f"http://{'[' + host + ']' if ':' in host else host}:{port}/status"
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            doc = json.load(resp)
    except (OSError, ValueError) as exc:
        print(f"cannot reach a node at {addr}: {exc}", file=sys.stderr)
        return EXIT_ERROR
    if fmt == "json":
        print(json.dumps(doc, indent=2))
        return EXIT_OK
    print(f"node {doc['node']} of cluster {doc['cluster']}, revision {doc['revision']}")
    revisions = doc.get("revisions")
    if doc.get("git"):
        sys.stdout.writelines(line + "\n" for line in git_lines(doc["git"]))
    if revisions:
        sys.stdout.writelines(line + "\n" for line in revision_lines(revisions))
    elif doc["last_reload_error"]:
        print(f"last reload failed: {doc['last_reload_error']}")
    sys.stdout.write(instances_text(doc, time.time()))
    sys.stdout.write(checks_text(doc))
    return EXIT_OK


# The sections of `reconciler status` text, from the /status document (JSON of
# observability.status.NodeStatus): what a node runs and why.


def instances_text(doc: dict[str, Any], now_unix_s: float) -> str:
    """One line per instance, then per instance why its priority is what it is: each
    tracker's term of the sum, adverts refused by reason, the last transition and why."""
    out = [f"{'INSTANCE':<16} {'VRID':>4} {'IFACE':<10} {'STATE':<10} {'PRIO':>9}  MASTER/VIPS"]
    for i in doc["instances"]:
        prio = f"{i['effective_priority']}/{i['priority']}"
        who = "self" if i["state"] == "MASTER" else (i["master_address"] or "-")
        out.append(
            f"{i['name']:<16} {i['vrid']:>4} {i['interface']:<10} {i['state']:<10} {prio:>9}"
            f"  {who}  {' '.join(i['vips'])}"
            + (f"  faults: {', '.join(i['faults'])}" if i["faults"] else "")
            + ("" if i.get("accept_mode", True) else "  (accept: false, VIP traffic dropped)")
        )
    for i in doc["instances"]:
        out += ["", f"instance {i['name']}:", *_instance_detail(i, now_unix_s)]
    return "\n".join(out) + "\n"


def _instance_detail(i: dict[str, Any], now_unix_s: float) -> list[str]:
    trackers = i.get("trackers", [])
    configured, effective = i["priority"], i["effective_priority"]
    if trackers:
        total = sum(t["contribution"] for t in trackers)
        why = f"priority {effective}: configured {configured}, trackers {total:+d}"
        if configured == PRIORITY_OWNER:
            why += " (address owner: trackers never move it)"
        elif not PRIORITY_MIN <= configured + total <= PRIORITY_MAX_BACKUP:
            why += f" = {configured + total}, clamped to {PRIORITY_MIN}..{PRIORITY_MAX_BACKUP}"
        out = [f"  {why}"] + [f"    {_tracker_text(t)}" for t in trackers]
    else:
        out = [f"  priority {effective}: configured {configured}, no trackers"]
    refused = i.get("refused", {})
    out.append(
        "  refused adverts: "
        + (", ".join(f"{reason} {n}" for reason, n in sorted(refused.items())) or "none")
    )
    last = i.get("last_transition")
    if last is None:
        out.append("  last transition: none")
    else:
        at = datetime.fromtimestamp(last["unix_s"], UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        ago = max(0.0, now_unix_s - last["unix_s"])
        out.append(
            f"  last transition: {last['from_state']} -> {last['to_state']} "
            f"({last['reason']}) at {at}, {ago:.0f} s ago"
        )
    return out


def _tracker_text(t: dict[str, Any]) -> str:
    """``check nginx down: -60``; a file check with its value; FAULT when it holds one."""
    state = t["state"] if t["value"] is None else f"{t['state']}, value {t['value']}"
    term = "FAULT" if t["fault"] else (f"{t['contribution']:+d}" if t["contribution"] else "0")
    return f"{t['name']} {state}: {term} (weight {t['weight']})"


def checks_text(doc: dict[str, Any]) -> str:
    """One line per check and target: its state, probe counts and why it last failed."""
    checks = doc.get("checks", [])
    if not checks:
        return ""
    out = ["", f"{'CHECK':<16} {'TARGET':<22} {'STATE':<8} {'PROBES':>7} {'FAILED':>7}  LAST ERROR"]
    for c in checks:
        out.append(
            f"{c['check']:<16} {c['target']:<22} {c['state']:<8} {c['probes']:>7} "
            f"{c['probe_failures']:>7}  {c.get('last_error') or '-'}"
        )
    return "\n".join(out) + "\n"


def _revision_line(label: str, rec: dict[str, Any] | None) -> list[str]:
    if rec is None:
        return [f"  {label:<10} -"]
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(rec["at_unix_s"]))
    out = f"  {label:<10} {rec['digest'][:12]}  at {when}Z"
    if rec["commit"]:
        out += f"  commit {rec['commit'][:12]}"
        if rec["author"]:
            out += f" by {rec['author']}"
        if rec["committed_unix_s"] is not None:
            committed = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(rec["committed_unix_s"]))
            out += f" ({committed}Z)"
    if rec["verification"] != "not-required":
        out += f"  {rec['verification']}"
    if rec.get("error"):
        return [out, f"  {'':<10} failed ({rec['reason']}): {rec['error']}"]
    return [out]


def git_lines(git: dict[str, Any]) -> list[str]:
    """The git source section of `reconciler status`."""
    head = (git["head"] or "-")[:12]
    accepted = (git["accepted"] or "-")[:12]
    lines = [f"git: {git['source']} (verify {git['verify']}): head {head}, accepted {accepted}"]
    if git["last_error"]:
        lines.append(
            f"  fetch failing ({git['consecutive_failures']} in a row, next try in "
            f"{git['next_poll_delay_s']:g} s): {git['last_error']}"
        )
    refusal = git["last_refusal"]
    if refusal:
        lines.append(
            f"  refused {(refusal['provenance']['commit'] or '-')[:12]}: "
            f"{refusal['reason']}: {refusal['detail']}"
        )
    return lines


def revision_lines(rev: dict[str, Any]) -> list[str]:
    """The revision section of `reconciler status`: conditions, then the last applied,
    attempted and verified revisions, suspended parts and refusals."""
    conds = "  ".join(
        f"{c['type']}={'True' if c['status'] else 'False'}"
        + (f" ({c['reason']})" if c["reason"] not in ("NotStalled", "Idle") else "")
        for c in rev["conditions"]
    )
    lines = [f"revisions: {conds}"]
    lines += _revision_line("applied", rev["applied"])
    attempted = rev["attempted"]
    if attempted is not None and (
        rev["applied"] is None
        or attempted["digest"] != rev["applied"]["digest"]
        or attempted["error"]
    ):
        lines += _revision_line("attempted", attempted)
    lines += _revision_line("verified", rev["verified"])
    if rev["pending"]:
        lines.append(f"  {'pending':<10} {rev['pending'][:12]}")
    parts = (["node"] if rev["suspended"] else []) + list(rev["suspended_instances"])
    if parts:
        lines.append(f"  suspended: {', '.join(parts)} (no new revision until resumed)")
    if rev["last_refusal"]:
        lines.append(f"  refused:   {rev['last_refusal']}")
    return lines


def _validate(files: Sequence[str], *, quiet: bool, strict: bool, node: str | None) -> int:
    rc = EXIT_OK
    for f in files:
        try:
            loaded = load_file(f)
        except OSError as exc:
            print(f"{f}: cannot read: {exc.strerror or exc}", file=sys.stderr)
            rc = EXIT_ERROR
            continue
        except InvalidConfig as exc:
            for d in exc.diagnostics:
                print(d)
            n = len(exc.diagnostics)
            print(f"{f}: invalid ({n} error{'s' if n != 1 else ''})", file=sys.stderr)
            rc = max(rc, EXIT_INVALID)
            continue
        warnings = list(loaded.warnings)
        if node is not None:
            if node not in loaded.cluster.node_names:
                names = ", ".join(loaded.cluster.node_names)
                print(f"unknown node {node!r}: {f} has {names}", file=sys.stderr)
                rc = EXIT_ERROR
                continue
            warnings = sorted([*warnings, *_on_this_machine(loaded, node)], key=Diagnostic.sort_key)
        for d in warnings:
            print(d)
        n = len(warnings)
        counted = f" ({n} warning{'s' if n != 1 else ''})" if n else ""
        if strict and warnings:
            print(f"{f}: invalid under --strict{counted}", file=sys.stderr)
            rc = max(rc, EXIT_INVALID)
        elif not quiet:
            print(f"{f}: OK{counted}")
    return rc


def _on_this_machine(loaded: Loaded, node: str) -> list[Diagnostic]:
    """Warnings that need this machine's facts: programs that cannot run here, VIPs outside
    their interface's subnets here (none when the addresses cannot be read)."""
    from reconciler.adapters.machine import interface_addresses, program_problem  # noqa: PLC0415

    out = []
    for use in programs_for_node(loaded, node):
        problem = program_problem(use.program, use.user)
        if problem:
            out.append(missing_program(use, problem))
    addresses = interface_addresses()
    if addresses is not None:
        out += vip_subnet_warnings(loaded, node, addresses)
    return out


def _load_for_plan(path: str, *, strict: bool = False) -> Loaded | None:
    try:
        loaded = load_file(path)
    except OSError as exc:
        print(f"{path}: cannot read: {exc.strerror or exc}", file=sys.stderr)
        return None
    except InvalidConfig as exc:
        for d in exc.diagnostics:
            print(d, file=sys.stderr)
        print(f"{path}: invalid; nothing planned", file=sys.stderr)
        return None
    for d in loaded.warnings:
        print(d, file=sys.stderr)
    if strict and loaded.warnings:
        print(f"{path}: has warnings and --strict is given; nothing planned", file=sys.stderr)
        return None
    return loaded


def _wanted_nodes(old: Loaded | None, new: Loaded, nodes: list[str] | None) -> list[str] | None:
    """The nodes to plan (default: every node in either revision); None after an error."""
    known = list(new.cluster.node_names)
    if old:
        known += [n for n in old.cluster.node_names if n not in known]
    wanted = nodes or known
    unknown = [n for n in wanted if n not in known]
    if unknown:
        print(
            f"unknown node {', '.join(map(repr, unknown))}: the files have {', '.join(known)}",
            file=sys.stderr,
        )
        return None
    return wanted


def _plan(
    file: str, old_file: str | None, nodes: list[str] | None, fmt: str, *, strict: bool = False
) -> int:
    new = _load_for_plan(file, strict=strict)
    old = _load_for_plan(old_file) if old_file else None
    if new is None or (old_file and old is None):
        return EXIT_ERROR
    wanted = _wanted_nodes(old, new, nodes)
    if wanted is None:
        return EXIT_ERROR
    plans = [
        plan_revision(
            n,
            old.cluster if old else None,
            new.cluster,
            source=old_file or "(nothing)",
            target=file,
        )
        for n in wanted
    ]
    sys.stdout.write(render(plans, fmt))
    return EXIT_CHANGES if any(p.has_changes for p in plans) else EXIT_OK


def _load_blob(data: bytes, name: str, *, warn: bool = True) -> Loaded | None:
    """A revision read from git, errors (and, with ``warn``, warnings) located as
    COMMIT:PATH:LINE:COL."""
    try:
        loaded = load_bytes(data, name)
    except InvalidConfig as exc:
        for d in exc.diagnostics:
            print(d, file=sys.stderr)
        print(f"{name}: invalid; nothing planned", file=sys.stderr)
        return None
    if warn:
        for d in loaded.warnings:
            print(d, file=sys.stderr)
    return loaded


def _plan_git_range(args: argparse.Namespace) -> int:
    from reconciler.adapters.git import GitError, read_blob, resolve_commit  # noqa: PLC0415

    if args.file or args.old or args.live:
        print(
            "--git-range reads both revisions from git: no FILE, --from or --live", file=sys.stderr
        )
        return EXIT_ERROR
    start, sep, end = args.git_range.partition("..")
    if not sep or end.startswith("."):
        print(f"--git-range: expected A..B, got {args.git_range!r}", file=sys.stderr)
        return EXIT_ERROR
    path = args.path.removeprefix("./")
    try:
        commits = [resolve_commit(args.repo, rev or "HEAD") for rev in (start, end)]
        blobs = [read_blob(args.repo, c, path) for c in commits]
    except GitError as exc:
        print(f"git: {exc}", file=sys.stderr)
        return EXIT_ERROR
    names = [f"{c[:12]}:{path}" for c in commits]
    if blobs[1] is None:
        print(f"{names[1]}: no such file at {end or 'HEAD'}; nothing planned", file=sys.stderr)
        return EXIT_ERROR
    new = _load_blob(blobs[1], names[1])
    old = _load_blob(blobs[0], names[0], warn=False) if blobs[0] is not None else None
    if new is None or (blobs[0] is not None and old is None):
        return EXIT_ERROR
    wanted = _wanted_nodes(old, new, args.node)
    if wanted is None:
        return EXIT_ERROR
    source = names[0] if old else f"{names[0]} (no such file: from nothing)"
    old_cluster = old.cluster if old else None
    plans = [
        plan_revision(n, old_cluster, new.cluster, source=source, target=names[1]) for n in wanted
    ]
    title = f"`{path}` {start or 'HEAD'} ({commits[0][:12]}) → {end or 'HEAD'} ({commits[1][:12]})"
    if old is None:
        title += f" (no `{path}` at {start or 'HEAD'}: planned from nothing)"
    if args.output != "markdown":
        title = title.replace("`", "")
    sys.stdout.write(
        render_review(plans, forecast(old_cluster, new.cluster, plans), title, args.output)
    )
    return EXIT_CHANGES if any(p.has_changes for p in plans) else EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
