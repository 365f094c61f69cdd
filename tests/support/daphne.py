"""Real daphne server processes serving chatsite.asgi, as production runs them."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from tests.support import REPO_ROOT, ServerProcess, log_tail, python_executable, spawn
from tests.support.ports import free_port

# Only loopback traffic here: a proxy from the environment must never see it.
_direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class DaphneError(RuntimeError):
    """A daphne process did not become healthy; the message carries its log tail."""


def http_status(url: str, timeout: float = 5.0) -> tuple[int, str]:
    """Status and body of a GET, without following redirects; (0, reason) if unreachable."""
    try:
        with _direct.open(url, timeout=timeout) as response:
            return response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")
    except (urllib.error.URLError, OSError) as exc:
        return 0, str(exc)


class DaphneProcess(ServerProcess):
    """`python -m daphne -b 127.0.0.1 -p PORT chatsite.asgi:application` with a given environment."""

    def __init__(
        self,
        env: Mapping[str, str],
        port: int | None = None,
        name: str = "a",
        *,
        log_dir: Path | None = None,
        app: str = "chatsite.asgi:application",
        cwd: Path = REPO_ROOT,
        extra_args: Sequence[str] = (),
        start_timeout: float = 30.0,
    ) -> None:
        self.env = dict(env)
        self.name = name
        self._port_fixed = port is not None
        self.port = port if port is not None else free_port()
        self.log_dir = log_dir or Path(tempfile.mkdtemp(prefix="roomchat-daphne-"))
        self.log_path = self.log_dir / f"daphne-{name}.log"
        self.app = app
        self.cwd = cwd
        self.extra_args = list(extra_args)
        self.start_timeout = start_timeout
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self._healthy_once = False

    @property
    def url(self) -> str:
        """http://127.0.0.1:PORT — also the Origin a browser on this server would send."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        """ws://127.0.0.1:PORT"""
        return f"ws://127.0.0.1:{self.port}"

    def start(self) -> DaphneProcess:
        """Start and wait until GET /healthz answers 200; DaphneError with the log tail if not."""
        self.launch()
        self.wait_ready()
        return self

    @staticmethod
    def start_all(*processes: DaphneProcess) -> None:
        """Start several processes at once (they boot in parallel), then wait for each."""
        for process in processes:
            process.launch()
        for process in processes:
            process.wait_ready()

    def launch(self) -> None:
        """Start the process without waiting for it; follow with wait_ready()."""
        if self.running:
            raise DaphneError(f"daphne {self.name} is already running on port {self.port}")
        self._spawn()

    def wait_ready(self) -> None:
        """Wait until GET /healthz answers 200; DaphneError with the log tail if it does not."""
        for _ in range(3):
            if self._wait_healthy():
                self._healthy_once = True
                return
            if self._port_fixed or self._healthy_once or not self._port_taken():
                break
            # Someone took our random port between the check and the bind: move to another one.
            self.port = free_port()
            self._spawn()
        raise DaphneError(
            f"daphne {self.name} exited with code {self.proc and self.proc.returncode} before "
            f"{self.url}/healthz answered 200; log {self.log_path}:\n{self.log_tail()}"
        )

    def ensure_running(self) -> DaphneProcess:
        """Start it again (same port) unless it is running and /healthz answers 200."""
        if self.running and http_status(f"{self.url}/healthz")[0] == 200:
            return self
        self.stop()
        return self.start()

    def terminate(self) -> None:
        """SIGTERM: a graceful shutdown, as Heroku does on a deploy or restart."""
        if self.running and self.proc is not None:
            self.proc.send_signal(signal.SIGTERM)

    def wait(self, timeout: float = 30.0) -> int:
        """Wait for the process to exit and return its exit code; TimeoutError if it does not."""
        if self.proc is None:
            raise DaphneError(f"daphne {self.name} was never started")
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise TimeoutError(f"daphne {self.name} still running after {timeout:g} s") from None

    def kill(self) -> int | None:
        """SIGKILL: the process dies mid-whatever, like a crashed dyno."""
        return self._end(signal.SIGKILL, 10.0)

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM and wait; SIGKILL if it takes longer than `timeout`."""
        return self._end(signal.SIGTERM, timeout)

    def restart(self) -> DaphneProcess:
        """Stop gracefully, then start again on the same port with the same environment."""
        self.stop()
        return self.start()

    def log_text(self) -> str:
        """The whole log of this process object (all its starts)."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 60) -> str:
        """The last `lines` lines of the log."""
        return log_tail(self.log_path, lines)

    def log_size(self) -> int:
        """Current length of the log in bytes, to read only what comes after with `log_since`."""
        try:
            return self.log_path.stat().st_size
        except FileNotFoundError:
            return 0

    def log_since(self, offset: int) -> str:
        """The log written after `offset` (from `log_size()`)."""
        try:
            with self.log_path.open("rb") as log:
                log.seek(offset)
                return log.read().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def __repr__(self) -> str:
        return f"<DaphneProcess {self.name} {self.url} pid={self.pid} running={self.running}>"

    def _argv(self) -> list[str]:
        return [
            python_executable(), "-m", "daphne",
            "-b", "127.0.0.1", "-p", str(self.port),
            *self.extra_args,
            self.app,
        ]  # fmt: skip

    def _spawn(self) -> None:
        self.starts += 1
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **self.env}
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("a") as log:
            log.write(
                f"===== start {self.starts} of daphne {self.name} on port {self.port} =====\n"
            )
        self.proc = spawn(self._argv(), log_path=self.log_path, env=env, cwd=self.cwd)

    def _port_taken(self, lines: int = 20) -> bool:
        return super()._port_taken(lines)

    def _wait_healthy(self) -> bool:
        """True once /healthz answers 200, False if the process exits first."""
        deadline = time.monotonic() + self.start_timeout
        status, body = 0, ""
        while self.running:
            status, body = http_status(f"{self.url}/healthz")
            if status == 200:
                return True
            if time.monotonic() >= deadline:
                self.kill()
                raise DaphneError(
                    f"daphne {self.name}: {self.url}/healthz did not answer 200 within "
                    f"{self.start_timeout:g} s (last: {status} {body[:300]!r}); "
                    f"log {self.log_path}:\n{self.log_tail()}"
                )
            time.sleep(0.05)
        return False


# --- collectstatic -------------------------------------------------------------------------

_STAMP = ".roomchat-tests-collected"


def _static_sources() -> Iterator[Path]:
    """Every file collectstatic may pick up from this repository, plus the pinned packages."""
    yield REPO_ROOT / "requirements.txt"
    yield REPO_ROOT / "chatsite" / "settings.py"
    roots = [REPO_ROOT / "static"]
    for top in ("chatsite", "consumers"):
        roots.extend(p for p in (REPO_ROOT / top).rglob("static") if p.is_dir())
    for root in roots:
        if root.is_dir():
            yield from (p for p in root.rglob("*") if p.is_file())


def _fingerprint() -> str:
    digest = hashlib.sha256()
    for path in sorted(_static_sources()):
        with contextlib.suppress(FileNotFoundError):
            stat = path.stat()
            digest.update(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


@contextlib.contextmanager
def static_lock() -> Iterator[None]:
    """Hold the lock around STATIC_ROOT: several test runs on this machine share it, and any
    `collectstatic` into it (collect_static's, or a test's own) must run alone."""
    name = hashlib.sha256(str(REPO_ROOT).encode()).hexdigest()[:16]
    with (Path(tempfile.gettempdir()) / f"roomchat-collectstatic-{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def collect_static(*, force: bool = False, timeout: float = 300.0) -> Path:
    """Run `manage.py collectstatic --noinput` with DJANGO_DEBUG=0 unless STATIC_ROOT is current.

    Serialised with a file lock: several test runs on this machine share the repository's
    STATIC_ROOT. Returns STATIC_ROOT.
    """
    static_root = REPO_ROOT / "staticfiles"
    with static_lock():
        fingerprint = _fingerprint()
        stamp = static_root / _STAMP
        fresh = (static_root / "staticfiles.json").is_file() and stamp.is_file()
        if not force and fresh and stamp.read_text() == fingerprint:
            return static_root
        env = {**os.environ, "DJANGO_DEBUG": "0"}
        result = subprocess.run(
            [python_executable(), "manage.py", "collectstatic", "--noinput", "-v", "0"],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if result.returncode != 0:
            raise DaphneError(
                f"collectstatic failed ({result.returncode}):\n{result.stderr[-4000:]}"
            )
        stamp.write_text(fingerprint)
    return static_root
