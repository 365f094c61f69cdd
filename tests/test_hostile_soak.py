"""Soak (issue 12): a bounded mix of hostile clients against two real daphne processes while
honest tabs talk and stream. Afterwards: the honest tabs lost nothing, each process's memory is
back within 10 % of where it began, no traceback reached the logs, every room still works.

Bounded for CI: SOAK_SECONDS (default 100) of attack after a short warm-up.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import time
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chatsite.rooms.models import Message, Room
from tests.conftest import DaphnePair
from tests.support import unique_name, wait_until
from tests.support.auth import create_user, session_cookie
from tests.support.daphne import DaphneProcess
from tests.support.hostile import DeafSocket, rss_bytes
from tests.support.wsclient import HandshakeRejected, RoomSocket, follow_reply

SOAK_SECONDS = float(os.environ.get("SOAK_SECONDS", "100"))
WARM_UP_SECONDS = 15.0
pytestmark = pytest.mark.timeout(int(SOAK_SECONDS * 2 + 240))


@pytest.fixture(scope="module")
def server_env(server_env: Mapping[str, str]) -> Mapping[str, str]:
    return MappingProxyType(
        {**server_env, "REDIS_KEY_PREFIX": unique_name("soak"), "CHAT_RATE_PER_MINUTE": "60"}
    )


def fuzz_frames(count: int) -> list[str]:
    """Frames from Hypothesis: the frame types of SPEC §6 with any JSON in their fields."""
    values = st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
        max_leaves=8,
    )
    kinds = st.sampled_from(
        ["message.send", "generation.stop", "sync", "room.update", "member.add",
         "member.remove", "invite.create", "generation.regenerate", "reaction.toggle",
         "typing", "nope"]
    )  # fmt: skip
    names = ["text", "client_msg_id", "message_id", "title", "model", "private", "username"]
    frame = st.fixed_dictionaries(
        {"type": kinds}, optional={name: values for name in [*names, "emoji", "reply_mode"]}
    )
    out: list[str] = []

    @settings(max_examples=count, database=None, suppress_health_check=list(HealthCheck))
    @given(frame)
    def collect(value: dict[str, Any]) -> None:
        out.append(json.dumps(value))

    collect()
    return out


@sync_to_async
def people_and_rooms(rooms: int) -> tuple[list[str], list[str], list[str]]:
    """Honest cookies (a reader, then one writer per room, each well within the message
    limit), hostile cookies (three), and the rooms' slugs."""
    honest = [create_user(unique_name(n), password=None) for n in ["ben"] + ["ann"] * rooms]
    hostile = [create_user(unique_name("mal"), password=None) for _ in range(3)]
    slugs = []
    for i in range(rooms):
        room = Room.objects.create(slug=unique_name("soak"), title=f"Soak {i}", owner=honest[0])
        slugs.append(room.slug)
    return [session_cookie(u) for u in honest], [session_cookie(u) for u in hostile], slugs


class Attack:
    """The hostile clients, each a loop until `until` (loop time)."""

    def __init__(self, pair: DaphnePair, slugs: list[str], cookies: list[str], until: float):
        self.pair = pair
        self.slugs = slugs
        self.cookies = cookies
        self.until = until
        self.fuzz = fuzz_frames(150)
        self.rng = random.Random(12)
        self.counts: dict[str, int] = {}

    def _going(self) -> bool:
        return asyncio.get_running_loop().time() < self.until

    def _pick(self) -> tuple[DaphneProcess, str, str]:
        return (
            self.rng.choice(list(self.pair)),
            self.rng.choice(self.slugs),
            self.rng.choice(self.cookies),
        )

    def _count(self, what: str) -> None:
        self.counts[what] = self.counts.get(what, 0) + 1

    async def _open(self) -> RoomSocket | None:
        server, slug, cookie = self._pick()
        try:
            return await RoomSocket.connect(server.ws_url, slug, cookie, open_timeout=15)
        except (HandshakeRejected, OSError, TimeoutError):
            self._count("handshake failed")
            return None

    async def deaf(self) -> None:
        """Sockets that ask for snapshots and never read, until the server drops them."""
        while self._going():
            server, slug, cookie = self._pick()
            sock = await asyncio.to_thread(DeafSocket, server.port, f"/ws/rooms/{slug}/", cookie)
            try:
                while self._going() and await asyncio.to_thread(sock.send, {"type": "sync"}):
                    await asyncio.sleep(0.05)
                self._count("deaf dropped")
            finally:
                sock.close()

    async def sync_flood(self) -> None:
        while self._going():
            sock = await self._open()
            if sock is None:
                await asyncio.sleep(0.5)
                continue
            with contextlib.suppress(Exception):
                for _ in range(100):
                    await sock.send({"type": "sync"})
                await asyncio.sleep(1.0)
            await sock.close()
            self._count("sync floods")

    async def churn(self) -> None:
        """Connect, send something, vanish (half of them without a close frame)."""
        while self._going():
            sock = await self._open()
            if sock is None:
                await asyncio.sleep(0.5)
                continue
            with contextlib.suppress(Exception):
                await sock.send({"type": "typing"})
                await asyncio.sleep(self.rng.random() * 0.3)
            if self.rng.random() < 0.5:
                sock.conn.transport.abort()
            await sock.close()
            self._count("churn")

    async def oversized(self) -> None:
        while self._going():
            sock = await self._open()
            if sock is None:
                await asyncio.sleep(0.5)
                continue
            with contextlib.suppress(Exception):
                await sock.send_raw('{"type":"sync","pad":"' + "x" * 70_000 + '"}')
                await sock.send_raw("[" * 60_000)
                await sock.send_raw(b"\x00" * 1000)
                await sock.send_raw('{"type":"message.send","text":"' + "y" * 1_100_000 + '"}')
                await asyncio.sleep(0.5)
            await sock.close()
            self._count("oversized")

    async def fuzzer(self) -> None:
        while self._going():
            sock = await self._open()
            if sock is None:
                await asyncio.sleep(0.5)
                continue
            with contextlib.suppress(Exception):
                for raw in self.rng.sample(self.fuzz, 30):
                    await sock.send_raw(raw)
                    await asyncio.sleep(0.02)
            await sock.close()
            self._count("fuzz rounds")

    async def run(self) -> None:
        jobs: list[Callable[[], Any]] = [
            self.deaf, self.deaf, self.sync_flood, self.churn, self.churn,
            self.oversized, self.fuzzer, self.fuzzer,
        ]  # fmt: skip
        await asyncio.gather(*(job() for job in jobs))


class HonestRoom:
    """Two tabs of one room (one per process); one of them writes, both follow each reply."""

    def __init__(self, pair: DaphnePair, slug: str, cookies: list[str]) -> None:
        self.pair = pair
        self.slug = slug
        self.cookies = cookies
        self.tabs: list[RoomSocket] = []
        self.sent = 0
        self.replies: dict[int, str] = {}  # reply id → the text both tabs assembled

    async def open(self) -> None:
        for server, cookie in zip(self.pair, self.cookies, strict=True):
            tab = await RoomSocket.connect(server.ws_url, self.slug, cookie)
            await tab.wait_for("room.snapshot")
            self.tabs.append(tab)

    async def talk(self, until: float) -> None:
        loop = asyncio.get_running_loop()
        while loop.time() < until:
            marks = [tab.mark() for tab in self.tabs]
            cid = f"{self.slug}-{self.sent}"
            await self.tabs[0].send(
                {"type": "message.send", "text": f"hello {cid}", "client_msg_id": cid}
            )
            self.sent += 1
            for tab, mark in zip(self.tabs, marks, strict=True):
                created = await tab.wait_for(
                    None,
                    since=mark,
                    timeout=30,
                    where=_created_or_refused(cid),
                )
                assert created["type"] == "message.created", f"refused: {created}"
                assert created["message"]["text"] == f"hello {cid}"
            views = await asyncio.gather(
                *(
                    follow_reply(tab, since=mark, timeout=60)
                    for tab, mark in zip(self.tabs, marks, strict=True)
                )
            )
            # Hostile people may stop a reply (a public room lets them): any ending will do,
            # as long as both tabs hold exactly what the database will.
            texts = {view.check(allow_gaps=True) for view in views}
            ids = {view.message_id for view in views}
            assert len(texts) == 1 and len(ids) == 1, (texts, ids)
            self.replies[ids.pop() or 0] = texts.pop()
            await asyncio.sleep(1.0)

    async def close(self) -> None:
        for tab in self.tabs:
            assert not tab.closed, f"an honest tab was closed: {tab.close_code}"
            await tab.close()


@sync_to_async
def stored_texts(ids: list[int]) -> dict[int, str]:
    return dict(Message.objects.filter(pk__in=ids).values_list("pk", "text"))


async def room_still_works(pair: DaphnePair, slug: str, cookie: str) -> None:
    for server in pair:
        tab = await RoomSocket.connect(server.ws_url, slug, cookie)
        try:
            await tab.wait_for("room.snapshot", timeout=20)
        finally:
            await tab.close()


async def test_hostile_mix_leaves_honest_tabs_whole_and_processes_as_they_were(
    daphne_pair: DaphnePair,
) -> None:
    honest, hostile, slugs = await people_and_rooms(3)
    offsets = [server.log_size() for server in daphne_pair]
    loop = asyncio.get_running_loop()

    # Warm-up: every kind of traffic once, so caches and pools exist before the baseline.
    rooms = [
        HonestRoom(daphne_pair, slug, [writer, honest[0]])
        for slug, writer in zip(slugs, honest[1:], strict=True)
    ]
    await asyncio.gather(*(room.open() for room in rooms))
    warm_until = loop.time() + WARM_UP_SECONDS
    await asyncio.gather(
        Attack(daphne_pair, slugs, hostile, warm_until).run(),
        *(room.talk(warm_until) for room in rooms),
    )
    pids = [server.pid or 0 for server in daphne_pair]
    baseline = [rss_bytes(pid) for pid in pids]

    until = loop.time() + SOAK_SECONDS
    attack = Attack(daphne_pair, slugs, hostile, until)
    started = time.monotonic()
    await asyncio.gather(attack.run(), *(room.talk(until) for room in rooms))
    assert time.monotonic() - started < SOAK_SECONDS + 90
    assert attack.counts.get("deaf dropped", 0) >= 1, attack.counts

    # Honest tabs lost nothing: each reply they followed is what the database holds.
    for room in rooms:
        await room.close()
        assert await stored_texts(list(room.replies)) == room.replies
        assert room.sent >= 3
    # Every room still opens on both processes.
    for slug in slugs:
        await room_still_works(daphne_pair, slug, honest[0])

    # Memory back within 10 % of the baseline once the attackers are gone.
    for pid, base in zip(pids, baseline, strict=True):

        def settled(pid: int = pid, base: int = base) -> bool:
            return rss_bytes(pid) <= base * 1.10

        await asyncio.to_thread(
            wait_until, settled, timeout=30, interval=0.5, what=f"RSS of {pid} back to {base}"
        )
    for server, offset in zip(daphne_pair, offsets, strict=True):
        log = server.log_since(offset)
        assert "Traceback" not in log and "Exception inside application" not in log, log[-5000:]


def _created_or_refused(cid: str) -> Callable[[dict[str, Any]], bool]:
    """Our `message.created` with this client_msg_id, or any `error` (a refusal)."""

    def matches(frame: dict[str, Any]) -> bool:
        if frame["type"] == "error":
            return True
        return frame["type"] == "message.created" and frame["message"]["client_msg_id"] == cid

    return matches
