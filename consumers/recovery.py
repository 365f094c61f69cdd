"""Redis going away, coming back, or coming back empty (a restart), noticed every few seconds
and recovered from: locks and live text re-taken, groups rejoined, and every socket of this
process resynchronised once the channel layer carries frames again. docs/operations.md tells
each failure from the outside."""

from __future__ import annotations

import logging
import time

from .actions.messages import personalize, room_snapshot
from .layer_probe import LayerProbe
from .presence import RoomPresence
from .reply_runner import ReplyRunner
from .sockets import SocketRegistry
from .state import RedisStore

log = logging.getLogger(__name__)

LAYER_PROBE_TIMEOUT = 15.0  # how long recovery waits for the channel layer to carry a frame


class RedisRecovery:
    """Watches one process's Redis (`watch`) and rebuilds what an outage or restart lost."""

    def __init__(
        self,
        store: RedisStore,
        runner: ReplyRunner,
        sockets: SocketRegistry,
        presence: RoomPresence,
    ) -> None:
        self.store = store
        self.runner = runner
        self.sockets = sockets
        self.presence = presence
        self.run_id: str | None = None  # Redis's INFO run_ids: a new one means a restart
        self.down_since: float | None = None  # monotonic; None while Redis answers
        self.probe = LayerProbe()

    async def watch(self) -> None:
        """Notice Redis going away, coming back, or coming back empty (a restart), and recover.

        A restart (INFO run_id changes) lost every key: locks, live replies, presence and, with
        the core channel layer, group memberships. An outage without a restart lost only the
        frames published meanwhile. Either way every socket gets a fresh snapshot once the
        channel layer carries frames again, so no tab is left behind silently.
        """
        try:
            run_id = await self.store.server_ids()  # every server's: any one may restart
        except Exception as exc:
            if self.down_since is None:
                self.down_since = time.monotonic()
                log.error(
                    "Redis is unreachable (%s: %s): live frames, presence and new replies wait "
                    "for it; sockets stay open",
                    type(exc).__name__,
                    exc,
                )
            return
        previous, self.run_id = self.run_id, run_id
        down_since, self.down_since = self.down_since, None
        restarted = previous is not None and previous != run_id
        if down_since is not None:
            log.warning(
                "Redis answers again after %.1f s%s",
                time.monotonic() - down_since,
                " (it restarted and lost its data)" if restarted else "",
            )
        elif restarted:
            log.warning("Redis restarted (run_id changed) and lost its data")
        if restarted or down_since is not None:
            await self.recover()

    async def recover(self) -> None:
        """Rebuild what Redis lost, then resynchronise every socket of this process.

        The same steps after a restart (Redis is empty) and after an outage (frames were lost,
        and one longer than ROOM_LOCK_TTL let the locks expire).
        """
        started = time.monotonic()
        # Locks first: a restart lost them, and a long outage let them expire; until they are
        # back another process could start a second reply in a room, or reap a live one.
        await self.runner.reassert()
        await self.sockets.rejoin_all()
        # The pubsub layer resubscribes on its own about a second after Redis is back; until
        # then frames are lost, so snapshots sent earlier could miss some.
        if not await self.probe.round_trip(LAYER_PROBE_TIMEOUT):
            log.error("the channel layer does not carry frames yet; sockets resync later")
            self.down_since = self.down_since or time.monotonic()
            return
        await self.resync_all()
        await self.presence.refresh(self.sockets, announce=True)
        log.warning(
            "recovered from the Redis outage in %.1f s: %s sockets resynchronised",
            time.monotonic() - started,
            len(self.sockets),
        )

    async def resync_all(self) -> None:
        """Send every socket a fresh snapshot: one database read per room, not per socket."""
        for room_id, entries in self.sockets.by_room().items():
            try:
                frame = await room_snapshot(room_id)
            except Exception as exc:
                log.warning("room %s not resynchronised: %s", room_id, exc)
                continue
            for entry in entries:
                try:
                    user = entry.socket.scope["user"]
                    await entry.socket.send_frame(await personalize(frame, room_id, user))
                except Exception as exc:
                    log.debug("resync of a socket failed: %s", exc)

    def close(self) -> None:
        self.probe.close()
