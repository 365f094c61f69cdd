"""Sign-in and sign-up against hostile clients, through real daphne (issue 12): failed
passwords lock an address and an account (django-axes), a flood of sign-ins leaves other
people's websockets fast, sign-ups are limited per address, look-alike usernames refused.

Requests come from several loopback addresses (127.0.0.0/8), so that the address and the
account can be told apart.
"""

from __future__ import annotations

import asyncio
import secrets
import statistics
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from types import MappingProxyType
from typing import Any

import pytest
from asgiref.sync import sync_to_async

from tests.conftest import DaphnePair, WsConnect
from tests.support import unique_name
from tests.support.auth import DEFAULT_PASSWORD, create_user, csrf_form_token, http_request
from tests.support.hostile import form_post
from tests.support.people import join, make_people

pytestmark = pytest.mark.timeout(120)

SIGNUPS_PER_HOUR = 4
FLOOD = 32  # concurrent wrong-password sign-ins


@pytest.fixture(scope="module")
def server_env(server_env: Mapping[str, str]) -> Mapping[str, str]:
    return MappingProxyType(
        {
            **server_env,
            "REDIS_KEY_PREFIX": unique_name("login"),
            "CHAT_SIGNUP": "open",
            "CHAT_SIGNUPS_PER_HOUR": str(SIGNUPS_PER_HOUR),
            "AXES_FAILURE_LIMIT": "5",
        }
    )


def form_page(base_url: str, path: str) -> tuple[dict[str, str], str]:
    """The cookies and CSRF token of a form page."""
    page = http_request("GET", f"{base_url}{path}")
    assert page.status == 200, page.status
    return dict(page.cookies), csrf_form_token(page.text)


def sign_in(base_url: str, username: str, password: str, source: str) -> int:
    cookies, token = form_page(base_url, "/accounts/login/")
    form = {"username": username, "password": password, "csrfmiddlewaretoken": token}
    status, _ = form_post(f"{base_url}/accounts/login/", form, cookies=cookies, source=source)
    return status


async def test_failed_passwords_lock_the_address_and_the_account(
    daphne_pair: DaphnePair, unique: Any
) -> None:
    alice = (await sync_to_async(create_user)(unique("alice"))).username
    bob = (await sync_to_async(create_user)(unique("bob"))).username
    base = daphne_pair.a.url
    attempt = sync_to_async(sign_in)
    # Wrong passwords for alice from one address: the sign-in page with an error (200), and
    # at the fifth, the lockout (429).
    for _ in range(4):
        assert await attempt(base, alice, "wrong-password", "127.0.0.2") == 200
    assert await attempt(base, alice, "wrong-password", "127.0.0.2") == 429
    # Then even the right password is refused, from another address, on either process.
    assert await attempt(base, alice, DEFAULT_PASSWORD, "127.0.0.3") == 429
    assert await attempt(daphne_pair.b.url, alice, DEFAULT_PASSWORD, "127.0.0.3") == 429
    # The address is locked for everyone; bob from another address signs in.
    assert await attempt(base, bob, DEFAULT_PASSWORD, "127.0.0.2") == 429
    assert await attempt(base, bob, DEFAULT_PASSWORD, "127.0.0.3") == 302


async def test_a_flood_of_sign_ins_leaves_other_sockets_fast(
    daphne_pair: DaphnePair, ws_connect: WsConnect, unique: Any
) -> None:
    p = await make_people(unique)
    server = daphne_pair.a
    sock = await join(ws_connect, server.ws_url, p.slug, p.bob_cookie)
    cookies, token = await sync_to_async(form_page)(server.url, "/accounts/login/")

    async def round_trip(i: int) -> float:
        mark = sock.mark()
        started = time.monotonic()
        await sock.send({"type": "message.send", "text": f"ping {i}", "client_msg_id": f"p{i}"})
        await sock.wait_for(
            "message.created",
            since=mark,
            where=lambda f: f["message"]["client_msg_id"] == f"p{i}",
        )
        return time.monotonic() - started

    quiet = [await round_trip(i) for i in range(5)]

    def wrong_password(i: int) -> int:
        form = {"username": f"nobody{i}", "password": "x" * 12, "csrfmiddlewaretoken": token}
        # Each from its own address: no lockout spares the server the password work.
        status, _ = form_post(
            f"{server.url}/accounts/login/", form, cookies=cookies, source=f"127.0.1.{i + 1}"
        )
        return status

    loop = asyncio.get_running_loop()
    with ThreadPoolExecutor(FLOOD) as pool:  # all at once: asyncio's own pool has 6 threads
        flooding = asyncio.gather(
            *(loop.run_in_executor(pool, wrong_password, i) for i in range(FLOOD))
        )
        await asyncio.sleep(0.5)  # let the flood build up (the measurement needs it running)
        busy = [await round_trip(100 + i) for i in range(10)]
        statuses = await flooding
    assert set(statuses) <= {200, 429} and statuses.count(200) >= 5, statuses
    # Password work runs one at a time per process, off the event loop's way.
    assert max(busy) < max(0.5, 5 * statistics.median(quiet)), (quiet, busy)


async def test_sign_ups_are_limited_per_address(daphne_pair: DaphnePair) -> None:
    base = daphne_pair.b.url

    def sign_up(name: str, source: str) -> int:
        cookies, token = form_page(base, "/accounts/signup/")
        form = {
            "username": name,
            "password1": "Correct-Horse-42",
            "password2": "Correct-Horse-42",
            "csrfmiddlewaretoken": token,
        }
        return form_post(f"{base}/accounts/signup/", form, cookies=cookies, source=source)[0]

    attempt = sync_to_async(sign_up)
    statuses = [await attempt(unique_name("new"), "127.0.2.1") for _ in range(SIGNUPS_PER_HOUR)]
    assert statuses == [302] * SIGNUPS_PER_HOUR
    assert await attempt(unique_name("new"), "127.0.2.1") == 429
    assert await attempt(unique_name("new"), "127.0.2.2") == 302  # another address


@pytest.mark.parametrize(
    ("name", "allowed"),
    [
        ("\u0430lice", False),  # Cyrillic а, then Latin
        ("p\u0430yp\u0430l", False),
        ("\u0430\u0440\u0435", False),  # аре: Cyrillic letters that all look Latin
        ("\u210bello", True),  # ℋ: NFKC makes it "Hello", which is what is stored
        ("\u0418\u0432\u0430\u043d", True),  # Иван
        ("山田たろう", True),
        ("José", True),
    ],
)
async def test_look_alike_usernames_are_refused(
    daphne_pair: DaphnePair, name: str, allowed: bool
) -> None:
    base = daphne_pair.a.url
    suffix = str(secrets.randbelow(10**6))  # digits mix with every script

    def sign_up() -> tuple[int, str]:
        cookies, token = form_page(base, "/accounts/signup/")
        form = {
            "username": name + suffix,
            "password1": "Correct-Horse-42",
            "password2": "Correct-Horse-42",
            "csrfmiddlewaretoken": token,
        }
        source = f"127.0.3.{len(name) + 1}"
        return form_post(f"{base}/accounts/signup/", form, cookies=cookies, source=source)

    status, body = await sync_to_async(sign_up)()
    if allowed:
        assert status == 302, body[:2000]
    else:
        assert status == 200 and ("alphabet" in body or "Latin letters" in body), body[:2000]
