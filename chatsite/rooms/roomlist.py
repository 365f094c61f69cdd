"""GET /api/rooms: the signed-in user's rooms for the room page's side list (issue 14).

The rooms are the lobby's "your rooms" (owned, member of, wrote in). For unread counts each
carries its newest message id and the ids of its newest messages by others (people and
Claude, superseded replies left out); the browser counts those newer than the last message it
showed there (static/js/room/unread.js), so the server keeps no read state.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.db.models import F, Q, Window
from django.db.models.functions import RowNumber
from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET

from . import selectors
from .models import Message, Room

# How many of a room's newest messages by others the list carries: unread counts above it
# read "20+".
RECENT_PER_ROOM = 20


def recent_by_others(user: User, rooms: list[Room]) -> dict[int, list[int]]:
    """Room id → ids of its newest messages not written by `user`, newest first."""
    rows = (
        Message.objects.filter(room__in=rooms, superseded=False)
        .exclude(Q(role=Message.Role.USER) & Q(author=user))
        .annotate(rank=Window(RowNumber(), partition_by=F("room_id"), order_by=F("id").desc()))
        .filter(rank__lte=RECENT_PER_ROOM)
        .values_list("room_id", "id")
    )
    recent: dict[int, list[int]] = {room.pk: [] for room in rooms}
    for room_id, message_id in rows:
        recent[room_id].append(message_id)
    for ids in recent.values():
        ids.sort(reverse=True)
    return recent


def newest_ids(rooms: list[Room]) -> dict[int, int]:
    rows = (
        Message.objects.filter(room__in=rooms)
        .annotate(rank=Window(RowNumber(), partition_by=F("room_id"), order_by=F("id").desc()))
        .filter(rank=1)
        .values_list("room_id", "id")
    )
    return dict(rows)


def rooms_data(user: User) -> list[dict[str, Any]]:
    rooms, _ = selectors.lobby_rooms(user)
    recent = recent_by_others(user, rooms)
    newest = newest_ids(rooms)
    return [
        {
            "slug": room.slug,
            "title": room.title or room.slug,
            "private": room.is_private,
            "newest_id": newest.get(room.pk),
            "recent_ids": recent[room.pk],
        }
        for room in rooms
    ]


@require_GET
def my_rooms(request: HttpRequest) -> JsonResponse:
    """`{"rooms": [{slug, title, private, newest_id, recent_ids}]}`, newest activity first."""
    if not request.user.is_authenticated:
        return JsonResponse({"error": "Sign in first."}, status=401)
    assert isinstance(request.user, User)
    return JsonResponse({"rooms": rooms_data(request.user), "limit": RECENT_PER_ROOM})
