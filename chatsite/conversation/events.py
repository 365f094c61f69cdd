"""The room's settings changes as events: written with the change, read for snapshots (issue 14).

Synchronous (database); async callers go through `database_sync_to_async`.
"""

from __future__ import annotations

from datetime import datetime

from django.contrib.auth.models import User
from django.db import transaction

from chatsite.rooms import services
from chatsite.rooms.models import Room

from .models import RoomEvent

# A snapshot carries at most this many events; with no messages, the newest few.
SNAPSHOT_EVENTS = 50
EVENTS_WITHOUT_MESSAGES = 20


def changes(before: Room, after: Room) -> list[tuple[str, str]]:
    """(kind, value) for each setting that differs, in the order the UI shows them."""
    found: list[tuple[str, str]] = []
    if before.model != after.model:
        found.append((RoomEvent.Kind.MODEL, after.model))
    if before.system_prompt != after.system_prompt:
        found.append(
            (RoomEvent.Kind.SYSTEM_PROMPT, "changed" if after.system_prompt else "cleared")
        )
    if before.reply_mode != after.reply_mode:
        found.append((RoomEvent.Kind.REPLY_MODE, after.reply_mode))
    if before.is_private != after.is_private:
        found.append((RoomEvent.Kind.PRIVATE, "private" if after.is_private else "public"))
    if before.title != after.title:
        found.append((RoomEvent.Kind.TITLE, after.title))
    return found


def update_settings(
    room: Room,
    actor: User,
    *,
    title: str | None,
    system_prompt: str | None,
    model: str | None,
    private: bool | None,
    reply_mode: str | None,
) -> tuple[Room, list[RoomEvent]]:
    """Apply the owner's changes and record one event per field that changed, atomically."""
    with transaction.atomic():
        # Locked (on PostgreSQL) so two tabs' updates each compare against what the other wrote.
        before = Room.objects.select_for_update().get(pk=room.pk)
        updated = services.update_room_settings(
            before,
            title=title,
            system_prompt=system_prompt,
            model=model,
            private=private,
            reply_mode=reply_mode,
        )
        events = [
            RoomEvent.objects.create(room=updated, actor=actor, kind=kind, value=value)
            for kind, value in changes(before, updated)
        ]
    return updated, events


def snapshot_events(room_id: int, oldest: datetime | None, *, whole: bool) -> list[RoomEvent]:
    """The events a snapshot carries, oldest first, with their actors, at most SNAPSHOT_EVENTS.

    `oldest` is the oldest message the snapshot holds. When it holds the whole conversation
    (`whole`), the changes before its first message belong to it too; otherwise only those at
    or after `oldest`. A room without messages gets its newest EVENTS_WITHOUT_MESSAGES.
    """
    rows = RoomEvent.objects.filter(room_id=room_id).select_related("actor").order_by("-id")
    if oldest is not None and not whole:
        rows = rows.filter(created_at__gte=oldest)
    picked = list(rows[: SNAPSHOT_EVENTS if oldest is not None else EVENTS_WITHOUT_MESSAGES])
    picked.reverse()
    return picked
