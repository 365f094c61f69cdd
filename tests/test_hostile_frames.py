"""Hostile clients against two real daphne processes (issue 12): a foreign Origin, frames that
would crash the database layer, a room too big for one frame, odd history parameters.

Every test has its own room and users; the module has its own Redis key prefix.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import pytest

from tests.conftest import DaphnePair, WsConnect
from tests.support import unique_name
from tests.support.people import join, make_people
from tests.support.wsclient import HandshakeRejected

pytestmark = pytest.mark.timeout(90)


@pytest.fixture(scope="module")
def server_env(server_env: Mapping[str, str]) -> Mapping[str, str]:
    return MappingProxyType({**server_env, "REDIS_KEY_PREFIX": unique_name("hostile")})


# --- 7. the Origin is the request's own, scheme, host and port -------------------------------


async def test_only_the_very_origin_of_the_request_opens_a_socket(
    daphne_pair: DaphnePair, ws_connect: WsConnect, unique: Any
) -> None:
    p = await make_people(unique)
    server = daphne_pair.a
    port = server.port
    foreign = [
        "http://localhost:9999",  # an allowed host on another port
        f"http://127.0.0.1:{port + 1}",
        f"https://127.0.0.1:{port}",  # another scheme
        "http://127.0.0.1",  # the default port is another port
        f"http://evil.example:{port}",
        f"http://127.0.0.1:{port}/rooms/x/",  # not an origin
        f"http://127.0.0.1:{port}@evil.example",
        "null",
        None,  # no Origin at all
    ]
    for origin in foreign:
        with pytest.raises(HandshakeRejected) as refused:
            await ws_connect(server.ws_url, p.slug, p.alice_cookie, origin=origin)
        assert refused.value.status == 403, origin

    # The page's own origin, and the same page reached by another allowed host name.
    sock = await join(ws_connect, server.ws_url, p.slug, p.alice_cookie)
    assert sock.find("room.snapshot")
    local = await ws_connect(
        f"ws://localhost:{port}", p.slug, p.alice_cookie, origin=f"http://LOCALHOST:{port}"
    )
    await local.wait_for("room.snapshot")
    # A Host header that is not an allowed host is refused whatever the Origin says.
    with pytest.raises(HandshakeRejected) as refused:
        await ws_connect(
            server.ws_url,
            p.slug,
            p.alice_cookie,
            origin=f"http://evil.example:{port}",
            headers={"Host": f"evil.example:{port}"},
        )
    assert refused.value.status in (400, 403)
    await asyncio.gather(sock.close(), local.close())
