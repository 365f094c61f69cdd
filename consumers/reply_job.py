"""One reply, from its first model call to its stored ending.

`ReplyJob.run` asks the circuit breaker, streams the model's text through the emitter (each
delta recorded in the live state, then sent to the room), retries before the first token as
`reply_policy` decides, stops when someone asks (`end_early`, or a stop flag any process set),
and stores and announces the ending. The runner (`consumers.reply_runner`) owns the room's lock
around it and starts the next reply after it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
import time
from dataclasses import dataclass, field

from channels.db import database_sync_to_async
from django.conf import settings

from chatsite.llm.base import ChatRequest, Provider, StreamEnd, TextDelta, Usage, UsageUpdate
from chatsite.llm.errors import ConfigurationError, ContextTooLongError, LLMError, RetryableError
from chatsite.rooms.services import ReplyOutcome

from . import breaker, protocol, reply_cost, reply_ending, reply_policy, reply_request
from .broadcast import broadcast
from .reply_live import LiveReply
from .reply_policy import EarlyEnding, GiveUp
from .state import SharedState

log = logging.getLogger(__name__)

STOP_POLL_SECONDS = 0.2  # how often a reply looks for a stop request from any process


@dataclass
class ReplyJob:
    """One reply: stream, retry before the first token, stop on request, store the ending."""

    room_id: int
    message_id: int
    request: ChatRequest
    provider: Provider
    state: SharedState
    started: float = field(default_factory=time.monotonic)
    ending: EarlyEnding | None = None  # set once someone ends it early
    first_token_at: float | None = None
    usage: Usage = field(default_factory=Usage)
    model: str = ""
    _stream_task: asyncio.Task[ReplyOutcome] | None = None

    def __post_init__(self) -> None:
        self.model = self.request.model
        interval = settings.STREAM_FLUSH_MS / 1000
        self.live = LiveReply(self.state, self.room_id, self.message_id, interval)
        self.emitter = self.live.emitter

    @property
    def finishing(self) -> bool:
        """Whether the reply's own ending is being stored (it no longer streams)."""
        return self.live.closed

    @property
    def abandoned(self) -> bool:
        """The reply was ended elsewhere (reaped while this process could not reach Redis): it
        stops at once and sends, stores and clears nothing more, since the room has moved on."""
        return self.live.silenced

    def abandon(self) -> None:
        """Stop without a word: another process already stored this reply's ending."""
        self.live.silenced = True
        self.end_early("interrupted")

    async def restore_live_state(self) -> None:
        """Write the live state again (Redis restarted and lost it); see `LiveReply.restore`."""
        await self.live.restore()

    def end_early(self, status: EarlyEnding) -> None:
        """Stop streaming now; the reply is stored with `status` (stopped, interrupted)."""
        if self.ending is None:
            self.ending = status
        if self._stream_task is not None:
            self._stream_task.cancel()

    async def run(self) -> None:
        """Stream the reply to its end, then store and announce the ending."""
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
        """Stop is detected here: a flag in the shared state, set by any process."""
        while True:
            await asyncio.sleep(STOP_POLL_SECONDS)
            try:
                if await self.state.live.stop_requested(self.room_id, self.message_id):
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
        health and are not counted (`reply_policy.breaker_verdict`).
        """
        if not await breaker.allows(self.state):
            log.warning("reply %s not attempted: the circuit breaker is open", self.message_id)
            return self._outcome("error", "upstream_unavailable", "circuit breaker open")
        outcome = await self._attempts()
        verdict = reply_policy.breaker_verdict(outcome.status, outcome.error_code)
        if verdict is not None:
            await breaker.record(self.state, verdict)
        return outcome

    async def _attempts(self) -> ReplyOutcome:
        """Stream the reply; before the first token, retry what is worth retrying."""
        attempt = 1
        rng = random.Random()
        refitted = False
        while True:
            try:
                return await self._attempt()
            except RetryableError as exc:
                decision = reply_policy.after_retryable(
                    attempt=attempt,
                    max_retries=settings.LLM_MAX_RETRIES,
                    received_any=self.emitter.received_any,
                    retry_after=exc.retry_after,
                    base_delay=settings.LLM_RETRY_BASE_DELAY,
                    rng=rng,
                )
                if isinstance(decision, GiveUp):
                    why = reply_policy.give_up_words(decision, attempt, exc.retry_after)
                    log.warning("reply %s %s: %s", self.message_id, why, exc.detail)
                    return self._outcome("error", decision.code, exc.detail)
                attempt = decision.attempt
                self._maybe_fall_back(exc)
                log.info(
                    "reply %s: %s, attempt %s in %.2fs: %s",
                    self.message_id,
                    exc.reason,
                    attempt,
                    decision.delay,
                    exc.detail,
                )
                await broadcast(
                    self.room_id,
                    protocol.generation_retrying(
                        self.message_id, attempt, decision.delay, exc.reason, self.model
                    ),
                )
                await asyncio.sleep(decision.delay)
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
                code = reply_policy.failure_code(self.emitter.received_any)
                return self._outcome("error", code, exc.detail)

    async def _attempt(self) -> ReplyOutcome:
        """One model call, streamed into the emitter; raises the provider's LLMError."""
        stream = reply_cost.counted(self.provider.stream(self.request), self.live, self.model)
        async for event in stream:
            if isinstance(event, TextDelta):
                if self.first_token_at is None:
                    self.first_token_at = time.monotonic()
                await self.emitter.add(reply_policy.clean_model_text(event.text))
            elif isinstance(event, UsageUpdate):
                self.usage = event.usage
            elif isinstance(event, StreamEnd):
                self.usage = event.usage
                return self._outcome("complete", stop_reason=event.stop_reason)
        log.warning("reply %s: the stream ended without an end event", self.message_id)
        code = reply_policy.failure_code(self.emitter.received_any)
        return self._outcome("error", code, "stream ended without an end")

    async def _refit(self, exc: ContextTooLongError) -> bool:
        """Build the request again for the density the model just reported; False if it cannot.

        The estimate and the room's calibration keep requests inside the window; this is for
        the one that still did not fit (a room's first, very dense turns), before any text.
        """
        estimated = self.request.estimated_input_tokens
        density = reply_policy.refit_density(exc.input_tokens, estimated, self.emitter.received_any)
        if density is None:
            return False
        log.warning(
            "reply %s: the model counted %s input tokens for an estimate of %s; trimming for "
            "%.2f tokens per estimated token",
            self.message_id,
            exc.input_tokens,
            estimated,
            density,
        )
        rebuilt = await database_sync_to_async(reply_request.rebuild_request)(
            self.room_id, self.message_id, self.request.model, density
        )
        if rebuilt is None or rebuilt.estimated_input_tokens >= estimated:
            return False
        self.request = rebuilt
        return True

    def _maybe_fall_back(self, exc: RetryableError) -> None:
        """Switch to LLM_FALLBACK_MODEL when the primary is overloaded (before the first token)."""
        fallback = settings.LLM_FALLBACK_MODEL
        if not reply_policy.should_fall_back(exc.reason, fallback, self.model, self.provider.name):
            return
        log.warning(
            "reply %s: %s is overloaded, trying the fallback model %s",
            self.message_id,
            self.model,
            fallback,
        )
        self.request = dataclasses.replace(self.request, model=fallback)
        self.model = fallback

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

    async def store_interrupted_now(self) -> bool:
        """Store the reply as `interrupted` with all its text, sent or pending, at once.

        For a shutdown whose normal ending hangs: that goes through Redis first, and when Redis
        hangs it can outlast the process, leaving the reaper only what Redis held. Tabs get the
        stored text from their next snapshot. False if the reply's own ending is under way or
        it was already stored.
        """
        if self.live.closed:
            return False
        outcome = dataclasses.replace(self._outcome("interrupted"), text=self.emitter.all_text)
        return await reply_ending.store_interrupted(self.live, outcome)

    async def _finish(self, outcome: ReplyOutcome) -> None:
        """The reply ends here: the last delta, the stored ending, `generation.finished`."""
        await self.emitter.flush()
        if self.abandoned:
            log.warning(
                "reply %s was ended by another process while this one could not reach Redis; "
                "its remaining text is dropped",
                self.message_id,
            )
            return
        self.live.closed = True
        status = reply_policy.final_status(outcome.status, self.ending)
        error = reply_policy.user_error(status, outcome.error_code)
        final = dataclasses.replace(
            outcome,
            status=status,
            text=self.emitter.text,
            stop_reason=outcome.stop_reason if status == "complete" else None,
            error_code=error["code"] if error else "",
            model=self.model,
        )
        await reply_ending.end_reply(self.live, final, error)
