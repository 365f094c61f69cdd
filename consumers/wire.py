"""Writing a room frame straight onto daphne's websocket connections.

Daphne hands each consumer `send = functools.partial(server.handle_reply, protocol)`, where
`protocol` is the connection's autobahn `WebSocketServerProtocol` on Twisted. Through `send`, a
frame goes through Channels' session wrapper, daphne's checks and autobahn's framing, once per
socket. The fan-out (`consumers.fanout`) instead frames a room frame once (autobahn's
`PreparedMessage`, made for sending one payload to many connections) and hands it to each open
connection (`sendPreparedMessage`: one transport write, or a compressed send where the client
negotiated compression). `connection(send)` finds the protocol behind a consumer's `send`
(`transport.server_protocol`); anything else (another server, tests' in-memory communicator)
gives None, and the fan-out sends through `send` instead.
"""

from __future__ import annotations

from typing import Any

from autobahn.websocket.protocol import PreparedMessage, WebSocketProtocol
from twisted.internet import tcp

from . import transport


def connection(send: Any) -> Any:
    """Daphne's websocket protocol behind `send`, if it takes prepared messages; else None."""
    protocol = transport.server_protocol(send)
    if protocol is None or not hasattr(protocol, "sendPreparedMessage"):
        return None
    return protocol


def prepare(text: str) -> PreparedMessage:
    """A text frame, framed once for any number of server-side connections (no mask)."""
    return PreparedMessage(text.encode("utf-8"), False, False, False)


def write(protocol: Any, prepared: PreparedMessage) -> bool:
    """Send a prepared frame if the connection is open; False when it is not (closing).

    When the connection's Twisted transport has nothing waiting, the frame goes straight to the
    kernel (one `send`), instead of being buffered until the reactor reports the socket writable
    (`add_writer`, an epoll round, `doWrite`, `remove_writer`: most of the fan-out's remaining
    cost per socket). Whatever the kernel does not take, and every other case (compression, a
    backlog, TLS or any other transport), goes the usual way, in order.
    """
    if protocol.state != WebSocketProtocol.STATE_OPEN:
        return False
    transport = protocol.transport
    if (
        getattr(protocol, "_perMessageCompress", None) is not None
        or protocol.send_queue
        or not _idle_tcp(transport)
    ):
        protocol.sendPreparedMessage(prepared)
        return True
    data = prepared.payloadHybi
    try:
        sent = transport.socket.send(data)
    except BlockingIOError:
        sent = 0
    except OSError:  # the connection broke: Twisted notices on its next read and closes it
        return False
    if sent < len(data):
        transport.write(data[sent:])
    return True


def _idle_tcp(transport: Any) -> bool:
    """A plain TCP transport, connected, with nothing buffered (so a direct send keeps order)."""
    if not isinstance(transport, tcp.Connection):
        return False
    return bool(
        transport.connected
        and not transport.disconnecting
        and transport._tempDataLen == 0
        and len(transport.dataBuffer) == transport.offset
    )


def backlog(protocol: Any) -> int:
    """Bytes written to the connection but not yet taken by the kernel (0 if unknown)."""
    return transport.transport_backlog(getattr(protocol, "transport", None)) or 0


def abort(protocol: Any) -> None:
    """Drop the connection now (a client that stopped reading); daphne then disconnects it."""
    abort_connection = getattr(getattr(protocol, "transport", None), "abortConnection", None)
    if abort_connection is not None:
        abort_connection()
