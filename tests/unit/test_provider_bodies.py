"""What each adapter builds from a ChatRequest, before any network (pure)."""

from typing import Any

from chatsite.llm.anthropic_provider import MAX_CACHE_BREAKPOINTS, build_params
from chatsite.llm.base import ChatRequest, Turn
from chatsite.llm.demo_provider import demo_reply, split_words
from chatsite.llm.heroku_provider import build_messages

EPHEMERAL = {"type": "ephemeral"}


def request(**overrides: Any) -> ChatRequest:
    fields: dict[str, Any] = {
        "model": "claude-sonnet-5-5",
        "system": "Be brief.",
        "summary": "Summary of the earlier conversation:\nS",
        "turns": (
            Turn("user", "alice: hi"),
            Turn("assistant", "Hello", cache_breakpoint=True),
            Turn("user", "bob: and me?"),
        ),
        "max_tokens": 321,
    }
    return ChatRequest(**{**fields, **overrides})


def breakpoints(params: dict[str, Any]) -> int:
    system = sum("cache_control" in b for b in params.get("system", []))
    turns = sum("cache_control" in b for m in params["messages"] for b in m["content"])
    return system + turns


def test_anthropic_caches_system_prompt_summary_and_stable_history() -> None:
    params = build_params(request())
    assert params["system"] == [
        {"type": "text", "text": "Be brief.", "cache_control": EPHEMERAL},
        {
            "type": "text",
            "text": "Summary of the earlier conversation:\nS",
            "cache_control": EPHEMERAL,
        },
    ]
    assert [m["content"][0].get("cache_control") for m in params["messages"]] == [
        None,
        EPHEMERAL,
        None,
    ]
    assert breakpoints(params) == 3


def test_anthropic_never_sends_more_than_four_breakpoints() -> None:
    turns = tuple(Turn("user" if i % 2 == 0 else "assistant", f"t{i}", True) for i in range(9))
    params = build_params(request(turns=turns))
    assert breakpoints(params) == MAX_CACHE_BREAKPOINTS == 4
    # The newest marked turns keep theirs.
    marked = [i for i, m in enumerate(params["messages"]) if "cache_control" in m["content"][0]]
    assert marked == [7, 8]


def test_anthropic_without_system_or_summary_sends_no_system() -> None:
    params = build_params(request(system="", summary=""))
    assert "system" not in params and breakpoints(params) == 1


def test_heroku_sends_plain_strings_and_one_system_message() -> None:
    assert build_messages(request()) == [
        {"role": "system", "content": "Be brief.\n\nSummary of the earlier conversation:\nS"},
        {"role": "user", "content": "alice: hi"},
        {"role": "assistant", "content": "Hello"},
        {"role": "user", "content": "bob: and me?"},
    ]
    assert build_messages(request(system="", summary=""))[0]["role"] == "user"


def test_demo_reply_has_the_promised_shape() -> None:
    for quote in ["", "hi", "x" * 500, "a " * 200, "Line one\n\n# not a heading"]:
        text = demo_reply(quote)
        words = sum(1 for w in split_words(text) if w.strip())
        assert 60 <= words <= 120
        assert text.startswith("## ") and "\n- " in text and "```" in text
        assert "".join(split_words(text)) == text
    assert "“" + "x" * 80 + "”" in demo_reply("x" * 500)
    assert "“Line one # not a heading”" in demo_reply("Line one\n\n# not a heading")
