"""Which user messages a reply answers, and whether one still calls for a reply (database).

Synchronous: async callers go through `database_sync_to_async`.

- A reply answers every user message stored since the turns its previous reply answered
  (`answered_ids`), so messages that called for no reply are answered by the next one.
- The hand-over and the reaper start a reply only when a message stored after the room's
  newest reply calls for one under the room's reply mode (`wants_reply`).
"""

from __future__ import annotations

from django.db.models import Exists, OuterRef, Q, QuerySet

from chatsite.rooms.models import Message, ReplyMode, Room

from .models import ReplyDecision
from .reply_modes import mentions_claude

# The longest `in_reply_to`: the newest this many user messages (a mention after a long talk
# between people answers them all, but a reply's frame must stay small).
MAX_IN_REPLY_TO = 200


def _answered_upto(room_id: int, before_id: int | None) -> int:
    """The id up to which the room's latest standing reply (before `before_id`) answered."""
    replies = Message.objects.filter(room_id=room_id, role=Message.Role.ASSISTANT, superseded=False)
    if before_id is not None:
        replies = replies.filter(id__lt=before_id)
    previous = replies.order_by("-id").values_list("id", "in_reply_to").first()
    if previous is None:
        return 0
    reply_id, answered = previous
    ids = [i for i in (answered or []) if isinstance(i, int)]
    return max(ids) if ids else reply_id


def answered_ids(room_id: int, reply_id: int) -> list[int]:
    """The user messages the reply `reply_id` answers, oldest first."""
    upto = _answered_upto(room_id, reply_id)
    ids = list(
        Message.objects.filter(
            room_id=room_id, role=Message.Role.USER, id__gt=upto, id__lt=reply_id
        )
        .order_by("-id")
        .values_list("id", flat=True)[:MAX_IN_REPLY_TO]
    )
    ids.reverse()
    return ids


def set_in_reply_to(reply_id: int, room_id: int | None = None) -> list[int]:
    """Store and return what a reply that just started answers (`room_id`: the reply's room,
    when the caller knows it)."""
    if room_id is None:
        room_id = Message.objects.filter(pk=reply_id).values_list("room_id", flat=True).first()
        if room_id is None:
            return []
    ids = answered_ids(room_id, reply_id)
    Message.objects.filter(pk=reply_id).update(in_reply_to=ids)
    return ids


def wants_reply(room_id: int) -> bool:
    """Whether a user message stored after the newest reply began calls for a reply."""
    mode = Room.objects.filter(pk=room_id).values_list("reply_mode", flat=True).first()
    if mode is None:
        return False
    newest = (
        Message.objects.filter(room_id=room_id, role=Message.Role.ASSISTANT, superseded=False)
        .order_by("-id")
        .values_list("id", flat=True)
        .first()
    )
    waiting = Message.objects.filter(room_id=room_id, role=Message.Role.USER, id__gt=newest or 0)
    if mode == ReplyMode.ALWAYS:
        return waiting.exists()
    candidates = waiting.filter(text__icontains="@claude").values_list("text", flat=True)
    if any(mentions_claude(text) for text in candidates.iterator()):
        return True
    return mode == ReplyMode.AUTO and waiting.filter(reply_decision__wanted=True).exists()


def may_want_reply(rooms: QuerySet[Room]) -> QuerySet[Room]:
    """Of `rooms`, those where a user message after the newest reply may call for one: every
    `always` room, and rooms with a possible mention or an auto "yes" after it. One query for
    any number of rooms (the reaper's), so chatter waiting in `mention` rooms costs nothing;
    `wants_reply` then decides exactly."""
    waiting = Message.objects.filter(room=OuterRef("pk"), role=Message.Role.USER).exclude(
        Exists(
            Message.objects.filter(
                room=OuterRef("room"), role=Message.Role.ASSISTANT, id__gt=OuterRef("id")
            )
        )
    )
    wanted = ReplyDecision.objects.filter(
        message__room=OuterRef("pk"), wanted=True, message__role=Message.Role.USER
    ).exclude(
        Exists(
            Message.objects.filter(
                room=OuterRef("message__room"),
                role=Message.Role.ASSISTANT,
                id__gt=OuterRef("message_id"),
            )
        )
    )
    return rooms.filter(
        Q(reply_mode=ReplyMode.ALWAYS)
        | Exists(waiting.filter(text__icontains="@claude"))
        | Q(reply_mode=ReplyMode.AUTO) & Exists(wanted)
    )
