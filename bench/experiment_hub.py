"""`--experiment hub`: the prototype of the local fan-out (bench/proto_fanout.py) patched into the
app as committed in cd3c9ed (RoomConsumer.connect/disconnect, the pubsub layer's group_send).
Only to measure the design before it goes into consumers/; see bench/REPORT.md."""

from __future__ import annotations

import uuid
from typing import Any

from bench.proto_fanout import Outlet, room_fanout


def install() -> None:
    from channels.db import database_sync_to_async
    from channels_redis.pubsub import RedisPubSubLoopLayer
    from django.conf import settings

    from chatsite.rooms import selectors
    from chatsite.rooms.access import can_enter
    from consumers import chat, lifecycle, presence, protocol
    from consumers.broadcast import BROADCAST_EVENT
    from consumers.room import RoomConsumer

    original_group_send = RedisPubSubLoopLayer.group_send

    async def group_send(self: Any, group: str, message: dict[str, Any]) -> None:
        if message.get("type") == BROADCAST_EVENT and group.startswith("room."):
            message = {**message, "room": int(group[5:])}
        await original_group_send(self, group, message)

    async def connect(self: RoomConsumer) -> None:
        await self.accept()
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=protocol.CLOSE_UNAUTHENTICATED)
            return
        slug = self.scope["url_route"]["kwargs"]["slug"]
        room = await database_sync_to_async(selectors.room_by_slug)(slug)
        if room is None:
            await self.close(code=protocol.CLOSE_NO_ROOM)
            return
        if not can_enter(user, room):
            await self.close(code=protocol.CLOSE_FORBIDDEN)
            return
        self.conn_id = uuid.uuid4().hex
        outlet = Outlet(self.base_send, user.username, settings.WS_MAX_BACKLOG_BYTES, str(room.pk))
        try:
            await room_fanout().join(room.pk, outlet)
        except Exception:
            await self.close(code=protocol.CLOSE_TRY_AGAIN)
            return
        self.outlet = outlet
        self.room = room
        lifecycle.track(self, room.pk, user.username)
        await self.send_frame(await chat.snapshot(room.pk, user.username))
        outlet.release()
        users = await presence.join(room.pk, self.conn_id, user.username)
        await self.send_frame(protocol.presence(users))

    async def disconnect(self: RoomConsumer, code: int) -> None:
        if self.room is None:
            return
        lifecycle.untrack(self)
        outlet = getattr(self, "outlet", None)
        if outlet is not None:
            room_fanout().leave(self.room.pk, outlet)
        await presence.leave(self.room.pk, self.conn_id)

    async def rejoin_group(self: RoomConsumer) -> None:
        await room_fanout().rejoin()

    RedisPubSubLoopLayer.group_send = group_send  # type: ignore[method-assign]
    RoomConsumer.connect = connect  # type: ignore[method-assign]
    RoomConsumer.disconnect = disconnect  # type: ignore[method-assign]
    RoomConsumer.rejoin_group = rejoin_group  # type: ignore[method-assign]


from chatsite.asgi import application as chatsite_application  # noqa: E402

install()
application = chatsite_application
