"""An offline, deterministic stand-in for Claude, so `make run` works without any key."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from .base import ChatRequest, StreamEnd, StreamEvent, TextDelta, Usage
from .summary import demo_summary

QUOTE_CHARS = 80


def demo_reply(newest_user_text: str) -> str:
    """The fixed Markdown reply (60-120 words) quoting the newest user message."""
    # Its first 80 characters, on one line so that they cannot break the Markdown around them.
    quote = " ".join(newest_user_text.strip()[:QUOTE_CHARS].split()) or "(nothing)"
    return (
        "## Demo reply\n\n"
        f"You wrote: \u201c{quote}\u201d\n\n"
        "This is the **demo** model: it runs offline and always answers the same way, so you "
        "can try Roomchat without an API key. Things to try:\n\n"
        "- open this room in a second tab and watch the reply stream into both;\n"
        "- press **Stop** while a reply streams;\n"
        "- set `ANTHROPIC_API_KEY` to talk to Claude.\n\n"
        "```python\n"
        "print('hello from the demo provider')\n"
        "```\n\n"
        "Every tab in this room sees the same words at the same moment.\n"
    )


def split_words(text: str) -> list[str]:
    """Pieces that join back to `text` exactly, one word (with its trailing space) each."""
    pieces: list[str] = []
    current = ""
    for char in text:
        current += char
        if char in " \n":
            pieces.append(current)
            current = ""
    if current:
        pieces.append(current)
    return pieces


class DemoProvider:
    """Streams `demo_reply` at a readable pace."""

    name = "demo"

    def __init__(self, words_per_second: float = 20.0) -> None:
        self.delay = 1.0 / words_per_second

    def model_for(self, room_model: str) -> str:
        return "demo"

    def selectable_models(self) -> list[str]:
        return []

    def summary_model(self) -> str:
        return "demo"

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        if request.purpose == "summary":
            # Background work nobody watches: no pacing.
            text = demo_summary(request.turns[-1].text if request.turns else "")
            yield TextDelta(text)
            yield StreamEnd("end_turn", Usage(output_tokens=len(text.split())))
            return
        words = split_words(demo_reply(request.latest_message or _unlabelled(request)))
        for word in words:
            await asyncio.sleep(self.delay)
            yield TextDelta(word)
        output = sum(1 for w in words if w.strip())
        yield StreamEnd("end_turn", Usage(output_tokens=output))


def _unlabelled(request: ChatRequest) -> str:
    """The newest user turn's last message without its "name: " label (for bare requests)."""
    newest = next((t.text for t in reversed(request.turns) if t.role == "user"), "")
    last = newest.rsplit("\n\n", 1)[-1]
    return last.split(": ", 1)[1] if ": " in last else last
