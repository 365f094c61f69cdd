"""Turn a room's stored history into model turns within a token budget (pure functions)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from .base import Turn

# Per-turn overhead of the message framing, in tokens (role markers, separators).
TURN_OVERHEAD = 8


@dataclass(frozen=True)
class HistoryItem:
    """A stored message as the context builder needs it."""

    id: int
    role: str  # "user" or "assistant"
    author: str | None
    text: str


def estimate_tokens(text: str) -> int:
    """A deliberately pessimistic token count: ~3 ASCII characters a token, 1 token per other.

    Claude's tokenizer averages about 4 characters a token on English prose and code, so this
    overcounts ordinary text by about a third; text denser than 3 characters a token (base64,
    long digit runs, emoji) is what the 10 % margin of `request_budget` is for. See
    docs/providers.md, "Token budget".
    """
    ascii_chars = sum(1 for ch in text if ord(ch) < 128)
    return ascii_chars // 3 + (len(text) - ascii_chars) + 1


def turns_cost(turns: Sequence[Turn]) -> int:
    """The estimated input tokens of these turns, framing included."""
    return sum(estimate_tokens(t.text) + TURN_OVERHEAD for t in turns)


def request_budget(context_window: int, max_tokens: int) -> int:
    """Input tokens a request may use: the window minus the reply cap minus a 10 % margin."""
    return context_window - max_tokens - context_window // 10


def label(item: HistoryItem) -> str:
    """A user's words prefixed with their name, since rooms have several people."""
    return f"{item.author or 'someone'}: {item.text}"


def merge_turns(history: Sequence[HistoryItem]) -> list[Turn]:
    """Alternating user/assistant turns: consecutive messages of one role become one turn."""
    turns: list[Turn] = []
    role: Literal["user", "assistant"]
    for item in history:
        if item.role == "assistant":
            text = item.text
            if not text.strip():
                continue  # a failed reply with no text says nothing to the model
            role = "assistant"
        else:
            text = label(item)
            role = "user"
        if turns and turns[-1].role == role:
            turns[-1] = Turn(role, turns[-1].text + "\n\n" + text)
        else:
            turns.append(Turn(role, text))
    while turns and turns[0].role == "assistant":
        turns.pop(0)  # the Messages API starts with a user turn
    return turns


def fit_turns(turns: list[Turn], budget: int) -> tuple[list[Turn], int]:
    """Drop whole turns, oldest first, until the rest fits; returns (kept, number dropped)."""
    costs = [estimate_tokens(t.text) + TURN_OVERHEAD for t in turns]
    total = sum(costs)
    start = 0
    # Never drop the newest turn: it is what the reply answers.
    while total > budget and start < len(turns) - 1:
        total -= costs[start]
        start += 1
        # A kept history must still begin with a user turn.
        while start < len(turns) - 1 and turns[start].role == "assistant":
            total -= costs[start]
            start += 1
    return turns[start:], start


def with_cache_breakpoint(turns: list[Turn]) -> list[Turn]:
    """Mark the end of the stable history (everything before the newest turn) for caching."""
    if len(turns) < 2:
        return turns
    marked = list(turns)
    before = marked[-2]
    marked[-2] = Turn(before.role, before.text, cache_breakpoint=True)
    return marked


def clip_turn(turn: Turn, budget: int) -> Turn:
    """The turn cut to its newest characters so that it costs at most `budget` tokens."""
    if estimate_tokens(turn.text) + TURN_OVERHEAD <= budget:
        return turn
    # Every character costs at most one token in the estimate, plus one for the text: keep
    # that many of the newest characters, after a one-token mark that something was cut.
    keep = max(0, budget - TURN_OVERHEAD - 2)
    return Turn(turn.role, "…" + turn.text[len(turn.text) - keep :] if keep else "…")


def build_turns(
    history: Sequence[HistoryItem], budget: int, fixed_tokens: int = 0
) -> tuple[tuple[Turn, ...], int]:
    """Turns for a request whose system prompt and summary cost `fixed_tokens`.

    The estimated total (`fixed_tokens` + `turns_cost`) never exceeds `budget`: whole turns
    are dropped oldest first and, should the newest alone be too long, it is cut.
    """
    room = max(0, budget - fixed_tokens)
    kept, dropped = fit_turns(merge_turns(history), room)
    if kept and turns_cost(kept) > room:
        kept = [clip_turn(kept[-1], room)]  # fit_turns left only the newest turn
    return tuple(with_cache_breakpoint(kept)), dropped


def latest_user_text(history: Sequence[HistoryItem]) -> str:
    """The newest user message's own words (the demo provider quotes them)."""
    return next((item.text for item in reversed(history) if item.role == "user"), "")
