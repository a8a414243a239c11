"""`reconciler suspend|resume`: sent to the running node over its control socket."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from reconciler.cli.common import EXIT_ERROR, EXIT_OK


def control_command(args: argparse.Namespace) -> int:
    return send_control(args.command, args.instance, args.state_dir)


def send_control(command: str, instance: str | None, state_dir: Path) -> int:
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
