"""Fan-out benchmark: one reply streamed to many tabs over several daphne processes.

    python -m bench.fanout                       # 200 tabs, 2 processes, 500 tokens at 100/s
    python -m bench.fanout --layer core --flush-ms 0 --json out.json
    python -m bench.fanout --matrix --json bench/results/matrix.json

Starts everything it needs and stops it again: a private redis-server on a free port, a paced
Anthropic API stub (`bench.model_stub`, reached by the real `anthropic` SDK inside daphne through
ANTHROPIC_BASE_URL), a fresh SQLite file or PostgreSQL database (migrated; users, sessions and
the room written directly), N daphne processes started like the Procfile's `web`, and client
processes (`bench.client`) whose tabs are spread over the servers. One tab sends a message;
every tab records every delta; the numbers are explained in bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import platform
import queue
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from websockets.asyncio.client import connect as ws_connect

from bench.model_stub import WARMUP_MARK
from bench.procstats import ProcessUsage, Sampler
from tests.support import REPO_ROOT, end_process, log_tail, python_executable, spawn
from tests.support.daphne import DaphneProcess
from tests.support.ports import free_port
from tests.support.redis_server import RedisServer

TARGET_P99_MS = 50.0
# The daphne options of the Procfile's `web` command (minus the port and bind address).
DAPHNE_ARGS = (
    "--proxy-headers",
    "--ping-interval", "20",
    "--ping-timeout", "30",
    "--application-close-timeout", "10",
)  # fmt: skip
SETTLE_QUIET = 1.0  # after the last join: no frame for this long (presence broadcasts drained)
DEFAULT_PG = "postgres://postgres@127.0.0.1:5432/postgres"


@dataclass(frozen=True)
class Config:
    """One benchmark run."""

    tabs: int = 200
    processes: int = 2
    tokens: int = 500
    rate: float = 100.0
    layer: str = "pubsub"
    flush_ms: int = 20
    db: str = "sqlite"
    users: int = 0  # 0: one user per tab
    clients: int = 0  # client processes; 0: 1 up to 100 tabs, else 2
    timeout: float = 0.0  # seconds to wait for the reply after GO; 0: length/rate + 60
    label: str = ""
    keep: bool = False  # keep the logs directory
    nice: int = 0  # CPU priority boost (nice -N) for every process of the run; needs root
    quiet_pct: float = 0.0  # wait until the machine's own load is under this (% of a core)
    quiet_wait: float = 0.0  # ... for at most this many seconds
    profile: str = ""  # directory: py-spy records each daphne during the stream (raw stacks)
    code: str = "."  # the application tree: a directory, or git:REV for a committed snapshot
    app: str = "chatsite.asgi:application"  # what daphne serves (bench.experiments for trials)
    warmup: bool = True  # one short reply per process before the measured one
    experiment: str = ""  # BENCH_EXPERIMENT for bench.experiments (implies its application)

    @property
    def client_processes(self) -> int:
        return self.clients or (1 if self.tabs <= 100 else 2)

    @property
    def reply_timeout(self) -> float:
        return self.timeout or self.tokens / self.rate + 60.0

    @property
    def user_count(self) -> int:
        return self.users or self.tabs

    def command(self) -> str:
        args = [
            f"--tabs {self.tabs}",
            f"--processes {self.processes}",
            f"--tokens {self.tokens}",
            f"--rate {self.rate:g}",
            f"--layer {self.layer}",
            f"--flush-ms {self.flush_ms}",
            f"--db {self.db}",
        ]
        if self.users:
            args.append(f"--users {self.users}")
        if self.clients:
            args.append(f"--clients {self.clients}")
        if self.code != ".":
            args.append(f"--code {self.code}")
        if self.app != Config.app:
            args.append(f"--app {self.app}")
        if not self.warmup:
            args.append("--no-warmup")
        if self.experiment:
            args.append(f"--experiment {self.experiment}")
        return "python -m bench.fanout " + " ".join(args)


# --- helpers -------------------------------------------------------------------------------


def percentile(ordered: list[float], p: float) -> float | None:
    """Nearest-rank percentile of an ascending list."""
    if not ordered:
        return None
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def machine_busy() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs since boot, from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    total = sum(fields[:8])
    return total - idle, total


def busy_cores_pct(start: tuple[int, int], end: tuple[int, int]) -> float:
    """CPU used by the whole machine between two `machine_busy()` readings, in % of one core."""
    return 100 * (os.cpu_count() or 1) * (end[0] - start[0]) / max(1, end[1] - start[1])


def boost(pid: int, amount: int) -> None:
    """Raise the CPU priority of `pid` (every thread) by `amount` nice levels (root only).

    The kernel groups processes by session (sched autogroup) and shares the CPU between
    groups first, so plain nice does nothing against other sessions: the process's autogroup
    gets the nice value too. Every process here runs in a session of its own.
    """
    with contextlib.suppress(OSError):
        Path(f"/proc/{pid}/autogroup").write_text(str(-amount))
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError, ValueError):
            os.setpriority(os.PRIO_PROCESS, int(task.name), -amount)


def code_tree(code: str, workdir: Path) -> tuple[Path, str]:
    """The directory the servers run from, and what it is (a commit, plus "+dirty").

    `code` is a directory, or `git:REV`, exported into workdir: other people edit the working
    tree while a benchmark runs, and a committed snapshot holds still.
    """

    def git(*args: str, cwd: Path = REPO_ROOT) -> str:
        result = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)
        return result.stdout.strip()

    if not code.startswith("git:"):
        tree = Path(code).resolve() if code != "." else REPO_ROOT
        dirty = git("status", "--porcelain", "--", "chatsite", "consumers", cwd=tree)
        return tree, git("rev-parse", "--short", "HEAD", cwd=tree) + ("+dirty" if dirty else "")
    rev = git("rev-parse", "--short", code[4:])
    target = workdir / "code"
    target.mkdir()
    archive = subprocess.run(
        ["git", "archive", "--format=tar", rev], cwd=REPO_ROOT, capture_output=True, check=True
    )
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive.stdout, check=True)
    # The benchmark's own modules (setup_db, experiments) come from this checkout.
    shutil.rmtree(target / "bench", ignore_errors=True)
    return target, rev


def server_trace(directory: Path, epoch: float) -> dict[str, Any] | None:
    """The server-side timeline of the measured reply (the longest trace), if traced."""
    from bench.experiments_summary import summarise

    traces = sorted(directory.glob("trace-*.json"), key=lambda p: p.stat().st_size)
    return summarise(traces[-1], epoch) if traces else None


async def warm_up(daphnes: list[DaphneProcess], session: str, room: str) -> None:
    """Have each process run one short reply (the stub answers `[warmup]` briefly)."""
    for index, server in enumerate(daphnes):
        async with ws_connect(
            f"{server.ws_url}/ws/rooms/{room}/",
            origin=server.url,  # type: ignore[arg-type]
            additional_headers={"Cookie": f"sessionid={session}"},
            max_size=None,
        ) as conn:
            frame = {"type": "message.send", "text": f"{WARMUP_MARK} process {index}"}
            await conn.send(json.dumps(frame))
            async with asyncio.timeout(60):
                while b'"generation.finished"' not in await conn.recv(decode=False):
                    pass


def start_profilers(cfg: Config, daphnes: list[DaphneProcess]) -> list[subprocess.Popen[bytes]]:
    """py-spy (if installed) samples each daphne for the length of the reply."""
    pyspy = shutil.which("py-spy") or str(Path(python_executable()).parent / "py-spy")
    if not Path(pyspy).exists():
        raise SystemExit("--profile needs py-spy: .venv/bin/pip install py-spy")
    out = Path(cfg.profile)
    out.mkdir(parents=True, exist_ok=True)
    duration = str(math.ceil(cfg.tokens / cfg.rate) + 1)
    procs = []
    for d in daphnes:
        target = out / f"{cfg.label or 'run'}-daphne-{d.name}.txt"
        argv = [pyspy, "record", "--pid", str(d.pid), "--format", "raw", "--rate", "250"]
        argv += ["--nonblocking", "--duration", duration, "--output", str(target)]
        procs.append(subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    return procs


def wait_for_quiet(limit_pct: float, patience: float, say: Any) -> float:
    """Wait (at most `patience` s) until the machine uses under `limit_pct` % of one core over
    3 s; the last reading. Other people's test suites share this machine's two cores."""
    deadline = time.monotonic() + patience
    while True:
        before = machine_busy()
        time.sleep(3)
        load = busy_cores_pct(before, machine_busy())
        if load < limit_pct or time.monotonic() >= deadline:
            say(f"machine load before the run: {load:.0f} % of one core")
            return load
        say(f"machine busy ({load:.0f} % of one core); waiting for it to calm down")


def wait_for_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process {proc.args!r} exited with {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on port {port} after {timeout:g} s")


class Worker:
    """A `bench.client` process and the lines it prints."""

    def __init__(self, index: int, spec_path: Path, log_path: Path) -> None:
        self.index = index
        self.spec_path = spec_path
        self.out_path = spec_path.with_suffix(".out.json")
        self.log_path = log_path
        self.log = log_path.open("ab")
        self.proc = subprocess.Popen(
            [python_executable(), "-m", "bench.client", str(spec_path)],
            cwd=REPO_ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            start_new_session=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            self.lines.put(raw.decode(errors="replace").strip())
        self.lines.put("EOF")

    def expect(self, word: str, timeout: float) -> str:
        """The next line starting with `word`; RuntimeError on anything else or a timeout."""
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError(f"client {self.index}: no {word} within {timeout:g} s") from None
        if not line.startswith(word):
            raise RuntimeError(
                f"client {self.index}: expected {word}, got {line!r}; its log ends:\n"
                + log_tail(self.log_path, 30)
            )
        return line

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"{line}\n".encode())
        self.proc.stdin.flush()

    def stop(self) -> None:
        end_process(self.proc, signal.SIGTERM, 10)
        self.log.close()


@contextlib.contextmanager
def database(kind: str, workdir: Path) -> Any:
    """A DATABASE_URL for a fresh, empty database; dropped afterwards (PostgreSQL)."""
    if kind == "sqlite":
        yield f"sqlite:///{workdir / 'bench.sqlite3'}"
        return
    import psycopg

    base = os.environ.get("BENCH_POSTGRES_URL", DEFAULT_PG)
    name = f"roomchat_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    parts = urlsplit(base)
    try:
        yield urlunsplit(parts._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --- one run -------------------------------------------------------------------------------


def run(cfg: Config, log: Any = sys.stderr) -> dict[str, Any]:
    """Start everything, stream one reply to every tab, stop everything; the measurements."""

    def say(message: str) -> None:
        print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=log, flush=True)

    workdir = Path(tempfile.mkdtemp(prefix="roomchat-bench-"))
    epoch = float(int(time.time()))
    redis = RedisServer()
    stub: subprocess.Popen[bytes] | None = None
    daphnes: list[DaphneProcess] = []
    workers: list[Worker] = []
    say(f"{cfg.command()}  (logs in {workdir})")
    load_before = wait_for_quiet(cfg.quiet_pct, cfg.quiet_wait, say) if cfg.quiet_pct > 0 else None
    try:
        app_dir, commit = code_tree(cfg.code, workdir)
        redis.start()
        stub_port = free_port()
        stub_argv = [python_executable(), "-m", "bench.model_stub", "--port", str(stub_port)]
        stub_argv += ["--tokens", str(cfg.tokens), "--rate", str(cfg.rate), "--epoch", str(epoch)]
        stub = spawn(
            stub_argv,
            log_path=workdir / "model_stub.log",
            cwd=REPO_ROOT,
        )
        wait_for_port(stub_port, stub)
        with database(cfg.db, workdir) as database_url:
            env = {
                "DJANGO_DEBUG": "0",
                "DJANGO_SECRET_KEY": "bench-" + uuid.uuid4().hex,
                "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
                "DJANGO_HTTPS": "0",
                "DATABASE_URL": database_url,
                "REDIS_URL": redis.url,
                "REDIS_CHANNEL_LAYER": cfg.layer,
                "LLM_PROVIDER": "anthropic",
                "ANTHROPIC_API_KEY": "sk-ant-bench-not-a-key",
                "ANTHROPIC_BASE_URL": f"http://127.0.0.1:{stub_port}",
                "LLM_MAX_TOKENS": str(max(1024, cfg.tokens + 16)),
                "STREAM_FLUSH_MS": str(cfg.flush_ms),
                "CHAT_RATE_PER_MINUTE": "1000000",
                "LOG_LEVEL": "WARNING",
                "PYTHONUNBUFFERED": "1",
                # The tree's own modules first (cwd), then this checkout's bench package.
                "PYTHONPATH": os.pathsep.join([str(app_dir), str(REPO_ROOT)]),
            }
            if cfg.experiment:
                env["BENCH_EXPERIMENT"] = cfg.experiment
                env["BENCH_EPOCH"] = str(epoch)
                env["BENCH_TRACE_DIR"] = str(workdir / "traces")
            full_env = {**os.environ, **env}
            subprocess.run(
                [python_executable(), "manage.py", "migrate", "--noinput", "-v", "0"],
                cwd=app_dir,
                env=full_env,
                check=True,
            )
            setup_argv = [python_executable(), "-m", "bench.setup_db", "--room", "bench-room"]
            setup = subprocess.run(
                [*setup_argv, "--users", str(cfg.user_count)],
                cwd=app_dir,
                env=full_env,
                check=True,
                capture_output=True,
                text=True,
            )
            prepared = json.loads(setup.stdout.strip().splitlines()[-1])
            sessions: list[str] = prepared["sessions"]
            room: str = prepared["room"]

            daphnes = [
                DaphneProcess(
                    env,
                    name=f"p{i}",
                    log_dir=workdir,
                    app="bench.experiments:application" if cfg.experiment else cfg.app,
                    cwd=app_dir,
                    extra_args=DAPHNE_ARGS,
                )
                for i in range(cfg.processes)
            ]
            DaphneProcess.start_all(*daphnes)
            say(f"redis :{redis.port}, stub :{stub_port}, daphne {[d.port for d in daphnes]}")
            if cfg.warmup:
                # The first reply of a process builds the SDK client, pydantic validators,
                # Lua scripts...: not what a steady state pays. One short reply per process.
                asyncio.run(warm_up(daphnes, sessions[0], room))

            # Tab i talks to process i % N; client k gets every K-th tab of each process.
            k = cfg.client_processes
            specs: list[list[dict[str, Any]]] = [[] for _ in range(k)]
            for i in range(cfg.tabs):
                server = daphnes[i % cfg.processes]
                specs[(i // cfg.processes) % k].append(
                    {
                        "index": i,
                        "url": f"{server.ws_url}/ws/rooms/{room}/",
                        "origin": server.url,
                        "session": sessions[i % len(sessions)],
                    }
                )
            for index, tabs in enumerate(specs):
                spec_path = workdir / f"client-{index}.json"
                spec = {
                    "tabs": tabs,
                    "epoch": epoch,
                    "sender": index == 0,
                    "prompt": "Benchmark: please stream a long answer.",
                    "msg_id": uuid.uuid4().hex,
                    "timeout": cfg.reply_timeout,
                    "out": str(spec_path.with_suffix(".out.json")),
                }
                spec_path.write_text(json.dumps(spec))
                workers.append(Worker(index, spec_path, workdir / f"client-{index}.log"))
            failed = 0
            for worker in workers:
                line = worker.expect("READY", 60 + cfg.tabs * 0.2)
                failed += int(line.split()[2])
            say(f"{cfg.tabs - failed} tabs connected ({failed} failed); settling")
            for worker in workers:
                worker.send("SETTLE")
            settled = max(float(w.expect("SETTLED", 180).split()[1]) for w in workers)
            say(f"no frame for {SETTLE_QUIET:g} s after {settled:.1f} s")

            usage = [ProcessUsage(f"daphne-{d.name}", d.pid or 0) for d in daphnes]
            usage += [ProcessUsage("redis-server", redis.proc.pid if redis.proc else 0)]
            usage += [ProcessUsage("model-stub", stub.pid)]
            usage += [ProcessUsage(f"client-{w.index}", w.proc.pid) for w in workers]
            if cfg.nice:
                for proc in usage:
                    boost(proc.pid, cfg.nice)
            sampler = Sampler(usage)
            busy_start = machine_busy()
            sampler.start()
            profilers = start_profilers(cfg, daphnes) if cfg.profile else []
            for worker in workers:
                worker.send("GO")
            say("message sent; streaming")
            for worker in workers:
                worker.expect("ENDED", cfg.reply_timeout + 30)
            wall = sampler.stop()
            busy_end = machine_busy()
            for worker in workers:
                worker.expect("DONE", 120)
            for profiler in profilers:
                profiler.wait(60)
            outputs = [json.loads(w.out_path.read_text()) for w in workers]
            trace = server_trace(workdir / "traces", epoch) if cfg.experiment else None
    finally:
        for worker in workers:
            worker.stop()
        for process in daphnes:
            process.stop()
        if stub is not None:
            end_process(stub, signal.SIGTERM, 5)
        redis.close()
        if not cfg.keep:
            shutil.rmtree(workdir, ignore_errors=True)

    machine = busy_cores_pct(busy_start, busy_end)
    result = summarise(cfg, outputs, usage, wall, machine, failed)
    result["machine_load_before_pct"] = None if load_before is None else round(load_before)
    result["server_trace"] = trace
    result["settle_s"] = settled
    result["code_commit"] = commit
    return result


def summarise(
    cfg: Config,
    outputs: list[dict[str, Any]],
    usage: list[ProcessUsage],
    wall: float,
    machine_pct: float,
    failed: int,
) -> dict[str, Any]:
    tabs = [t for out in outputs for t in out["tabs"]]
    ok_tabs = [t for t in tabs if "deltas" in t]
    latencies = sorted(x for out in outputs for x in out["latencies_ms"])
    frames = max((t["max_seq"] for t in ok_tabs), default=0)
    expected_tokens = cfg.tabs * cfg.tokens
    received_tokens = sum(t["tokens_received"] for t in ok_tabs)
    gaps = sum(frames - t["unique_seqs"] for t in ok_tabs) + frames * (cfg.tabs - len(ok_tabs))
    sent_at = next((o["sent_at"] for o in outputs if o.get("sent_at")), None)
    first = [t["first_delta_at"] for t in ok_tabs if t.get("first_delta_at")]
    done = [t["finished_at"] for t in ok_tabs if t.get("finished_at")]
    statuses: dict[str, int] = {}
    for t in ok_tabs:
        key = str(t.get("finished_status"))
        statuses[key] = statuses.get(key, 0) + 1
    errors = sorted({t["error"] for t in tabs if t.get("error")})
    servers = [u for u in usage if u.name.startswith("daphne")]
    clients = [u for u in usage if u.name.startswith("client")]
    lost_pct = 100 * (1 - received_tokens / expected_tokens) if expected_tokens else 0.0
    over = sum(1 for x in latencies if x > TARGET_P99_MS)
    result: dict[str, Any] = {
        "label": cfg.label,
        "config": asdict(cfg),
        "command": cfg.command(),
        "tabs_connected": cfg.tabs - failed,
        "tabs_failed": failed,
        "frames_per_reply": frames,
        "tokens_per_frame": round(cfg.tokens / frames, 2) if frames else None,
        "tokens_expected": expected_tokens,
        "tokens_received": received_tokens,
        "lost_text_pct": round(lost_pct, 3),
        "tabs_wrong_text": sum(1 for t in tabs if not t.get("text_ok")),
        "seq_gaps": gaps,
        "tabs_with_gaps": sum(1 for t in ok_tabs if t["unique_seqs"] < frames),
        "duplicates": sum(t["duplicates"] for t in ok_tabs),
        "out_of_order": sum(t["out_of_order"] for t in ok_tabs),
        "finished_status": statuses,
        "latency_ms": {
            "tokens": len(latencies),
            "p50": percentile(latencies, 50),
            "p95": percentile(latencies, 95),
            "p99": percentile(latencies, 99),
            "max": latencies[-1] if latencies else None,
            "over_50ms_pct": round(100 * over / len(latencies), 2) if latencies else None,
        },
        "first_delta_after_send_ms": round((min(first) - sent_at) * 1000, 1)
        if first and sent_at
        else None,
        "last_finished_after_send_s": round(max(done) - sent_at, 2) if done and sent_at else None,
        "window_s": round(wall, 2),
        # In % of one core, like top: 200 is both cores of this machine busy.
        "machine_cpu_pct": round(machine_pct, 1),
        "foreign_cpu_pct": round(machine_pct - sum(u.cpu_percent(wall) or 0 for u in usage), 1),
        "processes": [
            {
                "name": u.name,
                "cpu_pct": round(u.cpu_percent(wall) or 0.0, 1),
                "runqueue_wait_pct": round(u.wait_percent(wall) or 0.0, 1),
                "rss_peak_mib": round(u.rss_peak_mib, 1),
                "rss_end_mib": round(u.rss_end_mib or 0.0, 1),
            }
            for u in usage
        ],
        "server_cpu_pct": [round(u.cpu_percent(wall) or 0.0, 1) for u in servers],
        "server_rss_mib": [round(u.rss_peak_mib, 1) for u in servers],
        "client_cpu_pct": [round(u.cpu_percent(wall) or 0.0, 1) for u in clients],
        "client_loop_lag_ms": [o["loop_lag_ms"] for o in outputs],
        "errors": errors[:10],
    }
    p99 = result["latency_ms"]["p99"]
    result["meets_target"] = bool(
        failed == 0
        and result["lost_text_pct"] == 0
        and result["tabs_wrong_text"] == 0
        and gaps == 0
        and p99 is not None
        and p99 <= TARGET_P99_MS
    )
    return result


# --- output --------------------------------------------------------------------------------


def fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


TABLE_HEAD = (
    "| run | tabs/proc | layer | flush | lost text % | wrong-text tabs | seq gaps | "
    "p50 ms | p95 ms | p99 ms | max ms | frames | server CPU % | server RSS MiB | "
    "redis CPU % | client CPU % | client lag p99 ms | foreign CPU % | target |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
)


def table_row(r: dict[str, Any]) -> str:
    cfg = r["config"]
    lat = r["latency_ms"]
    redis = next(p for p in r["processes"] if p["name"] == "redis-server")
    lags = [x["p99"] for x in r["client_loop_lag_ms"] if x.get("p99") is not None]
    return (
        f"| {r['label'] or '-'} | {cfg['tabs']}/{cfg['processes']} | {cfg['layer']} | "
        f"{cfg['flush_ms']} ms | {fmt(r['lost_text_pct'], 2)} | {r['tabs_wrong_text']} | "
        f"{r['seq_gaps']} | {fmt(lat['p50'])} | {fmt(lat['p95'])} | {fmt(lat['p99'])} | "
        f"{fmt(lat['max'])} | {r['frames_per_reply']} | "
        f"{' + '.join(fmt(x, 0) for x in r['server_cpu_pct'])} | "
        f"{' + '.join(fmt(x, 0) for x in r['server_rss_mib'])} | {fmt(redis['cpu_pct'], 0)} | "
        f"{' + '.join(fmt(x, 0) for x in r['client_cpu_pct'])} | "
        f"{fmt(max(lags) if lags else None)} | {fmt(r.get('foreign_cpu_pct'), 0)} | "
        f"{'yes' if r['meets_target'] else 'NO'} |"
    )


def describe(r: dict[str, Any]) -> str:
    lat = r["latency_ms"]
    lines = [
        r["command"],
        f"  tabs connected {r['tabs_connected']}, failed {r['tabs_failed']}; "
        f"frames per reply {r['frames_per_reply']} ({r['tokens_per_frame']} tokens each)",
        f"  lost text {fmt(r['lost_text_pct'], 3)} % ({r['tokens_received']}/"
        f"{r['tokens_expected']} tokens), tabs with wrong text {r['tabs_wrong_text']}, "
        f"seq gaps {r['seq_gaps']} in {r['tabs_with_gaps']} tabs, finished {r['finished_status']}",
        f"  emit-to-screen latency ms: p50 {fmt(lat['p50'])}, p95 {fmt(lat['p95'])}, "
        f"p99 {fmt(lat['p99'])}, max {fmt(lat['max'])}, over 50 ms {lat['over_50ms_pct']} % "
        f"of {lat['tokens']} tokens",
        f"  first delta {r['first_delta_after_send_ms']} ms after send; all finished after "
        f"{r['last_finished_after_send_s']} s; machine CPU {r['machine_cpu_pct']} % of a core, "
        f"of which not this benchmark {r['foreign_cpu_pct']} %",
    ]
    for p in r["processes"]:
        lines.append(
            f"    {p['name']:<14} CPU {p['cpu_pct']:6.1f} %  waiting for a CPU "
            f"{p['runqueue_wait_pct']:6.1f} %  RSS peak {p['rss_peak_mib']:7.1f} MiB"
        )
    lines.append(f"  client loop lag: {r['client_loop_lag_ms']}")
    if r["errors"]:
        lines.append(f"  errors: {r['errors']}")
    lines.append(f"  meets target (no loss, p99 <= {TARGET_P99_MS:g} ms): {r['meets_target']}")
    return "\n".join(lines)


def matrix(base: Config) -> list[Config]:
    """The report's runs: both layers × coalesced and plain at full size, plus 50 tabs."""
    runs = [
        replace(base, layer=layer, flush_ms=flush, label=f"{layer}-{name}")
        for layer in ("pubsub", "core")
        for flush, name in ((20, "flush20"), (0, "plain"))
    ]
    runs.append(replace(base, tabs=50, layer="pubsub", flush_ms=20, label="pubsub-flush20-50tabs"))
    return runs


def environment() -> dict[str, Any]:
    from importlib.metadata import version

    versions = {
        name: version(name)
        for name in ("Django", "channels", "channels-redis", "daphne", "redis", "websockets")
    }
    redis_v = subprocess.run(
        ["redis-server", "--version"], capture_output=True, text=True, check=False
    ).stdout.strip()
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "kernel": platform.release(),
        "versions": versions,
        "redis_server": redis_v,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="bench.fanout",
        description="Stream one reply to many tabs over several daphne processes and measure "
        "lost text and emit-to-screen latency (see bench/README.md).",
    )
    parser.add_argument("--tabs", type=int, default=200)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--tokens", type=int, default=500, help="reply length in tokens")
    parser.add_argument("--rate", type=float, default=100.0, help="model tokens per second")
    parser.add_argument("--layer", choices=("pubsub", "core"), default="pubsub")
    parser.add_argument(
        "--flush-ms", type=int, default=20, help="STREAM_FLUSH_MS (0: one frame per token)"
    )
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--users", type=int, default=0, help="distinct users (0: one per tab)")
    parser.add_argument(
        "--clients", type=int, default=0, help="client processes (0: 1 up to 100 tabs, else 2)"
    )
    parser.add_argument("--timeout", type=float, default=0.0, help="reply deadline in seconds")
    parser.add_argument("--label", default="")
    parser.add_argument("--keep", action="store_true", help="keep the logs directory")
    parser.add_argument(
        "--nice",
        type=int,
        default=0,
        help="raise the priority of every process of the run by N (root only; shared machines)",
    )
    parser.add_argument(
        "--quiet",
        type=float,
        default=0.0,
        metavar="PCT",
        help="before each run, wait until the machine uses under PCT %% of one core",
    )
    parser.add_argument("--quiet-wait", type=float, default=300.0, help="... at most this long")
    parser.add_argument(
        "--profile", default="", metavar="DIR", help="py-spy each daphne into DIR (raw stacks)"
    )
    parser.add_argument(
        "--code",
        default=".",
        help="application tree: a directory (default: this checkout) or git:REV (a snapshot)",
    )
    parser.add_argument(
        "--app", default=Config.app, help="ASGI application daphne serves (for experiments)"
    )
    parser.add_argument(
        "--no-warmup",
        action="store_true",
        help="measure each process's very first reply (no warm-up reply before it)",
    )
    parser.add_argument(
        "--experiment",
        default="",
        help="serve bench.experiments with these patches (trace, decoupled, nolive)",
    )
    parser.add_argument("--matrix", action="store_true", help="run the report's five runs")
    parser.add_argument("--repeat", type=int, default=1, help="run each configuration n times")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument(
        "--table", nargs="+", type=Path, metavar="JSON", help="print the table of saved runs"
    )
    args = parser.parse_args(argv)
    if args.table:
        print(TABLE_HEAD)
        for path in args.table:
            for result in json.loads(path.read_text())["runs"]:
                print(table_row(result))
        return 0
    base = Config(
        tabs=args.tabs,
        processes=args.processes,
        tokens=args.tokens,
        rate=args.rate,
        layer=args.layer,
        flush_ms=args.flush_ms,
        db=args.db,
        users=args.users,
        clients=args.clients,
        timeout=args.timeout,
        label=args.label,
        keep=args.keep,
        nice=args.nice,
        quiet_pct=args.quiet,
        quiet_wait=args.quiet_wait,
        profile=args.profile,
        code=args.code,
        app=args.app,
        warmup=not args.no_warmup,
        experiment=args.experiment,
    )
    configs = matrix(base) if args.matrix else [base]
    configs = [c for c in configs for _ in range(args.repeat)]
    results = []
    for cfg in configs:
        result = run(cfg)
        results.append(result)
        print(describe(result), flush=True)
        print(flush=True)
    print(TABLE_HEAD)
    for result in results:
        print(table_row(result))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        payload = {"environment": environment(), "runs": results}
        args.json.write_text(json.dumps(payload, indent=1))
    return 0 if all(r["meets_target"] for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
