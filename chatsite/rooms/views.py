"""HTTP pages and the history API (SPEC §5)."""

from __future__ import annotations

import asyncio
import re
from typing import Any

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.db import connection
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.utils.text import slugify
from django.views.decorators.http import require_GET, require_http_methods

from chatsite.llm.registry import get_provider

from . import selectors, services
from .access import can_enter
from .history_params import HistoryParamError, fit_page, history_params
from .models import SLUG_PATTERN
from .serializers import message_data, room_data

HISTORY_DEFAULT_LIMIT = 50
HISTORY_MAX_LIMIT = 200
HEALTH_TIMEOUT = 2.0
HEALTH_GROUP = "health"  # a group nobody joins: sending to it proves the layer answers


@login_required
@require_http_methods(["GET", "POST"])
def lobby(request: HttpRequest) -> HttpResponse:
    user: User = request.user  # type: ignore[assignment]
    error = None
    if request.method == "POST":
        name = " ".join(request.POST.get("name", "").split())[:100]
        slug = slugify(name)[:50].strip("-")
        if not slug:
            error = "Use letters or digits in the room's name."
        else:
            room = selectors.room_by_slug(slug)
            if room is None:
                services.open_room(slug, user, title=name)
                return redirect("room", slug=slug)
            if can_enter(user, room):
                return redirect("room", slug=slug)
            # Only that the slug is taken, as a POST to the room's URL would tell (404).
            error = "That name is taken. Pick another one."
    mine, recent = selectors.lobby_rooms(user)
    return render(
        request, "rooms/lobby.html", {"my_rooms": mine, "recent_rooms": recent, "error": error}
    )


@login_required
@require_http_methods(["GET", "POST"])
def room_page(request: HttpRequest, slug: str) -> HttpResponse:
    """GET shows the room (or offers to create a free slug); POST creates a free slug.

    A private room the user may not enter is a 404 to both, like a slug nobody could take.
    """
    if not re.fullmatch(SLUG_PATTERN, slug):
        raise Http404("No such room")
    user: User = request.user  # type: ignore[assignment]
    room = selectors.room_by_slug(slug)
    if room is not None and not can_enter(user, room):
        raise Http404("No such room")
    if request.method == "POST":
        if room is None:
            services.open_room(slug, user)
        return redirect("room", slug=slug)
    if room is None:
        return render(request, "rooms/create.html", {"slug": slug})
    data: dict[str, Any] = {
        "slug": room.slug,
        "ws_path": f"/ws/rooms/{room.slug}/",
        "messages_url": f"/api/rooms/{room.slug}/messages",
        "invites_url": f"/api/rooms/{room.slug}/invites",
        "username": user.get_username(),
        "room": room_data(room, get_provider()),
    }
    return render(request, "rooms/room.html", {"room": room, "room_data": data})


def _json_error(status: int, message: str) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)


@require_GET
def room_messages(request: HttpRequest, slug: str) -> JsonResponse:
    if not request.user.is_authenticated:
        return _json_error(401, "Sign in first.")
    room = selectors.room_by_slug(slug)
    if room is None or not can_enter(request.user, room):
        return _json_error(404, "No such room.")
    try:
        before, limit = history_params(request.GET)
    except HistoryParamError as exc:
        return _json_error(400, str(exc))
    rows, has_more = selectors.messages_before(room, before, limit)
    # A byte budget too (history_params.MAX_PAGE_BYTES): older rows come with the next page.
    messages, has_more = fit_page([message_data(m) for m in rows], has_more)
    return JsonResponse({"messages": messages, "has_more": has_more})


def _database_answers() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    connection.close()


async def _check(coro: Any) -> str:
    try:
        await asyncio.wait_for(coro, HEALTH_TIMEOUT)
    except Exception as exc:
        return f"error: {type(exc).__name__}"
    return "ok"


async def _layer_answers() -> None:
    """A group send through the channel layer: the operation every broadcast makes."""
    layer = get_channel_layer()
    if layer is None:
        raise RuntimeError("no channel layer configured")
    await layer.group_send(HEALTH_GROUP, {"type": "health.check"})


async def _state_answers() -> None:
    """A round trip to the shared state of this server process (Redis, or its memory)."""
    from consumers.state import shared_state

    # RuntimeError when no server process is installed (served outside chatsite.asgi): unhealthy.
    await shared_state().ping()


async def healthz(request: HttpRequest) -> JsonResponse:
    """200 when the database, the channel layer and the shared state answer within 2 s."""
    database, layer, state = await asyncio.gather(
        _check(sync_to_async(_database_answers, thread_sensitive=False)()),
        _check(_layer_answers()),
        _check(_state_answers()),
    )
    checks = {"database": database, "channel_layer": layer, "shared_state": state}
    healthy = all(value == "ok" for value in checks.values())
    return JsonResponse(
        {"status": "ok" if healthy else "unavailable", "checks": checks},
        status=200 if healthy else 503,
    )
