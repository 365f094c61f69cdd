"""Summary of a server-side trace written by `bench.experiments` (`trace`): per token, how long
each step of the server's path took. `python -m bench.experiments_summary EPOCH TRACE.json...`
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from bench.model_stub import parse_tokens


def summarise(path: Path, epoch: float) -> dict[str, Any]:
    """Where the server-side time of each token went, in ms: {step: [p50, p99, max]}."""
    data = json.loads(path.read_text())
    added = {}
    for at, text in data["adds"]:
        for index, emitted in parse_tokens(text, epoch):
            added[index] = (emitted, at)
    rows: dict[str, list[float]] = {
        "model emit -> emitter.add (SDK read; waits while a frame is out)": [],
        "emitter.add -> frame starts publishing (coalescing, queue)": [],
        "publish start -> live state written (EVAL)": [],
        "live state written -> group_send returned (PUBLISH)": [],
        "model emit -> group_send returned": [],
    }
    keys = list(rows)
    tokens_per_frame = []
    for frame in data["frames"]:
        found = parse_tokens(frame["text"], epoch)
        tokens_per_frame.append(len(found))
        for index, emitted in found:
            at = added.get(index, (emitted, frame["start"]))[1]
            rows[keys[0]].append((at - emitted) * 1000)
            rows[keys[1]].append((frame["start"] - at) * 1000)
            if "broadcast" in frame and "done" in frame:
                rows[keys[2]].append((frame["broadcast"] - frame["start"]) * 1000)
                rows[keys[3]].append((frame["done"] - frame["broadcast"]) * 1000)
            if "done" in frame:
                rows[keys[4]].append((frame["done"] - emitted) * 1000)
    out: dict[str, Any] = {
        "frames": len(tokens_per_frame),
        "tokens_per_frame": round(sum(tokens_per_frame) / max(1, len(tokens_per_frame)), 2),
    }
    for name, values in rows.items():
        values.sort()
        if values:
            out[name] = [
                round(values[len(values) // 2], 1),
                round(values[min(len(values) - 1, int(len(values) * 0.99))], 1),
                round(values[-1], 1),
            ]
    return out


if __name__ == "__main__":
    epoch = float(sys.argv[1])
    for arg in sys.argv[2:]:
        print(arg, json.dumps(summarise(Path(arg), epoch), indent=1))
