"""Health probes: the network (and process) side of health checks.

:func:`run_probe` (or :meth:`Prober.run` with an explicit concurrency bound)
turns a probe of the model into one :class:`ProbeResult`; :meth:`Prober.start`
does the same without awaiting, reporting through a callback, which is how the
check scheduler runs a thousand probes a second: TCP connects then run on loop
callbacks alone (no task, no future, deadlines in shared 10 ms buckets), every
other probe in a named task. Neither raises for a failing target: every
failure is ``ok=False`` with a detail for logs and status. The rise/fall
decision is the pure policy's (:mod:`reconciler.health.policy`), not ours.

Behaviour follows keepalived's checkers, which are the reference:

* ``tcp``: up when the connection is established (TCP_CHECK); then closed.
* ``http``/``https``: an HTTP/1.0 request with ``Connection: close`` (as
  keepalived's default ``http_protocol``), so the body is never chunked and its
  MD5 is exactly what ``genhash`` prints: the MD5 of the bytes after the blank
  line that ends the headers, cut at ``Content-Length`` when the server sent
  one. Checked in keepalived's order: status, digest, regex. The regex (Python
  ``re`` syntax, on bytes) is searched in the first MiB of the body.
* ``dns``: a query with RD set; up when a response with our ID and question
  comes back with RCODE NOERROR (DNS_CHECK) and, if ``expect`` is given, every
  expected value is in the answer section.
* ``script``: up on exit 0 (MISC_CHECK / track_script), with
  ``dynamic_weight`` as ``misc_dynamic``. Run without a shell unless asked,
  in its own session (process group), as the configured user (setuid/setgid
  and supplementary groups in the child), with ``/`` as working directory, a
  minimal environment and no stdio; refused (a failing probe) when the program
  could be changed by anyone but root and that user, as keepalived's
  ``enable_script_security`` (:mod:`reconciler.adapters.programs`). On timeout
  the group gets SIGTERM, then SIGKILL after a grace period, like keepalived.
* ``file``: the integer in the file, read as keepalived's ``track_file`` reads
  it (a missing file is 0); the probe fails only when the number is ignored.
* ``interface``: up while the link is administratively up and running
  (IFF_UP and IFF_RUNNING, the flags keepalived's ``track_interface`` uses),
  read with SIOCGIFFLAGS on a socket of the caller's network namespace.

Sockets may be bound to a source address and to an interface
(SO_BINDTODEVICE). At most ``max_concurrent`` probes of one :class:`Prober`
run at once, whichever way they were started; the timeout starts when a probe
gets its slot.

The modules, one concern each: :mod:`.prober` (the bound, and the dispatch from
a probe's kind to its code, which raises on a kind it does not know),
:mod:`.attempt` (a probe in flight), :mod:`.slots`, :mod:`.sockets` (source
binding, connect), one module per kind (:mod:`.tcp`, :mod:`.http`, :mod:`.dns`,
:mod:`.script`, :mod:`.local` for file and interface), :mod:`.digest`
(genhash) and :mod:`.details` (the wording of failures).
"""

from __future__ import annotations

from reconciler.adapters.probes.attempt import OnDone, ProbeAttempt
from reconciler.adapters.probes.digest import ProbeError, digest_url
from reconciler.adapters.probes.http import USER_AGENT
from reconciler.adapters.probes.local import interface_flags
from reconciler.adapters.probes.prober import (
    DEFAULT_MAX_CONCURRENT,
    Prober,
    default_prober,
    run_probe,
)
from reconciler.adapters.probes.script import SCRIPT_KILL_GRACE

__all__ = [
    "DEFAULT_MAX_CONCURRENT",
    "SCRIPT_KILL_GRACE",
    "USER_AGENT",
    "OnDone",
    "ProbeAttempt",
    "ProbeError",
    "Prober",
    "default_prober",
    "digest_url",
    "interface_flags",
    "run_probe",
]
