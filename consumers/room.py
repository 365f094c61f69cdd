"""The websocket of one tab in one room (`/ws/rooms/<slug>/`): parse a frame, call one
function, send. What frames do lives in `consumers.actions`; replies in `consumers.reply_runner`;
the Channels overrides in `consumers.base`; the process it belongs to in `consumers.process`."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from typing import Any

from autobahn.exception import Disconnected
from django.conf import settings
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from chatsite.rooms.access import can_enter
from chatsite.rooms.models import Room
from chatsite.usage import live as live_metrics

from . import actions, frame_budget, protocol, socket_limits, transport
from .actions.members import lost_access, site_origin
from .actions.messages import personalize
from .auth import resolve_user
from .base import RoomchatConsumerBase
from .broadcast import room_group
from .current import current_process
from .outlet import Outlet
from .process import RoomchatProcess
from .protocol import FrameError
from .session_watch import session_key, still_signed_in
from .sync_gate import SyncGate

log = logging.getLogger(__name__)


class RoomConsumer(RoomchatConsumerBase):
    """One browser tab connected to a room."""

    room: Room | None = None
    group: str | None = None
    conn_id: str = ""
    dropped = False  # the client stopped reading and its connection was aborted
    sync_gate: SyncGate | None = None  # the pace of this socket's `sync` answers
    flood_closed = 0  # frames received since closing for a flood (0: not closed for one)
    flood: socket_limits.FloodGuard  # this socket's `rate_limited` refusals (4429 past a limit)
    process: RoomchatProcess  # set once admitted: the server process serving this socket
    outlet: Outlet | None = None  # where the process's fan-out writes this socket's room frames

    # Whatever connect or receive raise, the socket closes and disconnect's clean-up runs: an
    # exception escaping to Channels would end the consumer with 1011, a traceback, and no
    # disconnect, leaving a ghost in presence and in the process's registry (issue 12).
    async def websocket_connect(self, message: dict[str, Any]) -> None:
        try:
            await super().websocket_connect(message)
        except Exception as exc:
            await self._failed("connect", exc)

    async def websocket_receive(self, message: dict[str, Any]) -> None:
        try:
            await super().websocket_receive(message)
        except Exception as exc:
            await self._failed("a frame", exc)

    async def _failed(self, what: str, exc: Exception) -> None:
        """Log the failure once, close the socket and clean up now (disconnect may not come)."""
        room = self.room.pk if self.room else "?"
        if isinstance(exc, RedisConnectionError | RedisTimeoutError | OSError | TimeoutError):
            log.warning("%s failed in room %s: %s: %s", what, room, type(exc).__name__, exc)
            code = protocol.CLOSE_TRY_AGAIN
        else:
            log.error("%s failed in room %s", what, room, exc_info=exc)
            code = 1011
        await self.disconnect(code)
        await self.close(code=code)

    async def connect(self) -> None:
        """Called on the handshake: accept, then admit or close with a readable code."""
        # Accept first: closing before accept would turn every refusal into an HTTP 403.
        await self.accept()
        # A bounded number of sockets are admitted at a time: a storm waits its turn here
        # (open, accepted) and a running reply keeps its share of the event loop.
        async with current_process().admission:
            await self._admit()

    async def _admit(self) -> None:
        user = await resolve_user(self.scope)  # after accept: a storm queues, never times out
        if user is None or not user.is_authenticated:
            await self.close(code=protocol.CLOSE_UNAUTHENTICATED)
            return
        slug = self.scope["url_route"]["kwargs"]["slug"]
        # One read for every tab that asked before it began (a crowd opening the room at once).
        room = await current_process().rooms_by_slug.get(slug)
        if room is None:
            await self.close(code=protocol.CLOSE_NO_ROOM)
            return
        if not can_enter(user, room):
            await self.close(code=protocol.CLOSE_FORBIDDEN)
            return
        if not frame_budget.may_connect(user.pk):  # reconnecting in a loop (issue 12)
            await self.close(code=protocol.CLOSE_TOO_MANY)
            return
        self.conn_id = uuid.uuid4().hex
        refusal = await socket_limits.admit(user.pk, self.conn_id)  # CHAT_MAX_SOCKETS_PER_USER
        if refusal is not None:
            await self.close(code=refusal)
            return
        self.flood = socket_limits.FloodGuard()
        self.process = current_process()
        # Room frames reach this socket through the process's fan-out (consumers/fanout.py),
        # held back until its snapshot is sent: joined before the snapshot is read, so no
        # frame falls between the two.
        outlet = Outlet(
            self.base_send,
            user.username,
            settings.WS_MAX_BACKLOG_BYTES,
            str(room.pk),
            self.dispatch,
        )
        try:
            await self.process.fanout.join(room.pk, outlet)
        except Exception as exc:
            log.warning("cannot join room %s's group: %s", room.pk, exc)
            await self.close(code=protocol.CLOSE_TRY_AGAIN)
            return
        self.outlet = outlet
        self.group = room_group(room.pk)
        self.room = room
        self.process.sockets.add(self, room.pk, user.pk, user.username, session_key(self.scope))
        live_metrics.sockets.opened()  # roomchat_websockets_open (chatsite.usage.live)
        # The room's part is read once for every tab that asked before the read began.
        shared = await self.process.snapshots.get(room.pk)
        await self.send_frame(await personalize(shared, room.pk, user))
        outlet.release()
        users = await self.process.presence.join(room.pk, self.conn_id, user.username)
        await self.send_frame(protocol.presence(users))

    async def disconnect(self, code: int) -> None:
        """Called when the socket closes: leave the group and the presence list.

        Runs at most once per socket, each step whatever the others do (see `_failed`).
        """
        if self.sync_gate is not None:
            self.sync_gate.close()
        user = self.scope.get("user")
        if self.conn_id and user is not None:
            await socket_limits.release(user.pk, self.conn_id)
        room, self.room = self.room, None
        if room is None:
            return
        self.process.sockets.remove(self)
        live_metrics.sockets.closed()
        self.group = None
        outlet, self.outlet = self.outlet, None
        if outlet is not None:
            self.process.fanout.leave(room.pk, outlet)
        try:
            await self.process.presence.leave(room.pk, self.conn_id)
        except Exception as exc:  # Redis down: the entry expires with this process's refresh
            log.info("presence leave in room %s failed: %s", room.pk, exc)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """Called for every client frame: refused frames get an `error` and change nothing."""
        if self.room is None:
            return
        if self.flood_closed:  # closed for flooding: what it still sends costs nothing more
            self.flood_closed += 1
            if self.flood_closed == frame_budget.ABORT_AFTER:
                transport.abort(self.base_send)  # still sending: cut the connection
            return
        try:
            frame_budget.spend(self.scope["user"].pk)  # per person and process (issue 12)
            frame = protocol.parse_frame(text_data, bytes_data, max_text=settings.CHAT_MAX_TEXT)
            await self.handle(frame)
        except FrameError as exc:
            live_metrics.count_refusal(exc.code)  # roomchat_refusals_total
            await self.send_frame(exc.frame())
            if self.flood.refused(exc.code):  # kept flooding after `rate_limited`: 4429
                self.flood_closed = 1
                await self.close(code=protocol.CLOSE_TOO_MANY)

    async def handle(self, frame: protocol.ClientFrame) -> None:
        """Run the frame's action (consumers.actions); the room may come back refreshed."""
        assert self.room is not None
        ctx = actions.ActionContext(
            room=self.room,
            user=self.scope["user"],
            reply=self.send_frame,
            conn_id=self.conn_id,
            origin=site_origin(self.scope),
        )
        if isinstance(frame, protocol.Sync):
            # Paced per socket and per user; extras fold into one owed snapshot (sync_gate.py).
            if self.sync_gate is None:
                self.sync_gate = SyncGate(ctx.user.pk)
            await self.sync_gate.request(lambda: actions.dispatch(ctx, frame))
            return
        if isinstance(frame, protocol.SendMessage) and not await still_signed_in(self, ctx.user.pk):
            # Signed out, password changed or deactivated since the handshake (SPEC §6).
            await self.close(code=protocol.CLOSE_UNAUTHENTICATED)
            return
        await actions.dispatch(ctx, frame)
        self.room = ctx.room

    async def room_access(self, event: dict[str, Any]) -> None:
        """Called when the room's members or privacy changed (actions/members.py): a socket
        whose user may no longer enter closes with 4403."""
        if self.room is not None and await lost_access(self.scope["user"], self.room.pk, event):
            await self.close(code=protocol.CLOSE_FORBIDDEN)

    def _client_stalled(self) -> bool:
        """Whether this client stopped reading; if so its connection is aborted (once).

        Under daphne `send` never blocks: Twisted buffers what the client does not read, so a
        stalled client costs memory, not other tabs' latency. Past WS_MAX_BACKLOG_BYTES we
        drop it: the browser reconnects and a snapshot catches it up, cheaper than queueing.
        """
        if self.dropped:
            return True
        backlog = transport.outbound_backlog(self.base_send)
        if backlog is None or backlog <= settings.WS_MAX_BACKLOG_BYTES:
            return False
        self.dropped = True
        log.warning(
            "closing a websocket in room %s: its client is not reading (%s bytes waiting)",
            self.room.pk if self.room else "?",
            backlog,
        )
        transport.abort(self.base_send)
        return True

    async def send_frame(self, frame: Mapping[str, Any]) -> None:
        await self.send(text_data=protocol.encode(frame))

    async def send(
        self, text_data: str | None = None, bytes_data: bytes | None = None, close: bool = False
    ) -> None:
        """Every frame to this client: none to a client that stopped reading (its connection
        is aborted at WS_MAX_BACKLOG_BYTES), none and no traceback once the socket is gone."""
        if self._client_stalled():
            return
        try:
            await super().send(text_data=text_data, bytes_data=bytes_data, close=close)
        except Disconnected:  # autobahn: "Attempt to send on a closed protocol"
            self.dropped = True

    async def close(self, code: int | bool | None = None, reason: str | None = None) -> None:
        if self.dropped:
            return
        try:
            await super().close(code=code, reason=reason)
        except Disconnected:
            self.dropped = True

    async def rejoin_group(self) -> None:
        """Join the room's group again: after Redis lost it, or before it expires (core layer).

        `consumers.recovery` sends the snapshot that heals what was missed meanwhile.
        """
        if self.outlet is None or self.room is None:
            return
        await self.process.fanout.rejoin_room(self.room.pk)  # once per room, not per socket
