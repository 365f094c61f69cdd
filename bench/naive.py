"""The naive recipe, served on the benchmark's rig beside the product for a ratio.

This is the textbook Channels chat that SPEC §1 describes, with nothing of Roomchat's design:
an `AsyncWebsocketConsumer` per socket that joins a group, and a reply task that reads the
model's stream through the real `anthropic` SDK and calls `group_send` once per token; every
consumer's handler JSON-encodes the event and sends it. The layer is channels-redis's
`RedisChannelLayer` with its default capacity (100), as its README configures it; the only
change from the textbook is a longer Redis socket timeout, without which every idle consumer
dies after 5 s under redis-py 8 (NOTES.md) and the recipe could not be measured at all.
`BENCH_NAIVE_LAYER=pubsub` uses `RedisPubSubChannelLayer` instead.

It speaks just enough of SPEC §6 for the benchmark's clients: a `room.snapshot` first (the
tab's user, nothing stored), `message.send` → `generation.started`, `generation.delta` with
`seq` 1, 2, 3 … and `generation.finished` with the whole text. It stores nothing. Served by
`daphne bench.naive:application`, with the environment of the product's servers.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from typing import Any

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatsite.settings")
get_asgi_application()  # sets Django up

from anthropic import AsyncAnthropic  # noqa: E402
from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.generic.websocket import AsyncWebsocketConsumer  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.conf import settings  # noqa: E402
from django.urls import path  # noqa: E402

if settings.REDIS_URL:
    _host = {"address": settings.REDIS_URL, "socket_timeout": 30}
    if os.environ.get("BENCH_NAIVE_LAYER", "core") == "pubsub":
        _backend = "channels_redis.pubsub.RedisPubSubChannelLayer"
    else:
        _backend = "channels_redis.core.RedisChannelLayer"
    settings.CHANNEL_LAYERS = {
        "default": {"BACKEND": _backend, "CONFIG": {"hosts": [_host], "prefix": "naive"}}
    }

_client: AsyncAnthropic | None = None
_ids = iter(range(1, 1 << 62))


def client() -> AsyncAnthropic:
    global _client
    if _client is None:
        _client = AsyncAnthropic()
    return _client


async def stream_reply(layer: Any, group: str, prompt: str) -> None:
    """Ask the model and send each token to the group as it comes: one group_send a token."""
    message_id = next(_ids) + os.getpid() * 1_000_000
    await layer.group_send(group, {"type": "chat.started", "message_id": message_id})
    seq = 0
    parts: list[str] = []
    status = "complete"
    try:
        async with client().messages.stream(
            model=settings.ANTHROPIC_MODEL,
            max_tokens=settings.LLM_MAX_TOKENS,
            messages=[{"role": "user", "content": prompt}],
        ) as stream:
            async for text in stream.text_stream:
                seq += 1
                parts.append(text)
                await layer.group_send(
                    group,
                    {"type": "chat.delta", "message_id": message_id, "seq": seq, "text": text},
                )
    except Exception:
        status = "error"
    await layer.group_send(
        group,
        {
            "type": "chat.finished",
            "message_id": message_id,
            "text": "".join(parts),
            "status": status,
        },
    )


class NaiveRoomConsumer(AsyncWebsocketConsumer):
    async def connect(self) -> None:
        user = self.scope["user"]
        if not user.is_authenticated:
            await self.close()
            return
        self.group = "naive-room-" + self.scope["url_route"]["kwargs"]["slug"]
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        snapshot = {"type": "room.snapshot", "user": {"username": user.username}, "at": time.time()}
        await self.send(text_data=json.dumps(snapshot))

    async def disconnect(self, code: int) -> None:
        if hasattr(self, "group"):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        frame = json.loads(text_data or "{}")
        if frame.get("type") == "message.send":
            asyncio.get_running_loop().create_task(
                stream_reply(self.channel_layer, self.group, str(frame.get("text", "")))
            )

    async def chat_started(self, event: dict[str, Any]) -> None:
        frame = {"type": "generation.started", "message_id": event["message_id"]}
        await self.send(text_data=json.dumps(frame))

    async def chat_delta(self, event: dict[str, Any]) -> None:
        frame = {
            "type": "generation.delta",
            "message_id": event["message_id"],
            "seq": event["seq"],
            "text": event["text"],
        }
        await self.send(text_data=json.dumps(frame))

    async def chat_finished(self, event: dict[str, Any]) -> None:
        frame = {
            "type": "generation.finished",
            "message_id": event["message_id"],
            "status": event["status"],
            "text": event["text"],
        }
        await self.send(text_data=json.dumps(frame))


async def http_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """`/healthz` answers 200 (the rig waits for it); nothing else is served over HTTP."""
    status = 200 if scope["path"] == "/healthz" else 404
    await send({"type": "http.response.start", "status": status, "headers": []})
    await send({"type": "http.response.body", "body": b"ok" if status == 200 else b""})


application = ProtocolTypeRouter(
    {
        "http": http_app,
        "websocket": AuthMiddlewareStack(
            URLRouter([path("ws/rooms/<str:slug>/", NaiveRoomConsumer.as_asgi())])
        ),
    }
)
