"""Database connections stay bounded under ASGI and survive a PostgreSQL restart (issue 16).

Under ASGI each sync_to_async thread (one per concurrent HTTP request, the consumers' database
thread, the health check's) would hold a connection of its own; `DATABASE_POOL_MAX` bounds a
process through Django's psycopg pool. This test serves a real daphne process from a throwaway
PostgreSQL cluster of its own (never the shared server, which it restarts), drives hundreds of
sockets, replies and HTTP requests through it, and samples pg_stat_activity the whole time.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import threading
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
import pytest

from tests import testenv
from tests.conftest import WsConnect
from tests.support import REPO_ROOT, python_executable, wait_until
from tests.support.auth import http_request
from tests.support.daphne import DaphneProcess, http_status
from tests.support.postgres_server import PostgresServer, postgres_bindir
from tests.support.redis_server import RedisServer
from tests.support.wsclient import RoomSocket, follow_reply

pytestmark = [pytest.mark.processes, pytest.mark.timeout(300)]

POOL_MAX = 4
APP_NAME = "roomchat-pool-test"  # what the server's connections call themselves
USERS, ROOMS, TABS_PER_ROOM, ROUNDS = 10, 20, 10, 3  # 200 sockets, 60 replies

# Users, their rooms and a session each, made by the app's own ORM in the test's cluster.
SETUP = """
import json
from django.contrib.auth import get_user_model
from django.test import Client
from chatsite.rooms.models import Room
users, rooms = {users}, {rooms}
people = [get_user_model().objects.create_user(f"pool{i}", password=None) for i in range(users)]
cookies = []
for person in people:
    client = Client()
    client.force_login(person)
    cookies.append(client.cookies["sessionid"].value)
slugs = []
for i in range(rooms):
    room = Room.objects.create(slug=f"pool-{i}", title=f"Pool {i}", owner=people[i % users])
    slugs.append(room.slug)
print(json.dumps({"cookies": cookies, "slugs": slugs}))
"""


@pytest.fixture
def own_postgres() -> Iterator[PostgresServer]:
    if postgres_bindir() is None:
        message = "PostgreSQL's server binaries are missing (apt-get install postgresql)"
        if testenv.ON_CI:
            pytest.fail(message)
        pytest.skip(message)
    server = PostgresServer(max_connections=100).start()
    yield server
    server.close()


class ConnectionSampler:
    """Counts the server's connections (by application_name) every few ms in a thread."""

    def __init__(self, pg: PostgresServer) -> None:
        self.pg = pg
        self.samples: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pg sampler", daemon=True)

    def __enter__(self) -> ConnectionSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    @property
    def peak(self) -> int:
        return max(self.samples, default=0)

    def _run(self) -> None:
        conn: psycopg.Connection[tuple[object, ...]] | None = None
        while not self._stop.is_set():
            try:
                if conn is None:
                    conn = self.pg.connect()
                row = conn.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s",
                    (APP_NAME,),
                ).fetchone()
                assert row is not None
                self.samples.append(int(str(row[0])))
            except psycopg.Error:
                conn = None  # the cluster restarts: reconnect when it is back
            self._stop.wait(0.005)
        if conn is not None:
            conn.close()


def manage(env: Mapping[str, str], *args: str) -> str:
    result = subprocess.run(
        [python_executable(), "manage.py", *args],
        cwd=REPO_ROOT,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


async def open_tabs(
    ws_connect: WsConnect, url: str, slugs: list[str], cookies: list[str]
) -> dict[str, list[RoomSocket]]:
    """TABS_PER_ROOM sockets in each room, spread over the users, each past its snapshot."""

    async def tab(slug: str, cookie: str) -> RoomSocket:
        sock = await ws_connect(url, slug, cookie)
        await sock.wait_for("room.snapshot", timeout=60)
        return sock

    plan = [
        (slug, cookies[(r * TABS_PER_ROOM + t) % len(cookies)])
        for r, slug in enumerate(slugs)
        for t in range(TABS_PER_ROOM)
    ]
    socks = await asyncio.gather(*(tab(slug, cookie) for slug, cookie in plan))
    rooms: dict[str, list[RoomSocket]] = {slug: [] for slug in slugs}
    for (slug, _), sock in zip(plan, socks, strict=True):
        rooms[slug].append(sock)
    return rooms


async def one_round(rooms: dict[str, list[RoomSocket]], text: str) -> None:
    """A message in every room at once; every tab of every room sees the reply complete."""
    marks = {slug: [sock.mark() for sock in socks] for slug, socks in rooms.items()}
    for slug, socks in rooms.items():
        await socks[0].send({"type": "message.send", "text": f"{text} in {slug}"})

    async def follow(sock: RoomSocket, mark: int) -> str:
        view = await follow_reply(sock, since=mark, timeout=90)
        assert view.finished is not None and view.finished["status"] == "complete", view
        return view.check()

    for slug, socks in rooms.items():
        texts = await asyncio.gather(
            *(follow(sock, mark) for sock, mark in zip(socks, marks[slug], strict=True))
        )
        assert len(set(texts)) == 1 and f"{text} in {slug}"[:40] in texts[0]


def hammer_http(base: str, cookies: list[str], slugs: list[str], count: int) -> list[int]:
    """`count` concurrent page and API requests (each a sync_to_async thread in the server)."""

    def get(i: int) -> int:
        path = f"/api/rooms/{slugs[i % len(slugs)]}/messages" if i % 2 else "/"
        cookie = {"sessionid": cookies[i % len(cookies)]}
        return http_request("GET", base + path, cookies=cookie, timeout=60).status

    with ThreadPoolExecutor(max_workers=32) as pool:
        return list(pool.map(get, range(count)))


async def test_connections_stay_within_the_pool_under_load_and_survive_a_restart(
    own_postgres: PostgresServer,
    private_redis: RedisServer,
    server_env: Mapping[str, str],
    ws_connect: WsConnect,
    tmp_path: Path,
) -> None:
    own_postgres.create_database("pooltest")
    base_env = {
        **server_env,
        "REDIS_URL": private_redis.url,
        "LLM_PROVIDER": "demo",
        "DEMO_WORDS_PER_SECOND": "150",  # replies overlap: about half a second each
        "DATABASE_POOL_MAX": str(POOL_MAX),
        "DATABASE_POOL_TIMEOUT": "30",
    }
    setup_env = {**base_env, "DATABASE_URL": own_postgres.url("pooltest")}
    manage(setup_env, "migrate", "--noinput")
    script = SETUP.replace("{users}", str(USERS)).replace("{rooms}", str(ROOMS))
    printed = manage(setup_env, "shell", "-c", script).strip().splitlines()
    made = json.loads(printed[-1])
    cookies, slugs = made["cookies"], made["slugs"]
    env = {**base_env, "DATABASE_URL": own_postgres.url("pooltest", application_name=APP_NAME)}

    server = DaphneProcess(env, name="pool", log_dir=tmp_path).start()
    try:
        with ConnectionSampler(own_postgres) as sampler:
            rooms = await open_tabs(ws_connect, server.ws_url, slugs, cookies)
            assert sum(len(socks) for socks in rooms.values()) == ROOMS * TABS_PER_ROOM
            http = asyncio.create_task(
                asyncio.to_thread(hammer_http, server.url, cookies, slugs, 300)
            )
            for n in range(ROUNDS):
                await one_round(rooms, f"round {n}")
            assert set(await http) == {200}
            before_restart = sampler.peak

            # PostgreSQL restarts (a Heroku maintenance, a failover): every connection is cut.
            own_postgres.restart()
            await asyncio.to_thread(
                wait_until,
                lambda: http_status(f"{server.url}/healthz", timeout=5)[0] == 200,
                timeout=30,
                interval=0.2,
                what="/healthz after the restart",
            )
            await one_round(rooms, "after the restart")
            assert set(await asyncio.to_thread(hammer_http, server.url, cookies, slugs, 60)) == {
                200
            }
            assert server.running, server.log_tail()
        print(
            f"peak connections {sampler.peak} (before restart {before_restart}); samples {len(sampler.samples)}"
        )
        # The load wanted more than the pool (32 concurrent requests, 20 replies at once): it
        # reached the bound, and the bound held, before and after the restart.
        assert before_restart == POOL_MAX and sampler.peak == POOL_MAX, sampler.samples
        assert len(sampler.samples) > 100  # it watched the whole run
        # Every reply is stored: the API serves each room's rounds, complete.
        for slug in slugs:
            page = http_request(
                "GET",
                f"{server.url}/api/rooms/{slug}/messages?limit=200",
                cookies={"sessionid": cookies[0]},
            )
            messages = json.loads(page.body)["messages"]
            replies = [
                m for m in messages if m.get("status") == "complete" and m.get("role") != "user"
            ]
            assert len(replies) >= ROUNDS + 1, (slug, messages[-2:])
    finally:
        server.stop()
