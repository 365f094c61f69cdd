"""Sockets end with their session (SPEC §6, issue 12): after a logout, a password change or
the user's deactivation, every open socket of that session closes with 4401 within 10 s.

Channels checks the session once, at the handshake. Here each process looks again every
CHECK_EVERY seconds at all its sockets at once (one query for their sessions, one for their
users), the way `django.contrib.auth.get_user` does per request: the session still exists
and is unexpired, names the same user, that user is active, and the session's auth hash still
matches the password (or a SECRET_KEY_FALLBACKS hash). A `message.send` checks its own socket
first, so nothing is stored or answered for a session that has just ended.
"""

from __future__ import annotations

import functools
import logging
from importlib import import_module
from typing import Any, Protocol

from channels.db import database_sync_to_async
from django.conf import settings
from django.contrib.auth import HASH_SESSION_KEY, SESSION_KEY, get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.utils import timezone
from django.utils.crypto import constant_time_compare

import chatsite.lookups  # noqa: F401  (registers `any_of`)

from . import protocol
from .sockets import SocketRegistry

log = logging.getLogger(__name__)

# Seconds between sweeps; with the sweep's own time (~0.1 s for 10,000 sockets), inside 10 s.
CHECK_EVERY = 5.0
VERDICTS_KEPT = 50_000  # (session, user, password) answers kept by `_stands`

# (conn_id, session key, user id) of one socket.
Credential = tuple[str, str | None, int]


class ClosableSocket(Protocol):
    conn_id: str
    scope: dict[str, Any]

    async def close(self, code: int | bool | None = None, reason: str | None = None) -> None: ...


def session_key(scope: dict[str, Any]) -> str | None:
    """The session key a socket was opened with (Channels' SessionMiddleware), or None."""
    session = scope.get("session")
    key = getattr(session, "session_key", None) if session is not None else None
    return key if isinstance(key, str) else None


def _hash_matches(session_hash: object, user: AbstractBaseUser) -> bool:
    if not isinstance(session_hash, str) or not session_hash:
        return False
    if constant_time_compare(session_hash, user.get_session_auth_hash()):
        return True
    return any(
        constant_time_compare(session_hash, fallback)
        for fallback in user.get_session_auth_fallback_hash()
    )


def _session_rows(keys: set[str]) -> dict[str, str] | None:
    """The stored (encoded) data of those sessions that exist and have not expired; None when
    the session engine keeps no rows (cache sessions: see `_session_items`)."""
    store = import_module(settings.SESSION_ENGINE).SessionStore
    if not hasattr(store, "get_model_class"):
        return None
    rows = store.get_model_class().objects.filter(
        session_key__any_of=keys, expire_date__gt=timezone.now()
    )
    return dict(rows.values_list("session_key", "session_data"))


def _session_items(keys: set[str]) -> dict[str, dict[str, Any]]:
    """The decoded data of those sessions that exist (engines without rows: one look-up each)."""
    store = import_module(settings.SESSION_ENGINE).SessionStore
    found = {}
    for key in keys:
        session = store(key)
        if session.exists(key):
            found[key] = dict(session.items())
    return found


def _names_user(data: dict[str, Any], user_id: int, user: AbstractBaseUser) -> bool:
    return str(data.get(SESSION_KEY)) == str(user_id) and _hash_matches(
        data.get(HASH_SESSION_KEY), user
    )


@functools.lru_cache(maxsize=VERDICTS_KEPT)
def _stands(encoded: str, user_id: int, password: str, secrets: tuple[str, ...]) -> bool:
    """Whether stored session data still signs `user_id` in under this password hash.

    A pure function of its arguments (`secrets`: SECRET_KEY and its fallbacks, which sign both
    the data and the hash), so its answers are kept: every CHECK_EVERY seconds the same
    sessions come back unchanged, and decoding and hashing them again was most of an idle
    process's time (docs/benchmarks.md). A logout deletes the row, a password change changes
    `password`, a deactivation drops the user from the query: each is a new question.
    """
    store = import_module(settings.SESSION_ENGINE).SessionStore
    user = get_user_model()(pk=user_id, password=password)
    return _names_user(store().decode(encoded), user_id, user)


def ended(credentials: list[Credential]) -> set[str]:
    """The conn_ids whose session has ended (sync: run it in the database thread)."""
    keys = {key for _, key, _ in credentials if key}
    rows = _session_rows(keys) if keys else {}
    items = _session_items(keys) if rows is None else {}
    user_ids = {user_id for _, _, user_id in credentials}
    # Active users' password hashes (what the session auth hash is made from), not whole rows.
    passwords: dict[int, str] = dict(
        get_user_model()
        .objects.filter(pk__any_of=user_ids, is_active=True)
        .values_list("pk", "password")
    )
    secrets = (settings.SECRET_KEY, *settings.SECRET_KEY_FALLBACKS)
    # One verdict per (session, user): a person's tabs share their session.
    verdicts: dict[tuple[str | None, int], bool] = {}
    for key, user_id in {(key, user_id) for _, key, user_id in credentials}:
        password = passwords.get(user_id)
        if key is None or password is None:
            stands = False
        elif rows is not None:
            encoded = rows.get(key)
            stands = encoded is not None and _stands(encoded, user_id, password, secrets)
        else:
            user = get_user_model()(pk=user_id, password=password)
            stands = key in items and _names_user(items[key], user_id, user)
        verdicts[key, user_id] = stands
    gone = {conn_id for conn_id, key, user_id in credentials if not verdicts[key, user_id]}
    return gone


async def still_signed_in(socket: ClosableSocket, user_id: int) -> bool:
    """Whether this socket's session still stands (before a frame that stores or spends)."""
    credential = (socket.conn_id, session_key(socket.scope), user_id)
    return not await database_sync_to_async(ended)([credential])


async def close_ended(sockets: SocketRegistry) -> int:
    """Close with 4401 every socket of this process whose session ended; how many."""
    entries = sockets.all()
    if not entries:
        return 0
    credentials = [(e.socket.conn_id, e.session_key, e.user_id) for e in entries]
    gone = await database_sync_to_async(ended)(credentials)
    for entry in entries:
        if entry.socket.conn_id in gone:
            socket: Any = entry.socket
            log.info("closing a socket of user %s: the session ended", entry.user_id)
            await socket.close(code=protocol.CLOSE_UNAUTHENTICATED)
    return len(gone)
