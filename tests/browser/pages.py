"""What the browser tests share: driving the room page as a person does, and rooms written
straight into the database (from another thread: Playwright's sync API keeps an event loop
running in the test's thread, where Django's ORM refuses to work)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from playwright.sync_api import Locator, Page, expect

if TYPE_CHECKING:
    from collections.abc import Callable


# --- the page ----------------------------------------------------------------------------------


def send(page: Page, text: str) -> None:
    """Type into the composer and press Enter, as a person does."""
    page.fill("#composer-text", text)
    page.press("#composer-text", "Enter")


def replies(page: Page) -> Locator:
    return page.locator('#messages .message[data-role="assistant"]')


def user_messages(page: Page) -> Locator:
    return page.locator('#messages .message[data-role="user"]')


def expect_reply_done(page: Page, status: str, text: str | None = None) -> Locator:
    """The newest reply reached `status` (and shows exactly `text`); no reply is running."""
    reply = replies(page).last
    expect(reply).to_have_attribute("data-status", status)
    if text is not None:
        expect(reply.locator(".message-body")).to_have_text(text)
    expect(page.locator("#stop-button")).to_be_hidden()
    expect(page.locator("body")).to_have_attribute("data-replying", "0")
    return reply


MARKDOWN_REPLY = [
    "## Weekend in Lisbon\n\n",
    "A relaxed plan for **two days**:\n\n",
    "- Saturday: Alfama on foot, then *pastéis de nata* in Belém\n",
    "- Sunday: tram 28 early, before the crowds\n",
    "- Evening: fado in a small tasca\n\n",
    "Split the costs with this:\n\n",
    "```python\n",
    "def share(total: float, people: int) -> float:\n",
    '    """Each person\'s part, rounded to cents."""\n',
    "    return round(total / people, 2)\n",
    "```\n\n",
    "Have a lovely trip!",
]


# --- the database ------------------------------------------------------------------------------


def in_db_thread(work: Callable[..., Any], *args: Any) -> Any:
    """`work(*args)` in a thread of its own, where the ORM may run."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(work, *args).result()


def stored_count(text: str) -> int:
    """How many stored messages have exactly this text."""
    from chatsite.rooms.models import Message

    return Message.objects.filter(text=text).count()


def seed_room(slug: str, username: str, texts: list[str], answer: str) -> list[int]:
    """The room `slug` (owned by `username`) with these user messages, then Claude's `answer`;
    all their ids. It ends answered, so no server's reaper starts a reply meanwhile."""
    from django.contrib.auth import get_user_model

    from chatsite.rooms import services

    user = get_user_model().objects.get(username=username)
    room = services.open_room(slug, user)
    ids = []
    for text in texts:
        message = services.store_user_message(room, user, text, None)
        assert message is not None
        ids.append(message.pk)
    reply = services.start_reply(room.pk, "anthropic", "claude-sonnet-5-5")
    services.finish_reply(reply.pk, services.ReplyOutcome(status="complete", text=answer))
    ids.append(reply.pk)
    return ids
