"""The pages work in Chromium under the strict Content-Security-Policy (issue 11,
docs/security.md): every page a person goes through, a streamed Markdown reply with a code
block, the settings dialog and the members card, and not one CSP violation reported."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest
from playwright.sync_api import ConsoleMessage, Page, expect

from tests.browser.pages import MARKDOWN_REPLY, expect_reply_done, send
from tests.fakes import Reply

if TYPE_CHECKING:
    from tests.browser.conftest import PersonFactory
    from tests.conftest import DaphnePair
    from tests.fakes.anthropic_api import FakeAnthropic

pytestmark = pytest.mark.browser

# Collects what the browser reports, before any page script runs (init scripts are injected by
# the browser itself, not subject to the page's policy).
WATCH = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__csp.push(`${e.violatedDirective} ${e.blockedURI} ${e.sourceFile}:${e.lineNumber}`);
});
"""


class Violations:
    """CSP violations seen on every page of a browser context (events and console lines)."""

    def __init__(self) -> None:
        self.found: list[str] = []

    def watch(self, page: Page) -> Page:
        page.on("console", self._console)
        return page

    def on_page(self, page: Page) -> None:
        """`context.on("page", ...)`: watch every page the context opens."""
        self.watch(page)

    def _console(self, message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text or "Content-Security-Policy" in message.text:
            self.found.append(message.text)

    def collect(self, page: Page) -> None:
        self.found.extend(page.evaluate("window.__csp || []"))


def test_pages_work_in_chromium_without_a_csp_violation(
    daphne_pair: DaphnePair,
    fake_anthropic: FakeAnthropic,
    person: PersonFactory,
    unique: Callable[[str], str],
) -> None:
    violations = Violations()
    alice = person("alice")
    alice.context.add_init_script(WATCH)
    alice.context.on("page", violations.on_page)
    server = daphne_pair.a
    alice.context.add_cookies([{"name": "sessionid", "value": alice.session, "url": server.url}])

    # The lobby, then a room created from its form.
    lobby = alice.context.new_page()
    violations.watch(lobby)
    lobby.goto(f"{server.url}/")
    expect(lobby.locator("#room-name")).to_be_visible()
    violations.collect(lobby)
    name = unique("Csp Room")
    lobby.fill("#room-name", name)
    lobby.locator(".open-room-form button[type=submit]").click()
    expect(lobby.locator("#connection-status")).to_have_attribute("data-state", "online")
    page = lobby  # now the room page, with its nonce'd import map and ES modules

    # A streamed Markdown reply (sanitized HTML, highlighted code) renders under the policy.
    fake_anthropic.queue(Reply(chunks=MARKDOWN_REPLY))
    send(page, "Plan a weekend in Lisbon")
    reply = expect_reply_done(page, "complete")
    expect(reply.locator("pre code")).to_be_visible()
    expect(reply.locator("h2")).to_have_text("Weekend in Lisbon")

    # The owner's settings dialog and the members card.
    page.locator("#settings-button").click()
    expect(page.locator("#settings-dialog")).to_be_visible()
    page.locator("#settings-cancel").click()
    expect(page.locator("#access-card")).to_be_visible()
    page.locator("#access-invite").click()
    invite_url = re.compile("^" + re.escape(f"{server.url}/invites/") + r"[\w-]+/$")
    expect(page.locator("#access-invite-url")).to_have_value(invite_url)
    violations.collect(page)

    # A free slug's "create this room?" page, a 404, and the signed-out pages.
    free = alice.context.new_page()
    free.goto(f"{server.url}/rooms/{unique('free')}/")
    expect(free.locator("#create-room-form")).to_be_visible()
    violations.collect(free)
    free.goto(f"{server.url}/rooms/Not_A_Slug/")
    violations.collect(free)
    stranger = alice.context.browser
    assert stranger is not None
    signed_out = stranger.new_context()
    signed_out.add_init_script(WATCH)
    for path in ("/accounts/login/", "/accounts/signup/"):
        tab = violations.watch(signed_out.new_page())
        tab.goto(f"{server.url}{path}")
        expect(tab.locator("h1")).to_be_visible()
        violations.collect(tab)
    signed_out.close()

    assert violations.found == []
    assert alice.errors == []
