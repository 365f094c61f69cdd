"""The server's tokenizer-free estimate (chatsite.llm.context.estimate_tokens) against the count
of Anthropic's published Claude tokenizer (tests/fakes/tokens.py), over many kinds of text."""

from __future__ import annotations

import pytest

from chatsite.llm.context import estimate_tokens
from tests.fakes.tokens import count_text
from tests.support.texts import CORPUS


@pytest.mark.parametrize("kind", sorted(CORPUS))
def test_the_estimate_is_never_below_the_real_count(kind: str) -> None:
    text = CORPUS[kind]
    real = count_text(text)
    assert estimate_tokens(text) >= real, (kind, estimate_tokens(text), real)


@pytest.mark.parametrize(
    ("kind", "at_most"),
    [("prose", 1.5), ("punctuated prose", 1.5), ("python", 1.5), ("javascript", 1.8)],
)
def test_ordinary_text_is_not_grossly_overcounted(kind: str, at_most: float) -> None:
    # Overcounting wastes the window: a room would fold and trim long before it must.
    text = CORPUS[kind]
    assert estimate_tokens(text) <= at_most * count_text(text), kind


def test_a_joined_conversation_costs_no_more_than_its_parts_estimated() -> None:
    # The builder estimates turn by turn; joining turns must not make the real count exceed it.
    texts = list(CORPUS.values())
    assert sum(estimate_tokens(t) for t in texts) >= count_text("\n\n".join(texts))
