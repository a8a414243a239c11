"""A node exports its elections and failovers as OpenTelemetry spans to an OTLP collector."""

from __future__ import annotations

import ipaddress
import json
import signal
import sys
import textwrap
import time

import pytest

from reconciler.testing.netlab import Lab
from reconciler.testing.vrrp_nodes import Instance, cluster_yaml, start_ours, wait_following
from reconciler.vrrp.timers import master_down_interval

pytestmark = pytest.mark.root

VIP = ipaddress.ip_interface("192.0.2.100/24")

# An OTLP/HTTP receiver: prints every span it gets as one JSON line.
RECEIVER = textwrap.dedent(
    """
    import http.server, json, sys
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    def value(v):
        return getattr(v, v.WhichOneof("value"))

    class H(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            req = ExportTraceServiceRequest.FromString(body)
            for rs in req.resource_spans:
                res = {a.key: value(a.value) for a in rs.resource.attributes}
                for ss in rs.scope_spans:
                    for sp in ss.spans:
                        attrs = {a.key: value(a.value) for a in sp.attributes}
                        print(json.dumps({"name": sp.name, "attrs": attrs, "resource": res,
                              "ms": (sp.end_time_unix_nano - sp.start_time_unix_nano) / 1e6}),
                              flush=True)
            self.send_response(200)
            self.end_headers()

        def log_message(self, *a):
            pass

    print("ready", flush=True)
    http.server.HTTPServer(("127.0.0.1", 4318), H).serve_forever()
    """
)


def test_failover_is_a_span_at_the_collector(make_lab) -> None:  # type: ignore[no-untyped-def]
    lab: Lab = make_lab(2)
    h1, h2 = lab.host(1), lab.host(2)
    config = lab.tmpdir / "c.yaml"
    config.write_text(
        cluster_yaml(lab.hosts, (Instance("web", 97, (VIP,), {"h1": 150, "h2": 100}),))
    )
    collector = h2.spawn([sys.executable, "-c", RECEIVER])
    collector.wait_for_output("ready")
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_BSP_SCHEDULE_DELAY": "100"}
    # h1 first: at 100 ms adverts the two Master_Down_Intervals differ by 20 ms, less
    # than two Python start-ups can differ by on a busy machine.
    p1 = start_ours(h1, config, lab.tmpdir / "s1")
    h1.watcher.wait_for(VIP, timeout=10)
    p2 = start_ours(h2, config, lab.tmpdir / "s2", env=env)
    wait_following(h2)  # h2 up and following h1
    p1.kill()
    h2.watcher.wait_for(VIP, timeout=5)
    p2.signal(signal.SIGTERM)
    assert p2.wait(15) == 0
    time.sleep(0.3)
    spans = [json.loads(line) for line in collector.output().splitlines() if line.startswith("{")]
    collector.stop()
    by_name: dict[str, list[dict]] = {}  # type: ignore[type-arg]
    for s in spans:
        by_name.setdefault(s["name"], []).append(s)
    moves = [
        (s["attrs"]["vrrp.from_state"], s["attrs"]["vrrp.to_state"])
        for s in by_name["vrrp.transition"]
    ]
    assert moves == [("initialize", "backup"), ("backup", "master"), ("master", "initialize")]
    (failover,) = by_name["vrrp.failover"]
    assert failover["attrs"]["vrrp.instance"] == "web"
    assert failover["attrs"]["vrrp.failover.kind"] == "master_no_response"
    # From the last advert heard to taking over: the backup's Master_Down_Interval.
    mdi_ms = float(master_down_interval(100, 10)) * 1000
    assert mdi_ms - 5 <= failover["ms"] <= mdi_ms + 60, failover["ms"]
    assert failover["resource"]["reconciler.node"] == "h2"
    assert failover["resource"]["service.name"] == "reconciler"
