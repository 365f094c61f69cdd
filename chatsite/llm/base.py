"""The one small interface every model provider implements, and the values it streams."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Literal, Protocol


@dataclass(frozen=True)
class Turn:
    """One message of the conversation as sent to a model (already labelled and merged)."""

    role: Literal["user", "assistant"]
    text: str
    # Anthropic only: put a cache breakpoint after this turn (the end of the stable history).
    cache_breakpoint: bool = False


@dataclass(frozen=True)
class ChatRequest:
    """Everything a provider needs for one reply."""

    model: str
    system: str
    turns: tuple[Turn, ...]
    max_tokens: int
    # Summary of older, folded turns; sent as a second system block so the prompt prefix is stable.
    summary: str = ""
    # The newest user message as its author wrote it (no label, not merged): the demo quotes it.
    latest_message: str = ""
    # "reply" streams into a room; "summary" folds old turns in the background (the demo answers
    # it offline with a summary instead of its demo reply).
    purpose: Literal["reply", "summary"] = "reply"
    # Bookkeeping for the runner, not sent: the estimated input tokens, the budget they had to
    # fit (both in estimated tokens) and how many stored messages the turns were built from.
    estimated_input_tokens: int = 0
    budget: int = 0
    history_size: int = 0


@dataclass
class Usage:
    """Token counts of one reply; 0 where a provider does not say."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0

    def as_dict(self) -> dict[str, int]:
        return {
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cache_creation_input_tokens": self.cache_creation_input_tokens,
            "cache_read_input_tokens": self.cache_read_input_tokens,
        }


@dataclass(frozen=True)
class TextDelta:
    """A piece of reply text, in order."""

    text: str


@dataclass(frozen=True)
class StreamEnd:
    """The model finished normally; `stop_reason` in Anthropic's words (end_turn, max_tokens...)."""

    stop_reason: str | None
    usage: Usage = field(default_factory=Usage)


@dataclass(frozen=True)
class UsageUpdate:
    """Usage known so far (e.g. input tokens from message_start), kept if the stream then fails."""

    usage: Usage


StreamEvent = TextDelta | StreamEnd | UsageUpdate


class Provider(Protocol):
    """A model backend: Anthropic, Heroku Managed Inference or the offline demo."""

    # `anthropic`, `heroku` or `demo`: shown to users in the room.
    name: str

    def model_for(self, room_model: str) -> str:
        """The model actually called for a room whose owner picked `room_model`."""
        ...

    def selectable_models(self) -> list[str]:
        """Models a room owner may pick (empty when the provider has one fixed model)."""
        ...

    def summary_model(self) -> str:
        """The (cheap) model that writes long rooms' summaries."""
        ...

    def stream(self, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        """Stream one reply; raises only `chatsite.llm.errors.LLMError` subclasses."""
        ...
