"""Fixtures for browser tests: Debian's Chromium driven by Playwright (sync API) against real
daphne processes from tests/conftest.py.

Playwright's own browser download cannot work here, so the tests launch /usr/bin/chromium
(`apt-get install chromium`; `.ci/run` and `make test` install it). Without it the tests are
skipped, except under CI=true, where that is a failure.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import pytest

from tests import testenv

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Page

    from tests.support.daphne import DaphneProcess

CHROMIUM = Path(os.environ.get("ROOMCHAT_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    # Several tabs of one test must all keep running their timers and animation frames.
    "--disable-background-timer-throttling",
    "--disable-renderer-backgrounding",
    "--disable-backgrounding-occluded-windows",
]
# Generous for a loaded 2-core CI machine; every wait is on a condition, never a fixed sleep.
EXPECT_TIMEOUT_MS = 15_000


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/browser/" in item.nodeid.replace(os.sep, "/"):
            item.add_marker(pytest.mark.browser)


def _launch() -> Iterator[Browser]:
    if not os.access(CHROMIUM, os.X_OK):
        message = f"{CHROMIUM} is missing (apt-get install chromium)"
        if testenv.ON_CI:
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=EXPECT_TIMEOUT_MS)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def browser() -> Iterator[Browser]:
    """A headless Chromium for one test.

    Per test, not per module: while Playwright's sync API is alive it keeps an event loop
    running in this thread, and Django then refuses database work here, including the flush
    that ends each transactional test. Torn down before that flush, it stays out of the way.
    """
    yield from _launch()


@pytest.fixture(scope="module")
def module_browser() -> Iterator[Browser]:
    """One Chromium for a whole module of tests that never touch the database."""
    yield from _launch()


@dataclass
class Person:
    """A signed-in user: a browser context holding their session cookie, and its tabs."""

    username: str
    session: str
    context: BrowserContext
    errors: list[str]

    def open_room(self, server: DaphneProcess, slug: str) -> Page:
        """A new tab on `server` showing room `slug`, once its socket is online. A free slug
        is created first, as a person does it: the "create this room?" page's button."""
        from playwright.sync_api import expect

        self.context.add_cookies([{"name": "sessionid", "value": self.session, "url": server.url}])
        page = self.context.new_page()
        page.on("pageerror", lambda exc: self.errors.append(f"{self.username}: {exc}"))
        page.goto(f"{server.url}/rooms/{slug}/")
        if page.locator("#create-room-form").count():
            page.locator("#create-room-form button[type=submit]").click()
        expect(page.locator("#connection-status")).to_have_attribute("data-state", "online")
        return page


PersonFactory = Callable[..., Person]


@pytest.fixture(scope="module")
def server_env(server_env: Mapping[str, str]) -> Mapping[str, str]:
    """The session's server environment with this module's own Redis key prefix, so locks,
    presence, rate limits and a circuit breaker other modules leave behind never reach these
    tests (and theirs never reach others)."""
    from tests.support import unique_name

    return MappingProxyType({**server_env, "REDIS_KEY_PREFIX": unique_name("browser")})


@pytest.fixture
def person(browser: Browser, unique: Callable[[str], str]) -> Iterator[PersonFactory]:
    """`person("alice")`: a new user (unique name, or exactly `alice` with `exact=True`) signed
    in, in their own browser context (keyword arguments go to `browser.new_context`).

    Any uncaught JavaScript error on their pages fails the test.
    """
    from tests.support.auth import signed_in_user

    made: list[Person] = []

    def make(prefix: str = "user", *, exact: bool = False, **context_options: Any) -> Person:
        # Playwright's sync API keeps an event loop running in this thread, which Django's ORM
        # refuses to run under: create the user and its session from another thread.
        with ThreadPoolExecutor(1) as pool:
            user, session = pool.submit(
                signed_in_user, prefix if exact else unique(prefix)
            ).result()
        options = {"viewport": {"width": 1200, "height": 800}, **context_options}
        context = browser.new_context(**options)
        context.set_default_timeout(EXPECT_TIMEOUT_MS)
        made.append(Person(user.get_username(), session, context, []))
        return made[-1]

    yield make
    errors = [error for p in made for error in p.errors]
    for p in made:
        p.context.close()
    if errors:
        pytest.fail("uncaught JavaScript errors on the page:\n" + "\n".join(errors))
