"""Sign-up as the operator allows it (SPEC §4 `CHAT_SIGNUP`, §5): `open`, `invite`, `closed`;
an invite link always lets a newcomer sign up (or sign in) and lands them in its room as a
member; otherwise sign-up is refused with a 403 page that says why."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.contrib.auth import password_validation
from django.contrib.auth.models import User
from django.test import Client

from chatsite.rooms import membership
from chatsite.rooms.models import Room
from tests.support.auth import csrf_form_token

pytestmark = pytest.mark.django_db

MODES = ("open", "invite", "closed")
NEW_PASSWORD = "a-Long-unusual-pw-9137"


@pytest.fixture(autouse=True)
def fast_hashing(settings: Any) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def private_room() -> Room:
    owner = User.objects.create_user("owner-s1", password="pw-secret-123")
    return Room.objects.create(slug="team-s1", title="Team", owner=owner, is_private=True)


def sign_up(client: Client, username: str, page: str = "/accounts/signup/") -> Any:
    token = csrf_form_token(client.get(page).content.decode())
    form = {"username": username, "password1": NEW_PASSWORD, "password2": NEW_PASSWORD}
    return client.post("/accounts/signup/", {**form, "csrfmiddlewaretoken": token})


@pytest.mark.parametrize("mode", MODES)
def test_sign_up_through_an_invite_link_works_in_every_mode_and_lands_in_the_room(
    settings: Any, private_room: Room, mode: str
) -> None:
    settings.CHAT_SIGNUP = mode
    invite = membership.create_invite(private_room.pk, private_room.owner)
    browser = Client(enforce_csrf_checks=True)
    # Signed out: to the login page, which offers sign-up whatever the mode.
    link = browser.get(f"/invites/{invite.token}/")
    assert link.status_code == 302
    assert link["Location"] == f"/accounts/login/?next=/invites/{invite.token}/"
    login_page = browser.get(link["Location"]).content.decode()
    href = re.search(r'href="(/accounts/signup/[^"]*)"', login_page)
    assert href is not None, login_page
    signup_url = href.group(1).replace("&amp;", "&")
    created = sign_up(browser, "newcomer-s1", page=signup_url)
    assert created.status_code == 302, created.content.decode()[:500]
    assert created["Location"] == f"/invites/{invite.token}/"
    joined = browser.get(created["Location"])
    assert joined.status_code == 302 and joined["Location"] == "/rooms/team-s1/"
    assert browser.get("/rooms/team-s1/").status_code == 200
    assert private_room.members.filter(username="newcomer-s1").exists()


@pytest.mark.parametrize("mode", MODES)
def test_an_existing_user_signs_in_through_an_invite_and_lands_in_the_room(
    settings: Any, private_room: Room, mode: str
) -> None:
    settings.CHAT_SIGNUP = mode
    User.objects.create_user("friend-s1", password="pw-secret-123")
    invite = membership.create_invite(private_room.pk, private_room.owner)
    browser = Client(enforce_csrf_checks=True)
    login_url = browser.get(f"/invites/{invite.token}/")["Location"]
    token = csrf_form_token(browser.get(login_url).content.decode())
    form = {"username": "friend-s1", "password": "pw-secret-123", "csrfmiddlewaretoken": token}
    signed_in = browser.post(login_url, {**form, "next": f"/invites/{invite.token}/"})
    assert signed_in.status_code == 302 and signed_in["Location"] == f"/invites/{invite.token}/"
    assert browser.get(signed_in["Location"])["Location"] == "/rooms/team-s1/"
    assert browser.get("/rooms/team-s1/").status_code == 200


@pytest.mark.parametrize(
    ("mode", "why"), [("invite", "by invitation only"), ("closed", "creates the accounts")]
)
def test_sign_up_without_an_invite_is_refused_with_a_page_that_says_why(
    settings: Any, mode: str, why: str
) -> None:
    settings.CHAT_SIGNUP = mode
    browser = Client(enforce_csrf_checks=True)
    page = browser.get("/accounts/signup/")
    assert page.status_code == 403 and why in page.content.decode()
    # A forged POST creates nothing either.
    answer = browser.post(
        "/accounts/signup/",
        {"username": "sneaky", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD},
    )
    assert answer.status_code == 403
    assert not User.objects.filter(username="sneaky").exists()
    # And the login page does not advertise a sign-up that would be refused.
    assert "/accounts/signup/" not in browser.get("/accounts/login/").content.decode()


def test_a_stale_invite_in_the_session_does_not_open_sign_up(
    settings: Any, private_room: Room
) -> None:
    settings.CHAT_SIGNUP = "invite"
    invite = membership.create_invite(private_room.pk, private_room.owner)
    browser = Client()
    browser.get(f"/invites/{invite.token}/")
    assert browser.get("/accounts/signup/").status_code == 200
    membership.revoke_invite(private_room, invite.pk)
    assert browser.get("/accounts/signup/").status_code == 403


def test_open_sign_up_shows_the_password_rules_next_to_the_password_field(
    settings: Any,
) -> None:
    settings.CHAT_SIGNUP = "open"
    html = Client().get("/accounts/signup/").content.decode()
    rules = password_validation.password_validators_help_texts()
    assert len(rules) >= 4
    field = html.index('id="id_password1"')
    described = re.search(r'id="id_password1"[^>]*aria-describedby="([^"]*)"', html)
    assert described is not None and "password1-help" in described.group(1)
    help_block = html[html.index('id="password1-help"') :]
    for rule in rules:
        escaped = rule.replace("'", "&#x27;").replace('"', "&quot;")
        assert escaped in help_block, rule
    assert html.index('id="password1-help"') > field
