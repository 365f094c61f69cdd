"""Client → server frames of SPEC §6: decoded and validated into typed values (pure).

Every field is checked here, before anything reaches the database: a refused frame raises
FrameError, which the consumer turns into an `error` frame to that tab alone.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .codes import (
    EMOJI,
    MAX_CLIENT_MSG_ID,
    MAX_FRAME_BYTES,
    MAX_MODEL_NAME,
    MAX_SYSTEM_PROMPT,
    MAX_TITLE,
    MAX_USERNAME,
    REPLY_MODES,
    ErrorCode,
    ReplyMode,
)
from .frames import ErrorFrame
from .server import error

# Control characters other than tab and newline, and lone surrogates (PostgreSQL rejects them).
_UNWANTED_CHARS = re.compile("[\x00-\x08\x0b-\x1f\x7f\ud800-\udfff]")


class FrameError(Exception):
    """A refused frame: becomes an `error` frame to the offending tab; nothing is stored."""

    def __init__(self, code: ErrorCode, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.code: ErrorCode = code
        self.message = message
        self.retry_after = retry_after

    def frame(self) -> ErrorFrame:
        return error(self.code, self.message, self.retry_after)


@dataclass(frozen=True)
class SendMessage:
    text: str
    client_msg_id: str | None


@dataclass(frozen=True)
class StopGeneration:
    message_id: int | None


@dataclass(frozen=True)
class Sync:
    pass


@dataclass(frozen=True)
class UpdateRoom:
    """Only the fields the owner sent; each already type- and length-checked."""

    title: str | None = None
    system_prompt: str | None = None
    model: str | None = None
    private: bool | None = None
    reply_mode: ReplyMode | None = None


@dataclass(frozen=True)
class MemberChange:
    """`member.add` (add=True) or `member.remove`."""

    username: str
    add: bool


@dataclass(frozen=True)
class CreateInvite:
    pass


@dataclass(frozen=True)
class Regenerate:
    message_id: int


@dataclass(frozen=True)
class ToggleReaction:
    message_id: int
    emoji: str


@dataclass(frozen=True)
class Typing:
    pass


ClientFrame = (
    SendMessage
    | StopGeneration
    | Sync
    | UpdateRoom
    | MemberChange
    | CreateInvite
    | Regenerate
    | ToggleReaction
    | Typing
)


def clean_text(text: str) -> str:
    """The text with NUL and other control characters (except newline and tab) removed."""
    return _UNWANTED_CHARS.sub("", text)


def decode_frame(text_data: str | None, bytes_data: bytes | None) -> dict[str, Any]:
    """The frame's JSON object, or FrameError for binary, oversized or unparseable input."""
    if text_data is None:
        raise FrameError("invalid_json", "Frames must be JSON text, not binary.")
    if len(text_data) > MAX_FRAME_BYTES or len(text_data.encode("utf-8", "replace")) > (
        MAX_FRAME_BYTES
    ):
        raise FrameError("too_long", "Frames may be at most 64 KiB.")
    try:
        data = json.loads(text_data)
    except (ValueError, RecursionError):
        # RecursionError: deeply nested input, which json reports differently.
        raise FrameError("invalid_json", "The frame is not valid JSON.") from None
    if not isinstance(data, dict):
        raise FrameError("invalid_message", "A frame must be a JSON object.")
    return data


def parse_frame(text_data: str | None, bytes_data: bytes | None, *, max_text: int) -> ClientFrame:
    """Validate one client frame into its typed form, or raise FrameError."""
    data = decode_frame(text_data, bytes_data)
    kind = data.get("type")
    if not isinstance(kind, str) or not kind:
        raise FrameError("invalid_message", "Every frame needs a string `type`.")
    parser = _PARSERS.get(kind)
    if parser is None:
        raise FrameError("unknown_type", f"Unknown frame type {clean_text(kind[:40])!r}.")
    return parser(data, max_text)


def _message_id(data: dict[str, Any], *, required: bool) -> int | None:
    """A positive integer `message_id` (JSON booleans are not integers here)."""
    message_id = data.get("message_id")
    if message_id is None and not required:
        return None
    if type(message_id) is not int or not 0 < message_id < 2**63:
        raise FrameError("invalid_message", "`message_id` must be a positive integer.")
    return message_id


def _parse_send(data: dict[str, Any], max_text: int) -> SendMessage:
    text = data.get("text")
    if not isinstance(text, str):
        raise FrameError("invalid_message", "`text` must be a string.")
    client_msg_id = data.get("client_msg_id")
    if client_msg_id is not None:
        if not isinstance(client_msg_id, str) or not client_msg_id:
            raise FrameError("invalid_message", "`client_msg_id` must be a non-empty string.")
        if len(client_msg_id) > MAX_CLIENT_MSG_ID:
            raise FrameError("invalid_message", "`client_msg_id` may be at most 64 characters.")
        if clean_text(client_msg_id) != client_msg_id:
            # NUL and lone surrogates would fail in the database: refuse, never store altered.
            raise FrameError("invalid_message", "`client_msg_id` has characters it may not.")
    if len(text) > max_text:
        raise FrameError("too_long", f"Messages may be at most {max_text} characters.")
    text = clean_text(text)
    if not text.strip():
        raise FrameError("empty", "The message is empty.")
    return SendMessage(text=text, client_msg_id=client_msg_id)


def _parse_stop(data: dict[str, Any], max_text: int) -> StopGeneration:
    return StopGeneration(message_id=_message_id(data, required=False))


def _parse_sync(data: dict[str, Any], max_text: int) -> Sync:
    return Sync()


def _parse_update(data: dict[str, Any], max_text: int) -> UpdateRoom:
    fields = {k: v for k, v in data.items() if k != "type"}
    unknown = set(fields) - {"title", "system_prompt", "model", "private", "reply_mode"}
    if unknown:
        names = ", ".join(sorted(clean_text(name[:40]) for name in unknown)[:5])
        raise FrameError("invalid_message", f"Unknown room fields: {names}.")
    if not fields:
        raise FrameError("invalid_message", "Nothing to update.")
    if any(value is None for value in fields.values()):
        raise FrameError("invalid_message", "Room fields may not be null.")
    title = fields.get("title")
    if title is not None:
        if not isinstance(title, str):
            raise FrameError("invalid_message", "`title` must be a string.")
        title = clean_text(title).strip()
        if not title or len(title) > MAX_TITLE:
            raise FrameError("invalid_message", f"`title` must be 1 to {MAX_TITLE} characters.")
    prompt = fields.get("system_prompt")
    if prompt is not None:
        if not isinstance(prompt, str):
            raise FrameError("invalid_message", "`system_prompt` must be a string.")
        if len(prompt) > MAX_SYSTEM_PROMPT:
            raise FrameError(
                "invalid_message", f"`system_prompt` may be at most {MAX_SYSTEM_PROMPT} characters."
            )
        prompt = clean_text(prompt)
    model = fields.get("model")
    if model is not None and (
        not isinstance(model, str)
        or not 0 < len(model) <= MAX_MODEL_NAME
        or clean_text(model) != model
    ):
        raise FrameError("invalid_message", "`model` must be a model name.")
    private = fields.get("private")
    if private is not None and not isinstance(private, bool):
        raise FrameError("invalid_message", "`private` must be true or false.")
    mode = fields.get("reply_mode")
    if mode is not None and mode not in REPLY_MODES:
        raise FrameError("invalid_message", "`reply_mode` must be always, mention or auto.")
    return UpdateRoom(
        title=title, system_prompt=prompt, model=model, private=private, reply_mode=mode
    )


def _username(data: dict[str, Any]) -> str:
    username = data.get("username")
    if (
        not isinstance(username, str)
        or not 0 < len(username) <= MAX_USERNAME
        or clean_text(username) != username
    ):
        raise FrameError("invalid_message", "`username` must be a username.")
    return username


def _parse_member_add(data: dict[str, Any], max_text: int) -> MemberChange:
    return MemberChange(username=_username(data), add=True)


def _parse_member_remove(data: dict[str, Any], max_text: int) -> MemberChange:
    return MemberChange(username=_username(data), add=False)


def _parse_invite(data: dict[str, Any], max_text: int) -> CreateInvite:
    return CreateInvite()


def _parse_regenerate(data: dict[str, Any], max_text: int) -> Regenerate:
    message_id = _message_id(data, required=True)
    assert message_id is not None
    return Regenerate(message_id=message_id)


def _parse_reaction(data: dict[str, Any], max_text: int) -> ToggleReaction:
    message_id = _message_id(data, required=True)
    assert message_id is not None
    emoji = data.get("emoji")
    if emoji not in EMOJI:
        raise FrameError("invalid_message", f"`emoji` must be one of {' '.join(EMOJI)}.")
    return ToggleReaction(message_id=message_id, emoji=emoji)


def _parse_typing(data: dict[str, Any], max_text: int) -> Typing:
    return Typing()


_PARSERS: dict[str, Callable[[dict[str, Any], int], ClientFrame]] = {
    "message.send": _parse_send,
    "generation.stop": _parse_stop,
    "sync": _parse_sync,
    "room.update": _parse_update,
    "member.add": _parse_member_add,
    "member.remove": _parse_member_remove,
    "invite.create": _parse_invite,
    "generation.regenerate": _parse_regenerate,
    "reaction.toggle": _parse_reaction,
    "typing": _parse_typing,
}
