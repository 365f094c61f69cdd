"""Clients that misbehave on purpose (issue 12): a websocket that never reads, made with a raw
TCP socket and a tiny receive buffer, and the memory of a server process."""

from __future__ import annotations

import base64
import json
import os
import socket
import struct
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def rss_bytes(pid: int) -> int:
    """Resident memory of a process (Linux /proc), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


class RssSampler:
    """Samples a process's RSS in a thread every `interval` seconds; `.peak` is the largest."""

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        self.pid = pid
        self.interval = interval
        self.peak = rss_bytes(pid)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.peak = max(self.peak, rss_bytes(self.pid))
            except (OSError, RuntimeError):
                return
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)


def _frame(payload: bytes, opcode: int = 0x1) -> bytes:
    """One masked client frame (RFC 6455 §5.2)."""
    head = bytearray([0x80 | opcode])
    size = len(payload)
    if size < 126:
        head.append(0x80 | size)
    elif size < 2**16:
        head.append(0x80 | 126)
        head += struct.pack("!H", size)
    else:
        head.append(0x80 | 127)
        head += struct.pack("!Q", size)
    mask = os.urandom(4)
    return bytes(head) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


class DeafSocket:
    """A websocket client that sends but never reads: the server's frames pile up for it.

    Only the handshake's answer is read. The receive buffer is made as small as the kernel
    allows, so the backlog stays in the server's memory rather than in our kernel.
    """

    def __init__(self, port: int, path: str, cookies: Mapping[str, str] | str) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.settimeout(10)
        self.sock.connect(("127.0.0.1", port))
        if isinstance(cookies, str):
            cookies = {"sessionid": cookies}
        cookie = "; ".join(f"{k}={v}" for k, v in cookies.items())
        key = base64.b64encode(os.urandom(16)).decode()
        request = (
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            f"Origin: http://127.0.0.1:{port}\r\nCookie: {cookie}\r\n\r\n"
        )
        self.sock.sendall(request.encode())
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = self.sock.recv(1)  # byte by byte: read nothing past the handshake
            if not chunk:
                raise ConnectionError("closed during the handshake")
            answer += chunk
        self.status = int(answer.split(b" ", 2)[1])
        self.sock.settimeout(0.5)

    def send(self, frame: Mapping[str, Any] | str) -> bool:
        """Send one text frame; False once the server has dropped the connection."""
        text = frame if isinstance(frame, str) else json.dumps(frame)
        try:
            self.sock.sendall(_frame(text.encode()))
        except (OSError, TimeoutError):
            return False
        return True

    def dropped(self) -> bool:
        """Whether the server has aborted the connection (a send fails)."""
        return not self.send({"type": "noop"}) or not self.send({"type": "noop"})

    def wait_dropped(self, timeout: float) -> float:
        """Seconds until the server dropped us; TimeoutError if it did not within `timeout`."""
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            if self.dropped():
                return time.monotonic() - start
            time.sleep(0.2)
        raise TimeoutError(f"the server still holds the deaf socket after {timeout:g} s")

    def close(self) -> None:
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        self.sock.close()


def form_post(
    url: str,
    form: Mapping[str, str],
    *,
    cookies: Mapping[str, str],
    source: str = "127.0.0.1",
    timeout: float = 30.0,
) -> tuple[int, str]:
    """POST a form from a chosen loopback address (127.0.0.0/8 is all ours): status, body.

    Sends the Origin and Referer a browser on the page would send (Django's CSRF check).
    """
    import http.client
    import urllib.parse

    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(
        parts.hostname or "127.0.0.1", parts.port, timeout=timeout, source_address=(source, 0)
    )
    origin = f"{parts.scheme}://{parts.netloc}"
    try:
        conn.request(
            "POST",
            parts.path,
            body=urllib.parse.urlencode(form),
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "Cookie": "; ".join(f"{k}={v}" for k, v in cookies.items()),
                "Origin": origin,
                "Referer": url,
            },
        )
        response = conn.getresponse()
        return response.status, response.read().decode(errors="replace")
    finally:
        conn.close()
