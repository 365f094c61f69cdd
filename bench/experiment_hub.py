"""`--experiment hub`: the prototype of the local fan-out (bench/proto_fanout.py) patched into the
app as committed in cd3c9ed (RoomConsumer.connect/disconnect, the pubsub layer's group_send).
Only to measure the design before it goes into consumers/; see bench/REPORT.md."""

from __future__ import annotations

import itertools
import json
import os
import time
import uuid
from typing import Any

from bench.proto_fanout import Outlet, room_fanout
from bench.proto_reads import FreshReads


def install() -> None:
    import channels.auth
    from channels.db import database_sync_to_async
    from django.conf import settings

    from chatsite.rooms import selectors
    from chatsite.rooms.access import can_enter
    from consumers import chat, lifecycle, presence, protocol
    from consumers.room import RoomConsumer

    trace_path = os.environ.get("BENCH_CONNECT_TRACE")
    original_get_user = channels.auth.get_user

    async def get_user(scope: dict) -> object:
        t0 = time.perf_counter()
        user = await original_get_user(scope)
        scope["bench_user_ms"] = (time.perf_counter() - t0) * 1000
        return user

    if os.environ.get("BENCH_USER_THREADS") == "1":
        from channels.db import DatabaseSyncToAsync

        # Read-only: off the process's one database thread, on the default executor.
        original_get_user = DatabaseSyncToAsync(channels.auth.get_user.func, thread_sensitive=False)
        channels.auth.get_user = original_get_user
    if trace_path:
        channels.auth.get_user = get_user

    coalesce = os.environ.get("BENCH_COALESCE", "1") == "1"
    rooms_by_slug: FreshReads[str, Any] = FreshReads(database_sync_to_async(selectors.room_by_slug))

    async def shared_snapshot(room_id: int) -> dict[str, Any]:
        return await chat.snapshot(room_id, "")

    snapshots: FreshReads[int, dict[str, Any]] = FreshReads(shared_snapshot)

    async def room_for(slug: str) -> Any:
        if coalesce:
            return await rooms_by_slug.get(slug)
        return await database_sync_to_async(selectors.room_by_slug)(slug)

    async def snapshot_for(room_id: int, username: str) -> dict[str, Any]:
        if coalesce:
            return {**(await snapshots.get(room_id)), "user": {"username": username}}
        return await chat.snapshot(room_id, username)

    async def connect(self: RoomConsumer) -> None:
        marks = [("start", time.perf_counter())]
        try:
            await traced_connect(self, marks)
        finally:
            if trace_path and len(marks) > 2:
                phases = {
                    b[0]: round((b[1] - a[1]) * 1000, 2) for a, b in itertools.pairwise(marks)
                }
                phases["user"] = round(self.scope.get("bench_user_ms", 0.0), 2)
                phases["total"] = round((marks[-1][1] - marks[0][1]) * 1000, 2)
                with open(trace_path, "a") as out:
                    out.write(json.dumps(phases) + "\n")

    async def traced_connect(self: RoomConsumer, marks: list) -> None:
        def mark(name: str) -> None:
            marks.append((name, time.perf_counter()))

        await self.accept()
        mark("accept")
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=protocol.CLOSE_UNAUTHENTICATED)
            return
        slug = self.scope["url_route"]["kwargs"]["slug"]
        room = await room_for(slug)
        mark("room")
        if room is None:
            await self.close(code=protocol.CLOSE_NO_ROOM)
            return
        if not can_enter(user, room):
            await self.close(code=protocol.CLOSE_FORBIDDEN)
            return
        self.conn_id = uuid.uuid4().hex
        outlet = Outlet(
            self.base_send,
            user.username,
            settings.WS_MAX_BACKLOG_BYTES,
            str(room.pk),
            on_event=self.dispatch,
        )
        try:
            await room_fanout().join(room.pk, outlet)
        except Exception:
            await self.close(code=protocol.CLOSE_TRY_AGAIN)
            return
        mark("group")
        self.outlet = outlet
        self.room = room
        lifecycle.track(self, room.pk, user.username)
        frame = await snapshot_for(room.pk, user.username)
        mark("snapshot")
        await self.send_frame(frame)
        outlet.release()
        mark("send")
        users = await presence.join(room.pk, self.conn_id, user.username)
        mark("presence")
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

    RoomConsumer.connect = connect  # type: ignore[method-assign]
    RoomConsumer.disconnect = disconnect  # type: ignore[method-assign]
    RoomConsumer.rejoin_group = rejoin_group  # type: ignore[method-assign]


from chatsite.asgi import application as chatsite_application  # noqa: E402

install()
application = chatsite_application
