"""Charging background calls and the deployment's cap, in process (in-memory counters)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import User

from chatsite.llm.base import StreamEnd, StreamEvent, TextDelta, Usage, UsageUpdate
from chatsite.llm.errors import LLMError
from chatsite.rooms.models import Room
from chatsite.usage import budgets, charging, ledger, prices, store
from chatsite.usage.models import Charge, UsageEntry
from consumers.protocol import FrameError

pytestmark = pytest.mark.django_db(transaction=True)
HAIKU = "claude-haiku-5-5"


@pytest.fixture(autouse=True)
def fresh_state(settings: Any) -> None:
    settings.LLM_PRICES = ""
    settings.CHAT_USER_DAILY_USD = 0
    settings.CHAT_ROOM_DAILY_USD = 0
    settings.LLM_DAILY_SPEND_USD = 1.0
    prices.price_table.cache_clear()
    store.reset_counters()


@sync_to_async
def make_room(slug: str = "bg") -> tuple[User, Room]:
    owner = User.objects.create_user(f"owner-{slug}", password=None)
    return owner, Room.objects.create(slug=slug, title=slug, owner=owner, model=HAIKU)


async def stream(*events: StreamEvent, fail: bool = False) -> AsyncIterator[StreamEvent]:
    for event in events:
        yield event
    if fail:
        raise LLMError("the stream broke")


async def test_a_summary_is_charged_to_its_room_only() -> None:
    _, room = await make_room()
    usage = Usage(input_tokens=200_000, output_tokens=10_000, cache_read_input_tokens=100_000)
    events = stream(TextDelta("short summary"), StreamEnd("end_turn", usage))
    seen = [e async for e in charging.metered(events, "summary", room.pk, HAIKU, "anthropic")]
    assert len(seen) == 2
    entry = await UsageEntry.objects.aget(kind="summary")
    # 0.2 (input) + 0.05 (output) + 0.01 (cache read) at Haiku's prices.
    assert entry.cost_usd == Decimal("0.26") and entry.room_id == room.pk
    assert entry.status == "complete" and entry.ttft_ms is not None
    assert await Charge.objects.acount() == 0
    view = await budgets.budget_view(0, room.pk)
    assert view["room_spent_usd"] == pytest.approx(0.26)


async def test_a_failed_background_call_is_charged_with_the_usage_known() -> None:
    _, room = await make_room()
    events = stream(UsageUpdate(Usage(input_tokens=1_000_000)), fail=True)
    with pytest.raises(LLMError):
        async for _ in charging.metered(events, "decision", room.pk, HAIKU, "anthropic"):
            pass
    entry = await UsageEntry.objects.aget()
    assert (entry.kind, entry.status, entry.cost_usd) == ("decision", "error", Decimal("1"))


async def test_the_deployment_cap_warns_once_at_80_percent_and_refuses_at_100(
    caplog: pytest.LogCaptureFixture,
) -> None:
    owner, room = await make_room()
    _, other = await make_room("other")

    async def spend(room_id: int, usd: str) -> None:
        call = ledger.Call(
            kind="reply",
            room_id=room_id,
            model=HAIKU,
            provider="anthropic",
            usage=Usage(input_tokens=int(Decimal(usd) * 1_000_000)),
            payers=(owner.pk,),
        )
        recorded = await sync_to_async(ledger.record)(call)
        await budgets.add_spend(room_id, recorded.cost, recorded.shares)

    await budgets.check_budget(owner.pk, room.pk)  # counters start from the (empty) ledger
    with caplog.at_level(logging.WARNING, logger="chatsite.usage.budgets"):
        await spend(room.pk, "0.7")
        assert not caplog.records
        await spend(other.pk, "0.15")  # 0.85: past 80 %
        await spend(room.pk, "0.1")  # still past: no second line
    warnings = [r for r in caplog.records if getattr(r, "event", "") == "spend_warning"]
    assert len(warnings) == 1 and "80 %" in warnings[0].getMessage()
    await budgets.check_budget(owner.pk, room.pk)  # 0.95 < 1.0
    await spend(other.pk, "0.05")
    with pytest.raises(FrameError) as refused:
        await budgets.check_budget(owner.pk, room.pk)
    assert refused.value.code == "budget_exceeded"
    assert "server" in refused.value.message
