"""The coalescing rule: the first delta at once, then at most one frame per interval."""

from consumers.emitter import DeltaBatcher


def test_first_text_goes_at_once() -> None:
    batcher = DeltaBatcher(0.02)
    assert batcher.add("Hel", now=10.0) == "Hel"


def test_text_within_the_interval_waits_and_is_joined() -> None:
    batcher = DeltaBatcher(0.02)
    batcher.add("a", now=10.0)
    assert batcher.add("b", now=10.005) is None
    assert batcher.add("c", now=10.010) is None
    assert batcher.due_in(10.010) == 0.01 or abs(batcher.due_in(10.010) - 0.01) < 1e-9
    assert batcher.add("d", now=10.021) == "bcd"


def test_take_flushes_everything_pending_once() -> None:
    batcher = DeltaBatcher(1.0)
    batcher.add("a", now=0.0)
    batcher.add("b", now=0.1)
    batcher.add("c", now=0.2)
    assert batcher.take(now=0.3) == "bc"
    assert batcher.take(now=0.4) is None
    assert not batcher.has_pending


def test_no_text_is_ever_lost_or_reordered() -> None:
    batcher = DeltaBatcher(0.05)
    sent: list[str] = []
    words = [f"w{i} " for i in range(500)]
    for i, word in enumerate(words):
        out = batcher.add(word, now=i * 0.003)
        if out:
            sent.append(out)
    rest = batcher.take(now=10.0)
    if rest:
        sent.append(rest)
    assert "".join(sent) == "".join(words)
    assert len(sent) < len(words) / 5  # coalesced: about one frame per 50 ms of 3 ms tokens
