"""/usage/ (staff) and /metrics (staff sessions or the METRICS_TOKEN bearer), SPEC §5."""

from __future__ import annotations

import hmac

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth.decorators import login_not_required, login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseForbidden
from django.shortcuts import render
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import CollectorRegistry

from .live import refusals_key, sockets_prefix
from .metrics import DeploymentCollector, LiveFigures, cached_ledger_figures
from .reports import usage_report
from .store import counters


@login_required
def usage_page(request: HttpRequest) -> HttpResponse:
    """Spend, tokens, speed and errors of the last 30 days, for staff."""
    if not request.user.is_staff:
        raise PermissionDenied("Only staff may see the usage page.")
    report = usage_report()
    return render(
        request,
        "usage/usage.html",
        {"report": report, "chart": report.chart_data(), "totals": report.totals},
    )


def _bearer_ok(request: HttpRequest) -> bool:
    token = settings.METRICS_TOKEN
    header = request.headers.get("Authorization", "")
    if not token or not header.startswith("Bearer "):
        return False
    return hmac.compare_digest(header[len("Bearer ") :].strip().encode(), token.encode())


async def _live_figures() -> LiveFigures:
    store = counters()
    live = LiveFigures()
    try:
        live.websockets_open = await store.sum_prefix(sockets_prefix())
        live.refusals = await store.hgetall(refusals_key())
    except Exception:  # Redis away: the ledger's counters still answer
        pass
    return live


@login_not_required  # a scraper has no session; the token or staff check below decides
async def metrics(request: HttpRequest) -> HttpResponse:
    """The Prometheus text format, counting every process of the deployment."""
    if not _bearer_ok(request):
        user = await request.auser()
        if not (user.is_authenticated and user.is_staff):
            return HttpResponseForbidden("staff or the metrics token only\n")
    ledger = await sync_to_async(cached_ledger_figures)()
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DeploymentCollector(ledger, await _live_figures()))
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
