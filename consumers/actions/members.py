"""`member.add`, `member.remove` and `invite.create` (SPEC §6, §7 "Members and invites"), and
ending the sockets of people who lost access to a room, on every process.

When a room's members or privacy change, `access_changed` sends one control event to the
room's group: the usernames still admitted. Each socket whose user is not among them checks
the stored room again (the access rule, `chatsite.rooms.access.can_enter`) and, if it may no
longer enter, closes with 4403 (`RoomConsumer.room_access`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.contrib.auth.models import AnonymousUser, User
from django.http.request import split_domain_port, validate_host

from chatsite.llm.registry import get_provider
from chatsite.rooms import membership, selectors
from chatsite.rooms.access import can_enter, can_manage
from chatsite.rooms.models import Room
from chatsite.rooms.serializers import iso_utc, room_data, room_members

from .. import protocol
from ..broadcast import broadcast, room_group
from ..protocol import CreateInvite, FrameError, MemberChange
from .context import ActionContext

log = logging.getLogger(__name__)

# The consumer handler that re-checks a socket's access (`RoomConsumer.room_access`).
ACCESS_EVENT = "room.access"


async def change_member(ctx: ActionContext, frame: MemberChange) -> None:
    """The owner adds or removes a member by username; everyone gets `room.updated`, and a
    removed member's sockets close with 4403 wherever they are."""
    if not can_manage(ctx.user, ctx.room):
        raise FrameError("forbidden", "Only the room's owner can change its members.")
    change = membership.add_member if frame.add else membership.remove_member
    try:
        room = await database_sync_to_async(change)(ctx.room.pk, frame.username)
    except membership.UnknownUser:
        raise FrameError("unknown_user", f"There is no user called {frame.username!r}.") from None
    except membership.OwnerStays:
        raise FrameError("invalid_message", "The owner is always in the room.") from None
    ctx.room = room
    await broadcast(room.pk, protocol.room_updated(room_data(room, get_provider())))
    if not frame.add:
        await access_changed(room)


async def create_invite(ctx: ActionContext, frame: CreateInvite) -> None:
    """A 7-day invite link to the room, answered to this tab only (`invite.created`)."""
    try:
        invite = await database_sync_to_async(membership.create_invite)(ctx.room.pk, ctx.user)
    except membership.NotAllowed:
        raise FrameError("forbidden", "Only the owner invites people to a private room.") from None
    url = f"{ctx.origin or site_origin({})}/invites/{invite.token}/"
    await ctx.reply(protocol.invite_created(url, iso_utc(invite.expires_at)))


async def access_changed(room: Room) -> None:
    """Tell every socket of the room, on every process, who is still admitted; the others
    close with 4403. A public room admits everyone signed in: nothing to tell."""
    if not room.is_private:
        return
    layer = get_channel_layer()
    if layer is None:
        return
    event = {"type": ACCESS_EVENT, "room_id": room.pk, "allowed": room_members(room)}
    try:
        await layer.group_send(room_group(room.pk), event)
    except Exception as exc:  # the removed person's next connect is refused anyway
        log.warning("access change in room %s not sent: %s", room.pk, exc)


async def lost_access(user: User | AnonymousUser, room_id: int, event: Mapping[str, Any]) -> bool:
    """Whether a socket of `user` must close after an access event: not among the admitted,
    and the stored room (read again, in case the list changed since) does not admit them."""
    if user.get_username() in (event.get("allowed") or ()):
        return False
    room = await database_sync_to_async(selectors.room_by_id)(room_id)
    return room is None or not can_enter(user, room)


def site_origin(scope: Mapping[str, Any]) -> str:
    """`https://host[:port]` of the page a socket belongs to: its Host header, and https when
    served behind TLS (DJANGO_HTTPS) or over wss."""
    headers = dict(scope.get("headers") or [])
    host = headers.get(b"host", b"").decode("latin-1")
    if not validate_host(split_domain_port(host)[0], settings.ALLOWED_HOSTS):
        host = next((h for h in settings.ALLOWED_HOSTS if h and h[0] not in ".*"), "localhost")
    secure = settings.HTTPS or scope.get("scheme") == "wss"
    return f"{'https' if secure else 'http'}://{host}"
