"""What a server process does besides answering sockets: keep presence fresh, reap replies
whose process died, notice a Redis outage or restart and recover from it, and end running
replies cleanly on SIGTERM. docs/operations.md describes each failure from the outside."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings

from chatsite.llm.base import Usage
from chatsite.rooms import selectors, services
from chatsite.rooms.models import Message
from chatsite.rooms.services import ReplyOutcome

from . import presence, protocol
from .actions.messages import personalize, room_snapshot
from .broadcast import broadcast
from .reply_runner import reply_runner
from .state import shared_state

if TYPE_CHECKING:
    from .room import RoomConsumer

log = logging.getLogger(__name__)

PRESENCE_EVERY = 10.0  # seconds between presence refreshes (entries live 30 s)
REAP_EVERY = 3.0  # seconds between looks for orphaned replies and unanswered rooms
# How far back the reaper looks for unanswered messages (left by a long outage of Redis or the
# database); older ones are answered by the room's next message, which answers all of them.
UNANSWERED_WITHIN = timedelta(hours=24)
REDIS_WATCH_EVERY = 2.0  # seconds between checks that Redis answers and is the same server
REJOIN_EVERY = 3600.0  # re-add group memberships well inside channels_redis' 24 h expiry
LAYER_PROBE_TIMEOUT = 15.0  # how long recovery waits for the channel layer to carry a frame
# SIGTERM: Heroku kills the dyno 30 s after it. Replies first: stored and announced, normally in
# well under a second; if that hangs (a Redis call can hang for its 15 s socket timeout), stored
# directly within 5 s more. Then presence: 18 s at most.
SHUTDOWN_REPLIES_TIMEOUT = 10.0
SHUTDOWN_PRESENCE_TIMEOUT = 3.0


class ProcessServices:
    """Background loops of one process (one event loop)."""

    def __init__(self) -> None:
        self.connections: dict[str, tuple[RoomConsumer, int, str]] = {}
        self.tasks: list[asyncio.Task[None]] = []
        self.loop: asyncio.AbstractEventLoop | None = None
        # Streaming replies seen without a lock holder, and since when (reaped if it lasts).
        self.suspects: dict[int, float] = {}
        self.redis_run_id: str | None = None
        # Since when Redis has not answered (monotonic), None while it answers.
        self.redis_down_since: float | None = None
        self._probe: LayerProbe | None = None

    def ensure_started(self) -> None:
        """Start the loops on the running event loop, once."""
        loop = asyncio.get_running_loop()
        if self.loop is loop and self.tasks:
            return
        self.loop = loop
        rejoin = rejoin_interval()
        self.tasks = [
            loop.create_task(self._every(PRESENCE_EVERY, self.refresh_presence)),
            loop.create_task(self._every(REAP_EVERY, self.reap_once)),
            loop.create_task(self._every(rejoin, self.rejoin_all, first_after=rejoin)),
        ]
        if shared_state().redis is not None:
            self.tasks.append(loop.create_task(self._every(REDIS_WATCH_EVERY, self.watch_redis)))

    def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        self.tasks = []
        if self._probe is not None:
            self._probe.close()
            self._probe = None

    async def _every(
        self, seconds: float, job: Callable[[], Awaitable[None]], first_after: float = 0.0
    ) -> None:
        await asyncio.sleep(first_after)
        while True:
            try:
                await job()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # While Redis is known to be down, the watcher has said so once already.
                level = logging.DEBUG if self.redis_down_since is not None else logging.WARNING
                log.log(level, "%s failed: %s: %s", job.__name__, type(exc).__name__, exc)
            await asyncio.sleep(seconds)

    async def refresh_presence(self, announce: bool = False) -> None:
        """Keep this process's connections present and drop those of dead processes.

        `announce`: also tell each of our rooms who is there (after Redis lost the sets).
        """
        state = shared_state()
        entries = [(room_id, c.conn_id, name) for c, room_id, name in self.connections.values()]
        await state.presence.refresh(entries)
        for room_id in await state.presence.rooms():
            before = await state.presence.users(room_id)
            if (
                await state.presence.expire(room_id)
                and await state.presence.users(room_id) != before
            ):
                presence.announcer().changed(room_id)
        if announce:
            for room_id in {room_id for _, room_id, _ in self.connections.values()}:
                await presence.announce(room_id)

    async def leave_all(self) -> None:
        """Take this process's connections out of presence and tell their rooms (shutdown).

        Daphne cancels the consumers on SIGTERM without running `disconnect`, so without
        this the people of a stopping process would linger in the list until they expire.
        """
        state = shared_state()
        rooms = {room_id for _, room_id, _ in self.connections.values()}
        for consumer, room_id, _ in list(self.connections.values()):
            await state.presence.leave(room_id, consumer.conn_id)
        self.connections.clear()
        for room_id in rooms:
            await presence.announce(room_id)

    async def reap_once(self) -> None:
        """Interrupt replies whose process died; start replies nobody started."""
        state = shared_state()
        runner = reply_runner()
        confirm_after = settings.ROOM_LOCK_TTL / 5 * 1.5  # longer than one lock renewal
        now = time.monotonic()
        seen: set[int] = set()
        for message in await database_sync_to_async(selectors.streaming_replies)():
            seen.add(message.pk)
            if runner.running(message.room_id) or await state.reply_locks.held(message.room_id):
                self.suspects.pop(message.pk, None)
                continue
            first = self.suspects.setdefault(message.pk, now)
            if now - first >= confirm_after:
                await interrupt_orphan(message)
                self.suspects.pop(message.pk, None)
        for gone in set(self.suspects) - seen:
            del self.suspects[gone]
        unanswered = await database_sync_to_async(selectors.unanswered_rooms)(
            UNANSWERED_WITHIN, timedelta(seconds=2)
        )
        for room_id in unanswered:
            if runner.running(room_id) or await state.reply_locks.held(room_id):
                continue
            log.info("room %s has an unanswered message: starting its reply", room_id)
            await runner.request(room_id)

    async def watch_redis(self) -> None:
        """Notice Redis going away, coming back, or coming back empty (a restart), and recover.

        A restart (INFO run_id changes) lost every key: locks, live replies, presence and, with
        the core channel layer, group memberships. An outage without a restart lost only the
        frames published meanwhile. Either way every socket gets a fresh snapshot once the
        channel layer carries frames again, so no tab is left behind silently.
        """
        store = shared_state().redis
        assert store is not None
        try:
            info = await store.for_global().info("server")
        except Exception as exc:
            if self.redis_down_since is None:
                self.redis_down_since = time.monotonic()
                log.error(
                    "Redis is unreachable (%s: %s): live frames, presence and new replies wait "
                    "for it; sockets stay open",
                    type(exc).__name__,
                    exc,
                )
            return
        run_id = str(info.get("run_id", ""))
        previous, self.redis_run_id = self.redis_run_id, run_id
        down_since, self.redis_down_since = self.redis_down_since, None
        restarted = previous is not None and previous != run_id
        if down_since is not None:
            log.warning(
                "Redis answers again after %.1f s%s",
                time.monotonic() - down_since,
                " (it restarted and lost its data)" if restarted else "",
            )
        elif restarted:
            log.warning("Redis restarted (run_id changed) and lost its data")
        if restarted or down_since is not None:
            await self.recover()

    async def recover(self) -> None:
        """Rebuild what Redis lost, then resynchronise every socket of this process.

        The same steps after a restart (Redis is empty) and after an outage (frames were lost,
        and one longer than ROOM_LOCK_TTL let the locks expire).
        """
        started = time.monotonic()
        # Locks first: a restart lost them, and a long outage let them expire; until they are
        # back another process could start a second reply in a room, or reap a live one.
        await reply_runner().reassert()
        await self.rejoin_all()
        if not await self.layer_works():
            log.error("the channel layer does not carry frames yet; sockets resync later")
            self.redis_down_since = self.redis_down_since or time.monotonic()
            return
        await self.resync_all()
        await self.refresh_presence(announce=True)
        log.warning(
            "recovered from the Redis outage in %.1f s: %s sockets resynchronised",
            time.monotonic() - started,
            len(self.connections),
        )

    async def layer_works(self) -> bool:
        """Whether a frame sent through the channel layer comes back to this process.

        The pubsub layer resubscribes on its own after reconnecting, about a second after Redis
        is back; until then frames are lost, so snapshots sent earlier could miss some.
        """
        if self._probe is None:
            self._probe = LayerProbe()
        return await self._probe.round_trip(LAYER_PROBE_TIMEOUT)

    async def rejoin_all(self) -> None:
        """Add every socket to its room's group again (core layer: memberships live in Redis
        and expire after `group_expiry`; pubsub: in-process, so this is cheap and harmless)."""
        for consumer, _, _ in list(self.connections.values()):
            try:
                await consumer.rejoin_group()
            except Exception as exc:
                log.warning("rejoin failed: %s", exc)

    async def resync_all(self) -> None:
        """Send every socket a fresh snapshot: one database read per room, not per socket."""
        by_room: dict[int, list[tuple[RoomConsumer, str]]] = {}
        for consumer, room_id, username in list(self.connections.values()):
            by_room.setdefault(room_id, []).append((consumer, username))
        for room_id, members in by_room.items():
            try:
                frame = await room_snapshot(room_id)
            except Exception as exc:
                log.warning("room %s not resynchronised: %s", room_id, exc)
                continue
            for consumer, _username in members:
                try:
                    user = consumer.scope["user"]
                    await consumer.send_frame(await personalize(frame, room_id, user))
                except Exception as exc:
                    log.debug("resync of a socket failed: %s", exc)


class LayerProbe:
    """A channel of this process that frames can be sent to, to prove the layer works again."""

    def __init__(self) -> None:
        self.channel: str | None = None
        self.waiting: dict[str, asyncio.Future[None]] = {}
        self.reader: asyncio.Task[None] | None = None

    async def round_trip(self, timeout: float) -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        layer = get_channel_layer()
        if layer is None:
            return True
        if self.channel is None:
            self.channel = await layer.new_channel()
            # One reader for the process's lifetime: cancelling a pubsub receive unsubscribes.
            self.reader = asyncio.create_task(self._read(layer, self.channel))
        while loop.time() < deadline:
            nonce = uuid.uuid4().hex
            arrived = self.waiting[nonce] = loop.create_future()
            try:
                await layer.send(self.channel, {"type": "probe", "nonce": nonce})
                await asyncio.wait_for(arrived, min(1.0, max(0.01, deadline - loop.time())))
                return True
            except Exception:
                await asyncio.sleep(0.2)
            finally:
                self.waiting.pop(nonce, None)
        return False

    async def _read(self, layer: Any, channel: str) -> None:
        while True:
            try:
                message = await layer.receive(channel)
            except asyncio.CancelledError:
                raise
            except Exception:  # Redis still away (core layer): try again shortly
                await asyncio.sleep(0.5)
                continue
            future = self.waiting.get(message.get("nonce", ""))
            if future is not None and not future.done():
                future.set_result(None)

    def close(self) -> None:
        if self.reader is not None:
            self.reader.cancel()


def rejoin_interval() -> float:
    """How often memberships are renewed: well inside the layer's group expiry."""
    expiry = getattr(get_channel_layer(), "group_expiry", None)
    if isinstance(expiry, int | float) and expiry > 0:
        return max(1.0, min(REJOIN_EVERY, expiry / 4))
    return REJOIN_EVERY


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
    if not await state.reply_locks.acquire(message.room_id, token, settings.ROOM_LOCK_TTL):
        return
    try:
        live = await state.live.get(message.room_id)
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
        await state.live.clear(message.room_id, message.pk)
    finally:
        await state.reply_locks.release(message.room_id, token)
    if await database_sync_to_async(selectors.has_unanswered)(message.room_id):
        await reply_runner().request(message.room_id)


async def shutdown() -> None:
    """On SIGTERM: interrupt running replies (stored, announced, locks freed), then stop."""
    log.info("shutting down: ending running replies")
    await reply_runner().shutdown(timeout=SHUTDOWN_REPLIES_TIMEOUT)
    try:
        await asyncio.wait_for(_services.leave_all(), SHUTDOWN_PRESENCE_TIMEOUT)
    except Exception as exc:  # Redis away: the entries expire by themselves (PRESENCE_TTL)
        log.warning("shutdown: presence not cleared: %s: %s", type(exc).__name__, exc)
    _services.stop()


def announce_configuration() -> None:
    """Say at start-up how far this process can scale: without Redis, to itself only."""
    if settings.REDIS_URL:
        log.info(
            "channel layer: Redis (%s); replies, stops, presence and limits are shared by "
            "every process",
            settings.REDIS_CHANNEL_LAYER,
        )
        return
    # Advice, not a failure: one process is exactly what `make run` wants. Only a deployment
    # (debug off) hears it as a WARNING, since a second dyno would not share this one's rooms.
    log.log(
        logging.INFO if settings.DEBUG else logging.WARNING,
        "REDIS_URL is not set, so rooms and replies live in this process's memory: right for "
        "ONE process (make run, a single dyno). To run more, give every process the same "
        "Redis: REDIS_URL=redis://host:6379/0 (docs/operations.md).",
    )


def install_daphne_hooks() -> None:
    """Under daphne, start the loops when the reactor runs and end replies before it stops.

    Daphne cancels only the connections' application instances on SIGTERM; tasks the process
    owns would die with the reactor, with no `finally`, no database write and locks held.
    """
    import sys

    if "twisted.internet.reactor" not in sys.modules:
        return
    from twisted.internet import defer
    from twisted.internet import reactor as installed

    # The module object stands for the installed reactor; its stubs do not say which one.
    reactor: Any = installed
    if not hasattr(reactor, "_asyncioEventloop"):
        return

    def start() -> None:
        asyncio.get_event_loop().call_soon(_services.ensure_started)

    def before_shutdown() -> Any:
        loop = reactor._asyncioEventloop
        return defer.Deferred.fromFuture(asyncio.ensure_future(shutdown(), loop=loop))

    reactor.callWhenRunning(start)
    reactor.addSystemEventTrigger("before", "shutdown", before_shutdown)
