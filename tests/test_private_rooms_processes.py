"""Private rooms on real servers (issue 11, SPEC §6 `member.*`, `invite.*`, 4403, 4429): two
daphne processes sharing Redis and the database. Who may open a room's socket; a removed
member's and a non-member's sockets close with 4403 on both processes within 2 s; invites
over the socket; at most CHAT_MAX_SOCKETS_PER_USER sockets per user across processes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from asgiref.sync import sync_to_async

from tests.conftest import DaphneFactory, DaphnePair, WsConnect
from tests.support.auth import create_user, http_request, session_cookie
from tests.support.wsclient import RoomSocket

KICK_WITHIN = 2.0  # SPEC §6: a removed member's sockets close within 2 s, on every process
FORBIDDEN = 4403
TOO_MANY = 4429


@dataclass
class Cast:
    slug: str
    names: dict[str, str]
    cookies: dict[str, str]


@sync_to_async
def make_cast(unique: Callable[[str], str], *, private: bool = True) -> Cast:
    """A room owned by `owner` with `member` and `carol` as members; `removed` was one;
    `outsider` never was. Sessions for each."""
    from chatsite.rooms import membership
    from chatsite.rooms.models import Room

    users = {
        role: create_user(unique(role), password=None)
        for role in ("owner", "member", "carol", "removed", "outsider")
    }
    room = Room.objects.create(
        slug=unique("room"), title="Hush", owner=users["owner"], is_private=private
    )
    for role in ("member", "carol", "removed"):
        membership.add_member(room.pk, users[role].username)
    membership.remove_member(room.pk, users["removed"].username)
    return Cast(
        room.slug,
        {role: u.username for role, u in users.items()},
        {role: session_cookie(u) for role, u in users.items()},
    )


async def joined(ws_connect: WsConnect, url: str, slug: str, cookie: str) -> RoomSocket:
    sock = await ws_connect(url, slug, cookie)
    await sock.wait_for("room.snapshot")
    return sock


async def refused(ws_connect: WsConnect, url: str, slug: str, cookie: str) -> int:
    """The close code of a socket the server accepts and closes at once; it got no frame."""
    sock = await ws_connect(url, slug, cookie)
    code = await sock.wait_closed()
    assert sock.frames == [], sock.frames  # not a title, owner, member or message
    return code


async def test_who_may_open_a_private_rooms_socket_on_either_process(
    daphne_pair: DaphnePair, ws_connect: WsConnect, unique: Callable[[str], str]
) -> None:
    cast = await make_cast(unique)
    # An invitee: someone who opened an invite link (on the other process).
    invitee = await sync_to_async(create_user)(unique("invitee"), password=None)
    invitee_cookie = await sync_to_async(session_cookie)(invitee)
    token = await invite_token(cast)
    link = await asyncio.to_thread(
        http_request,
        "GET",
        f"{daphne_pair.b.url}/invites/{token}/",
        cookies={"sessionid": invitee_cookie},
    )
    assert link.status == 302 and link.headers["Location"] == f"/rooms/{cast.slug}/"
    cookies = {**cast.cookies, "invitee": invitee_cookie}
    for process in daphne_pair:
        for role in ("owner", "member", "invitee"):
            sock = await joined(ws_connect, process.ws_url, cast.slug, cookies[role])
            snapshot = sock.find("room.snapshot")[0]
            assert snapshot["room"]["private"] is True
            assert invitee.username in snapshot["room"]["members"]
            await sock.close()
        for role in ("removed", "outsider"):
            assert await refused(ws_connect, process.ws_url, cast.slug, cookies[role]) == FORBIDDEN


@sync_to_async
def invite_token(cast: Cast) -> str:
    from django.contrib.auth.models import User

    from chatsite.rooms import membership
    from chatsite.rooms.models import Room

    room = Room.objects.get(slug=cast.slug)
    owner = User.objects.get(username=cast.names["owner"])
    return membership.create_invite(room.pk, owner).token


async def test_a_removed_members_sockets_close_on_every_process_within_2_s(
    daphne_pair: DaphnePair, ws_connect: WsConnect, unique: Callable[[str], str]
) -> None:
    cast = await make_cast(unique)
    a, b = daphne_pair
    owner = await joined(ws_connect, a.ws_url, cast.slug, cast.cookies["owner"])
    carol = await joined(ws_connect, b.ws_url, cast.slug, cast.cookies["carol"])
    tabs = [
        await joined(ws_connect, process.ws_url, cast.slug, cast.cookies["member"])
        for process in (a, b, b)
    ]
    await owner.send({"type": "member.remove", "username": cast.names["member"]})
    started = time.monotonic()
    codes = await asyncio.gather(*(tab.wait_closed(KICK_WITHIN + 1) for tab in tabs))
    assert codes == [FORBIDDEN] * 3
    assert time.monotonic() - started < KICK_WITHIN
    for sock in (owner, carol):
        updated = await sock.wait_for("room.updated")
        assert cast.names["member"] not in updated["room"]["members"]
        assert cast.names["carol"] in updated["room"]["members"]
    assert not owner.closed and not carol.closed
    assert await refused(ws_connect, a.ws_url, cast.slug, cast.cookies["member"]) == FORBIDDEN


async def test_making_a_room_private_closes_non_members_sockets_everywhere(
    daphne_pair: DaphnePair, ws_connect: WsConnect, unique: Callable[[str], str]
) -> None:
    cast = await make_cast(unique, private=False)
    a, b = daphne_pair
    owner = await joined(ws_connect, a.ws_url, cast.slug, cast.cookies["owner"])
    member = await joined(ws_connect, b.ws_url, cast.slug, cast.cookies["member"])
    outsiders = [
        await joined(ws_connect, process.ws_url, cast.slug, cast.cookies["outsider"])
        for process in (a, b)
    ]
    await owner.send({"type": "room.update", "private": True})
    started = time.monotonic()
    codes = await asyncio.gather(*(tab.wait_closed(KICK_WITHIN + 1) for tab in outsiders))
    assert codes == [FORBIDDEN, FORBIDDEN]
    assert time.monotonic() - started < KICK_WITHIN
    updated = await member.wait_for("room.updated")
    assert updated["room"]["private"] is True and not member.closed and not owner.closed


async def test_member_changes_are_the_owners_and_need_an_existing_user(
    daphne_pair: DaphnePair, ws_connect: WsConnect, unique: Callable[[str], str]
) -> None:
    cast = await make_cast(unique)
    a, b = daphne_pair
    owner = await joined(ws_connect, a.ws_url, cast.slug, cast.cookies["owner"])
    member = await joined(ws_connect, b.ws_url, cast.slug, cast.cookies["member"])
    await member.send({"type": "member.add", "username": cast.names["outsider"]})
    assert (await member.wait_for("error"))["code"] == "forbidden"
    await member.send({"type": "member.remove", "username": cast.names["carol"]})
    assert (await member.wait_for("error"))["code"] == "forbidden"
    await owner.send({"type": "member.add", "username": unique("nobody")})
    assert (await owner.wait_for("error"))["code"] == "unknown_user"
    await owner.send({"type": "member.add", "username": cast.names["outsider"]})
    for sock in (owner, member):
        updated = await sock.wait_for("room.updated")
        assert cast.names["outsider"] in updated["room"]["members"]
    await joined(ws_connect, b.ws_url, cast.slug, cast.cookies["outsider"])


async def test_invites_over_the_socket(
    daphne_pair: DaphnePair, ws_connect: WsConnect, unique: Callable[[str], str]
) -> None:
    cast = await make_cast(unique)
    a, b = daphne_pair
    owner = await joined(ws_connect, a.ws_url, cast.slug, cast.cookies["owner"])
    member = await joined(ws_connect, b.ws_url, cast.slug, cast.cookies["member"])
    await member.send({"type": "invite.create"})
    assert (await member.wait_for("error"))["code"] == "forbidden"  # private: the owner's
    await owner.send({"type": "invite.create"})
    created = await owner.wait_for("invite.created")
    assert created["url"].startswith(f"{a.url}/invites/")
    expires = datetime.fromisoformat(created["expires_at"].replace("Z", "+00:00"))
    assert created["expires_at"].endswith("Z")
    left = expires - datetime.now(UTC)
    assert timedelta(days=7) - timedelta(minutes=1) < left <= timedelta(days=7)
    await member.expect_silence(0.3, "invite.created")  # that tab only
    # The link admits whoever opens it, on either process.
    answer = await asyncio.to_thread(
        http_request, "GET", created["url"], cookies={"sessionid": cast.cookies["outsider"]}
    )
    assert answer.status == 302
    await joined(ws_connect, b.ws_url, cast.slug, cast.cookies["outsider"])
    # In a public room anyone may invite.
    public = await make_cast(unique, private=False)
    someone = await joined(ws_connect, b.ws_url, public.slug, public.cookies["outsider"])
    await someone.send({"type": "invite.create"})
    assert (await someone.wait_for("invite.created"))["url"].startswith(f"{b.url}/invites/")


async def admitted_soon(
    ws_connect: WsConnect, url: str, slug: str, cookie: str, within: float
) -> RoomSocket:
    """A socket admitted as soon as a slot frees up (each refused attempt closes with 4429)."""
    deadline = time.monotonic() + within
    while True:
        sock = await ws_connect(url, slug, cookie)
        first = await sock.next_frame_after(0, asyncio.get_running_loop().time() + 10)
        if first:
            assert sock.frames[0]["type"] == "room.snapshot"
            return sock
        assert sock.close_code == TOO_MANY
        if time.monotonic() > deadline:
            raise TimeoutError(f"no slot freed within {within} s")


async def test_the_socket_cap_holds_across_processes_and_frees_a_killed_ones_slots(
    daphne_factory: DaphneFactory, ws_connect: WsConnect, unique: Callable[[str], str]
) -> None:
    env = {"CHAT_MAX_SOCKETS_PER_USER": "2", "SOCKET_QUOTA_TTL": "2"}
    one, two = daphne_factory(env, name="one"), daphne_factory(env, name="two")
    cast = await make_cast(unique, private=False)
    cookie = cast.cookies["owner"]
    first = await joined(ws_connect, one.ws_url, cast.slug, cookie)
    await joined(ws_connect, two.ws_url, cast.slug, cookie)
    for process in (one, two):
        assert await refused(ws_connect, process.ws_url, cast.slug, cookie) == TOO_MANY
    # Someone else is not limited by her sockets.
    await joined(ws_connect, one.ws_url, cast.slug, cast.cookies["member"])
    # A closed socket gives its slot back.
    await first.close()
    await admitted_soon(ws_connect, one.ws_url, cast.slug, cookie, within=5)
    assert await refused(ws_connect, two.ws_url, cast.slug, cookie) == TOO_MANY
    # A killed process's sockets stop counting once their claims expire (TTL 2 s).
    one.kill()
    await admitted_soon(ws_connect, two.ws_url, cast.slug, cookie, within=8)
    # And claims of a live process outlast the TTL: its heartbeat renews them.
    renewed_by = time.monotonic() + 5
    while time.monotonic() < renewed_by:
        assert await refused(ws_connect, two.ws_url, cast.slug, cookie) == TOO_MANY


async def test_a_socket_that_keeps_flooding_after_rate_limited_is_closed_with_4429(
    daphne_factory: DaphneFactory, ws_connect: WsConnect, unique: Callable[[str], str]
) -> None:
    server = daphne_factory({"CHAT_RATE_PER_MINUTE": "1", "FLOOD_REFUSALS": "3"})
    cast = await make_cast(unique, private=False)
    sock = await joined(ws_connect, server.ws_url, cast.slug, cast.cookies["member"])
    await sock.send({"type": "message.send", "text": "the one allowed"})
    await sock.wait_for("message.created")
    for n in range(3):
        await sock.send({"type": "message.send", "text": f"flood {n}"})
        error = await sock.wait_for("error")
        assert error["code"] == "rate_limited"
    assert await sock.wait_closed() == TOO_MANY
    # The person may come back: the limit ended that socket, not their access.
    await joined(ws_connect, server.ws_url, cast.slug, cast.cookies["member"])


pytestmark = pytest.mark.timeout(120)
