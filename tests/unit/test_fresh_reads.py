"""FreshReads: callers share a read only if it started after they asked (snapshot exactness
under a connect storm, consumers/fresh_reads.py)."""

from __future__ import annotations

import asyncio

import pytest

from consumers.fresh_reads import FreshReads


class Source:
    """A value that changes; each read reports the value as of the moment the read started."""

    def __init__(self) -> None:
        self.value = 0
        self.started = asyncio.Event()
        self.release = asyncio.Event()

    async def read(self, key: str) -> tuple[str, int]:
        seen = self.value
        self.started.set()
        await self.release.wait()
        return key, seen


async def test_callers_during_a_read_share_the_next_one_which_sees_later_changes() -> None:
    source = Source()
    reads = FreshReads(source.read)
    first = asyncio.create_task(reads.get("room"))
    await source.started.wait()
    source.value = 1  # changes after the first read started: its callers must see it
    later = [asyncio.create_task(reads.get("room")) for _ in range(5)]
    await asyncio.sleep(0)
    source.release.set()
    assert await first == ("room", 0)
    assert [await t for t in later] == [("room", 1)] * 5
    assert reads.reads == 2


async def test_keys_are_read_apart_and_errors_reach_every_caller_of_that_read() -> None:
    async def read(key: str) -> str:
        await asyncio.sleep(0.01)
        if key == "gone":
            raise LookupError(key)
        return key.upper()

    reads: FreshReads[str, str] = FreshReads(read)
    results = await asyncio.gather(
        reads.get("a"), reads.get("b"), reads.get("gone"), reads.get("gone"),
        return_exceptions=True,
    )  # fmt: skip
    assert list(results[:2]) == ["A", "B"]
    assert all(isinstance(r, LookupError) for r in results[2:])


async def test_a_caller_that_gives_up_does_not_cancel_the_read_for_the_others() -> None:
    source = Source()
    reads = FreshReads(source.read)
    quitter = asyncio.create_task(reads.get("room"))
    stayer = asyncio.create_task(reads.get("room"))
    await asyncio.sleep(0)
    quitter.cancel()
    source.release.set()
    with pytest.raises(asyncio.CancelledError):
        await quitter
    assert await stayer == ("room", 0)
