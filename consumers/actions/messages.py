"""Frames about the conversation itself: snapshots and `sync`, sending, stopping."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any, TypeVar

from channels.db import database_sync_to_async
from django.conf import settings
from django.contrib.auth.models import User

from chatsite.conversation import events as room_events
from chatsite.conversation import writes
from chatsite.llm.registry import get_provider
from chatsite.rooms import selectors, services
from chatsite.rooms.models import Message, Room
from chatsite.rooms.serializers import MessageData, message_data, room_data
from chatsite.usage.budgets import budget_view

from .. import limit_guard, protocol
from ..broadcast import broadcast
from ..protocol import FrameError, SendMessage, StopGeneration, Sync
from ..protocol.frames import LiveGenerationData, RoomEventData, SnapshotFrame
from ..state import LiveText, shared_state
from . import conversation
from .context import ActionContext
from .room_events import event_data, events_from

log = logging.getLogger(__name__)

SNAPSHOT_MESSAGES = 50
# `generation.stop` frames one user may send a minute (issue 12), across processes.
STOPS_PER_MINUTE = 20
# A snapshot stays under this many bytes (SPEC §6): daphne refuses frames over 1 MiB, and a
# room of 50 long messages in emoji or CJK would otherwise brick every connect.
SNAPSHOT_MAX_BYTES = 512 * 1024
# Kept free for what `personalize` adds (a username, the budget figures).
PERSONAL_PART_BYTES = 1024

MessageT = TypeVar("MessageT", bound=Mapping[str, Any])


@database_sync_to_async
def _load_snapshot_rows(room_id: int) -> tuple[Room, list[Message], list[RoomEventData]] | None:
    room = selectors.room_by_id(room_id)
    if room is None:
        return None
    rows = selectors.newest_messages(room, SNAPSHOT_MESSAGES)
    events = room_events.snapshot_events(
        room_id, rows[0].created_at if rows else None, whole=len(rows) < SNAPSHOT_MESSAGES
    )
    return room, rows, [event_data(e) for e in events]


async def _live_generation(room_id: int) -> LiveText | None:
    try:
        return await shared_state().live.get(room_id)
    except Exception as exc:  # Redis down: the database still tells which reply runs
        log.warning("live state of room %s unreadable: %s", room_id, exc)
        return None


def fit_messages(fixed: Mapping[str, Any], messages: list[MessageT]) -> list[MessageT]:
    """The newest of `messages` that keep the encoded snapshot under SNAPSHOT_MAX_BYTES."""
    room_left = SNAPSHOT_MAX_BYTES - PERSONAL_PART_BYTES - len(protocol.encode(fixed).encode())
    kept: list[MessageT] = []
    for message in reversed(messages):
        size = len(protocol.encode(message).encode()) + 1  # the comma between items
        if size > room_left:
            break
        room_left -= size
        kept.append(message)
    kept.reverse()
    return kept


async def room_snapshot(room_id: int) -> SnapshotFrame:
    """The part of `room.snapshot` every tab of the room shares (see docs/protocol.md).

    The database first, then the live text; `personalize` adds the reader's part.
    """
    loaded = await _load_snapshot_rows(room_id)
    if loaded is None:
        raise FrameError("not_found", "This room no longer exists.")
    room, rows, events = loaded
    live = await _live_generation(room_id)
    streaming = [m.pk for m in rows if m.status == Message.Status.STREAMING]
    newest = rows[-1].pk if rows else 0
    generation: LiveGenerationData | None = None
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
    # The events (at most 50 short ones) count against the byte cap like the room does.
    frame = protocol.snapshot(room_data(room, get_provider()), "", [], generation, None, events)
    frame["messages"] = fit_messages(frame, messages)
    if len(frame["messages"]) < len(messages):  # older messages left out: their events too
        frame["events"] = events_from(frame["messages"], events)
    return frame


async def personalize(frame: SnapshotFrame, room_id: int, user: User) -> SnapshotFrame:
    """A room's shared snapshot for one reader: their name and today's budget."""
    budget = await budget_view(user.pk, room_id)
    personal = frame.copy()
    personal["user"] = {"username": user.username}
    personal["budget"] = budget
    return personal


async def snapshot(room_id: int, user: User) -> SnapshotFrame:
    """The `room.snapshot` frame for one reader."""
    return await personalize(await room_snapshot(room_id), room_id, user)


async def sync(ctx: ActionContext, frame: Sync) -> None:
    """Answer `sync` with a fresh snapshot, to this tab only."""
    await ctx.reply(await snapshot(ctx.room.pk, ctx.user))


@database_sync_to_async
def _before_sending(room: Room, user: User, client_msg_id: str | None) -> tuple[bool, str]:
    """Whether `client_msg_id` was used already, and the room's reply mode now: one trip to
    the database thread for both (issue 15: each trip delays the model's request)."""
    used = client_msg_id is not None and selectors.client_msg_id_used(room, user, client_msg_id)
    mode = Room.objects.filter(pk=room.pk).values_list("reply_mode", flat=True).first()
    return used, mode or room.reply_mode


@database_sync_to_async
def _store_user_message(room: Room, user: User, frame: SendMessage) -> MessageData | None:
    """Store the message and serialize it in the same database thread; None for a repeat."""
    message = services.store_user_message(room, user, frame.text, frame.client_msg_id)
    return None if message is None else message_data(message)


async def send_message(ctx: ActionContext, frame: SendMessage) -> None:
    """Store a user's message, tell the room, and make sure Claude answers it."""
    room, user = ctx.room, ctx.user
    used, mode = await _before_sending(room, user, frame.client_msg_id)
    if used:
        return  # a repeat: stores nothing, starts nothing, sends nothing
    await check_rate(user)
    # Reply mode (SPEC §7); budgets are checked here, only for messages that call for a reply.
    need = await conversation.reply_need(room, user, frame.text, mode)
    message = await _store_user_message(room, user, frame)
    if message is None:
        return
    await broadcast(room.pk, protocol.message_created(message))
    await conversation.answer_if_called(room.pk, message["id"], need)


async def check_rate(user: User) -> None:
    """Refuse a message over the user's per-minute allowance, across processes."""
    # Fails closed: this process counts too, and decides alone when Redis cannot (issue 12).
    wait = await limit_guard.hit(user.pk, settings.CHAT_RATE_PER_MINUTE, 60.0)
    if wait is not None:
        raise FrameError(
            "rate_limited",
            f"You can send {settings.CHAT_RATE_PER_MINUTE} messages a minute. Try again shortly.",
            # Rounded up: a client waiting exactly this long is never refused again.
            retry_after=math.ceil(wait * 10) / 10,
        )


async def stop_generation(ctx: ActionContext, frame: StopGeneration) -> None:
    """Ask whichever process runs the room's reply to stop it."""
    room = ctx.room
    # Stops are limited per user like messages (issue 12): each one reads and writes state.
    wait = await limit_guard.hit(ctx.user.pk, STOPS_PER_MINUTE, 60.0, bucket="stop")
    if wait is not None:
        raise FrameError(
            "rate_limited",
            f"You can stop {STOPS_PER_MINUTE} replies a minute. Try again shortly.",
            retry_after=math.ceil(wait * 10) / 10,
        )
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
    # Who pressed it (the first to press counts), for `stopped_by` wherever the reply runs.
    await database_sync_to_async(writes.record_stopper)(message_id, ctx.user.pk)
    try:
        await shared_state().live.request_stop(room.pk, message_id)
    except Exception as exc:
        # The reply goes on and the Stop button stays: the person can press it again.
        log.warning("stop request in room %s failed: %s", room.pk, exc)
