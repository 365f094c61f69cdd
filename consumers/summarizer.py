"""Long rooms: fold old turns into the room's running summary in a background task.

After each reply the runner calls `Summarizer.after_reply(...)`. That returns at once; a task
decides (chatsite.llm.summary.plan_fold), takes the room's summary lock (one summarizer per
room across processes), asks the provider's cheap model for the updated summary and stores it
with a compare-and-set. Replies never wait for it: until the fold lands they use the previous
summary, with `fit_turns` keeping them within budget.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid

from channels.db import database_sync_to_async
from django.conf import settings

from chatsite.llm.base import ChatRequest, Provider, StreamEnd, TextDelta, Turn
from chatsite.llm.context import calibrated_budget, estimate_tokens, request_budget, turns_cost
from chatsite.llm.errors import LLMError
from chatsite.llm.registry import get_provider
from chatsite.llm.summary import (
    FOLD_AT,
    FOLD_MESSAGES,
    SUMMARIZER_SYSTEM,
    SUMMARY_MAX_TOKENS,
    Fold,
    clean_summary,
    plan_fold,
    summary_block,
    summary_prompt,
)
from chatsite.rooms import selectors, services
from chatsite.rooms.serializers import room_data
from chatsite.usage.charging import metered

from . import protocol
from .broadcast import broadcast
from .current import current_process
from .state import SharedState

log = logging.getLogger(__name__)

SUMMARY_TIMEOUT = 120.0  # seconds a summarizer call may take
LOCK_TTL = SUMMARY_TIMEOUT + 30  # outlives the call, so a fold is never run twice at once
RETRY_AFTER = 60.0  # after a failed fold, the room's next try waits this long


@database_sync_to_async
def plan(room_id: int, upto_id: int) -> tuple[Fold, str, int] | None:
    """(what to fold, the current summary, the id it covers up to), or None."""
    room = selectors.room_by_id(room_id)
    if room is None:
        return None
    history = selectors.summary_history(room, upto_id)
    fixed = estimate_tokens(room.system_prompt) + estimate_tokens(summary_block(room.summary))
    budget = calibrated_budget(
        request_budget(settings.LLM_CONTEXT_WINDOW, settings.LLM_MAX_TOKENS),
        selectors.token_density(room),
    )
    fold = plan_fold(history, budget, fixed)
    return None if fold is None else (fold, room.summary, room.summary_upto_id)


async def summarize(
    provider: Provider, previous: str, fold: Fold, room_id: int | None = None
) -> str:
    """The updated summary from the provider's summary model; raises LLMError. The call is
    charged to the room (usage ledger, kind `summary`)."""
    request = ChatRequest(
        model=provider.summary_model(),
        system=SUMMARIZER_SYSTEM,
        turns=(Turn("user", summary_prompt(previous, fold.items)),),
        max_tokens=SUMMARY_MAX_TOKENS,
        purpose="summary",
    )
    parts: list[str] = []
    stream = metered(provider.stream(request), "summary", room_id, request.model, provider.name)
    async for event in stream:
        if isinstance(event, TextDelta):
            parts.append(event.text)
        elif isinstance(event, StreamEnd):
            if event.stop_reason == "max_tokens":
                log.warning("summary hit its %s-token cap; kept as cut", SUMMARY_MAX_TOKENS)
            break
    summary = clean_summary("".join(parts))
    if not summary:
        raise LLMError("the summary came back empty")
    return summary


def may_need_fold(request: ChatRequest) -> bool:
    """Whether the room behind a reply's request may be long enough to fold (no database).

    The reply itself is not in the request: allow twice its cap, since the estimate
    overcounts real tokens.
    """
    if request.history_size >= FOLD_MESSAGES:
        return True
    size = (
        estimate_tokens(request.system)
        + estimate_tokens(request.summary)
        + turns_cost(request.turns)
        + 2 * settings.LLM_MAX_TOKENS
    )
    budget = request.budget or request_budget(settings.LLM_CONTEXT_WINDOW, settings.LLM_MAX_TOKENS)
    return size > FOLD_AT * budget


class Summarizer:
    """This process's background folds, at most one per room."""

    def __init__(self, state: SharedState) -> None:
        self.state = state  # the summary locks
        self.tasks: dict[int, asyncio.Task[None]] = {}
        self.retry_at: dict[int, float] = {}  # rooms whose last fold failed: not before then

    def after_reply(self, room_id: int, reply_id: int, request: ChatRequest | None = None) -> None:
        """Called when a reply ended: fold the room's history in the background if it is long.

        With the reply's `request`, rooms clearly too short to fold cost nothing more.
        """
        if request is not None and not may_need_fold(request):
            return
        if room_id in self.tasks or time.monotonic() < self.retry_at.get(room_id, 0.0):
            return
        task = asyncio.create_task(self._fold(room_id, reply_id), name=f"summary-room-{room_id}")
        self.tasks[room_id] = task
        task.add_done_callback(lambda _: self.tasks.pop(room_id, None))

    async def _fold(self, room_id: int, reply_id: int) -> None:
        try:
            await self.fold(room_id, reply_id)
        except Exception as exc:
            self.retry_at[room_id] = time.monotonic() + RETRY_AFTER
            detail = exc.detail if isinstance(exc, LLMError) else f"{type(exc).__name__}: {exc}"
            log.warning(
                "summary of room %s failed (next try in %.0fs): %s", room_id, RETRY_AFTER, detail
            )

    async def fold(self, room_id: int, reply_id: int) -> bool:
        """Fold now if the room needs it; True when a new summary was stored."""
        if await plan(room_id, reply_id) is None:
            return False
        state = self.state
        token = uuid.uuid4().hex
        if not await state.summary_locks.acquire(room_id, token, LOCK_TTL):
            return False  # another process is folding this room
        try:
            # Again under the lock: another process may have folded while we looked.
            planned = await plan(room_id, reply_id)
            if planned is None:
                return False
            fold, previous, previous_upto = planned
            started = time.monotonic()
            async with asyncio.timeout(SUMMARY_TIMEOUT):
                summary = await summarize(get_provider(), previous, fold, room_id)
            room = await database_sync_to_async(services.store_summary)(
                room_id, previous_upto, fold.upto_id, summary
            )
        finally:
            try:
                await state.summary_locks.release(room_id, token)
            except Exception as exc:  # it expires
                log.warning("room %s's summary lock not released: %s", room_id, exc)
        if room is None:
            return False
        self.retry_at.pop(room_id, None)
        log.info(
            "room %s: %s messages folded into the summary (up to id %s) in %.1fs",
            room_id,
            len(fold.items),
            fold.upto_id,
            time.monotonic() - started,
        )
        # Tabs learn where the summary now starts (Room.summary_upto_id).
        await broadcast(room_id, protocol.room_updated(room_data(room, get_provider())))
        return True

    async def idle(self) -> None:
        """Wait until no fold runs in this process (tests, shutdown)."""
        while self.tasks:
            await asyncio.gather(*list(self.tasks.values()), return_exceptions=True)

    def cancel_all(self) -> None:
        """Drop running folds (shutdown): nothing is stored half-way, and the lock expires."""
        for task in list(self.tasks.values()):
            task.cancel()


def summarizer() -> Summarizer:
    """This process's summarizer (`current_process().summarizer`)."""
    return current_process().summarizer
