"""Charging a model call: the ledger entry, the budgets, and the operators' log line.

`record_usage` is the one function every caller uses: the reply path for replies, the
summarizer for summaries, auto mode for its decisions (those are charged to their room only).
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from decimal import Decimal

from channels.db import database_sync_to_async

from chatsite.llm.base import StreamEnd, StreamEvent, TextDelta, Usage, UsageUpdate
from chatsite.llm.errors import LLMError

from . import budgets, ledger
from .ledger import Call, Recorded
from .logs import request_id_var

log = logging.getLogger("roomchat.usage")


async def record_usage(call: Call) -> Recorded | None:
    """Store the call's cost (ledger, charges, the reply's `cost_usd`), count it in today's
    budgets and log it. None when the database refused (logged; the reply is unaffected)."""
    if not call.request_id:
        call = _with_request_id(call)
    try:
        recorded: Recorded = await database_sync_to_async(ledger.record)(call)
    except Exception:
        log.exception("usage of %s in room %s not recorded", call.kind, call.room_id)
        return None
    await budgets.add_spend(call.room_id, recorded.cost, recorded.shares)
    log_call(call, recorded.cost)
    return recorded


async def reply_payers(message_id: int) -> tuple[int, ...]:
    """Who pays for a reply: the distinct authors of the messages it answers (SPEC §8)."""
    try:
        payers: tuple[int, ...] = await database_sync_to_async(ledger.reply_payers)(message_id)
        return payers
    except Exception as exc:
        log.warning("payers of reply %s unknown, charged to its room only: %s", message_id, exc)
        return ()


def _with_request_id(call: Call) -> Call:
    from dataclasses import replace

    return replace(call, request_id=request_id_var.get())


def log_call(call: Call, cost: Decimal) -> None:
    """One line per model call, as SPEC §8 lists: never text, prompts or secrets."""
    usage = call.usage
    log.info(
        "%s %s in room %s: %s, %s USD",
        call.kind,
        call.message_id or "",
        call.room_id,
        call.status,
        cost,
        extra={
            "event": call.kind,
            "room_id": call.room_id,
            "message_id": call.message_id,
            "user_ids": list(call.payers),
            "model": call.model,
            "provider": call.provider,
            "status": call.status,
            "error_code": call.error_code or None,
            "input_tokens": usage.input_tokens,
            "output_tokens": usage.output_tokens,
            "cache_creation_input_tokens": usage.cache_creation_input_tokens,
            "cache_read_input_tokens": usage.cache_read_input_tokens,
            "cost_usd": float(cost),
            "ttft_ms": call.ttft_ms,
            "duration_ms": call.duration_ms,
            "retries": call.retries,
            "request_id": call.request_id,
        },
    )


def log_upstream_error(
    *,
    room_id: int | None,
    message_id: int | None,
    model: str,
    provider: str,
    code: str,
    attempt: int,
    status: int | None = None,
) -> None:
    """One line per upstream failure (each attempt that failed), without the upstream's words
    (they may quote the request); the existing operator lines keep the detail."""
    log.warning(
        "upstream error %s on attempt %s of reply %s",
        code,
        attempt,
        message_id,
        extra={
            "event": "upstream_error",
            "room_id": room_id,
            "message_id": message_id,
            "model": model,
            "provider": provider,
            "error_code": code,
            "http_status": status,
            "attempt": attempt,
            "request_id": request_id_var.get(),
        },
    )


async def metered(
    stream: AsyncIterator[StreamEvent],
    kind: str,
    room_id: int | None,
    model: str,
    provider: str,
) -> AsyncIterator[StreamEvent]:
    """A background model call's stream (a summary, a decision), charged to its room: when its
    end arrives (before it is passed on), or with what usage was known when it fails."""
    usage = Usage()
    started = time.monotonic()
    first: float | None = None

    def call(status: str, error_code: str = "") -> Call:
        return Call(
            kind=kind,
            room_id=room_id,
            model=model,
            provider=provider,
            usage=usage,
            status=status,
            error_code=error_code,
            ttft_ms=None if first is None else int((first - started) * 1000),
            duration_ms=int((time.monotonic() - started) * 1000),
        )

    try:
        async for event in stream:
            if isinstance(event, TextDelta) and first is None:
                first = time.monotonic()
            elif isinstance(event, UsageUpdate | StreamEnd):
                usage = event.usage
            if isinstance(event, StreamEnd):
                await record_usage(call("complete"))
            yield event
    except LLMError:
        await record_usage(call("error", "upstream_error"))
        raise
