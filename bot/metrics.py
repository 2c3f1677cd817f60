"""A small Prometheus text-format registry (counters and histograms), no global state.

The app owns one :class:`Metrics`; ``/metrics`` renders it together with gauges read at scrape
time (e.g. the outbox backlog, which lives in the database so every replica reports the truth).
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Iterable

Labels = tuple[tuple[str, str], ...]

_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

_HELP = {
    "siyu_callbacks_total": "Callbacks received, by platform, event kind and outcome.",
    "siyu_dedup_hits_total": "Callbacks whose receipt already existed (WeChat retries, duplicates).",
    "siyu_handler_seconds": "Time to run an event's handlers and commit, by event kind.",
    "siyu_handler_runs_total": "Handler transactions, by event kind and outcome.",
    "siyu_outbox_calls_total": "Platform calls made from the outbox, by api and outcome.",
    "siyu_receipts_failed_total": "Receipts that ended failed after their delivery was accepted, by event kind.",
    "siyu_passive_replies_total": "Official Account passive replies, by outcome (inline, late).",
}


def _key(labels: dict[str, str]) -> Labels:
    return tuple(sorted(labels.items()))


def _fmt(labels: Labels, extra: Iterable[tuple[str, str]] = ()) -> str:
    items = [*labels, *extra]
    if not items:
        return ""
    inner = ",".join(f'{k}="{_escape(v)}"' for k, v in items)
    return "{" + inner + "}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class Metrics:
    def __init__(self) -> None:
        self._counters: dict[str, dict[Labels, float]] = defaultdict(lambda: defaultdict(float))
        self._hist: dict[str, dict[Labels, list[float]]] = defaultdict(dict)

    def inc(self, name: str, amount: float = 1.0, **labels: str) -> None:
        self._counters[name][_key(labels)] += amount

    def observe(self, name: str, value: float, **labels: str) -> None:
        series = self._hist[name].setdefault(_key(labels), [0.0] * (len(_BUCKETS) + 2))
        series[bisect.bisect_left(_BUCKETS, value)] += 1
        series[-1] += value

    def value(self, name: str, **labels: str) -> float:
        return self._counters[name].get(_key(labels), 0.0)

    def total(self, name: str) -> float:
        return sum(self._counters[name].values())

    def render(self, gauges: dict[str, tuple[str, dict[Labels, float]]] | None = None) -> str:
        lines: list[str] = []
        for name, series in sorted(self._counters.items()):
            lines += [f"# HELP {name} {_HELP.get(name, name)}", f"# TYPE {name} counter"]
            lines += [f"{name}{_fmt(lbl)} {val:g}" for lbl, val in sorted(series.items())]
        for name, hseries in sorted(self._hist.items()):
            lines += [f"# HELP {name} {_HELP.get(name, name)}", f"# TYPE {name} histogram"]
            for lbl, counts in sorted(hseries.items()):
                lines += self._render_hist(name, lbl, counts)
        for name, (help_text, gseries) in sorted((gauges or {}).items()):
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge"]
            lines += [f"{name}{_fmt(lbl)} {val:g}" for lbl, val in sorted(gseries.items())]
        return "\n".join(lines) + "\n"

    @staticmethod
    def _render_hist(name: str, lbl: Labels, counts: list[float]) -> list[str]:
        out, cumulative = [], 0.0
        for bound, count in zip((*_BUCKETS, float("inf")), counts[:-1], strict=True):
            cumulative += count
            le = "+Inf" if bound == float("inf") else f"{bound:g}"
            out.append(f"{name}_bucket{_fmt(lbl, [('le', le)])} {cumulative:g}")
        out.append(f"{name}_sum{_fmt(lbl)} {counts[-1]:g}")
        out.append(f"{name}_count{_fmt(lbl)} {cumulative:g}")
        return out
