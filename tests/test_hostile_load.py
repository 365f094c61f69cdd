"""One account against one real daphne process (issue 12): memory a deaf socket can pin, the
work one user's floods put on the process, and a flood of logins.

Each test starts its own process (`daphne_factory`) so that its memory and latency are the
test's alone.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import pytest
from asgiref.sync import sync_to_async

from chatsite.rooms.models import Message, Room
from tests.conftest import DaphneFactory, WsConnect
from tests.support import unique_name, wait_until
from tests.support.hostile import DeafSocket, RssSampler, rss_bytes
from tests.support.people import join, make_people

pytestmark = pytest.mark.timeout(120)

MiB = 1024 * 1024


@pytest.fixture(scope="module")
def server_env(server_env: Mapping[str, str]) -> Mapping[str, str]:
    return MappingProxyType({**server_env, "REDIS_KEY_PREFIX": unique_name("load")})


@sync_to_async
def fill_room(slug: str, text: str, count: int) -> None:
    """`count` messages, replies in between, so that no reply is owed."""
    room = Room.objects.get(slug=slug)
    Message.objects.bulk_create(
        Message(
            room=room,
            role="assistant" if i % 2 else "user",
            author=None if i % 2 else room.owner,
            model="claude-sonnet-5-5" if i % 2 else "",
            text=text,
        )
        for i in range(count)
    )


# --- 2. a socket that asks and never reads --------------------------------------------------


async def test_a_deaf_sync_flood_cannot_grow_the_process(
    daphne_factory: DaphneFactory, ws_connect: WsConnect, unique: Any
) -> None:
    server = daphne_factory()
    assert server.pid is not None
    p = await make_people(unique)
    await fill_room(p.slug, "漢字" * 4000, 50)  # snapshots at their 512 KiB cap
    # Warm the process up (imports, pools, the first snapshots) before the baseline.
    honest = await join(ws_connect, server.ws_url, p.slug, p.bob_cookie)
    for _ in range(3):
        mark = honest.mark()
        await honest.send({"type": "sync"})
        await honest.wait_for("room.snapshot", since=mark)
    baseline = rss_bytes(server.pid)

    with RssSampler(server.pid) as sampler:
        deaf = await asyncio.to_thread(
            DeafSocket, server.port, f"/ws/rooms/{p.slug}/", p.alice_cookie
        )
        assert deaf.status == 101
        for _ in range(300):
            await asyncio.to_thread(deaf.send, {"type": "sync"})

        def keep_asking() -> bool:
            # Paced, the burst costs two snapshots; asking on, the backlog grows until the
            # server drops the socket (WS_MAX_BACKLOG_BYTES), which it must do.
            return not deaf.send({"type": "sync"}) or deaf.dropped()

        await asyncio.to_thread(
            wait_until, keep_asking, timeout=40, interval=0.1, what="the deaf socket dropped"
        )
        # Meanwhile the honest tab is served as before.
        mark = honest.mark()
        started = time.monotonic()
        await honest.send({"type": "sync"})
        await honest.wait_for("room.snapshot", since=mark, timeout=5)
        assert time.monotonic() - started < 2.0
    deaf.close()
    grown = sampler.peak - baseline
    # 300 snapshots of 512 KiB would be 150 MiB; the backlog limit is 4 MiB.
    assert grown < 48 * MiB, f"RSS grew {grown / MiB:.0f} MiB during the flood"
    assert "not reading" in server.log_text()

    def settled() -> bool:
        return rss_bytes(server.pid or 0) < baseline + 24 * MiB

    await asyncio.to_thread(wait_until, settled, timeout=20, what="RSS back near its baseline")
    await honest.close()
