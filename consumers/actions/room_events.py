"""The room's settings changes on the wire: `room.snapshot.events`, `room.updated.events`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

from chatsite.conversation.models import RoomEvent
from chatsite.rooms.serializers import MessageData, iso_utc

from ..protocol.frames import RoomEventData, RoomEventKind


def event_data(event: RoomEvent) -> RoomEventData:
    """One event as SPEC §6 (additive) shows it; `actor` is None once their account is gone."""
    return {
        "id": event.pk,
        "kind": cast(RoomEventKind, event.kind),
        "value": event.value,
        "actor": event.actor.username if event.actor is not None else None,
        "created_at": iso_utc(event.created_at),
    }


def events_from(
    messages: Sequence[MessageData], events: list[RoomEventData]
) -> list[RoomEventData]:
    """The events at or after the oldest of `messages` (none when there are no messages)."""
    if not messages:
        return []
    oldest = messages[0]["created_at"]
    return [e for e in events if e["created_at"] >= oldest]
