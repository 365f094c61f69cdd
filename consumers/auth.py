"""Who a websocket belongs to, read off the process's database thread.

Channels' `AuthMiddleware` reads the session and the user through `database_sync_to_async`,
which runs every database call of the process on one thread, one at a time. In a reconnect
storm the handshakes' user lookups queue there behind each other and behind the snapshots:
measured on 2 cores, 300 tabs opening at once waited 1.7 s (median) for their user alone, and
daphne drops a handshake the application has not accepted within 5 s. The lookup only reads,
so this middleware runs it on the default executor's threads instead (each with its own
database connection, from the pool under PostgreSQL), in parallel with the database thread.
"""

from __future__ import annotations

from typing import Any

from channels.auth import AuthMiddleware, get_user
from channels.db import DatabaseSyncToAsync
from channels.sessions import CookieMiddleware, SessionMiddleware

# `get_user` is Channels' own (session → user, with the session hash check), off-thread.
_get_user = DatabaseSyncToAsync(get_user.func, thread_sensitive=False)


class ParallelAuthMiddleware(AuthMiddleware):
    """`AuthMiddleware` whose user lookup does not wait for the process's database thread."""

    async def resolve_scope(self, scope: dict[str, Any]) -> None:
        scope["user"]._wrapped = await _get_user(scope)


def AuthMiddlewareStack(inner: Any) -> Any:  # the name Channels gives it
    """Channels' `AuthMiddlewareStack`, with the lookup above."""
    return CookieMiddleware(SessionMiddleware(ParallelAuthMiddleware(inner)))
