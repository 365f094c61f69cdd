"""Users, signed-in sessions and rooms for the benchmarks, written straight to the database.

Run with the same environment as the servers (DATABASE_URL, DJANGO_SECRET_KEY, ...), after
`manage.py migrate`:

    python -m bench.setup_db --users 200 --room bench-room
    python -m bench.setup_db --users 2000 --rooms 600 --seed-messages 20

Prints one JSON object: `{"room": slug, "rooms": [slug, ...], "sessions": [sessionid, ...]}`
(one session per user; `room` is the first room).

Passwords are unusable (no PBKDF2 per user: 2,000 hashes would take minutes); sessions are
encoded the way `login()` stores them and bulk-inserted, so the servers' AuthMiddlewareStack
accepts them. `--seed-messages` gives each room that many stored messages (alternately user and
assistant), so that every snapshot reads a realistic page of history.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.setup_db")
    parser.add_argument("--users", type=int, required=True)
    parser.add_argument("--room", default="bench-room", help="slug of the first room")
    parser.add_argument("--rooms", type=int, default=1, help="rooms: ROOM, ROOM-1, ROOM-2...")
    parser.add_argument("--seed-messages", type=int, default=0, help="stored messages per room")
    args = parser.parse_args(argv)

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatsite.settings")
    import django

    django.setup()

    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.auth.hashers import make_password
    from django.contrib.auth.models import User
    from django.contrib.sessions.backends.db import SessionStore
    from django.contrib.sessions.models import Session
    from django.db import transaction
    from django.utils import timezone

    from chatsite.rooms.models import Message, Room

    names = [f"bench-{i:05d}" for i in range(args.users)]
    slugs = [args.room] + [f"{args.room}-{i}" for i in range(1, args.rooms)]
    expires = timezone.now() + timezone.timedelta(days=1)
    with transaction.atomic():
        password = make_password(None)
        User.objects.bulk_create([User(username=name, password=password) for name in names])
        users = list(User.objects.filter(username__in=names).order_by("username"))
        encoder = SessionStore()
        sessions = []
        rows = []
        for user in users:
            key = secrets.token_hex(16)
            data = {
                SESSION_KEY: str(user.pk),
                BACKEND_SESSION_KEY: "django.contrib.auth.backends.ModelBackend",
                HASH_SESSION_KEY: user.get_session_auth_hash(),
            }
            rows.append(
                Session(session_key=key, session_data=encoder.encode(data), expire_date=expires)
            )
            sessions.append(key)
        Session.objects.bulk_create(rows, batch_size=500)
        owner = users[0]
        Room.objects.bulk_create(
            [
                Room(
                    slug=slug,
                    title=f"Benchmark {slug}",
                    owner=owner,
                    model=settings.ANTHROPIC_MODEL,
                )
                for slug in slugs
            ]
        )
        if args.seed_messages:
            rooms = list(Room.objects.filter(slug__in=slugs))
            messages = []
            for room in rooms:
                for i in range(args.seed_messages):
                    user_turn = i % 2 == 0
                    messages.append(
                        Message(
                            room=room,
                            role="user" if user_turn else "assistant",
                            author=users[i % len(users)] if user_turn else None,
                            text=f"seeded message {i}: " + "lorem ipsum dolor sit amet " * 8,
                            status="complete",
                        )
                    )
            Message.objects.bulk_create(messages, batch_size=1000)
    print(json.dumps({"room": slugs[0], "rooms": slugs, "sessions": sessions}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
