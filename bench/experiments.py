"""Trials on the server side without editing the application: daphne serves this module's
`application` (`bench.fanout --app bench.experiments:application`), which is chatsite's own with
patches chosen by BENCH_EXPERIMENT (a comma list):

- `trace`: records, for every delta frame of every reply, when each token reached the emitter
  (`DeltaEmitter.add`), when its frame started publishing, when the live state was written and
  when `group_send` returned; written as JSON to BENCH_TRACE_DIR/trace-<pid>-<message>.json.
  `bench.experiments_summary` summarises one (`bench.fanout --experiment trace` does it).
- `decoupled`: the emitter never makes the model stream wait for Redis. Today
  `DeltaEmitter.add()` awaits the whole publish (live-state EVAL + PUBLISH) of a due frame, so
  while a frame is out the SDK is not read; the next token then finds the interval passed and
  leaves alone, one token per frame, and a busy process falls further behind. Here `add()`
  only appends; one sender task per reply sends everything pending, at most one frame per
  interval, so a slow publish makes frames bigger instead of more numerous.
- `localfanout` (pubsub layer only): a process hands each room frame it receives from Redis
  straight to its sockets, one task per frame, instead of putting it into every consumer's
  channel queue for Channels to dispatch (queue put, a task wake-up and `asyncio.wait` in
  `await_many_dispatch`, one msgpack decode per socket, dispatch, then the send). Sockets that
  are still connecting (before their snapshot) keep the queue path. A sketch of the idea,
  not of its final form: see bench/REPORT.md.
- `rawsend` (with `localfanout`): those direct sends also skip Channels' session middleware
  wrapper around `send` (see `install_local_fanout`).
- `nolive`: skip the live-state write (the Redis EVAL before each PUBLISH). Only to measure
  what it costs: snapshots taken mid-reply would miss text.

These patch the reply path's module layout (`consumers.emitter.DeltaEmitter`,
`consumers.reply_live.LiveReply._publish` and its `broadcast`, `consumers.reply_job.ReplyJob`);
a later refactor may need them updated.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from chatsite.asgi import application as chatsite_application
from consumers import emitter, reply_job, reply_live

EXPERIMENTS = {x.strip() for x in os.environ.get("BENCH_EXPERIMENT", "").split(",") if x.strip()}
TRACE_DIR = Path(os.environ.get("BENCH_TRACE_DIR", "/tmp"))
EPOCH = float(os.environ.get("BENCH_EPOCH", "0"))

application = chatsite_application


class DecoupledEmitter(emitter.DeltaEmitter):
    """`add()` never waits for a publish; a sender task sends what is pending."""

    def __init__(self, interval: float, publish: Callable[[int, str], Awaitable[None]]) -> None:
        super().__init__(interval, publish)
        self._wake = asyncio.Event()
        self._closing = False
        self._sender: asyncio.Task[None] | None = None

    async def add(self, text: str) -> None:
        if not text:
            return
        self.received_any = True
        self.batcher.pending.append(text)
        if self._sender is None:
            self._sender = asyncio.create_task(self._send_loop())
        self._wake.set()

    async def _send_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            if not self._closing:
                delay = self.batcher.due_in(time.monotonic())
                if delay > 0:
                    await asyncio.sleep(delay)
            ready = self.batcher.take(time.monotonic())
            if ready is not None:
                await self._emit(ready)
            if self._closing and not self.batcher.has_pending:
                return

    async def flush(self) -> None:
        self._closing = True
        self._wake.set()
        if self._sender is not None:
            await self._sender
        ready = self.batcher.take(time.monotonic())
        if ready is not None:
            await self._emit(ready)


class Trace:
    """Timeline of one process's delta frames."""

    def __init__(self) -> None:
        self.adds: list[tuple[float, str]] = []  # (time.time() at add, text)
        self.frames: dict[int, dict[str, Any]] = {}

    def dump(self, message_id: int) -> None:
        TRACE_DIR.mkdir(parents=True, exist_ok=True)
        path = TRACE_DIR / f"trace-{os.getpid()}-{message_id}.json"
        path.write_text(json.dumps({"adds": self.adds, "frames": list(self.frames.values())}))
        self.adds = []
        self.frames = {}


TRACE = Trace()


# Sockets ready for direct delivery, by channel name (set after their snapshot was sent).
DIRECT: dict[str, Any] = {}


def install_local_fanout() -> None:
    from channels_redis.pubsub import RedisSingleShardConnection

    from consumers.broadcast import BROADCAST_EVENT
    from consumers.room import RoomConsumer

    original_connect = RoomConsumer.connect
    original_disconnect = RoomConsumer.disconnect

    async def connect(self: RoomConsumer) -> None:
        await original_connect(self)
        if self.room is not None and self.group is not None:
            DIRECT[self.channel_name] = self

    async def disconnect(self: RoomConsumer, code: int) -> None:
        DIRECT.pop(self.channel_name, None)
        await original_disconnect(self, code)

    raw = "rawsend" in EXPERIMENTS

    async def send_all(consumers: list[Any], frame: str) -> None:
        message = {"type": "websocket.send", "text": frame}
        for consumer in consumers:
            try:
                if raw:
                    # Past Channels' session wrapper, which on every send reads
                    # `scope["session"].modified` and `.is_empty()` through LazyObject
                    # proxies, for nothing: only HTTP responses save sessions.
                    send = consumer.base_send
                    await getattr(send.__self__, "real_send", send)(dict(message))
                else:
                    await consumer.send(text_data=frame)
            except Exception:  # a socket closing now must not stop the others
                pass

    def receive_message(self: Any, message: Any) -> None:
        if message is None:
            return
        name = message["channel"]
        if isinstance(name, bytes):
            name = name.decode()
        data = message["data"]
        layer = self.channel_layer
        if name in layer.channels:
            layer.channels[name].put_nowait(data)
            return
        members = layer.groups.get(name)
        if not members:
            return
        event = layer.channel_layer.deserialize(data)
        direct = []
        for channel_name in members:
            consumer = DIRECT.get(channel_name) if event.get("type") == BROADCAST_EVENT else None
            if consumer is not None:
                direct.append(consumer)
            elif channel_name in layer.channels:
                layer.channels[channel_name].put_nowait(data)
        if direct:
            asyncio.get_running_loop().create_task(send_all(direct, event["frame"]))

    RoomConsumer.connect = connect  # type: ignore[method-assign]
    RoomConsumer.disconnect = disconnect  # type: ignore[method-assign]
    RedisSingleShardConnection._receive_message = receive_message


def install() -> None:
    if "localfanout" in EXPERIMENTS:
        install_local_fanout()
    if "decoupled" in EXPERIMENTS:
        reply_live.DeltaEmitter = DecoupledEmitter  # type: ignore[misc]
    original_publish = reply_live.LiveReply._publish
    original_finish = reply_job.ReplyJob._finish
    original_add = reply_live.DeltaEmitter.add
    original_broadcast = reply_live.broadcast
    tracing = "trace" in EXPERIMENTS

    async def publish(self: reply_live.LiveReply, seq: int, text: str) -> None:
        if tracing:
            TRACE.frames[seq] = {"seq": seq, "text": text, "start": time.time()}
        if "nolive" in EXPERIMENTS:
            await reply_live.broadcast(
                self.room_id, reply_live.protocol.generation_delta(self.message_id, seq, text)
            )
        else:
            await original_publish(self, seq, text)
        if tracing:
            TRACE.frames[seq]["done"] = time.time()

    async def broadcast(room_id: int, frame: dict[str, Any]) -> bool:
        if tracing and frame.get("type") == "generation.delta" and frame["seq"] in TRACE.frames:
            TRACE.frames[frame["seq"]]["broadcast"] = time.time()
        return await original_broadcast(room_id, frame)

    async def add(self: emitter.DeltaEmitter, text: str) -> None:
        if tracing:
            TRACE.adds.append((time.time(), text))
        await original_add(self, text)

    async def finish(self: reply_job.ReplyJob, outcome: Any) -> None:
        await original_finish(self, outcome)
        if tracing:
            TRACE.dump(self.message_id)

    reply_live.LiveReply._publish = publish  # type: ignore[method-assign]
    reply_job.ReplyJob._finish = finish  # type: ignore[method-assign]
    reply_live.broadcast = broadcast
    if tracing:
        reply_live.DeltaEmitter.add = add  # type: ignore[method-assign]


install()
