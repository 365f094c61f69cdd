"""Who may enter a room (public now; private rooms with members fit here later)."""

from __future__ import annotations

from django.contrib.auth.models import AnonymousUser, User

from .models import Room


def can_enter(user: User | AnonymousUser, room: Room) -> bool:
    """Whether `user` may read and write in `room`."""
    if not bool(user.is_authenticated):
        return False
    if not room.is_private:
        return True
    return room.owner_id == user.pk


def can_manage(user: User | AnonymousUser, room: Room) -> bool:
    """Whether `user` may change the room's settings."""
    return bool(user.is_authenticated) and room.owner_id == user.pk
