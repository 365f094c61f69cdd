"""The scenarios of the benchmark suite (issue 15's table), each run against one application's
daphne processes on the shared rig. Every function returns a flat dict of measurements.

- `stream`: rooms × tabs spread over the processes; one tab per room sends at the same moment;
  every tab records every frame (`bench.client`). Latency: stub writes the token → the tab's
  websocket parsed the frame holding it. Loss, wrong text, seq gaps, CPU, RSS, client lag, and
  the Redis commands issued during the replies (the channel layer's messages).
- `idle`: N sockets to one process (`bench.hold`), then its RSS per socket and idle CPU.
- `storm`: N signed-in tabs open at once against one process while a reply streams to a room
  on that same process: time until every tab has its snapshot, and the stream's latency.
- `overhead`: `message.send` written by a tab → the upstream request's head read by the stub.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections import Counter
from typing import Any

from websockets.asyncio.client import connect as ws_connect

from bench.fanout import busy_cores_pct, machine_busy, percentile
from bench.model_stub import ARRIVAL_MARK, arrival_time
from bench.procstats import ProcessUsage, Sampler
from bench.rig import Rig, rss_total_mib, wait_calm
from tests.support.daphne import DaphneProcess

QUANTILES = [q / 2 for q in range(0, 199)] + [99.5, 99.9, 100.0]  # for the latency plot


def stats(values: list[float]) -> dict[str, Any]:
    ordered = sorted(values)
    return {
        "n": len(ordered),
        "p50": percentile(ordered, 50),
        "p95": percentile(ordered, 95),
        "p99": percentile(ordered, 99),
        "max": ordered[-1] if ordered else None,
    }


def quantiles(values: list[float]) -> list[float | None]:
    ordered = sorted(values)
    return [percentile(ordered, max(q, 0.001)) for q in QUANTILES]


def tabs_for(
    rig: Rig, servers: list[DaphneProcess], rooms: list[str], per_room: int, first_user: int
) -> list[dict[str, Any]]:
    """Tab specs: `per_room` tabs in each room, alternating over the processes (the first tab
    of room r, which sends its message, on process r mod N, so that replies run on every
    process), one user (session) per tab starting at `first_user`."""
    tabs = []
    user = first_user
    for r, room in enumerate(rooms):
        for i in range(per_room):
            server = servers[(r + i) % len(servers)]
            tabs.append(
                {
                    "index": len(tabs),
                    "url": f"{server.ws_url}/ws/rooms/{room}/",
                    "origin": server.url,
                    "session": rig.sessions[user % len(rig.sessions)],
                    "room": room,
                }
            )
            user += 1
    return tabs


def usage_of(rig: Rig, servers: list[DaphneProcess], workers: list[Any]) -> list[ProcessUsage]:
    usage = [ProcessUsage(f"daphne-{d.name}", d.pid or 0) for d in servers]
    usage.append(ProcessUsage("redis-server", rig.redis.proc.pid if rig.redis.proc else 0))
    usage.append(ProcessUsage("model-stub", rig.stub.pid if rig.stub else 0))
    usage += [ProcessUsage(w.name, w.pid) for w in workers]
    return usage


def process_table(usage: list[ProcessUsage], wall: float) -> list[dict[str, Any]]:
    return [
        {
            "name": u.name,
            "cpu_pct": round(u.cpu_percent(wall) or 0.0, 1),
            "runqueue_wait_pct": round(u.wait_percent(wall) or 0.0, 1),
            "rss_peak_mib": round(u.rss_peak_mib, 1),
        }
        for u in usage
    ]


def stream(
    rig: Rig,
    servers: list[DaphneProcess],
    name: str,
    tabs: list[dict[str, Any]],
    tokens: int,
    rate: float,
    *,
    clients: int = 0,
    concurrency: int = 20,
    slack: float = 20.0,
    during: Any = None,
    settle_quiet: float = 1.0,
) -> dict[str, Any]:
    """Stream one reply to every room of `tabs` at once; `during(go_time)` runs right after GO
    (the storm uses it) and its result is stored under "during"."""
    rooms = sorted({t["room"] for t in tabs})
    prompt = f"Benchmark: please stream a long answer. tokens={tokens} rate={rate:g}"
    seen: set[str] = set()
    for tab in tabs:
        if tab["room"] not in seen:
            seen.add(tab["room"])
            tab["prompt"] = prompt
    k = clients or (1 if len(tabs) <= 100 else 2)
    timeout = tokens / rate + slack
    workers = []
    try:
        for i in range(k):
            spec = {
                "tabs": tabs[i::k],
                "msg_id": f"{name}-{time.time_ns()}",
                "timeout": timeout,
                "concurrency": concurrency,
                "settle_quiet": settle_quiet,
            }
            workers.append(rig.worker("bench.client", f"{name}-client-{i}", spec))
        began = time.monotonic()
        failed = sum(int(w.expect("READY", 120 + len(tabs) * 0.2).split()[2]) for w in workers)
        connect_s = time.monotonic() - began
        for w in workers:
            w.send("SETTLE")
        settle_s = max(float(w.expect("SETTLED", 180).split()[1]) for w in workers)
        usage = usage_of(rig, servers, workers)
        sampler = Sampler(usage)
        redis_before = rig.redis_commands()
        busy = machine_busy()
        with rig.profiled(servers, f"{rig.label}-{name}-stream"):
            sampler.start()
            for w in workers:
                w.send("GO")
            extra = during() if during is not None else None
            for w in workers:
                w.expect("ENDED", timeout + 30)
            wall = sampler.stop()
        machine = busy_cores_pct(busy, machine_busy())
        redis_after = rig.redis_commands()
        for w in workers:
            w.expect("DONE", 120)
        outputs = [w.result() for w in workers]
    finally:
        for w in workers:
            w.stop()
    result = summarise_stream(outputs, len(tabs), len(rooms), tokens, failed)
    commands = {
        c: redis_after.get(c, 0) - redis_before.get(c, 0)
        for c in redis_after
        if redis_after.get(c, 0) != redis_before.get(c, 0)
    }
    result.update(
        {
            "tabs": len(tabs),
            "rooms": len(rooms),
            "processes": len(servers),
            "tokens": tokens,
            "rate": rate,
            "connect_s": round(connect_s, 2),
            "settle_s": settle_s,
            "window_s": round(wall, 2),
            "machine_cpu_pct": round(machine, 1),
            "process_usage": process_table(usage, wall),
            "server_cpu_pct": [round(u.cpu_percent(wall) or 0, 1) for u in usage[: len(servers)]],
            "server_rss_mib": [round(u.rss_peak_mib, 1) for u in usage[: len(servers)]],
            "client_cpu_pct": [round(u.cpu_percent(wall) or 0, 1) for u in usage[-k:]],
            "redis_commands": commands,
            "redis_commands_per_reply": round(sum(commands.values()) / len(rooms), 1),
            "during": extra,
        }
    )
    ours = sum(u.cpu_percent(wall) or 0 for u in usage)
    result["foreign_cpu_pct"] = round(machine - ours, 1)
    wait_calm([d.pid or 0 for d in servers])
    return result


def summarise_stream(
    outputs: list[dict[str, Any]], tabs: int, rooms: int, tokens: int, failed: int
) -> dict[str, Any]:
    per_tab = [t for out in outputs for t in out["tabs"]]
    ok = [t for t in per_tab if "deltas" in t]
    latencies = [x for out in outputs for x in out["latencies_ms"]]
    received = sum(t["tokens_received"] for t in ok)
    expected = tabs * tokens
    frames_by_tab = [t["max_seq"] for t in ok]
    frames = max(frames_by_tab, default=0)
    gaps = sum(t["max_seq"] - t["unique_seqs"] for t in ok)
    # Frames the layer handed to consumers/sockets: every delta, started and finished of a tab.
    delivered = sum(t["deltas"] + 1 + int(t["finished"]) for t in ok)
    lags = [o["loop_lag_ms"] for o in outputs]
    lat = stats(latencies)
    return {
        "tabs_failed": failed,
        "tabs_with_error": sum(1 for t in per_tab if t.get("error")),
        "errors": sorted({t["error"][:120] for t in per_tab if t.get("error")})[:5],
        "lost_pct": round(100 * (1 - received / expected), 3) if expected else 0.0,
        "tabs_wrong_text": sum(1 for t in per_tab if not t.get("text_ok")),
        "seq_gaps": gaps,
        "duplicates": sum(t["duplicates"] for t in ok),
        "out_of_order": sum(t["out_of_order"] for t in ok),
        "frames_per_reply": frames,
        "tokens_per_frame": round(tokens / frames, 2) if frames else None,
        "frames_delivered_per_reply": round(delivered / rooms, 1),
        "latency_ms": lat,
        "latency_quantiles": quantiles(latencies),
        "client_lag_ms": {
            "p50": max((x["p50"] or 0 for x in lags), default=None),
            "p99": max((x["p99"] or 0 for x in lags), default=None),
            "max": max((x["max"] or 0 for x in lags), default=None),
        },
    }


def hold(
    rig: Rig,
    server: DaphneProcess,
    name: str,
    tabs: list[dict[str, Any]],
    *,
    clients: int,
    concurrency: int,
    deadline: float,
    idle_s: float = 0.0,
) -> dict[str, Any]:
    """Open `tabs` against one process (concurrency 0: all at once) and hold them; with
    `idle_s`, measure the process's CPU while they sit idle that long."""
    workers = []
    pid = server.pid or 0
    try:
        for i in range(clients):
            spec = {"tabs": tabs[i::clients], "concurrency": concurrency, "deadline": deadline}
            workers.append(rig.worker("bench.hold", f"{name}-hold-{i}", spec))
        for w in workers:
            w.expect("WAITING", 60)
        rss_before = rss_total_mib([pid])
        commands_before = rig.redis_commands()
        for w in workers:
            w.send("GO")
        held = [w.expect("HELD", deadline + 60).split() for w in workers]
        ok = sum(int(h[1]) for h in held)
        elapsed = max(float(h[3]) for h in held)
        result: dict[str, Any] = {"tabs": len(tabs), "held": ok, "connect_s": elapsed}
        # What connecting costs Redis: commands per admitted socket, the busiest first.
        spent = Counter(rig.redis_commands())
        spent.subtract(commands_before)
        result["redis_commands_per_socket"] = {
            name: round(calls / ok, 2) for name, calls in spent.most_common(8) if ok and calls > 0
        }
        result["redis_commands_total_per_socket"] = (
            round(sum(c for c in spent.values() if c > 0) / ok, 1) if ok else None
        )
        if idle_s:
            time.sleep(min(5.0, idle_s))  # presence announcements and join work drain
            usage = [ProcessUsage(server.name, pid)]
            sampler = Sampler(usage)
            with rig.profiled([server], f"{rig.label}-{name}-idle-window"):
                sampler.start()
                time.sleep(idle_s)
                wall = sampler.stop()
            rss_held = rss_total_mib([pid])
            result["idle_cpu_pct"] = round(usage[0].cpu_percent(wall) or 0, 1)
            result["rss_before_mib"] = round(rss_before, 1)
            result["rss_held_mib"] = round(rss_held, 1)
            result["rss_per_socket_kib"] = (
                round(1024 * (rss_held - rss_before) / ok, 1) if ok else None
            )
        for w in workers:
            w.send("CLOSE")
        for w in workers:
            w.expect("DONE", 120)
        outs = [w.result() for w in workers]
    finally:
        for w in workers:
            w.stop()
    snaps = [x for o in outs for x in o["snapshot_s"]]
    errors: dict[str, int] = {}
    for o in outs:
        for key, count in o["errors"].items():
            errors[key] = errors.get(key, 0) + count
    result.update(
        {
            "time_to_snapshot_s": stats(snaps),
            "snapshot_quantiles": quantiles(snaps),
            "all_snapshots_s": round(max(snaps), 2) if snaps and ok == len(tabs) else None,
            "connections_per_s": round(ok / max(snaps), 1) if snaps else None,
            "closed_while_held": sum(o["closed_while_held"] for o in outs),
            "errors": dict(sorted(errors.items(), key=lambda kv: -kv[1])[:5]),
        }
    )
    wait_calm([pid], patience=30)
    return result


async def _overhead(server: DaphneProcess, session: str, room: str, n: int, epoch: float) -> Any:
    samples = []
    async with ws_connect(
        f"{server.ws_url}/ws/rooms/{room}/",
        origin=server.url,  # type: ignore[arg-type]
        additional_headers={"Cookie": f"sessionid={session}"},
        max_size=None,
    ) as conn:
        await asyncio.sleep(0.5)  # snapshot, presence
        while True:
            try:
                await asyncio.wait_for(conn.recv(), 0.05)
            except TimeoutError:
                break
        for i in range(n):
            frame = {"type": "message.send", "text": f"{ARRIVAL_MARK} sample {i} {time.time_ns()}"}
            sent = time.time()
            await conn.send(json.dumps(frame))
            async with asyncio.timeout(30):
                while True:
                    data = json.loads(await conn.recv())
                    if data.get("type") == "generation.finished":
                        arrived = arrival_time(data.get("text") or "", epoch)
                        if arrived is not None:
                            samples.append((arrived - sent) * 1000)
                        break
                    if data.get("type") == "error":
                        raise RuntimeError(f"refused: {data}")
            await asyncio.sleep(0.05)
    return samples


def overhead(rig: Rig, server: DaphneProcess, samples: int) -> dict[str, Any]:
    values = asyncio.run(_overhead(server, rig.sessions[1], rig.rooms[0], samples, rig.epoch))
    return {"overhead_ms": stats(values), "samples": [round(v, 2) for v in values]}


def ratio(naive: float | None, product: float | None) -> float | None:
    if naive is None or product is None or product == 0 or math.isnan(product):
        return None
    return round(naive / product, 1)
