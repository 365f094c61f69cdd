"""Users, signed-in sessions and one room for the fan-out benchmark, written straight to the DB.

Run with the same environment as the servers (DATABASE_URL, DJANGO_SECRET_KEY, ...), after
`manage.py migrate`: `python -m bench.setup_db --users 200 --room bench-room`. Prints one JSON
object: `{"room": slug, "sessions": [sessionid, ...]}` (one session per user).

Passwords are unusable (no PBKDF2 per user: 200 hashes would take a minute); sessions are made
the way `login()` makes them, so the servers' AuthMiddlewareStack accepts them.
"""

from __future__ import annotations

import argparse
import json
import os


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.setup_db")
    parser.add_argument("--users", type=int, required=True)
    parser.add_argument("--room", required=True)
    args = parser.parse_args(argv)

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatsite.settings")
    import django

    django.setup()

    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.auth.hashers import make_password
    from django.contrib.auth.models import User
    from django.contrib.sessions.backends.db import SessionStore
    from django.db import transaction

    from chatsite.rooms import services

    names = [f"bench-{i:04d}" for i in range(args.users)]
    with transaction.atomic():
        User.objects.bulk_create(
            [User(username=name, password=make_password(None)) for name in names]
        )
        users = list(User.objects.filter(username__in=names).order_by("username"))
        sessions = []
        for user in users:
            store = SessionStore()
            store[SESSION_KEY] = str(user.pk)
            store[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
            store[HASH_SESSION_KEY] = user.get_session_auth_hash()
            store.create()
            assert store.session_key is not None
            sessions.append(store.session_key)
    room = services.open_room(args.room, users[0], title="Fan-out benchmark")
    print(json.dumps({"room": room.slug, "sessions": sessions}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
