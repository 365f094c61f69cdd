"""Users and signed-in sessions for tests that talk to real server processes."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.message import Message
from html.parser import HTMLParser
from http.cookies import SimpleCookie
from typing import TYPE_CHECKING, Any

from asgiref.sync import sync_to_async

if TYPE_CHECKING:
    from django.contrib.auth.models import User

DEFAULT_PASSWORD = "pw-secret-123"


# --- Through the ORM (the test process writes straight into the shared test database) ---------


def create_user(username: str, password: str | None = DEFAULT_PASSWORD) -> User:
    """Create a Django user. Needs committed data (`transactional_db`) to be seen by servers.

    `password=None`: no usable password, for tests that sign in by session (hashing one costs
    about half a second).
    """
    from django.contrib.auth import get_user_model

    user: User = get_user_model().objects.create_user(username=username, password=password)
    return user


def session_cookie(user: User) -> str:
    """Value of a `sessionid` cookie for `user`, from a real session stored in the database."""
    from django.conf import settings
    from django.test import Client

    client = Client()
    client.force_login(user)
    return client.cookies[settings.SESSION_COOKIE_NAME].value


def signed_in_user(username: str, password: str = DEFAULT_PASSWORD) -> tuple[User, str]:
    """A new user and a `sessionid` cookie value for it."""
    user = create_user(username, password)
    return user, session_cookie(user)


# In async tests: the ORM must run in a thread.
acreate_user = sync_to_async(create_user)
asession_cookie = sync_to_async(session_cookie)
asigned_in_user = sync_to_async(signed_in_user)


# --- Over HTTP, as a browser does ---------------------------------------------------------------


class LoginFailed(AssertionError):
    """The HTML sign-in flow did not end in a redirect with a session."""


@dataclass
class HttpResponse:
    """A response as received: redirects are not followed."""

    status: int
    headers: Message
    body: bytes
    cookies: dict[str, str] = field(default_factory=dict)

    @property
    def text(self) -> str:
        """The body decoded as UTF-8."""
        return self.body.decode(errors="replace")

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # hand the 3xx back to the caller


# Loopback only: no proxies from the environment, no redirect following.
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirects())


def cookie_header(cookies: Mapping[str, str]) -> str:
    """A `Cookie` request header value."""
    return "; ".join(f"{name}={value}" for name, value in cookies.items())


def _set_cookies(headers: Message) -> dict[str, str]:
    jar: SimpleCookie = SimpleCookie()
    for header in headers.get_all("Set-Cookie") or []:
        jar.load(header)
    return {name: morsel.value for name, morsel in jar.items()}


def http_request(
    method: str,
    url: str,
    *,
    cookies: Mapping[str, str] | None = None,
    form: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = 10.0,
) -> HttpResponse:
    """One HTTP request; any status comes back as an HttpResponse (no exception, no redirect)."""
    all_headers = dict(headers or {})
    if cookies:
        all_headers["Cookie"] = cookie_header(cookies)
    data = urllib.parse.urlencode(form).encode() if form is not None else None
    request = urllib.request.Request(url, data=data, headers=all_headers, method=method)
    try:
        with _opener.open(request, timeout=timeout) as response:
            return HttpResponse(
                response.status,
                response.headers,
                response.read(),
                _set_cookies(response.headers),
            )
    except urllib.error.HTTPError as exc:
        return HttpResponse(exc.code, exc.headers, exc.read(), _set_cookies(exc.headers))


class _CsrfInput(HTMLParser):
    """Finds the value of the first `<input name="csrfmiddlewaretoken">`."""

    def __init__(self) -> None:
        super().__init__()
        self.token: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "input" and values.get("name") == "csrfmiddlewaretoken" and self.token is None:
            self.token = values.get("value")


def csrf_form_token(html: str) -> str:
    """The hidden `csrfmiddlewaretoken` of a page's form."""
    parser = _CsrfInput()
    parser.feed(html)
    if not parser.token:
        raise LoginFailed("no csrfmiddlewaretoken input in the page")
    return parser.token


def http_login(base_url: str, username: str, password: str = DEFAULT_PASSWORD) -> dict[str, str]:
    """Sign in through /accounts/login/ like a browser; returns the cookies (sessionid, csrftoken)."""
    base_url = base_url.rstrip("/")
    login_url = f"{base_url}/accounts/login/"
    page = http_request("GET", login_url)
    if page.status != 200:
        raise LoginFailed(f"GET {login_url} answered {page.status}: {page.text[:500]}")
    cookies = dict(page.cookies)
    if "csrftoken" not in cookies:
        raise LoginFailed(f"GET {login_url} set no csrftoken cookie (got {sorted(cookies)})")
    form = {
        "username": username,
        "password": password,
        "csrfmiddlewaretoken": csrf_form_token(page.text),
    }
    # Django checks Origin (and, over HTTPS, Referer) against the host: send both like a browser.
    answer = http_request(
        "POST",
        login_url,
        cookies=cookies,
        form=form,
        headers={"Origin": base_url, "Referer": login_url},
    )
    cookies.update(answer.cookies)
    if answer.status != 302 or not cookies.get("sessionid"):
        raise LoginFailed(
            f"POST {login_url} as {username!r} answered {answer.status} "
            f"(cookies {sorted(answer.cookies)}): {answer.text[:500]}"
        )
    return cookies
