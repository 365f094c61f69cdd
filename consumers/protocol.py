"""The websocket vocabulary of SPEC §6: parsing client frames and building server frames (pure)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# Close codes sent after accept, so browsers can read them.
CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_NO_ROOM = 4404
# The server cannot serve the socket right now (e.g. Redis is down): the browser reconnects.
CLOSE_TRY_AGAIN = 1013

MAX_FRAME_BYTES = 64 * 1024
MAX_CLIENT_MSG_ID = 64
MAX_TITLE = 100
MAX_SYSTEM_PROMPT = 4000
MAX_MODEL_NAME = 100

# Control characters other than tab and newline, and lone surrogates (PostgreSQL rejects them).
_UNWANTED_CHARS = re.compile("[\x00-\x08\x0b-\x1f\x7f\ud800-\udfff]")


class FrameError(Exception):
    """A refused frame: becomes an `error` frame to the offending tab; nothing is stored."""

    def __init__(self, code: str, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retry_after = retry_after

    def frame(self) -> dict[str, Any]:
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


ClientFrame = SendMessage | StopGeneration | Sync | UpdateRoom


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
        raise FrameError("unknown_type", f"Unknown frame type {kind[:40]!r}.")
    return parser(data, max_text)


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
    if len(text) > max_text:
        raise FrameError("too_long", f"Messages may be at most {max_text} characters.")
    text = clean_text(text)
    if not text.strip():
        raise FrameError("empty", "The message is empty.")
    return SendMessage(text=text, client_msg_id=client_msg_id)


def _parse_stop(data: dict[str, Any], max_text: int) -> StopGeneration:
    message_id = data.get("message_id")
    if message_id is not None and (type(message_id) is not int or message_id < 1):
        raise FrameError("invalid_message", "`message_id` must be a positive integer.")
    return StopGeneration(message_id=message_id)


def _parse_sync(data: dict[str, Any], max_text: int) -> Sync:
    return Sync()


def _parse_update(data: dict[str, Any], max_text: int) -> UpdateRoom:
    fields = {k: v for k, v in data.items() if k != "type"}
    unknown = set(fields) - {"title", "system_prompt", "model"}
    if unknown:
        raise FrameError("invalid_message", f"Unknown room fields: {', '.join(sorted(unknown))}.")
    if not fields:
        raise FrameError("invalid_message", "Nothing to update.")
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
    if model is not None and (not isinstance(model, str) or not 0 < len(model) <= MAX_MODEL_NAME):
        raise FrameError("invalid_message", "`model` must be a model name.")
    return UpdateRoom(title=title, system_prompt=prompt, model=model)


_PARSERS: dict[str, Callable[[dict[str, Any], int], ClientFrame]] = {
    "message.send": _parse_send,
    "generation.stop": _parse_stop,
    "sync": _parse_sync,
    "room.update": _parse_update,
}


# --- server frames -------------------------------------------------------------------------


def encode(frame: dict[str, Any]) -> str:
    """The wire form of a server frame."""
    return json.dumps(frame, ensure_ascii=False, separators=(",", ":"))


def error(code: str, message: str, retry_after: float | None = None) -> dict[str, Any]:
    frame: dict[str, Any] = {"type": "error", "code": code, "message": message}
    if retry_after is not None:
        frame["retry_after"] = retry_after
    return frame


def snapshot(
    room: dict[str, Any],
    username: str,
    messages: list[dict[str, Any]],
    generation: dict[str, Any] | None,
) -> dict[str, Any]:
    return {
        "type": "room.snapshot",
        "room": room,
        "user": {"username": username},
        "messages": messages,
        "generation": generation,
    }


def presence(users: list[str]) -> dict[str, Any]:
    return {"type": "presence", "users": sorted(set(users))}


def message_created(message: dict[str, Any]) -> dict[str, Any]:
    return {"type": "message.created", "message": message}


def room_updated(room: dict[str, Any]) -> dict[str, Any]:
    return {"type": "room.updated", "room": room}


def generation_started(message_id: int, model: str) -> dict[str, Any]:
    return {"type": "generation.started", "message_id": message_id, "model": model}


def generation_retrying(
    message_id: int, attempt: int, retry_in: float, reason: str, model: str
) -> dict[str, Any]:
    return {
        "type": "generation.retrying",
        "message_id": message_id,
        "attempt": attempt,
        "retry_in": round(retry_in, 3),
        "reason": reason,
        "model": model,
    }


def generation_delta(message_id: int, seq: int, text: str) -> dict[str, Any]:
    return {"type": "generation.delta", "message_id": message_id, "seq": seq, "text": text}


def generation_finished(
    message_id: int,
    status: str,
    text: str,
    stop_reason: str | None,
    usage: dict[str, int],
    error: dict[str, str] | None,
) -> dict[str, Any]:
    return {
        "type": "generation.finished",
        "message_id": message_id,
        "status": status,
        "text": text,
        "stop_reason": stop_reason,
        "usage": usage,
        "error": error,
    }
