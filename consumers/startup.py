"""How chatsite/asgi.py brings a server process up: say how far it scales, build and install
its `RoomchatProcess`, start it when daphne's reactor runs and shut it down before it stops."""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import Any

from django.conf import settings

from . import current
from .process import ProcessConfig, RoomchatProcess

log = logging.getLogger(__name__)


def bring_up() -> RoomchatProcess:
    """Announce the configuration, install this process's object and hook it to daphne."""
    announce_configuration()
    process = RoomchatProcess(ProcessConfig.from_settings())
    current.install(process)
    install_daphne_hooks(process)
    return process


def announce_configuration() -> None:
    """Say at start-up how far this process can scale: without Redis, to itself only."""
    if settings.REDIS_URL:
        log.info(
            "channel layer: Redis (%s); replies, stops, presence and limits are shared by "
            "every process",
            settings.REDIS_CHANNEL_LAYER,
        )
        return
    # Advice, not a failure: one process is exactly what `make run` wants. Only a deployment
    # (debug off) hears it as a WARNING, since a second dyno would not share this one's rooms.
    log.log(
        logging.INFO if settings.DEBUG else logging.WARNING,
        "REDIS_URL is not set, so rooms and replies live in this process's memory: right for "
        "ONE process (make run, a single dyno). To run more, give every process the same "
        "Redis: REDIS_URL=redis://host:6379/0 (docs/operations.md).",
    )


def install_daphne_hooks(process: RoomchatProcess) -> None:
    """Under daphne, start the process when the reactor runs and end replies before it stops.

    Daphne cancels only the connections' application instances on SIGTERM; tasks the process
    owns would die with the reactor, with no `finally`, no database write and locks held.
    """
    if "twisted.internet.reactor" not in sys.modules:
        return
    from twisted.internet import defer
    from twisted.internet import reactor as installed

    # The module object stands for the installed reactor; its stubs do not say which one.
    reactor: Any = installed
    if not hasattr(reactor, "_asyncioEventloop"):
        return

    def start() -> None:
        widened = widen_listen_backlogs(reactor, settings.LISTEN_BACKLOG)
        log.info("listen backlog %s on %s sockets", settings.LISTEN_BACKLOG, widened)
        asyncio.get_event_loop().call_soon(process.start)

    def before_shutdown() -> Any:
        loop = reactor._asyncioEventloop
        return defer.Deferred.fromFuture(asyncio.ensure_future(process.shutdown(), loop=loop))

    reactor.callWhenRunning(start)
    reactor.addSystemEventTrigger("before", "shutdown", before_shutdown)


def widen_listen_backlogs(reactor: Any, backlog: int) -> int:
    """Give daphne's listening sockets an accept queue of `backlog`; how many there were.

    `daphne -b -p` (the Procfile's form, SPEC) listens with Twisted's default backlog of 50.
    When a dyno restarts, its clients all reconnect at once: the kernel drops every SYN past
    the 50th, and each dropped one costs its client a retry 1 s, then 3 s, 7 s later (the
    reconnect storm in docs/benchmarks.md). Calling listen() again on a listening socket
    changes only its backlog (Linux caps it at net.core.somaxconn).
    """
    from twisted.internet.tcp import Port

    ports = [r for r in reactor.getReaders() if isinstance(r, Port)]
    for port in ports:
        port.socket.listen(backlog)
    return len(ports)
