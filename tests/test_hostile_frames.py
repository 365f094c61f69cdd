"""Hostile clients against two real daphne processes (issue 12): a foreign Origin, frames that
would crash the database layer, a room too big for one frame, odd history parameters.

Every test has its own room and users; the module has its own Redis key prefix.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import pytest
from asgiref.sync import sync_to_async

from chatsite.rooms.models import Message, Room
from tests.conftest import DaphnePair, WsConnect
from tests.support import unique_name
from tests.support.auth import http_request
from tests.support.people import join, make_people
from tests.support.wsclient import HandshakeRejected, RoomSocket

pytestmark = pytest.mark.timeout(90)


@pytest.fixture(scope="module")
def server_env(server_env: Mapping[str, str]) -> Mapping[str, str]:
    # Tests here open hundreds of one person's sockets: no connect pace (test_hostile_load's).
    return MappingProxyType(
        {**server_env, "REDIS_KEY_PREFIX": unique_name("hostile"), "CHAT_CONNECT_BURST": "0"}
    )


# --- 7. the Origin is the request's own, scheme, host and port -------------------------------


async def test_only_the_very_origin_of_the_request_opens_a_socket(
    daphne_pair: DaphnePair, ws_connect: WsConnect, unique: Any
) -> None:
    p = await make_people(unique)
    server = daphne_pair.a
    port = server.port
    foreign = [
        "http://localhost:9999",  # an allowed host on another port
        f"http://127.0.0.1:{port + 1}",
        f"https://127.0.0.1:{port}",  # another scheme
        "http://127.0.0.1",  # the default port is another port
        f"http://evil.example:{port}",
        f"http://127.0.0.1:{port}/rooms/x/",  # not an origin
        f"http://127.0.0.1:{port}@evil.example",
        "null",
        None,  # no Origin at all
    ]
    for origin in foreign:
        with pytest.raises(HandshakeRejected) as refused:
            await ws_connect(server.ws_url, p.slug, p.alice_cookie, origin=origin)
        assert refused.value.status == 403, origin

    # The page's own origin, and the same page reached by another allowed host name.
    sock = await join(ws_connect, server.ws_url, p.slug, p.alice_cookie)
    assert sock.find("room.snapshot")
    local = await ws_connect(
        f"ws://localhost:{port}", p.slug, p.alice_cookie, origin=f"http://LOCALHOST:{port}"
    )
    await local.wait_for("room.snapshot")
    # A Host header that is not an allowed host is refused whatever the Origin says.
    with pytest.raises(HandshakeRejected) as refused:
        await ws_connect(
            server.ws_url,
            p.slug,
            p.alice_cookie,
            origin=f"http://evil.example:{port}",
            headers={"Host": f"evil.example:{port}"},
        )
    assert refused.value.status in (400, 403)
    await asyncio.gather(sock.close(), local.close())


# --- 1. a room too big for one frame ---------------------------------------------------------

EMOJI_TEXT = "😀" * 8000  # 32,000 bytes as UTF-8; 96,000 in JSON's ASCII escapes
CJK_TEXT = "漢字" * 4000  # honest text: 24,000 bytes


@sync_to_async
def fill_room(slug: str, texts: list[str]) -> list[int]:
    """Store `texts` as the room's messages (alternately user and assistant); their ids."""
    room = Room.objects.get(slug=slug)
    rows = [
        Message(
            room=room,
            role="user" if i % 2 == 0 else "assistant",
            author=room.owner if i % 2 == 0 else None,
            text=text,
            model="" if i % 2 == 0 else "claude-sonnet-5-5",
        )
        for i, text in enumerate(texts)
    ]
    return [m.pk for m in Message.objects.bulk_create(rows)]


async def test_a_room_of_huge_messages_still_opens_on_every_process(
    daphne_pair: DaphnePair, ws_connect: WsConnect, unique: Any
) -> None:
    p = await make_people(unique)
    ids = await fill_room(p.slug, [EMOJI_TEXT if i % 3 else CJK_TEXT for i in range(50)])
    for server in daphne_pair:
        for cookie in (p.alice_cookie, p.bob_cookie):
            sock = await join(ws_connect, server.ws_url, p.slug, cookie)
            snapshot = sock.find("room.snapshot")[0]
            size = len(json.dumps(snapshot, ensure_ascii=False, separators=(",", ":")).encode())
            assert size < 512 * 1024, size
            kept = [m["id"] for m in snapshot["messages"]]
            assert kept and kept == ids[-len(kept) :], "the newest messages, oldest first"
            assert all(m["text"] in (EMOJI_TEXT, CJK_TEXT) for m in snapshot["messages"])
            # `sync` answers the same bounded snapshot, and the socket stays usable.
            mark = sock.mark()
            await sock.send({"type": "sync"})
            again = await sock.wait_for("room.snapshot", since=mark)
            assert [m["id"] for m in again["messages"]] == kept
            await sock.close()
            assert sock.close_code == 1000

    # The older ones come from the history API, in pages under 1 MiB that reach the start.
    cookies = {"sessionid": p.alice_cookie}
    seen: list[int] = []
    query = "?limit=200"
    while True:
        page = await sync_to_async(http_request)(
            "GET", f"{daphne_pair.b.url}/api/rooms/{p.slug}/messages{query}", cookies=cookies
        )
        assert page.status == 200 and len(page.body) < 1024 * 1024, len(page.body)
        body = page.json()
        seen = [m["id"] for m in body["messages"]] + seen
        if not body["has_more"]:
            break
        query = f"?limit=200&before={body['messages'][0]['id']}"
    assert seen == ids


# --- 9. history parameters: our words, ASCII digits only -------------------------------------


async def test_history_parameters_are_ascii_digits_with_our_own_messages(
    daphne_pair: DaphnePair, unique: Any
) -> None:
    p = await make_people(unique)
    ids = await fill_room(p.slug, [f"m{i}" for i in range(5)])
    url = f"{daphne_pair.a.url}/api/rooms/{p.slug}/messages"
    cookies = {"sessionid": p.alice_cookie}
    get = sync_to_async(http_request)
    bad = [
        "limit=%C2%B2",  # ²: str.isdigit() says yes
        "limit=%D9%A3",  # Arabic-Indic 3
        "limit=%EF%BC%93",  # fullwidth 3
        "limit=" + "9" * 5000,
        "limit=0",
        "limit=-1",
        "limit=+5",
        "limit=1_0",
        "limit=%205",
        "limit=5.0",
        "limit=",
        "before=" + "1" * 30,
        "before=0",
        "before=%D9%A3",
        "before=9223372036854775808",
    ]
    for query in bad:
        answer = await get("GET", f"{url}?{query}", cookies=cookies)
        assert answer.status == 400, query
        assert answer.headers["Content-Type"] == "application/json", query
        message = answer.json()["error"]
        assert message.startswith(("`limit`", "`before`")), (query, message)
        assert "int()" not in message and "base 10" not in message and "digits" in message
    good = await get("GET", f"{url}?limit=2&before={ids[-1]}", cookies=cookies)
    assert [m["id"] for m in good.json()["messages"]] == ids[-3:-1]
    capped = await get("GET", f"{url}?limit=500", cookies=cookies)
    assert capped.status == 200 and len(capped.json()["messages"]) == 5


# --- 4. frames that would crash the database layer; clean-up after any failure ---------------


async def test_unstorable_fields_are_refused_and_the_socket_lives_on(
    daphne_pair: DaphnePair, ws_connect: WsConnect, unique: Any
) -> None:
    p = await make_people(unique)
    server = daphne_pair.a
    offset = server.log_size()
    sock = await join(ws_connect, server.ws_url, p.slug, p.alice_cookie)
    hostile = [
        '{"type":"message.send","text":"hi","client_msg_id":"a\\u0000b"}',
        '{"type":"message.send","text":"hi","client_msg_id":"\\ud800"}',
        '{"type":"message.send","text":"hi","client_msg_id":"x\\udfff"}',
        '{"type":"message.send","text":"hi","client_msg_id":"' + "x" * 65 + '"}',
        '{"type":"member.add","username":"a\\u0000"}',
        '{"type":"member.add","username":"\\ud83d"}',
        '{"type":"room.update","model":"m\\u0000"}',
        '{"type":"reaction.toggle","message_id":1e400,"emoji":"👍"}',
        '{"type":"reaction.toggle","message_id":' + "9" * 30 + ',"emoji":"👍"}',
        '{"type":"generation.regenerate","message_id":true}',
        '{"type":"generation.stop","message_id":"1"}',
        '{"type":"message.send","text":1}',
        "[" * 100_000,
    ]
    for raw in hostile:
        mark = sock.mark()
        await sock.send_raw(raw)
        error = await sock.wait_for("error", since=mark)
        assert error["code"] in ("invalid_message", "invalid_json", "too_long"), raw[:60]
    # Text keeps what it can: NUL and lone surrogates are removed, the message stored.
    mark = sock.mark()
    await sock.send_raw('{"type":"message.send","text":"ok\\u0000\\ud800!","client_msg_id":"c1"}')
    created = await sock.wait_for("message.created", since=mark)
    assert created["message"]["text"] == "ok!"
    assert not sock.closed
    log = server.log_since(offset)
    assert "Traceback" not in log and "Exception inside application" not in log, log[-3000:]


async def test_presence_forgets_every_socket_that_failed_or_closed(
    daphne_pair: DaphnePair, ws_connect: WsConnect, unique: Any
) -> None:
    """200 sockets that misbehave and vanish leave nobody behind in presence."""
    p = await make_people(unique)
    watcher = await join(ws_connect, daphne_pair.b.ws_url, p.slug, p.bob_cookie)
    bad = '{"type":"message.send","text":"x","client_msg_id":"\\u0000"}'

    async def churn(i: int) -> None:
        server = daphne_pair[i % 2]
        sock = await RoomSocket.connect(server.ws_url, p.slug, p.alice_cookie)
        try:
            await sock.wait_for("room.snapshot")
            await sock.send_raw(bad)
            await sock.wait_for("error")
        finally:
            if i % 3 == 0:
                sock.conn.transport.abort()  # vanish without a close frame
            await sock.close()

    for start in range(0, 200, 20):
        await asyncio.gather(*(churn(i) for i in range(start, start + 20)))
    # Alice was there; once every tab of hers is gone the set is bob alone again, everywhere.
    await watcher.wait_for(
        "presence", where=lambda f: f["users"] == [p.bob], since=watcher.mark() - 1, timeout=40
    )
    fresh = await join(ws_connect, daphne_pair.a.ws_url, p.slug, p.bob_cookie)
    assert fresh.find("presence")[-1]["users"] == [p.bob]


# --- 9. stops are limited per user ------------------------------------------------------------


async def test_generation_stop_is_rate_limited_per_user(
    daphne_pair: DaphnePair, ws_connect: WsConnect, unique: Any
) -> None:
    from consumers.actions.messages import STOPS_PER_MINUTE

    p = await make_people(unique)
    # The user's stops count on every process and socket together.
    tabs = [
        await join(ws_connect, daphne_pair.a.ws_url, p.slug, p.alice_cookie),
        await join(ws_connect, daphne_pair.b.ws_url, p.slug, p.alice_cookie),
    ]
    for i in range(STOPS_PER_MINUTE):
        await tabs[i % 2].send({"type": "generation.stop"})
    for tab in tabs:
        await tab.expect_silence(0.5, "error")
    mark = tabs[0].mark()
    await tabs[0].send({"type": "generation.stop"})
    refused = await tabs[0].wait_for("error", since=mark)
    assert refused["code"] == "rate_limited" and refused["retry_after"] > 0
    # Someone else may still stop the reply.
    other = await join(ws_connect, daphne_pair.a.ws_url, p.slug, p.bob_cookie)
    await other.send({"type": "generation.stop"})
    await other.expect_silence(0.5, "error")
