"""The websockets this process serves, by room and by user: who to refresh in presence,
rejoin to their groups, resynchronise after an outage, or reach locally."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

log = logging.getLogger(__name__)


class LocalSocket(Protocol):
    """What the process needs of a connected socket (`consumers.room.RoomConsumer`)."""

    conn_id: str
    scope: dict[str, Any]  # the ASGI scope: `scope["user"]` is the signed-in person

    async def send_frame(self, frame: Mapping[str, Any]) -> None: ...
    async def rejoin_group(self) -> None: ...


@dataclass(frozen=True)
class SocketEntry:
    socket: LocalSocket
    room_id: int
    user_id: int
    username: str
    session_key: str | None = None  # the session it was opened with (consumers.session_watch)


class SocketRegistry:
    """This process's connected sockets (added once admitted, removed on disconnect)."""

    def __init__(self) -> None:
        self.entries: dict[str, SocketEntry] = {}  # by conn_id

    def add(
        self,
        socket: LocalSocket,
        room_id: int,
        user_id: int,
        username: str,
        session_key: str | None = None,
    ) -> None:
        self.entries[socket.conn_id] = SocketEntry(socket, room_id, user_id, username, session_key)

    def remove(self, socket: LocalSocket) -> None:
        self.entries.pop(socket.conn_id, None)

    def clear(self) -> None:
        self.entries.clear()

    def __len__(self) -> int:
        return len(self.entries)

    def all(self) -> list[SocketEntry]:
        return list(self.entries.values())

    def in_room(self, room_id: int) -> list[SocketEntry]:
        """This process's sockets of a room."""
        return [e for e in self.entries.values() if e.room_id == room_id]

    def of_user(self, user_id: int) -> list[SocketEntry]:
        """This process's sockets of a person, in any room."""
        return [e for e in self.entries.values() if e.user_id == user_id]

    def rooms(self) -> set[int]:
        """Rooms with at least one socket here."""
        return {e.room_id for e in self.entries.values()}

    def by_room(self) -> dict[int, list[SocketEntry]]:
        grouped: dict[int, list[SocketEntry]] = {}
        for entry in self.entries.values():
            grouped.setdefault(entry.room_id, []).append(entry)
        return grouped

    async def rejoin_all(self) -> None:
        """Add every socket to its room's group again (core layer: memberships live in Redis
        and expire after `group_expiry`; pubsub: in-process, so this is cheap and harmless)."""
        for entry in self.all():
            try:
                await entry.socket.rejoin_group()
            except Exception as exc:
                log.warning("rejoin failed: %s", exc)
