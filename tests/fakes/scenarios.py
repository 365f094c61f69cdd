"""Scenarios for the fake model APIs and the threaded HTTP server that plays them back."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import re
import select
import signal
import socket
import socketserver
import sys
import threading
import urllib.request
import uuid
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType, TracebackType
from typing import Any, Literal, Protocol, Self, TypeAlias, get_args
from urllib.parse import urlsplit

log = logging.getLogger(__name__)

JSONDict: TypeAlias = dict[str, Any]
Then: TypeAlias = Literal["stop", "error", "cut", "stall", "truncate"]

THEN_VALUES: tuple[str, ...] = get_args(Then)
MARKER = re.compile(r"\[\[fake:([\w.-]+)\]\]")
# How often blocked handlers look at the stop flag and the client's socket.
POLL_INTERVAL = 0.02
QUOTE_LIMIT = 60
LOREM = ["lorem", "ipsum", "dolor", "sit", "amet", "consectetur", "adipiscing", "elit"]


# --- Scenarios ----------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    """A streamed answer: text chunks, pacing, usage, and how the stream ends."""

    chunks: list[str] | None = None
    delay: float = 0.01
    stop_reason: str = "end_turn"
    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0
    then: Then = "stop"
    after: int | None = None
    error_type: str = "overloaded_error"
    first_delay: float = 0.0

    def __post_init__(self) -> None:
        if self.then not in THEN_VALUES:
            raise ValueError(f"Reply.then must be one of {THEN_VALUES}, not {self.then!r}")
        if self.delay < 0 or self.first_delay < 0:
            raise ValueError("Reply delays must not be negative")
        if self.after is not None and self.after < 0:
            raise ValueError("Reply.after must not be negative")

    def resolve_chunks(self, body: JSONDict | None) -> list[str]:
        """The chunks this reply streams for a request, before `after` cuts them short."""
        if self.chunks is not None:
            return list(self.chunks)
        return default_chunks(newest_user_text(body))

    def chunks_to_send(self, body: JSONDict | None) -> list[str]:
        """The chunks actually streamed: the first `after` ones, or all of them."""
        chunks = self.resolve_chunks(body)
        return chunks if self.after is None else chunks[: self.after]


@dataclass(frozen=True)
class Fail:
    """An HTTP error answered before any stream starts."""

    status: int
    # None: each fake picks the type its real API uses for `status`.
    error_type: str | None = None
    message: str = "Fake failure injected by the test"
    retry_after: float | None = None
    # OpenAI-style `error.code`; None lets the OpenAI fake pick one. Unused by the Anthropic fake.
    code: str | None = None


Scenario: TypeAlias = Reply | Fail


def scenario_from_json(data: Mapping[str, Any]) -> Scenario:
    """Builds a scenario from its JSON form, `{"kind": "reply" | "fail", ...fields}`."""
    fields = dict(data)
    kind = fields.pop("kind", None)
    cls: type[Reply | Fail]
    if kind == "reply":
        cls = Reply
    elif kind == "fail":
        cls = Fail
    else:
        raise ValueError(f'scenario "kind" must be "reply" or "fail", not {kind!r}')
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(fields) - known)
    if unknown:
        raise ValueError(f"unknown {kind} fields: {unknown}")
    return cls(**fields)


def scenario_to_json(scenario: Scenario) -> JSONDict:
    """The JSON form of a scenario, as accepted by `POST /_fake/queue`."""
    kind = "reply" if isinstance(scenario, Reply) else "fail"
    return {"kind": kind, **dataclasses.asdict(scenario)}


def standard_named() -> dict[str, Scenario]:
    """The `[[fake:NAME]]` scenarios every fake starts with, handy in browser-driven tests."""
    return {
        "slow": Reply(delay=0.25),
        "error": Reply(then="error", after=2),
        "cut": Reply(then="cut", after=2),
        "stall": Reply(then="stall", after=2),
        "truncate": Reply(then="truncate", after=2),
        "max_tokens": Reply(stop_reason="max_tokens"),
        "rate_limit": Fail(429, retry_after=1),
        "overloaded": Fail(529),
        "server_error": Fail(500),
    }


# --- Reading requests ---------------------------------------------------------


def content_text(content: object) -> str:
    """The text in a message's content: a string, or text blocks (nested in tool results too)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(text for block in content if (text := content_text(block)))
    if isinstance(content, dict):
        value = content.get("text")
        return value if isinstance(value, str) else content_text(content.get("content"))
    return ""


def _messages(body: JSONDict | None) -> list[JSONDict]:
    """The request's messages that are JSON objects."""
    messages = body.get("messages") if body else None
    if not isinstance(messages, list):
        return []
    return [m for m in messages if isinstance(m, dict)]


def newest_user_text(body: JSONDict | None) -> str:
    """The text of the last `user` message in a chat request, or "" when there is none."""
    for message in reversed(_messages(body)):
        if message.get("role") == "user":
            return content_text(message.get("content"))
    return ""


def find_marker(text: str) -> str | None:
    """The NAME in the first `[[fake:NAME]]` marker of a text, if any."""
    match = MARKER.search(text)
    return match.group(1) if match else None


def default_chunks(user_text: str) -> list[str]:
    """The deterministic reply to a message: it quotes the first 60 characters back."""
    quoted = user_text.strip()[:QUOTE_LIMIT] or "(nothing)"
    return ["You said: ", quoted, ". ", "Here ", "is ", "a ", "reply", "."]


def word_chunks(count: int) -> list[str]:
    """`count` deterministic one-word chunks ending in a full stop, for long replies."""
    words = [LOREM[i % len(LOREM)] + " " for i in range(count)]
    if words:
        words[-1] = words[-1].strip() + "."
    return words


@dataclass(frozen=True)
class RecordedRequest:
    """A request a fake received; headers have lowercase names."""

    method: str
    path: str
    headers: dict[str, str]
    body: JSONDict | None
    scenario_name: str | None
    query: str = ""

    def to_json(self) -> JSONDict:
        """The request as JSON, as served by `GET /_fake/requests`."""
        return dataclasses.asdict(self)


# --- HTTP plumbing ------------------------------------------------------------


class Aborted(Exception):
    """Raised inside a handler to drop the connection without finishing the response."""


class Exchange:
    """One HTTP request being answered: what was asked, and the means to answer it."""

    def __init__(self, handler: _Handler, raw_body: bytes, request_id_header: str) -> None:
        self._handler = handler
        self._stopping = handler.server.stopping
        url = urlsplit(handler.path)
        self.method = handler.command
        self.path = url.path
        self.query = url.query
        self.headers = _lowercase_headers(handler)
        self.raw_body = raw_body
        self.body = _parse_json_object(raw_body)
        self.request_id = f"req_{uuid.uuid4().hex[:24]}"
        self._request_id_header = request_id_header

    def send_json(
        self, status: int, payload: object, headers: Mapping[str, str] | None = None
    ) -> None:
        """Answers with a complete JSON response."""
        data = json.dumps(payload).encode()
        self._send_head(status, {"content-type": "application/json", **(headers or {})})
        self._handler.send_header("content-length", str(len(data)))
        self._handler.end_headers()
        self._send(data)

    def begin_stream(self, content_type: str) -> None:
        """Starts a 200 response whose body follows in chunks (Transfer-Encoding: chunked)."""
        self._send_head(200, {"content-type": content_type, "cache-control": "no-cache"})
        self._handler.send_header("transfer-encoding", "chunked")
        self._handler.end_headers()

    def write(self, data: bytes) -> None:
        """Sends one body chunk at once."""
        if data:
            self._send(b"%x\r\n%s\r\n" % (len(data), data))

    def end_stream(self) -> None:
        """Ends the body cleanly with the terminating chunk."""
        self._send(b"0\r\n\r\n")

    def pause(self, seconds: float) -> None:
        """Sleeps, unless the fake stops first: then the connection is dropped."""
        stopped = self._stopping.wait(seconds) if seconds > 0 else self._stopping.is_set()
        if stopped:
            raise Aborted

    def cut(self) -> None:
        """Closes the TCP connection now, leaving the response body incomplete."""
        self._handler.close_connection = True
        _shutdown(self._handler.connection)

    def stall(self) -> None:
        """Sends nothing more until the client hangs up or the fake stops, then closes."""
        while not self._stopping.wait(POLL_INTERVAL):
            if _peer_closed(self._handler.connection):
                break
        self.cut()

    def _send_head(self, status: int, headers: Mapping[str, str]) -> None:
        self._handler.send_response(status)
        self._handler.send_header(self._request_id_header, self.request_id)
        for name, value in headers.items():
            self._handler.send_header(name, value)

    def _send(self, data: bytes) -> None:
        try:
            self._handler.wfile.write(data)
        except OSError as err:
            raise Aborted from err


def _lowercase_headers(handler: BaseHTTPRequestHandler) -> dict[str, str]:
    """The request headers with lowercase names; repeated headers are joined with ", "."""
    headers: dict[str, str] = {}
    for name, value in handler.headers.items():
        key = name.lower()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    return headers


def _parse_json_object(raw: bytes) -> JSONDict | None:
    """The body as a JSON object, or None when it is empty or anything else."""
    try:
        parsed = json.loads(raw) if raw else None
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None


def _peer_closed(sock: socket.socket) -> bool:
    """Whether the client has closed its end of the connection."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
        return bool(readable) and sock.recv(1, socket.MSG_PEEK) == b""
    except OSError:
        return True


class _Handler(BaseHTTPRequestHandler):
    """Hands every request to the owning fake; one instance per connection."""

    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        super().setup()
        # Small SSE frames must leave at once, not wait for Nagle to batch them.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.track(self.connection)

    def finish(self) -> None:
        self.server.untrack(self.connection)
        try:
            super().finish()
        except OSError:
            pass  # The connection was cut on purpose or by the client.

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def do_PATCH(self) -> None:
        self._dispatch()

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.server.fake.__class__.__name__, *args)

    def _dispatch(self) -> None:
        try:
            raw_body = self._read_body()
            exchange = Exchange(self, raw_body, self.server.fake.request_id_header)
            self.server.fake.handle(exchange)
        except (Aborted, OSError):
            self.close_connection = True

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("transfer-encoding", "").lower():
            return self._read_chunked_body()
        length = int(self.headers.get("content-length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _read_chunked_body(self) -> bytes:
        parts: list[bytes] = []
        while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
            parts.append(self.rfile.read(size))
            self.rfile.readline()
        while self.rfile.readline().strip():
            pass  # Trailer fields: nothing to keep.
        return b"".join(parts)


class _Server(ThreadingHTTPServer):
    """The listening socket of one fake run, and the connections it has open."""

    daemon_threads = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], fake: FakeServer) -> None:
        self.fake = fake
        self.stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host name, which can hang without DNS.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def track(self, connection: socket.socket) -> None:
        """Remembers an open connection so that `close_connections` can reach it."""
        with self._connections_lock:
            self._connections.add(connection)
            # Accepted while stopping, after close_connections took its snapshot: shut it here,
            # or its handler would wait for a request forever and server_close() joins it.
            if self.stopping.is_set():
                _shutdown(connection)

    def untrack(self, connection: socket.socket) -> None:
        """Forgets a connection that its handler is done with."""
        with self._connections_lock:
            self._connections.discard(connection)

    def close_connections(self) -> None:
        """Shuts every open connection, waking handlers blocked reading from idle clients."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            _shutdown(connection)

    def handle_error(self, request: Any, client_address: Any) -> None:
        name = type(self.fake).__name__
        if isinstance(sys.exc_info()[1], OSError):
            # Clients hang up mid-request all the time; that is not the fake's failure.
            log.debug("%s lost the connection to %s", name, client_address, exc_info=True)
        else:
            log.exception("%s failed on a request from %s", name, client_address)


def _shutdown(connection: socket.socket) -> None:
    """Shuts both directions of a connection, waking any thread blocked on it."""
    try:
        connection.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # Already closed.


# --- The fake server ----------------------------------------------------------


class StreamFrames(Protocol):
    """How one API spells the parts of a streamed reply on the wire."""

    content_type: str

    def opening(self) -> list[bytes]:
        """Frames sent before the first text chunk."""
        ...

    def delta(self, text: str) -> bytes:
        """The frame carrying one text chunk."""
        ...

    def closing(self, sent: int) -> list[bytes]:
        """Frames that end a complete reply after `sent` chunks."""
        ...

    def error(self) -> bytes:
        """The frame reporting an error in the middle of the stream."""
        ...


class FakeServer:
    """A loopback HTTP server in a background thread that answers with queued scenarios."""

    request_id_header = "request-id"

    def __init__(
        self,
        port: int = 0,
        *,
        host: str = "127.0.0.1",
        default: Scenario | None = None,
        named: Mapping[str, Scenario] | None = None,
        api_key: str | None = None,
    ) -> None:
        self.host = host
        self.port = port
        # Accept any non-empty Bearer token, or only this one.
        self.api_key = api_key
        self._initial_default: Scenario = default if default is not None else Reply()
        self._initial_named = dict(standard_named() if named is None else named)
        self.named: dict[str, Scenario] = dict(self._initial_named)
        self._default = self._initial_default
        self._queue: deque[Scenario] = deque()
        self._requests: list[RecordedRequest] = []
        self._changed = threading.Condition()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        # Real tokens per token of Claude's published tokenizer (a newer model's tokenizer).
        self.token_scale = 1.0
        # Refuse requests whose input plus max_tokens exceed this, as the real APIs do.
        self.context_window: int | None = None

    # Lifecycle

    def start(self) -> Self:
        """Starts listening; `base_url` is valid from now on."""
        if self._server is not None:
            raise RuntimeError(f"{type(self).__name__} is already running")
        self._server = _Server((self.host, self.port), self)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"{type(self).__name__}:{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stops listening and drops every open connection, stalled streams included."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        server.stopping.set()
        server.shutdown()
        server.close_connections()
        server.server_close()
        thread.join()
        self._server = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """The root URL of the running fake, such as "http://127.0.0.1:PORT"."""
        if self._server is None:
            raise RuntimeError(f"{type(self).__name__} is not running")
        return f"http://{self.host}:{self.port}"

    # Scripting

    def queue(self, *scenarios: Scenario) -> None:
        """Appends scenarios; each answers one later API request, in order."""
        with self._changed:
            self._queue.extend(scenarios)

    @property
    def queued(self) -> list[Scenario]:
        """The scenarios not yet consumed."""
        with self._changed:
            return list(self._queue)

    @property
    def default(self) -> Scenario:
        """The scenario used when no marker matches and the queue is empty."""
        with self._changed:
            return self._default

    @default.setter
    def default(self, scenario: Scenario) -> None:
        with self._changed:
            self._default = scenario

    def reset(self) -> None:
        """Forgets queued scenarios and requests; restores the default and named scenarios."""
        with self._changed:
            self._queue.clear()
            self._requests.clear()
            self._default = self._initial_default
            self.named.clear()
            self.named.update(self._initial_named)
            self.token_scale = 1.0
            self.context_window = None

    def count_input_tokens(self, body: JSONDict | None) -> int:
        """The request's input tokens as this fake's model counts them (tests/fakes/tokens.py)."""
        from .tokens import count_request

        return round(count_request(body) * self.token_scale)

    def over_window(self, body: JSONDict | None) -> tuple[int, int, int] | None:
        """(input tokens, max_tokens, window) when the request does not fit the window."""
        if self.context_window is None or not body:
            return None
        limit = body.get("max_tokens", body.get("max_completion_tokens", 0))
        max_tokens = limit if isinstance(limit, int) else 0
        tokens = self.count_input_tokens(body)
        if tokens + max_tokens <= self.context_window:
            return None
        return tokens, max_tokens, self.context_window

    def refused_over_window(self, exchange: Exchange) -> bool:
        """Answers a request over the window with the API's own refusal; True if it did."""
        too_long = self.over_window(exchange.body)
        if too_long is None:
            return False
        self.record(exchange, "over_window")
        self.send_fail(exchange, self.window_refusal(*too_long))
        return True

    def window_refusal(self, tokens: int, max_tokens: int, window: int) -> Fail:
        """The API's error for a request of `tokens` + `max_tokens` over `window`."""
        raise NotImplementedError

    # Inspection

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of the API requests received so far, oldest first."""
        with self._changed:
            return list(self._requests)

    def wait_for_requests(self, count: int, timeout: float = 10.0) -> list[RecordedRequest]:
        """Blocks until at least `count` requests have arrived; raises TimeoutError otherwise."""
        with self._changed:
            if not self._changed.wait_for(lambda: len(self._requests) >= count, timeout):
                raise TimeoutError(
                    f"{type(self).__name__} got {len(self._requests)} requests, not {count}, "
                    f"within {timeout} s"
                )
            return list(self._requests)

    async def await_requests(self, count: int, timeout: float = 10.0) -> list[RecordedRequest]:
        """`wait_for_requests` for async code: waits in a thread so the event loop runs on."""
        import asyncio

        return await asyncio.to_thread(self.wait_for_requests, count, timeout)

    # Answering requests (called from handler threads)

    def handle(self, exchange: Exchange) -> None:
        """Answers one request: a control endpoint or the fake API."""
        if exchange.path.startswith("/_fake/"):
            self._handle_control(exchange)
        elif not self._authorized(exchange):
            self.record(exchange, None)
            self.send_fail(exchange, Fail(401, message="Invalid bearer token."))
        else:
            self.handle_api(exchange)

    def handle_api(self, exchange: Exchange) -> None:
        """Answers an authorized request to the fake API."""
        raise NotImplementedError

    def send_fail(self, exchange: Exchange, fail: Fail) -> None:
        """Answers with an HTTP error in the API's own error format."""
        raise NotImplementedError

    def record(self, exchange: Exchange, scenario_name: str | None) -> None:
        """Records a request that no scenario answers."""
        with self._changed:
            self._append(exchange, scenario_name)

    def choose(self, exchange: Exchange) -> Scenario:
        """Picks and records the scenario for a request: marker, else queue head, else default."""
        marker = find_marker(newest_user_text(exchange.body))
        with self._changed:
            scenario: Scenario
            if marker is not None and marker in self.named:
                scenario, name = self.named[marker], marker
            elif self._queue:
                scenario, name = self._queue.popleft(), "queue"
            else:
                scenario, name = self._default, "default"
            self._append(exchange, name)
        return scenario

    def play_stream(self, exchange: Exchange, reply: Reply, frames: StreamFrames) -> None:
        """Streams a reply: opening frames, paced text chunks, then the chosen ending."""
        chunks = reply.chunks_to_send(exchange.body)
        exchange.begin_stream(frames.content_type)
        for frame in frames.opening():
            exchange.write(frame)
        exchange.pause(reply.first_delay)
        for index, text in enumerate(chunks):
            if index:
                exchange.pause(reply.delay)
            exchange.write(frames.delta(text))
        self._end_stream(exchange, reply, frames, len(chunks))

    def prepare_whole(self, exchange: Exchange, reply: Reply) -> list[str] | None:
        """The chunks of a non-streamed reply, or None when its ending already answered."""
        exchange.pause(reply.first_delay)
        if reply.then == "cut":
            exchange.cut()
        elif reply.then == "stall":
            exchange.stall()
        elif reply.then == "error":
            status = 529 if reply.error_type == "overloaded_error" else 500
            self.send_fail(exchange, Fail(status, reply.error_type, "Fake error"))
        else:
            return reply.chunks_to_send(exchange.body)
        return None

    def _end_stream(
        self, exchange: Exchange, reply: Reply, frames: StreamFrames, sent: int
    ) -> None:
        if reply.then == "cut":
            exchange.cut()
        elif reply.then == "stall":
            exchange.stall()
        else:
            if reply.then == "stop":
                for frame in frames.closing(sent):
                    exchange.write(frame)
            elif reply.then == "error":
                exchange.write(frames.error())
            exchange.end_stream()  # "truncate" ends here, before any closing frames.

    def _append(self, exchange: Exchange, scenario_name: str | None) -> None:
        self._requests.append(
            RecordedRequest(
                method=exchange.method,
                path=exchange.path,
                headers=exchange.headers,
                body=exchange.body,
                scenario_name=scenario_name,
                query=exchange.query,
            )
        )
        self._changed.notify_all()

    def _authorized(self, exchange: Exchange) -> bool:
        scheme, _, token = exchange.headers.get("authorization", "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return False
        return self.api_key is None or token == self.api_key

    def _handle_control(self, exchange: Exchange) -> None:
        route = (exchange.method, exchange.path)
        if route == ("GET", "/_fake/requests"):
            exchange.send_json(200, [r.to_json() for r in self.requests])
        elif route == ("POST", "/_fake/queue"):
            self._control_queue(exchange)
        elif route == ("POST", "/_fake/reset"):
            self.reset()
            exchange.send_json(200, {"reset": True})
        else:
            exchange.send_json(
                404, {"error": f"no control endpoint {exchange.method} {exchange.path}"}
            )

    def _control_queue(self, exchange: Exchange) -> None:
        try:
            scenarios = _scenarios_from_body(exchange.raw_body)
        except (TypeError, ValueError) as err:
            exchange.send_json(400, {"error": str(err)})
            return
        self.queue(*scenarios)
        exchange.send_json(200, {"queued": len(scenarios)})


def _scenarios_from_body(raw: bytes) -> list[Scenario]:
    """The scenarios in a `POST /_fake/queue` body: one JSON scenario or a list of them."""
    parsed: object = json.loads(raw) if raw else None
    items = parsed if isinstance(parsed, list) else [parsed]
    scenarios: list[Scenario] = []
    for item in items:
        if not isinstance(item, dict):
            raise TypeError("expected a scenario object or a list of them")
        scenarios.append(scenario_from_json(item))
    return scenarios


# --- Remote control and the command line --------------------------------------


def queue_remote(base_url: str, *scenarios: Scenario, timeout: float = 5.0) -> None:
    """Queues scenarios on a fake running in another process."""
    data = json.dumps([scenario_to_json(s) for s in scenarios]).encode()
    request = urllib.request.Request(
        f"{base_url}/_fake/queue",
        data=data,
        headers={"content-type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        response.read()


def remote_requests(base_url: str, timeout: float = 5.0) -> list[JSONDict]:
    """The requests recorded by a fake running in another process, as JSON."""
    with urllib.request.urlopen(f"{base_url}/_fake/requests", timeout=timeout) as response:
        requests: list[JSONDict] = json.loads(response.read())
    return requests


def run_cli(
    fake_type: Callable[..., FakeServer],
    *,
    prog: str,
    default_port: int,
    argv: Sequence[str] | None,
) -> int:
    """Serves a fake until interrupted, as `python -m tests.fakes.<module>`."""
    parser = argparse.ArgumentParser(prog=prog, description=f"Serve {prog} until killed.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=default_port, help="0 picks a free port")
    parser.add_argument("--delay", type=float, default=0.01, help="seconds between chunks")
    parser.add_argument("--words", type=int, default=None, help="reply with N words")
    args = parser.parse_args(argv)
    chunks = word_chunks(args.words) if args.words is not None else None
    fake = fake_type(args.port, host=args.host, default=Reply(chunks=chunks, delay=args.delay))
    done = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        done.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    with fake:
        print(f"{prog} listening on {fake.base_url}", flush=True)
        # A timed wait lets the signal handlers run promptly.
        while not done.wait(0.5):
            pass
    return 0
