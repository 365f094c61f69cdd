"""The shapes of the server's frames (SPEC §6), so mypy checks every frame the server builds."""

from __future__ import annotations

from typing import Literal, NotRequired, TypedDict

from chatsite.rooms.serializers import MessageData, RoomData

from .codes import ErrorCode


class UsageData(TypedDict):
    input_tokens: int
    output_tokens: int
    cache_creation_input_tokens: int
    cache_read_input_tokens: int


class LiveGenerationData(TypedDict):
    """A running reply as a snapshot carries it: the text of deltas 1..seq."""

    message_id: int
    seq: int
    text: str


class BudgetData(TypedDict):
    """Today's spend (UTC) and the limits; a limit is None when there is none."""

    user_spent_usd: float
    user_limit_usd: float | None
    room_spent_usd: float
    room_limit_usd: float | None


class UserData(TypedDict):
    username: str


RoomEventKind = Literal["model", "system_prompt", "reply_mode", "private", "title"]


class RoomEventData(TypedDict):
    """A change of the room's settings (a quiet line in the conversation); `value` is the new
    model / reply mode / title, "private" or "public", or "changed"/"cleared" for the prompt."""

    id: int
    kind: RoomEventKind
    value: str
    actor: str | None
    created_at: str


class ErrorInfo(TypedDict):
    code: str
    message: str


class ErrorFrame(TypedDict):
    type: Literal["error"]
    code: ErrorCode
    message: str
    retry_after: NotRequired[float]


class SnapshotFrame(TypedDict):
    type: Literal["room.snapshot"]
    room: RoomData
    user: UserData
    messages: list[MessageData]
    generation: LiveGenerationData | None
    budget: BudgetData | None
    events: list[RoomEventData]


class PresenceFrame(TypedDict):
    type: Literal["presence"]
    users: list[str]


class MessageCreatedFrame(TypedDict):
    type: Literal["message.created"]
    message: MessageData


class RoomUpdatedFrame(TypedDict):
    type: Literal["room.updated"]
    room: RoomData
    events: NotRequired[list[RoomEventData]]


class InviteCreatedFrame(TypedDict):
    type: Literal["invite.created"]
    url: str
    expires_at: str


class ReactionUpdatedFrame(TypedDict):
    type: Literal["reaction.updated"]
    message_id: int
    reactions: dict[str, list[str]]


class TypingFrame(TypedDict):
    type: Literal["typing"]
    username: str


class MessageSupersededFrame(TypedDict):
    type: Literal["message.superseded"]
    message_id: int


class GenerationStartedFrame(TypedDict):
    type: Literal["generation.started"]
    message_id: int
    model: str


class GenerationRetryingFrame(TypedDict):
    type: Literal["generation.retrying"]
    message_id: int
    attempt: int
    retry_in: float
    reason: str
    model: str


class GenerationDeltaFrame(TypedDict):
    type: Literal["generation.delta"]
    message_id: int
    seq: int
    text: str


class GenerationFinishedFrame(TypedDict):
    type: Literal["generation.finished"]
    message_id: int
    status: str
    text: str
    stop_reason: str | None
    usage: UsageData | dict[str, int]
    cost_usd: float
    stopped_by: str | None
    error: ErrorInfo | dict[str, str] | None


ServerFrame = (
    ErrorFrame
    | SnapshotFrame
    | PresenceFrame
    | MessageCreatedFrame
    | RoomUpdatedFrame
    | InviteCreatedFrame
    | ReactionUpdatedFrame
    | TypingFrame
    | MessageSupersededFrame
    | GenerationStartedFrame
    | GenerationRetryingFrame
    | GenerationDeltaFrame
    | GenerationFinishedFrame
)
