"""A room with two signed-in people, and joined tabs, for tests that talk to real servers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from asgiref.sync import sync_to_async

from tests.support.auth import create_user, session_cookie

if TYPE_CHECKING:
    from chatsite.rooms.models import Room
    from tests.conftest import WsConnect
    from tests.support.wsclient import RoomSocket

MODEL = "claude-sonnet-5-5"


@dataclass
class People:
    """A public room owned by alice, and a sessionid cookie for alice and for bob."""

    room: Room
    alice: str
    bob: str
    alice_cookie: str
    bob_cookie: str

    @property
    def slug(self) -> str:
        return self.room.slug


@sync_to_async
def make_people(
    unique: Callable[[str], str],
    *,
    title: str = "Room",
    model: str = MODEL,
    private: bool = False,
) -> People:
    """Two users without a password (sessions are all these tests need) and alice's room."""
    from chatsite.rooms.models import Room

    alice = create_user(unique("alice"), password=None)
    bob = create_user(unique("bob"), password=None)
    room = Room.objects.create(
        slug=unique("room"), title=title, owner=alice, model=model, is_private=private
    )
    return People(room, alice.username, bob.username, session_cookie(alice), session_cookie(bob))


async def join(ws_connect: WsConnect, url: str, slug: str, cookie: str) -> RoomSocket:
    """A tab that has received its snapshot and its first presence frame."""
    sock = await ws_connect(url, slug, cookie)
    await sock.wait_for("room.snapshot")
    await sock.wait_for("presence")
    return sock
