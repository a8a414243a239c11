"""The wording of probe failures: one style for every probe's ``detail``."""

from __future__ import annotations

import os
import socket
import ssl
from datetime import timedelta


def ms(value: timedelta) -> str:
    return f"{value.total_seconds() * 1000:g}ms"


def strerror(code: int) -> str:
    text = os.strerror(code)
    return text[0].lower() + text[1:]


def describe(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError):
        return f"TLS: {exc.reason or exc}"
    if isinstance(exc, OSError):
        # asyncio puts "Connect call failed (addr)" in strerror; the errno says more.
        text = (
            os.strerror(exc.errno)
            if exc.errno and exc.errno > 0 and not isinstance(exc, socket.gaierror)
            else exc.strerror
        )
        if text:
            return text[0].lower() + text[1:]
    return str(exc) or type(exc).__name__
