"""Sockets end with their session (SPEC §6, issue 12), through two real daphne processes:
after a logout, a password change or a deactivation, every open socket of that session closes
with 4401 within 10 s, and a message sent meanwhile is neither stored nor answered."""

from __future__ import annotations

import time
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import User

from chatsite.rooms.models import Message, Room
from tests.conftest import DaphnePair, WsConnect
from tests.support import unique_name
from tests.support.auth import create_user, http_login, http_request, session_cookie
from tests.support.people import join

pytestmark = pytest.mark.timeout(90)


@pytest.fixture(scope="module")
def server_env(server_env: Mapping[str, str]) -> Mapping[str, str]:
    return MappingProxyType({**server_env, "REDIS_KEY_PREFIX": unique_name("session")})


@sync_to_async
def room_of(owner: str) -> str:
    user = User.objects.get(username=owner)
    return Room.objects.create(slug=unique_name("room"), title="S", owner=user).slug


def log_out(base_url: str, cookies: Mapping[str, str]) -> int:
    answer = http_request(
        "POST",
        f"{base_url}/accounts/logout/",
        cookies=cookies,
        form={"csrfmiddlewaretoken": cookies["csrftoken"]},
        headers={"Origin": base_url, "Referer": f"{base_url}/"},
    )
    return answer.status


async def test_sockets_close_with_4401_when_their_session_ends(
    daphne_pair: DaphnePair, ws_connect: WsConnect, unique: Any
) -> None:
    names = {k: unique(k) for k in ("ann", "ben", "cid", "dan")}
    for name in names.values():
        await sync_to_async(create_user)(name)
    slug = await room_of(names["dan"])
    a, b = daphne_pair
    ann_cookies = await sync_to_async(http_login)(a.url, names["ann"])
    cookies = {k: await sync_to_async(lambda n=n: session_cookie(User.objects.get(username=n)))()
               for k, n in names.items() if k != "ann"}  # fmt: skip
    tabs = {
        "ann": [await join(ws_connect, s.ws_url, slug, ann_cookies["sessionid"]) for s in (a, b)],
        **{k: [await join(ws_connect, s.ws_url, slug, c) for s in (a, b)] for k, c in cookies.items()},
    }  # fmt: skip

    started = time.monotonic()
    assert await sync_to_async(log_out)(a.url, ann_cookies) == 302

    @sync_to_async
    def change_password_and_deactivate() -> None:
        ben = User.objects.get(username=names["ben"])
        ben.set_password("a-new-password-42")
        ben.save()
        User.objects.filter(username=names["cid"]).update(is_active=False)

    await change_password_and_deactivate()
    for who in ("ann", "ben", "cid"):
        for tab in tabs[who]:
            assert await tab.wait_closed(timeout=12) == 4401, who
    assert time.monotonic() - started < 12
    # Dan's session stands: his tabs are open and served.
    for tab in tabs["dan"]:
        assert not tab.closed
        mark = tab.mark()
        await tab.send({"type": "sync"})
        await tab.wait_for("room.snapshot", since=mark)


async def test_a_message_sent_after_logout_is_not_stored(
    daphne_pair: DaphnePair, ws_connect: WsConnect, unique: Any
) -> None:
    name = unique("eve")
    await sync_to_async(create_user)(name)
    slug = await room_of(name)
    base = daphne_pair.b.url
    cookies = await sync_to_async(http_login)(base, name)
    tab = await join(ws_connect, daphne_pair.b.ws_url, slug, cookies["sessionid"])
    assert await sync_to_async(log_out)(base, cookies) == 302
    # At once, before any periodic check could have run.
    await tab.send({"type": "message.send", "text": "after logout", "client_msg_id": "late"})
    assert await tab.wait_closed(timeout=12) == 4401
    assert not tab.find("message.created")
    stored = await sync_to_async(Message.objects.filter(room__slug=slug).count)()
    assert stored == 0
