"""Long rooms: when to fold old turns into the running summary, and how to ask for it (pure).

Folding happens in blocks: once a request would use more than `FOLD_AT` of the budget, the
oldest half of the unsummarized history goes into the summary at once. Between two folds the
prompt prefix (system prompt, summary, history since the fold) only grows at its end, so the
prompt cache keeps hitting; trimming one turn per request would change the prefix every time.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from .context import TURN_OVERHEAD, HistoryItem, estimate_tokens, label

# Fold once the conversation would fill this share of the request budget...
FOLD_AT = 0.6
# ...folding about this share of the unsummarized history (by estimated tokens).
FOLD_SHARE = 0.5
# Also fold, however short the messages, once this many wait unsummarized: a request reads at
# most the newest 2,000 (selectors.HISTORY_LIMIT), and a history sliding past that cap would
# change the prompt's prefix every turn, so the cache would never hit.
FOLD_MESSAGES = 1000
# The summarizer's reply cap, and what is kept of its text: the summary rides along with
# every later request, so it must stay small next to the budget.
SUMMARY_MAX_TOKENS = 800
SUMMARY_MAX_CHARS = 4000
SUMMARY_HEADING = "Summary of the earlier conversation:"
ASSISTANT_NAME = "Claude"

SUMMARIZER_SYSTEM = (
    "You keep the running summary of a group chat in which several people talk with Claude. "
    "Claude will continue the conversation from your summary and the most recent messages "
    "only, so keep what it needs: who said or asked what, decisions, facts, numbers, names, "
    "code identifiers, open questions and promises. Merge the previous summary (if any) and "
    "the new messages into one updated summary of at most 250 words, in short bullet points. "
    "Write only the summary: no preamble, no closing remark."
)


@dataclass(frozen=True)
class Fold:
    """A decision to fold `items` (oldest first) into the summary, which then covers ids up to
    `upto_id`."""

    items: tuple[HistoryItem, ...]
    upto_id: int


def item_cost(item: HistoryItem) -> int:
    """Estimated tokens of one stored message as a request carries it."""
    text = item.text if item.role == "assistant" else label(item)
    return estimate_tokens(text) + TURN_OVERHEAD


def plan_fold(
    history: Sequence[HistoryItem],
    budget: int,
    fixed_tokens: int,
    *,
    fold_at: float = FOLD_AT,
    share: float = FOLD_SHARE,
    max_messages: int = FOLD_MESSAGES,
) -> Fold | None:
    """Whether to fold, and what: None while the history fits comfortably.

    `history` is the unsummarized history, oldest first, ending with the newest stored
    message; `fixed_tokens` is what the system prompt and summary cost. The fold ends right
    before a user message, so the kept history still starts with one (an assistant turn
    there would be dropped by `merge_turns` and lost), and never takes the newest message.
    It also stays within half the budget, so the summarizer's own request fits the window.
    With `max_messages` or more messages it folds at least half of them, whatever they cost.
    """
    costs = [item_cost(item) for item in history]
    crowded = len(history) >= max_messages
    if not crowded and fixed_tokens + sum(costs) <= fold_at * budget:
        return None
    target = min(sum(costs) * share, budget * share)
    at_least = len(history) // 2 if crowded else 0
    limit = budget // 2
    best: int | None = None
    folded = 0
    for index in range(len(history) - 1):
        folded += costs[index]
        if folded > limit:
            break
        if history[index + 1].role != "user":
            continue
        best = index
        if folded >= target and index + 1 >= at_least:
            break
    if best is None:
        return None
    items = tuple(history[: best + 1])
    return Fold(items=items, upto_id=items[-1].id)


def transcript(items: Sequence[HistoryItem]) -> str:
    """The messages to fold, one tagged block each, for the summarizer."""
    blocks = []
    for item in items:
        if not item.text.strip():
            continue  # a failed reply with no text
        author = ASSISTANT_NAME if item.role == "assistant" else (item.author or "someone")
        blocks.append(f'<message from="{author}">\n{item.text}\n</message>')
    return "\n".join(blocks)


def summary_prompt(previous: str, items: Sequence[HistoryItem]) -> str:
    """The summarizer's user turn: the previous summary and the messages to fold in."""
    parts = []
    if previous.strip():
        parts.append(f"<previous_summary>\n{previous.strip()}\n</previous_summary>")
    parts.append(f"<new_messages>\n{transcript(items)}\n</new_messages>")
    parts.append("Write the updated summary.")
    return "\n\n".join(parts)


def clean_summary(text: str) -> str:
    """The summarizer's text as stored: trimmed and capped."""
    text = text.strip()
    if len(text) > SUMMARY_MAX_CHARS:
        text = text[: SUMMARY_MAX_CHARS - 1].rstrip() + "…"
    return text


def summary_block(summary: str) -> str:
    """The summary as the model reads it (a second system block, see ChatRequest.summary)."""
    return f"{SUMMARY_HEADING}\n{summary}" if summary.strip() else ""


# --- the demo provider's offline summary -----------------------------------------------------

_MESSAGE = re.compile(r'<message from="([^"]*)">\n(.*?)\n</message>', re.DOTALL)
_PREVIOUS = re.compile(r"<previous_summary>\n(.*?)\n</previous_summary>", re.DOTALL)
DEMO_SUMMARY_LINES = 12
DEMO_WORDS_PER_LINE = 12


def demo_summary(prompt: str) -> str:
    """A deterministic summary of a `summary_prompt`: the opening words of each message.

    Only the newest `DEMO_SUMMARY_LINES` lines are kept, so it stays small however often
    a room folds.
    """
    lines: list[str] = []
    previous = _PREVIOUS.search(prompt)
    if previous:
        lines += [ln for ln in previous.group(1).splitlines() if ln.startswith("- ")]
    for author, text in _MESSAGE.findall(prompt):
        words = text.split()
        opening = " ".join(words[:DEMO_WORDS_PER_LINE])
        more = "…" if len(words) > DEMO_WORDS_PER_LINE else ""
        lines.append(f"- {author}: {opening}{more}")
    kept = lines[-DEMO_SUMMARY_LINES:]
    return "\n".join(["Earlier in this room (demo summary):", *kept])
