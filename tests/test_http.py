"""SPEC §5, in process with Django's test client: sign-up, sign-in, sign-out, the lobby, room
pages, the history API and /healthz. Forms are posted with real CSRF checks on."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from chatsite.rooms.models import Message, Room
from tests.support.auth import csrf_form_token

pytestmark = pytest.mark.django_db

PASSWORD = "pw-secret-123"
MESSAGE_KEYS = {
    "id",
    "role",
    "author",
    "model",
    "text",
    "status",
    "created_at",
    "client_msg_id",
    "reactions",
    "in_reply_to",
    "stopped_by",
    "superseded",
}


@pytest.fixture(autouse=True)
def fast_hashing(settings: Any) -> None:
    """Password hashing is not under test here; the default one costs ~0.5 s per hash."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    # Sign-up under `invite` and `closed`: tests/test_signup_modes.py.
    settings.CHAT_SIGNUP = "open"


@pytest.fixture
def browser() -> Client:
    """A client that, like a browser, must send the form's CSRF token."""
    return Client(enforce_csrf_checks=True)


@pytest.fixture
def alice() -> User:
    return User.objects.create_user("alice", password=PASSWORD)


@pytest.fixture
def bob() -> User:
    return User.objects.create_user("bob", password=PASSWORD)


@pytest.fixture
def alice_client(alice: User) -> Client:
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    return client


def post_form(client: Client, url: str, data: dict[str, str], page: str | None = None) -> Any:
    """GET the page holding the form (for its CSRF token), then POST the form to `url`."""
    token = csrf_form_token(client.get(page or url).content.decode())
    return client.post(url, {**data, "csrfmiddlewaretoken": token})


def signed_in_as(client: Client) -> str | None:
    user_id = client.session.get("_auth_user_id")
    return User.objects.get(pk=user_id).username if user_id else None


# --- accounts ------------------------------------------------------------------------------------


def test_signup_creates_the_user_signs_in_and_redirects(browser: Client) -> None:
    page = browser.get("/accounts/signup/")
    assert page.status_code == 200
    html = page.content.decode()
    for name in ("username", "password1", "password2", "csrfmiddlewaretoken"):
        assert f'name="{name}"' in html

    answer = post_form(
        browser,
        "/accounts/signup/",
        {"username": "carol", "password1": "a-long-pass-7", "password2": "a-long-pass-7"},
    )
    assert answer.status_code == 302
    assert User.objects.filter(username="carol").exists()
    assert signed_in_as(browser) == "carol"
    assert browser.get("/").status_code == 200


@pytest.mark.parametrize(
    ("next_url", "lands_on"),
    [("/rooms/lisbon/", "/rooms/lisbon/"), ("https://evil.example/", "/")],
)
def test_signup_from_a_room_link_lands_in_the_room_and_never_off_site(
    browser: Client, next_url: str, lands_on: str
) -> None:
    page = browser.get("/accounts/signup/", {"next": next_url})
    html = page.content.decode()
    assert ('name="next"' in html) == (next_url == lands_on)

    answer = post_form(
        browser,
        "/accounts/signup/",
        {
            "username": "erin",
            "password1": "a-long-pass-7",
            "password2": "a-long-pass-7",
            "next": next_url,
        },
    )
    assert answer.status_code == 302
    assert answer["Location"] == lands_on
    assert signed_in_as(browser) == "erin"


def test_signup_with_mismatched_passwords_shows_the_form_again(browser: Client) -> None:
    answer = post_form(
        browser,
        "/accounts/signup/",
        {"username": "dave", "password1": "a-long-pass-7", "password2": "another-pass-8"},
    )
    assert answer.status_code == 200
    assert "field-errors" in answer.content.decode()
    assert not User.objects.filter(username="dave").exists()
    assert signed_in_as(browser) is None


def test_a_form_without_its_csrf_token_is_refused(browser: Client, alice: User) -> None:
    answer = browser.post("/accounts/login/", {"username": "alice", "password": PASSWORD})
    assert answer.status_code == 403
    assert signed_in_as(browser) is None


def test_login_redirects_to_the_lobby_with_a_session_cookie(browser: Client, alice: User) -> None:
    page = browser.get("/accounts/login/")
    assert page.status_code == 200
    html = page.content.decode()
    for name in ("username", "password", "csrfmiddlewaretoken"):
        assert f'name="{name}"' in html

    answer = post_form(browser, "/accounts/login/", {"username": "alice", "password": PASSWORD})
    assert answer.status_code == 302 and answer["Location"] == "/"
    assert answer.cookies["sessionid"].value
    assert signed_in_as(browser) == "alice"


def test_login_follows_next_but_never_off_site(browser: Client, alice: User) -> None:
    answer = post_form(
        browser,
        "/accounts/login/",
        {"username": "alice", "password": PASSWORD, "next": "/rooms/lounge/"},
        page="/accounts/login/?next=/rooms/lounge/",
    )
    assert answer.status_code == 302 and answer["Location"] == "/rooms/lounge/"

    other = Client(enforce_csrf_checks=True)
    answer = post_form(
        other,
        "/accounts/login/",
        {"username": "alice", "password": PASSWORD, "next": "https://evil.example/"},
    )
    assert answer.status_code == 302 and answer["Location"] == "/"


def test_login_with_bad_credentials_shows_an_error(browser: Client, alice: User) -> None:
    answer = post_form(browser, "/accounts/login/", {"username": "alice", "password": "wrong"})
    assert answer.status_code == 200
    html = answer.content.decode()
    assert 'role="alert"' in html and 'name="username"' in html
    assert "sessionid" not in answer.cookies
    assert signed_in_as(browser) is None


def test_logout_is_a_post(alice_client: Client) -> None:
    assert alice_client.get("/accounts/logout/").status_code == 405
    assert signed_in_as(alice_client) == "alice"
    answer = post_form(alice_client, "/accounts/logout/", {}, page="/")
    assert answer.status_code == 302
    assert signed_in_as(alice_client) is None
    assert alice_client.get("/").status_code == 302


# --- pages ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/", "/rooms/lounge/"])
def test_pages_need_a_signed_in_user(client: Client, path: str) -> None:
    answer = client.get(path)
    assert answer.status_code == 302
    assert answer["Location"] == f"/accounts/login/?next={path}"
    assert not Room.objects.exists()


def test_lobby_lists_the_rooms_one_can_enter(alice_client: Client, alice: User, bob: User) -> None:
    Room.objects.create(slug="mine", title="My own", owner=alice)
    Room.objects.create(slug="theirs", title="Bob's public", owner=bob)
    Room.objects.create(slug="secret", title="Bob's private", owner=bob, is_private=True)
    html = alice_client.get("/").content.decode()
    assert 'href="/rooms/mine/"' in html and "My own" in html
    assert 'href="/rooms/theirs/"' in html and "Bob&#x27;s public" in html
    assert "/rooms/secret/" not in html
    assert 'name="name"' in html and 'name="csrfmiddlewaretoken"' in html


def test_lobby_form_slugifies_the_name_and_keeps_it_as_the_title(
    alice_client: Client, alice: User
) -> None:
    answer = post_form(alice_client, "/", {"name": "My Room!"})
    assert answer.status_code == 302 and answer["Location"] == "/rooms/my-room/"
    room = Room.objects.get(slug="my-room")
    assert room.title == "My Room!" and room.owner == alice and not room.is_private
    assert alice_client.get("/rooms/my-room/").status_code == 200


def test_lobby_form_opens_an_existing_room_as_it_is(alice_client: Client, bob: User) -> None:
    Room.objects.create(slug="weekend-plans", title="Weekend", owner=bob)
    answer = post_form(alice_client, "/", {"name": "Weekend Plans"})
    assert answer.status_code == 302 and answer["Location"] == "/rooms/weekend-plans/"
    room = Room.objects.get(slug="weekend-plans")
    assert (room.title, room.owner) == ("Weekend", bob)


def test_lobby_form_without_letters_or_digits_stays_with_an_error(alice_client: Client) -> None:
    answer = post_form(alice_client, "/", {"name": "!!! ???"})
    assert answer.status_code == 200
    assert "room-name-error" in answer.content.decode()
    assert not Room.objects.exists()


def test_a_free_slug_offers_creation_and_a_post_creates_a_public_room_owned_by_the_poster(
    alice_client: Client, alice: User, bob: User
) -> None:
    offer = alice_client.get("/rooms/fresh-room-1/")
    assert offer.status_code == 200 and "Create this room?" in offer.content.decode()
    assert not Room.objects.exists()  # a GET never creates
    created = post_form(alice_client, "/rooms/fresh-room-1/", {})
    assert created.status_code == 302 and created["Location"] == "/rooms/fresh-room-1/"
    page = alice_client.get("/rooms/fresh-room-1/")
    room = Room.objects.get(slug="fresh-room-1")
    assert room.owner == alice and not room.is_private
    assert "/ws/rooms/fresh-room-1/" in page.content.decode()

    # Another visitor enters it; it stays alice's.
    other = Client()
    other.force_login(bob)
    assert other.get("/rooms/fresh-room-1/").status_code == 200
    # A POST on a taken slug only redirects.
    again = post_form(other, "/rooms/fresh-room-1/", {}, page="/")
    assert again.status_code == 302 and again["Location"] == "/rooms/fresh-room-1/"
    assert Room.objects.get(slug="fresh-room-1").owner == alice
    assert Room.objects.count() == 1


@pytest.mark.parametrize(
    "path",
    [
        "/rooms/Upper/",
        "/rooms/under_score/",
        "/rooms/dot.ted/",
        "/rooms/sp%20ace/",
        f"/rooms/{'a' * 51}/",
        "/rooms/no-slash",
    ],
)
def test_invalid_slugs_are_404_and_create_nothing(alice_client: Client, path: str) -> None:
    assert alice_client.get(path).status_code == 404
    assert not Room.objects.exists()


def test_the_longest_valid_slug_works(alice_client: Client) -> None:
    slug = "a" * 49 + "9"
    assert post_form(alice_client, f"/rooms/{slug}/", {}).status_code == 302
    assert alice_client.get(f"/rooms/{slug}/").status_code == 200
    assert Room.objects.filter(slug=slug).exists()


def test_someone_elses_private_room_is_404(alice_client: Client, bob: User) -> None:
    Room.objects.create(slug="bobs", title="Bob's", owner=bob, is_private=True)
    assert alice_client.get("/rooms/bobs/").status_code == 404


# --- /api/rooms/<slug>/messages ----------------------------------------------------------------


@pytest.fixture
def history(alice: User) -> tuple[Room, list[int]]:
    """A room of alice's with 260 messages (user and assistant in turn); their ids, in order."""
    room = Room.objects.create(slug="long", title="Long", owner=alice)
    Message.objects.bulk_create(
        Message(
            room=room,
            role="user" if i % 2 == 0 else "assistant",
            author=alice if i % 2 == 0 else None,
            model="" if i % 2 == 0 else "claude-sonnet-5-5",
            text=f"message {i}",
            client_msg_id=f"c{i}" if i % 2 == 0 else None,
        )
        for i in range(260)
    )
    return room, list(Message.objects.filter(room=room).order_by("id").values_list("id", flat=True))


def api(client: Client, query: str = "", slug: str = "long") -> tuple[int, Any]:
    answer = client.get(f"/api/rooms/{slug}/messages{query}")
    assert answer["Content-Type"] == "application/json"
    return answer.status_code, answer.json()


def ids_of(body: Any) -> list[int]:
    return [m["id"] for m in body["messages"]]


def test_api_default_is_the_newest_50_oldest_first(
    alice_client: Client, history: tuple[Room, list[int]]
) -> None:
    _, ids = history
    status, body = api(alice_client)
    assert status == 200
    assert set(body) == {"messages", "has_more"}
    assert ids_of(body) == ids[-50:] and body["has_more"] is True
    user, reply = body["messages"][-2:]
    assert set(user) == MESSAGE_KEYS and set(reply) == MESSAGE_KEYS
    assert user["role"] == "user" and user["author"] == "alice" and user["model"] is None
    assert user["text"] == "message 258" and user["client_msg_id"] == "c258"
    assert reply["role"] == "assistant" and reply["author"] is None
    assert reply["model"] == "claude-sonnet-5-5" and reply["client_msg_id"] is None
    assert user["status"] == "complete" and user["created_at"].endswith("Z")


def test_api_before_and_limit_page_backwards(
    alice_client: Client, history: tuple[Room, list[int]]
) -> None:
    _, ids = history
    cases = [
        ("?limit=200", ids[-200:], True),
        ("?limit=500", ids[-200:], True),  # capped at 200
        ("?limit=1", ids[-1:], True),
        (f"?before={ids[60]}&limit=200", ids[:60], False),
        (f"?before={ids[60]}&limit=60", ids[:60], False),  # exactly the rest: nothing more
        (f"?before={ids[61]}&limit=60", ids[1:61], True),
        (f"?before={ids[100]}", ids[50:100], True),  # default limit 50
        (f"?before={ids[0]}", [], False),
    ]
    for query, expected, more in cases:
        status, body = api(alice_client, query)
        assert status == 200, query
        assert ids_of(body) == expected, query
        assert body["has_more"] is more, query

    # Paging back from the newest with `before` = the oldest id seen walks the whole room once.
    seen: list[int] = []
    query = "?limit=200"
    while True:
        _, body = api(alice_client, query)
        seen = ids_of(body) + seen
        if not body["has_more"]:
            break
        query = f"?before={body['messages'][0]['id']}&limit=200"
    assert seen == ids


def test_api_refuses_anonymous_with_401_json(
    client: Client, history: tuple[Room, list[int]]
) -> None:
    status, body = api(client)
    assert status == 401 and isinstance(body, dict)


def test_api_unknown_or_forbidden_room_is_404_json(alice_client: Client, bob: User) -> None:
    Room.objects.create(slug="bobs", title="Bob's", owner=bob, is_private=True)
    for slug in ("nowhere", "bobs"):
        status, body = api(alice_client, slug=slug)
        assert status == 404 and isinstance(body, dict), slug
    assert not Room.objects.filter(slug="nowhere").exists()


def test_api_bad_parameters_are_a_client_error(
    alice_client: Client, history: tuple[Room, list[int]]
) -> None:
    for query in ("?limit=abc", "?before=-3", "?before=1.5"):
        status, body = api(alice_client, query)
        assert 400 <= status < 500 and isinstance(body, dict), query


def test_api_path_is_exact_no_trailing_slash_no_redirect(
    alice_client: Client, history: tuple[Room, list[int]]
) -> None:
    assert alice_client.get("/api/rooms/long/messages").status_code == 200
    assert alice_client.get("/api/rooms/long/messages/").status_code == 404


# --- /healthz ------------------------------------------------------------------------------------


@pytest.fixture
def server_process() -> Iterator[None]:
    """This test process serves like daphne: a RoomchatProcess is installed (not started)."""
    from consumers import current
    from consumers.process import ProcessConfig, RoomchatProcess

    current.install(RoomchatProcess(ProcessConfig.from_settings()))
    yield
    current.install(None)


def test_healthz_answers_200_with_checks_without_sign_in(
    client: Client, server_process: None
) -> None:
    answer = client.get("/healthz")
    assert answer.status_code == 200
    assert answer["Content-Type"] == "application/json"
    body = answer.json()
    assert body["status"] == "ok"
    assert body["checks"] and all(value == "ok" for value in body["checks"].values())
    assert "database" in body["checks"]


def test_healthz_is_503_outside_a_server_process(client: Client) -> None:
    answer = client.get("/healthz")
    assert answer.status_code == 503
    assert answer.json()["checks"]["shared_state"] == "error: RuntimeError"


def test_healthz_path_is_exact(client: Client) -> None:
    assert client.get("/healthz/").status_code == 404


# --- admin ---------------------------------------------------------------------------------------


def test_admin_lists_rooms_and_replies_with_their_model_usage_and_timing(alice: User) -> None:
    staff = User.objects.create_superuser("root", password=PASSWORD)
    room = Room.objects.create(slug="costly", title="Costly", owner=alice, model="m")
    reply = Message.objects.create(
        room=room,
        role="assistant",
        status="complete",
        provider="anthropic",
        model="claude-haiku-5-5",
        input_tokens=1234,
        output_tokens=567,
        cache_creation_input_tokens=8901,
        cache_read_input_tokens=23456,
        time_to_first_token_ms=321,
        duration_ms=6543,
    )
    client = Client()
    client.force_login(staff)

    rooms = client.get("/admin/rooms/room/")
    assert rooms.status_code == 200 and "costly" in rooms.content.decode()

    listing = client.get("/admin/rooms/message/").content.decode()
    for shown in ("claude-haiku-5-5", "1234", "567", "8901", "23456", "321", "6543"):
        assert shown in listing, shown

    detail = client.get(f"/admin/rooms/message/{reply.pk}/change/")
    assert detail.status_code == 200
    page = detail.content.decode()
    assert "Cache read input tokens" in page and "23456" in page
    # Usage is what the model reported: shown, never editable.
    assert 'name="cache_read_input_tokens"' not in page and 'name="input_tokens"' not in page


def test_admin_is_for_staff_only(alice_client: Client) -> None:
    answer = alice_client.get("/admin/rooms/message/")
    assert answer.status_code == 302 and "/admin/login/" in answer["Location"]
