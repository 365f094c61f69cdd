"""Turn a room's stored history into model turns within a token budget (pure functions)."""

from __future__ import annotations

import itertools
import re
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


def _ascii_classes() -> dict[int, str]:
    """ASCII character -> its class letter: letter, digit, space, whitespace or punctuation."""
    table = {}
    for code in range(128):
        char = chr(code)
        if char.isalpha():
            table[code] = "l"
        elif char.isdigit():
            table[code] = "d"
        elif char == " ":
            table[code] = "s"
        elif char.isspace():
            table[code] = "w"
        else:
            table[code] = "p"
    return table


_ASCII_CLASS = _ascii_classes()
# Tokens per ASCII character of each class. Words cost about a token per 3-4 letters with their
# space; symbols and line structure (code, tables, markup) nearly a token each.
_ASCII_WEIGHT = {"l": 0.3, "d": 0.5, "s": 0.12, "w": 0.5, "p": 0.75}
_INDENT_SPACE = re.compile(r"(?<=\s) ")  # a space after whitespace costs like whitespace
# Keys, hashes, base64: long runs without spaces that keep switching between lower case,
# upper case, digits and symbols tokenize at 1-2 characters a token, not 3-4.
_LONG_RUN = re.compile(r"[!-~]{16,}")
_RUN_KIND = str.maketrans(
    {
        **{chr(c): "a" for c in range(ord("a"), ord("z") + 1)},
        **{chr(c): "A" for c in range(ord("A"), ord("Z") + 1)},
        **{chr(c): "0" for c in range(ord("0"), ord("9") + 1)},
    }
)
_DENSE_SWITCHES = 0.3  # class switches per character above which a run is dense
_DENSE_EXTRA = 0.5  # extra tokens per character of a dense run


def _non_ascii_weight(code: int) -> float:
    """Tokens of one non-ASCII character: byte-level tokenizers split rare ones into bytes."""
    if code < 0x250:
        return 2.0  # accented Latin: splits the word around it
    if code < 0x800:
        return 1.3  # Greek, Cyrillic, Hebrew, Arabic
    if code in (0x200D, 0xFE0F):
        return 1.5  # emoji joiners and variation selectors
    if 0x3000 <= code < 0xA000 or 0xFF00 <= code < 0xFFF0:
        return 1.3  # CJK, kana, full-width forms
    if 0xAC00 <= code < 0xD7B0:
        return 1.6  # Hangul syllables
    if code < 0x10000:
        return 1.8  # Indic, Thai and other scripts with combining marks
    return 3.0  # emoji and other astral characters


def estimate_tokens(text: str) -> int:
    """A deliberately pessimistic token count, without a tokenizer.

    Tuned so that it is at least the count of Anthropic's published Claude tokenizer on prose,
    code, markup, tables, CJK, Cyrillic, Arabic, Indic and Thai scripts, emoji and random keys
    (tests/unit/test_token_estimate.py), while overcounting English prose by about 1.3-1.5x.
    Newer models tokenize differently: the reply runner corrects for that with each room's
    measured ratio of real to estimated tokens (`calibrated_budget`).
    """
    if text.isascii():
        classes = text.translate(_ASCII_CLASS)
        extra = 0.0
    else:
        classes = "".join(ch for ch in text if ch.isascii()).translate(_ASCII_CLASS)
        extra = sum(_non_ascii_weight(ord(ch)) for ch in text if not ch.isascii())
    tokens = extra + sum(classes.count(kind) * weight for kind, weight in _ASCII_WEIGHT.items())
    tokens += len(_INDENT_SPACE.findall(text)) * (_ASCII_WEIGHT["w"] - _ASCII_WEIGHT["s"])
    for match in _LONG_RUN.finditer(text):
        run = match.group().translate(_RUN_KIND)
        switches = sum(1 for a, b in itertools.pairwise(run) if a != b)
        if switches > len(run) * _DENSE_SWITCHES:
            tokens += _DENSE_EXTRA * len(run)
    return int(tokens) + 1


def turns_cost(turns: Sequence[Turn]) -> int:
    """The estimated input tokens of these turns, framing included."""
    return sum(estimate_tokens(t.text) + TURN_OVERHEAD for t in turns)


def request_budget(context_window: int, max_tokens: int) -> int:
    """Input tokens a request may use: the window minus the reply cap minus a 10 % margin."""
    return context_window - max_tokens - context_window // 10


# How far a room's measured density may move its budget: down only a little (the estimate is
# meant to overcount, and the next message may be denser than the history), up a lot.
MIN_DENSITY = 0.8
MAX_DENSITY = 4.0


def calibrated_budget(budget: int, density: float) -> int:
    """`budget` (real tokens) in estimated tokens, for text that has `density` real tokens per
    estimated one, as the model's reported usage measured it for this room."""
    return int(budget / min(MAX_DENSITY, max(MIN_DENSITY, density)))


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

    def clipped(keep: int) -> str:
        return "…" + turn.text[len(turn.text) - keep :] if keep else "…"

    def fits(keep: int) -> bool:
        return estimate_tokens(clipped(keep)) + TURN_OVERHEAD <= budget

    # The longest tail that fits: a bisection, since a character may cost up to 3 tokens.
    low, high = 0, len(turn.text)
    while low < high:
        middle = (low + high + 1) // 2
        if fits(middle):
            low = middle
        else:
            high = middle - 1
    return Turn(turn.role, clipped(low))


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
