"""Frames and rules of the group conversation around replies (SPEC §7): whether a sent message
calls for a reply under the room's reply mode, `generation.regenerate` and `typing`.

`send_message` (actions.messages) asks `reply_need` before storing (a refused message stores
nothing) and hands the stored message to `answer_if_called`, which starts the reply, lets the
cheap model decide (`auto`), or does nothing.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Literal

from channels.db import database_sync_to_async
from django.contrib.auth.models import User

from chatsite.conversation import decisions, reply_modes, writes
from chatsite.rooms import selectors
from chatsite.rooms.models import Room
from chatsite.usage import budgets

from .. import limit_guard, protocol
from ..broadcast import broadcast
from ..current import current_process
from ..protocol import FrameError, Regenerate, Typing
from ..reply_runner import reply_runner
from ..state import shared_state
from .context import ActionContext

log = logging.getLogger(__name__)

# What a sent message calls for: a reply, none, the cheap model's decision (`auto`), or
# nothing because a limit is reached (`auto` without a mention: Claude stays quiet).
Need = Literal["yes", "no", "ask", "quiet"]

SETTLE_TRIES = 20  # regenerate: how long a just-ended reply's lock may linger (× SETTLE_STEP)
SETTLE_STEP = 0.05
TYPING_EVERY = 2.0  # seconds: at most one `typing` per person per room passed on
TYPING_BUCKET = "typing"


async def reply_need(room: Room, user: User, text: str, mode: str) -> Need:
    """What `text` calls for in `room` under `mode` (its reply mode as stored now: the owner may
    have changed it on another tab); raises `budget_exceeded` for a message that calls for a
    reply when a limit is reached. Messages that call for none are never refused for budget."""
    need = reply_modes.reply_need(mode, text)
    if need == "yes":
        await budgets.check_budget(user.pk, room.pk)
    elif need == "ask" and await budgets.refusal(user.pk, room.pk) is not None:
        return "quiet"
    return need


async def answer_if_called(room_id: int, message_id: int, need: Need) -> None:
    """After the message is stored and announced: start the reply, or decide, or nothing."""
    if need == "yes":
        await reply_runner().request(room_id)
    elif need == "ask":
        # Held by the process: a shutdown lets it store its answer (the reaper answers a "yes"
        # the runner, shutting down, no longer starts).
        current_process().decisions.spawn(_decide_then_answer(room_id, message_id))
    elif need == "quiet":
        await decisions.stay_quiet(room_id, message_id)


async def _decide_then_answer(room_id: int, message_id: int) -> None:
    try:
        if await decisions.decide(room_id, message_id):
            await reply_runner().request(room_id)
    except Exception:
        log.exception("reply decision for message %s crashed", message_id)


async def deciding_idle() -> None:
    """Wait until this process's decisions are done (tests)."""
    await current_process().decisions.idle()


async def _reply_running(room_id: int) -> bool:
    if reply_runner().running(room_id):
        return True
    try:
        return bool(await shared_state().reply_locks.held(room_id))
    except Exception as exc:  # the database still knows whether a reply streams
        log.warning("room %s's reply lock unreadable: %s", room_id, exc)
        return False


async def _room_free(room_id: int) -> bool:
    """Whether no reply runs in the room. A reply that just ended frees the room's lock a
    moment after its `generation.finished` (its cost is recorded in between), so a lock held
    while the database shows no running reply gets up to a second to go; a reply that is
    starting shows up in the database meanwhile."""
    for _ in range(SETTLE_TRIES):
        if not await _reply_running(room_id):
            return True
        if await database_sync_to_async(selectors.room_has_streaming_reply)(room_id):
            return False
        await asyncio.sleep(SETTLE_STEP)
    return False


async def regenerate(ctx: ActionContext, frame: Regenerate) -> None:
    """Answer the newest reply's turns again; the old reply stays, superseded."""
    room_id = ctx.room.pk
    if not await _room_free(room_id):
        raise FrameError("busy", "Claude is replying; wait for the reply to end.")
    # A new reply costs like any other: refused when the asker or the room is over budget.
    await budgets.check_budget(ctx.user.pk, room_id)
    result = await database_sync_to_async(writes.supersede_newest_reply)(room_id, frame.message_id)
    if result == "not_found":
        raise FrameError("not_found", "Only the room's newest reply can be regenerated.")
    if result == "busy":
        raise FrameError("busy", "Claude is replying; wait for the reply to end.")
    await broadcast(room_id, protocol.message_superseded(frame.message_id))
    if not await reply_runner().request(room_id):
        # A reply started elsewhere at this very moment: it answers the same turns.
        log.info("room %s: regenerated turns go to the reply that just started", room_id)


async def typing(ctx: ActionContext, frame: Typing) -> None:
    """Tell the room's other people that this one types: at most once per TYPING_EVERY."""
    user = ctx.user
    # Counted across processes (and by this one alone when Redis cannot answer).
    wait = await limit_guard.hit(f"{ctx.room.pk}:{user.pk}", 1, TYPING_EVERY, TYPING_BUCKET)
    if wait is None:
        await broadcast(ctx.room.pk, protocol.typing(user.username), skip_user=user.username)
