"""The streaming and fan-out loop: each room's reply runs in a task owned by the process.

A reply belongs to the room, not to the tab that asked: it runs here until it ends, holding the
room's lock (renewed while it streams), and every batch of text goes to the room's group with a
`seq`. After any ending the lock is released and, if users wrote meanwhile, the next reply starts.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from channels.db import database_sync_to_async
from django.conf import settings

from chatsite.llm.base import ChatRequest, Provider, StreamEnd, TextDelta, Usage, UsageUpdate
from chatsite.llm.context import build_turns, estimate_tokens, latest_user_text, request_budget
from chatsite.llm.errors import ConfigurationError, LLMError, RetryableError
from chatsite.llm.registry import get_provider
from chatsite.llm.summary import summary_block
from chatsite.rooms import selectors, services
from chatsite.rooms.services import ReplyOutcome

from . import protocol
from .batching import DeltaBatcher
from .broadcast import broadcast
from .livestate import SharedState, shared_state
from .summaries import summarizer

log = logging.getLogger(__name__)

STOP_POLL_SECONDS = 0.2  # how often a reply looks for a stop request from any process
MAX_RETRY_DELAY = 30.0
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
    ceiling = min(MAX_RETRY_DELAY, base * 2 ** (attempt - 2))
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
    """Numbers and sends coalesced text; a timer flushes text that waits for the interval."""

    def __init__(
        self,
        interval: float,
        publish: Callable[[int, str], Awaitable[None]],
    ) -> None:
        self.batcher = DeltaBatcher(interval)
        self.publish = publish  # sends delta `seq` with its text; must not raise
        self.seq = 0  # the last seq sent
        self.parts: list[str] = []  # text of deltas 1..seq
        self._lock = asyncio.Lock()  # frames leave in seq order
        self._timer: asyncio.Task[None] | None = None
        # The frame leaving now; shielded so that ending a reply never half-sends a delta.
        self._inflight: asyncio.Future[None] | None = None
        self.received_any = False  # any text from the model, sent or pending

    @property
    def text(self) -> str:
        return "".join(self.parts)

    async def add(self, text: str) -> None:
        if not text:
            return
        self.received_any = True
        now = time.monotonic()
        ready = self.batcher.add(text, now)
        if ready is not None:
            await self._emit(ready)
        elif self._timer is None:
            self._timer = asyncio.create_task(self._flush_after(self.batcher.due_in(now)))

    async def _flush_after(self, delay: float) -> None:
        await asyncio.sleep(delay)
        self._timer = None
        ready = self.batcher.take(time.monotonic())
        if ready is not None:
            await self._emit(ready)

    async def flush(self) -> None:
        """Send whatever waits, before the reply's `generation.finished`."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        async with self._lock:
            if self._inflight is not None:
                await self._inflight  # a frame whose sender was cancelled still leaves first
        ready = self.batcher.take(time.monotonic())
        if ready is not None:
            await self._emit(ready)

    async def _emit(self, text: str) -> None:
        async with self._lock:
            if self._inflight is not None and not self._inflight.done():
                await self._inflight
            self.seq += 1
            self.parts.append(text)
            self._inflight = asyncio.ensure_future(self.publish(self.seq, text))
            await asyncio.shield(self._inflight)


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
    _stream_task: asyncio.Task[ReplyOutcome] | None = None

    def __post_init__(self) -> None:
        self.model = self.request.model
        self.emitter = DeltaEmitter(settings.STREAM_FLUSH_MS / 1000, self._publish)

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
        cfg = settings
        attempt = 1
        rng = random.Random()
        while True:
            if not await self._breaker_allows():
                return self._outcome("error", "upstream_unavailable", "circuit breaker open")
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
                        await self._breaker_record(True)
                        return self._outcome("complete", stop_reason=event.stop_reason)
                return self._outcome("error", "upstream_error", "stream ended without an end")
            except RetryableError as exc:
                await self._breaker_record(False)
                if self.emitter.received_any:
                    log.warning(
                        "reply %s broke after the first token: %s", self.message_id, exc.detail
                    )
                    return self._outcome("error", "upstream_error", exc.detail)
                if attempt > cfg.LLM_MAX_RETRIES:
                    log.warning("reply %s: retries exhausted: %s", self.message_id, exc.detail)
                    return self._outcome("error", "upstream_unavailable", exc.detail)
                attempt += 1
                if (
                    exc.reason == "overloaded"
                    and cfg.LLM_FALLBACK_MODEL
                    and self.provider.name == "anthropic"
                ):
                    self.request = ChatRequest(
                        model=cfg.LLM_FALLBACK_MODEL,
                        system=self.request.system,
                        turns=self.request.turns,
                        max_tokens=self.request.max_tokens,
                        summary=self.request.summary,
                    )
                    self.model = cfg.LLM_FALLBACK_MODEL
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
            except ConfigurationError as exc:
                # Operators get the detail (never the key); users read a configuration problem.
                log.error("reply %s refused by the model: %s", self.message_id, exc.detail)
                return self._outcome("error", "configuration", exc.detail)
            except LLMError as exc:
                await self._breaker_record(False)
                log.warning("reply %s failed: %s", self.message_id, exc.detail)
                code = "upstream_error" if self.emitter.received_any else "upstream_unavailable"
                return self._outcome("error", code, exc.detail)

    async def _breaker_allows(self) -> bool:
        try:
            return await self.state.breaker_allows(settings.LLM_BREAKER_COOLDOWN)
        except Exception:  # the breaker is advice: without Redis, try the model anyway
            return True

    async def _breaker_record(self, success: bool) -> None:
        try:
            await self.state.breaker_record(
                success, settings.LLM_BREAKER_FAILURES, settings.LLM_BREAKER_COOLDOWN
            )
        except Exception as exc:
            log.debug("breaker update failed: %s", exc)

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
        )

    async def _publish(self, seq: int, text: str) -> None:
        """Record delta `seq` in the live state, then send it to the room."""
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

    async def _finish(self, outcome: ReplyOutcome) -> None:
        await self.emitter.flush()
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
        )
        stored = await store_ending(self.message_id, final)
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


async def store_ending(message_id: int, outcome: ReplyOutcome) -> bool:
    """Store a reply's ending; retried a few times, since losing it would leave it streaming."""
    for attempt in range(5):
        try:
            return await database_sync_to_async(services.finish_reply)(message_id, outcome)
        except Exception as exc:
            log.error("storing reply %s failed (attempt %s): %s", message_id, attempt + 1, exc)
            await asyncio.sleep(0.2 * 2**attempt)
    return False


@database_sync_to_async
def _prepare_reply(room_id: int, provider: Provider) -> tuple[int, ChatRequest] | None:
    """Create the reply's message and build its request; None if the room is gone."""
    room = selectors.room_by_id(room_id)
    if room is None:
        return None
    model = provider.model_for(room.model)
    message = services.start_reply(room_id, provider.name, model)
    history = selectors.reply_history(room, message.pk)
    budget = request_budget(settings.LLM_CONTEXT_WINDOW, settings.LLM_MAX_TOKENS)
    summary = summary_block(room.summary)
    fixed = estimate_tokens(room.system_prompt) + estimate_tokens(summary)
    if summary and fixed > budget // 2:
        # Only with a tiny window: the conversation itself comes first.
        log.warning("reply %s: summary left out, it does not fit the context", message.pk)
        summary = ""
        fixed = estimate_tokens(room.system_prompt)
    turns, dropped = build_turns(history, budget, fixed)
    if dropped:
        log.info("reply %s: %s oldest turns left out to fit the context", message.pk, dropped)
    request = ChatRequest(
        model=model,
        system=room.system_prompt,
        turns=turns,
        max_tokens=settings.LLM_MAX_TOKENS,
        summary=summary,
        latest_message=latest_user_text(history),
    )
    return message.pk, request


class ReplyRunner:
    """This process's running replies, by room."""

    def __init__(self) -> None:
        self.jobs: dict[int, ReplyJob] = {}
        self.tasks: dict[int, asyncio.Task[None]] = {}
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
        task = asyncio.create_task(self._run_room(room_id, token), name=f"reply-room-{room_id}")
        self.tasks[room_id] = task
        return True

    async def _run_room(self, room_id: int, token: str) -> None:
        keeper = asyncio.create_task(self._keep_lock(room_id, token))
        try:
            await self._run_reply(room_id)
        except Exception:
            log.exception("reply in room %s crashed", room_id)
        finally:
            keeper.cancel()
            try:
                await self.state.release_room(room_id, token)
            except Exception as exc:
                log.warning("room %s's lock not released (it expires): %s", room_id, exc)
            self.tasks.pop(room_id, None)
            self.jobs.pop(room_id, None)
        # Released first, checked second: a message stored meanwhile is never left unanswered.
        if not self.shutting_down and await database_sync_to_async(selectors.has_unanswered)(
            room_id
        ):
            await self.request(room_id)

    async def _run_reply(self, room_id: int) -> None:
        provider = get_provider()
        prepared = await _prepare_reply(room_id, provider)
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
        ttl = settings.ROOM_LOCK_TTL
        while True:
            await asyncio.sleep(ttl / 5)
            try:
                if not await self.state.renew_room(room_id, token, ttl):
                    log.error("room %s's lock was taken by another process", room_id)
            except Exception as exc:
                log.warning("room %s's lock not renewed: %s", room_id, exc)

    def running(self, room_id: int) -> bool:
        return room_id in self.tasks

    async def shutdown(self, timeout: float = 20.0) -> None:
        """Interrupt every running reply: store partial text, tell the rooms, free the locks."""
        self.shutting_down = True
        for job in list(self.jobs.values()):
            job.end_early("interrupted")
        tasks = list(self.tasks.values())
        if tasks:
            log.info("shutdown: interrupting %s running replies", len(tasks))
            await asyncio.wait(tasks, timeout=timeout)


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
