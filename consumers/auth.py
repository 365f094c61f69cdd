"""Who a websocket belongs to, read after the handshake and off the process's database thread.

Channels' `AuthMiddleware` reads the session and the user before the consumer runs, through
`database_sync_to_async`, which runs every database call of the process on one thread, one at a
time. In a reconnect storm those lookups queue behind each other and behind the snapshots, and
daphne drops (HTTP 403, or no response) every handshake the application has not accepted within
5 s (`--websocket_connect_timeout`): measured on 2 cores, 300 tabs opening at once waited 1.7 s
(median) for their user alone, and 2,000 all failed. Here the middleware only installs the lazy
`scope["user"]`; the consumer accepts first and then calls `resolve_user`, which reads on the
default executor's threads (each with its own database connection, from the pool under
PostgreSQL), in parallel with the database thread. A storm then queues inside open sockets
instead of failing their handshakes.
"""

from __future__ import annotations

from typing import Any

from channels.auth import AuthMiddleware, get_user
from channels.db import DatabaseSyncToAsync
from channels.sessions import CookieMiddleware, SessionMiddleware
from django.utils.functional import empty

# `get_user` is Channels' own (session -> user, with the session hash check), off-thread.
_get_user = DatabaseSyncToAsync(get_user.func, thread_sensitive=False)


async def resolve_user(scope: dict[str, Any]) -> Any:
    """The socket's user (AnonymousUser when not signed in), read once."""
    user = scope["user"]
    if user._wrapped is empty:
        user._wrapped = await _get_user(scope)
    return user


class DeferredAuthMiddleware(AuthMiddleware):
    """`AuthMiddleware` that leaves the lookup to the consumer (`resolve_user`)."""

    async def resolve_scope(self, scope: dict[str, Any]) -> None:
        return None


def AuthMiddlewareStack(inner: Any) -> Any:  # the name Channels gives it
    """Channels' `AuthMiddlewareStack`, with the lookup deferred as above."""
    return CookieMiddleware(SessionMiddleware(DeferredAuthMiddleware(inner)))
