"""The group conversation in a real browser (issue 14): mentions, regenerate, reactions, typing,
the room list with unread counts and the tab title. Chromium (Playwright) against two real
daphne processes sharing Redis, with the fake Anthropic API scripting Claude.

Every wait is on a condition (Playwright's `expect` retries until its timeout).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest
from playwright.sync_api import Page, expect

from tests.browser.pages import expect_reply_done, in_db_thread, replies, seed_room, send
from tests.fakes import Reply

if TYPE_CHECKING:
    from tests.browser.conftest import PersonFactory
    from tests.conftest import DaphneFactory, DaphnePair
    from tests.fakes.anthropic_api import FakeAnthropic

pytestmark = pytest.mark.browser


def make_room(slug: str, owner: str) -> None:
    """A public room owned by `owner` (a GET never creates one)."""
    from django.contrib.auth import get_user_model

    from chatsite.rooms import services

    services.open_room(slug, get_user_model().objects.get(username=owner))


def post_as(slug: str, username: str, text: str) -> int:
    """A user message stored straight into the room (another room than the one on screen)."""
    from django.contrib.auth import get_user_model

    from chatsite.rooms import services
    from chatsite.rooms.models import Room

    room = Room.objects.get(slug=slug)
    user = get_user_model().objects.get(username=username)
    message = services.store_user_message(room, user, text, None)
    assert message is not None
    return message.pk


CSP_WATCH = """
  window.__csp = [];
  document.addEventListener("securitypolicyviolation", (e) => {
    window.__csp.push(`${e.violatedDirective} ${e.blockedURI} ${e.sourceFile}:${e.lineNumber}`);
  });
"""


def csp_violations(page: Page) -> list[str]:
    """What the page's Content-Security-Policy refused so far (inline styles, scripts…)."""
    found: list[str] = page.evaluate("window.__csp")
    return found


def set_mode(slug: str, mode: str) -> None:
    from chatsite.rooms.models import Room

    Room.objects.filter(slug=slug).update(reply_mode=mode)


def set_visibility(page: Page, state: str) -> None:
    """Pretend the tab was hidden or shown (headless tabs are always "visible")."""
    page.evaluate(
        """(state) => {
          Object.defineProperty(document, "visibilityState", { value: state, configurable: true });
          Object.defineProperty(document, "hidden", { value: state === "hidden", configurable: true });
          document.dispatchEvent(new Event("visibilitychange"));
        }""",
        state,
    )


def test_mention_mode_picker_highlight_and_whom_a_reply_answers(
    daphne_pair: DaphnePair,
    fake_anthropic: FakeAnthropic,
    person: PersonFactory,
    unique: Callable[[str], str],
) -> None:
    alice, bob = person("alice"), person("bob")
    for someone in (alice, bob):
        someone.context.add_init_script(CSP_WATCH)
    slug = unique("mention")
    in_db_thread(make_room, slug, alice.username)
    a = alice.open_room(daphne_pair.a, slug)
    b = bob.open_room(daphne_pair.b, slug)
    expect(a.locator("#composer-text")).to_be_focused()  # ready to type on arrival

    # The owner switches the room to "mention"; everyone sees the chip and a quiet line.
    a.click("#settings-button")
    a.select_option("#settings-reply-mode", "mention")
    a.click("#settings-form button[type=submit]")
    for tab in (a, b):
        expect(tab.locator("#reply-mode")).to_have_text("@mention")
        expect(tab.locator("#messages .room-note")).to_have_text(
            f"{alice.username} set Claude to answer only when mentioned"
        )

    # Friends talk without Claude cutting in; a mention of alice is highlighted for her.
    b.locator("#composer-text").click()
    b.keyboard.type("hey @")
    options = b.locator("#mention-list [role=option]")
    expect(options).to_have_text(["@Claude", f"@{alice.username}"])
    expect(b.locator("#composer-text")).to_have_attribute("aria-activedescendant", "mention-list-0")
    b.keyboard.press("ArrowDown")
    expect(options.nth(1)).to_have_attribute("aria-selected", "true")
    b.keyboard.press("Enter")  # picks, does not send
    expect(b.locator("#mention-list")).to_be_hidden()
    assert b.input_value("#composer-text") == f"hey @{alice.username} "
    b.keyboard.type("free saturday?")
    b.keyboard.press("Enter")
    mine = a.locator("#messages .message[data-role=user]")
    expect(mine).to_have_count(1)
    expect(mine.locator(".mention.is-me")).to_have_text(f"@{alice.username}")
    send(a, "sure, *let's* go")
    expect(mine.nth(1).locator("em")).to_have_text("let's")  # people's Markdown too

    # Only a mention of Claude calls for a reply; it answers both people's messages.
    fake_anthropic.queue(Reply(chunks=["Saturday ", "works."]))
    b.locator("#composer-text").click()
    b.keyboard.type("@cl")
    expect(options).to_have_text(["@Claude"])
    b.keyboard.press("Tab")
    b.keyboard.type("plan it")
    b.keyboard.press("Enter")
    for tab in (a, b):
        reply = expect_reply_done(tab, "complete", "Saturday works.")
        expect(replies(tab)).to_have_count(1)
        context = reply.locator(".message-context")
        expect(context).to_have_text(f"answering {bob.username} and {alice.username}")
        first = tab.locator("#messages .message[data-role=user]").first
        first_id = first.get_attribute("data-id")
        expect(context.locator("a").first).to_have_attribute("href", f"#m-{first_id}")
        expect(
            tab.locator("#messages .message[data-role=user]").nth(2).locator(".mention.is-claude")
        ).to_have_text("@Claude")

    # A tab opened after the change shows the same line, in its place: before the messages.
    later = alice.open_room(daphne_pair.b, slug)
    expect(replies(later)).to_have_count(1)
    expect(later.locator("#messages .room-note")).to_have_text(
        f"{alice.username} set Claude to answer only when mentioned"
    )
    expect(later.locator("#messages > li").first).to_have_class("room-note")
    # Everything above ran under the strict CSP: no inline style or script was refused.
    assert csp_violations(a) == [] and csp_violations(b) == [] and csp_violations(later) == []


def test_regenerate_the_newest_reply_keeps_the_earlier_version_folded(
    daphne_pair: DaphnePair,
    fake_anthropic: FakeAnthropic,
    person: PersonFactory,
    unique: Callable[[str], str],
) -> None:
    alice, bob = person("alice"), person("bob")
    slug = unique("regen")
    in_db_thread(seed_room, slug, alice.username, ["Name a colour"], "Blue.")
    a = alice.open_room(daphne_pair.a, slug)
    b = bob.open_room(daphne_pair.b, slug)

    regenerate = b.locator("#messages .message[data-role=assistant] button.regenerate")
    expect(regenerate).to_have_count(1)
    fake_anthropic.queue(Reply(chunks=["Green", "."]))
    regenerate.click()  # any member, not only the owner
    expect(b.locator("#composer-text")).to_be_focused()

    for tab in (a, b):
        expect_reply_done(tab, "complete", "Green.")
        older = tab.locator("#messages .message.is-superseded")
        expect(older).to_have_count(1)
        expect(older).to_be_hidden()
        fold = tab.locator("button.fold-toggle")
        expect(fold).to_have_text("1 earlier version")
        expect(fold).to_have_attribute("aria-expanded", "false")
        fold.click()
        expect(older).to_be_visible()
        expect(older.locator(".message-body")).to_have_text("Blue.")
        expect(fold).to_have_attribute("aria-expanded", "true")
        # Regenerate moved to the new reply.
        expect(tab.locator("button.regenerate")).to_have_count(1)
        expect(replies(tab).last.locator("button.regenerate")).to_be_visible()


def test_reactions_toggle_live_with_who_reacted(
    daphne_pair: DaphnePair, person: PersonFactory, unique: Callable[[str], str]
) -> None:
    alice, bob = person("alice"), person("bob")
    slug = unique("react")
    in_db_thread(seed_room, slug, alice.username, ["Pizza tonight?"], "Sounds good.")
    a = alice.open_room(daphne_pair.a, slug)
    b = bob.open_room(daphne_pair.b, slug)

    message = a.locator("#messages .message[data-role=user]").first
    message.locator("button.reaction-add").click()
    picker = message.locator(".reaction-picker")
    expect(picker).to_be_visible()
    expect(picker.locator("button")).to_have_count(8)
    picker.get_by_role("button", name="React with thumbs up").click()
    expect(picker).to_be_hidden()

    on_b = b.locator("#messages .message[data-role=user]").first.locator("button.reaction")
    expect(on_b).to_have_text("👍 1")
    expect(on_b).to_have_attribute("aria-label", f"👍 1: {alice.username}")
    expect(on_b).to_have_attribute("title", alice.username)
    expect(on_b).to_have_attribute("aria-pressed", "false")
    on_b.click()  # bob adds his
    on_a = message.locator("button.reaction")
    expect(on_a).to_have_attribute("aria-label", f"👍 2: {alice.username}, {bob.username}")
    expect(on_a).to_have_attribute("aria-pressed", "true")
    on_a.click()  # alice takes hers back
    expect(on_b).to_have_attribute("aria-label", f"👍 1: {bob.username}")
    expect(on_b).to_have_attribute("aria-pressed", "true")


def test_typing_shows_on_the_other_tab_and_ends_with_the_message(
    daphne_pair: DaphnePair,
    fake_anthropic: FakeAnthropic,
    person: PersonFactory,
    unique: Callable[[str], str],
) -> None:
    alice, bob = person("alice"), person("bob")
    slug = unique("typing")
    in_db_thread(make_room, slug, alice.username)
    a = alice.open_room(daphne_pair.a, slug)
    b = bob.open_room(daphne_pair.b, slug)
    b2 = bob.open_room(daphne_pair.a, slug)

    a.locator("#composer-text").click()
    a.keyboard.type("hello the", delay=30)
    status = b.locator("#typing-status")
    expect(status).to_have_text(f"{alice.username} is typing…")
    expect(a.locator("#typing-status")).to_be_empty()  # never your own

    b2.locator("#composer-text").click()
    b2.keyboard.type("hi", delay=30)
    expect(a.locator("#typing-status")).to_have_text(f"{bob.username} is typing…")

    fake_anthropic.queue(Reply(chunks=["Hi!"]))
    a.keyboard.type("re")
    a.keyboard.press("Enter")
    expect(b.locator("#messages .message[data-role=user]")).to_have_count(1)
    # Dropped when the message arrives, not 5 s later.
    expect(status).to_be_empty(timeout=1500)
    # And bob's indicator on alice's tab fades by itself 5 s after his last keystroke.
    expect(a.locator("#typing-status")).to_be_empty(timeout=9000)


def test_room_list_unread_counts_and_the_tab_title(
    daphne_pair: DaphnePair, person: PersonFactory, unique: Callable[[str], str]
) -> None:
    alice, bob = person("alice"), person("bob")
    here, there = unique("here"), unique("there")
    in_db_thread(seed_room, there, alice.username, ["Old news"], "Noted.")
    in_db_thread(seed_room, here, alice.username, ["Hi"], "Hello.")
    in_db_thread(set_mode, here, "mention")  # people talk here; Claude stays out of the count
    page = alice.open_room(daphne_pair.a, here)
    rooms = page.locator("#room-list li")
    expect(rooms).to_have_count(2)
    expect(page.locator(f'#room-list li[data-slug="{here}"] a')).to_have_attribute(
        "aria-current", "page"
    )
    other = page.locator(f'#room-list li[data-slug="{there}"]')
    expect(other.locator(".unread-badge")).to_have_count(0)  # first seen: read
    expect(page).to_have_title(f"{here} · Roomchat")

    # Someone writes in the other room: its count shows when the list refreshes.
    in_db_thread(post_as, there, bob.username, "Anyone around?")
    in_db_thread(post_as, there, bob.username, "Hello?")
    set_visibility(page, "visible")  # coming back to the tab refreshes the list
    expect(other.locator(".unread-badge")).to_have_text("2 unread messages")
    expect(page).to_have_title(f"(2) {here} · Roomchat")

    # While the tab is hidden, messages here count in the title too.
    set_visibility(page, "hidden")
    b = bob.open_room(daphne_pair.b, here)
    send(b, "You there?")
    expect(page.locator("#messages .message[data-role=user]")).to_have_count(2)
    expect(page).to_have_title(f"(3) {here} · Roomchat")
    set_visibility(page, "visible")
    expect(page).to_have_title(f"(2) {here} · Roomchat")

    # Moving to the other room reads it.
    other.locator("a").click()
    expect(page.locator("#connection-status")).to_have_attribute("data-state", "online")
    expect(page).to_have_title(f"{there} · Roomchat")
    expect(page.locator(f'#room-list li[data-slug="{there}"] a')).to_have_attribute(
        "aria-current", "page"
    )
    expect(page.locator("#room-list .unread-badge")).to_have_count(0)


def test_stop_says_who_stopped_and_keeps_the_focus_in_the_composer(
    daphne_pair: DaphnePair,
    fake_anthropic: FakeAnthropic,
    person: PersonFactory,
    unique: Callable[[str], str],
) -> None:
    alice, bob = person("alice"), person("bob")
    slug = unique("stop")
    in_db_thread(make_room, slug, alice.username)
    a = alice.open_room(daphne_pair.a, slug)
    b = bob.open_room(daphne_pair.b, slug)
    fake_anthropic.queue(Reply(chunks=[f"word{n} " for n in range(300)], delay=0.05))
    send(a, "Tell me everything")
    expect(replies(b)).to_have_attribute("data-status", "streaming")
    b.locator("#stop-button").focus()
    b.keyboard.press("Enter")
    expect(b.locator("#composer-text")).to_be_focused()  # not dropped to <body>
    for tab in (a, b):
        reply = expect_reply_done(tab, "stopped")
        expect(reply.locator(".message-note")).to_have_text(
            f"Stopped by {bob.username} before the end."
        )


def test_a_lost_connection_says_so_on_the_reply_and_offers_to_reconnect(
    daphne_factory: DaphneFactory,
    fake_anthropic: FakeAnthropic,
    person: PersonFactory,
    unique: Callable[[str], str],
) -> None:
    server = daphne_factory(name="lost")
    alice = person("alice")
    slug = unique("lost")
    in_db_thread(make_room, slug, alice.username)
    page = alice.open_room(server, slug)
    fake_anthropic.queue(Reply(chunks=[f"w{n} " for n in range(400)], delay=0.05))
    send(page, "A long one please")
    reply = replies(page).last
    expect(reply).to_have_attribute("data-status", "streaming")
    expect(page.locator("#replying .replying-text")).to_have_text("Claude is replying…")

    # Killed outright: a graceful stop would end the reply (interrupted) before the socket drops.
    server.kill()
    expect(page.locator("#connection-status")).to_have_attribute("data-state", "offline")
    expect(page.locator("#replying .replying-text")).to_have_text("Connection lost")
    expect(page.locator("#replying")).to_have_class(re.compile(r"\bis-lost\b"))
    expect(reply).to_have_class(re.compile(r"\bis-lost\b"))
    expect(reply.locator(".message-note")).to_contain_text("Connection lost")
    reconnect = page.locator("#reconnect-now")
    expect(reconnect).to_be_visible()

    server.start()
    reconnect.click()
    expect(page.locator("#connection-status")).to_have_attribute("data-state", "online")
    expect(reconnect).to_be_hidden()
    expect(reply).not_to_have_class(re.compile(r"\bis-lost\b"))


NOTIFICATION_STUB = """
  window.__notes = [];
  window.Notification = class {
    static permission = "default";
    static requestPermission() { window.Notification.permission = "granted"; return Promise.resolve("granted"); }
    constructor(title, options) { window.__notes.push([title, options.body]); }
    close() {}
  };
"""


def test_notifications_only_when_asked_for_and_the_tab_is_hidden(
    daphne_pair: DaphnePair,
    fake_anthropic: FakeAnthropic,
    person: PersonFactory,
    unique: Callable[[str], str],
) -> None:
    alice, bob = person("alice"), person("bob")
    alice.context.add_init_script(NOTIFICATION_STUB)
    slug = unique("notify")
    in_db_thread(make_room, slug, alice.username)
    a = alice.open_room(daphne_pair.a, slug)
    b = bob.open_room(daphne_pair.b, slug)

    fake_anthropic.queue(Reply(chunks=["Noted."]))
    send(b, f"visible @{alice.username}")  # the tab is visible: nothing pops up
    expect_reply_done(a, "complete", "Noted.")
    button = a.locator("#notify-button")
    expect(button).to_be_visible()  # offered, never asked by itself
    button.click()
    expect(button).to_be_hidden()

    set_visibility(a, "hidden")
    fake_anthropic.queue(Reply(chunks=["Sure."]))
    send(b, f"ping @{alice.username}")
    expect_reply_done(a, "complete", "Sure.")
    a.wait_for_function("window.__notes.length >= 2")
    assert a.evaluate("window.__notes") == [
        [f"{bob.username} mentioned you in {slug}", f"ping @{alice.username}"],
        [f"Claude replied in {slug}", "Sure."],
    ]


def test_export_links_and_a_one_line_meta_row_in_a_narrow_window(
    daphne_pair: DaphnePair, person: PersonFactory, unique: Callable[[str], str]
) -> None:
    alice = person("alice", viewport={"width": 420, "height": 700})
    slug = unique("export")
    in_db_thread(seed_room, slug, alice.username, ["Hello"], "Hi there, a fairly long answer.")
    page = alice.open_room(daphne_pair.a, slug)
    reply = replies(page).last
    expect(reply.locator(".message-body")).to_have_text("Hi there, a fairly long answer.")
    # The Copy button shown on hover sits on the meta line: no blank band under it.
    meta = reply.locator(".message-meta").bounding_box()
    author = reply.locator(".message-author").bounding_box()
    assert meta is not None and author is not None
    assert meta["height"] < 2 * author["height"], meta

    for kind, content_type in (("md", "text/markdown"), ("json", "application/json")):
        link = page.locator(f'a[href="/rooms/{slug}/export.{kind}"]')
        expect(link).to_have_count(1)
        response = page.request.get(f"{daphne_pair.a.url}/rooms/{slug}/export.{kind}")
        assert response.status == 200
        assert response.headers["content-type"].startswith(content_type)
        assert "Hi there, a fairly long answer." in response.text()
