"""The benchmark suite's rig: one private Redis, one paced model stub and one database for a whole
run, and the daphne processes of one application at a time (the product or the naive recipe),
each started like the Procfile's `web` command. Nothing outlives the run; all on loopback.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import queue
import resource
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.fanout import DAPHNE_ARGS, boost, code_tree, database, wait_for_port, warm_up
from bench.procstats import cpu_seconds, rss_mib
from tests.support import REPO_ROOT, end_process, log_tail, python_executable, spawn
from tests.support.daphne import DaphneProcess
from tests.support.ports import free_port
from tests.support.redis_server import RedisServer

PRODUCT_APP = "chatsite.asgi:application"
NAIVE_APP = "bench.naive:application"


def raise_fd_limit() -> int:
    """Raise the open-file limit to the hard limit (children inherit it); the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


class Worker:
    """A client process (`bench.client` or `bench.hold`) and the lines it prints."""

    def __init__(self, module: str, name: str, spec: dict[str, Any], workdir: Path) -> None:
        self.name = name
        self.spec_path = workdir / f"{name}.json"
        self.out_path = workdir / f"{name}.out.json"
        spec = {**spec, "out": str(self.out_path)}
        self.spec_path.write_text(json.dumps(spec))
        self.log_path = workdir / f"{name}.log"
        self.log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [python_executable(), "-m", module, str(self.spec_path)],
            cwd=REPO_ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            start_new_session=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            self.lines.put(raw.decode(errors="replace").strip())
        self.lines.put("EOF")

    def expect(self, word: str, timeout: float) -> str:
        """The next line starting with `word`; an error on anything else or a timeout."""
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError(f"{self.name}: no {word} within {timeout:g} s") from None
        if not line.startswith(word):
            raise RuntimeError(
                f"{self.name}: expected {word}, got {line!r}; its log ends:\n"
                + log_tail(self.log_path, 30)
            )
        return line

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"{line}\n".encode())
        self.proc.stdin.flush()

    def result(self) -> dict[str, Any]:
        return dict(json.loads(self.out_path.read_text()))

    def stop(self) -> None:
        end_process(self.proc, signal.SIGTERM, 10)
        self.log.close()


class Rig:
    """Redis, the model stub and a migrated SQLite database with users, sessions and rooms."""

    def __init__(
        self, workdir: Path, code: str, users: int, rooms: int, say: Any, db: str = "sqlite"
    ) -> None:
        self.workdir = workdir
        self.db = db
        self._db_context: Any = None
        self.say = say
        self.epoch = float(int(time.time()))
        self.redis = RedisServer(workdir=workdir / "redis")
        self.stub: subprocess.Popen[bytes] | None = None
        self.app_dir, self.commit = code_tree(code, workdir)
        self.users = users
        self.room_count = rooms
        self.sessions: list[str] = []
        self.rooms: list[str] = []
        self.env: dict[str, str] = {}
        self.nice = 0
        self.profile_dir: Path | None = None  # py-spy each daphne for each scenario, into here
        self.label = ""  # the application now served ("product", "naive"), for file names

    def start(self, seed_messages: int) -> None:
        self.redis.start()
        stub_port = free_port()
        argv = [python_executable(), "-m", "bench.model_stub", "--port", str(stub_port)]
        argv += ["--epoch", str(self.epoch)]
        self.stub = spawn(argv, log_path=self.workdir / "model_stub.log", cwd=REPO_ROOT)
        wait_for_port(stub_port, self.stub)
        self.env = {
            "DJANGO_DEBUG": "0",
            "DJANGO_SECRET_KEY": "bench-" + uuid.uuid4().hex,
            "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
            "DJANGO_HTTPS": "0",
            "DATABASE_URL": self._database_url(),
            "REDIS_URL": self.redis.url,
            "LLM_PROVIDER": "anthropic",
            "ANTHROPIC_API_KEY": "sk-ant-bench-not-a-key",
            "ANTHROPIC_BASE_URL": f"http://127.0.0.1:{stub_port}",
            "LLM_MAX_TOKENS": "4096",
            "CHAT_RATE_PER_MINUTE": "1000000",
            "LOG_LEVEL": "WARNING",
            "PYTHONUNBUFFERED": "1",
            # The tree's own modules first (cwd), then this checkout's bench package.
            "PYTHONPATH": os.pathsep.join([str(self.app_dir), str(REPO_ROOT)]),
        }
        full = {**os.environ, **self.env}
        manage = [python_executable(), "manage.py", "migrate", "--noinput", "-v", "0"]
        subprocess.run(manage, cwd=self.app_dir, env=full, check=True)
        setup = [python_executable(), "-m", "bench.setup_db", "--users", str(self.users)]
        setup += ["--room", "bench", "--rooms", str(self.room_count)]
        setup += ["--seed-messages", str(seed_messages)]
        done = subprocess.run(
            setup, cwd=self.app_dir, env=full, check=True, capture_output=True, text=True
        )
        prepared = json.loads(done.stdout.strip().splitlines()[-1])
        self.sessions = prepared["sessions"]
        self.rooms = prepared["rooms"]
        self.say(
            f"rig: redis :{self.redis.port}, stub :{stub_port}, {len(self.sessions)} users, "
            f"{len(self.rooms)} rooms, code {self.commit}"
        )

    def _database_url(self) -> str:
        """A fresh database: a SQLite file, or a new PostgreSQL database dropped at close()."""
        self._db_context = database(self.db, self.workdir)
        return str(self._db_context.__enter__())

    def launch(self, app: str, count: int, env: dict[str, str]) -> list[DaphneProcess]:
        """Start `count` daphne processes serving `app` without waiting for them (`servers`
        takes them; `--quick` boots the naive recipe's while the product's scenarios run)."""
        daphnes = [
            DaphneProcess(
                {**self.env, **env},
                name=f"{'naive' if app == NAIVE_APP else 'app'}-p{i}",
                log_dir=self.workdir,
                app=app,
                cwd=self.app_dir,
                extra_args=DAPHNE_ARGS,
            )
            for i in range(count)
        ]
        for d in daphnes:
            d.launch()
        return daphnes

    @contextlib.contextmanager
    def servers(
        self, app: str, count: int, env: dict[str, str], launched: list[DaphneProcess] | None = None
    ) -> Iterator[list[DaphneProcess]]:
        """`count` daphne processes serving `app` (or those `launch` started), ready and warmed
        up (one short reply each); stopped afterwards."""
        daphnes = launched or self.launch(app, count, env)
        try:
            for d in daphnes:
                d.wait_ready()
            if self.nice:
                for d in daphnes:
                    boost(d.pid or 0, self.nice)
            asyncio.run(warm_up(daphnes, self.sessions[0], self.rooms[0]))
            yield daphnes
        finally:
            for d in daphnes:
                d.stop()

    @contextlib.contextmanager
    def profiled(self, servers: list[DaphneProcess], label: str) -> Iterator[None]:
        """py-spy samples each of `servers` (raw stacks, 200 Hz) while the block runs."""
        if self.profile_dir is None:
            yield
            return
        pyspy = str(Path(python_executable()).parent / "py-spy")
        self.profile_dir.mkdir(parents=True, exist_ok=True)
        procs = []
        for d in servers:
            target = self.profile_dir / f"{label}-{d.name}.txt"
            argv = [pyspy, "record", "--pid", str(d.pid), "--format", "raw", "--rate", "200"]
            argv += ["--nonblocking", "--output", str(target)]
            # e.g. BENCH_PYSPY_ARGS=--gil: only the thread holding the GIL, i.e. CPU by activity.
            argv += os.environ.get("BENCH_PYSPY_ARGS", "").split()
            procs.append(
                subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            )
        time.sleep(0.3)  # attached
        try:
            yield
        finally:
            for proc in procs:
                proc.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
            for proc in procs:
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()

    def worker(self, module: str, name: str, spec: dict[str, Any]) -> Worker:
        label = f"{self.label}-{name}" if self.label else name
        worker = Worker(module, label, {**spec, "epoch": self.epoch}, self.workdir)
        if self.nice:
            boost(worker.pid, self.nice)
        return worker

    def redis_commands(self) -> dict[str, int]:
        """Calls per Redis command since the server started (INFO commandstats)."""
        stats = self.redis.client().info("commandstats")
        return {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}

    def close(self, keep: bool) -> None:
        if self.stub is not None:
            end_process(self.stub, signal.SIGTERM, 5)
        self.redis.close()
        if self._db_context is not None:
            self._db_context.__exit__(None, None, None)
        if not keep:
            shutil.rmtree(self.workdir, ignore_errors=True)


def wait_calm(pids: list[int], limit_pct: float = 8.0, patience: float = 15.0) -> float:
    """Wait until these processes together use under `limit_pct` % of a core over 0.5 s
    (after a scenario's sockets closed, its presence and cleanup work drains); the last reading."""
    deadline = time.monotonic() + patience
    while True:
        before = sum(cpu_seconds(p) or 0 for p in pids)
        time.sleep(0.5)
        used = 100 * (sum(cpu_seconds(p) or 0 for p in pids) - before) / 0.5
        if used < limit_pct or time.monotonic() >= deadline:
            return used


def rss_total_mib(pids: list[int]) -> float:
    return sum(rss_mib(p) or 0.0 for p in pids)


def python_info() -> str:
    return sys.version.split()[0]
