"""Each room's reply runs here, in a task owned by the process, one room at a time.

A reply belongs to the room, not to the tab that asked. `ReplyRunner.request(room_id)` takes the
room's lock (in the shared state, across processes) and runs a `ReplyJob` while a keeper renews
the lock; after any ending the lock is released and, if users wrote meanwhile, the next reply
starts (the hand-over). On shutdown every running reply ends as interrupted.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable

from channels.db import database_sync_to_async
from django.conf import settings

from chatsite.llm.base import ChatRequest
from chatsite.llm.registry import get_provider
from chatsite.rooms import selectors
from chatsite.usage.logs import new_request_id, request_id_var

from . import reply_ending, reply_request
from .current import current_process
from .reply_job import ReplyJob
from .state import SharedState

log = logging.getLogger(__name__)

SHUTDOWN_STORE_TIMEOUT = 5.0  # seconds to store replies directly when their ending hangs

# (room_id, reply_id, request) of a reply that ran to its end.
AfterReply = Callable[[int, int, ChatRequest], None]


class ReplyRunner:
    """This process's running replies, by room."""

    def __init__(self, state: SharedState, after_reply: AfterReply | None = None) -> None:
        self.state = state
        # Called when a reply ran to its end (not at shutdown): the summarizer's folds.
        self.after_reply = after_reply
        self.jobs: dict[int, ReplyJob] = {}
        self.tasks: dict[int, asyncio.Task[None]] = {}
        self.tokens: dict[int, str] = {}  # the lock token of each room we run a reply in
        self.shutting_down = False

    async def request(self, room_id: int) -> bool:
        """Start the room's next reply here unless one runs (anywhere); True if it started."""
        if self.shutting_down or room_id in self.tasks:
            return False
        token = uuid.uuid4().hex
        try:
            if not await self.state.reply_locks.acquire(room_id, token, settings.ROOM_LOCK_TTL):
                return False
        except Exception as exc:
            log.error("cannot take room %s's lock: %s", room_id, exc)
            return False
        if room_id in self.tasks or await self._reply_still_streaming(room_id):
            await self._release(room_id, token)
            return False
        self.tokens[room_id] = token
        task = asyncio.create_task(self._run_room(room_id, token), name=f"reply-room-{room_id}")
        self.tasks[room_id] = task
        return True

    async def _reply_still_streaming(self, room_id: int) -> bool:
        """Whether the database says a reply of the room still runs although we hold the lock.

        That happens when Redis restarted and lost the lock of a live reply (its holder takes it
        back at its next renewal) or when the holder died (the reaper interrupts the reply, then
        starts the next one). Either way a second reply must not start beside it.
        """
        try:
            return await reply_ending.room_has_streaming_reply(room_id)
        except Exception as exc:
            log.error("cannot check room %s for a running reply: %s", room_id, exc)
            return True  # the reaper tries again later

    async def _release(self, room_id: int, token: str) -> None:
        try:
            await self.state.reply_locks.release(room_id, token)
        except Exception as exc:
            log.warning("room %s's lock not released (it expires): %s", room_id, exc)

    async def _run_room(self, room_id: int, token: str) -> None:
        # This task's own context: every log line of the reply carries its request id.
        request_id_var.set(new_request_id())
        keeper = asyncio.create_task(self._keep_lock(room_id, token))
        try:
            await self._run_reply(room_id)
        except Exception:
            log.exception("reply in room %s crashed", room_id)
        finally:
            keeper.cancel()
            await self._release(room_id, token)
            self.tasks.pop(room_id, None)
            self.jobs.pop(room_id, None)
            self.tokens.pop(room_id, None)
        # Released first, checked second: a message stored meanwhile is never left unanswered.
        if self.shutting_down:
            return
        try:
            if await database_sync_to_async(selectors.has_unanswered)(room_id):
                await self.request(room_id)
        except Exception as exc:  # the database is down: the reaper starts the reply later
            log.warning("room %s: next reply not started: %s", room_id, exc)

    async def _run_reply(self, room_id: int) -> None:
        provider = get_provider()
        # The reply is created here: its message (status streaming) and its model request.
        prepared = await database_sync_to_async(reply_request.prepare_reply)(room_id, provider)
        if prepared is None:
            return
        message_id, request = prepared
        job = ReplyJob(room_id, message_id, request, provider, self.state)
        self.jobs[room_id] = job
        await job.live.start(request.model)
        if self.shutting_down:
            job.end_early("interrupted")
        await job.run()
        if not self.shutting_down and self.after_reply is not None:
            # Long rooms: fold old turns into the summary in the background, never in the way.
            self.after_reply(room_id, message_id, request)

    async def _keep_lock(self, room_id: int, token: str) -> None:
        """Renew the room's lock while the reply runs, and notice if the room moved on.

        The lock says who may run a reply; the database says whether this one still runs.
        When this process could not renew for longer than ROOM_LOCK_TTL (Redis unreachable
        from here only, a stalled loop), another process's reaper may have stored the reply as
        interrupted and started the next: then this one must stop, or two would stream.
        """
        ttl = settings.ROOM_LOCK_TTL
        while True:
            await asyncio.sleep(ttl / 5)
            try:
                if not await self.state.reply_locks.renew(room_id, token, ttl):
                    log.error("room %s's lock is held by another process", room_id)
            except Exception as exc:
                log.warning("room %s's lock not renewed: %s", room_id, exc)
            job = self.jobs.get(room_id)
            if job is None or job.abandoned:
                continue
            try:
                reaped = not await reply_ending.still_streaming(job.message_id)
            except Exception as exc:  # the database is away: nobody can reap meanwhile either
                log.debug("reply %s: status not checked: %s", job.message_id, exc)
                continue
            if reaped and not job.finishing:
                job.abandon()

    def running(self, room_id: int) -> bool:
        return room_id in self.tasks

    async def reassert(self) -> None:
        """After Redis restarted empty: take our rooms' locks back and rewrite live replies.

        Until then another process could take a room whose reply runs here, and snapshots
        would show a running reply without its text.
        """
        ttl = settings.ROOM_LOCK_TTL
        for room_id, token in list(self.tokens.items()):
            try:
                if not await self.state.reply_locks.renew(room_id, token, ttl):
                    log.error("room %s's lock was taken by another process", room_id)
                job = self.jobs.get(room_id)
                if job is not None:
                    await job.restore_live_state()
            except Exception as exc:
                log.warning("room %s's lock and live state not restored: %s", room_id, exc)

    async def shutdown(self, timeout: float = 10.0) -> None:
        """Interrupt every running reply: store partial text, tell the rooms, free the locks."""
        self.shutting_down = True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        if self.tasks:
            log.info("shutdown: interrupting %s running replies", len(self.tasks))
        # In a loop: a reply whose lock was being taken as the shutdown began starts late, and
        # ends as interrupted too (`_run_reply` looks at `shutting_down`).
        while self.tasks:
            for job in list(self.jobs.values()):
                job.end_early("interrupted")
            remaining = deadline - loop.time()
            if remaining <= 0:
                log.error(
                    "shutdown: %s replies did not end in %ss (Redis or the database hangs); "
                    "storing their text directly, the rooms are freed when the locks expire",
                    len(self.tasks),
                    timeout,
                )
                await self._store_unfinished()
                return
            await asyncio.wait(list(self.tasks.values()), timeout=min(remaining, 1.0))

    async def _store_unfinished(self) -> None:
        """Store each reply that could not finish (see `ReplyJob.store_interrupted_now`)."""
        for job in list(self.jobs.values()):
            try:
                stored = await asyncio.wait_for(job.store_interrupted_now(), SHUTDOWN_STORE_TIMEOUT)
            except Exception as exc:
                log.error("shutdown: reply %s not stored: %s", job.message_id, exc)
                continue
            if stored:
                log.warning(
                    "shutdown: reply %s stored as interrupted without telling its room",
                    job.message_id,
                )


def reply_runner() -> ReplyRunner:
    """This process's reply runner (`current_process().runner`)."""
    return current_process().runner
