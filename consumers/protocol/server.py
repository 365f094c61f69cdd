"""Server → client frames of SPEC §6, built as plain dicts and encoded once (pure)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from chatsite.rooms.serializers import MessageData, RoomData

from .codes import ErrorCode
from .frames import (
    BudgetData,
    ErrorFrame,
    GenerationDeltaFrame,
    GenerationFinishedFrame,
    GenerationRetryingFrame,
    GenerationStartedFrame,
    InviteCreatedFrame,
    LiveGenerationData,
    MessageCreatedFrame,
    MessageSupersededFrame,
    PresenceFrame,
    ReactionUpdatedFrame,
    RoomEventData,
    RoomUpdatedFrame,
    SnapshotFrame,
    TypingFrame,
)


def encode(frame: Mapping[str, Any]) -> str:
    """The wire form of a server frame."""
    return json.dumps(frame, ensure_ascii=False, separators=(",", ":"))


def error(code: ErrorCode, message: str, retry_after: float | None = None) -> ErrorFrame:
    frame: ErrorFrame = {"type": "error", "code": code, "message": message}
    if retry_after is not None:
        frame["retry_after"] = retry_after
    return frame


def snapshot(
    room: RoomData,
    username: str,
    messages: list[MessageData],
    generation: LiveGenerationData | None,
    budget: BudgetData | None,
    events: list[RoomEventData] | None = None,
) -> SnapshotFrame:
    return {
        "type": "room.snapshot",
        "room": room,
        "user": {"username": username},
        "messages": messages,
        "generation": generation,
        "budget": budget,
        "events": events or [],
    }


def presence(users: list[str]) -> PresenceFrame:
    return {"type": "presence", "users": sorted(set(users))}


def message_created(message: MessageData) -> MessageCreatedFrame:
    return {"type": "message.created", "message": message}


def room_updated(room: RoomData, events: list[RoomEventData] | None = None) -> RoomUpdatedFrame:
    frame: RoomUpdatedFrame = {"type": "room.updated", "room": room}
    if events:  # the settings changes this update made (additive, SPEC §6)
        frame["events"] = events
    return frame


def invite_created(url: str, expires_at: str) -> InviteCreatedFrame:
    return {"type": "invite.created", "url": url, "expires_at": expires_at}


def reaction_updated(message_id: int, reactions: dict[str, list[str]]) -> ReactionUpdatedFrame:
    return {"type": "reaction.updated", "message_id": message_id, "reactions": reactions}


def typing(username: str) -> TypingFrame:
    return {"type": "typing", "username": username}


def message_superseded(message_id: int) -> MessageSupersededFrame:
    return {"type": "message.superseded", "message_id": message_id}


def generation_started(message_id: int, model: str) -> GenerationStartedFrame:
    return {"type": "generation.started", "message_id": message_id, "model": model}


def generation_retrying(
    message_id: int, attempt: int, retry_in: float, reason: str, model: str
) -> GenerationRetryingFrame:
    return {
        "type": "generation.retrying",
        "message_id": message_id,
        "attempt": attempt,
        "retry_in": round(retry_in, 3),
        "reason": reason,
        "model": model,
    }


def generation_delta(message_id: int, seq: int, text: str) -> GenerationDeltaFrame:
    return {"type": "generation.delta", "message_id": message_id, "seq": seq, "text": text}


def generation_finished(
    message_id: int,
    status: str,
    text: str,
    stop_reason: str | None,
    usage: dict[str, int],
    error: dict[str, str] | None,
    *,
    cost_usd: float = 0.0,
    stopped_by: str | None = None,
) -> GenerationFinishedFrame:
    return {
        "type": "generation.finished",
        "message_id": message_id,
        "status": status,
        "text": text,
        "stop_reason": stop_reason,
        "usage": usage,
        "cost_usd": cost_usd,
        "stopped_by": stopped_by,
        "error": error,
    }
