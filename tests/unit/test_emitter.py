"""The delta emitter: numbering, coalescing, and a model stream that never waits for the fan-out."""

from __future__ import annotations

import asyncio
import time

from consumers.emitter import DeltaEmitter


async def test_a_slow_fan_out_makes_frames_bigger_not_the_stream_slower() -> None:
    sent: list[tuple[int, str]] = []

    async def slow_publish(seq: int, text: str) -> None:
        await asyncio.sleep(0.1)  # Redis under load
        sent.append((seq, text))

    emitter = DeltaEmitter(0.02, slow_publish)
    tokens = [f"t{i} " for i in range(50)]
    started = time.monotonic()
    for token in tokens:
        await emitter.add(token)
        await asyncio.sleep(0.005)  # 200 tokens/s from the model
    add_time = time.monotonic() - started
    await emitter.flush()
    assert add_time < 1.0  # 50 adds never waited for 100 ms publishes (that would be >= 5 s)
    assert [seq for seq, _ in sent] == list(range(1, len(sent) + 1))
    assert "".join(text for _, text in sent) == "".join(tokens) == emitter.text
    assert emitter.seq == len(sent) < len(tokens) / 3  # several tokens per frame


async def test_first_text_leaves_at_once_and_flush_sends_the_rest() -> None:
    sent: list[tuple[int, str, float]] = []

    async def publish(seq: int, text: str) -> None:
        sent.append((seq, text, time.monotonic()))

    emitter = DeltaEmitter(10.0, publish)  # a long interval: only the first frame is due
    t0 = time.monotonic()
    await emitter.add("Hello")
    async with asyncio.timeout(1.0):  # far inside the 10 s interval: it did not wait for it
        while not sent:
            await asyncio.sleep(0)
    await emitter.add(", ")
    await emitter.add("world")
    assert [s[:2] for s in sent] == [(1, "Hello")]
    await emitter.flush()  # does not wait out the 10 s interval
    assert [s[:2] for s in sent] == [(1, "Hello"), (2, ", world")]
    assert time.monotonic() - t0 < 1.0
    assert emitter.text == "Hello, world"


async def test_flush_without_text_sends_nothing() -> None:
    sent: list[int] = []

    async def publish(seq: int, text: str) -> None:
        sent.append(seq)

    emitter = DeltaEmitter(0.02, publish)
    await emitter.flush()
    assert sent == [] and emitter.text == "" and not emitter.received_any


async def test_all_text_holds_what_is_sent_and_what_still_waits() -> None:
    sent: list[tuple[int, str]] = []
    release = asyncio.Event()

    async def slow_publish(seq: int, text: str) -> None:
        sent.append((seq, text))
        await release.wait()

    emitter = DeltaEmitter(0.05, slow_publish)
    await emitter.add("first ")
    while not sent:  # until the sender has taken "first " and waits in publish
        await asyncio.sleep(0)
    await emitter.add("second")
    assert emitter.text == "first " and emitter.all_text == "first second"
    release.set()
    await emitter.flush()
    assert emitter.text == emitter.all_text == "first second"
