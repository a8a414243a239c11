"""``genhash``: the MD5 of a page, for a check's ``digest``."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Mapping
from datetime import timedelta

from reconciler.adapters.probes.details import describe, ms
from reconciler.adapters.probes.http import HttpError, http_exchange, http_request
from reconciler.adapters.probes.sockets import source_of
from reconciler.model.checks import HttpProbe, TlsOptions
from reconciler.model.common import IPAddress


class ProbeError(Exception):
    """A probe could not produce an answer (used by :func:`digest_url`)."""


async def digest_url(
    url: str,
    *,
    virtualhost: str | None = None,
    headers: Mapping[str, str] | None = None,
    tls: TlsOptions | None = None,
    timeout: timedelta = timedelta(seconds=5),
    source_address: IPAddress | None = None,
    source_interface: str | None = None,
) -> str:
    """The MD5 to paste into a check's ``digest``, as keepalived's ``genhash`` prints it.

    Like genhash, the digest is returned whatever the status code. Raises
    :class:`ProbeError` when no response comes back, ValueError for a bad URL.
    """
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"not an absolute http:// or https:// URL: {url!r}")
    probe = HttpProbe(
        url=url,
        method="GET",
        status=((100, 599),),
        digest=None,
        regex=None,
        virtualhost=virtualhost,
        headers=tuple(sorted((headers or {}).items())),
        tls=tls,
    )
    request = http_request(probe, None, None)
    try:
        async with asyncio.timeout(timeout.total_seconds()):
            response = await http_exchange(
                request, source_of(source_address, source_interface), want_digest=True
            )
    except TimeoutError:
        raise ProbeError(f"{url}: no response within {ms(timeout)}") from None
    except (OSError, ssl.SSLError, HttpError) as exc:
        raise ProbeError(f"{url}: {describe(exc)}") from exc
    return response.digest
