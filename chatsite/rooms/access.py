"""Who may enter a room: the one rule that the page, the history API, the export URLs and the
socket all ask (SPEC §5, §6, §7 "Members and invites")."""

from __future__ import annotations

from django.contrib.auth.models import AnonymousUser, User

from .models import Membership, Room


def is_member(user: User, room: Room) -> bool:
    """Whether `user` is on the room's member list (uses prefetched `members` when present)."""
    cache = getattr(room, "_prefetched_objects_cache", {})
    if "members" in cache:
        return any(member.pk == user.pk for member in cache["members"])
    return Membership.objects.filter(room_id=room.pk, user_id=user.pk).exists()


def can_enter(user: User | AnonymousUser, room: Room) -> bool:
    """Whether `user` may read and write in `room`: any signed-in user in a public room; the
    owner and the members in a private one.

    Without a prefetched member list this queries the database: from async code, call it with
    a room from `selectors.room_by_slug`/`room_by_id` (they prefetch) or in a thread.
    """
    if not bool(user.is_authenticated) or not bool(getattr(user, "is_active", True)):
        return False
    if not room.is_private or room.owner_id == user.pk:
        return True
    assert isinstance(user, User)
    return is_member(user, room)


def can_manage(user: User | AnonymousUser, room: Room) -> bool:
    """Whether `user` may change the room's settings, members and invites: its owner only."""
    return bool(user.is_authenticated) and room.owner_id == user.pk


def can_invite(user: User | AnonymousUser, room: Room) -> bool:
    """Who may hand out invite links: the owner of a private room; anyone in a public one."""
    return can_manage(user, room) if room.is_private else can_enter(user, room)
