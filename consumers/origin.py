"""The websocket Origin check of SPEC §6: the very origin the socket was opened on.

Channels' `AllowedHostsOriginValidator` compares the Origin's host only, so a page on
`http://localhost:9999` could open sockets on a site served at `localhost:8000`. Here the Origin
must equal, scheme, host and port, the origin of the request itself (its `Host` header, `https`
when DJANGO_HTTPS=1), and that host must be an allowed one. Anything else, a missing Origin
included, is refused at the handshake (HTTP 403), before the application runs.
"""

from __future__ import annotations

from typing import Any

from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.http.request import split_domain_port, validate_host

Scope = dict[str, Any]
ASGIApp = Any

_DEFAULT_PORTS = {"http": "80", "https": "443"}


def _header(scope: Scope, name: bytes) -> str | None:
    """The header's value when it occurs exactly once (latin-1, as HTTP defines), else None."""
    values = [value for key, value in scope.get("headers", ()) if key.lower() == name]
    if len(values) != 1:
        return None
    try:
        return bytes(values[0]).decode("latin-1")
    except (TypeError, ValueError):
        return None


def _normal_origin(scheme: str, host: str) -> str | None:
    """`scheme://host[:port]` lower-cased, the scheme's default port left out; None if odd."""
    domain, port = split_domain_port(host.lower())
    if not domain:
        return None
    if port == _DEFAULT_PORTS.get(scheme):
        port = ""
    if domain.count(":") and not domain.startswith("["):
        return None
    return f"{scheme}://{domain}{':' + port if port else ''}"


def parse_origin(origin: str) -> tuple[str, str] | None:
    """(scheme, host[:port]) of a serialized origin; None for `null`, paths or anything else."""
    scheme, sep, rest = origin.partition("://")
    if not sep or scheme.lower() not in _DEFAULT_PORTS or not rest:
        return None
    if any(c in rest for c in "/?#@ \t\\") or not rest.isascii():
        return None
    return scheme.lower(), rest


def expected_origin(scope: Scope) -> str | None:
    """The origin a page of this site on this request's host has, or None if not allowed.

    None also when the request has no single `Host` header.
    """
    scheme = "https" if getattr(settings, "HTTPS", False) else "http"
    host = _header(scope, b"host")
    if host is None:
        return None
    domain, _ = split_domain_port(host.lower())
    if not domain or not validate_host(domain, settings.ALLOWED_HOSTS):
        return None
    return _normal_origin(scheme, host)


def _has_header(scope: Scope, name: bytes) -> bool:
    return any(key.lower() == name for key, _ in scope.get("headers", ()))


def origin_allowed(scope: Scope) -> bool:
    """Whether the handshake's Origin is this very site's (see the module's doc)."""
    raw = _header(scope, b"origin")
    parsed = parse_origin(raw.strip()) if raw is not None else None
    if parsed is None:
        return False
    origin = _normal_origin(*parsed)
    if origin is None:
        return False
    if not _has_header(scope, b"host"):
        # In-process callers only (autobahn refuses a handshake without Host): an allowed
        # host on the site's scheme and its default port.
        scheme = "https" if getattr(settings, "HTTPS", False) else "http"
        domain, port = split_domain_port(parsed[1].lower())
        return parsed[0] == scheme and not port and validate_host(domain, settings.ALLOWED_HOSTS)
    return origin == expected_origin(scope)


class SameOriginValidator:
    """ASGI middleware: websockets whose Origin is not the request's own get HTTP 403."""

    def __init__(self, application: ASGIApp) -> None:
        self.application = application

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> Any:
        if scope.get("type") != "websocket":
            raise ValueError("SameOriginValidator guards websocket connections only")
        if origin_allowed(scope):
            return await self.application(scope, receive, send)
        return await WebsocketDenier()(scope, receive, send)
