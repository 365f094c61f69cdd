"""How many reply deltas one Redis server carries (docs/operations.md, "Capacity plan").

Each delta costs Redis what the reply runner does for it: the live-text EVALSHA (the app's own
Lua script, consumers/state/livetext.py) and one PUBLISH of the frame to the room's group
channel, which Redis copies to every subscribed process. This starts a private redis-server,
subscribes PROCS "processes" to every room channel, streams from ROOMS rooms at once with
several client processes, and reports Redis's own CPU time per delta, so the figure does not
depend on how fast this machine's Python clients are:

    .venv/bin/python scripts/redis_capacity.py [--rooms 40] [--procs 3] [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import sys
import tempfile
import time
from pathlib import Path

import redis
import redis.asyncio as aioredis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from consumers.state.livetext import _APPEND
from tests.support.redis_server import RedisServer

# A delta frame as the pubsub layer publishes it: msgpack of the event with the encoded JSON
# frame (about 20 ms of a 100 tokens/s stream: 2-3 tokens) — ~230 bytes.
FRAME = json.dumps(
    {"type": "generation.delta", "message_id": 123456, "seq": 42, "text": "streamed text. "}
)
PAYLOAD = b"\x82\xa4type\xaeroom.broadcast\xa5frame\xda" + FRAME.encode().ljust(200)


def channel(room: int) -> str:
    return f"roomchat__group__room.{room}"


async def subscriber(url: str, rooms: int, stop: float) -> int:
    client = aioredis.Redis.from_url(url)
    pubsub = client.pubsub()
    await pubsub.subscribe(*(channel(r) for r in range(rooms)))
    got = 0
    while time.monotonic() < stop:
        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.5)
        got += message is not None
    await client.aclose()
    return got


async def room_stream(client: aioredis.Redis, room: int, stop: float) -> int:
    gen, text = f"roomchat:room:{room}:gen", f"roomchat:room:{room}:text"
    await client.hset(gen, mapping={"message_id": room, "seq": 0})
    append = client.register_script(_APPEND)
    sent, seq = 0, 0
    while time.monotonic() < stop:
        seq += 1
        await append(keys=[gen, text], args=[room, seq, "token ", 3600])
        await client.publish(channel(room), PAYLOAD)
        sent += 1
        if seq % 500 == 0:  # a reply ends, a new one starts: the text does not grow forever
            await client.set(text, "")
    return sent


def writer(url: str, rooms: list[int], seconds: float, out: multiprocessing.Queue) -> None:
    async def main() -> int:
        client = aioredis.Redis.from_url(url)
        stop = time.monotonic() + seconds
        counts = await asyncio.gather(*(room_stream(client, r, stop) for r in rooms))
        await client.aclose()
        return sum(counts)

    out.put(asyncio.run(main()))


def reader(url: str, rooms: int, seconds: float, out: multiprocessing.Queue) -> None:
    try:
        out.put(asyncio.run(subscriber(url, rooms, time.monotonic() + seconds + 1)))
    except Exception as exc:  # e.g. Redis cut a subscriber that fell behind (output buffer)
        print(f"subscriber failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        out.put(-1)


def redis_cpu(client: redis.Redis) -> float:
    info = client.info("cpu")
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rooms", type=int, default=40)
    parser.add_argument("--procs", type=int, default=3, help="subscribed server processes")
    parser.add_argument("--writers", type=int, default=2, help="client processes publishing")
    parser.add_argument("--seconds", type=float, default=10)
    args = parser.parse_args()

    with RedisServer(workdir=Path(tempfile.mkdtemp(prefix="redis-capacity-"))) as server:
        control = server.client()
        results: multiprocessing.Queue[int] = multiprocessing.Queue()
        delivered: multiprocessing.Queue[int] = multiprocessing.Queue()
        readers = [
            multiprocessing.Process(
                target=reader, args=(server.url, args.rooms, args.seconds, results)
            )
            for _ in range(args.procs)
        ]
        for p in readers:
            p.start()
        time.sleep(1.0)  # subscriptions in place
        cpu0, t0 = redis_cpu(control), time.monotonic()
        share = [list(range(w, args.rooms, args.writers)) for w in range(args.writers)]
        writers = [
            multiprocessing.Process(target=writer, args=(server.url, rooms, args.seconds, results))
            for rooms in share
        ]
        for p in writers:
            p.start()
        deltas = sum(results.get(timeout=args.seconds + 60) for _ in range(args.writers))
        elapsed, cpu = time.monotonic() - t0, redis_cpu(control) - cpu0
        counts: list[int | None] = []
        for _ in range(args.procs):  # a starved subscriber (a busy machine) must not hang this
            try:
                counts.append(delivered.get(timeout=15))
            except Exception:
                counts.append(None)
        for p in readers:
            p.kill()
    per_delta_us = cpu / deltas * 1e6
    print(
        json.dumps(
            {
                "rooms": args.rooms,
                "subscribed_processes": args.procs,
                "deltas": deltas,
                "deltas_per_s_achieved": round(deltas / elapsed),
                "redis_cpu_s": round(cpu, 2),
                "redis_cpu_us_per_delta": round(per_delta_us, 1),
                "deltas_per_s_per_redis_core": round(1e6 / per_delta_us),
                "delivered_per_process": counts,
            }
        )
    )


if __name__ == "__main__":
    main()
