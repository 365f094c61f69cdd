"""axe-core over the login page, the lobby and a lived-in room, in light and dark mode and at a
phone's 375 px: no critical or serious violation (issue 14).

axe-core comes from npm (package.json devDependencies; `make test` runs `npm ci`) and is
injected by Playwright. The contexts bypass the page's CSP for that injected script only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest
from playwright.sync_api import Page, expect

from tests.browser.pages import MARKDOWN_REPLY, in_db_thread, seed_room
from tests.support import REPO_ROOT

if TYPE_CHECKING:
    from playwright.sync_api import Browser

    from tests.browser.conftest import PersonFactory
    from tests.conftest import DaphnePair

pytestmark = pytest.mark.browser

AXE = REPO_ROOT / "node_modules" / "axe-core" / "axe.min.js"

VARIANTS: dict[str, dict[str, Any]] = {
    "light": {"color_scheme": "light", "viewport": {"width": 1200, "height": 800}},
    "dark": {"color_scheme": "dark", "viewport": {"width": 1200, "height": 800}},
    "phone-light": {
        "color_scheme": "light",
        "viewport": {"width": 375, "height": 740},
        "is_mobile": True,
        "has_touch": True,
    },
    "phone-dark": {
        "color_scheme": "dark",
        "viewport": {"width": 375, "height": 740},
        "is_mobile": True,
        "has_touch": True,
    },
}


def serious_violations(page: Page) -> list[dict[str, Any]]:
    """axe's critical and serious violations on the page as it is now."""
    assert AXE.is_file(), f"{AXE} is missing: run `npm ci` (make test does)"
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.add_script_tag(path=str(AXE))
    found: list[dict[str, Any]] = page.evaluate(
        """async () => {
          const result = await axe.run(document, { resultTypes: ["violations"] });
          return result.violations
            .filter((v) => v.impact === "critical" || v.impact === "serious")
            .map((v) => ({ id: v.id, impact: v.impact, help: v.help,
                           nodes: v.nodes.slice(0, 5).map((n) => n.target.join(" ") + ": " + n.failureSummary) }));
        }"""
    )
    return found


def assert_clean(page: Page, where: str) -> None:
    violations = serious_violations(page)
    assert not violations, f"{where}: " + "\n".join(map(str, violations))


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_login_lobby_and_room_have_no_serious_axe_violation(
    variant: str,
    browser: Browser,
    daphne_pair: DaphnePair,
    person: PersonFactory,
    unique: Callable[[str], str],
) -> None:
    options = {**VARIANTS[variant], "bypass_csp": True}
    server = daphne_pair.a

    anonymous = browser.new_context(**options)
    try:
        login = anonymous.new_page()
        login.goto(f"{server.url}/accounts/login/")
        expect(login.locator("#id_username")).to_be_focused()
        assert_clean(login, "login")
    finally:
        anonymous.close()

    alice = person("alice", **options)
    bob = person("bob")
    slug = unique("axe")
    ids = in_db_thread(
        seed_room, slug, alice.username, ["Plans for **Lisbon**?"], "".join(MARKDOWN_REPLY)
    )

    alice.context.add_cookies([{"name": "sessionid", "value": alice.session, "url": server.url}])
    lobby = alice.context.new_page()
    lobby.goto(f"{server.url}/")
    expect(lobby.locator("#room-name")).to_be_focused()
    assert_clean(lobby, "lobby")
    lobby.close()

    page = alice.open_room(server, slug)
    other = bob.open_room(daphne_pair.b, slug)
    expect(page.locator("#presence li")).to_have_count(2)
    # A lived-in room: a reaction, the emoji picker open, someone typing, the @ list open.
    first = other.locator(f"#m-{ids[0]}")
    first.locator("button.reaction-add").click()
    first.get_by_role("button", name="React with party").click()
    expect(page.locator(f"#m-{ids[0]} button.reaction")).to_have_text("🎉 1")
    page.locator(f"#m-{ids[-1]} button.reaction-add").click()
    other.locator("#composer-text").click()
    other.keyboard.type("one sec")
    expect(page.locator("#typing-status")).not_to_be_empty()
    page.locator("#composer-text").click()
    expect(page.locator("#composer-text")).to_be_focused()
    page.keyboard.type("@")
    expect(page.locator("#mention-list")).to_be_visible()
    expect(page.locator(f"#m-{ids[-1]} button.regenerate")).to_be_visible()
    assert_clean(page, "room")

    # The phone's Send button has a name even when its label is hidden.
    expect(page.get_by_role("button", name="Send", exact=True)).to_be_visible()
