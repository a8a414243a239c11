"""Health checks: one probe and its schedule (rise/fall policy)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import ClassVar

from reconciler.model.common import CheckState, IPAddress, Key


@dataclass(frozen=True)
class TcpProbe:
    host: IPAddress | None
    port: int | None


@dataclass(frozen=True)
class TlsOptions:
    verify: bool = True
    ca_file: str | None = None
    sni: str | None = None


@dataclass(frozen=True)
class HttpProbe:
    url: str  # absolute URL, or a path sent to the real server
    method: str
    status: tuple[tuple[int, int], ...]  # inclusive ranges
    digest: str | None
    regex: str | None
    virtualhost: str | None
    headers: tuple[tuple[str, str], ...]
    tls: TlsOptions | None  # None: plain http unless the URL says https


@dataclass(frozen=True)
class DnsProbe:
    name: str
    type: str
    server: IPAddress | None
    port: int | None
    protocol: str
    expect: tuple[str, ...]


@dataclass(frozen=True)
class ScriptProbe:
    command: tuple[str, ...]
    user: str
    shell: bool
    dynamic_weight: bool


@dataclass(frozen=True)
class FileProbe:
    path: str


@dataclass(frozen=True)
class InterfaceProbe:
    name: str


Probe = TcpProbe | HttpProbe | DnsProbe | ScriptProbe | FileProbe | InterfaceProbe


def probe_kind(probe: Probe) -> str:
    return {
        TcpProbe: "tcp",
        HttpProbe: "http",
        DnsProbe: "dns",
        ScriptProbe: "script",
        FileProbe: "file",
        InterfaceProbe: "interface",
    }[type(probe)]


@dataclass(frozen=True)
class Check:
    kind: ClassVar[str] = "check"

    name: str
    probe: Probe
    interval: timedelta = timedelta(seconds=1)
    timeout: timedelta = timedelta(seconds=1)
    rise: int = 1
    fall: int = 1
    retries: int = 0
    retry_delay: timedelta = timedelta(seconds=1)
    initial: CheckState = CheckState.UNKNOWN
    source_address: IPAddress | None = None
    source_interface: str | None = None

    @property
    def key(self) -> Key:
        return (self.name,)
