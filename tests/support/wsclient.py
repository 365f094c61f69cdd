"""An asyncio websocket client for /ws/rooms/<slug>/ that records every frame (SPEC §6)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Final

from websockets.asyncio.client import ClientConnection, connect
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.typing import Origin

Frame = dict[str, Any]
Where = Callable[[Frame], bool]


class SameOrigin:
    """Type of SAME_ORIGIN: "send the Origin of the server's own pages"."""


SAME_ORIGIN: Final = SameOrigin()
_MISSING: Final = object()


class HandshakeRejected(Exception):
    """The server refused the websocket upgrade with an HTTP status (e.g. 403 for a bad Origin)."""

    def __init__(self, url: str, status: int, headers: Headers, body: bytes) -> None:
        super().__init__(f"{url}: handshake refused with HTTP {status}: {body[:200]!r}")
        self.url = url
        self.status = status
        self.headers = headers
        self.body = body


class SocketClosed(AssertionError):
    """The socket closed before the awaited frame arrived."""


def _describe(frames: list[Frame], start: int) -> str:
    """A short list of received frames for failure messages."""
    parts = []
    for index, frame in enumerate(frames[start:], start):
        extra = {k: frame[k] for k in ("message_id", "seq", "status", "code") if k in frame}
        parts.append(f"#{index} {frame.get('type')} {extra or ''}".rstrip())
    shown = parts[-40:]
    more = f"(+{len(parts) - len(shown)} earlier) " if len(parts) > len(shown) else ""
    return more + ("; ".join(shown) or "nothing")


def _matches(
    frame: Frame, type_: str | None, where: Where | None, fields: Mapping[str, Any]
) -> bool:
    if type_ is not None and frame.get("type") != type_:
        return False
    if any(frame.get(key, _MISSING) != value for key, value in fields.items()):
        return False
    return where is None or where(frame)


def origin_for(ws_base_url: str) -> str:
    """The Origin a page served by that server would send: ws://h:p → http://h:p."""
    scheme, rest = ws_base_url.rstrip("/").split("://", 1)
    host = rest.split("/", 1)[0]
    return f"{'https' if scheme == 'wss' else 'http'}://{host}"


class RoomSocket:
    """One open websocket; a background task appends each decoded JSON frame to `frames`."""

    def __init__(self, url: str, conn: ClientConnection) -> None:
        self.url = url
        self.conn = conn
        self.frames: list[Frame] = []
        self.times: list[float] = []  # time.monotonic() at receipt, parallel to frames
        self.bad_frames: list[str | bytes] = []  # binary, not JSON, or JSON without a type
        self.cursor = 0  # wait_for() searches from here by default
        self._arrived = asyncio.Event()
        self._reader = asyncio.create_task(self._read(), name=f"RoomSocket reader {url}")

    # --- opening -------------------------------------------------------------------------

    @classmethod
    async def connect(
        cls,
        ws_base_url: str,
        slug: str,
        cookie: str | Mapping[str, str] | None = None,
        origin: str | SameOrigin | None = SAME_ORIGIN,
        *,
        headers: Mapping[str, str] | None = None,
        open_timeout: float = 10.0,
    ) -> RoomSocket:
        """Open ws_base_url/ws/rooms/<slug>/.

        `cookie`: a sessionid value, or a dict of cookies (e.g. from http_login), or None.
        `origin`: by default the server's own http origin; None sends no Origin header.
        Raises HandshakeRejected (with `.status`) when the server answers the upgrade with HTTP.
        """
        url = f"{ws_base_url.rstrip('/')}/ws/rooms/{slug}/"
        if isinstance(origin, SameOrigin):
            origin = origin_for(ws_base_url)
        return await cls.open(
            url,
            cookie=cookie,
            origin=origin,
            headers=headers,
            open_timeout=open_timeout,
        )

    @classmethod
    async def open(
        cls,
        url: str,
        *,
        cookie: str | Mapping[str, str] | None = None,
        origin: str | None = None,
        headers: Mapping[str, str] | None = None,
        open_timeout: float = 10.0,
    ) -> RoomSocket:
        """Open any websocket URL on the server (for paths other than a room's)."""
        all_headers = dict(headers or {})
        if isinstance(cookie, str):
            all_headers["Cookie"] = f"sessionid={cookie}"
        elif cookie:
            all_headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in cookie.items())
        try:
            conn = await connect(
                url,
                origin=Origin(origin) if origin is not None else None,
                additional_headers=all_headers,
                user_agent_header="roomchat-tests",
                proxy=None,  # loopback only; never through a proxy from the environment
                open_timeout=open_timeout,
                max_size=2**24,  # a snapshot holds 50 messages of up to CHAT_MAX_TEXT each
            )
        except InvalidStatus as exc:
            response = exc.response
            raise HandshakeRejected(
                url, response.status_code, response.headers, bytes(response.body)
            ) from None
        return cls(url, conn)

    # --- sending ---------------------------------------------------------------------------

    async def send(self, frame: Mapping[str, Any]) -> None:
        """Send one JSON text frame."""
        await self.conn.send(json.dumps(frame))

    async def send_raw(self, data: str | bytes) -> None:
        """Send exactly this text (or, for bytes, a binary frame)."""
        await self.conn.send(data)

    # --- receiving -------------------------------------------------------------------------

    async def _read(self) -> None:
        try:
            async for message in self.conn:
                self._record(message)
        except ConnectionClosed:
            pass  # the close code is on self.conn; waiters are told below
        finally:
            self._arrived.set()

    def _record(self, message: str | bytes) -> None:
        try:
            frame = json.loads(message) if isinstance(message, str) else None
        except ValueError:
            frame = None
        if isinstance(frame, dict) and isinstance(frame.get("type"), str):
            self.frames.append(frame)
            self.times.append(time.monotonic())
        else:
            self.bad_frames.append(message)
        # Wake every waiter; each re-checks the frames and takes a fresh event to wait on.
        self._arrived.set()
        self._arrived = asyncio.Event()

    @property
    def closed(self) -> bool:
        """Whether the connection has ended (the reader saw the close)."""
        return self._reader.done()

    @property
    def close_code(self) -> int | None:
        """The close code the server sent (1006 if the connection just dropped), None while open."""
        return self.conn.close_code if self.closed else None

    @property
    def close_reason(self) -> str | None:
        """The close reason the server sent, None while open."""
        return self.conn.close_reason if self.closed else None

    def mark(self) -> int:
        """The index the next frame will get: pass it as `since=` to look only at later frames."""
        return len(self.frames)

    async def next_frame_after(self, index: int, deadline: float) -> bool:
        """Wait until frames[index] exists (True) or the socket closed without it (False).

        `deadline` is in loop.time(); TimeoutError when it passes.
        """
        loop = asyncio.get_running_loop()
        while len(self.frames) <= index:
            if self.closed:
                return False
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError
            event = self._arrived
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), remaining)
        return True

    async def settle(self, quiet: float = 0.6, timeout: float = 10.0) -> None:
        """Wait until no frame has arrived for `quiet` seconds (e.g. presence announcements of
        both processes after people joined); TimeoutError if frames keep coming."""
        loop = asyncio.get_running_loop()
        give_up = loop.time() + timeout
        while True:
            try:
                await self.next_frame_after(self.mark(), min(loop.time() + quiet, give_up))
            except TimeoutError:
                if loop.time() >= give_up:
                    raise
                return
            if self.closed:
                return

    def find(
        self,
        type_: str | None = None,
        /,
        *,
        since: int = 0,
        where: Where | None = None,
        **fields: Any,
    ) -> list[Frame]:
        """Frames received so far (from index `since`) of that type with those field values."""
        return [f for f in self.frames[since:] if _matches(f, type_, where, fields)]

    def types(self, since: int = 0) -> list[str]:
        """The `type` of each frame received from index `since`."""
        return [f["type"] for f in self.frames[since:]]

    async def wait_for(
        self,
        type_: str | None,
        /,
        timeout: float = 15.0,
        *,
        since: int | None = None,
        where: Where | None = None,
        **fields: Any,
    ) -> Frame:
        """The first frame at index >= `since` (default: the cursor) of that type whose fields equal
        the given values and for which `where(frame)` holds; waits for it if it has not arrived.

        Frames that arrived before the call are searched too, so nothing can be missed. The cursor
        moves past the returned frame, so consecutive calls read the stream in order.
        """
        start = self.cursor if since is None else since
        deadline = asyncio.get_running_loop().time() + timeout
        index = start
        while True:
            try:
                present = await self.next_frame_after(index, deadline)
            except TimeoutError:
                raise TimeoutError(
                    f"no {type_ or 'matching'} frame {fields or ''} within {timeout:g} s on {self.url}; "
                    f"since #{start}: {_describe(self.frames, start)}; bad frames: {self.bad_frames[-5:]}"
                ) from None
            if not present:
                raise SocketClosed(
                    f"{self.url} closed with {self.close_code} {self.close_reason!r} before a "
                    f"{type_ or 'matching'} frame {fields or ''}; since #{start}: {_describe(self.frames, start)}"
                )
            if _matches(self.frames[index], type_, where, fields):
                self.cursor = max(self.cursor, index + 1)
                return self.frames[index]
            index += 1

    async def expect_silence(
        self,
        seconds: float,
        type_: str | None = None,
        /,
        *,
        since: int | None = None,
        where: Where | None = None,
        **fields: Any,
    ) -> None:
        """Assert that no such frame arrives within `seconds` (for "sends no frame" rules)."""
        start = self.mark() if since is None else since
        deadline = asyncio.get_running_loop().time() + seconds
        with contextlib.suppress(TimeoutError):
            while await self.next_frame_after(self.mark(), deadline):
                pass
        unexpected = self.find(type_, since=start, where=where, **fields)
        assert not unexpected, f"expected no {type_ or 'frame'} {fields or ''}, got {unexpected}"

    async def wait_closed(self, timeout: float = 10.0) -> int:
        """Wait until the server closes the socket; returns the close code."""
        try:
            await asyncio.wait_for(asyncio.shield(self._reader), timeout)
        except TimeoutError:
            raise TimeoutError(
                f"{self.url} still open after {timeout:g} s; frames: {_describe(self.frames, 0)}"
            ) from None
        code = self.close_code
        assert code is not None
        return code

    async def close(self, code: int = 1000) -> None:
        """Close from our side and stop the reader."""
        await self.conn.close(code)
        with contextlib.suppress(TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(asyncio.shield(self._reader), 10)
        if not self._reader.done():
            self._reader.cancel()

    async def __aenter__(self) -> RoomSocket:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"<RoomSocket {self.url} frames={len(self.frames)} close_code={self.close_code}>"


# --- one reply, as a tab following SPEC §6 "Guarantees" assembles it ----------------------------


@dataclass
class ReplyView:
    """One reply's text built from snapshots and live deltas, counting every anomaly.

    A snapshot's `generation` (seq, text) is the base; live deltas with seq <= base are dropped;
    a delta beyond the next expected seq is a gap (the tab should `sync`); a seq received twice is
    a duplicate. Live deltas are all kept, so a later snapshot can heal a gap.
    """

    message_id: int | None = None  # None: follow the first reply seen
    base_seq: int = 0
    base_text: str = ""
    live: dict[int, str] = field(default_factory=dict)
    gaps: int = 0  # times the stream jumped over a seq (or went backwards)
    duplicates: list[int] = field(default_factory=list)
    dropped: int = 0  # live deltas already covered by a snapshot: expected, not an error
    mismatches: list[str] = field(default_factory=list)  # snapshot text disagreeing with deltas
    snapshots: int = 0
    syncs_sent: int = 0
    silence_syncs: int = 0
    awaiting_snapshot: bool = False
    finished: Frame | None = None
    stored: Frame | None = None  # our message as a later snapshot listed it

    @property
    def seq(self) -> int:
        """The last seq of the contiguous text."""
        seq = self.base_seq
        while seq + 1 in self.live:
            seq += 1
        return seq

    @property
    def text(self) -> str:
        """The contiguous text: the base, then live deltas base+1 .. seq."""
        return self.base_text + "".join(
            self.live[s] for s in range(self.base_seq + 1, self.seq + 1)
        )

    @property
    def has_hole(self) -> bool:
        """Whether a delta arrived that cannot be joined yet."""
        return any(s > self.seq for s in self.live)

    def feed(self, frame: Frame) -> bool:
        """Apply one frame; True when a new gap appeared and the tab should send `sync`."""
        kind = frame.get("type")
        if kind == "room.snapshot":
            return self._apply_snapshot(frame)
        if self.message_id is None and kind in (
            "generation.started",
            "generation.delta",
        ):
            self.message_id = frame["message_id"]
        if frame.get("message_id") != self.message_id:
            return False
        if kind == "generation.delta":
            return self._apply_delta(int(frame["seq"]), str(frame["text"]))
        if kind == "generation.finished":
            self.finished = frame
        return False

    def _apply_delta(self, seq: int, text: str) -> bool:
        if seq in self.live:
            self.duplicates.append(seq)
            return False
        had_hole = self.has_hole
        expected = max([self.base_seq, *self.live]) + 1
        self.live[seq] = text
        if seq <= self.base_seq:
            self.dropped += 1
            return False
        if seq != expected and not had_hole:
            self.gaps += 1
        if self.has_hole and not self.awaiting_snapshot:
            self.awaiting_snapshot = True
            return True
        return False

    def _apply_snapshot(self, frame: Frame) -> bool:
        self.snapshots += 1
        self.awaiting_snapshot = False
        generation = frame.get("generation")
        if self.message_id is None and generation:
            self.message_id = generation["message_id"]
        if generation and generation["message_id"] == self.message_id:
            self._rebase(int(generation["seq"]), str(generation["text"]))
        for message in frame.get("messages") or []:
            if message.get("id") == self.message_id:
                self.stored = message
        if self.has_hole:
            self.awaiting_snapshot = True
            return True
        return False

    def _rebase(self, seq: int, text: str) -> None:
        if seq < self.base_seq:
            # The server's reply only grows: an older snapshot than one already applied is a bug.
            self.mismatches.append(f"snapshot seq {seq} after a snapshot with seq {self.base_seq}")
            return
        # Up to what we hold, the snapshot must equal our text; beyond it, extend it.
        known = self._text_up_to(seq) if seq <= self.seq else self.text
        if not (text == known if seq <= self.seq else text.startswith(known)):
            self.mismatches.append(f"snapshot seq {seq} text {text!r} vs deltas {known!r}")
        self.base_seq, self.base_text = seq, text

    def _text_up_to(self, seq: int) -> str:
        """Our text for seq 1..seq, for base_seq <= seq <= self.seq."""
        return self.base_text + "".join(self.live[s] for s in range(self.base_seq + 1, seq + 1))

    def check(self, *, allow_gaps: bool = False) -> str:
        """Assert the SPEC §6 guarantees for this reply; returns `finished.text`."""
        assert self.finished is not None, f"reply {self.message_id} has no generation.finished"
        assert not self.duplicates, f"reply {self.message_id}: duplicate seqs {self.duplicates}"
        assert not self.mismatches, f"reply {self.message_id}: {self.mismatches}"
        final = str(self.finished["text"])
        if allow_gaps:
            assert final.startswith(self.text), (
                f"deltas {self.text!r} are not a prefix of {final!r}"
            )
        else:
            assert self.gaps == 0, (
                f"reply {self.message_id}: {self.gaps} gap(s) in seq {sorted(self.live)}"
            )
            assert self.text == final, f"deltas joined {self.text!r} != finished.text {final!r}"
        return final


async def follow_reply(
    sock: RoomSocket,
    message_id: int | None = None,
    *,
    since: int = 0,
    timeout: float = 30.0,
    heal: bool = True,
    silence_sync: float | None = 15.0,
) -> ReplyView:
    """Follow one reply on `sock` until its generation.finished, as the SPEC §6 client does.

    Reads frames from index `since` (0: include the connect snapshot). With `heal`, sends `sync`
    on a gap; with `silence_sync`, also after that many seconds without a frame while it runs.
    Call `.check()` on the result to assert the guarantees.
    """
    loop = asyncio.get_running_loop()
    view = ReplyView(message_id)
    deadline = loop.time() + timeout
    index = since
    while view.finished is None:
        quiet_until = (
            deadline if silence_sync is None else min(deadline, loop.time() + silence_sync)
        )
        try:
            present = await sock.next_frame_after(index, quiet_until)
        except TimeoutError:
            if loop.time() >= deadline:
                raise TimeoutError(
                    f"reply {view.message_id} not finished within {timeout:g} s: seq {view.seq}, "
                    f"gaps {view.gaps}; frames since #{since}: {_describe(sock.frames, since)}"
                ) from None
            if view.message_id is not None:  # a reply runs and nothing came: ask for a snapshot
                view.silence_syncs += 1
                await sock.send({"type": "sync"})
            continue
        if not present:
            raise SocketClosed(
                f"{sock.url} closed with {sock.close_code} while following reply {view.message_id}"
            )
        if view.feed(sock.frames[index]) and heal:
            view.syncs_sent += 1
            await sock.send({"type": "sync"})
        index += 1
    sock.cursor = max(sock.cursor, index)
    return view
