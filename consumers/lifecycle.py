"""What a server process does besides answering sockets: keep presence fresh, reap replies
whose process died, notice a Redis restart, and end running replies cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from channels.db import database_sync_to_async
from django.conf import settings

from chatsite.llm.base import Usage
from chatsite.rooms import selectors, services
from chatsite.rooms.models import Message
from chatsite.rooms.services import ReplyOutcome

from . import protocol
from .broadcast import broadcast
from .livestate import RedisState, shared_state
from .replies import reply_runner

if TYPE_CHECKING:
    from .room import RoomConsumer

log = logging.getLogger(__name__)

PRESENCE_EVERY = 10.0  # seconds between presence refreshes (entries live 30 s)
REAP_EVERY = 3.0  # seconds between looks for orphaned replies and unanswered rooms
REDIS_WATCH_EVERY = 2.0  # seconds between checks that Redis is the same server
REJOIN_EVERY = 3600.0  # re-add group memberships well inside channels_redis' 24 h expiry


class ProcessServices:
    """Background loops of one process (one event loop)."""

    def __init__(self) -> None:
        self.connections: dict[str, tuple[RoomConsumer, int, str]] = {}
        self.tasks: list[asyncio.Task[None]] = []
        self.loop: asyncio.AbstractEventLoop | None = None
        # Streaming replies seen without a lock holder, and since when (reaped if it lasts).
        self.suspects: dict[int, float] = {}
        self.redis_run_id: str | None = None

    def ensure_started(self) -> None:
        """Start the loops on the running event loop, once."""
        loop = asyncio.get_running_loop()
        if self.loop is loop and self.tasks:
            return
        self.loop = loop
        self.tasks = [
            loop.create_task(self._every(PRESENCE_EVERY, self.refresh_presence)),
            loop.create_task(self._every(REAP_EVERY, self.reap_once)),
            loop.create_task(self._every(REJOIN_EVERY, self.rejoin_all, first_after=REJOIN_EVERY)),
        ]
        if isinstance(shared_state(), RedisState):
            self.tasks.append(loop.create_task(self._every(REDIS_WATCH_EVERY, self.watch_redis)))

    def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        self.tasks = []

    async def _every(self, seconds: float, job: Any, first_after: float = 0.0) -> None:
        await asyncio.sleep(first_after)
        while True:
            try:
                await job()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("%s failed: %s: %s", job.__name__, type(exc).__name__, exc)
            await asyncio.sleep(seconds)

    async def refresh_presence(self) -> None:
        """Keep this process's connections present and drop those of dead processes."""
        state = shared_state()
        entries = [(room_id, c.conn_id, name) for c, room_id, name in self.connections.values()]
        await state.presence_refresh(entries)
        for room_id in await state.presence_rooms():
            before = await state.presence_users(room_id)
            if await state.presence_expire(room_id):
                after = await state.presence_users(room_id)
                if after != before:
                    await broadcast(room_id, protocol.presence(after))

    async def reap_once(self) -> None:
        """Interrupt replies whose process died; start replies nobody started."""
        state = shared_state()
        runner = reply_runner()
        confirm_after = settings.ROOM_LOCK_TTL / 5 * 1.5  # longer than one lock renewal
        now = time.monotonic()
        seen: set[int] = set()
        for message in await database_sync_to_async(selectors.streaming_replies)():
            seen.add(message.pk)
            if runner.running(message.room_id) or await state.room_locked(message.room_id):
                self.suspects.pop(message.pk, None)
                continue
            first = self.suspects.setdefault(message.pk, now)
            if now - first >= confirm_after:
                await interrupt_orphan(message)
                self.suspects.pop(message.pk, None)
        for gone in set(self.suspects) - seen:
            del self.suspects[gone]
        recent = await database_sync_to_async(selectors.rooms_with_recent_user_messages)(
            timedelta(hours=1), timedelta(seconds=2)
        )
        for room_id in recent:
            if runner.running(room_id) or await state.room_locked(room_id):
                continue
            if await database_sync_to_async(selectors.has_unanswered)(room_id):
                log.info("room %s has an unanswered message: starting its reply", room_id)
                await runner.request(room_id)

    async def watch_redis(self) -> None:
        """After a Redis restart (it keeps nothing), rebuild memberships and presence."""
        state = shared_state()
        assert isinstance(state, RedisState)
        info = await state.redis().info("server")
        run_id = str(info.get("run_id", ""))
        previous, self.redis_run_id = self.redis_run_id, run_id
        if previous is not None and previous != run_id:
            log.warning("Redis restarted (run_id changed): rejoining groups, resending snapshots")
            await self.rejoin_all()
            await self.refresh_presence()

    async def rejoin_all(self) -> None:
        for consumer, _, _ in list(self.connections.values()):
            try:
                await consumer.rejoin_group()
            except Exception as exc:
                log.warning("rejoin failed: %s", exc)


_services = ProcessServices()


def services_for_process() -> ProcessServices:
    return _services


def track(consumer: RoomConsumer, room_id: int, username: str) -> None:
    """Remember a connected socket (for presence refresh and group rejoin)."""
    _services.ensure_started()
    _services.connections[consumer.conn_id] = (consumer, room_id, username)


def untrack(consumer: RoomConsumer) -> None:
    _services.connections.pop(consumer.conn_id, None)


async def interrupt_orphan(message: Message) -> None:
    """Store a dead process's reply as interrupted with its streamed text, and tell the room."""
    state = shared_state()
    token = uuid.uuid4().hex
    if not await state.acquire_room(message.room_id, token, settings.ROOM_LOCK_TTL):
        return
    try:
        live = await state.get_generation(message.room_id)
        text = live.text if live is not None and live.message_id == message.pk else message.text
        outcome = ReplyOutcome(status=Message.Status.INTERRUPTED, text=text, usage=Usage())
        stored = await database_sync_to_async(services.finish_reply)(message.pk, outcome)
        if stored:
            log.warning(
                "reply %s in room %s interrupted: its process died", message.pk, message.room_id
            )
            await broadcast(
                message.room_id,
                protocol.generation_finished(
                    message.pk, Message.Status.INTERRUPTED, text, None, Usage().as_dict(), None
                ),
            )
        await state.clear_generation(message.room_id, message.pk)
    finally:
        await state.release_room(message.room_id, token)
    if await database_sync_to_async(selectors.has_unanswered)(message.room_id):
        await reply_runner().request(message.room_id)


async def shutdown() -> None:
    """On SIGTERM: interrupt running replies (stored, announced, locks freed), then stop."""
    log.info("shutting down: ending running replies")
    await reply_runner().shutdown(timeout=20.0)
    _services.stop()


def install_daphne_hooks() -> None:
    """Under daphne, start the loops when the reactor runs and end replies before it stops.

    Daphne cancels only the connections' application instances on SIGTERM; tasks the process
    owns would die with the reactor, with no `finally`, no database write and locks held.
    """
    import sys

    if "twisted.internet.reactor" not in sys.modules:
        return
    from twisted.internet import defer, reactor

    if not hasattr(reactor, "_asyncioEventloop"):
        return

    def start() -> None:
        asyncio.get_event_loop().call_soon(_services.ensure_started)

    def before_shutdown() -> Any:
        loop = reactor._asyncioEventloop  # type: ignore[attr-defined]
        return defer.Deferred.fromFuture(asyncio.ensure_future(shutdown(), loop=loop))

    reactor.callWhenRunning(start)  # type: ignore[attr-defined]
    reactor.addSystemEventTrigger("before", "shutdown", before_shutdown)  # type: ignore[attr-defined]
