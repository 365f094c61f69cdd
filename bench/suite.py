"""Issue 15's benchmark suite: every scenario of its table, for the product and for the naive
recipe (`bench.naive`) on the same rig in the same run, so that every table has a ratio.

    python -m bench.suite                 # `make bench`: full sizes, about 8-10 minutes
    python -m bench.suite --quick         # `make bench-quick`: small sizes, under a minute
    python -m bench.suite --only stream200,overhead --apps product

Writes the results as JSON (`--json`, default bench/results/suite[-quick].json), the tables as
Markdown (same name, .md) and the latency plot as PNG (`--plot`, default
docs/benchmarks-latency.png for a full run). See bench/README.md for what each number means.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from bench import scenarios as sc
from bench.fanout import environment
from bench.rig import NAIVE_APP, PRODUCT_APP, Rig, raise_fd_limit

SCENARIOS = ("overhead", "stream200", "rooms50", "stream1000", "idle", "storm")


@dataclass(frozen=True)
class Plan:
    """Sizes of one suite run."""

    stream_tabs: int = 200
    stream_tokens: int = 500
    big_tabs: int = 1000
    big_tokens: int = 500
    rooms: int = 50
    room_tabs: int = 8
    room_tokens: int = 300
    room_rate: float = 60.0
    storm_tabs: int = 2000
    storm_rooms: int = 100
    storm_deadline: float = 30.0
    victim_tabs: int = 10
    victim_tokens: int = 1000
    idle_sockets: int = 10000
    idle_rooms: int = 500
    idle_deadline: float = 120.0  # to connect them; how fast a process admits is the storm's row
    idle_seconds: float = 10.0
    overhead_samples: int = 30
    users: int = 2000
    seed_messages: int = 20
    slack: float = 30.0  # seconds a reply may end late before its tabs give up (naive: half)
    settle_quiet: float = 1.0  # seconds without a frame before a stream starts


QUICK = Plan(
    stream_tabs=60,
    big_tabs=120,
    rooms=5,
    room_tabs=4,
    storm_tabs=120,
    storm_rooms=6,
    storm_deadline=10.0,
    victim_tabs=4,
    idle_sockets=300,
    idle_rooms=15,
    idle_deadline=10.0,
    overhead_samples=5,
    users=200,
    seed_messages=5,
    slack=8.0,
    settle_quiet=0.4,
    stream_tokens=60,
    big_tokens=60,
    room_tokens=40,
    victim_tokens=150,
    idle_seconds=1.0,
)


class Rooms:
    """Which of the rig's rooms each scenario uses."""

    def __init__(self, slugs: list[str], plan: Plan) -> None:
        it = iter(slugs)
        self.warm = next(it)
        self.stream200 = next(it)
        self.stream1000 = next(it)
        self.victim = next(it)
        self.rooms50 = [next(it) for _ in range(plan.rooms)]
        self.storm = [next(it) for _ in range(plan.storm_rooms)]
        self.idle = [next(it) for _ in range(plan.idle_rooms)]

    @staticmethod
    def needed(plan: Plan) -> int:
        return 4 + plan.rooms + plan.storm_rooms + plan.idle_rooms


def run_app(
    rig: Rig, app: str, plan: Plan, only: set[str], say: Any, launched: Any = None
) -> dict[str, Any]:
    """Every chosen scenario against one application's processes."""
    rooms = Rooms(rig.rooms, plan)
    out: dict[str, Any] = {}
    naive = app == NAIVE_APP
    slack = plan.slack / 2 if naive else plan.slack
    with rig.servers(app, 2, {}, launched) as servers:
        p0 = servers[0]
        say(f"{app}: daphne {[d.port for d in servers]}")
        tag = rig.label = "naive" if naive else "product"
        if "overhead" in only:
            with rig.profiled(servers, f"{tag}-overhead"):
                out["overhead"] = sc.overhead(rig, p0, plan.overhead_samples)
            say(f"  overhead: {out['overhead']['overhead_ms']}")
        if "stream200" in only:
            tabs = sc.tabs_for(rig, servers, [rooms.stream200], plan.stream_tabs, 0)
            out["stream200"] = sc.stream(
                rig,
                servers,
                "s200",
                tabs,
                plan.stream_tokens,
                100,
                slack=slack,
                settle_quiet=plan.settle_quiet,
            )
            say(f"  stream200: {brief(out['stream200'])}")
        if "rooms50" in only:
            tabs = sc.tabs_for(rig, servers, rooms.rooms50, plan.room_tabs, 0)
            out["rooms50"] = sc.stream(
                rig,
                servers,
                "r50",
                tabs,
                plan.room_tokens,
                plan.room_rate,
                slack=slack,
                settle_quiet=plan.settle_quiet,
            )
            say(f"  rooms50: {brief(out['rooms50'])}")
        if "stream1000" in only:
            tabs = sc.tabs_for(rig, servers, [rooms.stream1000], plan.big_tabs, 0)
            out["stream1000"] = sc.stream(
                rig,
                servers,
                "s1000",
                tabs,
                plan.big_tokens,
                100,
                concurrency=50,
                slack=slack,
                settle_quiet=plan.settle_quiet,
            )
            say(f"  stream1000: {brief(out['stream1000'])}")
        if "idle" in only:
            per_room = -(-plan.idle_sockets // len(rooms.idle))
            tabs = sc.tabs_for(rig, [p0], rooms.idle, per_room, 0)[: plan.idle_sockets]
            out["idle"] = sc.hold(
                rig,
                p0,
                "idle",
                tabs,
                clients=2,
                concurrency=100,
                deadline=plan.idle_deadline,
                idle_s=plan.idle_seconds,
            )
            say(f"  idle: {brief_hold(out['idle'])}")
        if "storm" in only:
            out["storm"] = storm(rig, p0, rooms, plan, slack)
            say(f"  storm: {brief_hold(out['storm'])}; stream {brief(out['storm'])}")
    return out


def storm(rig: Rig, p0: Any, rooms: Rooms, plan: Plan, slack: float) -> dict[str, Any]:
    """A reply streams to a room on p0 while `storm_tabs` signed-in tabs open at once on p0.

    It runs after `idle`, whose sockets belonged to the same users: as after a restart, the
    people reconnecting were connected minutes before (their spend counters are in Redis)."""
    victims = sc.tabs_for(rig, [p0], [rooms.victim], plan.victim_tabs, 0)
    per_room = -(-plan.storm_tabs // len(rooms.storm))
    crowd = sc.tabs_for(rig, [p0], rooms.storm, per_room, plan.victim_tabs)[: plan.storm_tabs]
    storm_result: dict[str, Any] = {}

    def during() -> None:
        time.sleep(1.0)  # the stream is running
        storm_result.update(
            sc.hold(rig, p0, "storm", crowd, clients=2, concurrency=0, deadline=plan.storm_deadline)
        )

    result = sc.stream(
        rig,
        [p0],
        "victim",
        victims,
        plan.victim_tokens,
        100,
        slack=slack,
        during=during,
        settle_quiet=plan.settle_quiet,
    )
    result["storm"] = storm_result
    return result


def brief(r: dict[str, Any]) -> str:
    lat = r["latency_ms"]
    return (
        f"lost {r['lost_pct']} %, wrong {r['tabs_wrong_text']}, gaps {r['seq_gaps']}, "
        f"p50 {fmt(lat['p50'])} p99 {fmt(lat['p99'])} max {fmt(lat['max'])} ms, "
        f"frames {r['frames_per_reply']}, server CPU {r['server_cpu_pct']}, "
        f"client lag p99 {fmt(r['client_lag_ms']['p99'])}"
    )


def brief_hold(r: dict[str, Any]) -> str:
    h = r.get("storm", r)
    return (
        f"held {h['held']}/{h['tabs']} in {fmt(h['connect_s'])} s "
        f"({h['connections_per_s']}/s), RSS/socket {h.get('rss_per_socket_kib')} KiB, "
        f"idle CPU {h.get('idle_cpu_pct')} %, errors {h['errors']}"
    )


def fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.suite", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes (under a minute)")
    parser.add_argument("--only", default=",".join(SCENARIOS), help="comma list of scenarios")
    parser.add_argument("--apps", default="product,naive", help="product, naive or both")
    parser.add_argument("--code", default=".", help="application tree: a directory or git:REV")
    parser.add_argument("--nice", type=int, default=0, help="priority boost (root; see README)")
    parser.add_argument("--json", type=Path, help="results (default bench/results/suite*.json)")
    parser.add_argument("--plot", type=Path, help="latency plot PNG")
    parser.add_argument("--keep", action="store_true", help="keep the logs directory")
    parser.add_argument(
        "--app", default="", help="the product's ASGI app (e.g. bench.experiments:application)"
    )
    parser.add_argument(
        "--db", choices=("postgres", "sqlite"), default="postgres", help="the servers' database"
    )
    parser.add_argument("--profile", type=Path, help="py-spy every daphne per scenario into DIR")
    parser.add_argument(
        "--set", action="append", default=[], metavar="FIELD=N", help="override a Plan size"
    )
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="environment of the product's servers (e.g. STREAM_FLUSH_MS=10, REDIS_CHANNEL_LAYER=core)",
    )
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else Plan()
    kinds = {f.name: f.type for f in fields(Plan)}
    for item in args.set:
        key, _, value = item.partition("=")
        if key not in kinds:
            parser.error(f"--set: no plan field {key!r} (fields: {', '.join(kinds)})")
        plan = replace(plan, **{key: float(value) if kinds[key] == "float" else int(value)})
    only = {x.strip() for x in args.only.split(",") if x.strip()}
    apps = [a.strip() for a in args.apps.split(",") if a.strip()]
    name = "suite-quick" if args.quick else "suite"
    json_path = args.json or Path("bench/results") / f"{name}.json"
    plot_path = args.plot or (
        Path("bench/results/suite-quick-latency.png")
        if args.quick
        else Path("docs/benchmarks-latency.png")
    )

    def say(message: str) -> None:
        print(f"[suite {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

    fds = raise_fd_limit()
    started = time.time()
    load_before = load_average()
    say(f"plan {'quick' if args.quick else 'full'}; open files {fds}; load average {load_before}")
    workdir = Path(tempfile.mkdtemp(prefix="roomchat-suite-"))
    rig = Rig(workdir, args.code, plan.users, Rooms.needed(plan), say, db=args.db)
    rig.nice = args.nice
    rig.profile_dir = args.profile
    results: dict[str, Any] = {}
    try:
        rig.start(plan.seed_messages)
        launched = None
        for app in apps:
            target = PRODUCT_APP if app == "product" else NAIVE_APP
            if app == "product" and args.app:
                target = args.app
            extra = dict(item.partition("=")[::2] for item in args.env) if app == "product" else {}
            rig.env.update(extra)
            # Quick runs boot the naive recipe's processes while the product's scenarios run.
            early = (
                rig.launch(NAIVE_APP, 2, {})
                if args.quick and app == "product" and "naive" in apps
                else None
            )
            results[app] = run_app(rig, target, plan, only, say, launched)
            launched = early
            for name in extra:
                rig.env.pop(name, None)
        failed = [
            f"{app}/{key}"
            for app, res in results.items()
            for key, r in res.items()
            if isinstance(r, dict) and r.get("tabs_with_error")
        ]
    finally:
        keep = args.keep or bool(locals().get("failed"))
        rig.close(keep)
        if keep:
            say(f"logs kept in {workdir}")
    payload = {
        "plan": asdict(plan),
        "quick": args.quick,
        "code_commit": rig.commit,
        "database": args.db,
        "product_app": args.app or PRODUCT_APP,
        "product_env": args.env,
        "environment": {
            **environment(),
            "machine": platform.processor() or platform.machine(),
            "load_average_before": load_before,
            "load_average_after": load_average(),
        },
        "duration_s": round(time.time() - started, 1),
        "results": results,
    }
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(payload, indent=1))
    from bench.report import markdown, plot

    text = markdown(payload)
    json_path.with_suffix(".md").write_text(text)
    print(text)
    try:
        plot(payload, plot_path)
        say(f"plot: {plot_path}")
    except ImportError:
        say("no plot: matplotlib is not installed (pip install -r requirements-bench.txt)")
    say(f"done in {payload['duration_s']} s; results {json_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
