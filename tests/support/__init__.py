"""Helpers for tests that run real processes: servers, sockets, sign-in (see the modules)."""

from __future__ import annotations

import contextlib
import ctypes
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Self, TypeVar

T = TypeVar("T")

# Repository root: the directory holding manage.py, chatsite/ and tests/.
REPO_ROOT = Path(__file__).resolve().parents[2]

_PR_SET_PDEATHSIG = 1
_prctl: Callable[..., int] | None
try:
    # Looked up now: after fork, with other threads running, the child must not dlopen anything.
    _prctl = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):  # not Linux
    _prctl = None


def _die_with_parent() -> None:
    """In the child before exec: get SIGTERM when the test process dies, even by SIGKILL."""
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def spawn(
    argv: Sequence[str],
    *,
    log_path: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path,
) -> subprocess.Popen[bytes]:
    """Start a server process with stdout and stderr appended to `log_path`."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    # The death signal follows the creating *thread*, so only ask for it from the main one.
    on_main_thread = threading.current_thread() is threading.main_thread()
    with log_path.open("ab") as log:
        return subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=dict(env) if env is not None else None,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            # Own session: a Ctrl-C in the terminal reaches pytest, whose fixtures stop it in order.
            start_new_session=True,
            preexec_fn=_die_with_parent if on_main_thread else None,
        )


def end_process(proc: subprocess.Popen[bytes], sig: signal.Signals, timeout: float) -> int:
    """Send `sig` and wait; SIGKILL if it outlives `timeout`. Returns the exit code."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
    return proc.wait()


class ServerProcess:
    """What the server processes the tests start share: the Popen of the latest start, its log."""

    proc: subprocess.Popen[bytes] | None
    log_path: Path

    def start(self) -> Self:
        """Start and wait until it serves."""
        raise NotImplementedError

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM and wait; SIGKILL if it takes longer than `timeout`. The exit code."""
        raise NotImplementedError

    def close(self) -> None:
        """Stop it for good (and remove what it made)."""
        self.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def running(self) -> bool:
        """Whether the process is alive."""
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int | None:
        """The process id of the latest start."""
        return self.proc.pid if self.proc is not None else None

    def _end(self, sig: signal.Signals, timeout: float) -> int | None:
        """`end_process` for the latest start (None if never started): its exit code."""
        if self.proc is None:
            return None
        return end_process(self.proc, sig, timeout)

    def _port_taken(self, lines: int = 60) -> bool:
        """Whether the log's last `lines` lines say another process holds the port."""
        return "Address already in use" in log_tail(self.log_path, lines)


def log_tail(path: Path, lines: int = 60) -> str:
    """The last `lines` lines of a log file, or a note that there is none."""
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:])


def wait_until(
    probe: Callable[[], T | None],
    *,
    timeout: float,
    interval: float = 0.02,
    what: str = "condition",
) -> T:
    """Poll `probe` until it returns something truthy and return that; TimeoutError after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


def python_executable() -> str:
    """The interpreter running the tests (the project's virtualenv)."""
    return sys.executable or os.fspath(REPO_ROOT / ".venv" / "bin" / "python")


def unique_name(prefix: str) -> str:
    """`prefix` plus a random suffix, valid as a room slug and a username: `room-3f9a1c2b`."""
    return f"{prefix}-{secrets.token_hex(4)}"
