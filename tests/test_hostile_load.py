"""One account against one real daphne process (issue 12): memory a deaf socket can pin, the
work one user's floods put on the process, and a flood of logins.

Each test starts its own process (`daphne_factory`) so that its memory and latency are the
test's alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import pytest
from asgiref.sync import sync_to_async

from chatsite.rooms.models import Message, Room
from tests.conftest import DaphneFactory, WsConnect
from tests.support import unique_name, wait_until
from tests.support.auth import create_user, session_cookie
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

    carol = await sync_to_async(lambda: session_cookie(create_user(unique("carol"), None)))()

    def dropped_after(deaf: DeafSocket, every: float) -> None:
        """Ask on (a `sync` each `every` s) until the server drops the socket, as it must."""

        def gone() -> bool:
            return not deaf.send({"type": "sync"}) or deaf.dropped()

        wait_until(gone, timeout=40, interval=every, what="the deaf socket dropped")

    with RssSampler(server.pid) as sampler:
        # The attack as reported: 300 `sync` at once, nothing read. Paced, they cost two
        # snapshots; over the person's frame budget, the socket is closed (4429), then cut.
        burst = await asyncio.to_thread(
            DeafSocket, server.port, f"/ws/rooms/{p.slug}/", p.alice_cookie
        )
        assert burst.status == 101
        for _ in range(300):
            await asyncio.to_thread(burst.send, {"type": "sync"})
        await asyncio.to_thread(dropped_after, burst, 0.1)
        # Within every budget, 5 a second: the unread snapshots pile up until the backlog
        # limit (WS_MAX_BACKLOG_BYTES) drops the connection.
        paced = await asyncio.to_thread(DeafSocket, server.port, f"/ws/rooms/{p.slug}/", carol)
        await asyncio.to_thread(dropped_after, paced, 0.2)
        # Meanwhile the honest tab is served as before.
        mark = honest.mark()
        started = time.monotonic()
        await honest.send({"type": "sync"})
        await honest.wait_for("room.snapshot", since=mark, timeout=5)
        assert time.monotonic() - started < 2.0
    burst.close()
    paced.close()
    grown = sampler.peak - baseline
    # 300 snapshots of 512 KiB would be 150 MiB; the backlog limit is 4 MiB.
    assert grown < 48 * MiB, f"RSS grew {grown / MiB:.0f} MiB during the flood"
    assert "not reading" in server.log_text()

    def settled() -> bool:
        return rss_bytes(server.pid or 0) < baseline + 24 * MiB

    await asyncio.to_thread(wait_until, settled, timeout=20, what="RSS back near its baseline")
    await honest.close()


# --- 6. one person's flood and another room's reply --------------------------------------------


async def reply_time(tab: Any, text: str) -> float:
    """Seconds from sending `text` to the end of the reply it calls for."""
    mark = tab.mark()
    started = time.monotonic()
    await tab.send({"type": "message.send", "text": text, "client_msg_id": text})
    await tab.wait_for("generation.finished", since=mark, timeout=60)
    return time.monotonic() - started


async def test_one_persons_flood_leaves_another_rooms_reply_fast(
    daphne_factory: DaphneFactory, ws_connect: WsConnect, unique: Any
) -> None:
    server = daphne_factory()
    quiet_room = await make_people(unique)
    loud_room = await make_people(unique)
    await fill_room(loud_room.slug, "漢字" * 4000, 50)  # big snapshots for `sync` to ask for
    tab = await join(ws_connect, server.ws_url, quiet_room.slug, quiet_room.bob_cookie)
    baseline = min([await reply_time(tab, f"quiet {i}") for i in range(3)])

    # Alice holds 15 sockets in her room and sends everything she can, as fast as she can.
    loud = [
        await join(ws_connect, server.ws_url, loud_room.slug, loud_room.alice_cookie)
        for _ in range(15)
    ]
    stop = asyncio.Event()
    reconnects: list[int] = []
    frames = [{"type": "sync"}, {"type": "typing"}, {"type": "generation.stop"}, {"type": "x"}]

    async def flood(sock: Any) -> None:
        """50 frames a second; closed for it, straight back in with a new socket."""
        i = 0
        while not stop.is_set():
            if sock.closed:
                with contextlib.suppress(Exception):
                    sock = await join(
                        ws_connect, server.ws_url, loud_room.slug, loud_room.alice_cookie
                    )
                    reconnects.append(1)
                await asyncio.sleep(0.1)
                continue
            with contextlib.suppress(Exception):
                await sock.send(frames[i % len(frames)])
            i += 1
            await asyncio.sleep(0.02)

    floods = [asyncio.create_task(flood(sock)) for sock in loud]
    try:
        await asyncio.sleep(1.0)
        during = [await reply_time(tab, f"during {i}") for i in range(3)]
    finally:
        stop.set()
        await asyncio.gather(*floods)
    assert max(during) < 2 * baseline + 1.0, (baseline, during)
    # The flooder was told to slow down (and her flooding sockets closed).
    assert any(f.get("code") == "rate_limited" for sock in loud for f in sock.find("error")) or any(
        sock.close_code == 4429 for sock in loud
    )
