"""When Claude answers: mentions, the reply need per mode, the demo rule, the auto prompt (pure)."""

import pytest

from chatsite.conversation.reply_modes import (
    DECISION_TURNS,
    decision_prompt,
    demo_wants_reply,
    mentions_claude,
    parse_answer,
    reply_need,
)
from chatsite.llm.context import HistoryItem, estimate_tokens


@pytest.mark.parametrize(
    ("text", "mentioned"),
    [
        ("@claude hi", True),
        ("hey @Claude, what now?", True),
        ("@CLAUDE", True),
        ("(@claude)", True),
        ("thanks @claude.", True),
        ("claude, are you there?", False),  # no @
        ("@claudette is my cat", False),  # not the word
        ("write to bob@claude.ai", False),  # an address
        ("@@claude", False),
        ("", False),
    ],
)
def test_a_mention_is_at_claude_as_a_word_in_any_case(text: str, mentioned: bool) -> None:
    assert mentions_claude(text) is mentioned


@pytest.mark.parametrize(
    ("mode", "text", "need"),
    [
        ("always", "hey bob", "yes"),
        ("always", "@claude hi", "yes"),
        ("mention", "hey bob", "no"),
        ("mention", "@claude hi", "yes"),
        ("auto", "hey bob", "ask"),
        ("auto", "@claude hi", "yes"),
    ],
)
def test_what_a_message_calls_for_in_each_mode(mode: str, text: str, need: str) -> None:
    assert reply_need(mode, text) == need


@pytest.mark.parametrize(
    ("text", "wanted"),
    [
        ("Claude, what is a tide?", True),
        ("thanks claude", True),
        ("@claude hi", True),
        ("hey bob, you free saturday?", False),
        ("who brings the cake?", False),
        ("claudette says hi", False),
    ],
)
def test_the_demo_rule_answers_when_the_message_names_claude(text: str, wanted: bool) -> None:
    assert demo_wants_reply(text) is wanted


def test_the_decision_prompt_is_the_newest_turns_labelled_and_small() -> None:
    history = [
        HistoryItem(i, "user", f"person{i}", f"message {i} " + "word " * 500) for i in range(10)
    ]
    history.append(HistoryItem(10, "assistant", None, "an earlier answer"))
    history.append(HistoryItem(11, "user", "bob", "so what do we do?"))
    prompt = decision_prompt(history)
    lines = prompt.splitlines()
    assert lines[0] == "<chat>" and lines[DECISION_TURNS + 1] == "</chat>"
    assert lines[DECISION_TURNS - 1] == "Claude: an earlier answer"
    assert lines[DECISION_TURNS] == "bob: so what do we do?"
    assert "person7" not in prompt and "person8: message 8" in prompt
    assert "(from bob)" in lines[-1]
    # A few hundred tokens at most, however long the messages.
    assert estimate_tokens(prompt) < 400


@pytest.mark.parametrize(
    ("answer", "yes"),
    [
        ("yes", True),
        ("Yes.", True),
        (" YES", True),
        ("no", False),
        ("No, they", False),
        ("", False),
        ("maybe yes", False),
    ],
)
def test_only_a_plain_yes_is_a_yes(answer: str, yes: bool) -> None:
    assert parse_answer(answer) is yes
