"""Reads: rooms, message pages, reply history (Django-Styleguide selectors)."""

from __future__ import annotations

from datetime import timedelta

from django.contrib.auth.models import User
from django.db.models import F, Max, Q, QuerySet
from django.utils import timezone

from chatsite.conversation.turns import may_want_reply, wants_reply
from chatsite.llm.context import HistoryItem

from .models import Message, Room

# The history a reply may look at; the budget trims it further.
HISTORY_LIMIT = 2000


# What serializing a Message reads besides its row (serializers.message_data).
MESSAGE_RELATED = ("author", "stopped_by")
MESSAGE_PREFETCH = ("reactions__user",)


def _rooms() -> QuerySet[Room]:
    return Room.objects.select_related("owner").prefetch_related("members")


def room_by_slug(slug: str) -> Room | None:
    return _rooms().filter(slug=slug).first()


def room_by_id(room_id: int) -> Room | None:
    return _rooms().filter(pk=room_id).first()


def room_for_reply(room_id: int) -> Room | None:
    """The room's own row only (model, prompt, summary): what a reply's request is built from,
    without the owner and members `room_by_id` reads for access checks."""
    return Room.objects.filter(pk=room_id).first()


def newest_messages(room: Room, limit: int = 50) -> list[Message]:
    """The newest `limit` messages, oldest first."""
    rows = list(
        room.messages.select_related(*MESSAGE_RELATED)
        .prefetch_related(*MESSAGE_PREFETCH)
        .order_by("-id")[:limit]
    )
    rows.reverse()
    return rows


def messages_before(room: Room, before: int | None, limit: int) -> tuple[list[Message], bool]:
    """Up to `limit` messages with id < `before` (newest when None), oldest first, and has_more."""
    query = (
        room.messages.select_related(*MESSAGE_RELATED)
        .prefetch_related(*MESSAGE_PREFETCH)
        .order_by("-id")
    )
    if before is not None:
        query = query.filter(id__lt=before)
    rows = list(query[: limit + 1])
    has_more = len(rows) > limit
    rows = rows[:limit]
    rows.reverse()
    return rows, has_more


def reply_history(room: Room, reply_id: int) -> list[HistoryItem]:
    """What a reply answers: messages before it and after the summary, oldest first
    (superseded replies are never sent to the model again, SPEC §7)."""
    rows = (
        room.messages.filter(id__lt=reply_id, id__gt=room.summary_upto_id, superseded=False)
        .select_related("author")
        .order_by("-id")[:HISTORY_LIMIT]
    )
    items = [_history_item(m) for m in rows]
    items.reverse()
    return items


# Replies whose measured density calibrates the next request: a few, so one odd turn does not
# swing the budget, and the most pessimistic of them counts.
DENSITY_SAMPLES = 3


def token_density(room: Room) -> float:
    """Real input tokens per estimated one in the room's latest replies (1.0 before any).

    Real tokens are what the provider reported: input, cache reads and cache writes together.
    """
    rows = (
        room.messages.filter(role=Message.Role.ASSISTANT, estimated_input_tokens__gt=0)
        .order_by("-id")
        .values_list(
            "estimated_input_tokens",
            "input_tokens",
            "cache_read_input_tokens",
            "cache_creation_input_tokens",
        )[:DENSITY_SAMPLES]
    )
    ratios = [
        (uncached + read + written) / estimated
        for estimated, uncached, read, written in rows
        if uncached + read + written > 0
    ]
    return max(ratios, default=1.0)


def summary_history(room: Room, upto_id: int) -> list[HistoryItem]:
    """What a fold may look at: the unsummarized messages up to `upto_id`, oldest first."""
    rows = (
        room.messages.filter(id__gt=room.summary_upto_id, id__lte=upto_id, superseded=False)
        .select_related("author")
        .order_by("id")[:HISTORY_LIMIT]
    )
    items: list[HistoryItem] = []
    for message in rows:
        if message.status == Message.Status.STREAMING:
            break  # its text is not final yet: nothing from here on may be folded
        items.append(_history_item(message))
    return items


def _history_item(message: Message) -> HistoryItem:
    return HistoryItem(
        id=message.pk,
        role=message.role,
        author=message.author.username if message.author else None,
        text=message.text,
    )


def client_msg_id_used(room: Room, author: User, client_msg_id: str) -> bool:
    return Message.objects.filter(room=room, author=author, client_msg_id=client_msg_id).exists()


def streaming_reply_id(room: Room) -> int | None:
    """The id of the room's reply the database calls streaming, if any."""
    return (
        room.messages.filter(status=Message.Status.STREAMING)
        .order_by("-id")
        .values_list("id", flat=True)
        .first()
    )


def has_unanswered(room_id: int) -> bool:
    """Whether a user message stored after the newest reply began calls for a reply under
    the room's reply mode (SPEC §6 Guarantees, §7; chatsite.conversation.turns)."""
    return wants_reply(room_id)


def streaming_replies() -> list[Message]:
    """Replies the database still calls streaming (their runner may have died)."""
    return list(Message.objects.filter(status=Message.Status.STREAMING).order_by("id"))


def reply_is_streaming(message_id: int) -> bool:
    """Whether nobody stored the reply's ending yet (the reaper may have, elsewhere)."""
    return Message.objects.filter(pk=message_id, status=Message.Status.STREAMING).exists()


def room_has_streaming_reply(room_id: int) -> bool:
    """Whether the database calls some reply of the room streaming."""
    return Message.objects.filter(room_id=room_id, status=Message.Status.STREAMING).exists()


def unanswered_rooms(since: timedelta, settled: timedelta) -> list[int]:
    """Rooms active between `since` ago and `settled` ago whose newest message is a user's.

    One query for the reaper, however many rooms: a user message bumps its room's
    `updated_at`, and the newest ids per role come from the (room, id) index.
    """
    now = timezone.now()
    rooms = (
        Room.objects.filter(updated_at__gte=now - since, updated_at__lte=now - settled)
        .annotate(
            last_user=Max("messages__id", filter=Q(messages__role=Message.Role.USER)),
            last_reply=Max("messages__id", filter=Q(messages__role=Message.Role.ASSISTANT)),
        )
        .filter(last_user__isnull=False)
        .filter(Q(last_reply__isnull=True) | Q(last_user__gt=F("last_reply")))
    )
    # Of those, the rooms where such a message calls for a reply under the room's reply mode.
    candidates = may_want_reply(rooms).values_list("id", flat=True)
    return [room_id for room_id in candidates if wants_reply(room_id)]


# How recent a public room's activity must be to show in everyone's lobby.
LOBBY_RECENT = timedelta(days=30)


def lobby_rooms(user: User, limit: int = 30) -> tuple[list[Room], list[Room]]:
    """Rooms the user owns, is a member of or wrote in (newest activity first); then public
    rooms active lately that are not among them. Never a private room the user cannot enter:
    one they wrote in and were removed from is left out too."""
    admitted = Q(owner=user) | Q(members=user) | Q(is_private=False, messages__author=user)
    mine = list(
        Room.objects.select_related("owner")
        .filter(admitted)
        .distinct()
        .order_by("-updated_at")[:limit]
    )
    since = timezone.now() - LOBBY_RECENT
    recent = list(
        Room.objects.select_related("owner")
        .filter(is_private=False, updated_at__gte=since)
        .exclude(pk__in=[room.pk for room in mine])
        .order_by("-updated_at")[:limit]
    )
    return mine, recent
