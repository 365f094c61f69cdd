"""Private rooms over HTTP (issue 11, SPEC §5 and §7): one access rule for the page (GET and
POST), the history API, the export URLs and the lobby, for the owner, a member, a removed
member, an invitee and an outsider; nothing of a private room leaks to those it does not admit;
invite links, their owner's list and revocation. Sockets: tests/test_private_rooms_processes.py."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from chatsite.rooms import membership
from chatsite.rooms.models import Invite, Message, Room
from tests.support.auth import csrf_form_token

pytestmark = pytest.mark.django_db

TITLE = "Quarterly plans zq81"
SECRET_TEXT = "the launch date is wx93"
ALLOWED = ("owner", "member", "invitee")
REFUSED = ("removed", "outsider")


@pytest.fixture(autouse=True)
def fast_hashing(settings: Any) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def client_for(user: User) -> Client:
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    return client


@dataclass
class Cast:
    room: Room
    users: dict[str, User]
    clients: dict[str, Client]

    def leaks(self, body: str) -> list[str]:
        """What of the private room a response body gives away."""
        names = [self.users[r].username for r in ("owner", "member", "invitee")]
        return [s for s in (TITLE, SECRET_TEXT, *names) if s in body]


@pytest.fixture
def cast() -> Cast:
    """A private room with a message; its owner, a member, a removed member, someone who came
    in through an invite link, and an outsider, each signed in."""
    users = {
        role: User.objects.create_user(f"{role}-x7q", password="pw-secret-123")
        for role in ("owner", "member", "removed", "invitee", "outsider")
    }
    room = Room.objects.create(slug="hideout", title=TITLE, owner=users["owner"], is_private=True)
    Message.objects.create(room=room, role="user", author=users["owner"], text=SECRET_TEXT)
    membership.add_member(room.pk, users["member"].username)
    membership.add_member(room.pk, users["removed"].username)
    membership.remove_member(room.pk, users["removed"].username)
    clients = {role: client_for(user) for role, user in users.items()}
    invite = membership.create_invite(room.pk, users["owner"])
    joined = clients["invitee"].get(f"/invites/{invite.token}/")
    assert joined.status_code == 302 and joined["Location"] == "/rooms/hideout/"
    return Cast(room, users, clients)


def body_of(answer: Any) -> bytes:
    """The whole body, streamed (the exports stream asynchronously) or not."""
    if not answer.streaming:
        return bytes(answer.content)

    async def collect() -> bytes:
        return b"".join([part async for part in answer.streaming_content])

    return async_to_sync(collect)()


SURFACES = [
    "/rooms/hideout/",
    "/api/rooms/hideout/messages",
    "/rooms/hideout/export.md",
    "/rooms/hideout/export.json",
]


@pytest.mark.parametrize("path", SURFACES)
@pytest.mark.parametrize("role", ALLOWED + REFUSED)
def test_one_access_rule_for_page_api_and_export(cast: Cast, role: str, path: str) -> None:
    answer = cast.clients[role].get(path)
    body = body_of(answer)
    text = body.decode()
    if role in ALLOWED:
        assert answer.status_code == 200, text[:300]
        # The page loads messages over the socket; the API and the exports carry them.
        assert (TITLE if path == "/rooms/hideout/" else SECRET_TEXT) in text
    else:
        assert answer.status_code == 404
        assert cast.leaks(text) == []


@pytest.mark.parametrize("role", REFUSED)
def test_a_post_to_a_private_slug_is_404_and_changes_nothing(cast: Cast, role: str) -> None:
    client = cast.clients[role]
    token = csrf_form_token(client.get("/").content.decode())
    answer = client.post("/rooms/hideout/", {"csrfmiddlewaretoken": token})
    assert answer.status_code == 404 and cast.leaks(answer.content.decode()) == []
    room = Room.objects.get(slug="hideout")
    assert room.owner == cast.users["owner"] and room.is_private


def test_the_lobby_lists_a_private_room_only_to_those_it_admits(cast: Cast) -> None:
    for role in ALLOWED + REFUSED:
        html = cast.clients[role].get("/").content.decode()
        assert ("/rooms/hideout/" in html) == (role in ALLOWED), role
        if role in REFUSED:
            assert cast.leaks(html) == [], role


def test_the_lobby_names_each_room_by_title_slug_and_activity(cast: Cast) -> None:
    writer = cast.users["outsider"]
    Room.objects.create(slug="old-public", title="Gone quiet", owner=writer)
    Room.objects.filter(slug="old-public").update(updated_at=timezone.now() - timedelta(days=90))
    wrote = Room.objects.create(slug="wrote-here", title="Their public", owner=cast.users["owner"])
    Message.objects.create(room=wrote, role="user", author=writer, text="hi")
    Room.objects.create(slug="fresh-public", title="Busy now", owner=cast.users["member"])
    html = cast.clients["outsider"].get("/").content.decode()
    mine, recent = html.split('id="recent-rooms-title"')
    # Rooms they own (even quiet ones) and rooms they wrote in are theirs; public rooms active
    # lately are everyone's; a public room quiet for months is not advertised to others.
    assert "Gone quiet" in mine and "/old-public" in mine and "active" in mine
    assert "Their public" in mine and "/wrote-here" in mine
    assert "Busy now" in recent and "/fresh-public" in recent
    html = cast.clients["member"].get("/").content.decode()
    assert "old-public" not in html


# --- invite links ----------------------------------------------------------------------------


def test_invite_links_that_are_unknown_expired_or_revoked_are_404(cast: Cast) -> None:
    owner, client = cast.users["owner"], cast.clients["outsider"]
    expired = membership.create_invite(cast.room.pk, owner)
    Invite.objects.filter(pk=expired.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    revoked = membership.create_invite(cast.room.pk, owner)
    assert membership.revoke_invite(cast.room, revoked.pk)
    for token in ("no-such-token", expired.token, revoked.token):
        answer = client.get(f"/invites/{token}/")
        assert answer.status_code == 404 and cast.leaks(answer.content.decode()) == []
        assert Client().get(f"/invites/{token}/").status_code == 404  # signed out too
    assert client.get("/rooms/hideout/").status_code == 404


def test_an_invite_lasts_seven_days(cast: Cast) -> None:
    invite = membership.create_invite(cast.room.pk, cast.users["owner"])
    lifetime = invite.expires_at - invite.created_at
    assert timedelta(days=7) - timedelta(seconds=5) < lifetime <= timedelta(days=7)


def test_the_owner_lists_and_revokes_invites_others_cannot(cast: Cast) -> None:
    owner = cast.clients["owner"]
    invite = membership.create_invite(cast.room.pk, cast.users["owner"])
    listed = owner.get("/api/rooms/hideout/invites").json()["invites"]
    assert any(i["url"] == f"http://testserver/invites/{invite.token}/" for i in listed)
    assert all(i["expires_at"].endswith("Z") for i in listed)
    assert cast.clients["member"].get("/api/rooms/hideout/invites").status_code == 403
    assert cast.clients["outsider"].get("/api/rooms/hideout/invites").status_code == 404
    assert Client().get("/api/rooms/hideout/invites").status_code == 401
    revoke = f"/api/rooms/hideout/invites/{invite.pk}/revoke"
    for role in ("member", "outsider"):
        token = csrf_form_token(cast.clients[role].get("/").content.decode())
        answer = cast.clients[role].post(revoke, HTTP_X_CSRFTOKEN=token)
        assert answer.status_code in (403, 404)
    assert owner.post(revoke).status_code == 403  # CSRF: a form token or header is required
    token = csrf_form_token(owner.get("/").content.decode())
    assert owner.post(revoke, HTTP_X_CSRFTOKEN=token).json() == {"revoked": invite.pk}
    assert owner.post(revoke, HTTP_X_CSRFTOKEN=token).status_code == 404
    assert cast.clients["outsider"].get(f"/invites/{invite.token}/").status_code == 404
    assert invite.pk not in [
        i["id"] for i in owner.get("/api/rooms/hideout/invites").json()["invites"]
    ]


def test_an_invite_makes_a_removed_member_a_member_again(cast: Cast) -> None:
    invite = membership.create_invite(cast.room.pk, cast.users["owner"])
    client = cast.clients["removed"]
    assert client.get(f"/invites/{invite.token}/").status_code == 302
    assert client.get("/rooms/hideout/").status_code == 200
