"""The circuit breaker around the model, as a reply uses it: asked once before the first
attempt, told once how the reply ended (see docs/operations.md). The count lives in the shared
state, so every process sees the same circuit."""

from __future__ import annotations

import logging

from django.conf import settings

from .state import SharedState

log = logging.getLogger(__name__)


async def allows(state: SharedState) -> bool:
    """Whether a reply may call the model now (one probe after the cool-down)."""
    try:
        return await state.breaker.allows(settings.LLM_BREAKER_COOLDOWN)
    except Exception:  # the breaker is advice: without Redis, try the model anyway
        return True


async def record(state: SharedState, success: bool) -> None:
    """Count a reply that completed (`success`) or failed upstream; log when the circuit opens."""
    try:
        opened = await state.breaker.record(
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
