"""Writes and reads for private rooms: members by username, invite links (SPEC §7).

Sync functions (Django ORM): call them from async code through a thread.
"""

from __future__ import annotations

import secrets
from datetime import timedelta

from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.utils import timezone

from .access import can_invite
from .models import Invite, Membership, Room

INVITE_LIFETIME = timedelta(days=7)


class UnknownUser(LookupError):
    """No account has that username."""


class OwnerStays(ValueError):
    """The owner is always admitted: they cannot be removed from the member list."""


class NotAllowed(PermissionError):
    """The person may not do this in this room (its privacy may have changed meanwhile)."""


def _fresh(room_id: int) -> Room:
    return Room.objects.select_related("owner").prefetch_related("members").get(pk=room_id)


def add_member(room_id: int, username: str) -> Room:
    """Admit `username` to the room; the refreshed room. Adding twice changes nothing."""
    user = User.objects.filter(username=username).first()
    if user is None:
        raise UnknownUser(username)
    try:
        with transaction.atomic():
            Membership.objects.get_or_create(room_id=room_id, user=user)
    except IntegrityError:  # the same person added at the same moment elsewhere
        pass
    Room.objects.filter(pk=room_id).update(updated_at=timezone.now())
    return _fresh(room_id)


def remove_member(room_id: int, username: str) -> Room:
    """Take `username` off the member list; the refreshed room."""
    user = User.objects.filter(username=username).first()
    if user is None:
        raise UnknownUser(username)
    if Room.objects.filter(pk=room_id, owner=user).exists():
        raise OwnerStays(username)
    Membership.objects.filter(room_id=room_id, user=user).delete()
    return _fresh(room_id)


def create_invite(room_id: int, user: User) -> Invite:
    """A new 7-day invite link to the room, if `user` may hand one out (checked on the stored
    room, not a socket's copy that may predate a switch to private)."""
    room = _fresh(room_id)
    if not can_invite(user, room):
        raise NotAllowed("only the owner invites to a private room")
    return Invite.objects.create(
        room=room,
        token=secrets.token_urlsafe(32),
        created_by=user,
        expires_at=timezone.now() + INVITE_LIFETIME,
    )


def valid_invite(token: str) -> Invite | None:
    """The invite with this token, unless it is unknown, expired or revoked."""
    if not token or len(token) > 64:
        return None
    return (
        Invite.objects.select_related("room")
        .filter(token=token, revoked_at__isnull=True, expires_at__gt=timezone.now())
        .first()
    )


def accept_invite(invite: Invite, user: User) -> Room:
    """Make `user` a member of the invite's room (the owner stays the owner)."""
    room = invite.room
    if room.owner_id != user.pk:
        add_member(room.pk, user.username)
    return room


def active_invites(room: Room) -> list[Invite]:
    """The room's invites that still admit someone, newest first."""
    return list(
        room.invites.select_related("created_by")
        .filter(revoked_at__isnull=True, expires_at__gt=timezone.now())
        .order_by("-created_at")
    )


def revoke_invite(room: Room, invite_id: int) -> bool:
    """Revoke one of the room's invites; False when there is no such live invite."""
    updated = Invite.objects.filter(pk=invite_id, room=room, revoked_at__isnull=True).update(
        revoked_at=timezone.now()
    )
    return updated == 1
