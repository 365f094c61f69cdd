"""What daphne's connection of a socket has not sent yet, and how to drop it.

Under daphne a consumer's `send` hands the frame to Twisted, which writes what the kernel takes
and keeps the rest in the transport's buffer: `send` never waits for a slow client. This module
reads that buffer's size and aborts the connection, through attributes that daphne, autobahn and
Twisted do not document. Anything unexpected (another server, tests' in-memory communicator)
gives None and does nothing: the check fails open, never closes a socket by mistake.
"""

from __future__ import annotations

import functools
from typing import Any

_MAX_WRAPPERS = 8  # middleware layers that wrap `send` (sessions); a bound against cycles


def _server_protocol(send: Any) -> Any:
    """Daphne's protocol object behind a consumer's `send`, or None.

    Daphne passes `functools.partial(server.handle_reply, protocol)`; Channels' session
    middleware wraps it in a bound method of an object holding it as `real_send`.
    """
    for _ in range(_MAX_WRAPPERS):
        if isinstance(send, functools.partial):
            return send.args[0] if send.args else None
        owner = getattr(send, "__self__", None)
        inner = getattr(owner, "real_send", None)
        if inner is None:
            return None
        send = inner
    return None


def server_protocol(send: Any) -> Any:
    """Daphne's protocol object behind a consumer's `send`, or None (the fan-out writes to it)."""
    return _server_protocol(send)


def _transport(send: Any) -> Any:
    return getattr(_server_protocol(send), "transport", None)


def outbound_backlog(send: Any) -> int | None:
    """Bytes written to the socket's transport but not yet taken by the kernel, or None."""
    return transport_backlog(_transport(send))


def transport_backlog(transport: Any) -> int | None:
    """The same for a Twisted transport, or None."""
    if transport is None:
        return None
    # twisted.internet.abstract.FileDescriptor: `dataBuffer[offset:]` plus `_tempDataBuffer`.
    data = getattr(transport, "dataBuffer", None)
    offset = getattr(transport, "offset", 0)
    pending = getattr(transport, "_tempDataLen", 0)
    if not isinstance(data, bytes | bytearray | memoryview) or not isinstance(offset, int):
        return None
    if not isinstance(pending, int):
        return None
    return len(data) - offset + pending


def abort(send: Any) -> bool:
    """Drop the connection now, without flushing (a close frame would queue behind the backlog).

    Daphne then tells the consumer `websocket.disconnect`; the browser sees 1006 and reconnects.
    """
    transport = _transport(send)
    abort_connection = getattr(transport, "abortConnection", None)
    if abort_connection is None:
        return False
    abort_connection()
    return True
