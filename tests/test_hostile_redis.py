"""Limits that hold when Redis cannot count (issue 12): a burst larger than the Redis pool, and
a Redis paused mid-flood (SIGSTOP on the test's own redis-server), against real daphne."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from asgiref.sync import sync_to_async

from chatsite.rooms.models import Message
from tests.conftest import DaphneFactory, WsConnect
from tests.support.people import join, make_people
from tests.support.redis_server import RedisServer
from tests.support.wsclient import RoomSocket

pytestmark = pytest.mark.timeout(120)


@sync_to_async
def stored_by(username: str, slug: str) -> int:
    return Message.objects.filter(author__username=username, room__slug=slug).count()


async def send_and_read_verdict(sock: RoomSocket, i: int, timeout: float = 40) -> str:
    """Send one message; "refused" on `rate_limited`, "accepted" when it is broadcast."""
    mark = sock.mark()
    await sock.send({"type": "message.send", "text": f"flood {i}", "client_msg_id": f"f{i}"})

    def verdict(frame: dict[str, Any]) -> bool:
        if frame["type"] == "error":
            return True
        return frame["type"] == "message.created" and frame["message"]["client_msg_id"] == f"f{i}"

    frame = await sock.wait_for(None, since=mark, where=verdict, timeout=timeout)
    if frame["type"] == "error":
        assert frame["code"] == "rate_limited", frame
        return "refused"
    return "accepted"


async def test_a_burst_wider_than_the_redis_pool_meets_the_limit(
    daphne_factory: DaphneFactory, ws_connect: WsConnect, unique: Any
) -> None:
    server = daphne_factory(
        {"CHAT_RATE_PER_MINUTE": "20", "CHAT_MAX_SOCKETS_PER_USER": "0", "CHAT_CONNECT_BURST": "0"}
    )
    p = await make_people(unique)
    offset = server.log_size()
    socks: list[RoomSocket] = []
    for _ in range(6):  # in waves: the burst under test is the messages, not the handshakes
        socks += await asyncio.gather(
            *(join(ws_connect, server.ws_url, p.slug, p.alice_cookie) for _ in range(25))
        )
    verdicts = await asyncio.gather(*(send_and_read_verdict(s, i) for i, s in enumerate(socks)))
    assert verdicts.count("accepted") == 20, verdicts.count("accepted")
    assert await stored_by(p.alice, p.slug) == 20
    log = server.log_since(offset)
    assert "Too many connections" not in log and "unavailable" not in log, log[-3000:]


async def test_a_paused_redis_does_not_open_the_limit(
    daphne_factory: DaphneFactory,
    private_redis: RedisServer,
    ws_connect: WsConnect,
    unique: Any,
) -> None:
    server = daphne_factory(
        {
            "REDIS_URL": private_redis.url,
            "CHAT_RATE_PER_MINUTE": "6",
            "CHAT_MAX_SOCKETS_PER_USER": "0",
            "CHAT_CONNECT_BURST": "0",
        }
    )
    p = await make_people(unique)
    socks = [await join(ws_connect, server.ws_url, p.slug, p.alice_cookie) for _ in range(30)]
    private_redis.pause()
    try:
        sends = [
            asyncio.create_task(send_and_read_verdict(s, i, timeout=60))
            for i, s in enumerate(socks)
        ]
        # Refusals come while Redis is still paused: the process counts by itself.
        refused = 0
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 20
        while refused < 24 and loop.time() < deadline:
            await asyncio.sleep(0.2)
            refused = sum(1 for t in sends if t.done() and t.result() == "refused")
        assert refused >= 24, f"only {refused} of 30 refused while Redis was paused"
    finally:
        private_redis.resume()
    verdicts = await asyncio.gather(*sends)
    assert verdicts.count("accepted") <= 6
    assert await stored_by(p.alice, p.slug) <= 6
    # Once Redis answers again, the shared count decides again (the window is still full).
    assert await send_and_read_verdict(socks[0], 99) == "refused"
