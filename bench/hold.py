"""A client process that opens many websockets and holds them (idle sockets, reconnect storms).

Started by `bench.suite`, never by hand. Reads a JSON spec file (argv[1]):
`{"tabs": [{"url", "origin", "session"}...], "concurrency": N, "deadline": seconds, "out": path}`.
Waits for a line `GO` on stdin, then opens every tab with at most `concurrency` handshakes in
flight (a storm: concurrency = all) until the deadline, each until its first frame (the
`room.snapshot`) has been parsed. Prints `HELD <ok> <failed> <seconds>`, keeps the sockets
open (reading and discarding what comes, as a browser tab would) until a line `CLOSE`, closes
them, writes per-socket times to `out` and prints `DONE`.

Frames are not decoded; only the first frame of each socket is checked to be a snapshot.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import resource
import sys
import time
from typing import Any

from websockets.asyncio.client import ClientConnection, connect


def raise_fd_limit() -> int:
    """Raise this process's open-file limit to its hard limit; the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


async def open_one(
    tab: dict[str, Any], gate: asyncio.Semaphore, began: float, record: dict[str, Any]
) -> ClientConnection | None:
    async with gate:
        record["start"] = time.time() - began
        try:
            conn = await connect(
                tab["url"],
                origin=tab["origin"],
                additional_headers={"Cookie": f"sessionid={tab['session']}"},
                max_size=None,
                open_timeout=60,
                ping_interval=None,  # daphne pings; thousands of client pings would be noise
                compression=None,
            )
            record["open"] = time.time() - began
            first = await asyncio.wait_for(conn.recv(decode=False), 60)
            record["snapshot"] = time.time() - began
            if b'"room.snapshot"' not in first:
                record["error"] = f"first frame was not a snapshot: {first[:120]!r}"
            return conn
        except Exception as exc:
            record["error"] = f"{type(exc).__name__}: {exc}"[:200]
            return None


async def drain(conn: ClientConnection) -> None:
    """Read and drop frames (presence, ...) so that the server never sees a stalled reader."""
    with contextlib.suppress(Exception):
        async for _ in conn:
            pass


async def run(spec: dict[str, Any]) -> None:
    tabs = spec["tabs"]
    loop = asyncio.get_running_loop()
    print(f"WAITING {raise_fd_limit()}", flush=True)
    line = await loop.run_in_executor(None, sys.stdin.readline)
    if line.strip() != "GO":
        raise SystemExit(f"expected GO, got {line!r}")
    gate = asyncio.Semaphore(int(spec.get("concurrency", 50)) or len(tabs))
    began = time.time()
    records: list[dict[str, Any]] = [{} for _ in tabs]
    tasks = [
        asyncio.create_task(open_one(t, gate, began, r)) for t, r in zip(tabs, records, strict=True)
    ]
    done, pending = await asyncio.wait(tasks, timeout=float(spec["deadline"]))
    for task in pending:
        task.cancel()
    for record in records:
        if "snapshot" not in record and "error" not in record:
            record["error"] = "no snapshot before the deadline"
    conns = [t.result() for t in done if not t.cancelled() and t.result() is not None]
    conns = [c for c in conns if c is not None]
    ok = sum(1 for r in records if "snapshot" in r and "error" not in r)
    print(f"HELD {ok} {len(tabs) - ok} {time.time() - began:.2f}", flush=True)
    readers = [asyncio.create_task(drain(c)) for c in conns]
    line = await loop.run_in_executor(None, sys.stdin.readline)
    closed_early = sum(1 for r in readers if r.done())
    for reader in readers:
        reader.cancel()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(
            asyncio.gather(*(c.close() for c in conns), return_exceptions=True), 60
        )
    errors: dict[str, int] = {}
    for r in records:
        if "error" in r:
            key = r["error"][:80]
            errors[key] = errors.get(key, 0) + 1
    out = {
        "ok": ok,
        "failed": len(tabs) - ok,
        "closed_while_held": closed_early,
        "snapshot_s": sorted(r["snapshot"] for r in records if "snapshot" in r),
        "errors": errors,
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
