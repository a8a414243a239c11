"""Health checks: the named checks of `checks:`, and the checks of real servers (a name or
an inline check).

A check that VRRP tracks runs on its own, so it must say whom it probes; a real server's
check may leave the host and port to the server it checks.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from reconciler.config.build_context import Context, ip, known
from reconciler.config.yamlload import Path, dotted
from reconciler.model.checks import (
    Check,
    DnsProbe,
    FileProbe,
    HttpProbe,
    InterfaceProbe,
    Probe,
    ScriptProbe,
    TcpProbe,
    TlsOptions,
)
from reconciler.model.common import CheckState
from reconciler.model.vrrp import DEFAULT_HOOK_USER


def check(ctx: Context, path: Path, name: str, *, tracking: bool) -> Check:
    raw = ctx.doc.get(path)
    probe = _probe(ctx, path, raw, tracking=tracking)
    src = raw.get("source", {})
    interval = ctx.duration_or((*path, "interval"), timedelta(seconds=1))
    timeout = ctx.duration_or((*path, "timeout"), timedelta(seconds=1))
    for key, value in (("interval", interval), ("timeout", timeout)):
        if key in raw and value <= timedelta(0):
            ctx.error((*path, key), f"{dotted(path)}.{key}: must be greater than 0")
    return Check(
        name=name,
        probe=probe,
        interval=interval,
        timeout=timeout,
        rise=raw.get("rise", 1),
        fall=raw.get("fall", 1),
        retries=raw.get("retries", 0),
        retry_delay=ctx.duration_or((*path, "retry_delay"), timedelta(seconds=1)),
        initial=CheckState(raw.get("initial", "unknown")),
        source_address=ip(src.get("address")),
        source_interface=src.get("interface"),
    )


def check_ref(ctx: Context, path: Path, inline_name: str, checks: dict[str, Check]) -> Check | None:
    """A real server's `check`: false (none), the name of a check, or an inline check."""
    ref = ctx.doc.get(path)
    if ref is False:
        return None
    if isinstance(ref, str):
        if ref not in checks:
            ctx.error(
                path,
                f"{dotted(path)}: unknown check {ref!r} ({known(ref, checks, 'checks')})",
            )
            return None
        named = checks[ref]
        # A named check used for real servers was validated as a tracking check
        # only if something tracks it; real servers may leave host/port unset.
        return named
    return check(ctx, path, inline_name, tracking=False)


def _probe(ctx: Context, path: Path, raw: dict[str, Any], *, tracking: bool) -> Probe:
    if "tcp" in raw:
        return _tcp(ctx, path, raw["tcp"], tracking=tracking)
    if "http" in raw:
        return _http(ctx, path, raw["http"], tracking=tracking)
    if "dns" in raw:
        return _dns(ctx, path, raw["dns"], tracking=tracking)
    if "script" in raw:
        s = raw["script"]
        return ScriptProbe(
            command=tuple(s["command"]),
            user=ctx.user((*path, "script", "user"), DEFAULT_HOOK_USER, "this check script is"),
            shell=s.get("shell", False),
            dynamic_weight=s.get("dynamic_weight", False),
        )
    if "file" in raw:
        return FileProbe(path=raw["file"]["path"])
    return InterfaceProbe(name=raw["interface"]["name"])


def _tcp(ctx: Context, path: Path, tcp: dict[str, Any], *, tracking: bool) -> TcpProbe:
    if tracking and ("host" not in tcp or "port" not in tcp):
        ctx.error(
            (*path, "tcp"),
            f"{dotted(path)}.tcp: a check used for VRRP tracking needs host and port "
            "(only real-server checks default them to the server)",
            at_key=True,
        )
    return TcpProbe(host=ip(tcp.get("host")), port=tcp.get("port"))


def _http(ctx: Context, path: Path, http: dict[str, Any], *, tracking: bool) -> HttpProbe:
    url = http.get("url", "/")
    if tracking and not url.startswith(("http://", "https://")):
        ctx.error(
            (*path, "http", "url") if "url" in http else (*path, "http"),
            f"{dotted(path)}.http.url: a check used for VRRP tracking needs an absolute "
            "http:// or https:// URL",
            at_key="url" not in http,
        )
    tls = http.get("tls")
    return HttpProbe(
        url=url,
        method=http.get("method", "GET"),
        status=status_ranges(http.get("status", "200-299")),
        digest=(http["digest"].lower() if "digest" in http else None),
        regex=http.get("regex"),
        virtualhost=http.get("virtualhost"),
        headers=tuple(sorted(http.get("headers", {}).items())),
        tls=TlsOptions(
            verify=tls.get("verify", True), ca_file=tls.get("ca_file"), sni=tls.get("sni")
        )
        if tls is not None
        else None,
    )


def _dns(ctx: Context, path: Path, dns: dict[str, Any], *, tracking: bool) -> DnsProbe:
    if tracking and "server" not in dns:
        ctx.error(
            (*path, "dns"),
            f"{dotted(path)}.dns: a check used for VRRP tracking needs a server",
            at_key=True,
        )
    return DnsProbe(
        name=dns["name"],
        type=dns.get("type", "A"),
        server=ip(dns.get("server")),
        port=dns.get("port"),
        protocol=dns.get("protocol", "udp"),
        expect=tuple(dns.get("expect", ())),
    )


def status_ranges(text: str) -> tuple[tuple[int, int], ...]:
    """`200-299,301` as ((200, 299), (301, 301))."""
    out = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        out.append((int(lo), int(hi or lo)))
    return tuple(out)
