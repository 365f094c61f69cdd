"""One client process of the fan-out benchmark: many tabs (websockets) that record every frame.

Started by `bench.fanout`, never by hand. Reads a JSON spec file (argv[1]), connects its tabs,
prints `READY <connected> <failed>` and waits for a line `GO` on stdin. Then the sending tab (if
this process has it) sends one `message.send`; every tab records each frame with its receipt
time until `generation.finished` or the deadline, prints `ENDED`, writes its results (per tab,
plus every token's latency) to the spec's `out` path, and prints `DONE`.

The receive path is kept as cheap as the websockets library allows, so that the client is not
what gets measured: after the snapshot, text frames are taken straight from the connection's
protocol callback (`process_event`, where websockets has just parsed them off the socket) and
stored raw with `time.time()`; no `recv()` task wakes per frame, no JSON is parsed until the
end. An event-loop lag probe runs during the stream: were this process falling behind, the lag
would show it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.frames import Frame, Opcode
from websockets.protocol import Event

from bench.model_stub import parse_tokens

LAG_PROBE_SECONDS = 0.005
CONNECT_CONCURRENCY = 10
SETTLE_QUIET = 1.0  # seconds without any frame: the room is quiet
SETTLE_LIMIT = 120.0
FINISHED = b'"generation.finished"'


class RecordingConnection(ClientConnection):
    """A client connection that, once `record()` is called, stores each text frame with the
    time it was parsed, instead of queueing it for `recv()`."""

    frames: list[tuple[float, bytes]] | None = None
    on_finished: asyncio.Event | None = None

    def record(self, frames: list[tuple[float, bytes]], finished: asyncio.Event) -> None:
        self.frames = frames
        self.on_finished = finished

    def process_event(self, event: Event) -> None:
        frames = self.frames
        if (
            frames is not None
            and isinstance(event, Frame)
            and event.opcode is Opcode.TEXT
            and event.fin
        ):
            data = bytes(event.data)
            frames.append((time.time(), data))
            if FINISHED in data and self.on_finished is not None:
                self.on_finished.set()
            return
        super().process_event(event)


@dataclass
class Tab:
    """One browser tab: where it connects and what it received."""

    index: int  # global tab number
    url: str
    origin: str
    session: str
    conn: RecordingConnection | None = None
    error: str = ""
    frames: list[tuple[float, bytes]] = field(default_factory=list)
    go_at: int = 0  # index in `frames` of the first frame after GO
    finished: asyncio.Event = field(default_factory=asyncio.Event)


async def open_tab(tab: Tab, gate: asyncio.Semaphore) -> None:
    async with gate:
        try:
            conn = await connect(
                tab.url,
                origin=tab.origin,  # type: ignore[arg-type]
                additional_headers={"Cookie": f"sessionid={tab.session}"},
                max_size=None,
                open_timeout=30,
                create_connection=RecordingConnection,
            )
            assert isinstance(conn, RecordingConnection)
            tab.conn = conn
            # The snapshot is the first frame of an admitted tab; a refusal closes instead.
            first = await asyncio.wait_for(conn.recv(decode=False), 30)
            if b'"room.snapshot"' not in first:
                tab.error = f"first frame was not a snapshot: {first[:200]!r}"
            # From now on frames go straight to the list (the presence frame included).
            conn.record(tab.frames, tab.finished)
            while True:  # anything already queued for recv() (e.g. presence) is not needed
                try:
                    await asyncio.wait_for(conn.recv(decode=False), 0.001)
                except TimeoutError:
                    break
        except Exception as exc:
            tab.error = f"{type(exc).__name__}: {exc}"


async def watch_tab(tab: Tab) -> None:
    """Notice a socket that closes before its reply finished."""
    assert tab.conn is not None
    try:
        await tab.conn.wait_closed()
    finally:
        if not tab.finished.is_set():
            tab.error = tab.error or f"closed early: {tab.conn.close_code} {tab.conn.close_reason}"
            tab.finished.set()


async def lag_probe(samples: list[float], stop: asyncio.Event) -> None:
    """How late the loop wakes a 5 ms sleeper: the client's own queueing delay."""
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        before = loop.time()
        await asyncio.sleep(LAG_PROBE_SECONDS)
        samples.append((loop.time() - before - LAG_PROBE_SECONDS) * 1000)


def analyse(tab: Tab, epoch: float) -> tuple[dict[str, Any], list[float]]:
    """The tab's counts and the latency (ms) of every token it received."""
    seqs: list[int] = []
    texts: list[str] = []
    latencies: list[float] = []
    tokens: set[int] = set()
    finished: dict[str, Any] | None = None
    finished_at: float | None = None
    first_delta_at: float | None = None
    other: dict[str, int] = {}
    for received, raw in tab.frames[tab.go_at :]:
        frame = json.loads(raw)
        kind = frame.get("type")
        if kind == "generation.delta":
            if first_delta_at is None:
                first_delta_at = received
            seqs.append(int(frame["seq"]))
            texts.append(frame["text"])
            for index, emitted in parse_tokens(frame["text"], epoch):
                tokens.add(index)
                latencies.append(round((received - emitted) * 1000, 3))
        elif kind == "generation.finished" and finished is None:
            finished = frame
            finished_at = received
        else:
            other[str(kind)] = other.get(str(kind), 0) + 1
    joined = "".join(texts)
    final_text = finished["text"] if finished else None
    out_of_order = sum(1 for a, b in itertools.pairwise(seqs) if b <= a)
    stats = {
        "tab": tab.index,
        "url": tab.url,
        "error": tab.error,
        "deltas": len(seqs),
        "unique_seqs": len(set(seqs)),
        "max_seq": max(seqs, default=0),
        "duplicates": len(seqs) - len(set(seqs)),
        "out_of_order": out_of_order,
        "chars_received": len(joined),
        "tokens_received": len(tokens),
        "finished": finished is not None,
        "finished_status": finished.get("status") if finished else None,
        "finished_chars": len(final_text) if final_text is not None else None,
        "finished_tokens": len(parse_tokens(final_text, epoch)) if final_text else 0,
        "text_ok": final_text is not None and joined == final_text,
        "first_delta_at": first_delta_at,
        "finished_at": finished_at,
        "other_frames": other,
    }
    return stats, latencies


async def run(spec: dict[str, Any]) -> None:
    epoch = float(spec["epoch"])
    tabs = [
        Tab(index=t["index"], url=t["url"], origin=t["origin"], session=t["session"])
        for t in spec["tabs"]
    ]
    gate = asyncio.Semaphore(int(spec.get("concurrency", CONNECT_CONCURRENCY)))
    await asyncio.gather(*(open_tab(tab, gate) for tab in tabs))
    live = [tab for tab in tabs if tab.conn is not None and not tab.error]
    watchers: list[asyncio.Task[Any]] = [asyncio.create_task(watch_tab(tab)) for tab in live]
    print(f"READY {len(live)} {len(tabs) - len(live)}", flush=True)

    loop = asyncio.get_running_loop()
    line = await loop.run_in_executor(None, sys.stdin.readline)
    if line.strip() == "SETTLE":
        # Joins broadcast presence to the whole room: wait until that storm has drained.
        began = time.time()
        while time.time() - began < SETTLE_LIMIT:
            last = max((tab.frames[-1][0] for tab in live if tab.frames), default=began)
            if time.time() - last >= float(spec.get("settle_quiet", SETTLE_QUIET)):
                break
            await asyncio.sleep(0.1)
        print(f"SETTLED {time.time() - began:.1f}", flush=True)
        line = await loop.run_in_executor(None, sys.stdin.readline)
    if line.strip() != "GO":
        raise SystemExit(f"expected GO, got {line!r}")
    started = time.time()
    for tab in live:
        tab.go_at = len(tab.frames)
        tab.finished.clear()
    lag: list[float] = []
    stop = asyncio.Event()
    probe = asyncio.create_task(lag_probe(lag, stop))
    sent_at = None
    # Tabs with a prompt of their own send it (one per room); else the first tab sends spec's.
    prompts = {t["index"]: t["prompt"] for t in spec["tabs"] if t.get("prompt")}
    if not prompts and spec.get("sender") and live:
        prompts = {live[0].index: spec["prompt"]}
    for tab in live:
        if tab.index in prompts:
            assert tab.conn is not None
            frame = {
                "type": "message.send",
                "text": prompts[tab.index],
                "client_msg_id": f"{spec['msg_id']}-{tab.index}",
            }
            sent_at = sent_at or time.time()
            await tab.conn.send(json.dumps(frame))
    deadline = float(spec["timeout"])
    waiting: list[asyncio.Task[Any]] = [asyncio.create_task(tab.finished.wait()) for tab in live]
    if waiting:
        _, pending = await asyncio.wait(waiting, timeout=deadline)
        for task in pending:
            task.cancel()
    ended = time.time()
    print("ENDED", flush=True)
    stop.set()
    await probe
    for tab in live:
        if not tab.finished.is_set():
            tab.error = tab.error or "no generation.finished before the deadline"
    with contextlib.suppress(Exception):
        await asyncio.wait_for(
            asyncio.gather(*(tab.conn.close() for tab in live if tab.conn), return_exceptions=True),
            10,
        )
    for task in watchers:
        task.cancel()

    results: list[dict[str, Any]] = []
    latencies: list[float] = []
    for tab in tabs:
        if tab in live:
            stats, lat = analyse(tab, epoch)
            results.append(stats)
            latencies.extend(lat)
        else:
            results.append({"tab": tab.index, "url": tab.url, "error": tab.error or "no socket"})
    lag.sort()
    out = {
        "tabs": results,
        "latencies_ms": latencies,
        "sent_at": sent_at,
        "go_at": started,
        "ended_at": ended,
        "loop_lag_ms": {
            "samples": len(lag),
            "p50": lag[len(lag) // 2] if lag else None,
            "p99": lag[int(len(lag) * 0.99)] if lag else None,
            "max": lag[-1] if lag else None,
        },
    }
    with open(spec["out"], "w") as handle:
        json.dump(out, handle)
    print("DONE", flush=True)


def main() -> int:
    with open(sys.argv[1]) as handle:
        spec = json.load(handle)
    asyncio.run(run(spec))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
