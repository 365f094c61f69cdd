"""A paced Anthropic Messages API stub for the fan-out benchmark.

`POST /v1/messages` with `"stream": true` answers with the SSE frames of the real API (the same
bytes as `tests/fakes/anthropic_api.py`: `message_start`, `content_block_start`, `ping`, one
`content_block_delta` per token, `content_block_stop`, `message_delta`, `message_stop`), one token
every 1/rate seconds on an absolute schedule (no drift). Each token's text embeds the moment it
was written to the socket, so a client that receives it can compute emit-to-screen latency:

    " <index>@<microseconds since --epoch>"     e.g. " 17@5231044"

Standalone: `python -m bench.model_stub --port 8765 --tokens 500 --rate 100 --epoch 1732250000`.
It is a single asyncio process so that the benchmark can measure its CPU apart from the servers.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import signal
import time
import uuid
from typing import Any

TOKEN_RE = re.compile(r" (\d+)@(\d+)")
READY_LINE = "MODEL-STUB READY"
WARMUP_MARK = "[warmup]"  # a prompt with this gets a short reply (warms a server's code paths)
WARMUP_TOKENS = 20
# A prompt with this gets one token, " req@<µs since epoch>": when the request's head arrived.
# The client that sent `message.send` reads the server's overhead before the upstream request.
ARRIVAL_MARK = "[arrival]"
ARRIVAL_RE = re.compile(r" req@(\d+)")
# A prompt may set its reply's length and pace: "tokens=300 rate=60" (else the stub's defaults).
PACE_RE = re.compile(r"tokens=(\d+) rate=(\d+(?:\.\d+)?)")


def token_text(index: int, epoch: float) -> str:
    """The text of token `index`, stamped with the current wall-clock time."""
    return f" {index}@{int((time.time() - epoch) * 1_000_000)}"


def parse_tokens(text: str, epoch: float) -> list[tuple[int, float]]:
    """(index, emission time as epoch seconds) of every stamped token in `text`."""
    return [(int(m[1]), epoch + int(m[2]) / 1_000_000) for m in TOKEN_RE.finditer(text)]


def arrival_time(text: str, epoch: float) -> float | None:
    """The request-arrival stamp of an `ARRIVAL_MARK` reply, as epoch seconds."""
    match = ARRIVAL_RE.search(text)
    return epoch + int(match[1]) / 1_000_000 if match else None


def newest_user_text(body: dict[str, Any]) -> str:
    """The text of the last user turn of a Messages API request body."""
    for message in reversed(body.get("messages") or []):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                return content
            if isinstance(content, list):
                return "".join(
                    block.get("text", "") for block in content if isinstance(block, dict)
                )
    return ""


def sse(event: str, data: dict[str, Any]) -> bytes:
    """One SSE frame: an `event:` line, a `data:` line, and a blank line (as the real API)."""
    payload = json.dumps(data, separators=(",", ":"))
    return f"event: {event}\ndata: {payload}\n\n".encode()


def chunk(data: bytes) -> bytes:
    """One HTTP/1.1 chunk of a `Transfer-Encoding: chunked` body."""
    return b"%x\r\n%s\r\n" % (len(data), data)


class Stub:
    """Serves the Messages API until stopped; counts what it streamed."""

    def __init__(self, tokens: int, rate: float, epoch: float) -> None:
        self.tokens = tokens
        self.rate = rate
        self.epoch = epoch
        self.streams = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:  # keep-alive: the SDK reuses its connection
                head = await reader.readuntil(b"\r\n\r\n")
                arrived = time.time()
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                headers = {}
                for line in lines[1:]:
                    if ":" in line:
                        name, value = line.split(":", 1)
                        headers[name.strip().lower()] = value.strip()
                body = await self._read_body(reader, headers)
                await self._answer(writer, method, path.split("?", 1)[0], body, arrived)
        except (asyncio.IncompleteReadError, ConnectionError, ValueError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    @staticmethod
    async def _read_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
        if "chunked" in headers.get("transfer-encoding", "").lower():
            parts: list[bytes] = []
            while True:
                size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                data = await reader.readexactly(size + 2)
                if size == 0:
                    return b"".join(parts)
                parts.append(data[:-2])
        return await reader.readexactly(int(headers.get("content-length", "0")))

    async def _answer(
        self,
        writer: asyncio.StreamWriter,
        method: str,
        path: str,
        raw: bytes,
        arrived: float,
    ) -> None:
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            body = {}
        model = body.get("model", "claude-bench") if isinstance(body, dict) else "claude-bench"
        if method == "POST" and path == "/v1/messages/count_tokens":
            self._send_json(writer, 200, {"input_tokens": 10})
        elif method == "POST" and path == "/v1/messages" and body.get("stream"):
            prompt = newest_user_text(body)
            pace = PACE_RE.search(prompt)
            tokens = int(pace[1]) if pace else self.tokens
            rate = float(pace[2]) if pace else self.rate
            if ARRIVAL_MARK in prompt:
                stamp = f" req@{int((arrived - self.epoch) * 1_000_000)}"
                await self._stream(writer, model, 1, rate, fixed=stamp)
            else:
                await self._stream(
                    writer, model, WARMUP_TOKENS if WARMUP_MARK in prompt else tokens, rate
                )
        elif method == "POST" and path == "/v1/messages":
            # Not streamed (e.g. a background summary): a short whole message.
            self._send_json(writer, 200, self._message(model, "summary", "end_turn", 1))
        else:
            error = {"type": "not_found_error", "message": f"no route {method} {path}"}
            self._send_json(writer, 404, {"type": "error", "error": error})
        await writer.drain()

    @staticmethod
    def _message(model: str, text: str, stop_reason: str | None, output: int) -> dict[str, Any]:
        return {
            "id": f"msg_{uuid.uuid4().hex[:24]}",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [{"type": "text", "text": text}] if text else [],
            "stop_reason": stop_reason,
            "stop_sequence": None,
            "usage": {
                "input_tokens": 10,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
                "output_tokens": output,
            },
        }

    @staticmethod
    def _send_json(writer: asyncio.StreamWriter, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        writer.write(
            f"HTTP/1.1 {status} X\r\ncontent-type: application/json\r\n"
            f"request-id: req_{uuid.uuid4().hex[:24]}\r\n"
            f"content-length: {len(data)}\r\n\r\n".encode()
            + data
        )

    async def _stream(
        self,
        writer: asyncio.StreamWriter,
        model: str,
        tokens: int,
        rate: float,
        fixed: str | None = None,
    ) -> None:
        self.streams += 1
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream; charset=utf-8\r\n"
            b"cache-control: no-cache\r\n"
            + f"request-id: req_{uuid.uuid4().hex[:24]}\r\n".encode()
            + b"transfer-encoding: chunked\r\n\r\n"
        )
        start = self._message(model, "", None, 1)
        block = {"type": "text", "text": ""}
        for frame in (
            sse("message_start", {"type": "message_start", "message": start}),
            sse(
                "content_block_start",
                {"type": "content_block_start", "index": 0, "content_block": block},
            ),
            sse("ping", {"type": "ping"}),
        ):
            writer.write(chunk(frame))
        await writer.drain()
        loop = asyncio.get_running_loop()
        began = loop.time()
        for index in range(tokens):
            wait = began + index / rate - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            text = fixed if fixed is not None else token_text(index, self.epoch)
            delta = {"type": "text_delta", "text": text}
            writer.write(
                chunk(
                    sse(
                        "content_block_delta",
                        {"type": "content_block_delta", "index": 0, "delta": delta},
                    )
                )
            )
            await writer.drain()
        usage = {
            "input_tokens": 10,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "output_tokens": tokens,
        }
        for frame in (
            sse("content_block_stop", {"type": "content_block_stop", "index": 0}),
            sse(
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                    "usage": usage,
                },
            ),
            sse("message_stop", {"type": "message_stop"}),
        ):
            writer.write(chunk(frame))
        writer.write(b"0\r\n\r\n")


async def serve(port: int, stub: Stub) -> None:
    server = await asyncio.start_server(stub.handle, "127.0.0.1", port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(READY_LINE, flush=True)
    async with server:
        await stop.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.model_stub", description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--tokens", type=int, default=500, help="tokens per streamed reply")
    parser.add_argument("--rate", type=float, default=100.0, help="tokens per second")
    parser.add_argument("--epoch", type=float, default=None, help="time origin of the stamps")
    args = parser.parse_args(argv)
    epoch = args.epoch if args.epoch is not None else float(int(time.time()))
    asyncio.run(serve(args.port, Stub(args.tokens, args.rate, epoch)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
