"""Secrets never reach a page, a frame, a log line or an error (SPEC §4, docs/security.md).

A real daphne runs with a unique ANTHROPIC_API_KEY and DJANGO_SECRET_KEY planted in its
environment. The run includes failures: the model refusing the key (401, a `configuration`
error), the model failing past its retries (500s), refused frames, a 404; then a good reply.
Every frame, every page and header, and every line the process logged is searched for both."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Callable

from asgiref.sync import sync_to_async

from tests.conftest import DaphneFactory, WsConnect
from tests.fakes import Fail, Reply
from tests.fakes.anthropic_api import FakeAnthropic
from tests.support.auth import HttpResponse, create_user, csrf_form_token, http_login, http_request


def fragments(secret: str) -> list[str]:
    """The secret and distinctive pieces of it (a log that cut or split it still leaks)."""
    return [secret, secret[8:28], secret[-20:]]


async def test_no_secret_reaches_a_frame_page_or_log_line(
    daphne_factory: DaphneFactory,
    fake_anthropic: FakeAnthropic,
    ws_connect: WsConnect,
    unique: Callable[[str], str],
) -> None:
    api_key = f"sk-ant-planted-{secrets.token_hex(16)}"
    secret_key = f"django-planted-{secrets.token_hex(24)}"
    server = daphne_factory(
        {
            "ANTHROPIC_API_KEY": api_key,
            "DJANGO_SECRET_KEY": secret_key,
            "LLM_MAX_RETRIES": "1",
            "LOG_LEVEL": "DEBUG",
        }
    )
    username = unique("keeper")
    await sync_to_async(create_user)(username)
    base = server.url
    cookies = await asyncio.to_thread(http_login, base, username)
    seen: list[str] = []

    def keep(answer: HttpResponse) -> HttpResponse:
        seen.append(f"{answer.status} {dict(answer.headers.items())} {answer.text}")
        return answer

    async def get(path: str) -> HttpResponse:
        return keep(await asyncio.to_thread(http_request, "GET", base + path, cookies=cookies))

    slug = unique("vault")
    offer = await get(f"/rooms/{slug}/")
    created = await asyncio.to_thread(
        http_request,
        "POST",
        f"{base}/rooms/{slug}/",
        cookies=cookies,
        form={"csrfmiddlewaretoken": csrf_form_token(offer.text)},
        headers={"Origin": base, "Referer": f"{base}/rooms/{slug}/"},
    )
    assert keep(created).status == 302

    fake_anthropic.queue(
        Fail(401, message=f"invalid x-api-key {api_key}"),  # an upstream that echoes the key
        Fail(500),
        Fail(500),
        Reply(chunks=["All ", "good."]),
    )
    sock = await ws_connect(server.ws_url, slug, cookies)
    await sock.wait_for("room.snapshot")
    for text in ("one", "two", "three"):
        await sock.send({"type": "message.send", "text": text})
        await sock.wait_for("generation.finished")
    finished = [f["status"] for f in sock.find("generation.finished")]
    assert finished == ["error", "error", "complete"]
    codes = [f["error"]["code"] for f in sock.find("generation.finished")[:2]]
    assert codes == ["configuration", "upstream_unavailable"]
    await sock.send_raw("{not json")
    await sock.send({"type": "room.update", "model": "no-such-model"})
    await sock.send({"type": "invite.create"})
    await sock.wait_for("invite.created")
    await sock.send({"type": "sync"})
    await sock.wait_for("room.snapshot")
    # The planted key really was the one the server used.
    assert any(api_key in " ".join(r.headers.values()) for r in fake_anthropic.requests)

    for path in (
        "/",
        f"/rooms/{slug}/",
        f"/api/rooms/{slug}/messages",
        f"/rooms/{slug}/export.md",
        f"/rooms/{slug}/export.json",
        f"/api/rooms/{slug}/invites",
        "/rooms/Not_A_Slug/",
        "/no/such/page",
        "/healthz",
        "/metrics",
        "/usage/",
        "/accounts/login/",
        "/accounts/signup/",
    ):
        await get(path)
    await sock.close()
    server.stop()

    frames = [json.dumps(f, ensure_ascii=False) for f in sock.frames]
    log = server.log_text()
    assert len(frames) > 10 and len(seen) > 10 and log.count("\n") > 10
    assert "configuration" in log or "401" in log  # the failure was logged, without the key
    for secret in (api_key, secret_key):
        for piece in fragments(secret):
            assert not [f for f in frames if piece in f], piece
            assert not [p for p in seen if piece in p], piece
            leaked = [line for line in log.splitlines() if piece in line]
            assert not leaked, leaked[:3]
