"""Building model turns from a room's history: labels, merging, trimming, cache breakpoint."""

from chatsite.llm.base import Turn
from chatsite.llm.context import (
    TURN_OVERHEAD,
    HistoryItem,
    build_turns,
    estimate_tokens,
    merge_turns,
    request_budget,
)


def user(i: int, author: str, text: str) -> HistoryItem:
    return HistoryItem(id=i, role="user", author=author, text=text)


def claude(i: int, text: str) -> HistoryItem:
    return HistoryItem(id=i, role="assistant", author=None, text=text)


def test_user_turns_are_labelled_and_consecutive_ones_merged() -> None:
    turns = merge_turns([user(1, "alice", "hi"), user(2, "bob", "hello"), claude(3, "Hey both")])
    assert turns == [Turn("user", "alice: hi\n\nbob: hello"), Turn("assistant", "Hey both")]


def test_empty_failed_replies_are_skipped_and_history_starts_with_a_user() -> None:
    turns = merge_turns(
        [claude(1, "orphan"), user(2, "alice", "q1"), claude(3, ""), user(4, "bob", "q2")]
    )
    assert turns == [Turn("user", "alice: q1\n\nbob: q2")]


def test_oldest_whole_turns_are_dropped_to_fit_and_the_newest_is_kept() -> None:
    history = []
    for i in range(10):
        history += [user(2 * i, "alice", "question " * 30), claude(2 * i + 1, "answer " * 30)]
    history.append(user(99, "bob", "the newest"))
    full, dropped_none = build_turns(history, budget=10**6)
    assert dropped_none == 0
    budget = sum(estimate_tokens(t.text) + TURN_OVERHEAD for t in full[-5:])
    turns, dropped = build_turns(history, budget=budget)
    assert dropped > 0
    assert turns[0].role == "user"
    assert turns[-1].text == "bob: the newest"
    assert sum(estimate_tokens(t.text) + TURN_OVERHEAD for t in turns) <= budget
    # no turn was split: every kept turn appears whole in the full list
    assert all(t.text in {f.text for f in full} for t in turns)


def test_cache_breakpoint_marks_the_end_of_the_stable_history() -> None:
    turns, _ = build_turns([user(1, "a", "x"), claude(2, "y"), user(3, "a", "z")], budget=10**6)
    assert [t.cache_breakpoint for t in turns] == [False, True, False]


def test_budget_leaves_room_for_the_reply_and_a_margin() -> None:
    assert request_budget(200_000, 1024) == 200_000 - 1024 - 20_000


def test_estimate_is_pessimistic_for_english_and_counts_other_scripts() -> None:
    assert estimate_tokens("hello world, this is plain English text.") >= 40 // 4
    assert estimate_tokens("日本語のテキスト") >= 8
