"""Folding long rooms: when, where the fold ends, what the summarizer reads (pure)."""

from chatsite.llm.context import HistoryItem, merge_turns
from chatsite.llm.summary import (
    FOLD_AT,
    SUMMARY_MAX_CHARS,
    clean_summary,
    demo_summary,
    item_cost,
    plan_fold,
    summary_block,
    summary_prompt,
    transcript,
)


def user(i: int, author: str, text: str) -> HistoryItem:
    return HistoryItem(id=i, role="user", author=author, text=text)


def claude(i: int, text: str) -> HistoryItem:
    return HistoryItem(id=i, role="assistant", author=None, text=text)


def exchanges(n: int, words: int = 40) -> list[HistoryItem]:
    history: list[HistoryItem] = []
    for i in range(n):
        history.append(user(2 * i + 1, "alice" if i % 2 else "bob", f"q{i} " + "word " * words))
        history.append(claude(2 * i + 2, f"a{i} " + "answer " * words))
    return history


def cost(items: list[HistoryItem]) -> int:
    return sum(item_cost(i) for i in items)


def test_no_fold_while_the_history_fits_comfortably() -> None:
    history = exchanges(10)
    budget = int(cost(history) / FOLD_AT) + 10
    assert plan_fold(history, budget, fixed_tokens=0) is None
    # The system prompt and summary count too.
    assert plan_fold(history, budget, fixed_tokens=50) is not None


def test_fold_takes_about_the_oldest_half_and_ends_before_a_user_message() -> None:
    history = exchanges(20)
    total = cost(history)
    # Over the 60 % threshold, with room to fold half the history (a fold stays within half
    # the budget, so with budget == total it could end just short of half).
    fold = plan_fold(history, budget=int(total * 1.2), fixed_tokens=0)
    assert fold is not None
    n = len(fold.items)
    assert fold.items == tuple(history[:n])
    assert fold.upto_id == history[n - 1].id
    assert history[n].role == "user"  # the kept history starts with a user turn
    assert total * 0.5 <= cost(history[:n]) <= total * 0.5 + cost(history[n - 2 : n])
    # What is kept still begins with a user turn and loses nothing to merge_turns.
    kept = merge_turns(history[n:])
    assert len(kept) == len(history) - n and kept[0].role == "user"


def test_fold_never_takes_the_newest_message() -> None:
    history = [*exchanges(3), user(99, "bob", "huge " * 3000)]
    fold = plan_fold(history, budget=2000, fixed_tokens=0)
    assert fold is not None and fold.items[-1].id < 99
    assert plan_fold([user(1, "a", "x " * 5000)], budget=100, fixed_tokens=0) is None


def test_fold_stays_within_half_the_budget_so_the_summarizer_request_fits() -> None:
    history = exchanges(60)
    budget = cost(history) // 3  # far over: folds happen in several steps
    fold = plan_fold(history, budget=budget, fixed_tokens=0)
    assert fold is not None
    assert cost(list(fold.items)) <= budget // 2


def test_consecutive_user_messages_may_be_split_but_an_answer_is_never_orphaned() -> None:
    history = [user(i, "bob", "chatter " * 30) for i in range(1, 30)]
    history.append(claude(30, "finally an answer"))
    history.append(user(31, "alice", "and now?"))
    fold = plan_fold(history, budget=cost(history), fixed_tokens=0)
    assert fold is not None
    assert history[len(fold.items)].role == "user"


def test_transcript_tags_authors_and_skips_empty_replies() -> None:
    items = [user(1, "alice", "Hi <b>"), claude(2, ""), claude(3, "Hello"), user(4, "", "x")]
    assert transcript(items) == (
        '<message from="alice">\nHi <b>\n</message>\n'
        '<message from="Claude">\nHello\n</message>\n'
        '<message from="someone">\nx\n</message>'
    )


def test_prompt_carries_the_previous_summary_and_the_new_messages() -> None:
    prompt = summary_prompt("- earlier facts", [user(1, "alice", "new")])
    assert prompt.startswith("<previous_summary>\n- earlier facts\n</previous_summary>")
    assert '<message from="alice">\nnew\n</message>' in prompt
    assert "<previous_summary>" not in summary_prompt("  ", [user(1, "alice", "new")])


def test_summary_is_trimmed_capped_and_headed() -> None:
    assert clean_summary("  text \n") == "text"
    assert len(clean_summary("x" * 10_000)) == SUMMARY_MAX_CHARS
    assert summary_block("") == ""
    assert summary_block("S") == "Summary of the earlier conversation:\nS"


def test_demo_summary_is_deterministic_and_bounded_across_folds() -> None:
    first = demo_summary(summary_prompt("", [user(1, "alice", "one two"), claude(2, "three")]))
    assert first == ("Earlier in this room (demo summary):\n- alice: one two\n- Claude: three")
    assert demo_summary(summary_prompt("", [user(1, "alice", "one two")])) == demo_summary(
        summary_prompt("", [user(1, "alice", "one two")])
    )
    summary = ""
    for fold in range(10):
        items = [user(fold * 10 + i, "bob", "word " * 50) for i in range(5)]
        summary = demo_summary(summary_prompt(summary, items))
    lines = summary.splitlines()
    assert len(lines) == 13 and all(ln.endswith("…") for ln in lines[1:])


def test_short_rooms_do_not_even_look_for_a_fold(settings) -> None:
    from chatsite.llm.base import ChatRequest, Turn
    from consumers.summarizer import may_need_fold

    settings.LLM_CONTEXT_WINDOW, settings.LLM_MAX_TOKENS = 20_000, 500
    short = ChatRequest("m", "Be brief.", (Turn("user", "alice: hi"),), 500)
    assert not may_need_fold(short)
    long = ChatRequest("m", "Be brief.", (Turn("user", "alice: " + "word " * 10_000),), 500)
    assert may_need_fold(long)
    # Many short messages: a look, however few tokens they take (the history cap below).
    chatty = ChatRequest("m", "Be brief.", (Turn("user", "alice: hi"),), 500, history_size=1000)
    assert may_need_fold(chatty)


def test_a_crowd_of_short_messages_folds_before_the_history_cap_slides() -> None:
    from chatsite.llm.summary import FOLD_MESSAGES
    from chatsite.rooms.selectors import HISTORY_LIMIT

    # A request reads at most HISTORY_LIMIT messages: past that its prefix would slide (no
    # cache hits) and the oldest would drop out unsummarized. Folding at FOLD_MESSAGES keeps
    # the unsummarized history well under the cap.
    assert FOLD_MESSAGES <= HISTORY_LIMIT // 2
    history = exchanges(FOLD_MESSAGES // 2, words=1)
    budget = 10 * cost(history)  # far from the token threshold
    fold = plan_fold(history, budget, fixed_tokens=0)
    assert fold is not None and len(fold.items) >= len(history) // 2
    assert history[len(fold.items)].role == "user"
    assert plan_fold(history[:-2], budget, fixed_tokens=0) is None  # one exchange fewer
