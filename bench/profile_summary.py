"""Summarise py-spy raw (collapsed) stacks of a daphne process: where its CPU goes.

    python -m bench.profile_summary bench/results/profile/run-daphne-p0.txt [--top 25]

Only stacks of the event-loop thread count (those through `run_forever`); worker threads of
`database_sync_to_async` are reported as one line, since py-spy's idle detection is unreliable
for them in `--nonblocking` mode. For the loop thread it prints:

- activities: what the loop was doing, by the first matching rule (any frame of the stack);
- libraries: inside the fan-out activity, which library's code was running (innermost frame
  that belongs to a known library);
- the functions with the most samples on top of the stack (self) and anywhere (inclusive).
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

LOOP = re.compile(r"run_forever")
ACTIVITIES = [
    (
        "reply runner: SDK stream, emitter, live state",
        re.compile(r"consumers/(reply_\w+|emitter)\.py"),
    ),
    ("channels_redis receive loop (redis reads, queue puts)", re.compile(r"channels_redis")),
    (
        "per-socket fan-out: consumer receive, dispatch, send",
        re.compile(r"await_many_dispatch|RoomConsumer|handle_reply|sendMessage"),
    ),
    ("twisted: socket reads and writes, reactor", re.compile(r"twisted/")),
]
LIBRARIES = [
    ("autobahn (websocket framing)", re.compile(r"autobahn/")),
    ("twisted (transport)", re.compile(r"twisted/")),
    ("daphne", re.compile(r"daphne/")),
    ("msgpack / channels_redis", re.compile(r"channels_redis|msgpack")),
    ("channels (consumer, middleware wrappers)", re.compile(r"channels/")),
    ("asgiref", re.compile(r"asgiref/")),
    ("app (consumers/)", re.compile(r"consumers/")),
    ("asyncio (tasks, queues, futures)", re.compile(r"asyncio/")),
]


# A connection's work, for `--connect` (a `--gil` profile: every sample is CPU, any thread).
# The first rule any frame of a stack matches names it.
CONNECT_WORK = [
    ("db: session and user", re.compile(r"get_user|_get_user_session_key|session_watch")),
    ("db: spend counters from the ledger", re.compile(r"spent_today|_ledger_totals")),
    ("db: room by slug", re.compile(r"room_by_slug")),
    ("db: snapshot rows", re.compile(r"_load_snapshot_rows|newest_messages|snapshot_events")),
    ("db: other (pool, ORM, driver)", re.compile(r"psycopg|django/db")),
    ("presence (Redis)", re.compile(r"consumers/(state/)?presence\.py")),
    ("socket claims (Redis)", re.compile(r"socket_limits")),
    ("spend counters (Redis)", re.compile(r"budgets\.py|usage/store\.py")),
    ("snapshot: personalize, encode", re.compile(r"personalize|protocol/|json/encoder")),
    ("fan-out writes", re.compile(r"consumers/(fanout|outlet|wire)\.py")),
    ("reply stream", re.compile(r"consumers/(reply_\w+|emitter)\.py|anthropic")),
    ("redis-py, other calls", re.compile(r"redis/|channels_redis")),
    ("autobahn: handshake, framing", re.compile(r"autobahn/")),
    ("channels: middleware, consumer", re.compile(r"channels/")),
    (
        "daphne, twisted: HTTP, TCP",
        re.compile(r"daphne/(ws_|http_|utils|access)|twisted/(web|internet/tcp)"),
    ),
]


def first_match(rules: list[tuple[str, re.Pattern[str]]], frames: list[str], other: str) -> str:
    """The name of the first rule any frame of the stack matches, else `other`."""
    return next((name for name, rx in rules if any(rx.search(f) for f in frames)), other)


def summarise_connect(path: Path) -> None:
    """Where the CPU of a connecting process went, by `CONNECT_WORK` (all threads)."""
    stacks = load(path)
    total = sum(stacks.values())
    work: Counter[str] = Counter()
    for stack, count in stacks.items():
        frames = stack.split(";")
        work[first_match(CONNECT_WORK, frames, "other: event loop, reactor, asyncio")] += count
    print(f"== {path}: {total} samples (CPU: the thread holding the GIL)")
    for name, count in work.most_common():
        print(f"{pct(count, total)}  {name}")


def load(path: Path) -> Counter[str]:
    stacks: Counter[str] = Counter()
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            stacks[stack] += int(count)
    return stacks


def frame_name(frame: str) -> str:
    """`function (package/file.py)`: no line number, no site-packages prefix."""
    name = re.sub(r":\d+\)$", ")", frame)
    return re.sub(r"\(.*site-packages/", "(", name)


def pct(count: int, total: int) -> str:
    return f"{100 * count / max(1, total):6.1f} %"


def summarise(path: Path, top: int) -> None:
    stacks = load(path)
    total = sum(stacks.values())
    loop_total = 0
    activities: Counter[str] = Counter()
    libraries: Counter[str] = Counter()
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    for stack, count in stacks.items():
        frames = stack.split(";")
        if not any(LOOP.search(f) for f in frames):
            continue
        loop_total += count
        activity = first_match(ACTIVITIES, frames, "other (asyncio loop, timers, background tasks)")
        activities[activity] += count
        if activity.startswith("per-socket"):
            library = next(
                (name for frame in reversed(frames) for name, rx in LIBRARIES if rx.search(frame)),
                "other",
            )
            libraries[library] += count
        names = [frame_name(f) for f in frames]
        own[names[-1]] += count
        for name in set(names):
            inclusive[name] += count
    print(f"== {path}: {total} samples, {loop_total} on the event-loop thread")
    print(f"{pct(total - loop_total, total)}  worker threads (database_sync_to_async), of all")
    print("-- activities of the event-loop thread")
    for name, count in activities.most_common():
        print(f"{pct(count, loop_total)}  {name}")
    fanout = sum(libraries.values())
    print("-- per-socket fan-out, by the innermost library running")
    for name, count in libraries.most_common():
        print(f"{pct(count, fanout)}  {name}")
    print("-- self (event-loop thread)")
    for name, count in own.most_common(top):
        print(f"{pct(count, loop_total)}  {name}")
    print("-- inclusive (event-loop thread)")
    for name, count in inclusive.most_common(top):
        print(f"{pct(count, loop_total)}  {name}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.profile_summary")
    parser.add_argument("paths", nargs="+", type=Path)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument(
        "--connect", action="store_true", help="a --gil profile of connects: CPU by kind of work"
    )
    args = parser.parse_args(argv)
    for path in args.paths:
        if args.connect:
            summarise_connect(path)
        else:
            summarise(path, args.top)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
