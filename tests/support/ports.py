"""Free TCP ports on 127.0.0.1 for the servers the tests start."""

from __future__ import annotations

import errno
import random
import socket
import threading
from pathlib import Path

# Ports handed out by this process: never hand the same one out twice, even once it is free again.
_issued: set[int] = set()
_lock = threading.Lock()


def _ephemeral_range() -> tuple[int, int]:
    """The kernel's range for outgoing connections' local ports."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def _can_bind(port: int) -> bool:
    """Whether 127.0.0.1:port is free right now (no listener, no lingering socket)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # No SO_REUSEADDR: stricter than the servers, so a port in TIME_WAIT counts as taken.
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


def free_port() -> int:
    """A port on 127.0.0.1 that nothing uses now and this process has not handed out before."""
    low, _ = _ephemeral_range()
    # Below the ephemeral range, so an outgoing connection cannot grab it before the server binds.
    first, last = (15000, low - 1) if low > 16000 else (1024, 65535)
    with _lock:
        for _ in range(1000):
            port = random.randint(first, last)
            if port not in _issued and _can_bind(port):
                _issued.add(port)
                return port
    raise RuntimeError(f"no free port found in {first}..{last}")
