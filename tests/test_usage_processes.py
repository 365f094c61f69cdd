"""Spend across two real daphne processes (SPEC §8): budgets held across processes, costs from
the fake API's usage and a given price table, the 80 % warning, JSON log lines without message
text or secrets, and /metrics counting replies that ran on the other process.

One module-scoped pair with its own Redis key prefix and a price table where one reply (100
input and 50 output tokens) costs exactly 0.20 USD. Budget counters are per UTC day and per
prefix, so the spending story is one test: later steps depend on what earlier ones spent.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from prometheus_client.parser import text_string_to_metric_families

from chatsite.rooms.models import Message
from tests.conftest import DaphnePair, WsConnect, ready_pair, running_pair
from tests.fakes import Fail, Reply
from tests.fakes.anthropic_api import FakeAnthropic
from tests.support import unique_name
from tests.support.auth import acreate_user, asession_cookie, http_request
from tests.support.people import join, make_people
from tests.support.redis_server import RedisServer
from tests.support.wsclient import RoomSocket

pytestmark = pytest.mark.timeout(120)

MODEL = "claude-sonnet-5-5"
# USD per million tokens: 100 input tokens cost 0.10, 50 output tokens 0.10.
PRICES = {MODEL: [1000, 2000, 0, 0]}
REPLY_COST = 0.2
SECRET_KEY = "sk-ant-test-" + "S3CR3T" * 6
METRICS_TOKEN = "metrics-" + "t0k3n" * 5


@pytest.fixture(scope="module")
def spend_env(server_env: Mapping[str, str]) -> dict[str, str]:
    return {
        **server_env,
        "REDIS_KEY_PREFIX": unique_name("spend"),
        "ANTHROPIC_API_KEY": SECRET_KEY,
        "LLM_PRICES": json.dumps(PRICES),
        "CHAT_USER_DAILY_USD": "0.5",
        "CHAT_ROOM_DAILY_USD": "0.9",
        # 80 % of 1.25 is 1.00: the fifth reply of the story crosses it.
        "LLM_DAILY_SPEND_USD": "1.25",
        "METRICS_TOKEN": METRICS_TOKEN,
        "LOG_FORMAT": "json",
    }


@pytest.fixture(scope="module")
def _spend_pair(
    spend_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DaphnePair]:
    with running_pair(spend_env, tmp_path_factory.mktemp("daphne-spend")) as pair:
        yield pair


@pytest.fixture
def pair(request: pytest.FixtureRequest, _spend_pair: DaphnePair) -> DaphnePair:
    return ready_pair(request, _spend_pair)


def priced_reply() -> Reply:
    return Reply(
        chunks=[f"w{i} " for i in range(8)], delay=0.005, input_tokens=100, output_tokens=50
    )


async def ask(sock: RoomSocket, text: str) -> dict[str, Any]:
    """Send a message and return the generation.finished of the reply that answers it."""
    mark = sock.mark()
    await sock.send({"type": "message.send", "text": text})
    await sock.wait_for("message.created", since=mark)
    started = await sock.wait_for("generation.started", since=mark, timeout=20)
    return await sock.wait_for(
        "generation.finished", since=mark, timeout=30, message_id=started["message_id"]
    )


async def refused(sock: RoomSocket, text: str) -> dict[str, Any]:
    mark = sock.mark()
    await sock.send({"type": "message.send", "text": text})
    frame = await sock.wait_for("error", since=mark)
    assert not sock.find("message.created", since=mark), "a refused message was stored"
    return frame


def wipe_spend_counters(server: RedisServer, prefix: str) -> int:
    """Delete every spend counter of this module's processes; how many there were."""
    client = server.client()
    keys = list(client.scan_iter(match=f"{prefix}:usage:spend:*"))
    return int(client.delete(*keys)) if keys else 0


def seconds_to_midnight() -> float:
    now = dt.datetime.now(dt.UTC)
    midnight = (now + dt.timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return (midnight - now).total_seconds()


@sync_to_async
def reply_costs(slug: str) -> list[Decimal]:
    return list(
        Message.objects.filter(room__slug=slug, role="assistant")
        .order_by("id")
        .values_list("cost_usd", flat=True)
    )


@sync_to_async
def charges_by_user(slug: str) -> dict[str, Decimal]:
    from django.db.models import Sum

    from chatsite.usage.models import Charge

    rows = (
        Charge.objects.filter(entry__room__slug=slug)
        .values("user__username")
        .annotate(total=Sum("cost_usd"))
    )
    return {row["user__username"]: row["total"] for row in rows}


def log_lines(*paths: Path) -> tuple[str, list[dict[str, Any]]]:
    raw = "".join(p.read_text(errors="replace") for p in paths)
    parsed = []
    for line in raw.splitlines():
        if line.startswith("{"):
            parsed.append(json.loads(line))
    return raw, parsed


def scrape(
    url: str, **headers: str
) -> tuple[int, dict[str, dict[tuple[tuple[str, str], ...], float]]]:
    """GET /metrics; the samples by name and sorted labels."""
    answer = http_request("GET", f"{url}/metrics", headers=headers)
    if answer.status != 200:
        return answer.status, {}
    samples: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            key = tuple(sorted(sample.labels.items()))
            samples.setdefault(sample.name, {})[key] = sample.value
    return 200, samples


async def test_budgets_costs_warning_logs_and_metrics_across_two_processes(
    pair: DaphnePair,
    fake_anthropic: FakeAnthropic,
    ws_connect: WsConnect,
    unique: Any,
    redis_server: RedisServer,
    spend_env: dict[str, str],
) -> None:
    fake_anthropic.default = priced_reply()
    p = await make_people(unique, title="Spend")
    planted = f"PLANTED-{unique_name('text')}"
    alice_a = await join(ws_connect, pair.a.ws_url, p.slug, p.alice_cookie)
    alice_b = await join(ws_connect, pair.b.ws_url, p.slug, p.alice_cookie)
    bob_b = await join(ws_connect, pair.b.ws_url, p.slug, p.bob_cookie)
    assert alice_a.find("room.snapshot")[0]["budget"] == {
        "user_spent_usd": 0.0,
        "user_limit_usd": 0.5,
        "room_spent_usd": 0.0,
        "room_limit_usd": 0.9,
    }

    # Alice alternates processes: one limit holds her (0.5 USD: three replies reach 0.6). The
    # model is overloaded once first: a retry, logged as an upstream error.
    fake_anthropic.queue(Fail(529))
    costs = []
    for i, sock in enumerate([alice_a, alice_b, alice_a]):
        finished = await ask(sock, f"{planted} question {i}")
        assert finished["status"] == "complete"
        costs.append(finished["cost_usd"])
    assert costs == [REPLY_COST] * 3
    for sock in (alice_b, alice_a):
        error = await refused(sock, f"{planted} one more")
        assert error["code"] == "budget_exceeded"
        assert abs(error["retry_after"] - seconds_to_midnight()) < 30
    # Redis loses the counters (a restart, a flush): they are rebuilt from the ledger.
    wiped = wipe_spend_counters(redis_server, spend_env["REDIS_KEY_PREFIX"])
    assert wiped >= 3
    assert (await refused(alice_b, "after the wipe"))["code"] == "budget_exceeded"

    # Bob is not held by Alice's limit, only by the room's (0.9 USD): two more replies reach 1.0.
    assert (await ask(bob_b, "bob asks on B"))["cost_usd"] == REPLY_COST
    bob_a = await join(ws_connect, pair.a.ws_url, p.slug, p.bob_cookie)
    assert (await ask(bob_a, "bob asks on A"))["cost_usd"] == REPLY_COST
    error = await refused(bob_b, "bob again")
    assert error["code"] == "budget_exceeded" and "room" in error["message"]

    # Stored with each reply, split to who asked, and in every process's snapshots.
    assert await reply_costs(p.slug) == [Decimal("0.200000")] * 5
    assert await charges_by_user(p.slug) == {p.alice: Decimal("0.6"), p.bob: Decimal("0.4")}
    for sock, spent in ((alice_b, 0.6), (bob_a, 0.4)):
        mark = sock.mark()
        await sock.send({"type": "sync"})
        budget = (await sock.wait_for("room.snapshot", since=mark))["budget"]
        assert budget["user_spent_usd"] == pytest.approx(spent)
        assert budget["room_spent_usd"] == pytest.approx(1.0)

    # Logs: JSON, one line per reply with SPEC §8's fields, the 80 % warning once, no secrets.
    raw, lines = log_lines(pair.a.log_path, pair.b.log_path)
    assert planted not in raw
    assert SECRET_KEY not in raw
    replies = [
        line for line in lines if line.get("event") == "reply" and line.get("room_id") == p.room.pk
    ]
    assert len(replies) == 5
    for line in replies:
        assert line["cost_usd"] == REPLY_COST
        assert line["model"] == MODEL and line["provider"] == "anthropic"
        assert line["status"] == "complete" and line["error_code"] is None
        assert line["input_tokens"] == 100 and line["output_tokens"] == 50
        assert line["request_id"] and isinstance(line["ttft_ms"], int)
        assert isinstance(line["duration_ms"], int)
        assert len(line["user_ids"]) == 1
    ids = {line["request_id"] for line in replies}
    assert len(ids) == 5, "each reply has its own request id"
    assert sorted(line["retries"] for line in replies) == [0, 0, 0, 0, 1]
    retried = next(line for line in replies if line["retries"] == 1)
    (upstream,) = [line for line in lines if line.get("event") == "upstream_error"]
    assert upstream["error_code"] == "overloaded" and upstream["attempt"] == 1
    assert upstream["request_id"] == retried["request_id"], "one request id ties a reply's lines"
    assert upstream["level"] == "WARNING" and upstream["model"] == MODEL
    warnings = [line for line in lines if line.get("event") == "spend_warning"]
    assert len(warnings) == 1 and warnings[0]["level"] == "WARNING"

    # /metrics on either process counts the replies of both; only staff or the token may read.
    assert scrape(pair.a.url)[0] == 403
    assert scrape(pair.a.url, Authorization="Bearer wrong")[0] == 403
    for process in (pair.a, pair.b):
        status, samples = scrape(process.url, Authorization=f"Bearer {METRICS_TOKEN}")
        assert status == 200
        assert samples["roomchat_replies_total"][(("status", "complete"),)] >= 5
        assert samples["roomchat_cost_usd_total"][(("model", MODEL),)] == pytest.approx(1.0)
        input_key = (("kind", "input"), ("model", MODEL), ("purpose", "reply"))
        assert samples["roomchat_tokens_total"][input_key] == 500
        assert samples["roomchat_refusals_total"][(("code", "budget_exceeded"),)] >= 3
        assert samples["roomchat_websockets_open"][()] >= 4
        assert samples["roomchat_deltas_sent_total"][()] >= 5
        assert samples["roomchat_upstream_retries_total"][()] == 1
        assert samples["roomchat_time_to_first_token_seconds_count"][()] >= 5
        assert samples["roomchat_reply_duration_seconds_count"][()] >= 5
        assert "roomchat_upstream_errors_total" not in samples or all(
            v == 0 for v in samples["roomchat_upstream_errors_total"].values()
        )


async def test_metrics_for_a_staff_session_and_not_for_other_people(
    pair: DaphnePair, unique: Any
) -> None:
    staff = await acreate_user(unique("staff"), password=None)
    staff.is_staff = True
    await sync_to_async(staff.save)()
    person = await acreate_user(unique("person"), password=None)
    staff_cookie = {"sessionid": await asession_cookie(staff)}
    person_cookie = {"sessionid": await asession_cookie(person)}
    assert http_request("GET", f"{pair.b.url}/metrics", cookies=staff_cookie).status == 200
    assert http_request("GET", f"{pair.b.url}/metrics", cookies=person_cookie).status == 403
    assert http_request("GET", f"{pair.b.url}/metrics/").status == 404
