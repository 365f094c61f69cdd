"""When Claude answers (SPEC §7 reply modes), as pure rules over a message's text.

`reply_need` says what a newly sent message calls for before it is stored: "yes" (a reply),
"no" (none) or "ask" (`auto` without a mention: the cheap model decides once it is stored).
The auto-mode prompt is built here too, so what the cheap model reads is fixed and testable.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Literal

from chatsite.llm.context import HistoryItem

ReplyNeed = Literal["yes", "no", "ask"]

# `@claude` in any case, as a word: not inside an address (bob@claude.ai) nor `@claudette`.
MENTION = re.compile(r"(?<![\w@])@claude\b", re.IGNORECASE)
# The demo provider's stand-in for the cheap model: the message names Claude, `@` or not.
DEMO_ADDRESSED = re.compile(r"(?<![\w@])@?claude\b", re.IGNORECASE)

# What the cheap model reads: the newest few turns, each cut short, and a one-word answer.
DECISION_TURNS = 4
DECISION_CHARS = 240  # per earlier turn
DECISION_NEWEST_CHARS = 400  # the message being decided on
DECISION_MAX_TOKENS = 3
ASSISTANT_NAME = "Claude"

DECISION_SYSTEM = (
    "You watch a group chat where people talk with each other and sometimes with Claude, an "
    "AI assistant. Decide whether Claude should answer the newest message. Answer yes when it "
    "is addressed to Claude, continues a conversation with Claude, or asks the room something "
    "Claude can plainly help with and nobody else is asked by name. Answer no when the people "
    "are talking to each other (plans, greetings, questions to a named person, small talk). "
    "Reply with one word: yes or no."
)


def mentions_claude(text: str) -> bool:
    """Whether `text` mentions Claude (`@claude`, any case, as a word)."""
    return MENTION.search(text) is not None


def reply_need(mode: str, text: str) -> ReplyNeed:
    """What a user message calls for in a room with reply mode `mode`."""
    if mode == "always" or mentions_claude(text):
        return "yes"
    if mode == "auto":
        return "ask"
    return "no"


def demo_wants_reply(text: str) -> bool:
    """The demo provider's deterministic `auto` rule: yes when the message names Claude."""
    return DEMO_ADDRESSED.search(text) is not None


def _clip(text: str, limit: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def decision_prompt(recent: Sequence[HistoryItem]) -> str:
    """The cheap model's user turn: the newest turns (oldest first, the decided one last)."""
    items = list(recent)[-DECISION_TURNS:]
    lines = []
    for index, item in enumerate(items):
        newest = index == len(items) - 1
        who = ASSISTANT_NAME if item.role == "assistant" else (item.author or "someone")
        text = _clip(item.text, DECISION_NEWEST_CHARS if newest else DECISION_CHARS)
        lines.append(f"{who}: {text}")
    asker = items[-1].author if items else None
    return (
        "<chat>\n"
        + "\n".join(lines)
        + "\n</chat>\n"
        + f"Should Claude answer the newest message (from {asker or 'someone'})? yes or no."
    )


def parse_answer(text: str) -> bool:
    """The cheap model's answer: yes only when it plainly says so."""
    words = re.findall(r"[a-z]+", text.lower())
    return bool(words) and words[0] == "yes"
