"""The budget is a hard ceiling: whole turns are dropped, and a too-long newest turn is cut."""

import random

from chatsite.llm.base import Turn
from chatsite.llm.context import (
    TURN_OVERHEAD,
    HistoryItem,
    build_turns,
    clip_turn,
    estimate_tokens,
    latest_user_text,
    request_budget,
    turns_cost,
)

ALPHABETS = ["abc def ghi ", "日本語のテキスト", "émoji 🎉 ", "x = f(y) + 1\n", "a" * 50]


def random_history(rng: random.Random, n: int) -> list[HistoryItem]:
    history = []
    for i in range(n):
        role = "user" if i % 2 == 0 or rng.random() < 0.3 else "assistant"
        text = rng.choice(ALPHABETS) * rng.randint(1, 400)
        history.append(HistoryItem(i + 1, role, "alice" if role == "user" else None, text))
    return history


def test_requests_never_exceed_the_budget_whatever_the_history() -> None:
    rng = random.Random(7)
    for _ in range(200):
        history = random_history(rng, rng.randint(1, 30))
        if history[-1].role != "user":
            history.append(HistoryItem(999, "user", "bob", "the newest " * rng.randint(1, 2000)))
        budget = rng.randint(50, 6000)
        fixed = rng.randint(0, budget // 2)
        turns, _ = build_turns(history, budget, fixed)
        assert turns, "the newest turn is always sent"
        assert fixed + turns_cost(turns) <= budget
        assert turns[0].role == "user" and turns[-1].role == "user"


def test_a_newest_turn_longer_than_the_budget_keeps_its_end() -> None:
    text = "start " + "middle " * 2000 + "THE END"
    clipped = clip_turn(Turn("user", "bob: " + text), budget=300)
    assert clipped.text.startswith("…") and clipped.text.endswith("THE END")
    assert estimate_tokens(clipped.text) + TURN_OVERHEAD <= 300
    short = Turn("user", "bob: hi")
    assert clip_turn(short, 300) is short


def test_budget_is_window_minus_reply_cap_minus_ten_percent() -> None:
    assert request_budget(200_000, 1024) == 178_976
    assert request_budget(8_000, 500) == 6_700


def test_latest_user_text_is_the_newest_message_unlabelled() -> None:
    history = [
        HistoryItem(1, "user", "alice", "first"),
        HistoryItem(2, "user", "bob", "two\n\nparagraphs: yes"),
        HistoryItem(3, "assistant", None, "reply"),
    ]
    assert latest_user_text(history) == "two\n\nparagraphs: yes"
    assert latest_user_text([]) == ""
