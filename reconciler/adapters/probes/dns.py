"""The ``dns`` probe (keepalived's DNS_CHECK): one query over UDP or TCP.

The wire format is the pure core's (:mod:`reconciler.health.dns`); this is the I/O.
"""

from __future__ import annotations

import asyncio
import errno
import secrets
import socket
import struct

from reconciler.adapters.probes.details import describe
from reconciler.adapters.probes.sockets import ProbeSource, connect
from reconciler.health import dns
from reconciler.health.policy import ProbeResult
from reconciler.model.checks import DnsProbe
from reconciler.model.common import IPAddress

_DNS_MAX_UDP_BYTES = 4096
_RCODES = {1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED"}


async def dns_probe(
    probe: DnsProbe, host: IPAddress | None, port: int | None, source: ProbeSource
) -> ProbeResult:
    server = probe.server or host
    if server is None:
        return ProbeResult(ok=False, detail="dns: no server to ask")
    # The probe's own port wins; a real server's port is the next best; else 53.
    port = probe.port or port or 53
    query_id = secrets.randbits(16)
    try:
        query = dns.encode_query(query_id, probe.name, probe.type)
    except (ValueError, KeyError) as exc:
        return ProbeResult(ok=False, detail=f"dns: cannot ask for {probe.name!r}: {exc}")
    try:
        if probe.protocol == "tcp":
            response = await _dns_tcp(server, port, source, query, query_id, probe)
        else:
            response = await _dns_udp(server, port, source, query, query_id, probe)
    except (OSError, dns.MalformedDns) as exc:
        return ProbeResult(ok=False, detail=f"dns: {describe(exc)}")
    if response.rcode != 0:
        name = _RCODES.get(response.rcode, str(response.rcode))
        return ProbeResult(ok=False, detail=f"dns: rcode {name}")
    missing = dns.missing_expectations(response, probe.expect)
    answers = ", ".join(r.text for r in response.answers) or "no answers"
    if missing:
        return ProbeResult(
            ok=False, detail=f"dns: {', '.join(missing)} not in the answer ({answers})"
        )
    return ProbeResult(ok=True, detail=f"dns: NOERROR ({answers})")


def _sockaddr(server: IPAddress, port: int) -> tuple[int, tuple[str, int]]:
    family = socket.AF_INET if server.version == 4 else socket.AF_INET6
    return family, (str(server), port)


async def _dns_udp(
    server: IPAddress, port: int, source: ProbeSource, query: bytes, query_id: int, probe: DnsProbe
) -> dns.DnsResponse:
    loop = asyncio.get_running_loop()
    family, addr = _sockaddr(server, port)
    with socket.socket(family, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
        sock.setblocking(False)
        source.apply(sock)
        # Connected: the kernel drops datagrams from anyone but the server.
        await loop.sock_connect(sock, addr)
        await loop.sock_sendall(sock, query)
        while True:
            data = await loop.sock_recv(sock, _DNS_MAX_UDP_BYTES)
            try:
                return dns.decode_response(data, query_id, probe.name, probe.type)
            except dns.MalformedDns:
                # keepalived waits on for the right answer (stray or spoofed datagrams);
                # the probe's timeout bounds the wait.
                continue


async def _dns_tcp(
    server: IPAddress, port: int, source: ProbeSource, query: bytes, query_id: int, probe: DnsProbe
) -> dns.DnsResponse:
    loop = asyncio.get_running_loop()
    sock = await connect(str(server), port, source)
    with sock:
        await loop.sock_sendall(sock, struct.pack("!H", len(query)) + query)
        (length,) = struct.unpack("!H", await _recv_exactly(sock, 2))
        return dns.decode_response(
            await _recv_exactly(sock, length), query_id, probe.name, probe.type
        )


async def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    loop = asyncio.get_running_loop()
    data = bytearray()
    while len(data) < size:
        chunk = await loop.sock_recv(sock, size - len(data))
        if not chunk:
            raise OSError(errno.ECONNRESET, "connection closed mid-message")
        data += chunk
    return bytes(data)
