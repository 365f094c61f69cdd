"""Input token counts for the fake model APIs, from a real tokenizer.

The fakes report `input_tokens` (and refuse requests over their context window) with the count
of Anthropic's published Claude tokenizer, so that the server's tokenizer-free estimate is
checked against a real byte-level BPE, not against a formula of our own. It is the tokenizer
of Claude's earlier models; newer ones tokenize somewhat differently, which `token_scale` on a
fake simulates (and the server's calibration must absorb).

`make install` puts it in .venv/claude-tokenizer (requirements-tokenizer.txt);
CLAUDE_TOKENIZER may name another copy of the file.
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path
from typing import Any

from .scenarios import JSONDict, content_text

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_PATH = REPO_ROOT / ".venv" / "claude-tokenizer" / "anthropic" / "tokenizer.json"
# The API's framing around each message and the system prompt (role markers, separators).
MESSAGE_FRAMING = 4
SYSTEM_FRAMING = 2


@cache
def tokenizer() -> Any:
    """The loaded tokenizer (a `tokenizers.Tokenizer`)."""
    from tokenizers import Tokenizer

    path = Path(os.environ.get("CLAUDE_TOKENIZER") or DEFAULT_PATH)
    if not path.is_file():
        raise RuntimeError(f"Claude's tokenizer is missing at {path}: run `make install`")
    return Tokenizer.from_file(os.fspath(path))


def count_text(text: str) -> int:
    """Tokens of `text` alone."""
    return len(tokenizer().encode(text, add_special_tokens=False).ids) if text else 0


def count_request(body: JSONDict | None) -> int:
    """Input tokens of a Messages or chat-completions request body: its text plus framing."""
    if not body:
        return 0
    total = 0
    system = body.get("system")
    if system:
        total += count_text(content_text(system)) + SYSTEM_FRAMING
    messages = body.get("messages")
    for message in messages if isinstance(messages, list) else []:
        if isinstance(message, dict):
            total += count_text(content_text(message.get("content"))) + MESSAGE_FRAMING
    return total
