"""A reply's model request, built from the room's stored history within its token budget.

Synchronous (database reads): the runner calls these through `database_sync_to_async`.
"""

from __future__ import annotations

import logging

from django.conf import settings

from chatsite.conversation.turns import set_in_reply_to
from chatsite.llm.base import ChatRequest, Provider
from chatsite.llm.context import (
    build_turns,
    calibrated_budget,
    estimate_tokens,
    latest_user_text,
    request_budget,
    turns_cost,
)
from chatsite.llm.summary import summary_block
from chatsite.rooms import selectors, services
from chatsite.rooms.models import Room

log = logging.getLogger(__name__)


def prepare_reply(room_id: int, provider: Provider) -> tuple[int, ChatRequest] | None:
    """Create the reply's message and build its request; None if the room is gone.

    Between a user's message and the model's request (issue 15): the room's own row only,
    and queries that know the room.
    """
    room = selectors.room_for_reply(room_id)
    if room is None:
        return None
    model = provider.model_for(room.model)
    # Autocommitted statements, not one transaction: hand-overs and the reaper run this in the
    # background, where a transaction would hold its locks across the statements to save one
    # commit.
    message = services.start_reply(room_id, provider.name, model)
    set_in_reply_to(message.pk, room_id)  # the user messages it answers (SPEC §7)
    return message.pk, build_request(room, message.pk, model, selectors.token_density(room))


def rebuild_request(room_id: int, reply_id: int, model: str, density: float) -> ChatRequest | None:
    """The request again, for text `density` times denser than estimated (the model said the
    last one did not fit); None if the room is gone."""
    room = selectors.room_for_reply(room_id)
    if room is None:
        return None
    return build_request(room, reply_id, model, density)


def build_request(room: Room, reply_id: int, model: str, density: float) -> ChatRequest:
    """The request answering everything before `reply_id`, within the room's budget.

    The budget is the window minus the reply cap minus 10 % (`request_budget`), converted
    into estimated tokens with the room's measured `density` (`calibrated_budget`).
    """
    raw_budget = request_budget(settings.LLM_CONTEXT_WINDOW, settings.LLM_MAX_TOKENS)
    budget = calibrated_budget(raw_budget, density)
    history = selectors.reply_history(room, reply_id)
    summary = summary_block(room.summary)
    fixed = estimate_tokens(room.system_prompt) + estimate_tokens(summary)
    if summary and fixed > budget // 2:
        # Only with a tiny window: the conversation itself comes first.
        log.warning("reply %s: summary left out, it does not fit the context", reply_id)
        summary = ""
        fixed = estimate_tokens(room.system_prompt)
    turns, dropped = build_turns(history, budget, fixed)
    if dropped:
        log.info("reply %s: %s oldest turns left out to fit the context", reply_id, dropped)
    return ChatRequest(
        model=model,
        system=room.system_prompt,
        turns=turns,
        max_tokens=settings.LLM_MAX_TOKENS,
        summary=summary,
        latest_message=latest_user_text(history),
        estimated_input_tokens=fixed + turns_cost(turns),
        budget=budget,
        history_size=len(history),
    )
