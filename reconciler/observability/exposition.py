"""The Prometheus text format, written fast: metric families as plain rows.

A scrape shares the process with the VRRP timers, so it must be cheap: at 500 instances
prometheus_client's own path (a ``Sample`` per row, labels sorted and escaped on every
scrape), all on the event loop, held it for about 120 ms (bench/scrape.py). A collector
here describes each metric once, as a `MetricFamily` of plain rows, in two steps: a snapshot read
on the event loop, and rows made from it anywhere. `NodeRegistry.snapshot` reads them all
and returns the renderer, which the status listener runs on its own thread: it writes the
text format directly, with each row's label string and each value's text kept from one
scrape to the next, the same bytes as prometheus_client's ``generate_latest``
(tests/unit/test_metrics_exposition.py compares them). The same collectors also serve
prometheus_client's API (``collect``), which tests and other exporters use. What the
metrics are is in observability/metrics.py.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from prometheus_client import generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry
from prometheus_client.utils import floatToGoString

PREFIX = "reconciler_"

# Rendering runs on a thread beside the event loop (observability/http.py), and the loop
# waits for the interpreter lock while that thread holds it (CPython takes it back after
# its switch interval, 5 ms). The renderer lets go of it every this many rows (about
# 0.1 ms of work), a chance for the loop to take it sooner.
YIELD_EVERY_ROWS = 256
YIELD_EVERY_INSTANCES = 32

FamilyKind = Literal["gauge", "counter", "info"]
Row = tuple[tuple[str, ...], float]


@dataclass(frozen=True, slots=True)
class MetricFamily:
    """One metric family of a scrape: rows of (label values, value).

    ``labels`` name the values of each row in order; an info family's rows carry the
    values of ``info`` after them (its value is 1). Rows are in exposition order.
    """

    kind: FamilyKind
    name: str  # without the _total / _info suffix the exposition adds
    doc: str
    labels: tuple[str, ...] = ()
    info: tuple[str, ...] = ()
    rows: list[Row] = field(default_factory=list)

    def add_metric(self, values: tuple[str, ...], value: float) -> None:
        self.rows.append((values, value))

    @property
    def sample_name(self) -> str:
        return self.name + {"gauge": "", "counter": "_total", "info": "_info"}[self.kind]

    def metric(self) -> GaugeMetricFamily | CounterMetricFamily | InfoMetricFamily:
        """The same family as prometheus_client's object."""
        if self.kind == "info":
            n = len(self.labels)
            info = InfoMetricFamily(self.name, self.doc, labels=self.labels)
            for values, _ in self.rows:
                info.add_metric(values[:n], dict(zip(self.info, values[n:], strict=True)))
            return info
        out: GaugeMetricFamily | CounterMetricFamily
        if self.kind == "gauge":
            out = GaugeMetricFamily(self.name, self.doc, labels=self.labels)
        else:
            out = CounterMetricFamily(self.name, self.doc, labels=self.labels)
        for values, value in self.rows:
            out.add_metric(values, value)
        return out


class FamilyCollector(Collector):
    """A collector that describes its metrics as `MetricFamily` rows, in two steps:
    ``snapshot`` reads what the metrics say, on the thread that owns it (the event loop),
    and ``families`` turns that immutable snapshot into rows, on any thread."""

    def snapshot(self) -> Any:
        raise NotImplementedError

    def families(self, snapshot: Any) -> Iterable[MetricFamily]:
        raise NotImplementedError

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily | InfoMetricFamily]:
        for f in self.families(self.snapshot()):
            yield f.metric()


class Exposition:
    """Writes families in the Prometheus text format (0.0.4), as ``generate_latest`` does.

    Between scrapes it keeps the text of each row's name and labels (sorted by label
    name, values escaped) and of each value; both are bounded by what the last scrape
    used, so reloads that rename instances do not grow them.
    """

    VALUES_MAX = 4096  # the text of values seen (the common ones come back after a clear)

    def __init__(self) -> None:
        self._prefixes: dict[str, dict[tuple[str, ...], str]] = {}
        self._values: dict[float, str] = {}

    def render(self, families: Iterable[MetricFamily]) -> list[str]:
        out: list[str] = []
        append = out.append
        values = self._values
        if len(values) > self.VALUES_MAX:
            values.clear()
        for f in families:
            name = f.sample_name
            doc = f.doc.replace("\\", r"\\").replace("\n", r"\n")
            append(f"# HELP {name} {doc}\n")
            append(f"# TYPE {name} {'gauge' if f.kind == 'info' else f.kind}\n")
            prefixes = self._prefixes.get(name)
            if prefixes is None or len(prefixes) > 2 * len(f.rows) + 16:
                prefixes = self._prefixes[name] = {}
            names = f.labels + f.info
            for n, (labels, value) in enumerate(f.rows):
                if not n % YIELD_EVERY_ROWS:
                    time.sleep(0)  # see YIELD_EVERY_ROWS
                prefix = prefixes.get(labels)
                if prefix is None:
                    prefix = prefixes[labels] = _prefix(name, names, labels)
                text = values.get(value)
                if text is None:
                    text = values[value] = str(floatToGoString(value))  # type: ignore[no-untyped-call]
                append(f"{prefix}{text}\n")
        return out


def _prefix(name: str, names: tuple[str, ...], values: Sequence[str]) -> str:
    """``name{label="value",...} `` with labels sorted by name, as prometheus_client."""
    if not names:
        return name + " "
    pairs = sorted(zip(names, values, strict=True))
    labels = ",".join(f'{k}="{_escape(v)}"' for k, v in pairs)
    return f"{name}{{{labels}}} "


def _escape(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


class NodeRegistry(CollectorRegistry):
    """A registry whose `exposition` renders each `FamilyCollector` directly (any other
    collector through ``generate_latest``), in registration order as the registry does."""

    def __init__(self) -> None:
        super().__init__()
        self._ordered: list[Collector] = []
        self._exposition = Exposition()
        self._rendering = threading.Lock()  # one rendering at a time uses the caches

    def register(self, collector: Collector) -> None:
        super().register(collector)
        self._ordered.append(collector)

    def unregister(self, collector: Collector) -> None:
        super().unregister(collector)
        self._ordered.remove(collector)

    def snapshot(self) -> Callable[[], bytes]:
        """Read every collector now; the function returned writes the text format of
        what was read, on any thread (the status listener runs it off the event loop)."""
        taken: list[tuple[FamilyCollector, Any] | str] = [
            (c, c.snapshot()) if isinstance(c, FamilyCollector) else generate_latest(c).decode()
            for c in list(self._ordered)
        ]

        def render() -> bytes:
            parts: list[str] = []
            with self._rendering:
                for item in taken:
                    if isinstance(item, str):
                        parts.append(item)
                    else:
                        parts += self._exposition.render(item[0].families(item[1]))
            return "".join(parts).encode()

        return render

    def exposition(self) -> bytes:
        return self.snapshot()()


def snapshot_of(registry: CollectorRegistry) -> Callable[[], bytes]:
    """``registry`` read now; the function returned gives its text format (on any thread
    for a `NodeRegistry`; any other registry is rendered at once)."""
    if isinstance(registry, NodeRegistry):
        return registry.snapshot()
    text = generate_latest(registry)
    return lambda: text
