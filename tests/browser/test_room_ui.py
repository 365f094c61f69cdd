"""The room page in a real browser: Chromium (Playwright) against real daphne processes sharing
a private Redis, with the fake Anthropic API scripting Claude's replies.

Every wait is on a condition (Playwright's `expect` retries until its timeout); no fixed sleeps.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from playwright.sync_api import expect

from tests.browser.pages import (
    MARKDOWN_REPLY,
    expect_reply_done,
    in_db_thread,
    replies,
    seed_room,
    send,
    stored_count,
    user_messages,
)
from tests.fakes import Fail, Reply, word_chunks
from tests.support import REPO_ROOT

if TYPE_CHECKING:
    from playwright.sync_api import Dialog

    from tests.browser.conftest import PersonFactory
    from tests.conftest import DaphneFactory, DaphnePair
    from tests.fakes.anthropic_api import FakeAnthropic

pytestmark = pytest.mark.browser

SCREENSHOT = REPO_ROOT / "docs" / "screenshot.png"


# --- tests -------------------------------------------------------------------------------------


def test_two_people_and_a_second_tab_see_the_same_message_and_stream(
    daphne_pair: DaphnePair,
    fake_anthropic: FakeAnthropic,
    person: PersonFactory,
    unique: Callable[[str], str],
) -> None:
    chunks = word_chunks(50)
    fake_anthropic.queue(Reply(chunks=chunks, delay=0.08))
    full = "".join(chunks)
    alice, bob = person("alice"), person("bob")
    slug = unique("room")
    # Tabs on both server processes: what one sees must reach the other through Redis.
    alice_1 = alice.open_room(daphne_pair.a, slug)
    bob_1 = bob.open_room(daphne_pair.b, slug)
    alice_2 = alice.open_room(daphne_pair.b, slug)
    tabs = [alice_1, bob_1, alice_2]

    for tab in tabs:
        # Two people, however many tabs they have open.
        expect(tab.locator("#presence li")).to_have_count(2)
        expect(tab.locator("#presence")).to_contain_text(alice.username)
        expect(tab.locator("#presence")).to_contain_text(bob.username)

    text = "Hello all — is <b>this</b> bold?"
    send(bob_1, text)
    for tab in tabs:
        mine = user_messages(tab)
        expect(mine).to_have_count(1)
        expect(mine.locator(".message-body")).to_have_text(text)  # plain text, not HTML
        expect(mine.locator(".message-author")).to_have_text(bob.username)
        expect(mine).to_have_attribute("data-status", "complete")

    # Every tab watches the same reply stream in, with "Claude is replying…" and Stop.
    for tab in tabs:
        expect(replies(tab)).to_have_count(1)
        expect(replies(tab)).to_have_attribute("data-status", "streaming")
        expect(tab.locator("#stop-button")).to_be_visible()
        expect(tab.locator("body")).to_have_attribute("data-replying", "1")

    for tab in tabs:
        expect_reply_done(tab, "complete", full)
    shown = {tab.locator("#messages .message-body").all_inner_texts().__repr__() for tab in tabs}
    assert len(shown) == 1, f"tabs differ: {shown}"


def test_reloading_mid_reply_catches_up_and_finishes_with_the_full_text(
    daphne_pair: DaphnePair,
    fake_anthropic: FakeAnthropic,
    person: PersonFactory,
    unique: Callable[[str], str],
) -> None:
    chunks = word_chunks(70)
    fake_anthropic.queue(Reply(chunks=chunks, delay=0.1))
    full = "".join(chunks)
    alice = person("alice")
    page = alice.open_room(daphne_pair.a, unique("room"))

    send(page, "Tell me a long story")
    expect(replies(page).locator(".message-body")).to_contain_text("lorem ipsum dolor sit")
    page.reload()

    # The snapshot brings the running reply back with what was streamed so far…
    expect(page.locator("#connection-status")).to_have_attribute("data-state", "online")
    expect(replies(page)).to_have_count(1)
    expect(replies(page)).to_have_attribute("data-status", "streaming")
    expect(replies(page).locator(".message-body")).to_contain_text("lorem ipsum dolor sit")
    # …and live deltas carry on from there, without a gap or a repeat.
    expect_reply_done(page, "complete", full)
    expect(user_messages(page)).to_have_count(1)


def test_stop_in_one_tab_stops_the_reply_in_every_tab(
    daphne_pair: DaphnePair,
    fake_anthropic: FakeAnthropic,
    person: PersonFactory,
    unique: Callable[[str], str],
) -> None:
    chunks = word_chunks(300)
    fake_anthropic.queue(Reply(chunks=chunks, delay=0.05))
    alice, bob = person("alice"), person("bob")
    slug = unique("room")
    alice_tab = alice.open_room(daphne_pair.a, slug)
    bob_tab = bob.open_room(daphne_pair.b, slug)

    send(alice_tab, "Go on and on")
    expect(replies(bob_tab).locator(".message-body")).to_contain_text("lorem ipsum dolor")
    # Anyone may stop a reply, not only the person who asked.
    bob_tab.click("#stop-button")

    for tab in (alice_tab, bob_tab):
        reply = expect_reply_done(tab, "stopped")
        expect(reply.locator(".message-badge")).to_have_text("stopped")
    texts = [replies(tab).locator(".message-body").inner_text() for tab in (alice_tab, bob_tab)]
    assert texts[0] == texts[1]
    assert 0 < len(texts[0]) < len("".join(chunks))


def test_model_output_cannot_run_script_and_is_shown_as_text(
    daphne_pair: DaphnePair,
    fake_anthropic: FakeAnthropic,
    person: PersonFactory,
    unique: Callable[[str], str],
) -> None:
    img = '<img src=x onerror="window.__pwned=1">'
    script = "<script>window.__pwned=1</script>"
    chunks = [
        f"An image {img} ",
        f"and a script {script} ",
        "and [a link](javascript:window.__pwned=1) ",
        "end.",
    ]
    fake_anthropic.queue(Reply(chunks=chunks, delay=0.02))
    alice = person("alice")
    page = alice.open_room(daphne_pair.a, unique("room"))
    dialogs: list[str] = []

    def dismiss(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", dismiss)

    send(page, f"Echo this: {img} {script}")
    reply = expect_reply_done(page, "complete")
    body = reply.locator(".message-body")
    # What the model wrote is visible as text…
    expect(body).to_contain_text(img)
    expect(body).to_contain_text(script)
    expect(user_messages(page).locator(".message-body")).to_have_text(f"Echo this: {img} {script}")
    # …and none of it became markup.
    expect(page.locator("#messages img, #messages script, #messages [onerror]")).to_have_count(0)
    link = body.locator("a", has_text="a link")
    if link.count():
        href = link.get_attribute("href") or ""
        assert not href.strip().lower().startswith("javascript"), href
        link.click()
    else:
        expect(body).to_contain_text("a link")
    for other in body.locator("a[href]").all():
        assert other.get_attribute("rel") == "noopener noreferrer"

    # Nothing ran: not on render, not on click.
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert dialogs == []


def test_page_reconnects_by_itself_after_a_server_restart(
    daphne_factory: DaphneFactory,
    fake_anthropic: FakeAnthropic,
    person: PersonFactory,
    unique: Callable[[str], str],
) -> None:
    server = daphne_factory(name="restarting")
    alice = person("alice")
    page = alice.open_room(server, unique("room"))
    send(page, "Before the restart")
    expect_reply_done(page, "complete")
    page.evaluate("window.__samePage = true")

    server.stop()  # SIGTERM, as on a deploy
    expect(page.locator("#connection-status")).to_have_attribute("data-state", "offline")
    # Typed while the server is away: kept as pending, sent once the page is back online.
    send(page, "Typed while the server was down")
    pending = page.locator('#messages .message[data-status="pending"]')
    expect(pending).to_have_count(1)

    server.start()  # same port
    # Backoff tops out at 15 s (plus jitter), so allow a little more than that.
    expect(page.locator("#connection-status")).to_have_attribute(
        "data-state", "online", timeout=40_000
    )
    expect(pending).to_have_count(0)
    queued = user_messages(page).filter(has_text="Typed while the server was down")
    expect(queued).to_have_count(1)  # sent once, never twice
    expect(queued).to_have_attribute("data-status", "complete")
    expect(replies(page)).to_have_count(2)
    expect_reply_done(page, "complete")
    # Settled, and the database agrees: one row, one reply (a repeat would be stored nowhere,
    # but a second send with a fresh id would be a second row).
    assert in_db_thread(stored_count, "Typed while the server was down") == 1
    expect(queued).to_have_count(1)

    send(page, "After the restart")
    expect(replies(page)).to_have_count(3)
    expect_reply_done(page, "complete")
    assert page.evaluate("window.__samePage") is True  # reconnected without a reload


def test_retrying_notice_and_owner_settings(
    daphne_pair: DaphnePair,
    fake_anthropic: FakeAnthropic,
    person: PersonFactory,
    unique: Callable[[str], str],
) -> None:
    # Overloaded once (retry after ~3 s), then a normal reply.
    fake_anthropic.queue(Fail(529, retry_after=3), Reply(chunks=["Back ", "again."], delay=0.02))
    alice, bob = person("alice"), person("bob")
    slug = unique("room")
    alice_tab = alice.open_room(daphne_pair.a, slug)  # the first visitor owns the room
    bob_tab = bob.open_room(daphne_pair.b, slug)

    send(bob_tab, "Anyone there?")
    for tab in (alice_tab, bob_tab):
        expect(tab.locator("#notice")).to_be_visible()
        expect(tab.locator("#notice")).to_contain_text("overloaded, retrying in")
    for tab in (alice_tab, bob_tab):
        expect_reply_done(tab, "complete", "Back again.")
        expect(tab.locator("#notice")).to_be_hidden()

    # Only the owner gets the settings; a change reaches every tab.
    expect(bob_tab.locator("#settings-button")).to_be_hidden()
    alice_tab.click("#settings-button")
    alice_tab.fill("#settings-title-input", "Renamed by the owner")
    alice_tab.fill("#settings-prompt", "Answer in haiku.")
    # Under anthropic the owner picks from the allow-list: the cheaper model, here.
    expect(alice_tab.locator("#settings-model option")).to_have_count(2)
    model = alice_tab.locator("#settings-model option").last.get_attribute("value")
    assert model == "claude-haiku-5-5"
    alice_tab.select_option("#settings-model", model)
    alice_tab.click("#settings-form button[type=submit]")
    for tab in (alice_tab, bob_tab):
        expect(tab.locator("#room-title")).to_have_text("Renamed by the owner")
        expect(tab.locator("#room-model")).to_have_text(model)
    expect(bob_tab).to_have_title("Renamed by the owner · Roomchat")

    # The next reply is asked of the new model, with the owner's system prompt.
    fake_anthropic.queue(Reply(chunks=["Autumn ", "leaves."]))
    send(bob_tab, "A poem, please")
    expect_reply_done(bob_tab, "complete", "Autumn leaves.")
    body = fake_anthropic.requests[-1].body
    assert body is not None and body["model"] == model
    assert body["system"][0]["text"] == "Answer in haiku."


def test_markdown_reply_renders_with_code_copy_and_screenshot(
    daphne_pair: DaphnePair,
    fake_anthropic: FakeAnthropic,
    person: PersonFactory,
    unique: Callable[[str], str],
    tmp_path: Path,
) -> None:
    """Also saves docs/screenshot.png when it is missing or ROOMCHAT_UPDATE_SCREENSHOT=1 (the
    picture changes with every run's clock, so a normal run leaves the committed one alone)."""
    fake_anthropic.queue(Reply(chunks=MARKDOWN_REPLY, delay=0.03))
    # Plain names for the picture: users are flushed after each test, and the room is unique.
    alice = person(
        "maria", exact=True, color_scheme="light", viewport={"width": 1280, "height": 800}
    )
    bob = person("joao", exact=True)
    slug = unique("lisbon")
    page = alice.open_room(daphne_pair.a, slug)
    bob_tab = bob.open_room(daphne_pair.b, slug)
    expect(page.locator("#presence li")).to_have_count(2)
    page.click("#settings-button")
    page.fill("#settings-title-input", "Lisbon trip")
    page.click("#settings-form button[type=submit]")
    expect(bob_tab.locator("#room-title")).to_have_text("Lisbon trip")

    send(
        page, "Can you plan our weekend in Lisbon? Keep it short, and give me a way to split costs."
    )
    reply = expect_reply_done(page, "complete")
    body = reply.locator(".message-body")
    expect(body.locator("h2")).to_have_text("Weekend in Lisbon")
    expect(body.locator("li")).to_have_count(3)
    expect(body.locator("strong")).to_have_text("two days")
    code = body.locator("pre code.language-python")
    expect(code).to_contain_text("def share(total: float, people: int) -> float:")
    expect(code.locator(".hljs-keyword").first).to_be_visible()  # highlighted
    expect(body.locator(".code-block button.copy-code")).to_be_visible()
    expect(reply.locator("button.copy-reply")).to_be_attached()

    page.mouse.move(0, 0)  # no hover effects in the picture
    target = (
        SCREENSHOT
        if os.environ.get("ROOMCHAT_UPDATE_SCREENSHOT") == "1" or not SCREENSHOT.exists()
        else tmp_path / "screenshot.png"
    )
    target.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(target), animations="disabled")
    assert target.stat().st_size > 10_000

    # The copy button puts the code itself on the clipboard.
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    body.locator("button.copy-code").click()
    expect(body.locator("button.copy-code")).to_contain_text("Copied")
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied.startswith("def share(total: float, people: int) -> float:")


def _long_room_with_a_summary(slug: str, username: str) -> list[int]:
    """Three messages and Claude's answer, the first two folded into the summary; their ids."""
    from chatsite.rooms import selectors, services

    ids = seed_room(slug, username, ["message 1", "message 2", "message 3"], "message 4")
    room = selectors.room_by_slug(slug)
    assert room is not None
    assert services.store_summary(room.pk, 0, ids[1], "They counted to two.") is not None
    return ids


def test_the_page_marks_where_the_summary_of_a_long_room_starts(
    daphne_pair: DaphnePair, person: PersonFactory, unique: Callable[[str], str]
) -> None:
    alice = person("alice")
    slug = unique("long")
    ids = in_db_thread(_long_room_with_a_summary, slug, alice.username)
    page = alice.open_room(daphne_pair.a, slug)

    items = page.locator("#messages > li")
    expect(items).to_have_count(5)
    marker = page.locator("#messages > li.summary-marker")
    expect(marker).to_have_attribute("role", "separator")
    expect(marker).to_contain_text("summary")
    # Right after the last folded message, right before the first one Claude reads in full.
    order = [li.get_attribute("data-id") or "marker" for li in items.all()]
    assert order == [str(ids[0]), str(ids[1]), "marker", str(ids[2]), str(ids[3])]
