"""Deployment settings (issue 16): several Redis servers, the PostgreSQL pool. Each case loads
chatsite.settings in a fresh interpreter with only the variables it names."""

from __future__ import annotations

import json
from typing import Any

from tests.test_settings import SECRET, load_settings

PROBE = """
import json
import django
django.setup()
from django.conf import settings
db = settings.DATABASES["default"]
layer = settings.CHANNEL_LAYERS["default"]
print(json.dumps({
    "conn_max_age": db["CONN_MAX_AGE"],
    "pool": db.get("OPTIONS", {}).get("pool"),
    "hosts": layer.get("CONFIG", {}).get("hosts"),
    "redis_url": settings.REDIS_URL,
    "redis_urls": settings.REDIS_URLS,
}, default=repr))
"""


def probe(**env: str) -> tuple[int, dict[str, Any] | None, str]:
    code, _, output = load_settings(PROBE, **SECRET, **env)
    lines = [line for line in output.splitlines() if line.startswith('{"conn_max_age"')]
    return code, json.loads(lines[0]) if lines else None, output


PG = "postgres://u:p@db.example:5432/app"


def test_postgres_gets_a_bounded_pool_sized_for_the_smallest_heroku_plan() -> None:
    code, seen, output = probe(DATABASE_URL=PG)
    assert code == 0 and seen is not None, output
    # essential-0 allows 20: two dynos of 8 leave room for the release phase and a one-off.
    assert seen["pool"] == {"min_size": 2, "max_size": 8, "timeout": 10.0, "name": "roomchat"}
    assert seen["conn_max_age"] == 0  # Django's pool refuses persistent connections


def test_the_pool_size_is_a_setting_and_zero_turns_the_pool_off() -> None:
    code, seen, output = probe(DATABASE_URL=PG, DATABASE_POOL_MAX="3", DATABASE_POOL_TIMEOUT="2")
    assert code == 0 and seen is not None, output
    assert seen["pool"]["max_size"] == 3 and seen["pool"]["timeout"] == 2.0

    code, seen, output = probe(DATABASE_URL=PG, DATABASE_POOL_MAX="0")
    assert code == 0 and seen is not None, output
    assert seen["pool"] is None and seen["conn_max_age"] == 0

    code, _, output = probe(DATABASE_URL=PG, DATABASE_POOL_MAX="many")
    assert code != 0 and "DATABASE_POOL_MAX must be a number" in output


def test_sqlite_has_no_pool() -> None:
    code, seen, output = probe()
    assert code == 0 and seen is not None, output
    assert seen["pool"] is None


def test_a_comma_list_of_redis_urls_shards_the_layer_with_tls_options_per_server() -> None:
    urls = ["rediss://a.example:6390", "redis://127.0.0.1:6391/0", "rediss://c.example:6392"]
    for layer in ("pubsub", "core"):
        code, seen, output = probe(REDIS_URL=" , ".join(urls), REDIS_CHANNEL_LAYER=layer)
        assert code == 0 and seen is not None, output
        assert seen["redis_urls"] == urls and seen["redis_url"] == urls[0]
        hosts = seen["hosts"]
        assert [host["address"] for host in hosts] == urls
        for host in hosts:
            assert host["socket_timeout"] == 15
            # Heroku's self-signed certificates on every rediss:// connection; redis:// would
            # raise TypeError on the option.
            if host["address"].startswith("rediss://"):
                assert "ssl_cert_reqs" in host and host["ssl_cert_reqs"] is None
            else:
                assert "ssl_cert_reqs" not in host


def test_the_same_redis_twice_refuses_to_start() -> None:
    code, _, output = probe(REDIS_URL="redis://a:6379/0,redis://a:6379/0")
    assert code != 0 and "REDIS_URL names the same server twice" in output
