"""Command line: `reconciler validate|plan ...` (see `reconciler --help`)."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from reconciler import __version__
from reconciler.config.diagnostics import Diagnostic, InvalidConfig
from reconciler.config.load import Loaded, load_file
from reconciler.config.node_checks import missing_program, programs_for_node, vip_subnet_warnings
from reconciler.plan.diff import Step
from reconciler.plan.planner import Plan, plan_revision
from reconciler.plan.render import FORMATS, render

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
            "Show the ordered steps NODE would take going from revision OLD_FILE to FILE. "
            "Warnings about the files are printed to stderr as FILE:LINE:COL: warning: message. "
            "Exit 0 when nothing changes, 1 when something does, 2 on error (invalid input "
            "included: nothing is planned from an invalid file; with --strict, from a file "
            "with warnings)."
        ),
    )
    pl.add_argument("file", metavar="FILE", help="the new desired state")
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
            "Run every VRRP instance of NODE from FILE. SIGTERM or SIGINT: graceful stop "
            "(priority-0 adverts, VIPs released), exit 0. SIGHUP: re-read FILE; an invalid "
            "file changes nothing. Exit 2 when FILE is invalid or the node cannot start."
        ),
    )
    r.add_argument("file", metavar="FILE")
    r.add_argument("--node", required=True, metavar="NODE", help="which node this is")
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
    r.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])

    st = sub.add_parser(
        "status",
        help="show the live state of a running node",
        description="Ask a running node (its --metrics-addr) for its instances' state. "
        "Exit 0 when it answered, 2 when it could not be reached.",
    )
    st.add_argument("--addr", default="127.0.0.1:9650", metavar="HOST:PORT")
    st.add_argument("-o", "--output", choices=("text", "json"), default="text")

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


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "validate":
        return _validate(args.files, quiet=args.quiet, strict=args.strict, node=args.node)
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
    options = RunOptions(
        file=Path(args.file),
        node=args.node,
        state_dir=args.state_dir,
        http_addr=http_addr,
        repeat_filter=args.repeat_filter,
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
    if doc["last_reload_error"]:
        print(f"last reload failed: {doc['last_reload_error']}")
    print(f"{'INSTANCE':<16} {'VRID':>4} {'IFACE':<10} {'STATE':<10} {'PRIO':>9}  MASTER/VIPS")
    for i in doc["instances"]:
        prio = f"{i['effective_priority']}/{i['priority']}"
        who = "self" if i["state"] == "MASTER" else (i["master_address"] or "-")
        print(
            f"{i['name']:<16} {i['vrid']:>4} {i['interface']:<10} {i['state']:<10} {prio:>9}"
            f"  {who}  {' '.join(i['vips'])}"
            + (f"  faults: {', '.join(i['faults'])}" if i["faults"] else "")
            + ("" if i.get("accept_mode", True) else "  (accept: false, VIP traffic dropped)")
        )
    return EXIT_OK


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
        problem = program_problem(use.program)
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


def _plan(
    file: str, old_file: str | None, nodes: list[str] | None, fmt: str, *, strict: bool = False
) -> int:
    new = _load_for_plan(file, strict=strict)
    old = _load_for_plan(old_file) if old_file else None
    if new is None or (old_file and old is None):
        return EXIT_ERROR
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
        return EXIT_ERROR
    plans: list[Plan] = []
    for n in wanted:
        new_cfg = new.cluster.for_node(n) if n in new.cluster.node_names else None
        old_cfg = old.cluster.for_node(n) if old and n in old.cluster.node_names else None
        plans.append(
            plan_revision(n, old_cfg, new_cfg, source=old_file or "(nothing)", target=file)
        )
    sys.stdout.write(render(plans, fmt))
    return EXIT_CHANGES if any(p.has_changes for p in plans) else EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
