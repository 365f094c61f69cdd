"""Spend in Chromium: the room's "Today's spend" card follows each reply, a refusal for budget
says whose budget and when to send again, and /usage/ draws its chart for staff only."""

from __future__ import annotations

import json
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import PersonFactory
from tests.browser.pages import expect_reply_done, in_db_thread, send
from tests.conftest import DaphneFactory
from tests.fakes import Reply
from tests.fakes.anthropic_api import FakeAnthropic
from tests.support import unique_name

MODEL = "claude-sonnet-5-5"


@pytest.fixture
def server(daphne_factory: DaphneFactory) -> Any:
    return daphne_factory(
        {
            "REDIS_KEY_PREFIX": unique_name("spend-ui"),
            # 100 input + 50 output tokens cost 0.20 USD: one reply uses Alice's whole day.
            "LLM_PRICES": json.dumps({MODEL: [1000, 2000, 0, 0]}),
            "CHAT_USER_DAILY_USD": "0.2",
            "CHAT_ROOM_DAILY_USD": "5",
        }
    )


def open_room(slug: str, username: str) -> None:
    from django.contrib.auth import get_user_model

    from chatsite.rooms import services

    services.open_room(slug, get_user_model().objects.get(username=username))


def make_staff(username: str) -> None:
    from django.contrib.auth import get_user_model

    get_user_model().objects.filter(username=username).update(is_staff=True)


def test_spend_card_refusal_and_usage_chart(
    server: Any, person: PersonFactory, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.default = Reply(chunks=["Fine ", "thanks."], input_tokens=100, output_tokens=50)
    alice = person("alice")
    slug = unique_name("spend")
    in_db_thread(open_room, slug, alice.username)
    page = alice.open_room(server, slug)
    card = page.locator("#budget")
    expect(card).to_be_visible()
    expect(card.locator("[data-budget=room]")).to_have_text("$0.00 of $5.00")
    expect(card.locator("[data-budget=user]")).to_have_text("$0.00 of $0.20")

    send(page, "How are you?")
    expect_reply_done(page, "complete", "Fine thanks.")
    expect(card.locator("[data-budget=room]")).to_have_text("$0.20 of $5.00")
    expect(card.locator("[data-budget=user]")).to_have_text("$0.20 of $0.20")
    expect(card.locator("[data-budget=user]")).to_have_class("over")

    send(page, "One more?")
    error = page.locator("#error .error-text")
    expect(error).to_contain_text("You have used today's budget for Claude's replies ($0.20).")
    expect(error).to_contain_text("You can send again at")
    expect(error).to_contain_text("when the daily budget starts over")

    # Not staff: the usage page is refused.
    answer = page.goto(f"{server.url}/usage/")
    assert answer is not None and answer.status == 403

    in_db_thread(make_staff, alice.username)
    console_errors: list[str] = []
    usage = alice.context.new_page()
    usage.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)
    usage.on("pageerror", lambda exc: console_errors.append(str(exc)))
    answer = usage.goto(f"{server.url}/usage/")
    assert answer is not None and answer.status == 200
    expect(usage.locator("#usage-chart")).to_have_attribute("data-ready", "1")
    chart = usage.evaluate(
        "() => window.usageChart.data.datasets.map(d => [d.label, d.data.reduce((a, b) => a + b, 0)])"
    )
    assert chart == [[MODEL, pytest.approx(0.2)]]
    box = usage.locator("#usage-chart").bounding_box()
    assert box is not None and box["width"] > 300 and box["height"] > 100
    expect(usage.locator("#usage-by-user")).to_contain_text(alice.username)
    expect(usage.locator("[data-figure=cost]")).to_have_text("$0.2000")
    assert console_errors == []
