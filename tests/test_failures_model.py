"""When the model fails: retries before the first token, errors after it, the circuit breaker
and the fallback model (SPEC §6 "One reply's frames", docs/operations.md).

Process tests: two real daphne processes (A runs the reply, B serves another tab), the real
`anthropic` SDK against the fake Anthropic API, the session's private Redis under a key prefix
of this module's own (the breaker is shared state: other modules must not see it open).
In-process tests (the breaker's arithmetic, the fallback, failures before the first token) use
the consumer with the in-memory layer, where a failure costs milliseconds, not a process.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from typing import Any

import pytest
from asgiref.sync import sync_to_async

from chatsite.llm.registry import get_provider
from chatsite.rooms.models import Message, Room
from consumers.state import shared_state
from consumers.state.breaker import MemoryBreakerState
from tests import consumer_fixtures
from tests.conftest import DaphneFactory, DaphnePair, WsConnect, ready_pair, running_pair
from tests.consumer_fixtures import Connect, Tab, fresh_process_state
from tests.fakes import Fail, Reply
from tests.fakes.anthropic_api import FakeAnthropic
from tests.support import unique_name
from tests.support.auth import create_user, session_cookie
from tests.support.daphne import DaphneProcess
from tests.support.people import People, join, make_people
from tests.support.redis_server import RedisServer
from tests.support.wsclient import RoomSocket, follow_reply

pytestmark = pytest.mark.timeout(60)

MODEL = "claude-sonnet-5-5"
FALLBACK = "claude-haiku-5-5"
STALL_TIMEOUT = 1.0  # LLM_STALL_TIMEOUT of this module's processes


def words(prefix: str, count: int) -> list[str]:
    """Distinct chunks, so a lost, repeated or reordered delta shows in the text."""
    return [f"{prefix}{i} " for i in range(count)]


# --- processes ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def _model_processes(
    server_env: Mapping[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DaphnePair]:
    env = {
        **server_env,
        "LLM_STALL_TIMEOUT": str(STALL_TIMEOUT),
        # Failures of one test must not open the breaker for the next: the breaker has its
        # own test below, with its own processes.
        "LLM_BREAKER_FAILURES": "1000",
        "REDIS_KEY_PREFIX": unique_name("failures-model"),
    }
    with running_pair(env, tmp_path_factory.mktemp("daphne-failures-model")) as pair:
        yield pair


@pytest.fixture
def pair(request: pytest.FixtureRequest, _model_processes: DaphnePair) -> DaphnePair:
    """Two processes with LLM_STALL_TIMEOUT=1 and the breaker out of the way."""
    return ready_pair(request, _model_processes)


async def two_tabs(
    pair: DaphnePair, ws_connect: WsConnect, unique: Callable[[str], str]
) -> tuple[People, RoomSocket, RoomSocket]:
    """alice's tab on A (where the reply runs), bob's on B."""
    people = await make_people(unique, title="Failures")
    a = await join(ws_connect, pair.a.ws_url, people.slug, people.alice_cookie)
    b = await join(ws_connect, pair.b.ws_url, people.slug, people.bob_cookie)
    return people, a, b


def frame_time(sock: RoomSocket, frame: dict[str, Any]) -> float:
    return sock.times[next(i for i, f in enumerate(sock.frames) if f is frame)]


# --- retries before the first token (processes) ----------------------------------------------


async def test_rate_limited_then_answered_after_retry_after(
    pair: DaphnePair, fake_anthropic: FakeAnthropic, ws_connect: WsConnect, unique: Any
) -> None:
    fake_anthropic.queue(Fail(429, retry_after=0.6), Reply(chunks=words("r", 8)))
    _, a, b = await two_tabs(pair, ws_connect, unique)
    since_a, since_b = a.mark(), b.mark()
    await a.send({"type": "message.send", "text": "hello"})

    started = await b.wait_for("generation.started", since=since_b)
    reply_id = started["message_id"]
    retrying = await b.wait_for("generation.retrying", since=since_b)
    assert retrying == {
        "type": "generation.retrying",
        "message_id": reply_id,
        "attempt": 2,
        "retry_in": retrying["retry_in"],
        "reason": "rate_limited",
        "model": MODEL,
    }
    assert retrying["retry_in"] >= 0.6  # never sooner than the server's retry-after
    views = [
        await follow_reply(sock, reply_id, since=since)
        for sock, since in ((a, since_a), (b, since_b))
    ]
    texts = {view.check() for view in views}
    assert texts == {"".join(words("r", 8))}
    for view in views:
        assert view.finished is not None and view.finished["status"] == "complete"
    first_delta = b.find("generation.delta", since=since_b, message_id=reply_id)[0]
    # The retry really waited: the first token left at least retry_in after the notice.
    assert frame_time(b, first_delta) - frame_time(b, retrying) >= retrying["retry_in"] - 0.05
    assert len(fake_anthropic.requests) == 2
    stored = await Message.objects.aget(pk=reply_id)
    assert (stored.status, stored.text) == ("complete", "".join(words("r", 8)))


async def test_overloaded_twice_then_answered(
    pair: DaphnePair, fake_anthropic: FakeAnthropic, ws_connect: WsConnect, unique: Any
) -> None:
    fake_anthropic.queue(Fail(529), Fail(529), Reply(chunks=words("o", 6)))
    _, a, b = await two_tabs(pair, ws_connect, unique)
    since = b.mark()
    await a.send({"type": "message.send", "text": "busy?"})
    reply_id = (await b.wait_for("generation.started", since=since))["message_id"]
    view = await follow_reply(b, reply_id, since=since)
    assert view.check() == "".join(words("o", 6))
    retries = b.find("generation.retrying", since=since, message_id=reply_id)
    assert [(r["attempt"], r["reason"]) for r in retries] == [(2, "overloaded"), (3, "overloaded")]
    # Exponential with jitter from LLM_RETRY_BASE_DELAY (0.05 s here): half to all of the
    # doubling ceiling, 0.05 s before attempt 2 and 0.1 s before attempt 3.
    assert pair.a.env["LLM_RETRY_BASE_DELAY"] == "0.05"
    ceilings = {2: 0.05, 3: 0.1}
    for retry in retries:
        ceiling = ceilings[retry["attempt"]]
        assert ceiling / 2 <= retry["retry_in"] <= ceiling, retry
    # Retrying frames come only before the first delta.
    kinds = b.types(since)
    assert kinds.index("generation.delta") > max(
        i for i, k in enumerate(kinds) if k == "generation.retrying"
    )
    assert len(fake_anthropic.requests) == 3


async def test_a_refused_key_is_a_configuration_error_not_retried(
    pair: DaphnePair, fake_anthropic: FakeAnthropic, ws_connect: WsConnect, unique: Any
) -> None:
    fake_anthropic.queue(Fail(401))
    _, a, b = await two_tabs(pair, ws_connect, unique)
    log_offset = pair.a.log_size()
    since = b.mark()
    await a.send({"type": "message.send", "text": "anyone?"})
    reply_id = (await b.wait_for("generation.started", since=since))["message_id"]
    finished = await b.wait_for("generation.finished", since=since, message_id=reply_id)
    assert finished["status"] == "error" and finished["text"] == ""
    assert finished["error"]["code"] == "configuration"
    assert "misconfigured" in finished["error"]["message"]
    assert not b.find("generation.retrying", since=since)
    assert len(fake_anthropic.requests) == 1
    stored = await Message.objects.aget(pk=reply_id)
    assert (stored.status, stored.error_code) == ("error", "configuration")
    # Operators read what happened; nobody reads the key.
    log = pair.a.log_since(log_offset)
    [line] = [ln for ln in log.splitlines() if "refused by the model" in ln]
    record = json.loads(line)  # one JSON object a line (LOG_FORMAT=json with debug off)
    assert record["level"] == "ERROR" and "401" in record["message"]
    assert "test-key" not in log
    assert all("test-key" not in json.dumps(f) for f in b.frames)


# --- failures after the first token (processes) ----------------------------------------------


@pytest.mark.parametrize("ending", ["error", "cut", "stall", "truncate"])
async def test_a_stream_breaking_after_the_first_token_keeps_the_partial_text(
    pair: DaphnePair,
    fake_anthropic: FakeAnthropic,
    ws_connect: WsConnect,
    unique: Any,
    ending: Any,
) -> None:
    """SSE `error` event, connection cut, stall past LLM_STALL_TIMEOUT, end without
    message_stop: the reply ends `error`/`upstream_error` with the text that was streamed."""
    chunks = words("p", 12)
    fake_anthropic.queue(Reply(chunks=chunks, delay=0.01, then=ending, after=5))
    _, a, b = await two_tabs(pair, ws_connect, unique)
    since_a, since_b = a.mark(), b.mark()
    await a.send({"type": "message.send", "text": f"please {ending}"})
    reply_id = (await b.wait_for("generation.started", since=since_b))["message_id"]
    partial = "".join(chunks[:5])
    for sock, since in ((a, since_a), (b, since_b)):
        view = await follow_reply(sock, reply_id, since=since)
        assert view.check() == partial  # finished.text == the joined deltas
        assert view.finished is not None
        assert view.finished["status"] == "error" and view.finished["stop_reason"] is None
        assert view.finished["error"]["code"] == "upstream_error"
        assert not sock.find("generation.retrying", since=since)
    stored = await Message.objects.aget(pk=reply_id)
    assert (stored.status, stored.text, stored.error_code) == ("error", partial, "upstream_error")
    assert len(fake_anthropic.requests) == 1  # text was out: no retry could take it back
    if ending == "stall":
        last = b.find("generation.delta", since=since_b, message_id=reply_id)[-1]
        finished = b.find("generation.finished", since=since_b, message_id=reply_id)[0]
        waited = frame_time(b, finished) - frame_time(b, last)
        assert STALL_TIMEOUT - 0.1 <= waited < STALL_TIMEOUT + 5


# --- the circuit breaker across processes ------------------------------------------------------


async def test_the_circuit_breaker_is_shared_by_all_processes(
    daphne_factory: DaphneFactory,
    fake_anthropic: FakeAnthropic,
    redis_server: RedisServer,
    ws_connect: WsConnect,
    unique: Any,
) -> None:
    prefix = unique("breaker")
    # The probe's slot lasts one cool-down: the probe below (3 s) and the reply refused while
    # it runs must both fit in it, even on a loaded machine.
    cooldown = 5.0
    env = {
        "REDIS_KEY_PREFIX": prefix,
        "LLM_BREAKER_FAILURES": "2",
        "LLM_BREAKER_COOLDOWN": str(cooldown),
        "LLM_MAX_RETRIES": "0",
    }
    a, b = (daphne_factory(env, name=n, start=False) for n in ("a", "b"))
    DaphneProcess.start_all(a, b)
    log_offset = a.log_size()
    people = await make_people(unique, title="Failures")
    tab_a = await join(ws_connect, a.ws_url, people.slug, people.alice_cookie)
    tab_b = await join(ws_connect, b.ws_url, people.slug, people.bob_cookie)

    async def ask(sock: RoomSocket, text: str) -> dict[str, Any]:
        since = sock.mark()
        await sock.send({"type": "message.send", "text": text})
        reply_id = (await sock.wait_for("generation.started", since=since))["message_id"]
        return await sock.wait_for("generation.finished", since=since, message_id=reply_id)

    # Two replies that fail upstream, both run by A: the circuit opens.
    fake_anthropic.queue(Fail(500), Fail(500))
    for text in ("one", "two"):
        finished = await ask(tab_a, text)
        assert finished["error"]["code"] == "upstream_unavailable"
    assert len(fake_anthropic.requests) == 2
    assert "circuit breaker open" in a.log_since(log_offset)

    # B fails fast: the model is not asked.
    finished = await ask(tab_b, "three")
    assert finished["status"] == "error"
    assert finished["error"]["code"] == "upstream_unavailable"
    assert len(fake_anthropic.requests) == 2

    # After the cool-down one probe goes through; while it runs, others still fail fast.
    client = redis_server.client(decode_responses=True)
    open_until = float(client.get(f"{prefix}:breaker:open_until") or 0)
    await asyncio.sleep(max(0.0, open_until - time.time()) + 0.05)  # the cool-down itself
    other = await make_people(unique, title="Failures")
    tab_other = await join(ws_connect, a.ws_url, other.slug, other.alice_cookie)
    fake_anthropic.queue(Reply(chunks=words("probe", 60), delay=0.05))
    since = tab_b.mark()
    await tab_b.send({"type": "message.send", "text": "probe"})
    probe_id = (await tab_b.wait_for("generation.started", since=since))["message_id"]
    await tab_b.wait_for("generation.delta", since=since, message_id=probe_id)
    refused = await ask(tab_other, "meanwhile")
    assert refused["error"]["code"] == "upstream_unavailable"
    probe = await tab_b.wait_for("generation.finished", since=since, message_id=probe_id)
    assert probe["status"] == "complete"
    assert len(fake_anthropic.requests) == 3

    # The probe's success closed the circuit for every process.
    fake_anthropic.queue(Reply(chunks=["back"]))
    finished = await ask(tab_other, "closed again?")
    assert (finished["status"], finished["text"]) == ("complete", "back")
    assert client.get(f"{prefix}:breaker:open_until") is None
    client.close()


# --- in-process: the consumer with the in-memory layer ----------------------------------------

# The in-process fixtures this module takes from tests/consumer_fixtures.py (not its autouse one).
connect = consumer_fixtures.connect
use_fake_anthropic = consumer_fixtures.use_fake_anthropic


@pytest.fixture
async def in_process(use_fake_anthropic: FakeAnthropic) -> AsyncIterator[FakeAnthropic]:
    """A fresh "process" (runner, shared state, layer) using the fake Anthropic API."""
    async with fresh_process_state():
        yield use_fake_anthropic


@pytest.fixture
def tabs(in_process: FakeAnthropic, connect: Connect) -> Callable[..., Any]:
    """`await tabs(slug=None)`: a new user's tab in that room (a new room by default)."""

    async def open_tab(slug: str | None = None) -> Tab:
        @sync_to_async
        def setup() -> tuple[str, str]:
            user = create_user(unique_name("u"), password=None)
            room_slug = slug or unique_name("room")
            Room.objects.get_or_create(
                slug=room_slug, defaults={"title": "T", "owner": user, "model": MODEL}
            )
            return room_slug, session_cookie(user)

        room_slug, cookie = await setup()
        tab = await connect(room_slug, cookie, join=False)
        await tab.until("presence")
        return tab

    return open_tab


@pytest.mark.django_db(transaction=True)
async def test_failures_before_the_first_token_are_retried(
    tabs: Callable[..., Any], in_process: FakeAnthropic, settings: Any
) -> None:
    """An error event, a cut or a stall before any text: nothing reached the room, so retry."""
    settings.LLM_STALL_TIMEOUT = 0.5
    get_provider.cache_clear()
    in_process.queue(
        Reply(then="error", after=0, error_type="overloaded_error"),
        Reply(then="cut", after=0),
        Reply(then="stall", after=0),
        Reply(then="error", after=0, error_type="api_error"),
        Reply(chunks=["made ", "it"]),
    )
    tab = await tabs()
    finished, frames = await tab.reply("try hard")
    assert (finished["status"], finished["text"]) == ("complete", "made it")
    retries = [f for f in frames if f["type"] == "generation.retrying"]
    assert [(r["attempt"], r["reason"]) for r in retries] == [
        (2, "overloaded"),
        (3, "connection"),
        (4, "connection"),
        (5, "server_error"),
    ]
    assert len(in_process.requests) == 5


@pytest.mark.django_db(transaction=True)
async def test_exhausted_retries_end_upstream_unavailable(
    tabs: Callable[..., Any], in_process: FakeAnthropic, settings: Any
) -> None:
    settings.LLM_MAX_RETRIES = 2
    in_process.queue(Fail(503), Fail(503), Fail(503), Reply(chunks=["never"]))
    tab = await tabs()
    finished, frames = await tab.reply("hello?")
    assert (finished["status"], finished["text"]) == ("error", "")
    assert finished["error"]["code"] == "upstream_unavailable"
    assert [f["attempt"] for f in frames if f["type"] == "generation.retrying"] == [2, 3]
    assert len(in_process.requests) == 3  # 1 + LLM_MAX_RETRIES
    stored = await Message.objects.aget(pk=finished["message_id"])
    assert (stored.status, stored.error_code) == ("error", "upstream_unavailable")


@pytest.mark.django_db(transaction=True)
async def test_breaker_counts_replies_not_attempts_and_lets_one_probe_through(
    tabs: Callable[..., Any], in_process: FakeAnthropic, settings: Any
) -> None:
    settings.LLM_MAX_RETRIES = 1
    settings.LLM_BREAKER_FAILURES = 2
    settings.LLM_BREAKER_COOLDOWN = 1.0  # also the probe's slot: longer than the probe below
    fake = in_process
    tab = await tabs()
    state = shared_state().breaker
    assert isinstance(state, MemoryBreakerState)

    async def cooled_down() -> None:
        assert state.open_until is not None
        await asyncio.sleep(max(0.0, state.open_until - time.monotonic()))

    # A reply that failed twice (attempt + retry) is one failure: the circuit stays closed.
    fake.queue(Fail(500), Fail(500))
    finished, _ = await tab.reply("one")
    assert finished["error"]["code"] == "upstream_unavailable"
    assert state.open_until is None
    # The second failed reply opens it.
    fake.queue(Fail(500), Fail(500))
    await tab.reply("two")
    assert len(fake.requests) == 4 and state.open_until is not None
    # Open: fail fast, the model is not asked, nothing is retried.
    finished, frames = await tab.reply("three")
    assert finished["error"]["code"] == "upstream_unavailable"
    assert not [f for f in frames if f["type"] == "generation.retrying"]
    assert len(fake.requests) == 4
    # The probe after the cool-down fails (with its own retry): open again at once.
    await cooled_down()
    fake.queue(Fail(529), Fail(529))
    finished, frames = await tab.reply("probe one")
    assert [f["attempt"] for f in frames if f["type"] == "generation.retrying"] == [2]
    assert len(fake.requests) == 6
    finished, _ = await tab.reply("four")
    assert finished["error"]["code"] == "upstream_unavailable" and len(fake.requests) == 6
    # The next probe succeeds, and while it runs nobody else gets through.
    other = await tabs()
    await cooled_down()
    fake.queue(Reply(chunks=words("slow", 12), delay=0.05))
    await tab.say("probe two")
    probe_id = (await tab.until("generation.started"))["message_id"]
    await tab.until("generation.delta", message_id=probe_id)
    refused, _ = await other.reply("meanwhile")
    assert refused["error"]["code"] == "upstream_unavailable"
    probe = await tab.until("generation.finished", message_id=probe_id)
    assert probe["status"] == "complete"
    # Closed: everyone is answered again.
    fake.queue(Reply(chunks=["ok"]))
    finished, _ = await other.reply("after")
    assert (finished["status"], finished["text"]) == ("complete", "ok")
    assert state.open_until is None and state.failures == 0


@pytest.mark.django_db(transaction=True)
async def test_overload_switches_to_the_fallback_model_and_rate_limits_do_not(
    tabs: Callable[..., Any], in_process: FakeAnthropic, settings: Any
) -> None:
    settings.LLM_FALLBACK_MODEL = FALLBACK
    fake = in_process
    tab = await tabs()

    fake.queue(Fail(529), Reply(chunks=["spare ", "model"]))
    finished, frames = await tab.reply("busy")
    [retrying] = [f for f in frames if f["type"] == "generation.retrying"]
    assert (retrying["reason"], retrying["model"]) == ("overloaded", FALLBACK)
    assert [f["model"] for f in frames if f["type"] == "generation.started"] == [MODEL]
    assert (finished["status"], finished["text"]) == ("complete", "spare model")
    assert [(r.body or {}).get("model") for r in fake.requests] == [MODEL, FALLBACK]
    stored = await Message.objects.aget(pk=finished["message_id"])
    assert stored.model == FALLBACK

    # Rate limits are about us, not the model's capacity: retry the same model.
    fake.queue(Fail(429, retry_after=0.1), Reply(chunks=["primary"]))
    finished, frames = await tab.reply("again")
    [retrying] = [f for f in frames if f["type"] == "generation.retrying"]
    assert (retrying["reason"], retrying["model"]) == ("rate_limited", MODEL)
    assert finished["text"] == "primary"
    assert [(r.body or {}).get("model") for r in fake.requests[2:]] == [MODEL, MODEL]
    stored = await Message.objects.aget(pk=finished["message_id"])
    assert stored.model == MODEL
