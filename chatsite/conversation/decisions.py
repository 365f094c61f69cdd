"""`auto` mode: ask the cheap model whether Claude should answer a message, and keep the answer.

The decision is small (the newest few turns, a one-word answer) and quick, since it sits on
the time-to-first-token path. Its prompt and answer are kept in `ReplyDecision` (the admin
shows them), its cost goes to the usage ledger (kind `decision`, charged to the room), and
one log line tells operators what was decided, by which model, at what cost; the log line
never carries message text or the prompt (SPEC §8). Under the demo provider a deterministic
rule stands in (`reply_modes.demo_wants_reply`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from decimal import Decimal

from channels.db import database_sync_to_async

from chatsite.llm.base import ChatRequest, Provider, StreamEnd, TextDelta, Turn, Usage, UsageUpdate
from chatsite.llm.context import HistoryItem
from chatsite.llm.errors import LLMError
from chatsite.llm.registry import get_provider
from chatsite.rooms.models import Message

from .models import ReplyDecision
from .reply_modes import (
    DECISION_MAX_TOKENS,
    DECISION_SYSTEM,
    DECISION_TURNS,
    decision_prompt,
    demo_wants_reply,
    parse_answer,
)

log = logging.getLogger(__name__)

DECISION_TIMEOUT = 10.0  # seconds; a slower cheap model counts as "no"


@dataclass
class Decision:
    """What was decided for one message, and what it cost."""

    wanted: bool
    how: str
    model: str = ""
    provider: str = ""
    prompt: str = ""
    answer: str = ""
    usage: Usage = field(default_factory=Usage)
    duration_ms: int = 0
    cost_usd: Decimal = Decimal(0)


def recent_turns(room_id: int, message_id: int) -> list[HistoryItem]:
    """The newest few turns up to `message_id`, oldest first (superseded replies left out)."""
    rows = (
        Message.objects.filter(room_id=room_id, id__lte=message_id, superseded=False)
        .exclude(role=Message.Role.ASSISTANT, text="")
        .select_related("author")
        .order_by("-id")[:DECISION_TURNS]
    )
    items = [
        HistoryItem(m.pk, m.role, m.author.username if m.author else None, m.text) for m in rows
    ]
    items.reverse()
    return items


async def ask_model(provider: Provider, prompt: str) -> tuple[str, Usage, str]:
    """The cheap model's raw answer, its usage and the model called; raises LLMError."""
    model = provider.summary_model()
    request = ChatRequest(
        model=model,
        system=DECISION_SYSTEM,
        turns=(Turn("user", prompt),),
        max_tokens=DECISION_MAX_TOKENS,
        purpose="summary",  # background work: the demo never gets here anyway
    )
    parts: list[str] = []
    usage = Usage()
    async with asyncio.timeout(DECISION_TIMEOUT):
        async for event in provider.stream(request):
            if isinstance(event, TextDelta):
                parts.append(event.text)
            elif isinstance(event, UsageUpdate):
                usage = event.usage
            elif isinstance(event, StreamEnd):
                usage = event.usage
                break
    return "".join(parts), usage, model


async def decide(room_id: int, message_id: int) -> bool:
    """Whether Claude should answer `message_id` (an `auto` room's, without a mention).

    Stored before it is returned, so the runner's hand-over sees a "yes" that lands while a
    reply runs. A failure or a timeout of the cheap model is a "no" (logged as a warning).
    """
    recent = await database_sync_to_async(recent_turns)(room_id, message_id)
    if not recent:
        return False
    provider = get_provider()
    started = time.monotonic()
    if provider.name == "demo":
        wanted = demo_wants_reply(recent[-1].text)
        decision = Decision(
            wanted, ReplyDecision.How.DEMO, "demo", "demo", "", "yes" if wanted else "no"
        )
    else:
        prompt = decision_prompt(recent)
        try:
            answer, usage, model = await ask_model(provider, prompt)
            decision = Decision(
                parse_answer(answer),
                ReplyDecision.How.MODEL,
                model,
                provider.name,
                prompt,
                answer.strip()[:200],
                usage,
            )
        except (LLMError, TimeoutError) as exc:
            detail = exc.detail if isinstance(exc, LLMError) else "timed out"
            log.warning("reply decision for message %s failed (no reply): %s", message_id, detail)
            decision = Decision(
                False,
                ReplyDecision.How.FAILED,
                provider.summary_model(),
                provider.name,
                prompt,
                detail[:200],
            )
    decision.duration_ms = int((time.monotonic() - started) * 1000)
    await keep(room_id, message_id, decision)
    return decision.wanted


async def stay_quiet(room_id: int, message_id: int) -> None:
    """Record that a limit kept Claude quiet without asking the cheap model."""
    await keep(room_id, message_id, Decision(False, ReplyDecision.How.BUDGET))


async def keep(room_id: int, message_id: int, decision: Decision) -> None:
    """Charge the decision to the room (usage ledger), store it, and log it."""
    if decision.how in (ReplyDecision.How.MODEL, ReplyDecision.How.FAILED):
        decision.cost_usd = await charge(room_id, decision)
    await database_sync_to_async(_store)(message_id, decision)
    log.info(
        "reply decision for message %s in room %s: %s (%s, %s)",
        message_id,
        room_id,
        "yes" if decision.wanted else "no",
        decision.how,
        decision.model or "-",
        extra={
            "event": "reply_decision",
            "room_id": room_id,
            "message_id": message_id,
            "wanted": decision.wanted,
            "how": decision.how,
            "model": decision.model,
            "provider": decision.provider,
            "input_tokens": decision.usage.input_tokens,
            "output_tokens": decision.usage.output_tokens,
            "cost_usd": float(decision.cost_usd),
            "duration_ms": decision.duration_ms,
        },
    )


async def charge(room_id: int, decision: Decision) -> Decimal:
    """Record the call in the usage ledger (kind `decision`, the room pays); its cost."""
    from chatsite.usage.charging import record_usage
    from chatsite.usage.ledger import Call

    failed = decision.how != ReplyDecision.How.MODEL
    recorded = await record_usage(
        Call(
            kind="decision",
            room_id=room_id,
            model=decision.model,
            provider=decision.provider,
            usage=decision.usage,
            status="error" if failed else "complete",
            error_code="upstream_error" if failed else "",
            duration_ms=decision.duration_ms,
        )
    )
    return Decimal(0) if recorded is None else recorded.cost


def _store(message_id: int, decision: Decision) -> None:
    ReplyDecision.objects.update_or_create(
        message_id=message_id,
        defaults={
            "wanted": decision.wanted,
            "how": decision.how,
            "model": decision.model,
            "prompt": decision.prompt,
            "answer": decision.answer,
            "input_tokens": decision.usage.input_tokens,
            "output_tokens": decision.usage.output_tokens,
            "cost_usd": decision.cost_usd,
            "duration_ms": decision.duration_ms,
        },
    )
