"""Fixtures for in-process consumer tests that talk to the fake model servers.

Copied in spirit from tests/test_room_consumer.py, plus the Heroku (OpenAI-style) fake. A test
module takes the fixtures with `from tests.consumer_fixtures import *  # noqa: F403` (pytest
finds fixtures in the module's namespace) and imports the helpers (`Tab`, `Connect`,
`make_user`) by name.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.layers import channel_layers
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import User
from django.test import Client

from chatsite.asgi import application
from chatsite.llm.registry import get_provider
from chatsite.rooms.models import Room
from consumers import current
from consumers.process import ProcessConfig, RoomchatProcess
from tests.fakes import FakeAnthropic, FakeOpenAI

__all__ = [
    "alice",
    "bob",
    "connect",
    "fake_openai",
    "fresh_process",
    "room",
    "use_demo",
    "use_fake_anthropic",
    "use_fake_heroku",
]

TIMEOUT = 10
INFERENCE_MODEL_ID = "claude-5-5-sonnet"  # Heroku's name for claude-sonnet-5-5 (family last)
INFERENCE_KEY = "inference-test-key"


async def stop_process(process: RoomchatProcess) -> None:
    """Like SIGTERM (running replies end as interrupted), then wait for the database work the
    process already handed to the database thread.

    Stopping cancels the loops' tasks, not a query one of them is running in that thread (the
    reaper's, say). pytest-django's flush comes next and TRUNCATEs every table: on PostgreSQL a
    reaper query still running deadlocked with it. A no-op sent to the same thread returns once
    that query is done.
    """
    await process.runner.shutdown(timeout=5)
    process.stop()
    await sync_to_async(lambda: None)()  # the database thread; no DB access of its own


@contextlib.asynccontextmanager
async def fresh_process_state() -> AsyncIterator[RoomchatProcess]:
    """A fresh server process inside, from the settings as they are now, started on this
    test's event loop; a fresh channel layer and provider too."""
    channel_layers.backends = {}
    get_provider.cache_clear()
    process = RoomchatProcess(ProcessConfig.from_settings())
    current.install(process)
    process.start()
    yield process
    await stop_process(process)
    current.install(None)
    get_provider.cache_clear()


@pytest.fixture(autouse=True)
async def fresh_process() -> AsyncIterator[RoomchatProcess]:
    """Each test is a fresh server process (`consumers.process.RoomchatProcess`)."""
    async with fresh_process_state() as process:
        yield process


@pytest.fixture(scope="session")
def fake_openai() -> Iterator[FakeOpenAI]:
    """The fake OpenAI-style API (Heroku Managed Inference), one per module that imports it."""
    fake = FakeOpenAI()
    fake.start()
    yield fake
    fake.stop()


@pytest.fixture
def use_fake_anthropic(settings: Any, fake_anthropic: FakeAnthropic) -> FakeAnthropic:
    """LLM_PROVIDER=anthropic against the fake, from its default behaviour."""
    fake_anthropic.reset()  # conftest resets it only for tests that name it directly
    settings.LLM_PROVIDER = "anthropic"
    settings.ANTHROPIC_API_KEY = "test-key"
    settings.ANTHROPIC_BASE_URL = fake_anthropic.base_url
    get_provider.cache_clear()
    return fake_anthropic


@pytest.fixture
def use_fake_heroku(settings: Any, fake_openai: FakeOpenAI) -> FakeOpenAI:
    """LLM_PROVIDER=heroku against the OpenAI-style fake, as `heroku ai:models:create` sets it."""
    fake_openai.reset()
    settings.LLM_PROVIDER = "heroku"
    settings.INFERENCE_URL = fake_openai.base_url
    settings.INFERENCE_KEY = INFERENCE_KEY
    settings.INFERENCE_MODEL_ID = INFERENCE_MODEL_ID
    get_provider.cache_clear()
    return fake_openai


@pytest.fixture
def use_demo(settings: Any) -> None:
    settings.LLM_PROVIDER = "demo"
    get_provider.cache_clear()


def make_user(name: str) -> tuple[User, str]:
    """A user and the value of a signed-in `sessionid` cookie."""
    user = User.objects.create_user(name, password="pw-secret-123")
    client = Client()
    client.force_login(user)
    return user, client.cookies["sessionid"].value


@pytest.fixture
def alice() -> tuple[User, str]:
    return make_user("alice")


@pytest.fixture
def bob() -> tuple[User, str]:
    return make_user("bob")


@pytest.fixture
def room(alice: tuple[User, str]) -> Room:
    return Room.objects.create(
        slug="lounge", title="Lounge", owner=alice[0], model="claude-sonnet-5-5"
    )


class Tab:
    """A connected tab: every frame it received, in order."""

    def __init__(self, comm: WebsocketCommunicator) -> None:
        self.comm = comm
        self.frames: list[dict[str, Any]] = []

    async def send(self, frame: dict[str, Any]) -> None:
        await self.comm.send_to(text_data=json.dumps(frame))

    async def say(self, text: str) -> None:
        """Send a chat message."""
        await self.send({"type": "message.send", "text": text})

    async def next(self, timeout: float = TIMEOUT) -> dict[str, Any]:
        frame = json.loads(await self.comm.receive_from(timeout=timeout))
        self.frames.append(frame)
        return frame

    async def until(self, kind: str, timeout: float = TIMEOUT, **fields: Any) -> dict[str, Any]:
        """Read frames until one of `kind` (with these field values) arrives."""
        async with asyncio.timeout(timeout):
            while True:
                frame = await self.next(timeout)
                if frame["type"] == kind and all(frame.get(k) == v for k, v in fields.items()):
                    return frame

    async def quiet(self, seconds: float = 0.3) -> bool:
        """True when nothing arrives for `seconds`."""
        return bool(await self.comm.receive_nothing(timeout=seconds))

    def deltas(self, message_id: int) -> list[dict[str, Any]]:
        return [
            f
            for f in self.frames
            if f["type"] == "generation.delta" and f["message_id"] == message_id
        ]

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [f for f in self.frames if f["type"] == kind]

    async def reply(self, text: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """Send `text`; its reply's `generation.finished` and the frames of that reply."""
        start = len(self.frames)
        await self.say(text)
        reply_id = (await self.until("generation.started"))["message_id"]
        finished = await self.until("generation.finished", message_id=reply_id)
        return finished, [f for f in self.frames[start:] if f.get("message_id") == reply_id]


Connect = Callable[..., Any]


@pytest.fixture
async def connect() -> AsyncIterator[Connect]:
    """`await connect(slug, sessionid)`: a joined Tab (snapshot and presence read).

    `join=False` returns the tab right after the handshake (to read a close code).
    """
    comms: list[WebsocketCommunicator] = []

    async def open_tab(
        slug: str, sessionid: str | None, origin: str | None = "http://127.0.0.1", join: bool = True
    ) -> Tab:
        headers = []
        if origin:
            headers.append((b"origin", origin.encode()))
        if sessionid:
            headers.append((b"cookie", f"sessionid={sessionid}".encode()))
        comm = WebsocketCommunicator(application, f"/ws/rooms/{slug}/", headers=headers)
        comms.append(comm)
        tab = Tab(comm)
        connected, _ = await comm.connect(timeout=TIMEOUT)
        assert connected
        if join:
            assert (await tab.next())["type"] == "room.snapshot"
            assert (await tab.next())["type"] == "presence"
        return tab

    yield open_tab
    for comm in comms:
        try:
            await comm.disconnect(timeout=2)
        except Exception:
            pass


async def summaries_idle() -> None:
    """Wait for this process's background folds to end."""
    await current.current_process().summarizer.idle()
