"""How plans read: every value, object and step as the operator or reviewer sees it.

A plan is read by people (terminal, pull-request comment) and by tools (JSON), so each
word is the interface: these tests pin the words for every kind of value and object.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import timedelta
from ipaddress import IPv4Address, IPv4Interface
from pathlib import Path
from typing import ClassVar

import pytest

from reconciler.config.load import load_file
from reconciler.model.checks import Check, TcpProbe
from reconciler.model.cluster import Sysctls
from reconciler.model.common import Family, Key, Resource
from reconciler.model.ipvs import Endpoint, Forwarding, Protocol, ServiceKey
from reconciler.model.kernel import LiveAddress, LiveDest, LiveService
from reconciler.model.vrrp import Hook, TrackCheck, TrackInterface, Vip
from reconciler.plan.diff import Action, FieldChange, Step
from reconciler.plan.forecast import (
    Candidate,
    Drain,
    Forecast,
    InstanceForecast,
    RemovedService,
    VipMove,
)
from reconciler.plan.planner import Plan, node_settings
from reconciler.plan.render import jsonable, render, render_review, show, summary, title

ROOT = Path(__file__).resolve().parents[2]
NAT = load_file(ROOT / "examples/lvs-nat.yaml").cluster
D1 = NAT.for_node("director1")
FRONTEND, GATEWAY = D1.instances
SERVICE = D1.services[0]
SERVER = D1.real_servers[0]
GW2 = IPv4Interface("198.51.100.2/24")
SVC_KEY = ServiceKey(Family.IPV4, Protocol.TCP, IPv4Address("192.0.2.200"), 80)
HOOKS = (
    Hook(("/usr/local/bin/notify", "master"), timedelta(seconds=5)),
    Hook(("/bin/sh", "-c", "echo up"), timedelta(seconds=1), before_release=True),
)


@dataclass(frozen=True)
class Route:
    """A resource kind the renderer does not know: shown by its key."""

    kind: ClassVar[str] = "route"
    dst: str
    via: str

    @property
    def key(self) -> Key:
        return (self.dst, self.via)


# ---------------------------------------------------------------- one value: `field: old -> new`


@pytest.mark.parametrize(
    ("field", "value", "text"),
    [
        ("auth_password", None, "none"),
        ("auth_password", "s3cret", "(hidden)"),
        ("vrrp.auth_password", "s3cret", "(hidden)"),
        ("weight", None, "none"),
        ("preempt", False, "false"),
        ("forwarding", Forwarding.DR, "dr"),  # a named enum: its value
        ("family", Family.IPV6, "ipv6"),  # a numbered enum: its name
        ("label", "", '""'),
        ("label", "eth0:1", "eth0:1"),
        ("interval", timedelta(milliseconds=1500), "1.5s"),
        ("track", (), "none"),
        ("status", ((200, 200), (300, 399)), "200,300-399"),
        ("labels", (("site", "ams"), ("rack", "r1")), "site=ams, rack=r1"),
        ("notify.master[0].command", ("/bin/notify", "a b"), "/bin/notify 'a b'"),
        (
            "master",
            HOOKS,
            "/usr/local/bin/notify master (timeout 5s); "
            "/bin/sh -c 'echo up' (timeout 1s, before release)",
        ),
        (
            "unicast_peers",
            (IPv4Address("192.0.2.1"), IPv4Address("192.0.2.2")),
            "192.0.2.1, 192.0.2.2",
        ),
        ("probe", TcpProbe(IPv4Address("192.0.2.1"), 80), "tcp, host 192.0.2.1, port 80"),
        ("probe", TcpProbe(None, None), "tcp"),
        ("check", Check("web", TcpProbe(None, None)), "web"),
        ("track[0]", TrackCheck("web", -20), "check web weight -20"),
        ("track[1]", TrackInterface("eth1", 10), "interface eth1 weight 10"),
        (
            "sorry_server",
            Endpoint(IPv4Address("198.51.100.9"), 80, Forwarding.TUNNEL),
            "198.51.100.9:80 (tunnel)",
        ),
        (
            "vips[0]",
            Vip(IPv4Interface("192.0.2.100/24"), "eth0", "eth0:vip"),
            "192.0.2.100/24 dev eth0 label eth0:vip",
        ),
        ("quorum", SERVICE.quorum, "min_weight 2, hysteresis 1"),
    ],
)
def test_a_value_reads_as_the_operator_writes_it(field: str, value: object, text: str) -> None:
    assert show(field, value) == text


def test_json_values_are_plain() -> None:
    assert jsonable(Forwarding.DR) == "dr"
    assert jsonable(Family.IPV4) == "ipv4"
    assert jsonable((timedelta(seconds=2), IPv4Address("192.0.2.1"))) == ["2s", "192.0.2.1"]


# ---------------------------------------------------------------- objects: title and summary


def test_every_object_has_a_title_and_a_summary() -> None:
    live_dest = LiveDest(SVC_KEY, IPv4Address("198.51.100.10"), 8080, 3, Forwarding.DR)
    persistent = LiveService(SVC_KEY, "sh", persistent=True, timeout=timedelta(minutes=5))
    vip = LiveAddress("eth0", IPv4Interface("192.0.2.200/24"), "eth0:vip")
    rows: list[tuple[Resource, str, str]] = [
        (
            FRONTEND,
            "frontend",
            "vrid 61, v3, eth0, priority 150, every 1s, multicast, vips 192.0.2.200/24",
        ),
        (
            replace(GATEWAY, unicast_peers=(IPv4Address("192.0.2.22"),)),
            "gateway",
            "vrid 62, v3, eth1, priority 150, every 1s, unicast, vips 198.51.100.1/24",
        ),
        (
            replace(GATEWAY, vips=(*GATEWAY.vips, replace(GATEWAY.vips[0], address=GW2))),
            "gateway",
            "vrid 62, v3, eth1, priority 150, every 1s, multicast, vips 198.51.100.1/24, "
            "198.51.100.2/24",
        ),
        (D1.sync_groups[0], "director", "members frontend, gateway"),
        (SERVICE, "tcp/192.0.2.200:80 (web-http)", "wlc, nat, sorry server 198.51.100.250:8080"),
        (replace(SERVICE, sorry_server=None), "tcp/192.0.2.200:80 (web-http)", "wlc, nat"),
        (SERVER, "tcp/192.0.2.200:80 -> 198.51.100.10:8080", "weight 2, nat, check web-health"),
        (replace(SERVER, check=None), "tcp/192.0.2.200:80 -> 198.51.100.10:8080", "weight 2, nat"),
        (Check("web", TcpProbe(None, None), interval=timedelta(seconds=3)), "web", "tcp every 3s"),
        (
            node_settings(NAT, "director1"),
            "director1",
            "cluster lvs-nat, sysctls ip_forward=true conntrack=true expire_nodest_conn=true, "
            "resync every 30s, drain timeout 5m",
        ),
        (
            replace(node_settings(NAT, "director1"), sysctls=Sysctls()),
            "director1",
            "cluster lvs-nat, sysctls untouched, resync every 30s, drain timeout 5m",
        ),
        (live_dest, "tcp/192.0.2.200:80 -> 198.51.100.10:8080", "weight 3, dr"),
        (persistent, "tcp/192.0.2.200:80", "sh, persistent 5m"),
        (LiveService(SVC_KEY), "tcp/192.0.2.200:80", "wlc"),
        (vip, "192.0.2.200/24 dev eth0", "label eth0:vip"),
        (replace(vip, label=None), "192.0.2.200/24 dev eth0", "address"),
        (Route("203.0.113.0/24", "192.0.2.1"), "203.0.113.0/24/192.0.2.1", ""),
    ]
    assert [(title(r), summary(r)) for r, _, _ in rows] == [(t, s) for _, t, s in rows]


# ---------------------------------------------------------------- plans: text, Markdown, JSON

THEIRS = replace(SERVER, weight=5)
NEW_FRONTEND = replace(FRONTEND, priority=160)
NEW_GATEWAY = replace(GATEWAY, vrid=64, auth_password="n3w")
OLD_CHECK = Check("web-health", TcpProbe(None, None))
NEW_CHECK = replace(OLD_CHECK, interval=timedelta(seconds=3))
SERVER2 = replace(SERVER, port=8081)

STEPS = (
    Step(Action.CONFLICT, SERVER.kind, SERVER.key, SERVER, SERVER),
    Step(
        Action.CONFLICT, SERVER2.kind, SERVER2.key, THEIRS, SERVER2, (FieldChange("weight", 5, 2),)
    ),
    Step(Action.CREATE, "sync_group", ("director",), None, D1.sync_groups[0]),
    Step(
        Action.UPDATE,
        FRONTEND.kind,
        FRONTEND.key,
        FRONTEND,
        NEW_FRONTEND,
        (FieldChange("priority", 150, 160),),
    ),
    Step(
        Action.UPDATE,
        GATEWAY.kind,
        GATEWAY.key,
        replace(GATEWAY, auth_password="old"),
        NEW_GATEWAY,
        (FieldChange("vrid", 62, 64), FieldChange("auth_password", "old", "n3w")),
        restart_reasons=("vrid", "interface"),
    ),
    Step(
        Action.UPDATE,
        "check",
        ("web-health",),
        OLD_CHECK,
        NEW_CHECK,
        (FieldChange("interval", timedelta(seconds=1), timedelta(seconds=3)),),
        used_by=("ipvs_dest a|b", "vrrp_instance frontend (track)"),
    ),
    Step(Action.DELETE, SERVICE.kind, SERVICE.key, SERVICE, None),
)
PLANS = [
    Plan("director1", "old.yaml", "new.yaml", STEPS),
    Plan("director2", "old.yaml", "new.yaml", ()),
]

PLAN_TEXT = """\
Plan for node director1: old.yaml -> new.yaml
  ! conflict ipvs_dest tcp/192.0.2.200:80 -> 198.51.100.10:8080: exists and is not ours; left alone
  ! conflict ipvs_dest tcp/192.0.2.200:80 -> 198.51.100.10:8081
      weight: 5 -> 2
  + create sync_group director (members frontend, gateway)
  ~ update vrrp_instance frontend (in place)
      priority: 150 -> 160
  ~ restart vrrp_instance gateway (disruptive: vrid, interface changed; the instance stops \
(priority-0 advert, VIPs released) and starts again)
      vrid: 62 -> 64
      auth_password: changed (not shown)
  ~ update check web-health
      interval: 1s -> 3s
      used by: ipvs_dest a|b
               vrrp_instance frontend (track)
  - delete ipvs_service tcp/192.0.2.200:80 (web-http) (wlc, nat, sorry server 198.51.100.250:8080)
  1 to create, 3 to update, 1 to delete (1 disruptive restart), 2 conflict(s) left alone.

Plan for node director2: old.yaml -> new.yaml
  No changes.
"""

STEPS_MARKDOWN = """\
| # | action | kind | object | details |
|---:|---|---|---|---|
| 1 | ! conflict | ipvs_dest | `tcp/192.0.2.200:80 -> 198.51.100.10:8080` | exists and is not \
ours; left alone |
| 2 | ! conflict | ipvs_dest | `tcp/192.0.2.200:80 -> 198.51.100.10:8081` | weight: `5` → `2` |
| 3 | + create | sync_group | `director` | members frontend, gateway |
| 4 | ~ update (in place) | vrrp_instance | `frontend` | priority: `150` → `160` |
| 5 | ~ restart | vrrp_instance | `gateway` | **disruptive: vrid, interface changed; the \
instance stops (priority-0 advert, VIPs released) and starts again**<br>vrid: `62` → `64`<br>\
auth_password: changed (not shown) |
| 6 | ~ update | check | `web-health` | interval: `1s` → `3s`<br>used by: `ipvs_dest a\\|b`, \
`vrrp_instance frontend (track)` |
| 7 | - delete | ipvs_service | `tcp/192.0.2.200:80 (web-http)` | wlc, nat, sorry server \
198.51.100.250:8080 |
"""
COUNTS = "1 to create, 3 to update, 1 to delete (1 disruptive restart), 2 conflict(s) left alone"

PLAN_MARKDOWN = f"""\
### reconciler plan for node `director1`

`old.yaml` → `new.yaml`: **{COUNTS}**

{STEPS_MARKDOWN}
### reconciler plan for node `director2`

`old.yaml` → `new.yaml`: **0 to create, 0 to update, 0 to delete**

No changes.
"""


def test_a_plan_as_text_shows_every_kind_of_step() -> None:
    """Conflicts are shown and left alone, updates say in place or restart (RFC 5798
    6.4.3: a restart sends priority 0 and releases the VIPs), secrets are never printed,
    a check lists what uses it, a plan without steps says so."""
    assert render(PLANS, "text") == PLAN_TEXT


def test_a_plan_as_markdown_is_a_table_per_node() -> None:
    assert render(PLANS, "markdown") == PLAN_MARKDOWN


def test_a_plan_as_json_names_every_field_and_hides_secrets() -> None:
    out = render(PLANS, "json")
    doc = json.loads(out)
    assert out == json.dumps(doc, indent=2) + "\n"
    assert doc["changes"] is True
    one, two = doc["plans"]
    assert (one["node"], one["from"], one["to"], one["changes"]) == (
        "director1",
        "old.yaml",
        "new.yaml",
        True,
    )
    assert (two["changes"], two["steps"]) == (False, [])
    steps = one["steps"]
    assert [s["title"] for s in steps][:3] == [
        "tcp/192.0.2.200:80 -> 198.51.100.10:8080",
        "tcp/192.0.2.200:80 -> 198.51.100.10:8081",
        "director",
    ]
    assert steps[1]["before"]["weight"] == 5 and steps[1]["after"]["weight"] == 2
    restart = steps[4]
    assert (restart["before"]["auth_password"], restart["after"]["auth_password"]) == (
        "(hidden)",
        "(hidden)",
    )
    assert restart["changes"][1] == {
        "field": "auth_password",
        "before": "(hidden)",
        "after": "(hidden)",
        "text": "auth_password: changed (not shown)",
    }
    assert steps[5]["used_by"] == ["ipvs_dest a|b", "vrrp_instance frontend (track)"]
    assert (steps[6]["before"]["name"], steps[6]["after"]) == ("web-http", None)
    assert not json.loads(render(PLANS[1:], "json"))["changes"]


# ---------------------------------------------------------------- a revision change for review

A, B = Candidate("a", 150, "192.0.2.1"), Candidate("b", 100, "192.0.2.2")
DRAINED = "tcp/192.0.2.100:80 -> 198.51.100.2:80"
FORECAST = Forecast(
    instances=(
        InstanceForecast(
            "web",
            "a",
            "b",
            (A, B),
            (replace(B, priority=200), A),
            (),
            (VipMove("192.0.2.100/24", "web", "a", "b"),),
        ),
        InstanceForecast(
            "db",
            "a",
            "a",
            (A, B),
            (A, B),
            (("a", ("vrid", "interface")),),
            (
                VipMove("192.0.2.101/24", "db", "a", "a", via="b", why="db restarts on a"),
                VipMove("192.0.2.102/24", "db", None, "a"),
                VipMove("192.0.2.103/24", "db", "a", None),
            ),
            notes=("preempt is off: a keeps the VIPs",),
        ),
        InstanceForecast("api", "a", "a", (A, B), (A, replace(B, priority=90)), (), ()),
        InstanceForecast("app", "a", "a", (B, A), (A, B), (), ()),
    ),
    drains=(
        Drain("a", DRAINED),
        Drain("b", DRAINED),
        Drain("a", "tcp/192.0.2.100:80 -> 198.51.100.3:80"),
    ),
    removed_services=(
        RemovedService("a", "tcp/192.0.2.100:443 (tls)"),
        RemovedService("b", "tcp/192.0.2.100:443 (tls)"),
    ),
    drain_timeout=timedelta(minutes=10),
)
SUMMARY = [
    "VIP 192.0.2.100/24 (web) moves a → b",
    "VIP 192.0.2.101/24 (db) moves a → b → a (db restarts on a)",
    "VIP 192.0.2.102/24 (db) is added on a",
    "VIP 192.0.2.103/24 (db) is removed from a",
    "election web: expected master a → b (priorities: b 200, a 150)",
    "election app: expected master stays a (priorities: a 150, b 100)",
    "restart (disruptive) db on a: vrid, interface changed; priority-0 advert, VIPs released, "
    "then a new start",
    f"drain {DRAINED} on a, b: weight 0 until its connections end or drain_timeout 10m, "
    "then removed",
    "drain tcp/192.0.2.100:80 -> 198.51.100.3:80 on a: weight 0 until its connections end or "
    "drain_timeout 10m, then removed",
    "service removed tcp/192.0.2.100:443 (tls) on a, b",
    "note db: preempt is off: a keeps the VIPs",
]
RISKS = "vip-move election restart drain service-removed"


def test_a_review_as_text_lists_risks_and_summary_before_the_plans() -> None:
    head = ["main..HEAD", f"risk: {RISKS}", *(f"  {line}" for line in SUMMARY), ""]
    assert render_review(PLANS, FORECAST, "main..HEAD", "text") == "\n".join(head) + PLAN_TEXT


def test_a_quiet_review_says_there_is_nothing_to_watch() -> None:
    quiet = Forecast((), (), ())
    text = render_review(PLANS[1:], quiet, "t", "text")
    assert text.splitlines()[:4] == [
        "t",
        "risk: none",
        "  no VIP moves, elections, restarts or drains",
        "Plan for node director2: old.yaml -> new.yaml",
    ]
    markdown = render_review(PLANS[1:], quiet, "t", "markdown")
    assert markdown.splitlines()[:6] == [
        "## reconciler plan: t",
        "",
        "**Risk:** none · changes on 0 of 1 node(s)",
        "",
        "- no VIP moves, elections, restarts or drains",
        "",
    ]


def test_a_review_as_markdown_is_the_pull_request_comment() -> None:
    expected = "\n".join(
        [
            "## reconciler plan: main..HEAD",
            "",
            "**Risk:** `vip-move` `election` `restart` `drain` `service-removed` · changes on 1 "
            "of 2 node(s)",
            "",
            "- VIP `192.0.2.100/24` (`web`) moves a → b",
            "- VIP `192.0.2.101/24` (`db`) moves a → b → a (db restarts on a)",
            "- VIP `192.0.2.102/24` (`db`) is added on a",
            "- VIP `192.0.2.103/24` (`db`) is removed from a",
            "- election `web`: expected master a → b (priorities: b 200, a 150)",
            "- election `app`: expected master stays a (priorities: a 150, b 100)",
            "- restart (disruptive) `db` on a: vrid, interface changed; priority-0 advert, VIPs "
            "released, then a new start",
            f"- drain `{DRAINED}` on a, b: weight 0 until its connections end or drain_timeout "
            "10m, then removed",
            "- drain `tcp/192.0.2.100:80 -> 198.51.100.3:80` on a: weight 0 until its "
            "connections end or drain_timeout 10m, then removed",
            "- service removed `tcp/192.0.2.100:443 (tls)` on a, b",
            "- note `db`: preempt is off: a keeps the VIPs",
            "",
            "<details open>",
            f"<summary>node <b>director1</b>: {COUNTS}</summary>",
            "",
            *STEPS_MARKDOWN.splitlines(),
            "",
            "</details>",
            "",
            "<details>",
            "<summary>node <b>director2</b>: 0 to create, 0 to update, 0 to delete</summary>",
            "",
            "No changes.",
            "",
            "</details>",
            "",
        ]
    )
    assert render_review(PLANS, FORECAST, "main..HEAD", "markdown") == expected


def test_a_review_as_json_adds_title_risks_summary_and_forecast() -> None:
    no_timeout = replace(FORECAST, drain_timeout=None)
    out = render_review(PLANS[1:], no_timeout, "main..HEAD", "json")
    doc = json.loads(out)
    assert out == json.dumps(doc, indent=2) + "\n"
    assert doc["title"] == "main..HEAD"
    assert doc["risks"] == RISKS.split()
    assert doc["summary"][7] == (
        f"drain {DRAINED} on a, b: weight 0 until its connections end or the drain timeout, "
        "then removed"
    )
    assert doc["summary"][:7] == SUMMARY[:7] and doc["summary"][-1] == SUMMARY[-1]
    assert doc["forecast"]["drain_timeout"] is None
    assert doc["forecast"]["instances"][1]["moves"][0] == {
        "vip": "192.0.2.101/24",
        "instance": "db",
        "before": "a",
        "after": "a",
        "via": "b",
        "why": "db restarts on a",
    }
    assert doc["forecast"]["instances"][1]["restarts"] == [["a", ["vrid", "interface"]]]
    assert {k: doc[k] for k in ("changes", "plans")} == json.loads(render(PLANS[1:], "json"))


def test_file_names_cannot_break_the_markdown() -> None:
    """A pipe would end a table cell and a newline the line: both are neutralised."""
    plan = Plan("n", "a|b\nc.yaml", "new.yaml", ())
    assert render([plan], "markdown").splitlines()[2] == (
        "`a\\|b c.yaml` → `new.yaml`: **0 to create, 0 to update, 0 to delete**"
    )
