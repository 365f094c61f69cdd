"""The history API's query parameters and byte budget (SPEC §5, issue 12), pure.

`limit` and `before` are ASCII digits only: `str.isdigit()` accepts `²` and Arabic-Indic digits,
`int()` takes spaces, `+` and underscores, and thousands of digits make it raise with Python's
own message. Every refusal names the parameter in our own words.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from .serializers import MessageData

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
MAX_ID = 2**63 - 1  # the database's bigint
# A page of history stays under this many bytes of JSON: 200 messages of 8,000 emoji would
# otherwise make a ~19 MB answer. Older messages that do not fit come with the next page.
MAX_PAGE_BYTES = 1024 * 1024
_MAX_DIGITS = len(str(MAX_ID))


class HistoryParamError(ValueError):
    """A bad query parameter; its message is safe to show."""


_MESSAGES = {
    "limit": f"`limit` must be a whole number from 1 to {MAX_LIMIT}, in ASCII digits.",
    "before": "`before` must be a message id, in ASCII digits.",
}


def _ascii_number(raw: str, name: str) -> int:
    if not raw or len(raw) > _MAX_DIGITS or not (raw.isascii() and raw.isdigit()):
        raise HistoryParamError(_MESSAGES[name])
    return int(raw)


def parse_limit(raw: str | None) -> int:
    """`limit`: absent → 50; 1..200 (larger asks get 200, SPEC §5 "max 200")."""
    if raw is None:
        return DEFAULT_LIMIT
    value = _ascii_number(raw, "limit")
    if value < 1:
        raise HistoryParamError(_MESSAGES["limit"])
    return min(value, MAX_LIMIT)


def parse_before(raw: str | None) -> int | None:
    """`before`: absent → None (the newest); else a message id, 1..2^63-1."""
    if raw is None:
        return None
    value = _ascii_number(raw, "before")
    if not 1 <= value <= MAX_ID:
        raise HistoryParamError(_MESSAGES["before"])
    return value


def history_params(query: Mapping[str, str]) -> tuple[int | None, int]:
    """(before, limit) from a query dict, or HistoryParamError."""
    return parse_before(query.get("before")), parse_limit(query.get("limit"))


def fit_page(messages: list[MessageData], has_more: bool) -> tuple[list[MessageData], bool]:
    """The newest of `messages` (oldest first) whose JSON fits MAX_PAGE_BYTES, and has_more.

    Sized as JsonResponse writes them (ASCII escapes: an emoji takes 12 bytes).
    """
    left = MAX_PAGE_BYTES - 64  # the envelope: {"messages": [], "has_more": false}
    kept: list[MessageData] = []
    for message in reversed(messages):
        size = len(json.dumps(message, default=str)) + 2
        if size > left:
            break
        left -= size
        kept.append(message)
    kept.reverse()
    return kept, has_more or len(kept) < len(messages)
