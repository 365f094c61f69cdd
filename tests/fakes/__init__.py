"""Fake Anthropic and OpenAI-style model APIs on loopback, for tests that use the real SDKs."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .scenarios import (
    Fail,
    FakeServer,
    RecordedRequest,
    Reply,
    Scenario,
    default_chunks,
    queue_remote,
    remote_requests,
    scenario_from_json,
    scenario_to_json,
    standard_named,
    word_chunks,
)

if TYPE_CHECKING:
    from .anthropic_api import FakeAnthropic
    from .openai_api import FakeOpenAI

__all__ = [
    "Fail",
    "FakeAnthropic",
    "FakeOpenAI",
    "FakeServer",
    "RecordedRequest",
    "Reply",
    "Scenario",
    "default_chunks",
    "queue_remote",
    "remote_requests",
    "scenario_from_json",
    "scenario_to_json",
    "standard_named",
    "word_chunks",
]


def __getattr__(name: str) -> object:
    # Imported lazily: `python -m tests.fakes.anthropic_api` would otherwise load the
    # module twice (as the package's attribute and as __main__) and runpy warns about it.
    if name == "FakeAnthropic":
        from .anthropic_api import FakeAnthropic

        return FakeAnthropic
    if name == "FakeOpenAI":
        from .openai_api import FakeOpenAI

        return FakeOpenAI
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
