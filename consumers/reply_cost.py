"""What a reply cost (SPEC §8): charged once its ending is stored, before the room hears
`generation.finished` (which carries `cost_usd`), and the operators' line per upstream error.

The reply job counts its retries on the LiveReply (`retries`); the emitter numbers its deltas.
Everything else comes from the stored ending (`ReplyOutcome`): usage, model, status, timings.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal

from chatsite.llm.base import StreamEvent, Usage
from chatsite.llm.errors import ConfigurationError, LLMError, RetryableError
from chatsite.llm.registry import get_provider
from chatsite.rooms.services import ReplyOutcome
from chatsite.usage import charging
from chatsite.usage.ledger import Call

from .reply_live import LiveReply


async def charge_reply(live: LiveReply, final: ReplyOutcome) -> Decimal:
    """Record the reply in the ledger, split among who it answers, count it in the budgets,
    log its line; its cost (0 when the ledger could not be written: the reply is unaffected)."""
    payers = await charging.reply_payers(live.message_id)
    call = Call(
        kind="reply",
        room_id=live.room_id,
        message_id=live.message_id,
        model=final.model or "",
        provider=get_provider().name,
        usage=final.usage or Usage(),
        status=final.status,
        error_code=final.error_code,
        ttft_ms=final.time_to_first_token_ms,
        duration_ms=final.duration_ms,
        retries=max(0, live.attempts - 1),
        deltas=live.emitter.seq,
        payers=payers,
    )
    recorded = await charging.record_usage(call)
    return recorded.cost if recorded is not None else Decimal(0)


async def charge_reaped(room_id: int, message_id: int, model: str, provider: str) -> None:
    """A reply whose process died, stored as interrupted by the reaper: in the ledger (so
    replies_total counts it) with the usage that died with its process unknown, so 0."""
    payers = await charging.reply_payers(message_id)
    call = Call(
        kind="reply",
        room_id=room_id,
        message_id=message_id,
        model=model,
        provider=provider,
        usage=Usage(),
        status="interrupted",
        payers=payers,
    )
    await charging.record_usage(call)


async def counted(
    stream: AsyncIterator[StreamEvent], live: LiveReply, model: str
) -> AsyncIterator[StreamEvent]:
    """A model call's stream, counted as an attempt of the reply; a failure is logged as one
    JSON line (without the upstream's words, which may quote the request) and re-raised."""
    live.attempts += 1
    try:
        async for event in stream:
            yield event
    except LLMError as exc:
        _log_upstream_error(live, model, exc)
        raise


def _log_upstream_error(live: LiveReply, model: str, exc: LLMError) -> None:
    if isinstance(exc, RetryableError):
        code = exc.reason
    elif isinstance(exc, ConfigurationError):
        code = "configuration"
    else:
        code = "stream_broken"
    charging.log_upstream_error(
        room_id=live.room_id,
        message_id=live.message_id,
        model=model,
        provider=get_provider().name,
        code=code,
        attempt=live.attempts,
        status=getattr(exc, "status", None),
    )
