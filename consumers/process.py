"""One server process: its shared state, reply runner, summarizer, presence, socket registry
and background loops, built from a `ProcessConfig` and started explicitly (by
`consumers.startup` under daphne, or by a test fixture), never by the first socket.

To add a background loop: `process.loops.every(seconds, job)` (before or after `start`), with
`job` an async callable that raises freely (failures are logged, the loop goes on).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

from channels.db import database_sync_to_async

from chatsite.llm.base import ChatRequest
from chatsite.rooms import selectors
from chatsite.rooms.models import Room

from . import session_watch
from .fanout import RoomFanout
from .kept_reads import KeptReads
from .layer_probe import rejoin_interval
from .loops import BackgroundLoops
from .presence import RoomPresence
from .protocol.frames import SnapshotFrame
from .reaper import Reaper
from .recovery import RedisRecovery
from .reply_runner import ReplyRunner
from .sockets import SocketRegistry
from .state import SharedState, memory_state, redis_state
from .summarizer import Summarizer
from .task_set import TaskSet

log = logging.getLogger(__name__)

ADMIT_AT_ONCE = 16  # sockets admitted at the same time per process (bench: storms, issue 15)


@dataclass(frozen=True)
class ProcessConfig:
    """What a process is built from (`from_settings` reads Django's)."""

    redis_url: str = ""  # empty: state in this process's memory (one process only)
    redis_prefix: str = "roomchat"
    redis_options: dict[str, Any] = field(default_factory=dict)
    presence_every: float = 10.0  # seconds between presence refreshes (PRESENCE_REFRESH)
    reap_every: float = 3.0  # seconds between looks for orphaned replies and unanswered rooms
    redis_watch_every: float = 2.0  # seconds between checks that Redis answers, same server
    # SIGTERM: Heroku kills the dyno 30 s after it. Replies first: stored and announced,
    # normally in well under a second; if that hangs (a Redis call can hang for its 15 s socket
    # timeout), stored directly within 5 s more. Then presence: 18 s at most.
    shutdown_replies_timeout: float = 10.0
    shutdown_presence_timeout: float = 3.0

    @classmethod
    def from_settings(cls) -> ProcessConfig:
        from django.conf import settings

        return cls(
            redis_url=settings.REDIS_URL or "",
            redis_prefix=settings.REDIS_KEY_PREFIX,
            redis_options=dict(settings.REDIS_OPTIONS or {}),
            presence_every=settings.PRESENCE_REFRESH,
        )


class RoomchatProcess:
    """Everything one server process owns besides its sockets' consumers."""

    def __init__(self, config: ProcessConfig, state: SharedState | None = None) -> None:
        self.config = config
        if state is None:
            state = (
                redis_state(config.redis_url, config.redis_prefix, config.redis_options)
                if config.redis_url
                else memory_state()
            )
        self.state = state
        self.sockets = SocketRegistry()
        # Room frames from the layer, written to this process's sockets of the room in one loop.
        self.fanout = RoomFanout()
        # What admitting a socket reads of its room: the room by slug and the shared part of
        # `room.snapshot`, one read per room for all who asked before it began, kept while
        # nothing in a public room changed (consumers/kept_reads.py).
        self.rooms_by_slug: KeptReads[str, Room | None] = KeptReads(
            self.fanout, _room_by_slug, _describe_room
        )
        self.snapshots: KeptReads[int, SnapshotFrame] = KeptReads(
            self.fanout, _room_snapshot, _describe_snapshot, room_of_key=lambda room_id: room_id
        )
        # Sockets being admitted (user, room, snapshot, presence) at the same time: a storm
        # queues in accepted sockets while the loop keeps time for running replies.
        self.admission = asyncio.Semaphore(ADMIT_AT_ONCE)
        self.presence = RoomPresence(state)
        self.summarizer = Summarizer(state)
        self.runner = ReplyRunner(state, after_reply=self._after_reply)
        self.reaper = Reaper(state, self.runner)
        # `auto` rooms' reply decisions in flight (consumers.actions.conversation).
        self.decisions = TaskSet("reply decisions")
        self.recovery = (
            RedisRecovery(state.redis, self.runner, self.sockets, self.presence)
            if state.redis is not None
            else None
        )
        self.loops = BackgroundLoops(quiet=self._redis_known_down)
        self._own_loops_added = False

    def _after_reply(self, room_id: int, reply_id: int, request: ChatRequest) -> None:
        # Long rooms: fold old turns into the summary in the background.
        self.summarizer.after_reply(room_id, reply_id, request)

    def _redis_known_down(self) -> bool:
        # While Redis is known to be down, the watcher has said so once already.
        return self.recovery is not None and self.recovery.down_since is not None

    async def refresh_presence(self) -> None:
        await self.presence.refresh(self.sockets)

    async def close_ended_sessions(self) -> None:
        await session_watch.close_ended(self.sockets)

    def start(self) -> None:
        """Start the background loops on the running event loop (once)."""
        if self.loops.running:
            return
        if not self._own_loops_added:
            self._own_loops_added = True
            cfg = self.config
            rejoin = rejoin_interval()  # the channel layer's, as configured now
            self.loops.every(cfg.presence_every, self.refresh_presence)
            self.loops.every(cfg.reap_every, self.reaper.reap_once)
            self.loops.every(rejoin, self.sockets.rejoin_all, first_after=rejoin)
            if self.recovery is not None:
                self.loops.every(cfg.redis_watch_every, self.recovery.watch)
            # Sockets whose session ended close with 4401 (SPEC §6; consumers/session_watch.py).
            self.loops.every(session_watch.CHECK_EVERY, self.close_ended_sessions)
        self.loops.start()

    async def shutdown(self) -> None:
        """On SIGTERM: interrupt running replies (stored, announced, locks freed), leave
        presence, then stop the loops."""
        log.info("shutting down: ending running replies")
        # Decisions in flight store their answer meanwhile; a "yes" is answered by the reaper.
        await asyncio.gather(
            self.runner.shutdown(timeout=self.config.shutdown_replies_timeout),
            self.decisions.finish(timeout=self.config.shutdown_replies_timeout),
        )
        try:
            await asyncio.wait_for(
                self.presence.leave_all(self.sockets), self.config.shutdown_presence_timeout
            )
        except (
            Exception
        ) as exc:  # Redis away: the entries expire by themselves (settings.PRESENCE_TTL)
            log.warning("shutdown: presence not cleared: %s: %s", type(exc).__name__, exc)
        self.stop()

    def stop(self) -> None:
        """Cancel the loops, background folds and pending announcements (no clean-up)."""
        self.loops.stop()
        self.fanout.stop()
        self.summarizer.cancel_all()
        for task in list(self.decisions.tasks):
            task.cancel()
        self.presence.cancel_pending()
        if self.recovery is not None:
            self.recovery.close()


async def _room_by_slug(slug: str) -> Room | None:
    """The room (members prefetched for the access check); shared read-only by its readers."""
    room: Room | None = await database_sync_to_async(selectors.room_by_slug)(slug)
    return room


def _describe_room(slug: str, room: Room | None) -> tuple[int, bool] | None:
    return None if room is None else (room.pk, room.is_private)


def _describe_snapshot(room_id: int, frame: SnapshotFrame) -> tuple[int, bool]:
    return room_id, frame["room"]["private"]


async def _room_snapshot(room_id: int) -> SnapshotFrame:
    from .actions.messages import room_snapshot  # actions import the process's parts

    return await room_snapshot(room_id)
