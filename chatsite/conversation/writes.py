"""Writes of the group conversation: reactions, regenerate's superseding, who stopped a reply.

Synchronous (database); async callers go through `database_sync_to_async`.
"""

from __future__ import annotations

from typing import Literal

from django.contrib.auth.models import User
from django.db import IntegrityError, transaction

from chatsite.rooms.models import Message, Reaction
from chatsite.rooms.serializers import reactions_data

SupersedeResult = Literal["superseded", "not_found", "busy"]


def toggle_reaction(
    room_id: int, message_id: int, user: User, emoji: str
) -> dict[str, list[str]] | None:
    """Add the user's `emoji` to the message, or take it back; the message's reactions after,
    or None when the message is not the room's."""
    if not Message.objects.filter(pk=message_id, room_id=room_id).exists():
        return None
    removed, _ = Reaction.objects.filter(message_id=message_id, user=user, emoji=emoji).delete()
    if not removed:
        try:
            with transaction.atomic():
                Reaction.objects.create(message_id=message_id, user=user, emoji=emoji)
        except IntegrityError:  # the same toggle from another tab, a moment earlier
            pass
    message = Message.objects.prefetch_related("reactions__user").get(pk=message_id)
    return reactions_data(message)


def supersede_newest_reply(room_id: int, message_id: int) -> SupersedeResult:
    """Mark `message_id` superseded if it is the room's newest standing reply and has ended."""
    newest = (
        Message.objects.filter(room_id=room_id, role=Message.Role.ASSISTANT, superseded=False)
        .order_by("-id")
        .values_list("id", "status")
        .first()
    )
    if newest is None or newest[0] != message_id:
        return "not_found"
    if newest[1] == Message.Status.STREAMING:
        return "busy"
    updated = (
        Message.objects.filter(pk=message_id, superseded=False)
        .exclude(status=Message.Status.STREAMING)
        .update(superseded=True)
    )
    return "superseded" if updated else "busy"


def record_stopper(message_id: int, user_id: int) -> bool:
    """Remember who pressed stop on a running reply (the first one to press it counts)."""
    return bool(
        Message.objects.filter(
            pk=message_id, status=Message.Status.STREAMING, stopped_by__isnull=True
        ).update(stopped_by_id=user_id)
    )


def stopper_name(message_id: int) -> str | None:
    """The username of whoever stopped the reply, if someone did."""
    return (
        Message.objects.filter(pk=message_id).values_list("stopped_by__username", flat=True).first()
    )
