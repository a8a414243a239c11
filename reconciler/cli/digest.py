"""`reconciler digest`: the body digest of a URL, for an http check's `digest:`."""

from __future__ import annotations

import argparse
import asyncio
import sys

from reconciler.cli.common import EXIT_ERROR, EXIT_OK


def digest_command(args: argparse.Namespace) -> int:
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
