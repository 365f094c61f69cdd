"""Sending a frame to every tab of a room, on every process, through the channel layer."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from channels.layers import get_channel_layer

from .protocol import encode

log = logging.getLogger(__name__)

# The event carrying a pre-encoded room frame; the fan-out writes it to the sockets (fanout.py).
BROADCAST_EVENT = "room.broadcast"


def room_group(room_id: int) -> str:
    """The channel-layer group of a room's sockets."""
    return f"room.{room_id}"


async def broadcast(
    room_id: int, frame: Mapping[str, Any], *, skip_user: str | None = None
) -> bool:
    """Send `frame` to the room; False (logged) when the layer failed, e.g. Redis is down.

    The frame is encoded once here, not once per socket. `skip_user`: that person's own tabs
    do not get it (`typing`; see `Outlet.deliver`).
    """
    layer = get_channel_layer()
    if layer is None:
        return False
    # `kind`: the frame's type, so a process's fan-out can tell what it is without decoding it.
    event: dict[str, Any] = {"type": BROADCAST_EVENT, "frame": encode(frame), "kind": frame["type"]}
    if skip_user is not None:
        event["skip_user"] = skip_user
    try:
        await layer.group_send(room_group(room_id), event)
    except Exception as exc:  # Redis down or restarting: clients heal via seq gaps and sync
        log.warning("broadcast to room %s failed: %s: %s", room_id, type(exc).__name__, exc)
        return False
    return True
