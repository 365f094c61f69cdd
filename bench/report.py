"""Markdown tables and the latency plot of a `bench.suite` run (its JSON payload).

python -m bench.report bench/results/suite.json [--plot docs/benchmarks-latency.png]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from bench.scenarios import QUANTILES, ratio

TARGETS = {
    "stream200": ("1 room, 200 tabs over 2 processes, 100 tokens/s", 50.0),
    "stream1000": ("1 room, 1,000 tabs over 2 processes, 100 tokens/s", 100.0),
    "rooms50": ("50 rooms × 8 tabs, all replying at once, 60 tokens/s", 100.0),
}


def f(value: Any, digits: int = 1) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    if isinstance(value, list):
        return " + ".join(f(v, 0) for v in value)
    return str(value)


def stream_ok(r: dict[str, Any], p99_target: float) -> bool:
    p99 = r["latency_ms"]["p99"]
    return bool(
        r["tabs_failed"] == 0
        and r["lost_pct"] == 0
        and r["tabs_wrong_text"] == 0
        and r["seq_gaps"] == 0
        and r["duplicates"] == 0
        and r["out_of_order"] == 0
        and p99 is not None
        and p99 <= p99_target
    )


STREAM_HEAD = (
    "| recipe | tabs ok | lost % | wrong-text tabs | seq gaps | dup/reord | p50 ms | p95 ms | "
    "p99 ms | max ms | frames/reply | server CPU % | server RSS MiB | redis CPU % | "
    "client CPU % | client lag p99 ms | machine CPU % | foreign CPU % | target |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
)


def stream_row(label: str, r: dict[str, Any], target: float) -> str:
    lat = r["latency_ms"]
    redis = next((p for p in r["process_usage"] if p["name"] == "redis-server"), {})
    ok_tabs = r["tabs"] - r["tabs_failed"] - r["tabs_with_error"]
    return (
        f"| {label} | {ok_tabs}/{r['tabs']} | {f(r['lost_pct'], 2)} | {r['tabs_wrong_text']} | "
        f"{r['seq_gaps']} | {r['duplicates']}/{r['out_of_order']} | {f(lat['p50'])} | "
        f"{f(lat['p95'])} | {f(lat['p99'])} | {f(lat['max'])} | {r['frames_per_reply']} | "
        f"{f(r['server_cpu_pct'])} | {f(r['server_rss_mib'])} | {f(redis.get('cpu_pct'), 0)} | "
        f"{f(r['client_cpu_pct'])} | {f(r['client_lag_ms']['p99'])} | "
        f"{f(r['machine_cpu_pct'], 0)} | {f(r['foreign_cpu_pct'], 0)} | "
        f"{'met' if stream_ok(r, target) else 'missed'} |"
    )


def ratio_row(p: dict[str, Any], n: dict[str, Any]) -> str:
    pl, nl = p["latency_ms"], n["latency_ms"]
    return (
        f"| naive ÷ product | | | | | | {f(ratio(nl['p50'], pl['p50']))}× | "
        f"{f(ratio(nl['p95'], pl['p95']))}× | {f(ratio(nl['p99'], pl['p99']))}× | "
        f"{f(ratio(nl['max'], pl['max']))}× | "
        f"{f(ratio(n['frames_per_reply'], p['frames_per_reply']))}× | "
        f"{f(ratio(sum(n['server_cpu_pct']), sum(p['server_cpu_pct'])))}× | | | | | | | |"
    )


def redis_per_socket(r: dict[str, Any]) -> str:
    """All Redis commands per admitted socket while they connected, and the top three."""
    spent = r.get("redis_commands_per_socket") or {}
    if not spent:
        return "–"
    top = ", ".join(f"{name} {calls:g}" for name, calls in list(spent.items())[:3])
    total = r.get("redis_commands_total_per_socket")
    return f"{total:g} ({top})" if total is not None else top


def markdown(payload: dict[str, Any]) -> str:
    res = payload["results"]
    prod, naive = res.get("product", {}), res.get("naive", {})
    env = payload["environment"]
    out = [
        f"Run {env['date']}, code {payload['code_commit']}, {env['cpus']} CPUs, "
        f"load average before {env['load_average_before']}, after "
        f"{env['load_average_after']}; {payload['duration_s']} s"
        + (" (quick sizes)" if payload["quick"] else ""),
        "",
    ]
    for key, (title, target) in TARGETS.items():
        if key not in prod and key not in naive:
            continue
        out += [f"### {title} (target p99 ≤ {target:g} ms, no loss)", "", STREAM_HEAD]
        if key in prod:
            out.append(stream_row("product", prod[key], target))
        if key in naive:
            out.append(stream_row("naive", naive[key], target))
        if key in prod and key in naive:
            out.append(ratio_row(prod[key], naive[key]))
        out.append("")
    if "idle" in prod or "idle" in naive:
        out += [
            "### Idle sockets on one process (target 10,000 held, ≤ 50 KB each, "
            "idle CPU ≤ 10 % of a core)",
            "",
            "| recipe | held / asked | connect time s | connections/s | RSS before MiB | "
            "RSS held MiB | RSS per socket KiB | idle CPU % of a core | closed while held | "
            "Redis commands per socket | errors |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for label, r in (("product", prod.get("idle")), ("naive", naive.get("idle"))):
            if r:
                out.append(
                    f"| {label} | {r['held']}/{r['tabs']} | {f(r['connect_s'])} | "
                    f"{f(r['connections_per_s'])} | {f(r.get('rss_before_mib'))} | "
                    f"{f(r.get('rss_held_mib'))} | {f(r.get('rss_per_socket_kib'))} | "
                    f"{f(r.get('idle_cpu_pct'))} | {r['closed_while_held']} | "
                    f"{redis_per_socket(r)} | {json.dumps(r['errors'])[:120]} |"
                )
        out.append("")
    if "storm" in prod or "storm" in naive:
        out += [
            "### Reconnect storm: signed-in tabs open at once on one process while a reply "
            "streams there (target: all snapshots within 10 s)",
            "",
            "| recipe | held / asked | all snapshots s | to snapshot p50 s | p95 s | p99 s | "
            "connections/s | stream p50 ms | stream p99 ms | stream max ms | stream lost % | "
            "server CPU % | Redis commands per socket | errors |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for label, r in (("product", prod.get("storm")), ("naive", naive.get("storm"))):
            if r and r.get("storm"):
                s, lat = r["storm"], r["latency_ms"]
                t = s["time_to_snapshot_s"]
                out.append(
                    f"| {label} | {s['held']}/{s['tabs']} | {f(s['all_snapshots_s'], 2)} | "
                    f"{f(t['p50'], 2)} | {f(t['p95'], 2)} | {f(t['p99'], 2)} | "
                    f"{f(s['connections_per_s'])} | {f(lat['p50'])} | {f(lat['p99'])} | "
                    f"{f(lat['max'])} | {f(r['lost_pct'], 2)} | {f(r['server_cpu_pct'])} | "
                    f"{redis_per_socket(s)} | {json.dumps(s['errors'])[:120]} |"
                )
        out.append("")
    if "overhead" in prod or "overhead" in naive:
        out += [
            "### Server overhead: `message.send` written by the tab → upstream request "
            "received by the model stub (target p50 ≤ 15 ms)",
            "",
            "| recipe | samples | p50 ms | p95 ms | p99 ms | max ms |",
            "|---|---|---|---|---|---|",
        ]
        for label, r in (("product", prod.get("overhead")), ("naive", naive.get("overhead"))):
            if r:
                o = r["overhead_ms"]
                out.append(
                    f"| {label} | {o['n']} | {f(o['p50'])} | {f(o['p95'])} | {f(o['p99'])} | "
                    f"{f(o['max'])} |"
                )
        out.append("")
    keys = [k for k in ("stream200", "stream1000", "rooms50") if k in prod and k in naive]
    if keys:
        out += [
            "### Channel-layer messages per reply (target: ≥ 10× fewer than the naive recipe)",
            "",
            "| scenario | recipe | layer messages into Redis (product PUBLISH, naive ZADD) | "
            "layer deliveries to consumers | frames per reply | frames to sockets per reply | "
            "Redis commands per reply | naive ÷ product (into Redis) | naive ÷ product "
            "(deliveries) | naive ÷ product (Redis commands) |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for key in keys:
            p, n = prod[key], naive[key]
            ps, ns = layer_sends(p, "product"), layer_sends(n, "naive")
            # Product: each PUBLISH reaches one channel per process (the fan-out's). Naive: each
            # group_send (one ZADD per process inbox) is one message for every consumer's
            # channel, i.e. every tab of the room (whether or not it was then delivered).
            pd = ps * p["processes"]
            nd = ns / max(1, n["processes"]) * n["tabs"] / max(1, n["rooms"])
            for label, r, s, d in (("product", p, ps, pd), ("naive", n, ns, nd)):
                last = label == "naive"
                out.append(
                    f"| {key} | {label} | {f(s)} | {f(d)} | {r['frames_per_reply']} | "
                    f"{f(r['frames_delivered_per_reply'])} | {f(r['redis_commands_per_reply'])} | "
                    + (f"{f(ratio(ns, ps))}× | {f(ratio(nd, pd))}× | " if last else "| | ")
                    + (
                        f"{f(ratio(n['redis_commands_per_reply'], p['redis_commands_per_reply']))}× |"
                        if last
                        else "|"
                    )
                )
        out.append("")
    return "\n".join(out)


def layer_sends(r: dict[str, Any], recipe: str) -> float:
    """Messages the channel layer puts into Redis per reply: the product's pubsub layer PUBLISHes
    once per group_send, whatever the number of subscribers (counted in Redis); the naive
    recipe's core layer ZADDs once per process inbox per group_send."""
    if recipe == "naive":
        # By construction: one group_send per token plus started and finished, each one ZADD
        # per process inbox. (Counting ZADDs in Redis would miss those the capacity refused.)
        return float((r["tokens"] + 2) * r["processes"])
    return round(r["redis_commands"].get("publish", 0) / r["rooms"], 1)


def plot(payload: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    res = payload["results"]
    panels = [
        k
        for k in ("stream200", "stream1000", "rooms50", "storm")
        if any(k in r for r in res.values())
    ]
    columns = min(3, len(panels) + 1)
    rows = -(-(len(panels) + 1) // columns)
    fig, grid = plt.subplots(rows, columns, figsize=(5.2 * columns, 4.2 * rows), squeeze=False)
    axes = [ax for row in grid for ax in row]
    for spare in axes[len(panels) + 1 :]:
        spare.set_visible(False)
    axes = axes[: len(panels) + 1]
    colours = {"product": "tab:blue", "naive": "tab:red"}
    for ax, key in zip(axes, panels, strict=False):
        for app, r in res.items():
            if key not in r:
                continue
            qs = r[key]["latency_quantiles"]
            xs = [x for x in qs if x is not None]
            ys = [q for q, x in zip(QUANTILES, qs, strict=True) if x is not None]
            ax.plot(xs, ys, label=app, color=colours.get(app))
        target = TARGETS.get(key, ("", 50.0))[1]
        ax.axvline(target, color="grey", linestyle=":", label=f"target p99 {target:g} ms")
        ax.axhline(99, color="grey", linestyle="--", linewidth=0.6)
        ax.set_xscale("log")
        ax.set_xlabel("emit → parsed by the tab (ms, log)")
        ax.set_ylabel("percentile of tokens")
        ax.set_title("stream during the storm" if key == "storm" else key)
        ax.legend(fontsize=8)
    ax = axes[-1]
    for app, r in res.items():
        s = r.get("storm", {}).get("storm")
        if s:
            qs = s["snapshot_quantiles"]
            xs = [x for x in qs if x is not None]
            ys = [q for q, x in zip(QUANTILES, qs, strict=True) if x is not None]
            ax.plot(xs, ys, label=app, color=colours.get(app))
    ax.axvline(10, color="grey", linestyle=":", label="target 10 s")
    ax.set_xlabel("storm: time until the snapshot (s)")
    ax.set_ylabel("percentile of tabs")
    ax.set_title("reconnect storm")
    ax.legend(fontsize=8)
    env = payload["environment"]
    fig.suptitle(
        f"Roomchat vs naive recipe, {env['date']}, {env['cpus']} CPUs, load avg before "
        f"{env['load_average_before']}",
        fontsize=10,
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.report")
    parser.add_argument("json", type=Path)
    parser.add_argument("--plot", type=Path)
    args = parser.parse_args(argv)
    payload = json.loads(args.json.read_text())
    print(markdown(payload))
    if args.plot:
        plot(payload, args.plot)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
