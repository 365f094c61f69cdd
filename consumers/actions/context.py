"""What a frame's handler knows about the tab that sent it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import User

from chatsite.rooms.models import Room


@dataclass
class ActionContext:
    """The room (refreshed when its settings change), the person, and a way to answer the tab."""

    room: Room
    user: User
    # Sends one frame to this tab only (snapshots, `invite.created`, errors).
    reply: Callable[[Mapping[str, Any]], Awaitable[None]]
    # This socket's id in presence and the process's socket registry.
    conn_id: str = ""
    # `https://host[:port]` of the page (absolute links such as `invite.created`'s url).
    origin: str = ""
