"""A private redis-server process on a free port, which tests may stop, kill and restart."""

from __future__ import annotations

import shutil
import signal
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from tests.support import ServerProcess, log_tail, spawn, wait_until
from tests.support.ports import free_port


class RedisServerError(RuntimeError):
    """redis-server did not come up; the message carries its log tail."""


def redis_binary() -> str | None:
    """Path of the redis-server executable, or None when it is not installed."""
    return shutil.which("redis-server")


class RedisServer(ServerProcess):
    """One redis-server with no persistence: every restart starts empty, like a lost instance."""

    def __init__(
        self,
        port: int | None = None,
        *,
        workdir: Path | None = None,
        start_timeout: float = 10.0,
    ) -> None:
        binary = redis_binary()
        if binary is None:
            raise RedisServerError("redis-server is not installed (apt-get install redis-server)")
        self.binary = binary
        self._port_fixed = port is not None
        self.port = port if port is not None else free_port()
        self._own_workdir = workdir is None
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="roomchat-redis-"))
        self.log_path = self.workdir / f"redis-{self.port}.log"
        self.start_timeout = start_timeout
        self.proc: subprocess.Popen[bytes] | None = None
        self._started_once = False

    @property
    def url(self) -> str:
        """redis:// URL of database 0."""
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self, **options: Any) -> redis.Redis:
        """A sync redis-py client without retries, so a stopped server fails fast."""
        options.setdefault("socket_connect_timeout", 1)
        options.setdefault("socket_timeout", 5)
        options.setdefault("retry", Retry(NoBackoff(), 0))
        return redis.Redis.from_url(self.url, **options)

    def start(self) -> RedisServer:
        """Start on `self.port` (the same port after a stop or kill) and wait until PING answers."""
        if self.running:
            raise RedisServerError(f"redis-server on port {self.port} is already running")
        for _ in range(3):
            self._spawn()
            if self._wait_ready():
                self._started_once = True
                return self
            if self._port_fixed or self._started_once or not self._port_taken():
                break
            # Someone took our random port between the check and the bind: pick another one.
            self.port = free_port()
            self.log_path = self.workdir / f"redis-{self.port}.log"
        raise RedisServerError(
            f"redis-server on port {self.port} did not start:\n{self.log_text()}"
        )

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM and wait; with persistence off nothing is saved. Returns the exit code."""
        return self._end(signal.SIGTERM, timeout)

    def kill(self) -> int | None:
        """SIGKILL: the server vanishes without a goodbye to its clients."""
        return self._end(signal.SIGKILL, 10.0)

    def pause(self) -> None:
        """SIGSTOP: the server hangs with its sockets open, so clients wait instead of failing
        (a stuck instance or a network partition, the case timeouts must cover)."""
        assert self.proc is not None and self.running
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT after `pause`."""
        if self.proc is not None and self.running:
            self.proc.send_signal(signal.SIGCONT)

    def close(self) -> None:
        """Stop the server and remove a work directory we created."""
        self.resume()  # a paused server would ignore the SIGTERM until it is continued
        self.stop()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def restart(self) -> RedisServer:
        """Stop, then start on the same port: all data is gone, clients must reconnect."""
        self.stop()
        return self.start()

    def log_text(self) -> str:
        """The tail of the server's log."""
        return log_tail(self.log_path)

    def __repr__(self) -> str:
        return f"<RedisServer {self.url} running={self.running}>"

    def _argv(self) -> list[str]:
        return [
            self.binary,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--daemonize", "no",
            # A fresh directory: no dump.rdb from anywhere can be loaded on restart.
            "--dir", str(self.workdir),
            "--logfile", "",
        ]  # fmt: skip

    def _spawn(self) -> None:
        self.proc = spawn(self._argv(), log_path=self.log_path, cwd=self.workdir)

    def _wait_ready(self) -> bool:
        """True once PING answers; False if the process exited first."""
        client = self.client(socket_connect_timeout=0.5, socket_timeout=0.5)

        def answered() -> bool | None:
            if not self.running:
                return True  # stop polling: the process is gone
            try:
                return bool(client.ping())
            except redis.ConnectionError:
                return None

        try:
            wait_until(answered, timeout=self.start_timeout, what=f"redis-server :{self.port}")
        except TimeoutError:
            self._end(signal.SIGKILL, 5.0)
            raise RedisServerError(
                f"redis-server on port {self.port} did not answer PING:\n{self.log_text()}"
            ) from None
        finally:
            client.close()
        return self.running
