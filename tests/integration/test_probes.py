"""Every probe against real servers the tests start on loopback, in both directions.

Servers: ``http.server`` (plain and TLS with a certificate made here by
``openssl``), ``dnsmasq`` in the foreground on a high port, scripts run as
``nobody``, files, and a veth pair inside a network namespace made here.
Debian packages: openssl, dnsmasq-base, iproute2 (namespaces; root).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import http.server
import json
import os
import secrets
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path

import pytest
from helpers import marker_alive

from reconciler.adapters.probes import ProbeError, Prober, digest_url, run_probe
from reconciler.health.policy import ProbeResult
from reconciler.model.checks import (
    DnsProbe,
    FileProbe,
    HttpProbe,
    InterfaceProbe,
    Probe,
    ScriptProbe,
    TcpProbe,
    TlsOptions,
)
from reconciler.model.common import IPAddress

LOCALHOST = IPv4Address("127.0.0.1")
BODY = b"hello world"
REPO = Path(__file__).resolve().parents[2]


def probe(
    p: Probe,
    host: IPAddress | None = None,
    port: int | None = None,
    *,
    timeout_s: float = 2.0,
    source_address: IPAddress | None = None,
    source_interface: str | None = None,
) -> ProbeResult:
    return asyncio.run(
        run_probe(
            p,
            host,
            port,
            timedelta(seconds=timeout_s),
            source_address=source_address,
            source_interface=source_interface,
        )
    )


# =========================================================================== HTTP server


@dataclass
class Seen:
    requests: list[tuple[str, dict[str, str], str]] = field(
        default_factory=list
    )  # path, hdrs, peer
    sni: list[str | None] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    inflight: int = 0
    peak: int = 0


class Handler(http.server.BaseHTTPRequestHandler):
    seen: Seen
    release: threading.Event

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass

    def _send(self, status: int, body: bytes, *, length: int | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        self.seen.requests.append(
            (self.path, {k.lower(): v for k, v in self.headers.items()}, self.client_address[0])
        )
        if self.path == "/ok":
            self._send(200, BODY)
        elif self.path == "/fail":
            self._send(500, b"oops")
        elif self.path == "/redirect":
            self._send(302, b"")
        elif self.path == "/short":
            # Content-Length 5 but 11 bytes follow: keepalived hashes the first 5 only.
            self._send(200, BODY, length=5)
        elif self.path == "/nolength":
            self.send_response(200)
            self.end_headers()
            self.wfile.write(BODY)
        elif self.path == "/echo":
            self._send(200, "".join(f"{k}: {v}\n" for k, v in self.headers.items()).encode())
        elif self.path == "/hold":
            with self.seen.lock:
                self.seen.inflight += 1
                self.seen.peak = max(self.seen.peak, self.seen.inflight)
            time.sleep(0.1)
            with self.seen.lock:
                self.seen.inflight -= 1
            self._send(200, BODY)
        elif self.path == "/slow":
            self.release.wait(5)
            self._send(200, BODY)
        else:
            self._send(404, b"not found")


@dataclass
class Server:
    port: int
    seen: Seen


def serve(tls: ssl.SSLContext | None = None, host: str = "127.0.0.1") -> Iterator[Server]:
    seen = Seen()
    release = threading.Event()
    handler = type("H", (Handler,), {"seen": seen, "release": release})
    server_class: type[http.server.ThreadingHTTPServer] = http.server.ThreadingHTTPServer
    if ":" in host:

        class V6(http.server.ThreadingHTTPServer):
            address_family = socket.AF_INET6

        server_class = V6
    httpd = server_class((host, 0), handler)
    httpd.daemon_threads = True
    if tls is not None:
        tls.sni_callback = lambda _sock, name, _ctx: seen.sni.append(name)
        httpd.socket = tls.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, name="http", daemon=True
    )
    thread.start()
    try:
        yield Server(httpd.server_address[1], seen)
    finally:
        release.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


@pytest.fixture
def web() -> Iterator[Server]:
    yield from serve()


def http_probe(url: str, **kwargs: object) -> HttpProbe:
    fields: dict[str, object] = {
        "method": "GET",
        "status": ((200, 299),),
        "digest": None,
        "regex": None,
        "virtualhost": None,
        "headers": (),
        "tls": None,
    }
    fields.update(kwargs)
    return HttpProbe(url=url, **fields)  # type: ignore[arg-type]


MD5_BODY = hashlib.md5(BODY).hexdigest()


def test_http_pass_on_200_and_fail_on_500(web: Server) -> None:
    ok = probe(http_probe(f"http://127.0.0.1:{web.port}/ok"))
    assert ok == ProbeResult(ok=True, detail="HTTP 200")
    bad = probe(http_probe(f"http://127.0.0.1:{web.port}/fail"))
    assert bad == ProbeResult(ok=False, detail="HTTP 500: status not accepted")


def test_http_status_ranges(web: Server) -> None:
    url = f"http://127.0.0.1:{web.port}"
    assert probe(http_probe(f"{url}/fail", status=((500, 500),))).ok
    assert probe(http_probe(f"{url}/redirect", status=((200, 200), (301, 302)))).ok
    assert not probe(http_probe(f"{url}/redirect", status=((200, 299),))).ok
    assert not probe(http_probe(f"{url}/missing")).ok


def test_http_path_url_goes_to_the_real_server_with_keepalived_host_header(web: Server) -> None:
    assert probe(http_probe("/ok"), LOCALHOST, web.port).ok
    assert web.seen.requests[-1][1]["host"] == f"127.0.0.1:{web.port}"
    assert not probe(http_probe("/fail"), LOCALHOST, web.port).ok
    no_target = probe(http_probe("/ok"))
    assert not no_target.ok and "real server" in no_target.detail


def test_http_digest_is_genhash_md5(web: Server) -> None:
    url = f"http://127.0.0.1:{web.port}"
    assert asyncio.run(digest_url(f"{url}/ok")) == MD5_BODY
    assert probe(http_probe(f"{url}/ok", digest=MD5_BODY)).ok
    assert probe(http_probe(f"{url}/ok", digest=MD5_BODY.upper())).ok
    wrong = probe(http_probe(f"{url}/ok", digest="0" * 32))
    assert not wrong.ok and f"MD5 digest {MD5_BODY} differs" in wrong.detail
    # Cut at Content-Length, as keepalived's reader does; to EOF without one.
    assert asyncio.run(digest_url(f"{url}/short")) == hashlib.md5(BODY[:5]).hexdigest()
    assert asyncio.run(digest_url(f"{url}/nolength")) == MD5_BODY
    # genhash prints the digest whatever the status
    assert asyncio.run(digest_url(f"{url}/fail")) == hashlib.md5(b"oops").hexdigest()


def test_digest_url_errors() -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    with pytest.raises(ProbeError, match="connection refused"):
        asyncio.run(digest_url(f"http://127.0.0.1:{port}/"))
    with pytest.raises(ValueError, match="absolute"):
        asyncio.run(digest_url("/path"))


def test_http_regex(web: Server) -> None:
    url = f"http://127.0.0.1:{web.port}/ok"
    assert probe(http_probe(url, regex=r"wor.d$")).ok
    miss = probe(http_probe(url, regex=r"^world"))
    assert miss == ProbeResult(ok=False, detail="HTTP 200: regex did not match")
    bad = probe(http_probe(url, regex=r"("))
    assert not bad.ok and "bad regex" in bad.detail


def test_http_timeout(web: Server) -> None:
    started = time.monotonic()
    result = probe(http_probe(f"http://127.0.0.1:{web.port}/slow"), timeout_s=0.2)
    assert result == ProbeResult(ok=False, detail="timeout after 200ms")
    assert time.monotonic() - started < 1.5


def test_http_connection_refused() -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    result = probe(http_probe(f"http://127.0.0.1:{port}/"))
    assert result == ProbeResult(ok=False, detail="connection refused")


def test_http_virtualhost_and_extra_headers(web: Server) -> None:
    p = http_probe(
        f"http://127.0.0.1:{web.port}/echo",
        virtualhost="www.example.test",
        headers=(("X-Check", "yes"), ("User-Agent", "custom")),
        regex=r"X-Check: yes",
    )
    assert probe(p).ok
    headers = web.seen.requests[-1][1]
    assert headers["host"] == "www.example.test"
    assert headers["x-check"] == "yes"
    assert headers["user-agent"] == "custom"  # an extra header replaces the default
    assert headers["connection"] == "close"
    injected = probe(http_probe(f"http://127.0.0.1:{web.port}/ok", headers=(("X", "a\r\nB: c"),)))
    assert not injected.ok and "invalid header" in injected.detail


def test_http_head(web: Server) -> None:
    assert probe(http_probe(f"http://127.0.0.1:{web.port}/ok", method="HEAD")).ok
    assert not probe(http_probe(f"http://127.0.0.1:{web.port}/fail", method="HEAD")).ok


def test_http_over_ipv6() -> None:
    if not socket.has_ipv6 or not Path("/proc/net/if_inet6").exists():
        pytest.skip("no IPv6 on this machine")
    for server in serve(host="::1"):
        assert probe(http_probe("/ok"), IPv6Address("::1"), server.port).ok
        assert server.seen.requests[-1][1]["host"] == f"[::1]:{server.port}"
        assert probe(http_probe(f"http://[::1]:{server.port}/ok")).ok
        assert not probe(http_probe(f"http://[::1]:{server.port}/fail")).ok


def test_source_address_and_interface(web: Server) -> None:
    p = http_probe(f"http://127.0.0.1:{web.port}/ok")
    assert probe(p, source_address=IPv4Address("127.0.0.2")).ok
    assert web.seen.requests[-1][2] == "127.0.0.2"
    assert probe(p, source_interface="lo").ok
    nodev = probe(p, source_interface="nosuchdev0")
    assert not nodev.ok and "no such device" in nodev.detail
    # a source the host does not own cannot be bound
    foreign = probe(p, source_address=IPv4Address("192.0.2.1"))
    assert not foreign.ok and "assign requested address" in foreign.detail


# =========================================================================== TLS


@dataclass
class Cert:
    cert: Path
    key: Path


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> Cert:
    if shutil.which("openssl") is None:
        pytest.skip("needs openssl (Debian package openssl)")
    d = tmp_path_factory.mktemp("tls")
    cert, key = d / "cert.pem", d / "key.pem"
    command = (
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1"
        " -subj /CN=www.example.test"
        " -addext subjectAltName=DNS:www.example.test,IP:127.0.0.1"
        f" -keyout {key} -out {cert}"
    )
    subprocess.run(
        command.split(),
        check=True,
        capture_output=True,
    )
    return Cert(cert, key)


@pytest.fixture
def tls_web(cert: Cert) -> Iterator[Server]:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert.cert, cert.key)
    yield from serve(tls=ctx)


def test_https_verify_with_ca_file_passes(tls_web: Server, cert: Cert) -> None:
    tls = TlsOptions(verify=True, ca_file=str(cert.cert))
    # No name: the certificate must match the address (IP SAN), and no SNI is sent.
    assert probe(http_probe(f"https://127.0.0.1:{tls_web.port}/ok", tls=tls)).ok
    assert tls_web.seen.sni[-1] is None
    # A path URL with tls options: https to the real server.
    assert probe(http_probe("/ok", tls=tls), LOCALHOST, tls_web.port).ok
    # And the body is checked over TLS like over TCP.
    assert probe(http_probe("/ok", tls=tls, digest=MD5_BODY), LOCALHOST, tls_web.port).ok
    assert not probe(http_probe("/fail", tls=tls), LOCALHOST, tls_web.port).ok


def test_https_sends_sni(tls_web: Server, cert: Cert) -> None:
    url = f"https://127.0.0.1:{tls_web.port}/ok"
    ca = str(cert.cert)
    assert probe(http_probe(url, tls=TlsOptions(ca_file=ca, sni="www.example.test"))).ok
    assert tls_web.seen.sni[-1] == "www.example.test"
    # The virtual host is the default SNI (and the Host header).
    assert probe(http_probe(url, virtualhost="www.example.test", tls=TlsOptions(ca_file=ca))).ok
    assert tls_web.seen.sni[-1] == "www.example.test"
    assert tls_web.seen.requests[-1][1]["host"] == "www.example.test"
    # A name the certificate does not carry fails verification...
    wrong = probe(http_probe(url, tls=TlsOptions(ca_file=ca, sni="other.example.test")))
    assert not wrong.ok and "TLS" in wrong.detail and "mismatch" in wrong.detail.lower()
    # ...but is still sent when verification is off.
    assert probe(http_probe(url, tls=TlsOptions(verify=False, sni="other.example.test"))).ok
    assert tls_web.seen.sni[-1] == "other.example.test"


def test_https_verify_without_ca_fails(tls_web: Server) -> None:
    result = probe(http_probe(f"https://127.0.0.1:{tls_web.port}/ok"))
    assert not result.ok
    assert result.detail.startswith("TLS: ") and "self-signed" in result.detail


def test_https_verify_off_passes(tls_web: Server) -> None:
    tls = TlsOptions(verify=False)
    assert probe(http_probe(f"https://127.0.0.1:{tls_web.port}/ok", tls=tls)).ok
    assert not probe(http_probe(f"https://127.0.0.1:{tls_web.port}/fail", tls=tls)).ok


def test_https_digest_url(tls_web: Server) -> None:
    url = f"https://127.0.0.1:{tls_web.port}/ok"
    assert asyncio.run(digest_url(url, tls=TlsOptions(verify=False))) == MD5_BODY
    with pytest.raises(ProbeError, match="TLS"):
        asyncio.run(digest_url(url))


def test_https_against_plain_http_fails(web: Server) -> None:
    result = probe(http_probe(f"https://127.0.0.1:{web.port}/ok", tls=TlsOptions(verify=False)))
    assert not result.ok and "TLS" in result.detail


# =========================================================================== TCP


def test_tcp_connect_pass_and_fail() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)
        port = listener.getsockname()[1]
        assert probe(TcpProbe(LOCALHOST, port)) == ProbeResult(ok=True, detail="connected")
        # A real-server check: host and port come from the server.
        assert probe(TcpProbe(None, None), LOCALHOST, port).ok
    refused = probe(TcpProbe(LOCALHOST, port))
    assert refused == ProbeResult(ok=False, detail="connect: connection refused")
    assert not probe(TcpProbe(None, None)).ok


@contextlib.contextmanager
def unanswered_port() -> Iterator[int]:
    """A local TCP port whose listener's backlog is full: new SYNs go unanswered."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        fillers = []
        try:
            for _ in range(8):
                s = socket.socket()
                s.setblocking(False)
                with contextlib.suppress(BlockingIOError):
                    s.connect(("127.0.0.1", port))
                fillers.append(s)
            time.sleep(0.05)
            yield port
        finally:
            for s in fillers:
                s.close()


def test_tcp_timeout() -> None:
    with unanswered_port() as port:
        result = probe(TcpProbe(LOCALHOST, port), timeout_s=0.3)
    assert result == ProbeResult(ok=False, detail="timeout after 300ms")


# =========================================================================== DNS


@pytest.fixture(scope="module")
def dnsmasq() -> Iterator[int]:
    exe = shutil.which("dnsmasq")
    if exe is None:
        pytest.skip("needs dnsmasq (Debian package dnsmasq-base)")
    # A free port for UDP and TCP alike (dnsmasq serves both on it).
    for _ in range(20):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.bind(("127.0.0.1", 0))
            port = u.getsockname()[1]
            with socket.socket() as t:
                try:
                    t.bind(("127.0.0.1", port))
                except OSError:
                    continue
        break
    options = (
        "--keep-in-foreground --conf-file=/dev/null --no-resolv --no-hosts --no-poll"
        " --pid-file= --listen-address=127.0.0.1 --bind-interfaces --user=nobody --group=nogroup"
        f" --port={port} --address=/example.test/192.0.2.53"
        " --local=/example.test/"  # answer for the zone ourselves: NODATA, not REFUSED
        " --local=/nx.test/"  # an empty zone: NXDOMAIN
    )
    proc = subprocess.Popen(
        [exe, *options.split(), "--txt-record=txt.example.test,Hello World"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 5
        query = DnsProbe("example.test", "A", LOCALHOST, port, "udp", ())
        while not probe(query, timeout_s=0.2).ok:
            if proc.poll() is not None:
                assert proc.stderr is not None
                pytest.fail(f"dnsmasq exited: {proc.stderr.read().decode()}")
            assert time.monotonic() < deadline, "dnsmasq did not answer within 5 s"
            time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()


@pytest.mark.parametrize("protocol", ["udp", "tcp"])
def test_dns_pass(dnsmasq: int, protocol: str) -> None:
    plain = DnsProbe("example.test", "A", LOCALHOST, dnsmasq, protocol, ())
    assert probe(plain) == ProbeResult(ok=True, detail="dns: NOERROR (192.0.2.53)")
    expect = DnsProbe("www.example.test", "A", LOCALHOST, dnsmasq, protocol, ("192.0.2.53",))
    assert probe(expect).ok
    txt = DnsProbe("txt.example.test", "TXT", LOCALHOST, dnsmasq, protocol, ("Hello World",))
    assert probe(txt).ok
    # A real-server check: the server's address and port.
    assert probe(DnsProbe("example.test", "A", None, None, protocol, ()), LOCALHOST, dnsmasq).ok


@pytest.mark.parametrize("protocol", ["udp", "tcp"])
def test_dns_fail(dnsmasq: int, protocol: str) -> None:
    wrong = DnsProbe("example.test", "A", LOCALHOST, dnsmasq, protocol, ("192.0.2.54",))
    result = probe(wrong)
    assert result == ProbeResult(ok=False, detail="dns: 192.0.2.54 not in the answer (192.0.2.53)")
    nxdomain = probe(DnsProbe("missing.nx.test", "A", LOCALHOST, dnsmasq, protocol, ()))
    assert nxdomain == ProbeResult(ok=False, detail="dns: rcode NXDOMAIN")
    # No upstream servers: a name outside the local zones is refused.
    refused = probe(DnsProbe("nothing.invalid", "A", LOCALHOST, dnsmasq, protocol, ()))
    assert refused == ProbeResult(ok=False, detail="dns: rcode REFUSED")
    # NOERROR without an AAAA record passes like keepalived's DNS_CHECK, unless expected.
    assert probe(DnsProbe("example.test", "AAAA", LOCALHOST, dnsmasq, protocol, ())).ok
    aaaa = DnsProbe("example.test", "AAAA", LOCALHOST, dnsmasq, protocol, ("2001:db8::53",))
    assert probe(aaaa).detail == "dns: 2001:db8::53 not in the answer (no answers)"


def test_dns_no_server() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    udp = probe(DnsProbe("example.test", "A", LOCALHOST, port, "udp", ()), timeout_s=0.5)
    assert udp == ProbeResult(ok=False, detail="dns: connection refused")
    tcp = probe(DnsProbe("example.test", "A", LOCALHOST, port, "tcp", ()), timeout_s=0.5)
    assert tcp == ProbeResult(ok=False, detail="dns: connection refused")


def test_dns_silent_server_times_out() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        port = silent.getsockname()[1]
        result = probe(DnsProbe("example.test", "A", LOCALHOST, port, "udp", ()), timeout_s=0.2)
    assert result == ProbeResult(ok=False, detail="timeout after 200ms")


# =========================================================================== scripts


def needs_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("running a script as another user needs root")


def sh(script: str, *, dynamic: bool = False, user: str = "nobody") -> ScriptProbe:
    return ScriptProbe(("/bin/sh", "-c", script), user, False, dynamic)


def test_script_exit_0_passes_and_1_fails() -> None:
    needs_root()
    assert probe(sh("exit 0")) == ProbeResult(ok=True, detail="exit status 0")
    assert probe(sh("exit 1")) == ProbeResult(ok=False, detail="exit status 1")
    assert not probe(sh("exit 7")).ok  # without dynamic weight any non-zero code fails


def test_script_runs_as_the_user_with_a_clean_environment() -> None:
    needs_root()
    check = (
        'test "$(id -un)" = nobody && test "$(id -u)" = 65534 && test "$(pwd)" = / '
        '&& test "$RECONCILER_CHECK_HOST" = 192.0.2.7 && test "$RECONCILER_CHECK_PORT" = 80 '
        '&& test -z "$PYTEST_CURRENT_TEST"'
    )
    assert probe(sh(check), IPv4Address("192.0.2.7"), 80).ok
    assert not probe(sh('test "$(id -u)" = 0')).ok
    assert probe(sh('test "$(id -u)" = 0', user="root")).ok


def test_script_without_shell_gets_argv_verbatim() -> None:
    needs_root()
    # No shell: the ';' is an argument of test, not a command separator.
    assert probe(ScriptProbe(("/usr/bin/test", "a;b", "=", "a;b"), "nobody", False, False)).ok
    assert not probe(ScriptProbe(("/usr/bin/test", "a", "=", "b"), "nobody", False, False)).ok
    # With shell, the command is joined into one string for /bin/sh -c.
    assert probe(ScriptProbe(("exit", "0"), "nobody", True, False)).ok
    assert not probe(ScriptProbe(("exit", "1"), "nobody", True, False)).ok


def test_script_dynamic_weight() -> None:
    needs_root()
    assert probe(sh("exit 12", dynamic=True)) == ProbeResult(
        ok=True, detail="exit status 12: weight 10", weight=10
    )
    assert probe(sh("exit 0", dynamic=True)) == ProbeResult(ok=True, detail="exit status 0")
    assert probe(sh("exit 1", dynamic=True)) == ProbeResult(ok=False, detail="exit status 1")


@pytest.mark.parametrize(("trap", "how"), [("", "SIGTERM"), ("trap '' TERM; ", "SIGKILL")])
def test_script_timeout_kills_the_process_group(trap: str, how: str) -> None:
    needs_root()
    marker = f"{secrets.randbelow(10**6) + 10**6}.5"  # a unique sleep argument
    script = sh(f"{trap}sleep {marker} & sleep {marker}; wait")
    prober = Prober(script_kill_grace=timedelta(milliseconds=300))

    async def run() -> ProbeResult:
        return await prober.run(script, timeout=timedelta(milliseconds=300))

    started = time.monotonic()
    result = asyncio.run(run())
    assert result == ProbeResult(ok=False, detail=f"script: timeout after 300ms, killed ({how})")
    assert time.monotonic() - started < 3
    deadline = time.monotonic() + 2
    while marker_alive(marker):  # the background child went with the group
        assert time.monotonic() < deadline, "a child of the script survived the timeout"
        time.sleep(0.02)


def test_a_script_others_could_change_is_refused_and_never_runs() -> None:
    """keepalived's enable_script_security: a program in a world-writable directory (or
    one that is itself writable by others) fails the check without running."""
    needs_root()
    with tempfile.TemporaryDirectory(dir="/tmp") as top:
        base = Path(top)
        base.chmod(0o755)
        mark = base / "ran"
        ok_dir, open_dir = base / "bin", base / "open"
        for d, mode in ((ok_dir, 0o755), (open_dir, 0o777)):
            d.mkdir()
            d.chmod(mode)
        text = f"#!/bin/sh\necho $(id -u) > {mark}\n"
        for d in (ok_dir, open_dir):
            (d / "check").write_text(text)
            (d / "check").chmod(0o755)
        base.chmod(0o777)  # so that nobody can leave its mark (the check's own dir stays closed)
        refused = probe(ScriptProbe((str(open_dir / "check"),), "nobody", False, False))
        assert refused == ProbeResult(
            ok=False,
            detail=f"script: refused: directory {base} is writable by others (mode 0777)",
        )
        base.chmod(0o1777)  # sticky, like /tmp: allowed
        refused = probe(ScriptProbe((str(open_dir / "check"),), "nobody", False, False))
        assert refused == ProbeResult(
            ok=False,
            detail=f"script: refused: directory {open_dir} is writable by others (mode 0777)",
        )
        (ok_dir / "check").chmod(0o757)
        refused = probe(ScriptProbe((str(ok_dir / "check"),), "nobody", False, False))
        assert refused.detail == (
            f"script: refused: program {ok_dir / 'check'} is writable by others (mode 0757)"
        )
        assert not mark.exists()
        (ok_dir / "check").chmod(0o755)
        assert probe(ScriptProbe((str(ok_dir / "check"),), "nobody", False, False)).ok
        assert mark.read_text() == "65534\n"
        # shell: the first word of the command is checked as well as the shell.
        refused = probe(ScriptProbe((str(open_dir / "check"), "x"), "nobody", True, False))
        assert refused.detail == (
            f"script: refused: directory {open_dir} is writable by others (mode 0777)"
        )


def test_script_errors() -> None:
    assert probe(sh("exit 0", user="no-such-user-x")).detail == "script: no user 'no-such-user-x'"
    missing = probe(ScriptProbe(("/nonexistent/check",), "root", False, False))
    assert not missing.ok and "no such file" in missing.detail


# =========================================================================== files


def test_file_values(tmp_path: Path) -> None:
    f = tmp_path / "prio"
    f.write_text("5\n")
    assert probe(FileProbe(str(f))) == ProbeResult(ok=True, detail=f"{f}: 5", weight=5)
    f.write_text("-0x10")
    assert probe(FileProbe(str(f))).weight == -16
    gone = tmp_path / "missing"
    assert probe(FileProbe(str(gone))) == ProbeResult(
        ok=True, detail=f"{gone}: missing, counts as 0", weight=0
    )


def test_file_failures(tmp_path: Path) -> None:
    f = tmp_path / "prio"
    f.write_text("99999999999")
    assert probe(FileProbe(str(f))) == ProbeResult(
        ok=False, detail=f"{f}: number out of range, ignored"
    )
    directory = probe(FileProbe(str(tmp_path)))
    assert not directory.ok and "directory" in directory.detail


# =========================================================================== interfaces


INTERFACE_SCRIPT = """
import asyncio, json, subprocess, sys, time
from reconciler.adapters.probes import run_probe
from reconciler.model.checks import InterfaceProbe

def state():
    r = asyncio.run(run_probe(InterfaceProbe(sys.argv[1])))
    return [r.ok, r.detail]

def settle(running):
    # The kernel changes a carrier's operational state after the command returns (its
    # link watch runs later, longer on a busy machine): wait for ip's view of it first.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        (link,) = json.loads(subprocess.run(
            ["ip", "-j", "link", "show", "dev", sys.argv[1]],
            check=True, capture_output=True, text=True).stdout)
        if (link["operstate"] == "UP") == running:
            return
        time.sleep(0.01)
    raise SystemExit(f"{sys.argv[1]} never became {'running' if running else 'not running'}")

def step(dev, updown, running):
    subprocess.run(["ip", "link", "set", dev, updown], check=True)
    settle(running)
    out.append(state())

out = [state()]
step(sys.argv[1], "up", False)
step(sys.argv[2], "up", True)
step(sys.argv[2], "down", False)
step(sys.argv[1], "down", False)
out.append(asyncio.run(run_probe(InterfaceProbe("nosuch0"))).ok)
print(json.dumps(out))
"""


@pytest.mark.root
def test_interface_up_running_and_down() -> None:
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("needs root and ip (Debian package iproute2)")
    netns = f"rcprobe{os.getpid()}"
    subprocess.run(["ip", "netns", "add", netns], check=True)
    try:
        # Both ends are made inside the namespace: nothing touches the root namespace.
        subprocess.run(
            ["ip", "-n", netns, "link", "add", "vcheck0", "type", "veth", "peer", "name", "vpeer0"],
            check=True,
        )
        done = subprocess.run(
            [
                "ip",
                "netns",
                "exec",
                netns,
                sys.executable,
                "-c",
                INTERFACE_SCRIPT,
                "vcheck0",
                "vpeer0",
            ],
            check=True,
            capture_output=True,
            text=True,
            cwd=REPO,
            timeout=60,
        )
    finally:
        subprocess.run(["ip", "netns", "del", netns], check=True)
    states = json.loads(done.stdout)
    assert states == [
        [False, "vcheck0: down"],
        [False, "vcheck0: up, not running (no carrier)"],  # the peer is down
        [True, "vcheck0: up, running"],
        [False, "vcheck0: up, not running (no carrier)"],
        [False, "vcheck0: down"],
        False,
    ]


def test_interface_in_this_namespace() -> None:
    assert probe(InterfaceProbe("lo")) == ProbeResult(ok=True, detail="lo: up, running")
    assert probe(InterfaceProbe("nosuch0")) == ProbeResult(
        ok=False, detail="nosuch0: no such interface"
    )
    assert not probe(InterfaceProbe("x" * 16)).ok


# =========================================================================== concurrency


def test_concurrency_is_bounded(web: Server) -> None:
    prober = Prober(max_concurrent=3)
    p = http_probe(f"http://127.0.0.1:{web.port}/hold")

    async def scenario() -> list[ProbeResult]:
        return await asyncio.gather(
            *(prober.run(p, timeout=timedelta(seconds=5)) for _ in range(8))
        )

    assert all(r.ok for r in asyncio.run(scenario()))
    assert web.seen.peak == 3  # never more than three requests in flight at the server


# =========================================================================== Prober.start


def start_all(
    prober: Prober, probes: list[tuple[Probe, IPAddress | None, int | None]], timeout_s: float = 1
) -> list[ProbeResult]:
    """Start every probe with callbacks; the results in order once all are done."""

    async def scenario() -> list[ProbeResult]:
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in probes]
        for fut, (p, host, port) in zip(futures, probes, strict=True):
            prober.start(p, host, port, timedelta(seconds=timeout_s), None, None, fut.set_result)
        return list(await asyncio.gather(*futures))

    return asyncio.run(scenario())


def test_start_runs_tcp_on_callbacks_and_other_probes_in_tasks(web: Server) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        refused_port = closed.getsockname()[1]
    results = start_all(
        Prober(),
        [
            (TcpProbe(None, None), LOCALHOST, web.port),
            (TcpProbe(LOCALHOST, refused_port), None, None),
            (TcpProbe(None, None), None, None),
            (http_probe("/ok"), LOCALHOST, web.port),
            (FileProbe("/nonexistent"), None, None),
        ],
    )
    assert results == [
        ProbeResult(ok=True, detail="connected"),
        ProbeResult(ok=False, detail="connect: connection refused"),
        ProbeResult(ok=False, detail="tcp: no host or port to connect to"),
        ProbeResult(ok=True, detail="HTTP 200"),
        ProbeResult(ok=True, detail="/nonexistent: missing, counts as 0", weight=0),
    ]


def test_start_times_out_and_cancels() -> None:
    prober = Prober(max_concurrent=4)
    with unanswered_port() as port:

        async def scenario() -> None:
            loop = asyncio.get_running_loop()
            timed_out: asyncio.Future[ProbeResult] = loop.create_future()
            started = loop.time()
            prober.start(
                TcpProbe(LOCALHOST, port),
                None,
                None,
                timedelta(milliseconds=200),
                None,
                None,
                timed_out.set_result,
            )
            assert prober.in_flight == 1
            result = await timed_out
            # Deadlines are kept in 10 ms buckets: never early, at most 10 ms late.
            assert 0.2 <= loop.time() - started < 0.4
            assert result == ProbeResult(ok=False, detail="timeout after 200ms")
            assert prober.in_flight == 0

            seen: list[ProbeResult] = []
            attempt = prober.start(
                TcpProbe(LOCALHOST, port), None, None, timedelta(1), None, None, seen.append
            )
            assert prober.in_flight == 1
            attempt.cancel()
            assert prober.in_flight == 0 and attempt.done
            await asyncio.sleep(0.05)
            assert seen == []  # a cancelled attempt never reports

        asyncio.run(scenario())


def test_start_shares_the_concurrency_bound(web: Server) -> None:
    prober = Prober(max_concurrent=2)
    hold = http_probe(f"http://127.0.0.1:{web.port}/hold")

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        done: list[asyncio.Future[ProbeResult]] = []
        probes: list[Probe] = [hold, hold, TcpProbe(LOCALHOST, web.port)]
        for p in probes:
            fut: asyncio.Future[ProbeResult] = loop.create_future()
            prober.start(p, None, None, timedelta(seconds=5), None, None, fut.set_result)
            done.append(fut)
            await asyncio.sleep(0.01)  # let the HTTP tasks take their slots first
        # Both slots are taken by the held requests: the TCP probe waits in a task.
        assert prober.in_flight == 2 and not done[2].done()
        results = await asyncio.gather(*done)
        assert [r.ok for r in results] == [True, True, True]
        assert prober.in_flight == 0

    asyncio.run(scenario())
    assert web.seen.peak == 2


def test_start_reports_a_bad_source_without_raising() -> None:
    async def scenario() -> ProbeResult:
        fut: asyncio.Future[ProbeResult] = asyncio.get_running_loop().create_future()
        Prober().start(
            TcpProbe(LOCALHOST, 9), None, None, timedelta(1), None, "nosuchdev0", fut.set_result
        )
        return await fut

    result = asyncio.run(scenario())
    assert result == ProbeResult(ok=False, detail="connect: no such device")


def test_a_waiting_probe_can_be_cancelled_without_leaking_its_slot(web: Server) -> None:
    prober = Prober(max_concurrent=1)
    hold = http_probe(f"http://127.0.0.1:{web.port}/hold")

    async def scenario() -> None:
        first = asyncio.create_task(prober.run(hold, timeout=timedelta(seconds=5)))
        await asyncio.sleep(0.02)
        waiting = asyncio.create_task(prober.run(hold, timeout=timedelta(seconds=5)))
        await asyncio.sleep(0.02)
        waiting.cancel()
        assert (await first).ok
        with contextlib.suppress(asyncio.CancelledError):
            await waiting
        assert prober.in_flight == 0
        assert (await prober.run(TcpProbe(LOCALHOST, web.port))).ok

    asyncio.run(scenario())


@dataclass(frozen=True)
class UnknownProbe:
    """A kind the model might gain before the prober learns it."""


def test_an_unknown_probe_kind_fails_loudly() -> None:
    unknown: Probe = UnknownProbe()  # type: ignore[assignment]

    async def scenario() -> ProbeResult:
        prober = Prober()
        with pytest.raises(AssertionError, match="UnknownProbe"):
            await prober.run(unknown)
        assert prober.in_flight == 0
        fut: asyncio.Future[ProbeResult] = asyncio.get_running_loop().create_future()
        prober.start(unknown, None, None, timedelta(1), None, None, fut.set_result, name="u")
        result = await fut
        assert prober.in_flight == 0
        return result

    result = asyncio.run(scenario())
    assert not result.ok and result.detail.startswith("probe error: AssertionError(")
