"""The websocket Origin rule (consumers/origin.py): the request's own origin, nothing else."""

from __future__ import annotations

import pytest
from django.test import override_settings

from consumers.origin import origin_allowed


def scope(origin: str | None, host: str | None) -> dict[str, object]:
    headers = []
    if origin is not None:
        headers.append((b"origin", origin.encode("latin-1")))
    if host is not None:
        headers.append((b"host", host.encode("latin-1")))
    return {"type": "websocket", "headers": headers}


@pytest.mark.parametrize(
    ("origin", "host", "allowed"),
    [
        ("http://localhost:8000", "localhost:8000", True),
        ("http://LOCALHOST:8000", "localhost:8000", True),
        ("http://localhost:9999", "localhost:8000", False),
        ("https://localhost:8000", "localhost:8000", False),
        ("http://localhost", "localhost:8000", False),
        ("http://localhost:80", "localhost", True),  # the default port, written or not
        ("http://evil.example:8000", "evil.example:8000", False),  # not an allowed host
        ("http://localhost:8000/", "localhost:8000", False),
        ("http://user@localhost:8000", "localhost:8000", False),
        ("null", "localhost:8000", False),
        (None, "localhost:8000", False),
        ("http://localhost:8000", None, False),  # no Host but an Origin with a port
        ("http://localhost", None, True),  # in-process callers: an allowed host, default port
    ],
)
@override_settings(ALLOWED_HOSTS=["localhost", "127.0.0.1"], HTTPS=False)
def test_http_origins(origin: str | None, host: str | None, allowed: bool) -> None:
    assert origin_allowed(scope(origin, host)) is allowed


@override_settings(ALLOWED_HOSTS=[".example.com"], HTTPS=True)
def test_https_sites_take_https_origins_only() -> None:
    assert origin_allowed(scope("https://chat.example.com", "chat.example.com"))
    assert origin_allowed(scope("https://chat.example.com", "chat.example.com:443"))
    assert not origin_allowed(scope("http://chat.example.com", "chat.example.com"))
    assert not origin_allowed(scope("https://other.example.com", "chat.example.com"))


def test_two_origin_headers_are_refused() -> None:
    twice = scope("http://localhost:8000", "localhost:8000")
    headers = list(twice["headers"])  # type: ignore[call-overload]
    headers.append((b"origin", b"http://localhost:8000"))
    with override_settings(ALLOWED_HOSTS=["localhost"], HTTPS=False):
        assert not origin_allowed({"type": "websocket", "headers": headers})
