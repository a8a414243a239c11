"""dashboards/: alert rules, their promtool unit tests and the Grafana dashboard.

Without root: ``promtool check rules`` and ``promtool test rules`` pass, every alert is tested
firing and not firing, the dashboard is well formed and its PromQL parses. With root (network
namespaces): every ``reconciler_*`` name in the rules and the dashboard is exported by a real
node, and a real Prometheus, with the scrape config of dashboards/README.md and alerts.yaml,
scrapes a two-node cluster; the dashboard's queries run, "current master" names the master,
and the priority-drop alert fires when a tracked file lowers the priorities.
"""

from __future__ import annotations

import ipaddress
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml

from reconciler.testing.clusters import H1_MASTER, Track, Vrrp, cluster_text, file_check, lab_nodes
from reconciler.testing.netlab import Host, Lab, LabProcess
from reconciler.testing.vrrp_nodes import start_ours

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = ROOT / "dashboards"
RULES = DASHBOARDS / "alerts.yaml"
RULE_TESTS = DASHBOARDS / "alerts.test.yaml"
DASHBOARD = DASHBOARDS / "reconciler-cluster.json"
README = DASHBOARDS / "README.md"


def _tool(name: str) -> str | None:
    found = shutil.which(name)
    if found is None and Path(f"/usr/bin/{name}").exists():
        found = f"/usr/bin/{name}"
    return found


PROMTOOL = _tool("promtool")
PROMETHEUS = _tool("prometheus")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool is not installed (Debian package prometheus)"
)
needs_prometheus = pytest.mark.skipif(
    PROMETHEUS is None, reason="prometheus is not installed (Debian package prometheus)"
)

METRIC_NAME = re.compile(r"\breconciler_[a-z0-9_]*[a-z0-9]\b")
# Grafana's interval variables, as a Prometheus scraping every second could see them.
GRAFANA_INTERVALS = {"__rate_interval": "10s", "__interval": "2s", "__range": "1m"}
CURRENT_MASTER = "Current master per instance"
REQUIRED_PANELS = {
    CURRENT_MASTER,
    "Masters per instance",
    "VRRP state per node",
    "Effective vs configured priority",
    "Transitions by reason",
    "Adverts received and sent",
    "Invalid adverts by reason",
    "Health checks up/down",
    "Mean probe duration",
    "Config reloads by result",
    "Running revision per node",
}


# ------------------------------------------------------------------ reading the files


def _rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load(RULES.read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


def _dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def _panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel, rows' nested panels included, rows excluded."""
    out: list[dict[str, Any]] = []
    for p in dashboard["panels"]:
        if p["type"] == "row":
            out += p.get("panels", [])
        else:
            out.append(p)
    return out


def _panel_queries(dashboard: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(panel title, refId, Grafana expression) of every panel target."""
    return [(p["title"], t["refId"], t["expr"]) for p in _panels(dashboard) for t in p["targets"]]


def _variables(dashboard: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in dashboard["templating"]["list"]}


def _variable_queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(variable name, its query as PromQL) of the query variables."""
    out = []
    for name, v in _variables(dashboard).items():
        if v["type"] != "query":
            continue
        query = v["query"]["query"] if isinstance(v["query"], dict) else v["query"]
        if m := re.fullmatch(r"label_values\((.*),\s*(\w+)\)", query, re.S):
            query = f"group by ({m[2]}) ({m[1]})"
        elif m := re.fullmatch(r"query_result\((.*)\)", query, re.S):
            query = m[1]
        out.append((name, query))
    return out


def _promql(expr: str, variables: set[str], values: dict[str, str] | None = None) -> str:
    """A Grafana expression as Prometheus gets it: template variables are "All" (.*)."""
    values = values or {}

    def sub(m: re.Match[str]) -> str:
        name = m[1] or m[2]
        if name in GRAFANA_INTERVALS:
            return GRAFANA_INTERVALS[name]
        assert name in variables, f"unknown variable ${name} in {expr!r}"
        return values.get(name, ".*")

    return re.sub(r"\$\{(\w+)\}|\$(\w+)", sub, expr)


def _names_used() -> dict[str, set[str]]:
    """Every reconciler_* name in the rules (expressions, annotation queries) and dashboard."""
    used: dict[str, set[str]] = {}
    for rule in _rules():
        texts = [rule["expr"], *rule.get("annotations", {}).values()]
        for text in texts:
            for name in METRIC_NAME.findall(text):
                used.setdefault(name, set()).add(f"alerts.yaml {rule['alert']}")
    dashboard = _dashboard()
    for title, ref, expr in _panel_queries(dashboard):
        for name in METRIC_NAME.findall(expr):
            used.setdefault(name, set()).add(f"dashboard panel {title!r} {ref}")
    for var, query in _variable_queries(dashboard):
        for name in METRIC_NAME.findall(query):
            used.setdefault(name, set()).add(f"dashboard variable {var}")
    return used


def _exposed_names(exposition: str) -> set[str]:
    """Sample names a scrape of this text stores, from the TYPE lines and the samples.

    Families without samples (no invalid advert yet) still have their TYPE line. Counters
    and infos are stored with their _total and _info suffixes, whichever way the TYPE line
    names them (text format 0.0.4 or OpenMetrics).
    """
    names: set[str] = set()
    for line in exposition.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            names.add(name)
            if kind == "counter" and not name.endswith("_total"):
                names.add(name + "_total")
            if kind == "info" and not name.endswith("_info"):
                names.add(name + "_info")
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return names


def _promtool(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run(
        [PROMTOOL, *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )


# ------------------------------------------------------------------ without root


@needs_promtool
def test_promtool_check_rules() -> None:
    proc = _promtool("check", "rules", str(RULES))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"SUCCESS: {len(_rules())} rules found" in proc.stdout


@needs_promtool
def test_promtool_rule_unit_tests() -> None:
    proc = _promtool("test", "rules", str(RULE_TESTS))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout


def test_rules_are_complete_and_tested_both_ways() -> None:
    tests = yaml.safe_load(RULE_TESTS.read_text())
    fired: set[str] = set()
    quiet: set[str] = set()
    for group in tests["tests"]:
        for case in group.get("alert_rule_test", []):
            (fired if case["exp_alerts"] else quiet).add(case["alertname"])
    alerts = {rule["alert"] for rule in _rules()}
    assert len(alerts) == len(_rules()), "every rule is an alert, names are unique"
    assert alerts - fired == set(), "alerts never tested firing"
    assert alerts - quiet == set(), "alerts never tested not firing"
    assert (fired | quiet) - alerts == set(), "tests of alerts that do not exist"
    for rule in _rules():
        assert rule["labels"]["severity"] in {"critical", "warning"}, rule["alert"]
        assert {"summary", "description"} <= rule["annotations"].keys(), rule["alert"]


def test_dashboard_is_well_formed() -> None:
    dashboard = _dashboard()
    assert dashboard["schemaVersion"] >= 36
    variables = _variables(dashboard)
    ds = variables["datasource"]
    assert (ds["type"], ds["query"]) == ("datasource", "prometheus")
    for name in ("cluster", "node", "vrrp_instance"):
        v = variables[name]
        assert v["type"] == "query" and v["datasource"]["uid"] == "${datasource}", name
        assert v["includeAll"] and v["allValue"] == ".*", name
    panels = _panels(dashboard)
    rows = [p for p in dashboard["panels"] if p["type"] == "row"]
    ids = [p["id"] for p in [*rows, *panels]]
    assert len(ids) == len(set(ids)), "panel ids are unique"
    assert {p["title"] for p in panels} >= REQUIRED_PANELS
    cells: set[tuple[int, int]] = set()
    for p in [*rows, *panels]:
        g = p["gridPos"]
        assert g["x"] + g["w"] <= 24, p["title"]
        mine = {
            (x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])
        }
        assert not cells & mine, f"{p['title']} overlaps another panel"
        cells |= mine
    for p in panels:
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
        refs = [t["refId"] for t in p["targets"]]
        assert refs and len(refs) == len(set(refs)), p["title"]
        for t in p["targets"]:
            assert t["datasource"] == p["datasource"] and t["expr"].strip(), p["title"]


@needs_promtool
def test_dashboard_promql_parses() -> None:
    """Each query, its variables set to All, as a recording rule that promtool checks."""
    dashboard = _dashboard()
    variables = set(_variables(dashboard))
    queries = [(f"{t}/{r}", _promql(e, variables)) for t, r, e in _panel_queries(dashboard)]
    queries += [(f"${n}", _promql(q, variables)) for n, q in _variable_queries(dashboard)]
    rules = [{"record": f"dashboard:query_{i}", "expr": q} for i, (_, q) in enumerate(queries)]
    with tempfile.TemporaryDirectory(prefix="dashboard-queries-") as tmp:
        path = Path(tmp) / "dashboard-queries.yaml"
        path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
        proc = _promtool("check", "rules", str(path))
    assert proc.returncode == 0, (
        proc.stdout
        + proc.stderr
        + "\n".join(f"query_{i}: {where}: {q}" for i, (where, q) in enumerate(queries))
    )


# ------------------------------------------------------------------ a live cluster

VIP = ipaddress.ip_interface("192.0.2.100/24")


def _config(lab: Lab, flag: Path) -> str:
    maintenance = file_check("maintenance", flag, interval="200ms")
    web = Vrrp("web", 91, [VIP], H1_MASTER, "100ms", track=[Track("maintenance", -1)])
    return cluster_text(lab_nodes(lab.hosts), [web], checks=[maintenance])


@dataclass
class Cluster:
    lab: Lab
    h1: Host
    h2: Host
    flag: Path  # the tracked file: its number times the weight (-1) lowers both priorities
    nodes: dict[str, LabProcess]
    metrics_urls: dict[str, str]  # as reachable from h1's namespace


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    """Two nodes; h1 (priority 150) is master. h2 serves metrics on its lab address."""
    with Lab(2) as lab:
        h1, h2 = lab.host(1), lab.host(2)
        flag = lab.tmpdir / "maintenance"
        config = lab.tmpdir / "cluster.yaml"
        config.write_text(_config(lab, flag))
        nodes = {
            "h1": start_ours(h1, config, lab.tmpdir / "h1"),
            "h2": h2.spawn(
                [
                    sys.executable, "-m", "reconciler", "run", str(config),
                    "--node", "h2", "--state-dir", str(lab.tmpdir / "h2"),
                    "--metrics-addr", f"{h2.ipv4}:9650",
                ],
                name="reconciler-h2",
            ),
        }  # fmt: skip
        try:
            h1.watcher.wait_for(VIP, timeout=10)
            for proc in nodes.values():
                proc.wait_for_output("metrics and status on http://", timeout=10)
            urls = {"h1": "127.0.0.1:9650", "h2": f"{h2.ipv4}:9650"}
            yield Cluster(lab, h1, h2, flag, nodes, urls)
        finally:
            for proc in nodes.values():
                proc.stop()


_GET = (
    "import sys, urllib.error, urllib.request\n"
    "try:\n"
    "    r = urllib.request.urlopen(sys.argv[1], timeout=5)\n"
    "    sys.stdout.write(str(r.status) + '\\n' + r.read().decode())\n"
    "except urllib.error.HTTPError as exc:\n"
    "    sys.stdout.write(str(exc.code) + '\\n' + exc.read().decode())\n"
    "except OSError as exc:\n"
    "    sys.stdout.write('0\\n' + repr(exc))\n"
)


def _http(host: Host, url: str) -> tuple[int, str]:
    """GET from inside host's namespace: (HTTP status, body); status 0 if it did not connect."""
    out = host.run([sys.executable, "-I", "-S", "-c", _GET, url], timeout=30).stdout
    status, _, body = out.partition("\n")
    return int(status), body


_T = TypeVar("_T")


def _eventually(what: str, probe: Callable[[], _T | None], timeout: float = 15.0) -> _T:
    deadline = time.monotonic() + timeout
    while True:
        got = probe()
        if got is not None:
            return got
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} within {timeout} s")
        time.sleep(0.2)


class PromAPI:
    def __init__(self, host: Host, base: str = "http://127.0.0.1:9090") -> None:
        self.host = host
        self.base = base

    def get(self, path: str, **params: str) -> Any:
        url = self.base + path + ("?" + urllib.parse.urlencode(params) if params else "")
        status, body = _http(self.host, url)
        assert status == 200, f"GET {url}: {status} {body}"
        data = json.loads(body)
        assert data["status"] == "success", data
        return data["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        data = self.get("/api/v1/query", query=expr)
        assert data["resultType"] == "vector", (expr, data)
        result: list[dict[str, Any]] = data["result"]
        return result

    def alerts(self) -> list[dict[str, Any]]:
        alerts: list[dict[str, Any]] = self.get("/api/v1/alerts")["alerts"]
        return alerts


def _prometheus_config(cluster: Cluster, rules: Path) -> dict[str, Any]:
    """The scrape config recommended in README.md, scraping every second the lab's nodes."""
    blocks = re.findall(r"```yaml\n(.*?)```", README.read_text(), re.S)
    (recommended,) = [b for b in blocks if "scrape_configs:" in b]
    (job,) = yaml.safe_load(recommended)["scrape_configs"]
    assert job["job_name"] == "reconciler" and not job.get("honor_labels", False)
    job["scrape_interval"] = "1s"
    job["static_configs"] = [{"targets": list(cluster.metrics_urls.values())}]
    return {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(rules)],
        "scrape_configs": [job],
    }


def _rfc3339(text: str) -> float:
    """Prometheus' timestamps (nanoseconds, Z) as Unix seconds."""
    m = re.fullmatch(r"(.*T\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)", text)
    assert m, text
    base = datetime.fromisoformat(m[1] + ("+00:00" if m[3] == "Z" else m[3])).timestamp()
    return base + float("0." + (m[2] or "0"))


@pytest.mark.root
def test_every_metric_name_is_exported_by_a_node(cluster: Cluster) -> None:
    exposed: set[str] = set()
    for url in cluster.metrics_urls.values():
        status, body = _http(cluster.h1, f"http://{url}/metrics")
        assert status == 200, body
        exposed |= _exposed_names(body)
    assert "reconciler_vrrp_state" in exposed and "reconciler_build_info" in exposed
    used = _names_used()
    assert len(used) >= 15, sorted(used)
    missing = {name: sorted(where) for name, where in used.items() if name not in exposed}
    assert not missing, f"not exported by reconciler/observability/metrics.py: {missing}"


@pytest.mark.root
@needs_prometheus
def test_prometheus_runs_the_dashboard_and_the_alerts(cluster: Cluster) -> None:
    lab, h1 = cluster.lab, cluster.h1
    workdir = lab.tmpdir / "prometheus"
    workdir.mkdir()
    # alerts.yaml as is, but for ReconcilerPriorityDropped's `for` (2m): 1s, to see it fire.
    rules = yaml.safe_load(RULES.read_text())
    (dropped,) = [
        r for g in rules["groups"] for r in g["rules"] if r["alert"] == "ReconcilerPriorityDropped"
    ]
    dropped["for"] = "1s"
    (workdir / "alerts.yaml").write_text(yaml.safe_dump(rules, sort_keys=False))
    config = workdir / "prometheus.yml"
    config.write_text(yaml.safe_dump(_prometheus_config(cluster, workdir / "alerts.yaml")))
    assert PROMETHEUS is not None
    prometheus = h1.spawn(
        [
            PROMETHEUS,
            f"--config.file={config}",
            f"--storage.tsdb.path={workdir / 'data'}",
            "--web.listen-address=127.0.0.1:9090",
            "--log.level=warn",
        ],
        name="prometheus",
    )
    api = PromAPI(h1)
    try:
        _eventually(
            "Prometheus ready",
            lambda: True if _http(h1, api.base + "/-/ready")[0] == 200 else None,
        )
        _eventually(
            "both nodes scraped",
            lambda: api.query('count(up{job="reconciler"} == 1) == 2') or None,
        )
        both_up = time.time()

        dashboard = _dashboard()
        variables = set(_variables(dashboard))
        queries = {(t, r): e for t, r, e in _panel_queries(dashboard)}

        # "Current master per instance": h1, with the variables on All or set.
        master = _promql(queries[(CURRENT_MASTER, "A")], variables)
        result = _eventually("a current master", lambda: api.query(master) or None)
        keys = ("cluster", "vrrp_instance", "vrid", "node")
        rows = [tuple(m["metric"][k] for k in keys) for m in result]
        assert rows == [("lab", "web", "91", "h1")]
        chosen = {"cluster": "lab", "node": "(h1|h2)", "vrrp_instance": "web"}
        assert len(api.query(_promql(queries[(CURRENT_MASTER, "A")], variables, chosen))) == 1
        only_h2 = {"node": "h2"}
        assert api.query(_promql(queries[(CURRENT_MASTER, "A")], variables, only_h2)) == []

        # Every panel and variable query runs (errors, e.g. many-to-many joins, fail here).
        for expr in queries.values():
            api.query(_promql(expr, variables))
        for name, query in _variable_queries(dashboard):
            assert api.query(_promql(query, variables)), f"variable {name} has no values"

        def by_node(title: str, ref: str = "A") -> dict[str, float]:
            got = api.query(_promql(queries[(title, ref)], variables))
            return {m["metric"]["node"]: float(m["value"][1]) for m in got}

        assert by_node("VRRP state per node") == {"h1": 2.0, "h2": 1.0}
        assert by_node("Effective vs configured priority", "B") == {"h1": 150.0, "h2": 100.0}
        assert by_node("Health checks up/down") == {"h1": 1.0, "h2": 1.0}
        revisions = api.query(_promql(queries[("Running revision per node", "A")], variables))
        assert {m["metric"]["node"] for m in revisions} == {"h1", "h2"}
        assert len({m["metric"]["revision"] for m in revisions}) == 1

        # The rules evaluate without errors on real series, and a healthy cluster is quiet.
        def evaluated_since_both_up() -> list[dict[str, Any]] | None:
            groups = api.get("/api/v1/rules")["groups"]
            rules = [r for g in groups for r in g["rules"]]
            if all(_rfc3339(r["lastEvaluation"]) > both_up + 1.5 for r in rules):
                return rules
            return None

        evaluated = _eventually("two rule evaluations with both nodes", evaluated_since_both_up)
        assert len(evaluated) == len(_rules())
        assert {r["name"]: r["health"] for r in evaluated if r["health"] != "ok"} == {}
        assert api.alerts() == []

        # The tracked file says 20: h1 150 -> 130 (still master), h2 100 -> 80.
        cluster.flag.write_text("20\n")
        cluster.nodes["h1"].wait_for_output("web: effective priority 150 -> 130", timeout=5)
        cluster.nodes["h2"].wait_for_output("web: effective priority 100 -> 80", timeout=5)

        def firing() -> dict[str, dict[str, Any]] | None:
            alerts = {
                a["labels"]["node"]: a
                for a in api.alerts()
                if a["labels"]["alertname"] == "ReconcilerPriorityDropped"
                and a["state"] == "firing"
            }
            return alerts if alerts.keys() == {"h1", "h2"} else None

        alerts = _eventually("ReconcilerPriorityDropped firing on h1 and h2", firing)
        h1_alert = alerts["h1"]
        assert h1_alert["labels"] == {
            "alertname": "ReconcilerPriorityDropped",
            "severity": "warning",
            "job": "reconciler",
            "instance": cluster.metrics_urls["h1"],
            "cluster": "lab",
            "node": "h1",
            "vrrp_instance": "web",
            "vrid": "91",
            "interface": "eth0",
        }
        descriptions = {node: a["annotations"]["description"] for node, a in alerts.items()}
        assert "effective priority 130, below its configured 150:" in descriptions["h1"]
        assert "effective priority 80, below its configured 100:" in descriptions["h2"]
        assert {a["labels"]["alertname"] for a in api.alerts()} == {"ReconcilerPriorityDropped"}
        assert [m["metric"]["node"] for m in api.query(master)] == ["h1"]
    finally:
        cluster.flag.unlink(missing_ok=True)
        code = prometheus.stop(timeout=10)
        log = prometheus.output()
    assert code == 0, log[-3000:]
