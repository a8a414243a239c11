"""The node's HTTP endpoint: /metrics for Prometheus, /status as JSON for `reconciler status`.

A few lines of asyncio instead of prometheus_client's threaded server, so both
endpoints read the runtime's state on the event loop that owns it.

Clients never take what the daemon needs to fail over: at most ``MAX_CONNECTIONS``
are served at once; past that a client gets 503 (its request is read for at most
``REFUSE_WAIT_S`` first, so that the answer is not lost to a reset), and past twice
that it is closed at once, so a flood holds a bounded number of descriptors for a
bounded time. A request head is at most ``MAX_REQUEST_BYTES`` and must arrive within
``REQUEST_TIMEOUT_S``; an answer a client does not read within ``WRITE_TIMEOUT_S`` is
dropped.

Both endpoints are rendered on the loop, so each answer's loop time is measured (from the
request read to the answer handed to the socket) and exported with the answers and
refusals (``reconciler_http_*``); ``bench/scrape.py`` reads it. /status is compact JSON
(``reconciler status -o json`` indents it): the json module only encodes in C without
indentation.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.registry import CollectorRegistry

from reconciler.observability.metrics import HttpCollector, exposition
from reconciler.observability.status import HttpStatus, StatusSource

log = logging.getLogger("reconciler.http")

MAX_CONNECTIONS = 16
MAX_REQUEST_BYTES = 8192
REQUEST_TIMEOUT_S = 5.0
WRITE_TIMEOUT_S = 5.0
REFUSE_WAIT_S = 0.2


def status_json(source: StatusSource) -> dict[str, Any]:
    doc: dict[str, Any] = _plain(source.status())
    for inst in doc["instances"]:
        inst["transitions"] = [
            {"from": f, "to": t, "reason": r, "count": n}
            for (f, t, r), n in sorted(inst["transitions"].items())
        ]
    return doc


_FIELDS: dict[type, tuple[str, ...]] = {}


def _plain(value: Any) -> Any:
    """``dataclasses.asdict`` for status snapshots, without its deep copies (a snapshot
    is already a copy): dataclasses become dicts, tuples and lists lists."""
    cls = type(value)
    if cls in (str, int, float, bool) or value is None:
        return value
    names = _FIELDS.get(cls)
    if names is None and dataclasses.is_dataclass(value):
        names = _FIELDS[cls] = tuple(f.name for f in dataclasses.fields(value))
    if names is not None:
        return {n: _plain(getattr(value, n)) for n in names}
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


class StatusServer:
    """GET /metrics and /status; with ``on_refresh``, also POST /hooks/refresh (a webhook
    receiver, as Flux's: "look at the source now"; it carries no input and the answer
    says nothing about the node)."""

    def __init__(
        self,
        source: StatusSource,
        registry: CollectorRegistry,
        on_refresh: Callable[[], None] | None = None,
    ) -> None:
        self.source = source
        self.registry = registry
        self.on_refresh = on_refresh
        self._server: asyncio.Server | None = None
        self.active = 0  # connections being served
        self.refusing = 0  # connections being answered 503
        self.refused: dict[str, int] = {"busy": 0, "too_large": 0, "timeout": 0}
        self.responses: Counter[str] = Counter()  # by path: /metrics, /status, other
        self.loop_seconds: dict[str, float] = {}  # event-loop time spent answering, by path
        registry.register(HttpCollector(self.status))

    def status(self) -> HttpStatus:
        return HttpStatus(dict(self.responses), dict(self.loop_seconds), dict(self.refused))

    async def start(self, host: str, port: int) -> int:
        self._server = await asyncio.start_server(
            self._handle, host, port, limit=MAX_REQUEST_BYTES, backlog=MAX_CONNECTIONS
        )
        return int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.active >= MAX_CONNECTIONS:
            await self._busy(reader, writer)
            return
        self.active += 1
        try:
            await self._serve(reader, writer)
        finally:
            self.active -= 1
            writer.close()

    async def _busy(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.refusing >= MAX_CONNECTIONS:
            self._count("busy")
            writer.close()
            return
        self.refusing += 1
        try:
            # Read the request first: closing a socket with unread data resets it, and
            # the client would see a reset instead of the 503.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), REFUSE_WAIT_S)
            self._refuse("busy", writer, "503 Service Unavailable", b"too many connections\n")
        finally:
            self.refusing -= 1

    def _count(self, why: str) -> None:
        if not self.refused[why]:
            log.warning("HTTP: refusing a client (%s); counted from now on, not logged", why)
        self.refused[why] += 1

    def _refuse(self, why: str, writer: asyncio.StreamWriter, status: str, body: bytes) -> None:
        self._count(why)
        # Best effort and never waited for: the socket buffer takes a short answer.
        writer.write(_response(status, "text/plain", body))
        writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), REQUEST_TIMEOUT_S)
        except TimeoutError:
            self.refused["timeout"] += 1
            return
        except (asyncio.LimitOverrunError, ValueError):
            self._refuse("too_large", writer, "431 Request Header Fields Too Large", b"")
            return
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        started = time.perf_counter()
        served = "other"
        try:
            method, path, *_ = request.split(b"\r\n", 1)[0].decode("latin-1").split(" ")
            if (method, path.split("?")[0]) == ("POST", "/hooks/refresh") and self.on_refresh:
                self.on_refresh()
                status, ctype, body = "202 Accepted", "text/plain", b"refresh requested\n"
            elif method != "GET":
                status, ctype, body = "405 Method Not Allowed", "text/plain", b"GET only\n"
            elif path.split("?")[0] == "/metrics":
                served = "/metrics"
                status, ctype, body = "200 OK", CONTENT_TYPE_LATEST, exposition(self.registry)
            elif path.split("?")[0] == "/status":
                served = "/status"
                body = (json.dumps(status_json(self.source)) + "\n").encode()
                status, ctype = "200 OK", "application/json"
            else:
                status, ctype, body = "404 Not Found", "text/plain", b"/metrics or /status\n"
        except ValueError:
            status, ctype, body = "400 Bad Request", "text/plain", b"not an HTTP request\n"
        writer.write(_response(status, ctype, body))
        self.responses[served] += 1
        self.loop_seconds[served] = (
            self.loop_seconds.get(served, 0.0) + time.perf_counter() - started
        )
        try:
            await asyncio.wait_for(writer.drain(), WRITE_TIMEOUT_S)
        except TimeoutError:
            self.refused["timeout"] += 1
        except ConnectionError:
            pass


def _response(status: str, ctype: str, body: bytes) -> bytes:
    head = (
        f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body
