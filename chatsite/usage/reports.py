"""What /usage/ shows: the last 30 days of the ledger, aggregated in the database."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.db.models import Avg, Count, F, Q, QuerySet, Sum
from django.db.models.functions import Coalesce, TruncDate

from .ledger import day_start
from .models import Charge, UsageEntry

DAYS = 30
TOKENS = (
    "input_tokens",
    "output_tokens",
    "cache_creation_input_tokens",
    "cache_read_input_tokens",
)


def _totals() -> dict[str, Any]:
    fields: dict[str, Any] = {name: Coalesce(Sum(name), 0) for name in TOKENS}
    fields["cost"] = Sum("cost_usd")
    fields["calls"] = Count("id")
    fields["replies"] = Count("id", filter=Q(kind=UsageEntry.Kind.REPLY))
    fields["errors"] = Count("id", filter=Q(kind=UsageEntry.Kind.REPLY, status="error"))
    fields["avg_ttft_ms"] = Avg("ttft_ms")
    return fields


def _with_rates(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for row in rows:
        row["cost"] = float(row.get("cost") or 0)
        row["tokens"] = sum(int(row.get(name) or 0) for name in TOKENS)
        replies = row.get("replies") or 0
        row["error_rate"] = (row.get("errors") or 0) / replies if replies else 0.0
    return rows


def percentile_ttft(entries: QuerySet[UsageEntry], share: float) -> int | None:
    """The TTFT (ms) that `share` of replies beat: one ordered, offset query in the database."""
    timed = entries.filter(kind=UsageEntry.Kind.REPLY, ttft_ms__isnull=False)
    n = timed.count()
    if not n:
        return None
    index = min(n - 1, int(share * n))
    return timed.order_by("ttft_ms").values_list("ttft_ms", flat=True)[index]


@dataclass
class UsageReport:
    since: dt.datetime
    totals: dict[str, Any]
    by_day: list[dict[str, Any]]
    by_model: list[dict[str, Any]]
    by_room: list[dict[str, Any]]
    by_user: list[dict[str, Any]]
    by_day_model: list[dict[str, Any]]
    ttft_p50_ms: int | None
    ttft_p95_ms: int | None

    def chart_data(self) -> dict[str, Any]:
        """Daily spend per model, every day of the window (for the chart; via json_script)."""
        days = [(self.since + dt.timedelta(days=i)).date().isoformat() for i in range(DAYS + 1)]
        models = sorted({row["model"] for row in self.by_day_model})
        series = {m: dict.fromkeys(days, 0.0) for m in models}
        for row in self.by_day_model:
            series[row["model"]][row["day"].isoformat()] = float(row["cost"] or 0)
        return {
            "days": days,
            "series": [{"model": m, "cost": list(series[m].values())} for m in models],
        }


def usage_report(now: dt.datetime | None = None, limit: int = 50) -> UsageReport:
    """The last 30 days (and today) by day, model, room and user; every figure from SQL."""
    since = day_start(now) - dt.timedelta(days=DAYS)
    # Typed loosely: the annotations below are beyond what the ORM stubs can follow.
    entries: Any = UsageEntry.objects.filter(created_at__gte=since)
    totals = _with_rates([dict(entries.aggregate(**_totals()))])[0]
    by_day = _with_rates(
        list(
            entries.annotate(day=TruncDate("created_at"))
            .values("day")
            .annotate(**_totals())
            .order_by("-day")
        )
    )
    by_model = _with_rates(
        list(entries.values("model", "provider").annotate(**_totals()).order_by("-cost"))
    )
    by_room = _with_rates(
        list(
            entries.values("room_id", slug=F("room__slug"))
            .annotate(**_totals())
            .order_by("-cost")[:limit]
        )
    )
    charges: Any = Charge.objects.filter(created_at__gte=since)
    by_user = [
        {**row, "cost": float(row["cost"] or 0)}
        for row in charges.values("user_id", username=F("user__username"))
        .annotate(cost=Sum("cost_usd"), calls=Count("entry_id", distinct=True))
        .order_by("-cost")[:limit]
    ]
    by_day_model = list(
        entries.annotate(day=TruncDate("created_at"))
        .values("day", "model")
        .annotate(cost=Sum("cost_usd"))
        .order_by("day", "model")
    )
    return UsageReport(
        since=since,
        totals=totals,
        by_day=by_day,
        by_model=by_model,
        by_room=by_room,
        by_user=by_user,
        by_day_model=by_day_model,
        ttft_p50_ms=percentile_ttft(entries, 0.5),
        ttft_p95_ms=percentile_ttft(entries, 0.95),
    )
