"""The ``http``/``https`` probe (keepalived's HTTP_GET/SSL_GET) and its HTTP/1.0 client."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import os
import re
import ssl
from dataclasses import dataclass
from ipaddress import ip_address
from urllib.parse import urlsplit

from reconciler.adapters.probes.details import describe
from reconciler.adapters.probes.sockets import ProbeSource, connect
from reconciler.health.policy import ProbeResult
from reconciler.model.checks import HttpProbe
from reconciler.model.common import IPAddress

USER_AGENT = "reconciler-healthcheck"
_HEADER_LIMIT_BYTES = 64 * 1024
_REGEX_WINDOW_BYTES = 1024 * 1024
_READ_CHUNK_BYTES = 64 * 1024
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")


class HttpError(Exception):
    """The server answered something that is not HTTP."""


@dataclass(frozen=True)
class HttpRequest:
    host: str  # where to connect: an address or a name
    port: int
    tls: bool
    verify: bool
    ca_file: str | None
    server_hostname: str | None  # SNI and the name the certificate must match
    payload: bytes
    head: bool


@dataclass(frozen=True)
class HttpResponse:
    status: int
    digest: str  # hex MD5 of the body ("" when not computed)
    body_head: bytes  # the first _REGEX_WINDOW_BYTES of the body
    body_bytes: int


async def http_probe(
    probe: HttpProbe, host: IPAddress | None, port: int | None, source: ProbeSource
) -> ProbeResult:
    try:
        request = http_request(probe, host, port)
    except ValueError as exc:
        return ProbeResult(ok=False, detail=str(exc))
    try:
        response = await http_exchange(request, source, want_digest=probe.digest is not None)
    except ssl.SSLCertVerificationError as exc:
        return ProbeResult(ok=False, detail=f"TLS: {exc.verify_message or exc.reason}")
    except (OSError, ssl.SSLError, HttpError) as exc:
        return ProbeResult(ok=False, detail=describe(exc))
    if not any(lo <= response.status <= hi for lo, hi in probe.status):
        return ProbeResult(ok=False, detail=f"HTTP {response.status}: status not accepted")
    if probe.digest is not None and response.digest != probe.digest.lower():
        return ProbeResult(
            ok=False, detail=f"HTTP {response.status}: MD5 digest {response.digest} differs"
        )
    if probe.regex is not None:
        try:
            pattern = _compile(probe.regex)
        except re.error as exc:
            return ProbeResult(ok=False, detail=f"bad regex {probe.regex!r}: {exc}")
        if pattern.search(response.body_head) is None:
            return ProbeResult(ok=False, detail=f"HTTP {response.status}: regex did not match")
    return ProbeResult(ok=True, detail=f"HTTP {response.status}")


@functools.lru_cache(maxsize=256)
def _compile(regex: str) -> re.Pattern[bytes]:
    return re.compile(regex.encode())


# ======================================================================= the request


def http_request(probe: HttpProbe, host: IPAddress | None, port: int | None) -> HttpRequest:
    """Where to connect and what to send; ValueError when the probe cannot be sent."""
    tls = probe.tls
    if probe.url.startswith("/"):
        if host is None:
            raise ValueError("http: a path URL needs the real server's address")
        use_tls = tls is not None
        port = port or (443 if use_tls else 80)
        connect_host = str(host)
        path = probe.url
        # keepalived's Host header for a real server: address and port, IPv6 in brackets
        host_header = f"[{host}]:{port}" if host.version == 6 else f"{host}:{port}"
        url_name: str | None = None
    else:
        parts = urlsplit(probe.url)
        if parts.hostname is None:
            raise ValueError(f"http: no host in {probe.url!r}")
        use_tls = parts.scheme == "https" or tls is not None
        port = parts.port or (443 if use_tls else 80)
        connect_host = parts.hostname
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        host_header = parts.netloc.rpartition("@")[2]
        url_name = parts.hostname
    if probe.virtualhost:
        host_header = probe.virtualhost
    # SNI: the configured name, else the virtual host's or URL's name; never an address.
    sni = tls.sni if tls is not None and tls.sni else None
    for candidate in (probe.virtualhost, url_name):
        if sni is None and candidate:
            name = _hostname_of(candidate)
            sni = None if _is_literal(name) else name
    lines = {"host": ("Host", host_header), "user-agent": ("User-Agent", USER_AGENT)}
    lines["connection"] = ("Connection", "close")
    for name, value in probe.headers:
        if not _TOKEN.match(name) or any(c in value for c in "\r\n\0"):
            raise ValueError(f"http: invalid header {name!r}")
        lines[name.lower()] = (name, value)
    if any(c in path for c in " \r\n\0"):
        raise ValueError(f"http: invalid path {path!r}")
    head = f"{probe.method} {path} HTTP/1.0\r\n"
    payload = (head + "".join(f"{n}: {v}\r\n" for n, v in lines.values()) + "\r\n").encode(
        "latin-1"
    )
    verify = tls.verify if tls is not None else True
    return HttpRequest(
        host=connect_host,
        port=port,
        tls=use_tls,
        verify=verify,
        ca_file=tls.ca_file if tls is not None else None,
        server_hostname=sni if sni is not None else (connect_host if verify else None),
        payload=payload,
        head=probe.method == "HEAD",
    )


def _hostname_of(authority: str) -> str:
    """``example.test:8443`` -> ``example.test``; ``[2001:db8::1]:80`` -> ``2001:db8::1``."""
    if authority.startswith("["):
        return authority[1:].partition("]")[0]
    return authority.rpartition(":")[0] if authority.count(":") == 1 else authority


def _is_literal(text: str) -> bool:
    try:
        ip_address(text)
    except ValueError:
        return False
    return True


# ======================================================================= the exchange


@functools.lru_cache(maxsize=64)
def _ssl_context(verify: bool, ca_file: str | None, ca_mtime_ns: int) -> ssl.SSLContext:
    """Contexts are costly (the system CA store); cached, and rebuilt when the CA file changes."""
    del ca_mtime_ns  # part of the cache key only
    if not verify:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx
    return ssl.create_default_context(cafile=ca_file)


def _context_for(request: HttpRequest) -> ssl.SSLContext:
    mtime = 0
    if request.ca_file is not None:
        with contextlib.suppress(OSError):
            mtime = os.stat(request.ca_file).st_mtime_ns
    return _ssl_context(request.verify, request.ca_file, mtime)


async def http_exchange(
    request: HttpRequest, source: ProbeSource, *, want_digest: bool
) -> HttpResponse:
    sock = await connect(request.host, request.port, source)
    try:
        reader, writer = await asyncio.open_connection(
            sock=sock,
            ssl=_context_for(request) if request.tls else None,
            # asyncio wants a name with sock=; "" sends no SNI and matches no name.
            server_hostname=(request.server_hostname or "") if request.tls else None,
            limit=_HEADER_LIMIT_BYTES,
        )
    except BaseException:
        sock.close()
        raise
    try:
        writer.write(request.payload)
        await writer.drain()
        try:
            header = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as exc:
            raise HttpError("connection closed before the end of the headers") from exc
        except asyncio.LimitOverrunError as exc:
            raise HttpError(f"headers longer than {_HEADER_LIMIT_BYTES} bytes") from exc
        status = _status_code(header)
        content_length = None if request.head else _content_length(header)
        md5 = hashlib.md5(usedforsecurity=False)
        head = bytearray()
        received = 0
        while not request.head and (content_length is None or received < content_length):
            want = _READ_CHUNK_BYTES
            if content_length is not None:
                want = min(want, content_length - received)
            chunk = await reader.read(want)
            if not chunk:
                break
            received += len(chunk)
            if want_digest:
                md5.update(chunk)
            if len(head) < _REGEX_WINDOW_BYTES:
                head += chunk[: _REGEX_WINDOW_BYTES - len(head)]
        return HttpResponse(
            status=status,
            digest=md5.hexdigest() if want_digest else "",
            body_head=bytes(head),
            body_bytes=received,
        )
    finally:
        writer.close()
        # A TLS peer that never answers close_notify must not hold the probe.
        with contextlib.suppress(OSError, ssl.SSLError, TimeoutError):
            async with asyncio.timeout(0.1):
                await writer.wait_closed()


def _status_code(header: bytes) -> int:
    """keepalived's ``extract_status_code``: the three digits after the first space."""
    line = header.split(b"\r\n", 1)[0]
    parts = line.split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not re.fullmatch(rb"\d{3}", parts[1]):
        raise HttpError(f"not an HTTP status line: {line[:80]!r}")
    return int(parts[1])


def _content_length(header: bytes) -> int | None:
    for line in header.split(b"\r\n")[1:]:
        name, sep, value = line.partition(b":")
        if sep and name.strip().lower() == b"content-length":
            text = value.strip()
            return int(text) if text.isdigit() else None
    return None
