"""The streaming and fan-out loop: each room's reply runs in a task owned by the process.

A reply belongs to the room, not to the tab that asked: it runs here until it ends, holding the
room's lock (renewed while it streams), and every batch of text goes to the room's group with a
`seq`. After any ending the lock is released and, if users wrote meanwhile, the next reply starts.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from channels.db import database_sync_to_async
from django.conf import settings

from chatsite.llm.base import ChatRequest, Provider, StreamEnd, TextDelta, Usage, UsageUpdate
from chatsite.llm.errors import (
    ConfigurationError,
    ContextTooLongError,
    LLMError,
    RetryableError,
)
from chatsite.llm.registry import get_provider
from chatsite.rooms import selectors, services
from chatsite.rooms.models import Message
from chatsite.rooms.services import ReplyOutcome

from . import protocol, requests
from .batching import DeltaBatcher
from .broadcast import broadcast
from .livestate import SharedState, shared_state
from .summaries import summarizer

log = logging.getLogger(__name__)

STOP_POLL_SECONDS = 0.2  # how often a reply looks for a stop request from any process
SHUTDOWN_STORE_TIMEOUT = 5.0  # seconds to store replies directly when their ending hangs
MAX_RETRY_DELAY = 30.0  # seconds: the longest backoff we choose ourselves
MAX_RETRY_AFTER = 60.0  # seconds: a longer retry-after from the server ends the reply instead
REFIT_MARGIN = 1.1  # a request refitted after "too long" aims this much below the model's count
USER_MESSAGES = {
    "upstream_unavailable": "Claude is unavailable right now. Please try again in a moment.",
    "upstream_error": "Claude's reply broke off. The text so far is kept.",
    "configuration": "The server is misconfigured, so Claude cannot answer. An operator has "
    "been told.",
}


def backoff_delay(
    attempt: int, base: float, retry_after: float | None, rng: random.Random
) -> float:
    """Seconds to wait before `attempt` (2 for the first retry): doubling, jittered, capped,
    and never shorter than the server's retry-after."""
    ceiling = min(MAX_RETRY_DELAY, base * 2.0 ** (attempt - 2))
    delay = ceiling * rng.uniform(0.5, 1.0)
    return max(delay, retry_after or 0.0)


def clean_model_text(text: str) -> str:
    """Model text without NULs and lone surrogates, which PostgreSQL cannot store."""
    return (
        protocol.clean_text(text)
        if any(ord(c) < 32 or 0xD800 <= ord(c) <= 0xDFFF for c in text)
        else text
    )


class DeltaEmitter:
    """Numbers and sends coalesced text from a sender task of its own.

    The model stream only appends text (`add` never waits for Redis): a slow fan-out then makes
    frames bigger instead of making the model stream wait, which would snowball into latency.
    """

    def __init__(
        self,
        interval: float,
        publish: Callable[[int, str], Awaitable[None]],
    ) -> None:
        self.batcher = DeltaBatcher(interval)
        self.publish = publish  # records and sends delta `seq` with its text; must not raise
        self.seq = 0  # the last seq sent
        self.parts: list[str] = []  # text of deltas 1..seq
        self._lock = asyncio.Lock()  # held while a delta is recorded and sent
        self._wake = asyncio.Event()  # text is pending, or the emitter is closing
        self._closing = False
        # Its own task, so that ending the model stream never half-sends a delta.
        self._sender: asyncio.Task[None] | None = None
        self.received_any = False  # any text from the model, sent or pending

    @property
    def text(self) -> str:
        """The text of deltas 1..seq (sent)."""
        return "".join(self.parts)

    @property
    def all_text(self) -> str:
        """Everything the model gave, sent or still waiting to leave."""
        return self.text + "".join(self.batcher.pending)

    @property
    def lock(self) -> asyncio.Lock:
        """Held while a delta is recorded and sent: whoever holds it sees `seq` and `text` agree."""
        return self._lock

    async def add(self, text: str) -> None:
        """Queue model text; it leaves with the next frame (the first one at once)."""
        if not text:
            return
        self.received_any = True
        self.batcher.put(text)
        if self._sender is None:
            self._sender = asyncio.create_task(self._send_loop())
        self._wake.set()

    async def flush(self) -> None:
        """Send whatever waits and stop the sender, before the reply's `generation.finished`."""
        self._closing = True
        self._wake.set()
        if self._sender is not None:
            await self._sender

    async def _send_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self.batcher.has_pending:
                delay = self.batcher.due_in(time.monotonic())
                if delay > 0 and not self._closing:
                    # Wakes early when closing, so the last frame does not wait the interval.
                    try:
                        await asyncio.wait_for(self._closed_signal(), delay)
                    except TimeoutError:
                        pass
                text = self.batcher.take(time.monotonic())
                if text is not None:
                    async with self._lock:
                        self.seq += 1
                        self.parts.append(text)
                        await self.publish(self.seq, text)
            if self._closing:
                return

    async def _closed_signal(self) -> None:
        while not self._closing:
            self._wake.clear()
            await self._wake.wait()


@dataclass
class ReplyJob:
    """One reply: stream, retry before the first token, stop on request, store the ending."""

    room_id: int
    message_id: int
    request: ChatRequest
    provider: Provider
    state: SharedState
    started: float = field(default_factory=time.monotonic)
    ending: str | None = None  # "stopped" or "interrupted" once someone ends it early
    first_token_at: float | None = None
    usage: Usage = field(default_factory=Usage)
    model: str = ""
    _publish_failed: bool = False
    _finishing: bool = False
    # The reply was ended elsewhere (reaped while this process could not reach Redis): it
    # stops at once and sends, stores and clears nothing more, since the room has moved on.
    abandoned: bool = False
    _stream_task: asyncio.Task[ReplyOutcome] | None = None

    def __post_init__(self) -> None:
        self.model = self.request.model
        self.emitter = DeltaEmitter(settings.STREAM_FLUSH_MS / 1000, self._publish)

    def abandon(self) -> None:
        """Stop without a word: another process already stored this reply's ending."""
        self.abandoned = True
        self.end_early("interrupted")

    def end_early(self, status: str) -> None:
        """Stop streaming now; the reply is stored with `status` (stopped, interrupted)."""
        if self.ending is None:
            self.ending = status
        if self._stream_task is not None:
            self._stream_task.cancel()

    async def run(self) -> None:
        self._stream_task = asyncio.create_task(self._stream())
        watcher = asyncio.create_task(self._watch_for_stop())
        try:
            outcome = await asyncio.shield(self._stream_task)
        except asyncio.CancelledError:
            if self.ending is None:
                # Our own task is being cancelled (the loop is going away): end as interrupted.
                self.end_early("interrupted")
            try:
                outcome = await self._stream_task
            except asyncio.CancelledError:
                outcome = self._outcome(self.ending or "interrupted")
        finally:
            watcher.cancel()
        await self._finish(outcome)

    async def _watch_for_stop(self) -> None:
        while True:
            await asyncio.sleep(STOP_POLL_SECONDS)
            try:
                if await self.state.stop_requested(self.room_id, self.message_id):
                    self.end_early("stopped")
                    return
            except Exception as exc:  # Redis down: keep streaming, look again later
                log.debug("stop check failed: %s", exc)

    async def _stream(self) -> ReplyOutcome:
        """Ask the circuit breaker, call the model (with retries), tell the breaker the outcome.

        The breaker hears about each reply once: a reply that retried four times and then gave
        up is one failure, not five. So LLM_BREAKER_FAILURES counts replies that users saw
        fail, whatever LLM_MAX_RETRIES is; one reply's own retries cannot open the circuit; and
        the half-open probe keeps its retries instead of being refused by its own probe slot.
        Stopped or interrupted replies and configuration errors say nothing about the upstream's
        health and are not counted.
        """
        if not await self._breaker_allows():
            log.warning("reply %s not attempted: the circuit breaker is open", self.message_id)
            return self._outcome("error", "upstream_unavailable", "circuit breaker open")
        outcome = await self._attempts()
        if outcome.status == "complete":
            await self._breaker_record(True)
        elif outcome.error_code in {"upstream_unavailable", "upstream_error"}:
            await self._breaker_record(False)
        return outcome

    async def _attempts(self) -> ReplyOutcome:
        """Stream the reply; before the first token, retry what is worth retrying."""
        cfg = settings
        attempt = 1
        rng = random.Random()
        refitted = False
        while True:
            try:
                async for event in self.provider.stream(self.request):
                    if isinstance(event, TextDelta):
                        if self.first_token_at is None:
                            self.first_token_at = time.monotonic()
                        await self.emitter.add(clean_model_text(event.text))
                    elif isinstance(event, UsageUpdate):
                        self.usage = event.usage
                    elif isinstance(event, StreamEnd):
                        self.usage = event.usage
                        return self._outcome("complete", stop_reason=event.stop_reason)
                log.warning("reply %s: the stream ended without an end event", self.message_id)
                code = "upstream_error" if self.emitter.received_any else "upstream_unavailable"
                return self._outcome("error", code, "stream ended without an end")
            except RetryableError as exc:
                if self.emitter.received_any:
                    # Text already reached the room: a retry would repeat it. Keep the part.
                    log.warning(
                        "reply %s broke after the first token: %s", self.message_id, exc.detail
                    )
                    return self._outcome("error", "upstream_error", exc.detail)
                if exc.retry_after is not None and exc.retry_after > MAX_RETRY_AFTER:
                    # Holding the room that long helps nobody: say so now, they can ask again.
                    log.warning(
                        "reply %s: the model asks to wait %.0f s; giving up: %s",
                        self.message_id,
                        exc.retry_after,
                        exc.detail,
                    )
                    return self._outcome("error", "upstream_unavailable", exc.detail)
                if attempt > cfg.LLM_MAX_RETRIES:
                    log.warning(
                        "reply %s: giving up after %s attempts: %s",
                        self.message_id,
                        attempt,
                        exc.detail,
                    )
                    return self._outcome("error", "upstream_unavailable", exc.detail)
                attempt += 1
                self._maybe_fall_back(exc)
                delay = backoff_delay(attempt, cfg.LLM_RETRY_BASE_DELAY, exc.retry_after, rng)
                log.info(
                    "reply %s: %s, attempt %s in %.2fs: %s",
                    self.message_id,
                    exc.reason,
                    attempt,
                    delay,
                    exc.detail,
                )
                await broadcast(
                    self.room_id,
                    protocol.generation_retrying(
                        self.message_id, attempt, delay, exc.reason, self.model
                    ),
                )
                await asyncio.sleep(delay)
            except ContextTooLongError as exc:
                if refitted or not await self._refit(exc):
                    log.error("reply %s does not fit the model's window: %s", self.message_id, exc)
                    return self._outcome("error", "configuration", exc.detail)
                refitted = True
            except ConfigurationError as exc:
                # Operators get the detail (never the key); users read a configuration problem.
                log.error("reply %s refused by the model: %s", self.message_id, exc.detail)
                return self._outcome("error", "configuration", exc.detail)
            except LLMError as exc:
                log.warning("reply %s failed: %s", self.message_id, exc.detail)
                code = "upstream_error" if self.emitter.received_any else "upstream_unavailable"
                return self._outcome("error", code, exc.detail)

    async def _refit(self, exc: ContextTooLongError) -> bool:
        """Build the request again for the density the model just reported; False if it cannot.

        The estimate and the room's calibration keep requests inside the window; this is for
        the one that still did not fit (a room's first, very dense turns), before any text.
        """
        estimated = self.request.estimated_input_tokens
        if exc.input_tokens is None or not estimated or self.emitter.received_any:
            return False
        density = exc.input_tokens / estimated * REFIT_MARGIN
        log.warning(
            "reply %s: the model counted %s input tokens for an estimate of %s; trimming for "
            "%.2f tokens per estimated token",
            self.message_id,
            exc.input_tokens,
            estimated,
            density,
        )
        rebuilt = await database_sync_to_async(requests.rebuild_request)(
            self.room_id, self.message_id, self.request.model, density
        )
        if rebuilt is None or rebuilt.estimated_input_tokens >= estimated:
            return False
        self.request = rebuilt
        return True

    def _maybe_fall_back(self, exc: RetryableError) -> None:
        """Switch to LLM_FALLBACK_MODEL when the primary is overloaded (before the first token).

        Once switched, the remaining attempts stay on the fallback: the primary just said it
        has no room, and flapping between models would only add latency.
        """
        fallback = settings.LLM_FALLBACK_MODEL
        if (
            exc.reason != "overloaded"
            or not fallback
            or fallback == self.model
            or self.provider.name != "anthropic"
        ):
            return
        log.warning(
            "reply %s: %s is overloaded, trying the fallback model %s",
            self.message_id,
            self.model,
            fallback,
        )
        self.request = dataclasses.replace(self.request, model=fallback)
        self.model = fallback

    async def _breaker_allows(self) -> bool:
        try:
            return await self.state.breaker_allows(settings.LLM_BREAKER_COOLDOWN)
        except Exception:  # the breaker is advice: without Redis, try the model anyway
            return True

    async def _breaker_record(self, success: bool) -> None:
        try:
            opened = await self.state.breaker_record(
                success, settings.LLM_BREAKER_FAILURES, settings.LLM_BREAKER_COOLDOWN
            )
        except Exception as exc:
            log.debug("breaker update failed: %s", exc)
            return
        if opened:
            log.error(
                "circuit breaker open: %s consecutive replies failed upstream; new replies fail "
                "fast for %ss, then one probe is let through",
                settings.LLM_BREAKER_FAILURES,
                settings.LLM_BREAKER_COOLDOWN,
            )

    def _outcome(
        self, status: str, error_code: str = "", detail: str = "", stop_reason: str | None = None
    ) -> ReplyOutcome:
        now = time.monotonic()
        ttft = (
            None
            if self.first_token_at is None
            else int((self.first_token_at - self.started) * 1000)
        )
        return ReplyOutcome(
            status=status,
            text="",  # filled in by _finish after the last flush
            stop_reason=stop_reason if status == "complete" else None,
            usage=self.usage,
            error_code=error_code,
            error_message=detail,
            time_to_first_token_ms=ttft,
            duration_ms=int((now - self.started) * 1000),
            model=self.model,
            estimated_input_tokens=self.request.estimated_input_tokens,
        )

    async def _publish(self, seq: int, text: str) -> None:
        """Record delta `seq` in the live state, then send it to the room."""
        if self.abandoned:
            return
        try:
            full = self.emitter.text if self._publish_failed else None
            done = await self.state.append_generation(
                self.room_id, self.message_id, seq, text, full
            )
            if not done:  # the live state was lost (Redis restarted): rebuild it whole
                await self.state.append_generation(
                    self.room_id, self.message_id, seq, text, self.emitter.text
                )
            self._publish_failed = False
        except Exception as exc:
            self._publish_failed = True
            log.warning("live state of reply %s not updated: %s", self.message_id, exc)
        await broadcast(self.room_id, protocol.generation_delta(self.message_id, seq, text))

    async def restore_live_state(self) -> None:
        """Write the live state (text of deltas 1..seq) again: Redis restarted and lost it.

        Under the emitter's lock, so no delta is recorded meanwhile and seq and text agree.
        """
        async with self.emitter.lock:
            if self._finishing:
                return
            await self.state.append_generation(
                self.room_id, self.message_id, self.emitter.seq, "", self.emitter.text
            )

    @property
    def finishing(self) -> bool:
        """Whether the reply's own ending is being stored (it no longer streams)."""
        return self._finishing

    async def store_interrupted_now(self) -> bool:
        """Store the reply as `interrupted` with all its text, sent or pending, at once.

        For a shutdown whose normal ending hangs: that goes through Redis first (the last
        delta, then the database, then `generation.finished`), and when Redis hangs it can
        outlast the process, leaving the reaper only what Redis held. Nobody is told here:
        tabs get the stored text from their next snapshot. False if the reply's own ending
        is under way or it was already stored.
        """
        if self._finishing:
            return False
        outcome = dataclasses.replace(self._outcome("interrupted"), text=self.emitter.all_text)
        return bool(await database_sync_to_async(services.finish_reply)(self.message_id, outcome))

    async def _finish(self, outcome: ReplyOutcome) -> None:
        await self.emitter.flush()
        if self.abandoned:
            log.warning(
                "reply %s was ended by another process while this one could not reach Redis; "
                "its remaining text is dropped",
                self.message_id,
            )
            return
        self._finishing = True
        text = self.emitter.text
        status = outcome.status
        if self.ending is not None and status != "complete":
            status = self.ending
        error = None
        if status == "error":
            code = outcome.error_code or "upstream_error"
            error = {"code": code, "message": USER_MESSAGES.get(code, "Claude could not answer.")}
        final = ReplyOutcome(
            status=status,
            text=text,
            stop_reason=outcome.stop_reason if status == "complete" else None,
            usage=outcome.usage,
            error_code=error["code"] if error else "",
            error_message=outcome.error_message,
            time_to_first_token_ms=outcome.time_to_first_token_ms,
            duration_ms=outcome.duration_ms,
            model=self.model,
            estimated_input_tokens=outcome.estimated_input_tokens,
        )
        stored = await store_ending(self.message_id, final)
        if stored is None:
            # Keep the live text: once the database is back, the reaper stores it (interrupted).
            log.error("reply %s not stored: the database is unavailable", self.message_id)
            return
        if not stored:
            log.warning("reply %s was already finished elsewhere", self.message_id)
        try:
            await self.state.clear_generation(self.room_id, self.message_id)
        except Exception as exc:
            log.warning("live state of reply %s not cleared: %s", self.message_id, exc)
        if stored:
            usage = (final.usage or Usage()).as_dict()
            await broadcast(
                self.room_id,
                protocol.generation_finished(
                    self.message_id, status, text, final.stop_reason, usage, error
                ),
            )


async def store_ending(message_id: int, outcome: ReplyOutcome) -> bool | None:
    """Store a reply's ending: True if stored, False if it had ended already (e.g. reaped),
    None if the database kept failing (retried a few times: the reply would stay streaming)."""
    for attempt in range(5):
        try:
            return bool(await database_sync_to_async(services.finish_reply)(message_id, outcome))
        except Exception as exc:
            log.error("storing reply %s failed (attempt %s): %s", message_id, attempt + 1, exc)
            await asyncio.sleep(0.2 * 2**attempt)
    return None


class ReplyRunner:
    """This process's running replies, by room."""

    def __init__(self) -> None:
        self.jobs: dict[int, ReplyJob] = {}
        self.tasks: dict[int, asyncio.Task[None]] = {}
        self.tokens: dict[int, str] = {}  # the lock token of each room we run a reply in
        self.shutting_down = False

    @property
    def state(self) -> SharedState:
        return shared_state()

    async def request(self, room_id: int) -> bool:
        """Start the room's next reply here unless one runs (anywhere); True if it started."""
        if self.shutting_down or room_id in self.tasks:
            return False
        token = uuid.uuid4().hex
        try:
            if not await self.state.acquire_room(room_id, token, settings.ROOM_LOCK_TTL):
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
            return bool(await database_sync_to_async(_has_streaming_reply)(room_id))
        except Exception as exc:
            log.error("cannot check room %s for a running reply: %s", room_id, exc)
            return True  # the reaper tries again later

    async def _release(self, room_id: int, token: str) -> None:
        try:
            await self.state.release_room(room_id, token)
        except Exception as exc:
            log.warning("room %s's lock not released (it expires): %s", room_id, exc)

    async def _run_room(self, room_id: int, token: str) -> None:
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
        prepared = await database_sync_to_async(requests.prepare_reply)(room_id, provider)
        if prepared is None:
            return
        message_id, request = prepared
        job = ReplyJob(room_id, message_id, request, provider, self.state)
        self.jobs[room_id] = job
        try:
            await self.state.start_generation(room_id, message_id, request.model)
        except Exception as exc:
            log.warning("live state of reply %s not started: %s", message_id, exc)
        await broadcast(room_id, protocol.generation_started(message_id, request.model))
        if self.shutting_down:
            job.end_early("interrupted")
        await job.run()
        if not self.shutting_down:
            # Long rooms: fold old turns into the summary in the background, never in the way.
            summarizer().after_reply(room_id, message_id, request)

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
                if not await self.state.renew_room(room_id, token, ttl):
                    log.error("room %s's lock is held by another process", room_id)
            except Exception as exc:
                log.warning("room %s's lock not renewed: %s", room_id, exc)
            job = self.jobs.get(room_id)
            if job is None or job.abandoned:
                continue
            try:
                reaped = not await database_sync_to_async(_still_streaming)(job.message_id)
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
                if not await self.state.renew_room(room_id, token, ttl):
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


def _still_streaming(message_id: int) -> bool:
    return Message.objects.filter(pk=message_id, status=Message.Status.STREAMING).exists()


def _has_streaming_reply(room_id: int) -> bool:
    return Message.objects.filter(room_id=room_id, status=Message.Status.STREAMING).exists()


_runner: ReplyRunner | None = None


def reply_runner() -> ReplyRunner:
    """This process's reply runner."""
    global _runner
    if _runner is None:
        _runner = ReplyRunner()
    return _runner


def reset_reply_runner() -> None:
    """Forget the runner (tests start each case with a fresh one)."""
    global _runner
    _runner = None
