"""CPU time and memory of processes, from /proc (Linux), sampled while a benchmark runs."""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of `pid` (all its threads), or None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name may contain spaces: fields start after the closing parenthesis.
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def runqueue_wait_seconds(pid: int) -> float | None:
    """Seconds the threads of `pid` spent runnable but waiting for a CPU (schedstat), or None.

    Threads that already ended are not counted. A process that waits long for a CPU is
    starved by the machine, not idle: its CPU % alone would hide that.
    """
    total = 0
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return None
    for task in tasks:
        try:
            total += int((task / "schedstat").read_text().split()[1])
        except (OSError, IndexError, ValueError):
            continue
    return total / 1e9


def rss_mib(pid: int) -> float | None:
    """Resident memory of `pid` in MiB, or None if it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


@dataclass
class ProcessUsage:
    """What one process used between `start()` and `stop()`."""

    name: str
    pid: int
    cpu_start: float | None = None
    cpu_end: float | None = None
    rss_peak_mib: float = 0.0
    rss_end_mib: float | None = None
    wait_start: float | None = None
    wait_end: float | None = None

    def cpu_percent(self, wall: float) -> float | None:
        if self.cpu_start is None or self.cpu_end is None or wall <= 0:
            return None
        return 100 * (self.cpu_end - self.cpu_start) / wall

    def wait_percent(self, wall: float) -> float | None:
        """Time runnable but not running, in % of the window (summed over threads)."""
        if self.wait_start is None or self.wait_end is None or wall <= 0:
            return None
        return 100 * (self.wait_end - self.wait_start) / wall


@dataclass
class Sampler:
    """Samples RSS every `interval` seconds in a thread; CPU is read at start and stop."""

    processes: list[ProcessUsage]
    interval: float = 0.25
    started_at: float = 0.0
    stopped_at: float = 0.0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self.started_at = time.monotonic()
        for proc in self.processes:
            proc.cpu_start = cpu_seconds(proc.pid)
            proc.wait_start = runqueue_wait_seconds(proc.pid)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def stop(self) -> float:
        """Stop sampling; returns the wall-clock seconds sampled."""
        for proc in self.processes:
            proc.cpu_end = cpu_seconds(proc.pid)
            proc.wait_end = runqueue_wait_seconds(proc.pid)
            proc.rss_end_mib = rss_mib(proc.pid)
        self.stopped_at = time.monotonic()
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        return self.stopped_at - self.started_at

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            for proc in self.processes:
                rss = rss_mib(proc.pid)
                if rss is not None:
                    proc.rss_peak_mib = max(proc.rss_peak_mib, rss)
