"""The `RoomchatProcess` this server process runs, installed by `consumers.startup` (daphne,
from chatsite/asgi.py) or by a test fixture. Code serving a socket or a frame asks it here for
the process's runner, presence or sockets; nothing is built or started on the way."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .process import RoomchatProcess

_process: RoomchatProcess | None = None


def current_process() -> RoomchatProcess:
    """The installed process; RuntimeError when none is (a script that serves no sockets)."""
    if _process is None:
        raise RuntimeError(
            "no RoomchatProcess is installed: chatsite.asgi installs one; tests take the "
            "fresh_process fixture"
        )
    return _process


def install(process: RoomchatProcess | None) -> None:
    """Make `process` this server process's (None: uninstall)."""
    global _process
    _process = process
