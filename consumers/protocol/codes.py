"""The fixed words of SPEC §6: close codes, error codes, statuses, limits, emoji (pure)."""

from __future__ import annotations

from typing import Final, Literal

# Close codes sent after accept, so browsers can read them.
CLOSE_UNAUTHENTICATED: Final = 4401
CLOSE_FORBIDDEN: Final = 4403
CLOSE_NO_ROOM: Final = 4404
# The user holds too many sockets, or this one kept flooding after `rate_limited` errors.
CLOSE_TOO_MANY: Final = 4429
# The server cannot serve the socket right now (e.g. Redis is down): the browser reconnects.
CLOSE_TRY_AGAIN: Final = 1013

# The `code` of an `error` frame: the frame was refused and nothing was stored.
ErrorCode = Literal[
    "invalid_json",
    "invalid_message",
    "unknown_type",
    "empty",
    "too_long",
    "rate_limited",
    "budget_exceeded",
    "forbidden",
    "unknown_user",
    "not_found",
    "busy",
]
# A Message's `status`.
MessageStatus = Literal["complete", "streaming", "stopped", "error", "interrupted"]
# `generation.finished.error.code`.
ReplyErrorCode = Literal["upstream_unavailable", "upstream_error", "configuration"]
# `generation.retrying.reason`.
RetryReason = Literal["rate_limited", "overloaded", "server_error", "connection"]
ReplyMode = Literal["always", "mention", "auto"]
REPLY_MODES: Final = ("always", "mention", "auto")

MAX_FRAME_BYTES: Final = 64 * 1024
MAX_CLIENT_MSG_ID: Final = 64
MAX_TITLE: Final = 100
MAX_SYSTEM_PROMPT: Final = 4000
MAX_MODEL_NAME: Final = 100
MAX_USERNAME: Final = 150  # Django's auth.User.username
# The reactions a person may choose (SPEC §6 `reaction.toggle`).
EMOJI: Final = ("👍", "👎", "❤️", "😂", "🎉", "🤔", "👀", "✅")
