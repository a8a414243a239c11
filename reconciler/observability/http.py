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
request read to the answer handed to the socket; and the loop thread's CPU time of it,
less on a busy machine, where the first includes waits for a CPU) and exported with the
answers and refusals (``reconciler_http_*``); ``bench/scrape.py`` reads it. /status is compact JSON
(``reconciler status -o json`` indents it): the json module only encodes in C without
indentation.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import json
import logging
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.registry import CollectorRegistry

from reconciler.observability.exposition import snapshot_of
from reconciler.observability.metrics import HttpCollector
from reconciler.observability.status import HttpStatus, NodeStatus, StatusSource, status_reader

log = logging.getLogger("reconciler.http")

MAX_CONNECTIONS = 16
MAX_REQUEST_BYTES = 8192
REQUEST_TIMEOUT_S = 5.0
WRITE_TIMEOUT_S = 5.0
REFUSE_WAIT_S = 0.2
LAG_PROBE_S = 0.001  # while an answer renders off the loop, how often the loop is probed


def status_json(source: StatusSource) -> dict[str, Any]:
    return status_document(source.status())


def status_document(snapshot: NodeStatus) -> dict[str, Any]:
    """/status of a snapshot, as plain JSON values."""
    doc: dict[str, Any] = _plain(snapshot)
    for inst in doc["instances"]:
        _transitions_as_list(inst)
    return doc


def _transitions_as_list(inst: dict[str, Any]) -> None:
    inst["transitions"] = [
        {"from": f, "to": t, "reason": r, "count": n}
        for (f, t, r), n in sorted(inst["transitions"].items())
    ]


def _status_text(snapshot: NodeStatus) -> str:
    """``json.dumps(status_document(snapshot))``, one instance at a time: it runs beside
    the event loop, and the C encoder holds the interpreter lock for a whole call (at 500
    instances, milliseconds), so the loop gets the lock between instances."""
    parts = []
    for name in _fields_of(snapshot):
        value = getattr(snapshot, name)
        if name == "instances":
            encoded = []
            for inst in value:
                time.sleep(0)  # a chance for the event loop to take the interpreter lock
                plain = _plain(inst)
                _transitions_as_list(plain)
                encoded.append(json.dumps(plain))
            text = "[" + ", ".join(encoded) + "]"
        else:
            text = json.dumps(_plain(value))
        parts.append(f"{json.dumps(name)}: {text}")
    return "{" + ", ".join(parts) + "}"


_FIELDS: dict[type, tuple[str, ...]] = {}


def _plain(value: Any) -> Any:
    """``dataclasses.asdict`` for status snapshots, without its deep copies (a snapshot
    is already a copy): dataclasses become dicts, tuples and lists lists."""
    cls = type(value)
    if cls in (str, int, float, bool) or value is None:
        return value
    names = _FIELDS.get(cls)
    if names is None and dataclasses.is_dataclass(value):
        names = _fields_of(value)
    if names is not None:
        return {n: _plain(getattr(value, n)) for n in names}
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _fields_of(value: Any) -> tuple[str, ...]:
    cls = type(value)
    names = _FIELDS.get(cls)
    if names is None:
        names = _FIELDS[cls] = tuple(f.name for f in dataclasses.fields(value))
    return names


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
        self.loop_cpu_seconds: dict[str, float] = {}  # the loop thread's CPU time of that
        # Sum over answers of the worst loop lag while one rendered off the loop.
        self.render_lag_seconds: dict[str, float] = {}
        self._renderer: ThreadPoolExecutor | None = None  # the rendering thread
        registry.register(HttpCollector(self.status))

    def status(self) -> HttpStatus:
        return HttpStatus(
            dict(self.responses),
            dict(self.loop_seconds),
            dict(self.loop_cpu_seconds),
            dict(self.render_lag_seconds),
            dict(self.refused),
        )

    async def start(self, host: str, port: int) -> int:
        self._server = await asyncio.start_server(
            self._handle, host, port, limit=MAX_REQUEST_BYTES, backlog=MAX_CONNECTIONS
        )
        return int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        if self._renderer is not None:
            self._renderer.shutdown(wait=False, cancel_futures=True)
            self._renderer = None

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
        clock = _LoopClock()
        served = "other"
        render: Callable[[], bytes] | None = None
        try:
            method, path, *_ = request.split(b"\r\n", 1)[0].decode("latin-1").split(" ")
            if (method, path.split("?")[0]) == ("POST", "/hooks/refresh") and self.on_refresh:
                self.on_refresh()
                status, ctype, body = "202 Accepted", "text/plain", b"refresh requested\n"
            elif method != "GET":
                status, ctype, body = "405 Method Not Allowed", "text/plain", b"GET only\n"
            elif path.split("?")[0] == "/metrics":
                served, status, ctype = "/metrics", "200 OK", CONTENT_TYPE_LATEST
                render = snapshot_of(self.registry)  # read now, written off the loop
            elif path.split("?")[0] == "/status":
                served, status, ctype = "/status", "200 OK", "application/json"
                render = functools.partial(_status_body, status_reader(self.source))
            else:
                status, ctype, body = "404 Not Found", "text/plain", b"/metrics or /status\n"
        except ValueError:
            status, ctype, body = "400 Bad Request", "text/plain", b"not an HTTP request\n"
        if render is not None:
            clock.pause()
            body = await self._off_loop(render, served)
            clock.resume()
        writer.write(_response(status, ctype, body))
        clock.pause()
        self.responses[served] += 1
        for total, value in (
            (self.loop_seconds, clock.seconds),
            (self.loop_cpu_seconds, clock.cpu_seconds),
        ):
            total[served] = total.get(served, 0.0) + value
        try:
            await asyncio.wait_for(writer.drain(), WRITE_TIMEOUT_S)
        except TimeoutError:
            self.refused["timeout"] += 1
        except ConnectionError:
            pass

    async def _off_loop(self, render: Callable[[], bytes], served: str) -> bytes:
        """``render()`` on the rendering thread. Meanwhile a timer every ``LAG_PROBE_S``
        measures how late the loop gets to it (the thread holds the interpreter lock for
        up to its switch interval at a time): the worst is added to ``render_lag_seconds``."""
        loop = asyncio.get_running_loop()
        if self._renderer is None:
            self._renderer = ThreadPoolExecutor(1, thread_name_prefix="http-render")
        worst = 0.0
        handle: asyncio.TimerHandle | None = None

        def probe(due: float) -> None:
            nonlocal worst, handle
            now = loop.time()
            worst = max(worst, now - due)
            handle = loop.call_at(now + LAG_PROBE_S, probe, now + LAG_PROBE_S)

        start = loop.time()
        handle = loop.call_at(start + LAG_PROBE_S, probe, start + LAG_PROBE_S)
        try:
            return await loop.run_in_executor(self._renderer, render)
        finally:
            if handle is not None:
                handle.cancel()
            self.render_lag_seconds[served] = self.render_lag_seconds.get(served, 0.0) + worst


class _LoopClock:
    """Wall and thread CPU time of the stretches one answer runs on the event loop."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.cpu_seconds = 0.0
        self.resume()

    def resume(self) -> None:
        self._wall, self._cpu = time.perf_counter(), time.thread_time()

    def pause(self) -> None:
        self.seconds += time.perf_counter() - self._wall
        self.cpu_seconds += time.thread_time() - self._cpu


def _status_body(snapshot: Callable[[], NodeStatus]) -> bytes:
    return (_status_text(snapshot()) + "\n").encode()


def _response(status: str, ctype: str, body: bytes) -> bytes:
    head = (
        f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body
