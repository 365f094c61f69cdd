"""Replies nobody runs any more: a reply whose process died is stored as interrupted (with the
text its live state held) and the room's next reply starts; a room left with an unanswered
message (after an outage of Redis or the database) gets its reply."""

from __future__ import annotations

import logging
import time
import uuid
from datetime import timedelta

from channels.db import database_sync_to_async
from django.conf import settings

from chatsite.llm.base import Usage
from chatsite.rooms import selectors
from chatsite.rooms.models import Message
from chatsite.rooms.services import ReplyOutcome

from . import protocol, reply_cost, reply_ending
from .broadcast import broadcast
from .reply_runner import ReplyRunner
from .state import SharedState

log = logging.getLogger(__name__)

# How far back the reaper looks for unanswered messages (left by a long outage of Redis or the
# database); older ones are answered by the room's next message, which answers all of them.
UNANSWERED_WITHIN = timedelta(hours=24)
UNANSWERED_SETTLED = timedelta(seconds=2)  # younger ones are being answered right now


class Reaper:
    """Looks every few seconds (`reap_once`) across every process's replies."""

    def __init__(self, state: SharedState, runner: ReplyRunner) -> None:
        self.state = state
        self.runner = runner
        # Streaming replies seen without a lock holder, and since when (reaped if it lasts).
        self.suspects: dict[int, float] = {}

    async def reap_once(self) -> None:
        """Interrupt replies whose process died; start replies nobody started."""
        locks = self.state.reply_locks
        confirm_after = settings.ROOM_LOCK_TTL / 5 * 1.5  # longer than one lock renewal
        now = time.monotonic()
        seen: set[int] = set()
        for message in await database_sync_to_async(selectors.streaming_replies)():
            seen.add(message.pk)
            if self.runner.running(message.room_id) or await locks.held(message.room_id):
                self.suspects.pop(message.pk, None)
                continue
            first = self.suspects.setdefault(message.pk, now)
            if now - first >= confirm_after:
                await self.interrupt_orphan(message)
                self.suspects.pop(message.pk, None)
        for gone in set(self.suspects) - seen:
            del self.suspects[gone]
        unanswered = await database_sync_to_async(selectors.unanswered_rooms)(
            UNANSWERED_WITHIN, UNANSWERED_SETTLED
        )
        for room_id in unanswered:
            if self.runner.running(room_id) or await locks.held(room_id):
                continue
            log.info("room %s has an unanswered message: starting its reply", room_id)
            await self.runner.request(room_id)

    async def interrupt_orphan(self, message: Message) -> None:
        """Store a dead process's reply as interrupted with its streamed text; tell the room."""
        locks, room_id = self.state.reply_locks, message.room_id
        token = uuid.uuid4().hex
        if not await locks.acquire(room_id, token, settings.ROOM_LOCK_TTL):
            return
        try:
            live = await self.state.live.get(room_id)
            text = live.text if live is not None and live.message_id == message.pk else message.text
            outcome = ReplyOutcome(status=Message.Status.INTERRUPTED, text=text, usage=Usage())
            if await reply_ending.store_once(message.pk, outcome):
                log.warning(
                    "reply %s in room %s interrupted: its process died", message.pk, room_id
                )
                await reply_cost.charge_reaped(room_id, message.pk, message.model, message.provider)
                await broadcast(
                    room_id,
                    protocol.generation_finished(
                        message.pk, Message.Status.INTERRUPTED, text, None, Usage().as_dict(), None
                    ),
                )
            await self.state.live.clear(room_id, message.pk)
        finally:
            await locks.release(room_id, token)
        if await database_sync_to_async(selectors.has_unanswered)(room_id):
            await self.runner.request(room_id)
