"""`reconciler status`: ask a running node for its /status and print it."""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.request

from reconciler.cli.common import EXIT_ERROR, EXIT_OK, parse_addr
from reconciler.cli.status_text import checks_text, git_lines, instances_text, revision_lines


def status_command(args: argparse.Namespace) -> int:
    return show_status(args.addr, args.output)


def show_status(addr: str, fmt: str) -> int:
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
