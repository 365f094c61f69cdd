"""Tests of the test harness itself (tests/support), without the Django app."""

from __future__ import annotations

import json
import os
import secrets
import socket
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import redis
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.http11 import Request, Response

from tests import testenv
from tests.conftest import database_url
from tests.support import unique_name, wait_until
from tests.support.auth import LoginFailed, http_login
from tests.support.ports import free_port
from tests.support.redis_server import RedisServer
from tests.support.wsclient import (
    HandshakeRejected,
    ReplyView,
    RoomSocket,
    SocketClosed,
    follow_reply,
    origin_for,
)

pytestmark = pytest.mark.timeout(30)


# --- environment and small helpers ------------------------------------------------------------


def test_testenv_sets_defaults_without_redis() -> None:
    assert os.environ["DJANGO_DEBUG"] == "0"
    assert os.environ["DJANGO_SECRET_KEY"]
    assert os.environ["CHAT_RATE_PER_MINUTE"]
    assert "REDIS_URL" not in os.environ
    assert testenv.IN_PROCESS_REDIS_URL is None
    assert testenv.DATABASE_KIND in ("sqlite", "postgresql")


def test_free_port_is_bindable_and_never_repeated() -> None:
    ports = [free_port() for _ in range(20)]
    assert len(set(ports)) == len(ports)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", ports[0]))


def test_wait_until_returns_the_truthy_value_or_times_out() -> None:
    calls = iter([None, 0, "done"])
    assert wait_until(lambda: next(calls), timeout=5, interval=0) == "done"
    with pytest.raises(TimeoutError, match="the impossible"):
        wait_until(lambda: False, timeout=0.05, what="the impossible")


def test_unique_name_is_a_valid_slug() -> None:
    name = unique_name("room")
    assert name.startswith("room-") and name != unique_name("room")
    assert all(c.isdigit() or c.islower() or c == "-" for c in name)


def test_database_url_for_postgres_and_sqlite(tmp_path: Any) -> None:
    postgres = {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "test_roomchat_1_ab",
        "USER": "postgres",
        "PASSWORD": "p@ss/word",
        "HOST": "127.0.0.1",
        "PORT": 5432,
        "OPTIONS": {"sslmode": "disable"},
    }
    assert database_url(postgres) == (
        "postgres://postgres:p%40ss%2Fword@127.0.0.1:5432/test_roomchat_1_ab?sslmode=disable"
    )
    sqlite = {"ENGINE": "django.db.backends.sqlite3", "NAME": str(tmp_path / "t.sqlite3")}
    assert database_url(sqlite) == f"sqlite:///{tmp_path / 't.sqlite3'}"


# --- RedisServer --------------------------------------------------------------------------------


@pytest.fixture
def redis_proc() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


@pytest.mark.processes
def test_redis_server_is_private_and_answers(redis_proc: RedisServer) -> None:
    assert redis_proc.port != 6379
    assert redis_proc.url == f"redis://127.0.0.1:{redis_proc.port}/0"
    assert redis_proc.client().ping()


@pytest.mark.processes
def test_redis_kill_then_start_on_the_same_port_loses_data(redis_proc: RedisServer) -> None:
    port = redis_proc.port
    redis_proc.client().set("k", "v")
    redis_proc.kill()
    assert not redis_proc.running
    with pytest.raises(redis.ConnectionError):
        redis_proc.client().ping()
    redis_proc.start()
    assert redis_proc.port == port
    assert redis_proc.client().get("k") is None


@pytest.mark.processes
def test_redis_graceful_restart_loses_data_too(redis_proc: RedisServer) -> None:
    redis_proc.client().set("k", "v")
    assert redis_proc.stop() == 0
    redis_proc.start()
    assert redis_proc.client().dbsize() == 0


@pytest.mark.processes
def test_redis_context_manager_stops_and_cleans_up() -> None:
    with RedisServer() as server:
        assert server.running
    assert not server.running
    assert not server.workdir.exists()


# --- ReplyView: the SPEC §6 client algorithm ---------------------------------------------------


def delta(seq: int, text: str, message_id: int = 7) -> dict[str, Any]:
    return {"type": "generation.delta", "message_id": message_id, "seq": seq, "text": text}


def finished(text: str, message_id: int = 7) -> dict[str, Any]:
    return {
        "type": "generation.finished",
        "message_id": message_id,
        "status": "complete",
        "text": text,
    }


def snapshot(seq: int | None, text: str = "", message_id: int = 7) -> dict[str, Any]:
    generation = None if seq is None else {"message_id": message_id, "seq": seq, "text": text}
    return {"type": "room.snapshot", "messages": [], "generation": generation}


def test_reply_view_joins_deltas_in_order() -> None:
    view = ReplyView()
    frames = [
        snapshot(None),
        {"type": "generation.started", "message_id": 7, "model": "m"},
        delta(1, "Hel"),
        delta(1, "x", message_id=8),  # another reply: ignored
        delta(2, "lo"),
        finished("Hello"),
    ]
    assert not any(view.feed(f) for f in frames)
    assert view.message_id == 7
    assert view.check() == "Hello"


def test_reply_view_drops_deltas_covered_by_the_snapshot() -> None:
    view = ReplyView()
    for frame in [
        snapshot(2, "Hello"),
        delta(2, "lo"),
        delta(3, ", world"),
        finished("Hello, world"),
    ]:
        assert not view.feed(frame)
    assert view.dropped == 1
    assert view.check() == "Hello, world"


def test_reply_view_gap_asks_for_sync_and_a_snapshot_heals_it() -> None:
    view = ReplyView(7)
    assert not view.feed(delta(1, "a"))
    assert view.feed(delta(3, "c"))  # 2 is missing: sync
    assert not view.feed(delta(4, "d"))  # same gap: no second sync
    assert view.text == "a"
    assert not view.feed(snapshot(3, "abc"))
    assert view.text == "abcd"
    view.feed(finished("abcd"))
    assert view.gaps == 1
    assert view.check(allow_gaps=True) == "abcd"
    with pytest.raises(AssertionError, match="gap"):
        view.check()


def test_reply_view_reports_duplicates_and_disagreeing_snapshots() -> None:
    view = ReplyView(7)
    view.feed(delta(1, "a"))
    view.feed(delta(1, "a"))
    view.feed(snapshot(1, "z"))
    view.feed(finished("a"))
    assert view.duplicates == [1]
    assert view.mismatches
    with pytest.raises(AssertionError, match="duplicate"):
        view.check()


def test_reply_view_check_compares_with_finished_text() -> None:
    view = ReplyView(7)
    view.feed(delta(1, "a"))
    view.feed(finished("ab"))
    with pytest.raises(AssertionError, match=r"finished\.text"):
        view.check()


# --- RoomSocket against a scripted websocket server -------------------------------------------

Handler = Callable[[ServerConnection], Awaitable[None]]


@pytest.fixture
async def ws_server() -> AsyncIterator[Callable[[Handler], Awaitable[str]]]:
    """Start a websockets server running `handler`; refuses requests without Origin with 403."""
    servers: list[Server] = []

    def require_origin(connection: ServerConnection, request: Request) -> Response | None:
        if request.headers.get("Origin") != origin_for(f"ws://{request.headers['Host']}"):
            return connection.respond(HTTPStatus.FORBIDDEN, "bad origin\n")
        return None

    async def start(handler: Handler) -> str:
        server = await serve(handler, "127.0.0.1", 0, process_request=require_origin)
        servers.append(server)
        port = next(iter(server.sockets)).getsockname()[1]
        return f"ws://127.0.0.1:{port}"

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


async def test_room_socket_finds_frames_that_arrived_before_waiting(ws_server: Any) -> None:
    async def handler(conn: ServerConnection) -> None:
        assert conn.request is not None and conn.request.path == "/ws/rooms/lobby/"
        assert conn.request.headers["Cookie"] == "sessionid=abc"
        for n in range(3):
            await conn.send(json.dumps({"type": "tick", "n": n}))
        await conn.send(b"\x00binary")
        await conn.send(json.dumps({"type": "echo", "got": json.loads(await conn.recv())}))
        await conn.close(4403, "not allowed")

    url = await ws_server(handler)
    sock = await RoomSocket.connect(url, "lobby", cookie="abc")
    assert (await sock.wait_for("tick", n=1))["n"] == 1
    assert (await sock.wait_for("tick"))["n"] == 2  # cursor moved past n=1
    assert (await sock.wait_for("tick", since=0))["n"] == 0
    await sock.send({"type": "ping"})
    assert (await sock.wait_for("echo"))["got"] == {"type": "ping"}
    assert await sock.wait_closed(5) == 4403
    assert sock.close_reason == "not allowed"
    assert sock.bad_frames == [b"\x00binary"]
    assert sock.types() == ["tick", "tick", "tick", "echo"]
    with pytest.raises(SocketClosed, match="4403"):
        await sock.wait_for("never")


async def test_room_socket_wait_for_times_out_with_a_summary(ws_server: Any) -> None:
    async def handler(conn: ServerConnection) -> None:
        await conn.send(json.dumps({"type": "presence", "users": ["a"]}))
        await conn.wait_closed()

    async with await RoomSocket.connect(await ws_server(handler), "r") as sock:
        with pytest.raises(TimeoutError, match="presence"):
            await sock.wait_for("generation.finished", timeout=0.2)
        await sock.expect_silence(0.1, "presence", since=sock.mark())


async def test_room_socket_refused_handshake_carries_the_status(ws_server: Any) -> None:
    async def handler(conn: ServerConnection) -> None:
        await conn.wait_closed()

    url = await ws_server(handler)
    with pytest.raises(HandshakeRejected) as refused:
        await RoomSocket.connect(url, "r", origin=None)
    assert refused.value.status == 403
    with pytest.raises(HandshakeRejected):
        await RoomSocket.connect(url, "r", origin="http://evil.example")


async def test_follow_reply_syncs_on_a_gap_and_heals(ws_server: Any) -> None:
    async def handler(conn: ServerConnection) -> None:
        await conn.send(json.dumps(snapshot(None)))
        await conn.send(json.dumps({"type": "generation.started", "message_id": 7, "model": "m"}))
        await conn.send(json.dumps(delta(1, "He")))
        await conn.send(json.dumps(delta(3, "o")))  # seq 2 ("ll") is lost
        assert json.loads(await conn.recv()) == {"type": "sync"}
        await conn.send(json.dumps(snapshot(3, "Hello")))
        await conn.send(json.dumps(delta(4, "!")))
        await conn.send(json.dumps(finished("Hello!")))
        await conn.wait_closed()

    async with await RoomSocket.connect(await ws_server(handler), "r") as sock:
        view = await follow_reply(sock, timeout=5)
    assert (view.gaps, view.syncs_sent) == (1, 1)
    assert view.check(allow_gaps=True) == "Hello!"


async def test_follow_reply_syncs_after_silence(ws_server: Any) -> None:
    async def handler(conn: ServerConnection) -> None:
        await conn.send(json.dumps(delta(1, "a")))
        assert json.loads(await conn.recv()) == {"type": "sync"}
        await conn.send(json.dumps(snapshot(1, "a")))
        await conn.send(json.dumps(finished("a")))
        await conn.wait_closed()

    async with await RoomSocket.connect(await ws_server(handler), "r") as sock:
        view = await follow_reply(sock, 7, timeout=5, silence_sync=0.2)
    assert view.silence_syncs == 1
    assert view.check() == "a"


# --- http_login against a stand-in for Django's login view --------------------------------------


class _LoginHandler(BaseHTTPRequestHandler):
    """Django's flow in miniature: CSRF cookie + hidden input, Origin check, 302 + sessionid."""

    token = secrets.token_hex(8)

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        body = (
            f'<form method="post"><input type="hidden" name="csrfmiddlewaretoken" '
            f'value="{self.token}-masked"><input name="username"></form>'
        ).encode()
        self.send_response(200)
        self.send_header("Set-Cookie", f"csrftoken={self.token}; Path=/; SameSite=Lax")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        form = self.rfile.read(int(self.headers["Content-Length"])).decode()
        origin = f"http://{self.headers['Host']}"
        ok = (
            f"csrftoken={self.token}" in (self.headers["Cookie"] or "")
            and f"csrfmiddlewaretoken={self.token}-masked" in form
            and self.headers["Origin"] == origin
            and "password=right" in form
        )
        self.send_response(302 if ok else 200)
        if ok:
            self.send_header("Location", "/")
            self.send_header("Set-Cookie", "sessionid=s3ss10n; HttpOnly; Path=/")
        self.send_header("Content-Length", "0")
        self.end_headers()


@pytest.fixture
def login_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _LoginHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_http_login_follows_the_csrf_flow(login_server: str) -> None:
    cookies = http_login(login_server, "alice", "right")
    assert cookies["sessionid"] == "s3ss10n"
    assert cookies["csrftoken"] == _LoginHandler.token
    with pytest.raises(LoginFailed, match="answered 200"):
        http_login(login_server, "alice", "wrong")
