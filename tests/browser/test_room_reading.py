"""The room page as a reader uses it, in a real browser against real daphne processes: live
Markdown while a reply streams, auto-scroll and "Jump to latest", older messages on scroll-up,
copying a reply, the rate-limit countdown, the demo label, the quiet-reply watchdog, dark mode
and a phone's width.

Every wait is on a condition (Playwright's `expect` retries until its timeout); no fixed sleeps.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest
from playwright.sync_api import Page, expect

from tests.browser.pages import (
    MARKDOWN_REPLY,
    expect_reply_done,
    in_db_thread,
    replies,
    seed_room,
    send,
)
from tests.fakes import Reply, word_chunks

if TYPE_CHECKING:
    from tests.browser.conftest import PersonFactory
    from tests.conftest import DaphneFactory, DaphnePair
    from tests.fakes.anthropic_api import FakeAnthropic

pytestmark = pytest.mark.browser


def scroll_metrics(page: Page) -> dict[str, float]:
    return page.evaluate(
        """() => { const s = document.getElementById("scroller");
                   return { top: s.scrollTop, height: s.scrollHeight, view: s.clientHeight }; }"""
    )


def at_bottom(page: Page) -> bool:
    m = scroll_metrics(page)
    return m["height"] - m["top"] - m["view"] <= 48


def wait_until(page: Page, condition: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    """Poll `condition` while Playwright runs: its sync API delivers page events (frames sent,
    console) only inside its own calls, never during a plain sleep."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"never: {what}"
        page.wait_for_timeout(50)


def test_markdown_renders_while_streaming_and_scrolling_follows_until_the_reader_scrolls_up(
    daphne_pair: DaphnePair,
    fake_anthropic: FakeAnthropic,
    person: PersonFactory,
    unique: Callable[[str], str],
) -> None:
    # The Markdown reply, then a long tail of words: time to scroll while it streams.
    chunks = [*MARKDOWN_REPLY, "\n\n", *word_chunks(400)]
    fake_anthropic.queue(Reply(chunks=chunks, delay=0.04))
    alice = person("alice", viewport={"width": 1200, "height": 600})
    page = alice.open_room(daphne_pair.a, unique("room"))
    send(page, "Plan the weekend, then keep talking")

    reply = replies(page).last
    body = reply.locator(".message-body")
    # Rendered as Markdown, highlighted, while the reply is still streaming.
    expect(body.locator("h2")).to_have_text("Weekend in Lisbon")
    expect(body.locator("pre code .hljs-keyword").first).to_be_visible()
    assert reply.get_attribute("data-status") == "streaming"
    expect(body.locator(".code-block button.copy-code")).to_be_visible()

    # At the bottom, the growing reply keeps the reader at the bottom.
    wait_until(
        page,
        lambda: scroll_metrics(page)["height"] > scroll_metrics(page)["view"] + 400,
        "overflow",
    )
    assert at_bottom(page)
    expect(page.locator("#jump-latest")).to_be_hidden()

    # Scrolled up to read: nothing moves, and "Jump to latest" appears as the reply grows.
    page.locator("#scroller").evaluate("s => { s.scrollTop = 0; }")
    expect(page.locator("#jump-latest")).to_be_visible()
    top = scroll_metrics(page)["top"]
    height = scroll_metrics(page)["height"]
    wait_until(page, lambda: scroll_metrics(page)["height"] > height + 100, "the reply grows")
    assert scroll_metrics(page)["top"] == top

    page.click("#jump-latest")
    expect(page.locator("#jump-latest")).to_be_hidden()
    assert at_bottom(page)
    expect(page.locator("#composer-text")).to_be_focused()  # keyboard users land back there
    expect_reply_done(page, "complete")
    assert at_bottom(page)  # still following, to the end

    # The reply's own copy button copies its Markdown source, not the rendered text.
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    reply.hover()
    reply.locator("button.copy-reply").click()
    expect(reply.locator("button.copy-reply")).to_contain_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == "".join(chunks)


CAUGHT_UP = "All caught up."


def test_older_messages_load_on_scroll_up_and_keep_the_readers_place(
    daphne_pair: DaphnePair, person: PersonFactory, unique: Callable[[str], str]
) -> None:
    alice = person("alice")
    slug = unique("history")
    lines = [f"history line {n}" for n in range(1, 121)]
    in_db_thread(seed_room, slug, alice.username, lines, CAUGHT_UP)
    page = alice.open_room(daphne_pair.a, slug)
    messages = page.locator("#messages .message")
    expect(messages).to_have_count(50)  # the snapshot: the newest 50
    expect(messages.first.locator(".message-body")).to_have_text("history line 72")

    # Scrolling to the top fetches the 50 before them; what was on top stays where it was.
    anchor = page.locator("#messages .message").filter(has_text="history line 72")
    page.locator("#scroller").evaluate("s => { s.scrollTop = 0; }")
    expect(messages).to_have_count(100)
    expect(messages.first.locator(".message-body")).to_have_text("history line 22")
    box = anchor.bounding_box()
    assert box is not None and box["y"] >= 0, "the reader's place jumped away"

    page.locator("#scroller").evaluate("s => { s.scrollTop = 0; }")
    expect(messages).to_have_count(121)
    expect(messages.first.locator(".message-body")).to_have_text("history line 1")
    expect(page.locator("#load-older")).to_be_hidden()  # nothing more to load
    texts = messages.locator(".message-body").all_inner_texts()
    assert texts == [*lines, CAUGHT_UP]  # in order, none twice


@pytest.fixture
def demo_server(daphne_factory: DaphneFactory) -> Any:
    """A server on the offline demo model, allowing two messages a minute per person."""
    return daphne_factory(
        {"LLM_PROVIDER": "demo", "DEMO_WORDS_PER_SECOND": "200", "CHAT_RATE_PER_MINUTE": "2"},
        name="demo",
    )


def test_the_demo_model_is_labelled_and_a_rate_limit_counts_down(
    demo_server: Any, person: PersonFactory, unique: Callable[[str], str]
) -> None:
    alice = person("alice")
    page = alice.open_room(demo_server, unique("room"))
    expect(page.locator("#room-provider")).to_have_text("demo")
    expect(page.locator("#room-model")).to_have_text("demo")
    expect(page.locator("#demo-badge")).to_have_text("Demo model")
    # The header says "demo" once (the badge), not three times.
    expect(page.locator("#room-model")).to_be_hidden()
    expect(page.locator("#room-provider")).to_be_hidden()
    expect(page.locator("#demo-note")).to_be_visible()
    expect(page.locator("#demo-note")).to_contain_text("no real AI")

    send(page, "First")
    reply = expect_reply_done(page, "complete")
    expect(reply.locator(".message-body h2")).to_have_text("Demo reply")
    expect(reply.locator(".message-body")).to_contain_text("You wrote: “First”")
    send(page, "Second")
    expect(replies(page)).to_have_count(2)
    expect_reply_done(page, "complete")

    # The third within a minute is refused: the message stays, marked, and the error counts
    # down its retry_after.
    send(page, "Third, too soon")
    error = page.locator("#error")
    expect(error).to_be_visible()
    visible = error.locator(".error-text")
    expect(visible).to_contain_text("You're sending messages too fast. Try again in")
    spoken_then = error.locator(".error-spoken").inner_text()
    refused = page.locator('#messages .message[data-status="failed"]')
    expect(refused).to_have_count(1)
    expect(refused.locator(".message-body")).to_have_text("Third, too soon")
    first_seconds = int(visible.inner_text().split("Try again in ")[1].split(" s")[0])
    assert 1 < first_seconds <= 60
    expect(visible).not_to_contain_text(f"in {first_seconds} s", timeout=3_000)
    later_seconds = int(visible.inner_text().split("Try again in ")[1].split(" s")[0])
    assert later_seconds < first_seconds
    # Screen readers hear it once, as it arrived: the spoken copy does not tick.
    assert "You're sending messages too fast. Try again in" in spoken_then
    spoken_seconds = int(spoken_then.split("Try again in ")[1].split(" s")[0])
    assert spoken_seconds >= first_seconds > later_seconds
    assert error.locator(".error-spoken").inner_text() == spoken_then


def test_a_reply_that_goes_quiet_makes_the_page_ask_for_a_snapshot(
    daphne_pair: DaphnePair,
    fake_anthropic: FakeAnthropic,
    person: PersonFactory,
    unique: Callable[[str], str],
) -> None:
    """SPEC §6: a tab that hears nothing of a running reply for 15 s sends `sync`. Another
    person joining meanwhile (a presence frame) does not count as news of the reply."""
    fake_anthropic.queue(Reply(chunks=["Thinking ", "hard "], then="stall", after=2))
    alice, bob = person("alice"), person("bob")
    slug = unique("room")
    server = daphne_pair.a
    alice.context.add_cookies([{"name": "sessionid", "value": alice.session, "url": server.url}])
    page = alice.context.new_page()
    sent: list[tuple[float, dict[str, Any]]] = []
    page.on(
        "websocket",
        lambda ws: ws.on(
            "framesent", lambda payload: sent.append((time.monotonic(), json.loads(payload)))
        ),
    )
    page.goto(f"{server.url}/rooms/{slug}/")
    page.locator("#create-room-form button[type=submit]").click()  # a GET never creates
    expect(page.locator("#connection-status")).to_have_attribute("data-state", "online")

    send(page, "Take your time")
    expect(replies(page).locator(".message-body")).to_have_text("Thinking hard")
    quiet_since = time.monotonic()
    # Halfway through the quiet, bob arrives: a presence frame, but no news of the reply, so
    # the sync stays due 15 s after the last delta (not 15 s after bob).
    wait_until(page, lambda: time.monotonic() - quiet_since >= 8, "halfway", timeout=10)
    bob_tab = bob.open_room(daphne_pair.b, slug)
    expect(page.locator("#presence li")).to_have_count(2)

    wait_until(page, lambda: any(f.get("type") == "sync" for _, f in sent), "a sync", timeout=25)
    asked_at = next(t for t, f in sent if f.get("type") == "sync")
    assert 14 <= asked_at - quiet_since <= 20, asked_at - quiet_since
    # The snapshot it got keeps the reply as it was; stop it rather than wait for the stall.
    expect(replies(page)).to_have_attribute("data-status", "streaming")
    bob_tab.click("#stop-button")
    expect_reply_done(page, "stopped", "Thinking hard")


def test_dark_mode_and_a_phone_width(
    daphne_pair: DaphnePair,
    fake_anthropic: FakeAnthropic,
    person: PersonFactory,
    unique: Callable[[str], str],
) -> None:
    fake_anthropic.queue(Reply(chunks=MARKDOWN_REPLY, delay=0.01))
    alice = person(
        "alice",
        color_scheme="dark",
        viewport={"width": 375, "height": 740},
        is_mobile=True,
        has_touch=True,
    )
    page = alice.open_room(daphne_pair.a, unique("room"))

    def luminance(selector: str, prop: str = "backgroundColor") -> float:
        colour = page.evaluate(
            f"() => getComputedStyle(document.querySelector({json.dumps(selector)})).{prop}"
        )
        assert colour.startswith("rgb("), colour  # opaque: a transparent one proves nothing
        rgb = [int(part) for part in colour[4:-1].split(",")]
        weights = (0.2126, 0.7152, 0.0722)
        return sum(c * w for c, w in zip(rgb, weights, strict=True)) / 255

    assert luminance("body") < 0.25, "dark mode should darken the page"
    assert luminance("body", "color") > 0.6, "and lighten its text"
    # No sideways scrolling on a phone, the composer fits, and its font keeps iOS from zooming.
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    composer = page.locator("#composer-text").bounding_box()
    assert composer is not None and composer["x"] >= 0 and composer["x"] + composer["width"] <= 375
    assert (
        page.evaluate("getComputedStyle(document.getElementById('composer-text')).fontSize")
        == "16px"
    )

    # Shift+Enter is a new line, Enter sends.
    page.fill("#composer-text", "two")
    page.press("#composer-text", "Home")
    page.type("#composer-text", "line one")
    page.press("#composer-text", "Shift+Enter")
    assert page.input_value("#composer-text") == "line one\ntwo"
    expect(page.locator('#messages .message[data-role="user"]')).to_have_count(0)
    page.press("#composer-text", "Enter")
    mine = page.locator('#messages .message[data-role="user"] .message-body')
    # People's messages are Markdown where a newline is a line break (<br>).
    expect(mine.locator("br")).to_have_count(1)
    assert mine.inner_text() == "line one\ntwo"
    reply = expect_reply_done(page, "complete")
    assert page.evaluate("document.documentElement.scrollWidth") <= 375  # code scrolls inside
    code = reply.locator("pre").bounding_box()
    assert code is not None and code["x"] + code["width"] <= 375
