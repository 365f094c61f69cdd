"""A reply's ending: stored in the database (retried while it hiccups), the live state
cleared, and `generation.finished` sent to the room. Also the database checks the runner makes
about replies (async wrappers around `chatsite.rooms` services and selectors)."""

from __future__ import annotations

import asyncio
import logging
from decimal import Decimal

from channels.db import database_sync_to_async

from chatsite.conversation import writes
from chatsite.llm.base import Usage
from chatsite.rooms import selectors, services
from chatsite.rooms.services import ReplyOutcome

from . import protocol, reply_cost
from .broadcast import broadcast
from .reply_live import LiveReply

log = logging.getLogger(__name__)

STORE_ATTEMPTS = 5  # tries before a reply's ending is left to the reaper
STORE_FIRST_DELAY = 0.2  # seconds before the second try; doubles after each


async def end_reply(live: LiveReply, final: ReplyOutcome, error: dict[str, str] | None) -> None:
    """Store `final` (its text and status decided), clear the live state, tell the room.

    This is where every reply that ran here ends with its usage (`final.usage`): a feature
    that acts on finished replies hooks in after `stored` is True.
    """
    stored = await store_ending(live.message_id, final)
    if stored is None:
        # Keep the live text: once the database is back, the reaper stores it (interrupted).
        log.error("reply %s not stored: the database is unavailable", live.message_id)
        return
    if not stored:
        log.warning("reply %s was already finished elsewhere", live.message_id)
    # Ledger (a database write) before anything else that goes through Redis: if Redis hangs
    # from here on, the reply is still counted (its budget counters are rebuilt from the ledger).
    cost = await reply_cost.charge_reply(live, final) if stored else Decimal(0)
    await live.clear()
    if stored:
        usage = (final.usage or Usage()).as_dict()
        stopped_by = await stopper(live.message_id) if final.status == "stopped" else None
        await broadcast(
            live.room_id,
            protocol.generation_finished(
                live.message_id,
                final.status,
                final.text,
                final.stop_reason,
                usage,
                error,
                cost_usd=float(cost),
                stopped_by=stopped_by,
            ),
        )


async def stopper(message_id: int) -> str | None:
    """Who pressed stop on the reply (recorded by the stop action, on any process)."""
    try:
        name: str | None = await database_sync_to_async(writes.stopper_name)(message_id)
        return name
    except Exception as exc:  # the stored reply has it; tabs read it from their next snapshot
        log.warning("reply %s: who stopped it is unreadable: %s", message_id, exc)
        return None


async def store_ending(message_id: int, outcome: ReplyOutcome) -> bool | None:
    """Store a reply's ending: True if stored, False if it had ended already (e.g. reaped),
    None if the database kept failing (retried a few times: the reply would stay streaming)."""
    for attempt in range(STORE_ATTEMPTS):
        try:
            return await store_once(message_id, outcome)
        except Exception as exc:
            log.error("storing reply %s failed (attempt %s): %s", message_id, attempt + 1, exc)
            await asyncio.sleep(STORE_FIRST_DELAY * 2**attempt)
    return None


async def store_once(message_id: int, outcome: ReplyOutcome) -> bool:
    """Store the ending with one try; False when the reply had ended already. Raises."""
    return bool(await database_sync_to_async(services.finish_reply)(message_id, outcome))


async def store_interrupted(live: LiveReply, outcome: ReplyOutcome) -> bool:
    """Store an interrupted ending at once and charge it, telling nobody (a shutdown whose
    normal ending hangs); False when the reply had ended already. Raises.

    The ledger comes after the text is safe: a hung Redis under the budget counters can only
    cut the charge short (the caller's timeout), never the stored text.
    """
    if not await store_once(live.message_id, outcome):
        return False
    await reply_cost.charge_reply(live, outcome)
    return True


async def still_streaming(message_id: int) -> bool:
    """Whether the database still calls the reply streaming (nobody stored its ending). Raises."""
    return bool(await database_sync_to_async(selectors.reply_is_streaming)(message_id))


async def room_has_streaming_reply(room_id: int) -> bool:
    """Whether the database calls some reply of the room streaming. Raises."""
    return bool(await database_sync_to_async(selectors.room_has_streaming_reply)(room_id))
