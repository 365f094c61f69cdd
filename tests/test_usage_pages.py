"""/usage/ (staff only) and the ledger it reads, in process: who may see it, what it shows, how
it stays fast with 100,000 replies; budgets and their refusals with the in-memory counters."""

from __future__ import annotations

import datetime as dt
import time
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from chatsite.llm.base import Usage
from chatsite.rooms.models import Message, Room
from chatsite.usage import budgets, ledger, metrics, prices, store
from chatsite.usage.models import Charge, UsageEntry
from consumers.protocol import FrameError

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def fresh_state(settings: Any) -> None:
    settings.LLM_PRICES = '{"claude-sonnet-5-5": [1000, 2000, 0, 0]}'
    settings.CHAT_USER_DAILY_USD = 0.5
    settings.CHAT_ROOM_DAILY_USD = 0.9
    settings.LLM_DAILY_SPEND_USD = 0
    prices.price_table.cache_clear()
    store.reset_counters()
    metrics.forget_cache()


def people() -> tuple[User, User, Room]:
    alice = User.objects.create_user("alice", password=None)
    bob = User.objects.create_user("bob", password=None)
    room = Room.objects.create(slug="spend", title="Spend", owner=alice, model="claude-sonnet-5-5")
    return alice, bob, room


def reply_to(room: Room, *authors: User) -> Message:
    for author in authors:
        Message.objects.create(room=room, role="user", author=author, text="hi")
    return Message.objects.create(room=room, role="assistant", status="complete")


def charge_reply(reply: Message) -> ledger.Recorded:
    return ledger.record(
        ledger.Call(
            kind="reply",
            room_id=reply.room_id,
            message_id=reply.pk,
            model="claude-sonnet-5-5",
            provider="anthropic",
            usage=Usage(input_tokens=100, output_tokens=50),
            ttft_ms=300,
            duration_ms=900,
            payers=ledger.reply_payers(reply.pk),
        )
    )


def test_a_reply_is_charged_to_the_authors_it_answers_and_stored_with_its_cost() -> None:
    alice, bob, room = people()
    first = charge_reply(reply_to(room, alice, bob, alice))
    assert first.cost == Decimal("0.2")
    assert first.shares == {alice.pk: Decimal("0.1"), bob.pk: Decimal("0.1")}
    second = reply_to(room, bob)
    assert charge_reply(second).shares == {bob.pk: Decimal("0.2")}
    second.refresh_from_db()
    assert second.cost_usd == Decimal("0.2")
    # in_reply_to, when the reply path fills it, decides who pays.
    third = reply_to(room)
    third.in_reply_to = [Message.objects.filter(author=alice).first().pk]  # type: ignore[union-attr]
    third.save()
    assert charge_reply(third).shares == {alice.pk: Decimal("0.2")}
    assert ledger.spent_today("user", alice.pk) == Decimal("0.3")
    assert ledger.spent_today("room", room.pk) == Decimal("0.6")


async def test_budgets_refuse_at_the_limit_and_are_rebuilt_from_the_ledger() -> None:
    from asgiref.sync import sync_to_async

    alice, bob, room = await sync_to_async(people)()
    for _ in range(3):
        recorded = await sync_to_async(charge_reply)(await sync_to_async(reply_to)(room, alice))
        await budgets.add_spend(room.pk, recorded.cost, recorded.shares)
    with pytest.raises(FrameError) as refused:
        await budgets.check_budget(alice.pk, room.pk)
    assert refused.value.code == "budget_exceeded"
    assert 0 < (refused.value.retry_after or 0) <= 86400
    await budgets.check_budget(bob.pk, room.pk)  # bob: room 0.6 < 0.9
    view = await budgets.budget_view(alice.pk, room.pk)
    assert view == {
        "user_spent_usd": pytest.approx(0.6),
        "user_limit_usd": 0.5,
        "room_spent_usd": pytest.approx(0.6),
        "room_limit_usd": 0.9,
    }
    store.reset_counters()  # the counters are gone (a wiped Redis): the ledger still holds
    with pytest.raises(FrameError):
        await budgets.check_budget(alice.pk, room.pk)
    assert (await budgets.budget_view(bob.pk, room.pk))["room_spent_usd"] == pytest.approx(0.6)


def test_seconds_to_midnight() -> None:
    now = dt.datetime(2026, 12, 4, 23, 59, 30, tzinfo=dt.UTC)
    assert budgets.seconds_to_midnight(now) == 30
    assert budgets.seconds_to_midnight(now.replace(hour=0, minute=0, second=0)) == 86400


def test_usage_page_for_staff_only() -> None:
    alice, bob, room = people()
    charge_reply(reply_to(room, alice, bob))
    staff = User.objects.create_user("operator", password=None, is_staff=True)
    client = Client()
    anonymous = client.get("/usage/")
    assert anonymous.status_code == 302 and anonymous["Location"].startswith("/accounts/login/")
    client.force_login(alice)
    assert client.get("/usage/").status_code == 403
    client.force_login(staff)
    page = client.get("/usage/")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'id="usage-chart"' in html and 'id="usage-chart-data"' in html
    assert "$0.2000" in html and "spend" in html and "claude-sonnet-5-5" in html
    assert "<script>" not in html.replace('<script src="', "")  # no inline scripts
    chart = page.context["chart"]
    assert chart["series"][0]["model"] == "claude-sonnet-5-5"
    assert sum(chart["series"][0]["cost"]) == pytest.approx(0.2)
    by_user = {row["username"]: row["cost"] for row in page.context["report"].by_user}
    assert by_user == {"alice": pytest.approx(0.1), "bob": pytest.approx(0.1)}


def test_usage_and_metrics_stay_fast_with_100k_replies() -> None:
    alice, _, room = people()
    now = timezone.now()
    entries = [
        UsageEntry(
            room=room,
            kind="reply",
            model="claude-sonnet-5-5" if i % 3 else "claude-haiku-5-5",
            provider="anthropic",
            status="error" if i % 50 == 0 else "complete",
            error_code="upstream_error" if i % 50 == 0 else "",
            input_tokens=100,
            output_tokens=50,
            cost_usd=Decimal("0.2"),
            ttft_ms=200 + i % 1000,
            duration_ms=1000 + i % 5000,
            deltas=10,
        )
        for i in range(100_000)
    ]
    UsageEntry.objects.bulk_create(entries, batch_size=5000)
    # Spread over 30 days.
    UsageEntry.objects.filter(id__lt=UsageEntry.objects.order_by("id").first().pk + 50_000).update(  # type: ignore[union-attr]
        created_at=now - dt.timedelta(days=10)
    )
    Charge.objects.bulk_create(
        Charge(entry_id=pk, user=alice, cost_usd=Decimal("0.2"), created_at=now)
        for pk in UsageEntry.objects.values_list("id", flat=True)[:20_000]
    )
    client = Client()
    client.force_login(User.objects.create_user("operator", password=None, is_staff=True))
    started = time.monotonic()
    with CaptureQueriesContext(connection) as queries:
        page = client.get("/usage/")
    took = time.monotonic() - started
    assert page.status_code == 200
    assert len(queries) < 20, [q["sql"][:80] for q in queries]
    assert took < 5.0, f"/usage/ took {took:.2f}s"
    assert page.context["totals"]["replies"] == 100_000
    assert page.context["totals"]["error_rate"] == pytest.approx(0.02)
    started = time.monotonic()
    figures = metrics.ledger_figures()
    assert time.monotonic() - started < 3.0
    assert figures.replies == {"complete": 98_000, "error": 2_000}
    assert figures.ttft is not None and figures.ttft.count == 100_000


def test_the_admin_shows_each_replys_cost_and_the_ledger() -> None:
    alice, bob, room = people()
    reply = reply_to(room, alice, bob)
    charge_reply(reply)
    admin = User.objects.create_superuser("root", password=None)
    client = Client()
    client.force_login(admin)
    messages = client.get("/admin/rooms/message/")
    assert messages.status_code == 200 and "0.200000" in messages.content.decode()
    entries = client.get("/admin/usage/usageentry/")
    assert entries.status_code == 200 and "0.200000" in entries.content.decode()
    entry = UsageEntry.objects.get()
    detail = client.get(f"/admin/usage/usageentry/{entry.pk}/change/").content.decode()
    assert "alice" in detail and "bob" in detail and "0.100000" in detail
