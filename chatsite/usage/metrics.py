"""`/metrics` (SPEC §8): Prometheus figures for the whole deployment, whichever process answers.

Counters come from the ledger, which every process writes to (replies by status, tokens and
cost by model, upstream errors, deltas sent, time-to-first-token and duration histograms), so
a scrape that lands on any dyno sees them all and they survive restarts. Live values come from
the shared store, where each process keeps its own (open websockets, with an expiry) or adds
to a shared counter (refusals). The ledger's aggregates are cached for a few seconds.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Count, Q, Sum
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from .models import UsageEntry

CACHE_SECONDS = 5.0
TTFT_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 30.0, 60.0)
DURATION_BUCKETS = (0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0)
TOKEN_FIELDS = {
    "input": "input_tokens",
    "output": "output_tokens",
    "cache_write": "cache_creation_input_tokens",
    "cache_read": "cache_read_input_tokens",
}


@dataclass
class Histogram:
    buckets: list[tuple[float, int]]  # (upper bound in seconds, cumulative count)
    count: int
    total_seconds: float


@dataclass
class LedgerFigures:
    replies: dict[str, int] = field(default_factory=dict)
    tokens: list[tuple[str, str, str, int]] = field(default_factory=list)  # kind, purpose, model
    cost: dict[str, float] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    retries: int = 0
    deltas: int = 0
    ttft: Histogram | None = None
    duration: Histogram | None = None


def _histogram(row: dict[str, Any], name: str, buckets: tuple[float, ...]) -> Histogram:
    return Histogram(
        [(b, row[f"{name}_le_{i}"] or 0) for i, b in enumerate(buckets)],
        row[f"{name}_count"] or 0,
        (row[f"{name}_sum"] or 0) / 1000,
    )


def ledger_figures() -> LedgerFigures:
    """Every counter the ledger holds, aggregated in the database (a handful of queries)."""
    figures = LedgerFigures()
    replies = UsageEntry.objects.filter(kind=UsageEntry.Kind.REPLY)
    for by_status in replies.values("status").annotate(n=Count("id")).order_by():
        figures.replies[by_status["status"]] = by_status["n"]
    sums = {name: Sum(column) for name, column in TOKEN_FIELDS.items()}
    by_model: Any = UsageEntry.objects.values("kind", "model")
    for used in by_model.annotate(cost=Sum("cost_usd"), **sums).order_by():
        for name in TOKEN_FIELDS:
            figures.tokens.append((name, used["kind"], used["model"], used[name] or 0))
        figures.cost[used["model"]] = figures.cost.get(used["model"], 0.0) + float(
            used["cost"] or 0
        )
    failed = UsageEntry.objects.exclude(error_code="").values("error_code")
    for by_code in failed.annotate(n=Count("id")).order_by():
        figures.errors[by_code["error_code"]] = by_code["n"]
    timing: dict[str, Any] = {
        "retries": Sum("retries"),
        "deltas": Sum("deltas"),
        "ttft_count": Count("id", filter=Q(ttft_ms__isnull=False)),
        "ttft_sum": Sum("ttft_ms"),
        "duration_count": Count("id", filter=Q(duration_ms__isnull=False)),
        "duration_sum": Sum("duration_ms"),
    }
    for i, bound in enumerate(TTFT_BUCKETS):
        timing[f"ttft_le_{i}"] = Count("id", filter=Q(ttft_ms__lte=bound * 1000))
    for i, bound in enumerate(DURATION_BUCKETS):
        timing[f"duration_le_{i}"] = Count("id", filter=Q(duration_ms__lte=bound * 1000))
    row: dict[str, Any] = dict(replies.aggregate(**timing))
    figures.retries = row["retries"] or 0
    figures.deltas = row["deltas"] or 0
    figures.ttft = _histogram(row, "ttft", TTFT_BUCKETS)
    figures.duration = _histogram(row, "duration", DURATION_BUCKETS)
    return figures


_cached: tuple[float, LedgerFigures] | None = None


def cached_ledger_figures() -> LedgerFigures:
    """`ledger_figures`, at most CACHE_SECONDS old (a scrape every few seconds stays cheap)."""
    global _cached
    now = time.monotonic()
    if _cached is None or now - _cached[0] > CACHE_SECONDS:
        _cached = (now, ledger_figures())
    return _cached[1]


def forget_cache() -> None:
    global _cached
    _cached = None


@dataclass
class LiveFigures:
    websockets_open: int = 0
    refusals: dict[str, int] = field(default_factory=dict)


def _histogram_family(name: str, doc: str, histogram: Histogram | None) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, doc)
    if histogram is not None:
        buckets = [(repr(float(b)), n) for b, n in histogram.buckets]
        buckets.append(("+Inf", histogram.count))
        family.add_metric([], buckets, histogram.total_seconds)
    return family


class DeploymentCollector(Collector):
    """The families of SPEC §8 from one set of figures (computed before the scrape renders)."""

    def __init__(self, ledger: LedgerFigures, live: LiveFigures) -> None:
        self.ledger = ledger
        self.live = live

    def collect(self) -> Iterator[Metric]:
        ledger, live = self.ledger, self.live
        yield GaugeMetricFamily(
            "roomchat_websockets_open",
            "Open room websockets on every process.",
            value=live.websockets_open,
        )
        replies = CounterMetricFamily(
            "roomchat_replies", "Replies that ended, by status.", labels=["status"]
        )
        for status in ("complete", "stopped", "error", "interrupted"):
            replies.add_metric([status], ledger.replies.get(status, 0))
        for status, n in ledger.replies.items():
            if status not in {"complete", "stopped", "error", "interrupted"}:
                replies.add_metric([status], n)
        yield replies
        tokens = CounterMetricFamily(
            "roomchat_tokens",
            "Tokens used, by token kind (input, output, cache_write, cache_read), model and "
            "purpose (reply, summary, decision).",
            labels=["kind", "model", "purpose"],
        )
        for kind, purpose, model, n in ledger.tokens:
            tokens.add_metric([kind, model, purpose], n)
        yield tokens
        cost = CounterMetricFamily(
            "roomchat_cost_usd", "Estimated spend in USD, by model.", labels=["model"]
        )
        for model, usd in ledger.cost.items():
            cost.add_metric([model], usd)
        yield cost
        yield _histogram_family(
            "roomchat_time_to_first_token_seconds",
            "Seconds from a reply's start to its first text.",
            ledger.ttft,
        )
        yield _histogram_family(
            "roomchat_reply_duration_seconds", "Seconds a reply ran.", ledger.duration
        )
        errors = CounterMetricFamily(
            "roomchat_upstream_errors",
            "Model calls that ended in an error, by code.",
            labels=["code"],
        )
        for code, n in ledger.errors.items():
            errors.add_metric([code], n)
        yield errors
        yield CounterMetricFamily(
            "roomchat_upstream_retries",
            "Retried model calls (before a reply's first token).",
            value=ledger.retries,
        )
        refusals = CounterMetricFamily(
            "roomchat_refusals", "Refused client frames, by error code.", labels=["code"]
        )
        for code, n in sorted(live.refusals.items()):
            refusals.add_metric([code], n)
        yield refusals
        yield CounterMetricFamily(
            "roomchat_deltas_sent",
            "generation.delta frames sent to rooms.",
            value=ledger.deltas,
        )
