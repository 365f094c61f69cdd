"""What a tab can do in a room, as plain async functions the consumer calls (testable without
a socket): snapshots, sending, stopping, room settings. Presence: `consumers.presence`."""

from __future__ import annotations

import logging
import math
from typing import Any

from channels.db import database_sync_to_async
from django.conf import settings
from django.contrib.auth.models import User

from chatsite.llm.registry import get_provider
from chatsite.rooms import selectors, services
from chatsite.rooms.access import can_manage
from chatsite.rooms.models import Message, Room
from chatsite.rooms.serializers import message_data, room_data

from . import protocol
from .broadcast import broadcast
from .livestate import LiveGeneration, shared_state
from .protocol import FrameError, SendMessage, StopGeneration, UpdateRoom
from .replies import reply_runner

log = logging.getLogger(__name__)

SNAPSHOT_MESSAGES = 50


@database_sync_to_async
def _load_snapshot_rows(room_id: int) -> tuple[Room, list[Message]] | None:
    room = selectors.room_by_id(room_id)
    if room is None:
        return None
    return room, selectors.newest_messages(room, SNAPSHOT_MESSAGES)


async def _live_generation(room_id: int) -> LiveGeneration | None:
    try:
        return await shared_state().get_generation(room_id)
    except Exception as exc:  # Redis down: the database still tells which reply runs
        log.warning("live state of room %s unreadable: %s", room_id, exc)
        return None


async def snapshot(room_id: int, username: str) -> dict[str, Any]:
    """The `room.snapshot` frame: the database first, then the live text (see docs/protocol.md)."""
    loaded = await _load_snapshot_rows(room_id)
    if loaded is None:
        raise FrameError("invalid_message", "This room no longer exists.")
    room, rows = loaded
    live = await _live_generation(room_id)
    streaming = [m.pk for m in rows if m.status == Message.Status.STREAMING]
    newest = rows[-1].pk if rows else 0
    generation: dict[str, Any] | None = None
    if live is not None and (live.message_id in streaming or live.message_id > newest):
        generation = {"message_id": live.message_id, "seq": live.seq, "text": live.text}
    elif streaming:
        # Started, no delta recorded yet (or the live state was lost and is being rebuilt).
        generation = {"message_id": streaming[-1], "seq": 0, "text": ""}
    messages = [
        message_data(
            m, generation["text"] if generation and m.pk == generation["message_id"] else None
        )
        for m in rows
    ]
    return protocol.snapshot(room_data(room, get_provider()), username, messages, generation)


@database_sync_to_async
def _client_msg_id_used(room: Room, user: User, client_msg_id: str | None) -> bool:
    return client_msg_id is not None and selectors.client_msg_id_used(room, user, client_msg_id)


async def send_message(room: Room, user: User, frame: SendMessage) -> None:
    """Store a user's message, tell the room, and make sure Claude answers it."""
    if await _client_msg_id_used(room, user, frame.client_msg_id):
        return  # a repeat: stores nothing, starts nothing, sends nothing
    await check_rate(user)
    message = await database_sync_to_async(services.store_user_message)(
        room, user, frame.text, frame.client_msg_id
    )
    if message is None:
        return
    await broadcast(room.pk, protocol.message_created(message_data(message)))
    await reply_runner().request(room.pk)


async def check_rate(user: User) -> None:
    """Refuse a message over the user's per-minute allowance, across processes."""
    try:
        wait = await shared_state().rate_limit_hit(user.pk, settings.CHAT_RATE_PER_MINUTE, 60.0)
    except Exception as exc:  # without Redis we cannot count: let the message through
        log.warning("rate limit unavailable: %s", exc)
        return
    if wait is not None:
        raise FrameError(
            "rate_limited",
            f"You can send {settings.CHAT_RATE_PER_MINUTE} messages a minute. Try again shortly.",
            # Rounded up: a client waiting exactly this long is never refused again.
            retry_after=math.ceil(wait * 10) / 10,
        )


async def stop_generation(room: Room, frame: StopGeneration) -> None:
    """Ask whichever process runs the room's reply to stop it."""
    live = await _live_generation(room.pk)
    if live is not None:
        message_id = live.message_id
    else:
        streaming = await database_sync_to_async(selectors.streaming_reply_id)(room)
        if streaming is None:
            return
        message_id = streaming
    if frame.message_id is not None and frame.message_id != message_id:
        return  # that reply has already ended
    try:
        await shared_state().request_stop(room.pk, message_id)
    except Exception as exc:
        # The reply goes on and the Stop button stays: the person can press it again.
        log.warning("stop request in room %s failed: %s", room.pk, exc)


async def update_room(room: Room, user: User, frame: UpdateRoom) -> None:
    """Apply the owner's settings and tell the room."""
    if not can_manage(user, room):
        raise FrameError("forbidden", "Only the room's owner can change its settings.")
    if frame.model is not None:
        check_model(frame.model)
    updated = await database_sync_to_async(services.update_room_settings)(
        room, title=frame.title, system_prompt=frame.system_prompt, model=frame.model
    )
    await broadcast(room.pk, protocol.room_updated(room_data(updated, get_provider())))


def check_model(model: str) -> None:
    """Refuse a model the owner may not pick: not offered, or deprecated by Anthropic."""
    provider = get_provider()
    if provider.name != "anthropic":
        raise FrameError("invalid_message", f"The {provider.name} provider has one fixed model.")
    from chatsite.llm.anthropic_provider import deprecation_date

    retiring = deprecation_date(model)
    if retiring is not None:
        raise FrameError(
            "invalid_message", f"{model} is deprecated (end of life {retiring}); pick another."
        )
    if model not in provider.selectable_models():
        allowed = ", ".join(provider.selectable_models())
        raise FrameError("invalid_message", f"{model} is not offered here. Pick one of: {allowed}.")
